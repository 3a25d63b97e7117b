// bench: the C client/server (bench/tools/tcpbench.c), compiled with cc -O2 into
// build/bench/ on first use or when the source changed, and its JSON output parsed.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Cgroup, ManagedProcess, Netns } from '../test/lib/lab.js';

export const ROOT = process.cwd();
export const BUILD_DIR = join(ROOT, 'build', 'bench');

export function tcpbenchBinary(): string {
  const src = join(ROOT, 'bench', 'tools', 'tcpbench.c');
  const bin = join(BUILD_DIR, 'tcpbench');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(BUILD_DIR, { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', bin, src], { stdio: 'inherit' });
  }
  return bin;
}

export interface Dist {
  p50_us: number;
  p90_us: number;
  p99_us: number;
  mean_us: number;
  max_us: number;
}
export interface TcpbenchResult {
  mode: 'crr' | 'rr';
  count: number;
  errors: number;
  seconds: number;
  /** connections (crr) or transactions (rr) per second */
  rate: number;
  connect?: Dist;
  txn: Dist;
}

export function startServer(ns: Netns, port: number): ManagedProcess {
  return ns.spawn(tcpbenchBinary(), ['server', String(port)]);
}

export async function runClient(
  ns: Netns,
  mode: 'crr' | 'rr',
  host: string,
  port: number,
  o: { seconds: number; warmup: number; size?: number; cgroup?: Cgroup | undefined },
): Promise<TcpbenchResult> {
  const args = [mode, host, String(port), String(o.seconds), String(o.warmup), String(o.size ?? 64)];
  const r = await ns.exec(tcpbenchBinary(), args, { timeoutMs: (o.seconds + o.warmup + 20) * 1000, ...(o.cgroup ? { cgroup: o.cgroup } : {}) });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as TcpbenchResult;
}
