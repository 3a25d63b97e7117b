// daemon/config-file: the `weir daemon --config FILE` YAML (a WeirConfiguration, as kube-proxy
// reads a KubeProxyConfiguration): read within a size bound, parsed without custom types, and
// checked against the daemon's flags (config-sources.ts), so that a typo, a wrong type or a
// wrong apiVersion/kind is one error naming the file and the key. Its values go in as if given
// as flags; precedence and the rest are config-sources.ts.

import { readFileSync, statSync } from 'node:fs';
import { CORE_SCHEMA, load as loadYaml } from 'js-yaml';
import type { FlagSpec } from './config-sources.js';

export const CONFIG_API_VERSION = 'weir.dev/v1alpha1';
export const CONFIG_KIND = 'WeirConfiguration';

/** A ConfigMap holds at most 1 MiB; a bigger file is not a configuration. */
export const CONFIG_MAX_BYTES = 1 << 20;

/** Reads the file, refusing what cannot be a configuration (not a file, too big). */
export function readConfigText(path: string): string {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (e) {
    throw new Error(`${path}: cannot read the config file: ${(e as Error).message}`, { cause: e });
  }
  if (size > CONFIG_MAX_BYTES) throw new Error(`${path}: ${size} bytes, more than a config file may have (${CONFIG_MAX_BYTES})`);
  return readFileSync(path, 'utf8');
}

/** Levenshtein distance, for "did you mean" (keys are short: the quadratic table is fine). */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(up + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}

/** The candidate nearest to `word` (case-insensitive), when near enough to be a typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

const kindOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a map' : typeof v);

/** One value as the flag's text: numbers and booleans are fine where text is expected
 *  (`tunnelPort: 4789`); `true`/`false` are on/off for on|off flags; lists for list flags. */
function flagText(where: string, spec: FlagSpec, v: unknown): string | boolean {
  if (spec.boolean) {
    if (typeof v === 'boolean') return v;
    throw new Error(`${where}: ${spec.flag} takes true or false, not ${kindOf(v)}`);
  }
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') {
    if (spec.choices?.includes('on') && spec.choices.includes('off')) return v ? 'on' : 'off';
    return String(v);
  }
  if (Array.isArray(v) && spec.list) {
    return v
      .map((x, i) => {
        if (typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x))) return String(x);
        throw new Error(`${where}[${i}]: a list of text (addresses, names), not ${kindOf(x)}`);
      })
      .join(',');
  }
  const expected = spec.list ? 'text or a list of text' : 'text, a number or a boolean';
  throw new Error(`${where}: expected ${expected} for ${spec.flag}, got ${kindOf(v)}`);
}

/**
 * The settings of a WeirConfiguration, by flag key (camelCase: `metricsAddress`). Throws an
 * error that starts with `path` and names the key: unknown keys (with the nearest valid one),
 * wrong types, a missing or other apiVersion/kind, YAML that is not one mapping.
 */
export function parseConfigFile(path: string, text: string, specs: readonly FlagSpec[]): Map<string, string | boolean> {
  let doc: unknown;
  try {
    // the core schema: null, booleans, numbers, strings, lists, maps; no timestamps, no
    // binary, no sets or merge keys; duplicate keys are an error
    doc = loadYaml(text, { schema: CORE_SCHEMA, filename: path });
  } catch (e) {
    throw new Error(`${path}: not valid YAML: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${path}: expected a ${CONFIG_KIND} mapping, got ${kindOf(doc)}`);
  const obj = doc as Record<string, unknown>;
  if (obj.apiVersion !== CONFIG_API_VERSION)
    throw new Error(`${path}: apiVersion: ${obj.apiVersion === undefined ? 'missing' : JSON.stringify(obj.apiVersion)}, expected ${CONFIG_API_VERSION}`);
  if (obj.kind !== CONFIG_KIND) throw new Error(`${path}: kind: ${obj.kind === undefined ? 'missing' : JSON.stringify(obj.kind)}, expected ${CONFIG_KIND}`);
  const byKey = new Map(specs.filter((s) => s.key !== 'config').map((s) => [s.key, s]));
  const out = new Map<string, string | boolean>();
  for (const [key, v] of Object.entries(obj)) {
    if (key === 'apiVersion' || key === 'kind') continue;
    const spec = byKey.get(key);
    if (!spec) {
      if (key === 'config') throw new Error(`${path}: config: a config file cannot name another one`);
      const near = nearest(key, [...byKey.keys()]);
      throw new Error(
        `${path}: unknown key ${JSON.stringify(key)}${near ? ` (did you mean ${near}?)` : ''}; the keys are the flags of weir daemon in camelCase`,
      );
    }
    out.set(key, flagText(`${path}: ${key}`, spec, v));
  }
  return out;
}
