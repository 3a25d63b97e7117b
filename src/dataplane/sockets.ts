// dataplane/sockets: where connected UDP sockets to a removed backend can live, and running
// the weir_sock_destroy iterator there. A socket iterator walks only the network namespace
// it is opened in, so it runs once per namespace: the daemon's own (the host) and every
// namespace a process of the socket-LB cgroup tree lives in (the pods). Namespaces are told
// apart by their nsfs inode. One run covers both families: the kernel's UDP table holds IPv4 and
// IPv6 sockets alike, and the program matches each against weir_sock_destroy4 or _6.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runIterator, type BpfProgram } from '../bpf/index.js';
import { type Logger, errText } from '../log.js';

/** Pids of every process in a cgroup2 directory and its descendants. */
export function cgroupPids(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string, depth: number) => {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) out.push(Number(l));
    } catch {
      return; // gone meanwhile
    }
    if (depth > 32) return;
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(d, e.name), depth + 1);
  };
  walk(dir, 0);
  return out;
}

/** One ns file path per distinct network namespace: our own first, then those of `pids`. */
export function distinctNetns(pids: Iterable<number>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  const add = (path: string) => {
    try {
      const st = statSync(path);
      const id = `${st.dev}:${st.ino}`;
      if (seen.has(id)) return;
      seen.add(id);
      out.push(path);
    } catch {
      /* the process exited */
    }
  };
  add('/proc/self/ns/net');
  for (const pid of pids) add(`/proc/${pid}/ns/net`);
  return out;
}

/** Runs the iterator in the host netns and in each namespace of the cgroup's processes. */
export function destroySocketsEverywhere(prog: BpfProgram, cgroupDir: string | null, log: Logger): number {
  const namespaces = distinctNetns(cgroupDir ? cgroupPids(cgroupDir) : []);
  let ran = 0;
  for (const ns of namespaces) {
    try {
      runIterator(prog, ns === '/proc/self/ns/net' ? undefined : ns);
      ran++;
    } catch (e) {
      // a process that exited between the listing and the run is not an error worth more
      log.debug('socket iterator failed', { netns: ns, error: errText(e) });
    }
  }
  return ran;
}
