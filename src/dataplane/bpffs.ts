// dataplane/bpffs: where the pins live. Finds the bpffs for the default --bpf-root
// (/sys/fs/bpf) from wherever weir runs (the node's mount namespace, or the private one
// `ip netns exec` creates), mounts it when the node has none (as Cilium and Calico do), and
// prepares <bpf-root>/weir/<instance>. Used by the daemon (may mount) and the CLI (never does).

import { execFileSync } from 'node:child_process';
import { constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, statfsSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { checkInstanceName } from './instance.js';
import { nsId, sameNamespace } from './namespaces.js';

export const DEFAULT_BPF_ROOT = '/sys/fs/bpf';
/** statfs f_type of a bpffs (linux/magic.h BPF_FS_MAGIC), what libbpf checks too */
const BPF_FS_MAGIC = 0xcafe4a11;

/**
 * The default root as the process `pid` sees it: the path walks into that process's root
 * directory, so it reaches its mount namespace from any other (the kernel resolves
 * /proc/<pid>/root like a chroot). This is how pins made under `ip netns exec` land in the
 * node's bpffs.
 */
export function bpfRootOf(pid: number): string {
  return `/proc/${pid}/root${DEFAULT_BPF_ROOT}`;
}
/** The default root as PID 1 sees it. */
export const INIT_BPF_ROOT = bpfRootOf(1);

/** True if `path` is on a bpffs (statfs: follows symlinks and /proc/<pid>/root). */
export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * A process in the node's mount namespace: the one that outlives weir, where a bpffs must
 * be mounted for the pins to survive the process. PID 1 when its namespace can be read.
 * Some sandboxes (a firecracker init, this project's CI machines among them) hide PID 1's
 * /proc/1/ns even from root; then the nearest ancestor whose mount namespace differs from
 * ours: the shell `ip netns exec` was started from. `same`: we are in it ourselves (PID 1's
 * namespace, or no readable ancestor in another one). undefined: nothing could be read.
 */
export interface NodeMountNs {
  pid: number;
  same: boolean;
}

/** The parent pid of `pid` from /proc/<pid>/stat (undefined once it is gone). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

export function nodeMountNs(
  same: (a: string, b: string) => boolean | undefined = sameNamespace,
  parent = parentOf,
  processes: () => number[] = allPids,
): NodeMountNs | undefined {
  const self = '/proc/self/ns/mnt';
  const init = same(self, '/proc/1/ns/mnt');
  if (init !== undefined) return { pid: 1, same: init };
  let readable = false;
  for (let pid = parent(process.pid), hops = 0; pid !== undefined && pid > 1 && hops < 64; pid = parent(pid), hops++) {
    const s = same(self, `/proc/${pid}/ns/mnt`);
    if (s === false) return { pid, same: false };
    if (s === true) readable = true;
  }
  if (readable) return { pid: process.pid, same: true };
  // no readable parent (started detached, reparented to a hidden PID 1): the mount namespace
  // most processes share is the node's
  const byNs = new Map<string, number[]>();
  for (const pid of processes()) {
    const id = nsId(`/proc/${pid}/ns/mnt`);
    if (!id) continue;
    const key = `${id.dev}:${id.ino}`;
    byNs.set(key, [...(byNs.get(key) ?? []), pid]);
  }
  const best = [...byNs.values()].sort((a, b) => b.length - a.length)[0];
  if (!best) return undefined;
  return same(self, `/proc/${best[0]}/ns/mnt`) ? { pid: process.pid, same: true } : { pid: best[0]!, same: false };
}

function allPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .map(Number);
  } catch {
    return [];
  }
}

/** What the choice of the default root depends on (bpfRootFacts reads them). */
export interface BpfRootFacts {
  /** /sys/fs/bpf in this process's mount namespace is a bpffs */
  here: boolean;
  /** the node's mount namespace (nodeMountNs), undefined when it cannot be found */
  node: NodeMountNs | undefined;
  /** /sys/fs/bpf in the node's mount namespace is a bpffs */
  nodeBpffs: boolean;
}

export interface BpfRootChoice {
  path: string;
  /** here: our own /sys/fs/bpf; node: the node's, through /proc/<pid>/root */
  via: 'here' | 'node';
}

/**
 * (a) our /sys/fs/bpf when it is a bpffs; (b) else the node's, when we are in another mount
 * namespace (`ip netns exec` remounts /sys and hides the node's bpffs); else none: the
 * daemon mounts one in the node's mount namespace (ensureBpfRoot), the CLI reports no state.
 */
export function chooseBpfRoot(f: BpfRootFacts): BpfRootChoice | undefined {
  if (f.here) return { path: DEFAULT_BPF_ROOT, via: 'here' };
  if (f.node && !f.node.same && f.nodeBpffs) return { path: bpfRootOf(f.node.pid), via: 'node' };
  return undefined;
}

export function bpfRootFacts(): BpfRootFacts {
  const node = nodeMountNs();
  return { here: isBpffs(DEFAULT_BPF_ROOT), node, nodeBpffs: node !== undefined && !node.same && isBpffs(bpfRootOf(node.pid)) };
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
 * Mounts a bpffs at /sys/fs/bpf in the node's mount namespace, the one that outlives weir: a
 * bpffs mounted only in `ip netns exec`'s private namespace would die with the process and
 * detach every pinned link. A multi-threaded process (node) cannot setns(CLONE_NEWNS)
 * itself, so a child nsenter does it. Returns the command line run.
 */
export function mountBpffsInNode(node: NodeMountNs): string {
  const mount = ['mount', '-t', 'bpf', 'bpf', DEFAULT_BPF_ROOT];
  const argv = node.same ? mount : ['nsenter', `--mount=/proc/${node.pid}/ns/mnt`, '--', ...mount];
  try {
    execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    const why = stderr || (e as Error).message.split('\n')[0];
    throw new Error(`no bpffs at ${DEFAULT_BPF_ROOT} and \`${argv.join(' ')}\` failed (${why}); mount one or pass --bpf-root DIR`, { cause: e });
  }
  return argv.join(' ');
}

/**
 * The daemon's default root: found (chooseBpfRoot), or mounted in the node's mount namespace
 * and then found. In a container PID 1 is the container's own init: deploy/weir.yaml mounts
 * the host's /sys/fs/bpf with Bidirectional propagation, so a bpffs weir mounts there
 * reaches the host too (see docs/daemon.md).
 */
export function ensureBpfRoot(facts: () => BpfRootFacts = bpfRootFacts, mount: (node: NodeMountNs) => string = mountBpffsInNode): BpfRootResolution {
  const before = facts();
  const found = chooseBpfRoot(before);
  if (found) return found;
  // without a readable mount namespace we cannot tell the node's from a private one that
  // would take the pins with it
  if (!before.node)
    throw new Error(
      `no bpffs at ${DEFAULT_BPF_ROOT}, and neither PID 1's nor any parent's mount namespace can be read, so weir cannot mount one where it ` +
        `outlives weir: mount one on the node (mount -t bpf bpf ${DEFAULT_BPF_ROOT}) or pass --bpf-root DIR`,
    );
  const mounted = mount(before.node);
  const after = chooseBpfRoot(facts());
  if (!after) throw new Error(`ran \`${mounted}\` but no bpffs is visible at ${DEFAULT_BPF_ROOT} or ${bpfRootOf(before.node.pid)}; pass --bpf-root DIR`);
  return { ...after, mounted };
}

/**
 * A root reached through another process's /proc/<pid>/root stays valid only while that
 * process lives (an ancestor shell may exit while the daemon runs). The daemon holds the
 * directory open and uses /proc/self/fd/<fd>, which reaches the same bpffs for as long as
 * the daemon lives. A root in our own namespace, or PID 1's, is returned as it is.
 */
export function holdBpfRoot(root: string): string {
  if (!/^\/proc\/\d+\/root\//.test(root) || root.startsWith('/proc/1/')) return root;
  const fd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  return `/proc/self/fd/${fd}`;
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
