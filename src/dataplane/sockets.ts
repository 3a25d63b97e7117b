// dataplane/sockets: where connected UDP sockets to a removed backend can live, and running
// the weir_sock_destroy iterator there. A socket iterator walks only the network namespace
// it is opened in, so it runs once per namespace: the daemon's own (the host) and every
// namespace a process of the socket-LB cgroup tree lives in (the pods), found through the
// node's /proc (cgroup-members.ts), which a weir in a pod sees only where --host-proc mounts
// it. Namespaces are told apart by their nsfs inode. One run covers both families: the
// kernel's UDP table holds IPv4 and IPv6 sockets alike, and the program matches each against
// weir_sock_destroy4 or _6.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { runIterator, type BpfProgram } from '../bpf/index.js';
import { type Logger, errText } from '../log.js';
import type { CgroupMembers } from './cgroup-members.js';

/** One ns file path per distinct network namespace: our own first, then those of `pids` (as `hostProc` numbers them). */
export function distinctNetns(pids: Iterable<number>, hostProc = '/proc'): string[] {
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
  for (const pid of pids) add(join(hostProc, String(pid), 'ns', 'net'));
  return out;
}

/** Runs the iterator in the host netns and in each namespace of the cgroup's processes. */
export function destroySocketsEverywhere(prog: BpfProgram, members: CgroupMembers | null, log: Logger): number {
  const namespaces = members ? distinctNetns(members.pids(), members.hostProc) : distinctNetns([]);
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
