// cli/state: finds a node's pinned weir state (<bpf-root>/weir/<instance>) and opens its
// maps read-only in intent: the CLI inspects what the daemon programmed, with no daemon
// round-trip. Missing state, a non-bpffs root or no permission become one readable line.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../bpf/index.js';
import { CliError } from './output.js';

export interface StateOptions {
  bpfRoot: string;
  instance: string;
  pinDir?: string;
}

export function pinDirOf(o: StateOptions): string {
  return o.pinDir ?? join(o.bpfRoot, 'weir', o.instance);
}

/** The pinned maps of an instance, by name. */
export function pinnedMapNames(o: StateOptions): string[] {
  const dir = pinDirOf(o);
  if (!existsSync(dir)) throw new CliError(`no weir state at ${dir} (is weir running on this node? try --bpf-root / --instance)`);
  return readdirSync(dir)
    .filter((n) => n.startsWith('weir_') && statSync(join(dir, n)).isFile())
    .sort();
}

export function openMap(o: StateOptions, name: string): BpfMap {
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
