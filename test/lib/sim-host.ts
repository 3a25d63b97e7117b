// A simulated host for tests that need weir's defaults (/sys/fs/bpf, PID 1's mount
// namespace) without touching the real host's mounts: a fresh PID + mount namespace whose
// init (a `sleep`, PID 1 inside) plays the node's init, in a lab network namespace of its
// own. /sys/fs/bpf is unmounted there (private propagation: the host keeps its own), so
// weir sees "no bpffs" and mounts one in this init's mount namespace. Killing the init ends
// the PID namespace, its mount namespace and so that bpffs (and every link pinned in it).
// Its mount table is a private copy: create the lab's network namespaces before the host.

import { readFileSync, readlinkSync } from 'node:fs';
import type { Lab, Netns } from './lab.js';
import { run, sleep, spawnManaged, type ManagedProcess, type RunResult, type SpawnOptions } from './proc.js';

export class SimulatedHost {
  private constructor(
    readonly ns: Netns,
    /** the `unshare` process (outside); its child is the init */
    readonly unshare: ManagedProcess,
    /** the init's pid as the real host sees it */
    readonly initPid: number,
  ) {}

  static async create(lab: Lab, name = 'simhost'): Promise<SimulatedHost> {
    const ns = await lab.netns(name);
    // --kill-child: the init dies with unshare (the lab stops unshare at teardown, and the
    // lab sweep kills it through its netns if the test process itself was killed)
    const script = 'while mountpoint -q /sys/fs/bpf; do umount -l /sys/fs/bpf; done; exec sleep infinity';
    const argv = ['--pid', '--fork', '--kill-child', '--mount', '--propagation', 'private', '--mount-proc', 'sh', '-c', script];
    const unshare = ns.spawn('unshare', argv, { killAfterMs: 1000 });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const init = childOf(unshare.pid);
      if (init && comm(init) === 'sleep') return new SimulatedHost(ns, unshare, init);
      if (!unshare.running) throw unshare.failure('exited before its init ran');
      if (Date.now() > deadline) throw unshare.failure('no init after 10 s');
      await sleep(20);
    }
  }

  /** The host's root, seen from outside: /proc/<init>/root. */
  get root(): string {
    return `/proc/${this.initPid}/root`;
  }

  /** The init's mount namespace (mnt:[inode]). */
  get mountNs(): string {
    return readlinkSync(`/proc/${this.initPid}/ns/mnt`);
  }

  /** argv that runs `cmd args` on the simulated host (its PID, mount and network namespaces). */
  command(cmd: string, args: readonly string[] = []): [string, string[]] {
    return ['nsenter', ['--target', String(this.initPid), '--pid', '--mount', '--net', '--', cmd, ...args]];
  }

  exec(cmd: string, args: readonly string[] = [], opts: { check?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
    const [c, a] = this.command(cmd, args);
    return run(c, a, opts);
  }

  spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
    const [c, a] = this.command(cmd, args);
    return spawnManaged(c, a, opts);
  }

  /** kill -9 the init: the kernel kills every process of the PID namespace with it. */
  async kill(): Promise<void> {
    this.unshare.signalGroup('SIGKILL');
    await this.unshare.exited;
  }
}

function childOf(pid: number): number | undefined {
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
