// dataplane/instance-lock: "is a weir daemon running for this instance here?", asked by
// `weir uninstall` before it removes anything. The daemon holds an abstract unix socket,
// `@weir-daemon/<instance>`, for its whole life:
// - abstract sockets belong to the network namespace, which is exactly the scope of a weir
//   node (its interfaces, sysctls and nft tables); a node shell, `ip netns exec`, nsenter
//   or a hostNetwork pod all see the same one, whatever their PID or mount namespace;
// - the kernel releases it when the process dies, kill -9 included: no stale pidfile.
// A daemon of a release without the lock (2e42a8d) is found by the second check, the
// process list: a `weir daemon` for the instance in this network namespace (needs the
// node's PID namespace: a node shell, or a pod with hostPID).

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { basename, join } from 'node:path';

export function lockName(instance: string): string {
  return `\0weir-daemon/${instance}`;
}

export type Lock = { release(): Promise<void> };

/** Binds the instance's socket; EADDRINUSE (another holder) rejects with that code. */
export function acquireInstanceLock(instance: string): Promise<Lock> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer((c) => c.destroy());
    server.once('error', reject);
    server.listen({ path: lockName(instance) }, () => {
      server.off('error', reject);
      // the socket must not keep a stopping daemon alive
      server.unref();
      resolve({ release: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}

export interface RunningDaemon {
  /** 'lock': the instance socket is held; 'process': a `weir daemon` process found */
  how: 'lock' | 'process';
  pid?: number;
  cmdline?: string;
}

/** Is the daemon lock of `instance` held in this network namespace? */
export async function lockHeld(instance: string): Promise<boolean> {
  try {
    const l = await acquireInstanceLock(instance);
    await l.release();
    return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') return true;
    throw e;
  }
}

/** The instance a `weir daemon` argv runs, or undefined when it is not one. */
export function daemonInstance(argv: readonly string[]): string | undefined {
  const entry = argv.findIndex((a) => basename(a) === 'weir' || /(^|\/)cli\/main\.js$/.test(a));
  if (entry < 0) return undefined;
  const rest = argv.slice(entry + 1);
  if (rest.find((a) => !a.startsWith('-')) !== 'daemon') return undefined;
  let instance = 'default';
  rest.forEach((a, i) => {
    if (a === '--instance' && rest[i + 1] !== undefined) instance = rest[i + 1]!;
    else if (a.startsWith('--instance=')) instance = a.slice('--instance='.length);
  });
  return instance;
}

/** `weir daemon` processes for `instance` in this network namespace (other than this one). */
export function findDaemonProcesses(instance: string, procRoot = '/proc'): RunningDaemon[] {
  let ownNet: string;
  try {
    ownNet = readlinkSync(join(procRoot, 'self', 'ns', 'net'));
  } catch {
    return [];
  }
  const out: RunningDaemon[] = [];
  for (const d of readdirSync(procRoot)) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const argv = readFileSync(join(procRoot, d, 'cmdline'), 'utf8')
        .split('\0')
        .filter((a) => a.length > 0);
      if (daemonInstance(argv) !== instance) continue;
      if (readlinkSync(join(procRoot, d, 'ns', 'net')) !== ownNet) continue;
      out.push({ how: 'process', pid: Number(d), cmdline: argv.join(' ') });
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return out;
}

/** Every sign of a running daemon for `instance` here: the lock, then the process list. */
export async function runningDaemons(instance: string): Promise<RunningDaemon[]> {
  const found: RunningDaemon[] = (await lockHeld(instance)) ? [{ how: 'lock' }] : [];
  return [...found, ...findDaemonProcesses(instance)];
}
