// dataplane/cgroup-members: which processes of the node live in a cgroup2 subtree (the socket
// LB's --cgroup), read through the node's /proc (--host-proc), whatever PID and cgroup
// namespace weir runs in. The socket clean-up (sockets.ts) opens <host-proc>/<pid>/ns/net of each.
//
// cgroup.procs cannot tell in a pod: it numbers each process in the reader's PID namespace and
// prints 0 for one outside it (Linux 6.18: a pod's processes all read 0 to a weir in a PID
// namespace of its own). So the members are found the other way round: every pid of
// <host-proc> (numbered as the node numbers them, valid for <host-proc>/<pid>/...) whose
// /proc/<pid>/cgroup path lies in the subtree. That path is relative to the reader's cgroup
// namespace, private for a container on cgroup v2 (`0::/../../kubepods.slice/...`), so the
// subtree is written the same way: the cgroup2 mount's root as /proc/self/mountinfo shows it
// (also relative to our cgroup namespace, `/../../..` for the node's whole hierarchy) joined
// with the directory's path under that mount.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { type Logger, errText } from '../log.js';

/** A cgroup path relative to our cgroup namespace's root: `up` levels above it, then `names` down. */
export interface NsCgroupPath {
  up: number;
  names: string[];
}

/** `/../../a/b` -> {up: 2, names: [a, b]} ('.' and '..' folded; '..' above the names stays). */
export function parseNsCgroupPath(path: string): NsCgroupPath {
  const out: NsCgroupPath = { up: 0, names: [] };
  for (const s of path.split('/')) {
    if (s === '' || s === '.') continue;
    if (s !== '..') out.names.push(s);
    else if (out.names.length) out.names.pop();
    else out.up++;
  }
  return out;
}

/** The cgroup2 path of /proc/<pid>/cgroup text (the `0::` line), or undefined (no cgroup2). */
export function cgroup2PathOf(procCgroup: string): string | undefined {
  for (const line of procCgroup.split('\n')) if (line.startsWith('0::')) return line.slice(3);
  return undefined;
}

/** mountinfo escapes a space as \040 (and tab, newline, backslash alike). */
const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The cgroup2 mount holding `dir` (the longest mount point above it), from mountinfo text. */
export function cgroup2MountOf(dir: string, mountinfo: string): { mountPoint: string; root: string } | undefined {
  let best: { mountPoint: string; root: string } | undefined;
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right || right.split(' ')[0] !== 'cgroup2') continue;
    const f = left.split(' ');
    const root = unescapeMount(f[3] ?? '');
    const mountPoint = unescapeMount(f[4] ?? '');
    const rel = relative(mountPoint, dir);
    if (rel.startsWith('..') || (best && best.mountPoint.length >= mountPoint.length)) continue;
    best = { mountPoint, root };
  }
  return best;
}

/**
 * True when `p` lies in the subtree `target` (both relative to our cgroup namespace; `p` as
 * the kernel writes it: up to the lowest common ancestor, then down). `ancestors` are the
 * names from `target.up` levels above our namespace root down to it, needed only when `p`
 * climbs less than `target` does and `target` then names a branch.
 */
export function inSubtree(p: NsCgroupPath, target: NsCgroupPath, ancestors?: readonly string[]): boolean | undefined {
  // the kernel's path leaves our ancestors' line right after its last '..': a path climbing
  // higher than the target's never comes back under it
  if (p.up > target.up) return false;
  let below: readonly string[] = p.names;
  if (p.up < target.up) {
    // a target of '..' only is an ancestor of our root: whatever climbs less is below it
    if (target.names.length === 0) return true;
    if (!ancestors || ancestors.length < target.up) return undefined;
    below = [...ancestors.slice(0, target.up - p.up), ...p.names];
  }
  return target.names.every((n, i) => below[i] === n);
}

/** The processes of one cgroup2 subtree, as pids of the node's /proc. */
export class CgroupMembers {
  private target: NsCgroupPath | undefined;
  /** names from the target's top down to our cgroup namespace root, once looked for */
  private ancestors: string[] | null | undefined;
  private mount: { mountPoint: string; root: string } | undefined;
  private warned = false;

