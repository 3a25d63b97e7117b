// dataplane/bpffs: where the pins live. Finds the bpffs for the default --bpf-root
// (/sys/fs/bpf) from wherever weir runs (the node's mount namespace, or the private one
// `ip netns exec` creates), mounts it when the node has none (as Cilium and Calico do), and
// prepares <bpf-root>/weir/<instance>. Used by the daemon (may mount) and the CLI (never does).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, statfsSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { checkInstanceName } from './instance.js';
import { sameNamespace } from './namespaces.js';

export const DEFAULT_BPF_ROOT = '/sys/fs/bpf';
/**
 * The default root as PID 1 sees it: the path walks into PID 1's root directory, so it
 * reaches PID 1's mount namespace from any other (the kernel resolves /proc/1/root like a
 * chroot). This is how pins made under `ip netns exec` land in the node's bpffs.
 */
export const INIT_BPF_ROOT = `/proc/1/root${DEFAULT_BPF_ROOT}`;
/** statfs f_type of a bpffs (linux/magic.h BPF_FS_MAGIC), what libbpf checks too */
const BPF_FS_MAGIC = 0xcafe4a11;

/** True if `path` is on a bpffs (statfs: follows symlinks and /proc/<pid>/root). */
export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** What the choice of the default root depends on (bpfRootFacts reads them). */
export interface BpfRootFacts {
  /** /sys/fs/bpf in this process's mount namespace is a bpffs */
  here: boolean;
  /** this process is in PID 1's mount namespace (undefined: /proc/1/ns/mnt unreadable) */
  initMountNs: boolean | undefined;
  /** /sys/fs/bpf in PID 1's mount namespace is a bpffs */
  init: boolean;
}

export interface BpfRootChoice {
  path: string;
  /** here: our own /sys/fs/bpf; pid1: PID 1's, through /proc/1/root */
  via: 'here' | 'pid1';
}

/**
 * (a) our /sys/fs/bpf when it is a bpffs; (b) else PID 1's, when we are in another mount
 * namespace (`ip netns exec` remounts /sys and hides the node's bpffs); else none: the
 * daemon mounts one in PID 1's mount namespace (ensureBpfRoot), the CLI reports no state.
 */
export function chooseBpfRoot(f: BpfRootFacts): BpfRootChoice | undefined {
  if (f.here) return { path: DEFAULT_BPF_ROOT, via: 'here' };
  if (f.initMountNs === false && f.init) return { path: INIT_BPF_ROOT, via: 'pid1' };
  return undefined;
}

export function bpfRootFacts(): BpfRootFacts {
  return { here: isBpffs(DEFAULT_BPF_ROOT), initMountNs: sameNamespace('/proc/self/ns/mnt', '/proc/1/ns/mnt'), init: isBpffs(INIT_BPF_ROOT) };
}

/** The default root if a bpffs is there, without mounting anything (the CLI). */
export function findBpfRoot(): BpfRootChoice | undefined {
  return chooseBpfRoot(bpfRootFacts());
}

export interface BpfRootResolution extends BpfRootChoice {
  /** set when weir mounted the bpffs: the command it ran */
  mounted?: string;
}

/**
 * Mounts a bpffs at /sys/fs/bpf in PID 1's mount namespace, the one that outlives weir: a
 * bpffs mounted only in `ip netns exec`'s private namespace would die with the process and
 * detach every pinned link. A multi-threaded process (node) cannot setns(CLONE_NEWNS)
 * itself, so a child nsenter does it. Returns the command line run.
 */
export function mountBpffsInInit(initMountNs: boolean): string {
  const mount = ['mount', '-t', 'bpf', 'bpf', DEFAULT_BPF_ROOT];
  const argv = initMountNs ? mount : ['nsenter', '--target', '1', '--mount', '--', ...mount];
  try {
    execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    const why = stderr || (e as Error).message.split('\n')[0];
    throw new Error(`no bpffs at ${DEFAULT_BPF_ROOT} and \`${argv.join(' ')}\` failed (${why}); mount one or pass --bpf-root DIR`);
  }
  return argv.join(' ');
}

/**
 * The daemon's default root: found (chooseBpfRoot), or mounted in PID 1's mount namespace
 * and then found. In a container PID 1 is the container's own init: deploy/weir.yaml mounts
 * the host's /sys/fs/bpf with Bidirectional propagation, so a bpffs weir mounts there
 * reaches the host too (see docs/daemon.md).
 */
export function ensureBpfRoot(facts: () => BpfRootFacts = bpfRootFacts, mount: (initMountNs: boolean) => string = mountBpffsInInit): BpfRootResolution {
  const before = facts();
  const found = chooseBpfRoot(before);
  if (found) return found;
  // without /proc/1/ns/mnt we cannot tell PID 1's namespace from a private one that would
  // take the pins with it; and nsenter --target 1 would fail the same way
  if (before.initMountNs === undefined)
    throw new Error(
      `no bpffs at ${DEFAULT_BPF_ROOT}, and /proc/1/ns/mnt cannot be read, so weir cannot mount one where it outlives weir: ` +
        `mount one on the node (mount -t bpf bpf ${DEFAULT_BPF_ROOT}) or pass --bpf-root DIR`,
    );
  const mounted = mount(before.initMountNs);
  const after = chooseBpfRoot(facts());
  if (!after) throw new Error(`ran \`${mounted}\` but no bpffs is visible at ${DEFAULT_BPF_ROOT} or ${INIT_BPF_ROOT}; pass --bpf-root DIR`);
  return { ...after, mounted };
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The filesystem type `path` lives on, from /proc/mounts (longest mount point prefix). */
export function mountTypeOf(path: string, mounts = readFileSync('/proc/mounts', 'utf8')): string | undefined {
  let best: { point: string; type: string } | undefined;
  for (const line of mounts.split('\n')) {
    const [, p, type] = line.split(' ');
    if (!p || !type) continue;
    const point = unescapeMount(p);
    const inside = path === point || path.startsWith(point.endsWith(sep) ? point : point + sep) || point === '/';
    if (inside && (!best || point.length >= best.point.length)) best = { point, type };
  }
  return best?.type;
}

/** <bpfRoot>/weir/<instance>, created; throws a readable error unless bpfRoot is on a bpffs. */
export function preparePinDir(bpfRoot: string, instance: string): string {
  checkInstanceName(instance);
  if (!existsSync(bpfRoot)) throw new Error(`--bpf-root ${bpfRoot} does not exist (mount a bpffs there: mount -t bpf bpf ${bpfRoot})`);
  // statfs, not realpath + /proc/mounts: realpath would turn /proc/1/root/sys/fs/bpf into
  // our own /sys/fs/bpf, and PID 1's mounts are not in our /proc/mounts
  if (!isBpffs(bpfRoot)) {
    const type = mountTypeOf(realpathSync(bpfRoot));
    throw new Error(`--bpf-root ${bpfRoot} is not a bpffs mount (it is on ${type ?? 'an unknown filesystem'}); mount one: mount -t bpf bpf ${bpfRoot}`);
  }
  const dir = join(resolve(bpfRoot), 'weir', instance);
  mkdirSync(join(dir, 'links'), { recursive: true });
  return dir;
}
