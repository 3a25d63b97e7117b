// dataplane/instance: which weir instance (<bpf-root>/weir/<instance>) a process means when
// --instance is not given. A simulated node (`ip netns exec NODE ...`) defaults to its
// network namespace's name, so two of them on one machine never share a pin directory; a
// real node and the DaemonSet (PID 1's network namespace, or an unnamed one) use `default`.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { nsId, sameNamespace, type NsId } from './namespaces.js';

export const DEFAULT_INSTANCE = 'default';
/** where `ip netns add` binds named network namespaces */
export const NETNS_DIR = '/run/netns';

const INSTANCE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function isInstanceName(name: string): boolean {
  return INSTANCE_RE.test(name);
}

export function checkInstanceName(name: string): void {
  if (!isInstanceName(name)) throw new Error(`bad --instance ${JSON.stringify(name)}: use letters, digits, '-', '_', '.'`);
}

/** `ip netns identify`: the names whose nsfs file is the namespace `self`, sorted. */
export function netnsNamesOf(self: NsId, named: ReadonlyArray<readonly [string, NsId]>): string[] {
  return named
    .filter(([, id]) => id.dev === self.dev && id.ino === self.ino)
    .map(([n]) => n)
    .sort();
}

/**
 * The default instance: the network namespace's name when the process runs in a named
 * namespace that is not PID 1's (initNetns false, or unknown without permission to look);
 * otherwise `default`. Several names for one namespace: the first in sort order.
 */
export function chooseDefaultInstance(names: readonly string[], initNetns: boolean | undefined): string {
  if (initNetns === true || names.length === 0) return DEFAULT_INSTANCE;
  const name = names[0]!;
  if (!isInstanceName(name)) throw new Error(`this network namespace's name ${JSON.stringify(name)} is not a valid instance name: pass --instance NAME`);
  return name;
}

/** The names under /run/netns of this process's network namespace. */
export function ownNetnsNames(dir = NETNS_DIR): string[] {
  const self = nsId('/proc/self/ns/net');
  if (!self) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const named = names.flatMap((n) => {
    const id = nsId(join(dir, n));
    return id ? [[n, id] as const] : [];
  });
  return netnsNamesOf(self, named);
}

/** --instance when not given: see chooseDefaultInstance. */
export function defaultInstance(): string {
  return chooseDefaultInstance(ownNetnsNames(), sameNamespace('/proc/self/ns/net', '/proc/1/ns/net'));
}

/** The instances under <bpfRoot>/weir, sorted ([] when there is no such directory). */
export function instancesUnder(bpfRoot: string): string[] {
  try {
    return readdirSync(join(bpfRoot, 'weir'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

/**
 * The CLI's instance when --instance is not given: the default one if it exists, else the
 * only one there is (weir's state read from the host for a simulated node); with several,
 * an error naming them. `preferred` is returned when nothing exists (the caller reports it).
 */
export function chooseCliInstance(preferred: string, existing: readonly string[], where: string): string {
  if (existing.includes(preferred) || existing.length === 0) return preferred;
  if (existing.length === 1) return existing[0]!;
  throw new Error(`several weir instances under ${where} (${existing.join(', ')}): choose one with --instance`);
}
