// cgroup v2 for the lab: one directory per lab under <cgroup2 mount>/weir-lab/<id>, child
// cgroups per test (what cgroup-attached programs such as the socket LB hook onto), and
// commands started inside them. Never the root cgroup.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, spawnManaged, sleepSync, type ManagedProcess, type RunOptions, type RunResult, type SpawnOptions } from '../proc.js';

/** Where cgroup2 is mounted, from /proc/mounts (hybrid hosts mount it at .../unified). */
export function findCgroup2Mount(): string | undefined {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, mountPoint, fstype] = line.split(' ');
    if (fstype === 'cgroup2' && mountPoint) return mountPoint.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}

/** The directory all labs' cgroups live under; undefined without cgroup2. */
export function labCgroupParent(): string | undefined {
  const mount = findCgroup2Mount();
  return mount ? join(mount, 'weir-lab') : undefined;
}

/**
 * Wrap a command so that it runs in cgroup `path`: the shell moves itself in, then execs the
 * command, so the command's first instruction already runs inside the cgroup.
 */
export function inCgroup(path: string, cmd: string, args: readonly string[]): [string, string[]] {
  return ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', path, cmd, ...args]];
}

/** Run a command in `netnsPath` (a /run/netns file) and/or a cgroup. Only the netns is changed: mounts stay. */
export function wrapCommand(cmd: string, args: readonly string[], where: { netnsPath?: string; cgroupPath?: string }): [string, string[]] {
  let [c, a]: [string, string[]] = [cmd, [...args]];
  if (where.cgroupPath) [c, a] = inCgroup(where.cgroupPath, c, a);
  if (where.netnsPath) [c, a] = ['nsenter', [`--net=${where.netnsPath}`, c, ...a]];
  return [c, a];
}

function readPids(path: string): number[] {
  try {
    return readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function populated(path: string): boolean {
  try {
    return /^populated 1$/m.test(readFileSync(join(path, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Kill everything in a cgroup tree and remove it, deepest first. Synchronous, so that it
 * also works from the process exit hook. Returns what could not be removed.
 */
export function removeCgroupTree(path: string, waitMs = 3000): string[] {
  if (!existsSync(path)) return [];
  try {
    writeFileSync(join(path, 'cgroup.kill'), '1'); // kernel >= 5.14: SIGKILL the whole subtree
  } catch {
    const kill = (p: string) => {
      for (const pid of readPids(p)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      try {
        for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) kill(join(p, e.name));
      } catch {
        /* removed meanwhile */
      }
    };
    kill(path);
  }
  const deadline = Date.now() + waitMs;
  while (populated(path) && Date.now() < deadline) sleepSync(10);
  const failed: string[] = [];
  const gone = (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOENT'; // a concurrent sweeper was faster
  const rm = (p: string) => {
    try {
      for (const e of readdirSync(p, { withFileTypes: true })) if (e.isDirectory()) rm(join(p, e.name));
      rmdirSync(p);
    } catch (e) {
      if (!gone(e)) failed.push(`${p}: ${(e as Error).message}`);
    }
  };
  rm(path);
  return failed;
}

export interface CgroupExecOptions extends RunOptions {
  /** also enter this network namespace (its /run/netns path) */
  netnsPath?: string;
}
export interface CgroupSpawnOptions extends SpawnOptions {
  netnsPath?: string;
}

export class Cgroup {
  constructor(
    /** the name given to lab.cgroup() */
    readonly name: string,
    /** absolute directory in the cgroup2 mount */
    readonly path: string,
    /** told about every process spawned here, so that its lab stops it before teardown */
    private readonly track: (p: ManagedProcess) => void = () => {},
  ) {}

  static create(name: string, path: string, track?: (p: ManagedProcess) => void): Cgroup {
    mkdirSync(path, { recursive: true });
    return new Cgroup(name, path, track);
  }

  /** Run a command inside this cgroup (and the netns given in opts). */
  exec(cmd: string, args: readonly string[] = [], opts: CgroupExecOptions = {}): Promise<RunResult> {
    const [c, a] = wrapCommand(cmd, args, { cgroupPath: this.path, ...(opts.netnsPath ? { netnsPath: opts.netnsPath } : {}) });
    return run(c, a, opts);
  }

  /** Start a managed background process inside this cgroup (and the netns given in opts). */
  spawn(cmd: string, args: readonly string[] = [], opts: CgroupSpawnOptions = {}): ManagedProcess {
    const [c, a] = wrapCommand(cmd, args, { cgroupPath: this.path, ...(opts.netnsPath ? { netnsPath: opts.netnsPath } : {}) });
    const proc = spawnManaged(c, a, { label: `${cmd} ${args.join(' ')} [cgroup ${this.name}]`, ...opts });
    this.track(proc);
    return proc;
  }

  /** Processes directly in this cgroup (cgroup.procs). */
  pids(): number[] {
    return readPids(this.path);
  }

  /** Processes in this cgroup and its descendants. */
  allPids(): number[] {
    const out = [...readPids(this.path)];
    const walk = (p: string) => {
      for (const e of readdirSync(p, { withFileTypes: true })) {
        if (!e.isDirectory()) continue;
        out.push(...readPids(join(p, e.name)));
        walk(join(p, e.name));
      }
    };
    walk(this.path);
    return out;
  }

  /** A nested cgroup (created now). */
  child(name: string): Cgroup {
    return Cgroup.create(`${this.name}/${name}`, join(this.path, name), this.track);
  }
}
