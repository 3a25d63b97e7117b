// daemon/config-sources: where each `weir daemon` setting comes from. Every flag `--some-flag`
// is also env `WEIR_SOME_FLAG` and key `someFlag` of the --config file, derived from the
// commander options (a flag added later gets both with no code here). Precedence is that of
// commander's value sources: flag ('cli') > env ('env') > config file ('config') > default
// (commander's default never beats env or file). Errors about a setting are prefixed with
// where its value came from.

import type { Command, Option } from 'commander';
import { nearest, parseConfigFile, readConfigText } from './config-file.js';

/** One daemon flag as the other sources see it. */
export interface FlagSpec {
  /** commander's attribute name: camelCase, the config file's key (`tunnelPort`) */
  key: string;
  /** `--tunnel-port` */
  flag: string;
  /** `WEIR_TUNNEL_PORT` */
  env: string;
  choices?: readonly string[];
  /** a comma-separated list (`<list>`, `<cidrs>`): the file may give a YAML list */
  list: boolean;
  /** a flag without a value (none today): the file gives true/false */
  boolean: boolean;
}

/** Where a setting's value came from. */
export type Origin = { kind: 'flag' } | { kind: 'env'; name: string; value: string } | { kind: 'file'; path: string; key: string } | { kind: 'default' };

/** `--metrics-address` -> `WEIR_METRICS_ADDRESS`. */
export function envNameOf(flag: string): string {
  return `WEIR_${flag.replace(/^--/, '').toUpperCase().replace(/-/g, '_')}`;
}

/** Environment variables named WEIR_* that are not settings (read elsewhere, not flags). */
export const NON_FLAG_ENV: readonly string[] = ['WEIR_BPF_DIR', 'WEIR_ADDON'];

function specOf(o: Option): FlagSpec | undefined {
  if (!o.long || o.negate) return undefined;
  return {
    key: o.attributeName(),
    flag: o.long,
    env: envNameOf(o.long),
    ...(o.argChoices ? { choices: o.argChoices } : {}),
    list: /<(list|cidrs)>/.test(o.flags),
    boolean: o.isBoolean(),
  };
}

/** The daemon's flags (commander's options of `cmd`) as specs. */
export function flagSpecs(cmd: Command): FlagSpec[] {
  return cmd.options.flatMap((o) => specOf(o) ?? []);
}

/** Names every long option's WEIR_* variable on the option, so --help shows it (`env: WEIR_…`).
 *  Commander only reads the environment for options given .env() before they were added, so
 *  applySources reads it (with an `env` of its own, and errors that name the variable). */
export function addEnvNames(cmd: Command): Command {
  for (const o of cmd.options) if (o.long && !o.negate && !o.envVar) o.env(envNameOf(o.long));
  return cmd;
}

function checkChoice(where: string, spec: FlagSpec, value: string): void {
  if (spec.choices && !spec.choices.includes(value)) throw new Error(`${where}: bad ${spec.flag} ${JSON.stringify(value)}: use ${spec.choices.join(', ')}`);
}

/**
 * After parse: the WEIR_* variables of `env` where the command line gave no value (source
 * 'env'), then the --config file (the flag, else WEIR_CONFIG), read and checked, where
 * neither did (source 'config'). Commander's value sources order them: cli > env > config >
 * default. Returns the file's path.
 */
export function applySources(cmd: Command, env: NodeJS.ProcessEnv, readText: (path: string) => string = readConfigText): string | undefined {
  const specs = flagSpecs(cmd);
  for (const s of specs) {
    const v = env[s.env];
    if (v === undefined || cmd.getOptionValueSource(s.key) === 'cli') continue;
    let value: string | boolean = v;
    if (s.boolean) {
      if (!['true', 'false', '1', '0'].includes(v)) throw new Error(`${s.env}=${v}: ${s.flag} takes true or false`);
      value = v === 'true' || v === '1';
    } else checkChoice(`${s.env}=${v}`, s, v);
    cmd.setOptionValueWithSource(s.key, value, 'env');
  }
  const path = cmd.getOptionValue('config') as string | undefined;
  if (!path) return undefined;
  const values = parseConfigFile(path, readText(path), specs);
  for (const [key, value] of values) {
    const spec = specs.find((s) => s.key === key)!;
    if (typeof value === 'string') checkChoice(`${path}: ${key}`, spec, value);
    const source = cmd.getOptionValueSource(key);
    if (source === undefined || source === 'default') cmd.setOptionValueWithSource(key, value, 'config');
  }
  return path;
}

/** Where each setting's value came from, after parse and applyConfigFile. */
export function origins(cmd: Command, configPath: string | undefined): Map<string, Origin> {
  const out = new Map<string, Origin>();
  for (const s of flagSpecs(cmd)) {
    const source = cmd.getOptionValueSource(s.key);
    if (source === 'cli') out.set(s.key, { kind: 'flag' });
    else if (source === 'env') out.set(s.key, { kind: 'env', name: s.env, value: String(cmd.getOptionValue(s.key)) });
    else if (source === 'config' && configPath) out.set(s.key, { kind: 'file', path: configPath, key: s.key });
    else out.set(s.key, { kind: 'default' });
  }
  return out;
}

/** `WEIR_TUNNEL_PORT=abc` / `config.yaml: tunnelPort`; undefined for a flag or a default. */
export function originText(o: Origin | undefined): string | undefined {
  if (o?.kind === 'env') return `${o.name}=${o.value}`;
  if (o?.kind === 'file') return `${o.path}: ${o.key}`;
  return undefined;
}

/**
 * `e` (a setting's check failing, its message naming the flag: `bad --tunnel-port "abc"`)
 * with where the value came from in front when that was not the command line:
 * `WEIR_TUNNEL_PORT=abc: bad --tunnel-port "abc": ...`. Every flag the message names counts.
 */
export function withOrigin(e: unknown, specs: readonly FlagSpec[], from: Map<string, Origin>): Error {
  const msg = e instanceof Error ? e.message : String(e);
  const named = new Set(msg.match(/--[a-z0-9][a-z0-9-]*/g) ?? []);
  const where = specs.filter((s) => named.has(s.flag)).flatMap((s) => originText(from.get(s.key)) ?? []);
  return where.length === 0 ? (e instanceof Error ? e : new Error(msg)) : new Error(`${where.join(', ')}: ${msg}`, { cause: e });
}

/** For the start log: the config file and which settings came from env and file (names only:
 *  values may be secrets). */
export function originSummary(from: Map<string, Origin>, configPath: string | undefined): Record<string, string | undefined> {
  const env: string[] = [];
  const file: string[] = [];
  for (const o of from.values()) {
    if (o.kind === 'env') env.push(o.name);
    if (o.kind === 'file') file.push(o.key);
  }
  return { configFile: configPath, fromEnv: env.join(',') || undefined, fromFile: file.join(',') || undefined };
}

/** WEIR_* variables that are no setting (a typo: WEIR_TUNEL_PORT), each with the nearest one. */
export function unknownEnv(env: NodeJS.ProcessEnv, specs: readonly FlagSpec[]): { name: string; nearest?: string }[] {
  const names = specs.map((s) => s.env);
  return Object.keys(env)
    .filter((n) => n.startsWith('WEIR_') && !names.includes(n) && !NON_FLAG_ENV.includes(n))
    .sort()
    .map((name) => {
      const near = nearest(name, names);
      return near ? { name, nearest: near } : { name };
    });
}
