// An HTTP poller for daemon tests: inside a lab namespace, GETs each path in turn, one request
// at a time, and prints `<start ms since epoch> <end ms> <status> <path>` per request (status 0:
// refused or timed out, the detail after it). The lab side reads those lines: did /healthz
// answer while the daemon adopted or synced, and how long did the slowest answer take.
//
//   node http-poller.js --url http://127.0.0.1:9745 --paths /healthz,/readyz [--timeout MS]
//   SIGUSR2: finish the request in flight, print `done`, exit

import { get } from 'node:http';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Netns } from './lab/netns.js';
import type { ManagedProcess } from './proc.js';

export interface Answer {
  /** Date.now() when the request started and when it ended (the test's clock) */
  start: number;
  end: number;
  /** HTTP status; 0 when refused, reset or timed out */
  status: number;
  path: string;
  detail: string;
}

function once(url: string, timeoutMs: number): Promise<{ status: number; detail: string }> {
  return new Promise((resolve) => {
    const req = get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, detail: '' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 0, detail: e.code ?? e.message }));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { url: { type: 'string' }, paths: { type: 'string' }, timeout: { type: 'string' } } });
  const paths = (values.paths ?? '/healthz').split(',');
  const timeoutMs = Number(values.timeout ?? 5000);
  let stop = false;
  process.on('SIGUSR2', () => (stop = true));
  for (let i = 0; !stop; i++) {
    const path = paths[i % paths.length]!;
    const start = Date.now();
    const r = await once(`${values.url}${path}`, timeoutMs);
    process.stdout.write(`${start} ${Date.now()} ${r.status} ${path} ${r.detail}\n`);
    // refused (not listening yet): no busy loop
    if (r.status === 0) await new Promise((res) => setTimeout(res, 5));
  }
  process.stdout.write('done\n', () => process.exit(0));
}

/** A running poller (pollHttp()). */
export interface HttpPoller {
  proc: ManagedProcess;
  answers(): Answer[];
  /** stops it after the request in flight; every answer */
  stop(): Promise<Answer[]>;
}

/** Polls `paths` of `base` (http://host:port) from `ns`, one request at a time. */
export function pollHttp(ns: Netns, base: string, paths: string[], timeoutMs = 5000): HttpPoller {
  const script = new URL(import.meta.url).pathname;
  const proc = ns.spawn(process.execPath, [script, '--url', base, '--paths', paths.join(','), '--timeout', String(timeoutMs)], {
    label: `http poller ${base} [${ns.short}]`,
  });
  const answers = (): Answer[] =>
    proc.stdout
      .split('\n')
      .map((l) => /^(\d+) (\d+) (\d+) (\S+) ?(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ start: Number(m[1]), end: Number(m[2]), status: Number(m[3]), path: m[4]!, detail: m[5]! }));
  return {
    proc,
    answers,
    async stop(): Promise<Answer[]> {
      proc.signalGroup('SIGUSR2');
      await proc.exited;
      return answers();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
