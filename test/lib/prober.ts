// A connection prober for policy tests: inside a lab namespace, a new TCP connection to the
// echo backend every few ms (each its own source port, so each is a new flow that the policy
// stage decides), printing when each attempt started and whether an echo reply came back.
// The lab side reads those lines: when the verdict flipped after a change, how many attempts
// got through while a daemon was down.
//
//   node prober.js --host H --port P [--every MS] [--timeout MS]
//   prints `<start ms since epoch> ok|fail <detail>` per attempt; SIGUSR2: stop starting new
//   attempts, wait for those in flight, print `done`, exit

import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Cgroup } from './lab/cgroup.js';
import type { Netns } from './lab/netns.js';
import type { ManagedProcess } from './proc.js';

export interface Attempt {
  /** when the attempt started (Date.now() in the prober; the same clock as the test's) */
  start: number;
  ok: boolean;
  detail: string;
}

function attempt(host: string, port: number, timeoutMs: number): void {
  const start = Date.now();
  const sock = connect({ host, port });
  let buf = '';
  let done = false;
  const finish = (ok: boolean, detail: string) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    sock.destroy();
    inFlight--;
    process.stdout.write(`${start} ${ok ? 'ok' : 'fail'} ${detail}\n`);
  };
  inFlight++;
  const timer = setTimeout(() => finish(false, 'timeout'), timeoutMs);
  sock.on('error', (e) => finish(false, (e as NodeJS.ErrnoException).code ?? e.message));
  sock.on('connect', () => sock.write('probe\n'));
  sock.on('data', (d) => {
    buf += d.toString('utf8');
    if (buf.includes('\n')) finish(true, `${Date.now() - start}ms`);
  });
}

let inFlight = 0;

function main(): void {
  const { values } = parseArgs({
    options: { host: { type: 'string' }, port: { type: 'string' }, every: { type: 'string', default: '25' }, timeout: { type: 'string', default: '500' } },
  });
  const host = values.host!;
  const port = Number(values.port);
  const timer = setInterval(() => attempt(host, port, Number(values.timeout)), Number(values.every));
  process.once('SIGUSR2', () => {
    clearInterval(timer);
    const drain = setInterval(() => {
      if (inFlight > 0) return;
      clearInterval(drain);
      process.stdout.write('done\n', () => process.exit(0));
    }, 10);
  });
}

/** A running prober (probe()). */
export interface Prober {
  proc: ManagedProcess;
  /** the attempts finished so far, by start time */
  attempts(): Attempt[];
  /**
   * Waits until the attempts that started at or after `since` settle on `want` (the last
   * `settle` of them all `want`); returns how long after `since` the first attempt of that
   * unbroken run started: the time the verdict took to follow a change made at `since`.
   */
  flipped(since: number, want: boolean, timeoutMs?: number, settle?: number): Promise<number>;
  /** stops the prober (after its attempts in flight) and returns every attempt */
  stop(): Promise<Attempt[]>;
}

/** Starts a prober in `ns` against host:port. */
export function probe(ns: Netns, host: string, port: number, opts: { every?: number; timeoutMs?: number; cgroup?: Cgroup } = {}): Prober {
  const script = new URL(import.meta.url).pathname;
  const args = [script, '--host', host, '--port', String(port), '--every', String(opts.every ?? 25), '--timeout', String(opts.timeoutMs ?? 500)];
  const attemptTimeout = opts.timeoutMs ?? 500;
  const proc = ns.spawn(process.execPath, args, { label: `prober ${host}:${port} [${ns.short}]`, ...(opts.cgroup ? { cgroup: opts.cgroup } : {}) });
  const attempts = (): Attempt[] =>
    proc.stdout
      .split('\n')
      .map((l) => /^(\d+) (ok|fail) (.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ start: Number(m[1]), ok: m[2] === 'ok', detail: m[3]! }))
      .sort((a, b) => a.start - b.start);
  return {
    proc,
    attempts,
    async flipped(since: number, want: boolean, timeoutMs = 5000, settle = 4): Promise<number> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        // only attempts old enough to have finished either way: a late timeout cannot reorder them
        const finishedBy = Date.now() - attemptTimeout - 100;
        const after = attempts().filter((a) => a.start >= since && a.start <= finishedBy);
        let i = after.length;
        while (i > 0 && after[i - 1]!.ok === want) i--;
        if (after.length - i >= settle) return after[i]!.start - since;
        if (!proc.running) throw proc.failure('the prober ended');
        if (Date.now() > deadline)
          throw proc.failure(`no settled ${want ? 'ok' : 'fail'} within ${timeoutMs} ms: ${after.map((a) => (a.ok ? '+' : '-')).join('')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop(): Promise<Attempt[]> {
      proc.signalGroup('SIGUSR2');
      await proc.exited;
      return attempts();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
