// cli/state: finds a node's pinned weir state (<bpf-root>/weir/<instance>) and opens its
// maps read-only in intent: the CLI inspects what the daemon programmed, with no daemon
// round-trip. Without flags it finds what the daemon would use, from the host or from
// `ip netns exec` (never mounting anything). Missing state, a non-bpffs root or no
// permission become one readable line.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BpfMap } from '../bpf/index.js';
import { DEFAULT_BPF_ROOT, findBpfRoot, INIT_BPF_ROOT } from '../dataplane/bpffs.js';
import { chooseCliInstance, defaultInstance, instancesUnder } from '../dataplane/instance.js';
import { CliError } from './output.js';

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

const resolved = new WeakMap<StateOptions, string>();

function resolvePinDir(o: StateOptions): string {
  if (o.pinDir) return o.pinDir;
  const root = o.bpfRoot ?? findBpfRoot()?.path;
  if (!root) throw new CliError(`no weir state: no bpffs at ${DEFAULT_BPF_ROOT} here or in the node's mount namespace (is weir running? try --bpf-root)`);
  let instance = o.instance;
  if (instance === undefined) {
    try {
      instance = chooseCliInstance(defaultInstance(), instancesUnder(root), join(root, 'weir'));
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  return join(root, 'weir', instance);
}

export function pinDirOf(o: StateOptions): string {
  let dir = resolved.get(o);
  if (dir === undefined) {
    dir = resolvePinDir(o);
    resolved.set(o, dir);
  }
  return dir;
}

/** The pinned maps of an instance, by name. */
export function pinnedMapNames(o: StateOptions): string[] {
  const dir = pinDirOf(o);
  if (!existsSync(dir)) throw new CliError(`no weir state at ${dir} (is weir running on this node? try --bpf-root / --instance)`);
  return readdirSync(dir)
    .filter((n) => n.startsWith('weir_') && statSync(join(dir, n)).isFile())
    .sort();
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
  const dir = pinDirOf(o);
  if (!existsSync(dir)) throw new CliError(`no weir state at ${dir} (is weir running on this node? try --bpf-root / --instance)`);
  const path = join(dir, name);
  if (!existsSync(path)) throw new CliError(`map ${name} is not pinned at ${pinDirOf(o)} (weir state from another version, or not started yet)`);
  try {
    return BpfMap.openPinned(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EPERM' || code === 'EACCES') throw new CliError(`cannot open ${path}: ${code} (run as root, or with CAP_BPF)`);
    throw new CliError(`cannot open ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
}
