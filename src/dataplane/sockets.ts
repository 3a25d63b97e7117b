// dataplane/sockets: where connected UDP sockets to a removed backend can live, and running
// the weir_sock_destroy iterator there. A socket iterator walks only the network namespace
// it is opened in, so it runs once per namespace: the daemon's own (the host) and every
// namespace a process of the socket-LB cgroup tree lives in (the pods), found through the
// node's /proc (cgroup-members.ts), which a weir in a pod sees only where --host-proc mounts
// it. Namespaces are told apart by their nsfs inode. One run covers both families: the
// kernel's UDP table holds IPv4 and IPv6 sockets alike, and the program matches each against
// weir_sock_destroy4 or _6.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runIterator, type BpfProgram } from '../bpf/index.js';
import { type Logger, errText } from '../log.js';
import type { CgroupMembers } from './cgroup-members.js';

/** The distinct network namespaces, and the ns files that exist but could not be read. */
export interface NetnsList {
  /** one ns file path per distinct network namespace: our own first */
  paths: string[];
  /** ns files refused (EACCES without CAP_SYS_PTRACE), by path: their sockets are out of reach */
  refused: Array<{ path: string; code: string }>;
}

/** Our own network namespace and those of `pids` (as `hostProc` numbers them), each once. */
export function distinctNetns(pids: Iterable<number>, hostProc = '/proc'): NetnsList {
  const seen = new Set<string>();
  const out: NetnsList = { paths: [], refused: [] };
  const add = (path: string) => {
    try {
      const st = statSync(path);
      const id = `${st.dev}:${st.ino}`;
      if (seen.has(id)) return;
      seen.add(id);
      out.paths.push(path);
    } catch (e) {
      // ENOENT/ESRCH: the process exited meanwhile; anything else hides a pod from the clean-up
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      if (code !== 'ENOENT' && code !== 'ESRCH') out.refused.push({ path, code });
    }
  };
  add('/proc/self/ns/net');
  for (const pid of pids) add(join(hostProc, String(pid), 'ns', 'net'));
  return out;
}

/** Runs the iterator in the host netns and in each namespace of the cgroup's processes. */
export function destroySocketsEverywhere(prog: BpfProgram, members: CgroupMembers | null, log: Logger): number {
  const { paths, refused } = members ? distinctNetns(members.pids(), members.hostProc) : distinctNetns([]);
  if (refused.length)
    log.warn('pod namespaces unreadable', { count: refused.length, first: refused[0]!.path, error: refused[0]!.code, needs: 'CAP_SYS_PTRACE' });
  let ran = 0;
  for (const ns of paths) {
    try {
      runIterator(prog, ns === '/proc/self/ns/net' ? undefined : ns);
      ran++;
    } catch (e) {
      // a process that exited between the listing and the run is not an error worth more; a
      // namespace still there that weir cannot enter (setns needs CAP_SYS_ADMIN) is
      if (existsSync(ns)) log.warn('socket iterator failed', { netns: ns, error: errText(e) });
      else log.debug('socket iterator failed', { netns: ns, error: errText(e) });
    }
  }
  return ran;
}
