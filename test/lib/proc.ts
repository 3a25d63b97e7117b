// Running real commands for tests, the lab, the demo and benchmarks: one-shot commands with
// a timeout and captured output (errors show the command, exit code and stderr), and
// background processes that are tracked and killed at cleanup.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { onCleanup } from './cleanup.js';

export interface RunOptions {
  /** kill the command (SIGKILL) after this long; default 20 s */
  timeoutMs?: number;
  /** written to stdin, which is then closed */
  input?: string;
  /** added to (not replacing) process.env */
  env?: Record<string, string>;
  cwd?: string;
  /** throw RunError on a non-zero exit or a signal; default true */
  check?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** exit code; null when killed by a signal */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  ms: number;
}

/** Quote for display only; commands are never run through a shell by this module. */
export function showCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(' ');
}

export class RunError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    const how = result.timedOut ? `timed out after ${result.ms} ms` : result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
    const tail = (s: string) => s.trim().split('\n').slice(-15).join('\n    ');
    let msg = `command failed (${how}): ${command}`;
    if (result.stderr.trim()) msg += `\n  stderr:\n    ${tail(result.stderr)}`;
    else if (result.stdout.trim()) msg += `\n  stdout:\n    ${tail(result.stdout)}`;
    super(msg);
    this.name = 'RunError';
  }
  get code(): number | null {
    return this.result.code;
  }
  get stderr(): string {
    return this.result.stderr;
  }
}

/** Run a command to completion. */
export function run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => {}); // EPIPE when the command does not read its input
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${showCommand(cmd, args)}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = { stdout, stderr, code, signal, timedOut, ms: Date.now() - started };
      if ((opts.check ?? true) && (code !== 0 || timedOut)) reject(new RunError(showCommand(cmd, args), result));
      else resolve(result);
    });
  });
}

/**
 * Synchronous variant for cleanup steps: those also run from the process 'exit' hook, where
 * nothing asynchronous completes. Never throws unless `check` is set.
 */
export function runSync(cmd: string, args: readonly string[], opts: { check?: boolean; input?: string; timeoutMs?: number } = {}): RunResult {
  const started = Date.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input ?? '', timeout: opts.timeoutMs ?? 10_000 });
  const result: RunResult = {
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? (r.error ? String(r.error) : ''),
    code: r.status,
    signal: r.signal,
    timedOut: (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT',
    ms: Date.now() - started,
  };
  if (opts.check && result.code !== 0) throw new RunError(showCommand(cmd, args), result);
  return result;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Block the thread; only for synchronous cleanup paths. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** how the process is described in errors and cleanup reports */
  label?: string;
  /** keep at most this many characters of each output stream (the tail); default 1 MiB */
  maxOutput?: number;
  /** on stop, SIGKILL after this long if SIGTERM did not end it; default 2 s */
  killAfterMs?: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A background process in its own process group (so helpers it forks die with it),
 * stopped at cleanup if the test did not stop it.
 */
export class ManagedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly command: string;
  readonly exited: Promise<Exit>;
  private out = '';
  private err = '';
  private exit: Exit | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly killAfterMs: number;
  private readonly cleanup: () => Promise<void>;

  constructor(cmd: string, args: readonly string[], opts: SpawnOptions = {}) {
    this.command = opts.label ?? showCommand(cmd, args);
    this.killAfterMs = opts.killAfterMs ?? 2000;
    const max = opts.maxOutput ?? 1 << 20;
    this.child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (this.child.pid === undefined) {
      this.child.on('error', () => {}); // reported by the throw below
      throw new Error(`cannot spawn ${this.command}`);
    }
    this.pid = this.child.pid;
    const keep = (s: string) => (s.length > max ? s.slice(-max) : s);
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.out = keep(this.out + d);
      this.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.err = keep(this.err + d);
      this.notify();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
      this.child.on('error', () => {
        this.exit ??= { code: null, signal: null };
        this.notify();
        resolve(this.exit);
      });
    });
    this.cleanup = onCleanup(`stop ${this.command} (pid ${this.pid})`, () => {
      // the signal is sent synchronously so that this also works from the exit hook
      this.signalGroup('SIGTERM');
      return this.waitOrKill();
    });
  }

  get stdout(): string {
    return this.out;
  }
  get stderr(): string {
    return this.err;
  }
  get running(): boolean {
    return this.exit === undefined;
  }
  get exitStatus(): Exit | undefined {
    return this.exit;
  }

  /** Send a signal to the whole process group. */
  signalGroup(sig: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      try {
        process.kill(this.pid, sig);
      } catch {
        /* already gone */
      }
    }
  }

  /** SIGTERM, then SIGKILL after `killAfterMs`; resolves once the process is reaped. */
  async stop(): Promise<Exit> {
    await this.cleanup();
    return this.exited;
  }

  private async waitOrKill(): Promise<void> {
    if (!this.running) return;
    const t = setTimeout(() => this.signalGroup('SIGKILL'), this.killAfterMs);
    await this.exited;
    clearTimeout(t);
  }

  /** Resolve with the first match of `re` in stdout+stderr; reject on exit or timeout. */
  waitForOutput(re: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = (this.out + '\n' + this.err).match(re);
        if (m) return done(() => resolve(m));
        if (!this.running) return done(() => reject(this.failure(`exited (${JSON.stringify(this.exit)}) before printing ${re}`)));
      };
      const timer = setTimeout(() => done(() => reject(this.failure(`did not print ${re} within ${timeoutMs} ms`))), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        f();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** An error that carries what the process printed. */
  failure(what: string): Error {
    const tail = (s: string) => s.trim().split('\n').slice(-10).join('\n    ');
    return new Error(`${this.command}: ${what}\n  stdout:\n    ${tail(this.out)}\n  stderr:\n    ${tail(this.err)}`);
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

export function spawnManaged(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
  return new ManagedProcess(cmd, args, opts);
}

export interface WaitForPortOptions {
  /** run the probe inside this network namespace (a name under /run/netns) */
  netns?: string;
  host?: string;
  timeoutMs?: number;
  intervalMs?: number;
}

/** Poll until a TCP connect to host:port succeeds (inside `netns` when given). */
export async function waitForPort(port: number, opts: WaitForPortOptions = {}): Promise<void> {
  const host = opts.host ?? '127.0.0.1';
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  // each try may take up to 3 s, so a lost SYN gets the kernel's retransmission (at 1 s)
  // instead of a new connect: veths share per-CPU backlogs, and a flood in any namespace
  // (iperf3 in a concurrent lab) can drop a SYN here
  const probe = (secs: number) => ['timeout', String(secs), 'bash', '-c', `exec 3<>"/dev/tcp/$0/$1"`, host, String(port)];
  let last: RunResult | undefined;
  for (;;) {
    const secs = Math.max(1, Math.min(3, Math.ceil((deadline - Date.now()) / 1000)));
    const [cmd, ...args] = opts.netns ? ['nsenter', `--net=/run/netns/${opts.netns}`, ...probe(secs)] : probe(secs);
    last = await run(cmd!, args, { check: false, timeoutMs: secs * 1000 + 2000 });
    if (last.code === 0) return;
    if (Date.now() > deadline) break;
    await sleep(opts.intervalMs ?? 50);
  }
  const where = opts.netns ? ` in netns ${opts.netns}` : '';
  const why = last.code === 124 ? 'connect timed out' : last.stderr.trim() || `exit ${last.code}`;
  throw new Error(`nothing accepted TCP ${host}:${port}${where} within ${opts.timeoutMs ?? 5000} ms (last try: ${why})`);
}
