// src/bpf: running attach calls inside a network namespace. Interface indexes and TC/XDP
// attachment resolve in the calling thread's netns, so the JS thread steps in, runs one
// synchronous function, and steps back out before anything else can run.

import { native } from './errors.js';
import { addon } from './native.js';

/** A netns name (as `ip netns add` creates under /run/netns) or a path to an ns file. */
export function netnsPath(netns: string): string {
  return netns.startsWith('/') ? netns : `/run/netns/${netns}`;
}

export function withNetns<T>(netns: string | undefined, f: () => T): T {
  if (netns === undefined) return f();
  const saved = native(() => addon.netnsEnter(netnsPath(netns)));
  try {
    return f();
  } finally {
    native(() => addon.netnsRestore(saved));
  }
}

/** An interface index from a name or an index (checked only for being a positive integer). */
export function ifindexOf(iface: string | number): number {
  if (typeof iface === 'number') {
    if (!Number.isInteger(iface) || iface <= 0) throw new RangeError(`bad ifindex ${iface}`);
    return iface;
  }
  return native(() => addon.ifNameToIndex(iface));
}

/** The calling thread's network namespace cookie: what bpf_get_netns_cookie() returns to a
 *  program running there (the socket LB tells the host netns apart by it). */
export function netnsCookie(): bigint {
  return native(() => addon.netnsCookie());
}
