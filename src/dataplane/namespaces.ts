// dataplane/namespaces: which Linux namespaces this process shares with PID 1, by comparing
// the nsfs inodes of /proc/<pid>/ns/<kind> (what `ip netns identify` and nsenter compare).
// Read by the bpffs root choice (mount namespace) and the default instance (network namespace).

import { statSync } from 'node:fs';

export interface NsId {
  dev: number;
  ino: number;
}

/** The identity of a namespace file (/proc/<pid>/ns/<kind>, a /run/netns bind), or undefined if unreadable. */
export function nsId(path: string): NsId | undefined {
  try {
    const s = statSync(path);
    return { dev: s.dev, ino: s.ino };
  } catch {
    return undefined;
  }
}

/** True if two namespace files name the same namespace; undefined when one cannot be read (no permission). */
export function sameNamespace(a: string, b: string): boolean | undefined {
  const x = nsId(a);
  const y = nsId(b);
  if (!x || !y) return undefined;
  return x.dev === y.dev && x.ino === y.ino;
}
