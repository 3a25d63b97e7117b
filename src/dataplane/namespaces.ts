// dataplane/namespaces: which Linux namespaces this process shares with PID 1, by comparing
// the nsfs inodes of /proc/<pid>/ns/<kind> (what `ip netns identify` and nsenter compare).
// Read by the bpffs root choice (mount namespace), the default instance (network namespace)
// and the --host-proc check (PID namespace).

import { readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';

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

/** The initial PID namespace's nsfs inode (PROC_PID_INIT_INO, include/linux/proc_ns.h). */
export const INIT_PID_NS_INO = 0xeffffffc;

export interface ProcView {
  /** our own PID namespace is the kernel's initial one (the node's, without containers) */
  initialPidNs: boolean | undefined;
  /** `procDir` numbers processes as our own PID namespace does: it shows that namespace only */
  procIsOwnPidNs: boolean | undefined;
}

/**
 * Which PID namespace a /proc mount shows, relative to ours. A pod's /proc is its own
 * namespace's; the node's, bind-mounted (--host-proc), numbers us differently. <proc>/self
 * names our pid in the mount's namespace, so two mounts of one namespace agree on it; that
 * needs no access to another process (reading /proc/1/ns/pid may be refused).
 */
export function procView(procDir: string, ownProc = '/proc'): ProcView {
  const self = (p: string) => {
    try {
      return readlinkSync(join(p, 'self'));
    } catch {
      return undefined;
    }
  };
  const mine = self(ownProc);
  const theirs = self(procDir);
  const ns = nsId(join(ownProc, 'self', 'ns', 'pid'));
  return {
    initialPidNs: ns ? ns.ino === INIT_PID_NS_INO : undefined,
    procIsOwnPidNs: mine !== undefined && theirs !== undefined ? mine === theirs : undefined,
  };
}

/** True when the processes under `procDir` are only those of a PID namespace of our own (weir in a pod, the node's /proc not mounted). */
export function procBlindToNode(procDir: string, ownProc = '/proc'): boolean {
  const v = procView(procDir, ownProc);
  return v.procIsOwnPidNs === true && v.initialPidNs === false;
}

/** What an operator is told when `hostProc` cannot show the node's processes (procBlindToNode), else undefined. */
export function hostProcBlindness(hostProc: string): string | undefined {
  if (!procBlindToNode(hostProc)) return undefined;
  return (
    'weir runs in a PID namespace of its own and --host-proc shows only that one: the socket clean-up cannot see the pods ' +
    '(connected UDP sockets to removed backends stay) nor the kube-proxy check a kube-proxy; ' +
    "mount the node's /proc (hostPath /proc at /nodeproc) and pass --host-proc=/nodeproc"
  );
}