  constructor(
    readonly dir: string,
    readonly hostProc: string,
    private readonly log: Logger,
    private readonly ownProc = '/proc',
  ) {}

  /** Pids (numbered as `hostProc` numbers them) of every process in the subtree. */
  pids(): number[] {
    const target = this.subtree();
    if (!target) return [];
    let entries: string[];
    try {
      entries = readdirSync(this.hostProc).filter((n) => /^\d+$/.test(n));
    } catch (e) {
      this.warnOnce('host proc unreadable', { hostProc: this.hostProc, error: errText(e) });
      return [];
    }
    const out: number[] = [];
    for (const pid of entries) {
      let path: string | undefined;
      try {
        path = cgroup2PathOf(readFileSync(join(this.hostProc, pid, 'cgroup'), 'utf8'));
      } catch {
        continue; // exited meanwhile
      }
      if (path === undefined) continue;
      const p = parseNsCgroupPath(path);
      let inside = inSubtree(p, target, this.ancestors ?? undefined);
      if (inside === undefined && this.ancestors === undefined) {
        this.ancestors = this.findAncestors(target.up);
        inside = inSubtree(p, target, this.ancestors ?? undefined);
      }
      if (inside) out.push(Number(pid));
    }
    return out;
  }

  /** The subtree relative to our cgroup namespace, from the mount it is under. */
  private subtree(): NsCgroupPath | undefined {
    if (this.target) return this.target;
    let mountinfo: string;
    try {
      mountinfo = readFileSync(join(this.ownProc, 'self', 'mountinfo'), 'utf8');
    } catch (e) {
      this.warnOnce('cgroup members unknown', { cgroup: this.dir, error: errText(e) });
      return undefined;
    }
    this.mount = cgroup2MountOf(this.dir, mountinfo);
    if (!this.mount) {
      this.warnOnce('cgroup members unknown', { cgroup: this.dir, error: 'no cgroup2 mount holds it' });
      return undefined;
    }
    this.target = parseNsCgroupPath(`${this.mount.root}/${relative(this.mount.mountPoint, this.dir)}`);
    return this.target;
  }

  /**
   * Names from `up` levels above our cgroup namespace root down to it: the directory `up`
   * levels under a mount of the node's hierarchy whose cgroup.procs (below our own path)
   * lists our pid, which only our own cgroup numbers as we do. Null when not found.
   */
  private findAncestors(up: number): string[] | null {
    const mount = this.mount!;
    const root = parseNsCgroupPath(mount.root);
    let self: NsCgroupPath;
    try {
      self = parseNsCgroupPath(cgroup2PathOf(readFileSync(join(this.ownProc, 'self', 'cgroup'), 'utf8')) ?? '');
    } catch {
      return null;
    }
    if (root.names.length || root.up < up || self.up) return null;
    const depth = root.up; // our root is this many levels under the mount's root
    const me = String(process.pid);
    const walk = (rel: string[]): string[] | null => {
      if (rel.length === depth) {
        try {
          const procs = readFileSync(join(mount.mountPoint, ...rel, ...self.names, 'cgroup.procs'), 'utf8');
          return procs.split('\n').includes(me) ? rel : null;
        } catch {
          return null;
        }
      }
      let subdirs: string[];
      try {
        subdirs = readdirSync(join(mount.mountPoint, ...rel), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => d.name);
      } catch {
        return null;
      }
      for (const d of subdirs) {
        const hit = walk([...rel, d]);
        if (hit) return hit;
      }
      return null;
    };
    const names = walk([]);
    if (!names) this.warnOnce('cgroup members unknown', { cgroup: this.dir, error: 'our own cgroup is not found under the mount' });
    else this.log.debug('cgroup namespace root found', { path: `/${names.join('/')}` });
    return names ? names.slice(depth - up) : null;
  }

  private warnOnce(msg: string, fields: Record<string, string>): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn(msg, fields);
  }
}
