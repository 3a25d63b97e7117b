// cli/state: finds a node's pinned weir state (<bpf-root>/weir/<instance>) and opens its
// maps read-only in intent: the CLI inspects what the daemon programmed, with no daemon
// round-trip. Without flags it finds what the daemon would use, from the host or from
// `ip netns exec` (never mounting anything). No state (no bpffs, no pin directory, no weir
// maps in it) is one NoStateError line for every command; no permission is one line too.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BpfMap } from '../bpf/index.js';
import { DEFAULT_BPF_ROOT, findBpfRoot, INIT_BPF_ROOT } from '../dataplane/bpffs.js';
import { chooseCliInstance, defaultInstance, instancesUnder } from '../dataplane/instance.js';
import { CliError, NoStateError } from './output.js';

export interface StateOptions {
  /** undefined: the daemon's default root, if a bpffs is there (findBpfRoot) */
  bpfRoot?: string;
  /** undefined: the daemon's default instance, else the only one under the root */
  instance?: string;
  pinDir?: string;
}

/** The three options every state-reading command takes. */
export function stateOptions(cmd: Command): Command {
  return cmd
    .option(
      '--bpf-root <dir>',
      `bpffs mount holding weir/<instance> (default: ${DEFAULT_BPF_ROOT}, or the node's through ${INIT_BPF_ROOT} or /proc/<pid>/root of a parent)`,
    )
    .option(
      '--instance <name>',
      "weir instance on this node (default: the daemon's, i.e. the netns name under `ip netns exec`, else 'default'; if missing, the only one there)",
    )
    .option('--pin-dir <dir>', 'pin directory (overrides --bpf-root/--instance)');
}

/** Where the command looked: the pin directory, and the instance and root when it derived it. */
interface PinDir {
  dir: string;
  instance?: string;
  root?: string;
}

const resolved = new WeakMap<StateOptions, PinDir>();

function resolvePinDir(o: StateOptions): PinDir {
  if (o.pinDir) return { dir: o.pinDir };
  const root = o.bpfRoot ?? findBpfRoot()?.path;
  // no bpffs at all: nothing can be pinned, so it is the same "no state" as an empty root
  if (!root) return { dir: join(DEFAULT_BPF_ROOT, 'weir', o.instance ?? defaultInstance()), instance: o.instance ?? defaultInstance(), root: DEFAULT_BPF_ROOT };
  let instance = o.instance;
  if (instance === undefined) {
    try {
      instance = chooseCliInstance(defaultInstance(), instancesUnder(root), join(root, 'weir'));
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  return { dir: join(root, 'weir', instance), instance, root };
}

function pinDirInfo(o: StateOptions): PinDir {
  let p = resolved.get(o);
  if (p === undefined) {
    p = resolvePinDir(o);
    resolved.set(o, p);
  }
  return p;
}

export function pinDirOf(o: StateOptions): string {
  return pinDirInfo(o).dir;
}

/** The one line every state-reading command prints when the instance has no pins (exit EXIT_NO_STATE). */
export function noStateMessage(p: PinDir): string {
  const where = p.instance !== undefined ? `for instance ${JSON.stringify(p.instance)} under ${join(p.root!, 'weir')}` : `at ${p.dir}`;
  return `no weir state ${where} (is the daemon running on this node? ${p.instance !== undefined ? '--instance/--bpf-root' : '--pin-dir'})`;
}

const pinnedNames = new WeakMap<StateOptions, string[]>();

/**
 * The pinned maps of an instance, by name. Every state-reading command goes through here
 * first: no pin directory, or one without weir maps, is the NoStateError line.
 */
export function pinnedMapNames(o: StateOptions): string[] {
  let names = pinnedNames.get(o);
  if (names !== undefined) return names;
  const p = pinDirInfo(o);
  let entries: string[] = [];
  try {
    entries = readdirSync(p.dir);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EPERM' || code === 'EACCES') throw new CliError(`cannot read ${p.dir}: ${code} (run as root, or with CAP_BPF)`);
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new CliError(`cannot read ${p.dir}: ${(e as Error).message.split('\n')[0]}`);
  }
  names = entries.filter((n) => n.startsWith('weir_') && statSync(join(p.dir, n)).isFile()).sort();
  if (names.length === 0) throw new NoStateError(noStateMessage(p));
  pinnedNames.set(o, names);
  return names;
}

/** Fails with the NoStateError line unless the instance has pinned state. */
export function requireState(o: StateOptions): void {
  pinnedMapNames(o);
}

/**
 * Runs `f` with `open` (a pinned map of `o` by name, opened on first use) and the names pinned
 * there, read once; every map `f` opened is closed afterwards.
 */
export function withOpenMaps<R>(o: StateOptions, f: (open: (name: string) => BpfMap, pinned: ReadonlySet<string>) => R): R {
  const opened = new Map<string, BpfMap>();
  const open = (name: string): BpfMap => {
    let m = opened.get(name);
    if (!m) opened.set(name, (m = openMap(o, name)));
    return m;
  };
  try {
    return f(open, new Set(pinnedMapNames(o)));
  } finally {
    for (const m of opened.values()) m.close();
  }
}

export function openMap(o: StateOptions, name: string): BpfMap {
  requireState(o);
  const path = join(pinDirOf(o), name);
  if (!existsSync(path)) throw new CliError(`map ${name} is not pinned at ${pinDirOf(o)} (weir state from another version, or not started yet)`);
  try {
    return BpfMap.openPinned(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EPERM' || code === 'EACCES') throw new CliError(`cannot open ${path}: ${code} (run as root, or with CAP_BPF)`);
    throw new CliError(`cannot open ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
}
