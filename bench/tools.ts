// bench: the C client/server (bench/tools/tcpbench.c), compiled with cc -O2 into
// build/bench/ on first use or when the source changed, and its JSON output parsed; the
// per-packet floor program (bench/tools/floor.bpf.c) and the encapsulation comparison
// (bench/tools/encap.bpf.c, which includes weir's bpf-c/lib), compiled the same way with clang.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
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

/** The per-packet floor: an empty TC program (bench/tools/floor.bpf.c), built with clang. */
export function floorObject(): string {
  const src = join(ROOT, 'bench', 'tools', 'floor.bpf.c');
  const obj = join(BUILD_DIR, 'floor.o');
  if (!existsSync(obj) || statSync(obj).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(BUILD_DIR, { recursive: true });
    // the asm/ headers linux/bpf.h includes live in the multiarch directory (as in the Makefile)
    const multiarch = execFileSync('cc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
    execFileSync(process.env.CLANG ?? 'clang', ['-O2', '-g', '-target', 'bpf', '-Wall', '-I', `/usr/include/${multiarch}`, '-c', src, '-o', obj], {
      stdio: 'inherit',
    });
  }
  return obj;
}

/** The encapsulation comparison (bench/tools/encap.bpf.c): weir's BPF VXLAN code against a collect_md device. */
export function encapObject(): string {
  const src = join(ROOT, 'bench', 'tools', 'encap.bpf.c');
  const obj = join(BUILD_DIR, 'encap.o');
  const deps = [src, ...['tunnel.h', 'parse.h', 'counters.h', 'compiler.h', 'csum.h'].map((h) => join(ROOT, 'bpf-c', 'lib', h))];
  if (!existsSync(obj) || deps.some((d) => statSync(obj).mtimeMs < statSync(d).mtimeMs)) {
    mkdirSync(BUILD_DIR, { recursive: true });
    const multiarch = execFileSync('cc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
    const inc = ['-I', join(ROOT, 'bpf-c'), '-I', join(ROOT, 'bpf-c', 'include'), '-I', `/usr/include/${multiarch}`];
    execFileSync(process.env.CLANG ?? 'clang', ['-O2', '-g', '-target', 'bpf', '-Wall', '-Werror', '-Wno-unused-function', ...inc, '-c', src, '-o', obj], {
      stdio: 'inherit',
    });
  }
  return obj;
}

/**
 * How the data-plane benches split this 2-core machine (docs/bench.md, "Pinning and rounds"). The
 * packet path, every contestant's hooks included (weir's TC and socket programs, netfilter), runs
 * in the context of the process that sends (veth transmit, then the receiving namespace's softirq
 * on the same core), so pinning the processes pins the contestant's work with them. The latency
 * loops' client and its servers share core 0: a request and its reply never wait for a wake-up on
 * the other core (left to the scheduler, kept-alive rates here were bimodal, ~15k or ~100k/s, and
 * decided ratios). iperf3's sender is on core 0, its receiver on core 1: one stream needs both
 * ends running at once. Programming (iptables-restore, nft -f, weir's map writes in this process,
 * the control plane's weir daemon) happens on core 1 (CPUS.programmer, see pinSelf); in the control
 * plane weir's daemon has core 1 and the bench, polling its maps, core 0. Nothing else of the
 * bench runs during a measurement; other work on the
 * machine is not fenced off (that would take the root cgroup's cpusets), which is why every figure
 * is a median over rounds with its spread.
 */
export const CPUS = { loops: 0, iperfClient: 0, iperfServer: 1, programmer: 1 } as const;

/**
 * Pins every thread of this process to `cpus` (a taskset list, e.g. "1" or "0-1"); the processes
 * it spawns afterwards inherit it. So the peers' iptables-restore / nft run pinned without a
 * taskset exec in their timed command line, and weir's in-process map writes run on the same
 * core as they do (CPUS.programmer); unpinAll() gives every CPU back.
 */
export function pinSelf(cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
}
export function unpinAll(): void {
  pinSelf(`0-${cpus().length - 1}`);
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

/** `cpu`: pinned there with taskset (a client and its server on one core: no cross-core wake-ups in the figure) */
export function startServer(ns: Netns, port: number, cpu?: number): ManagedProcess {
  const cmd = [tcpbenchBinary(), 'server', String(port)];
  return cpu === undefined ? ns.spawn(cmd[0]!, cmd.slice(1)) : ns.spawn('taskset', ['-c', String(cpu), ...cmd]);
}

export async function runClient(
  ns: Netns,
  mode: 'crr' | 'rr',
  host: string,
  port: number,
  o: { seconds: number; warmup: number; size?: number; cgroup?: Cgroup | undefined; cpu?: number },
): Promise<TcpbenchResult> {
  const args = [mode, host, String(port), String(o.seconds), String(o.warmup), String(o.size ?? 64)];
  const [cmd, argv] = o.cpu === undefined ? [tcpbenchBinary(), args] : ['taskset', ['-c', String(o.cpu), tcpbenchBinary(), ...args]];
  const r = await ns.exec(cmd, argv, { timeoutMs: (o.seconds + o.warmup + 20) * 1000, ...(o.cgroup ? { cgroup: o.cgroup } : {}) });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as TcpbenchResult;
}

/** The median of rounds (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** ` (min-max)` of rounds, each as `f` writes it; empty for a single round. */
export function minMax(xs: number[], f: (x: number) => string): string {
  return xs.length > 1 ? ` (${f(Math.min(...xs))}-${f(Math.max(...xs))})` : '';
}

/**
 * `v`'s median over `ref`'s, and the range the rounds allow (worst pairing each way), marked ≈
 * when that range holds 1.00×: the two are not told apart by this run.
 */
export function ratioOfRounds(v: number[], ref: number[]): string {
  const lo = Math.min(...v) / Math.max(...ref);
  const hi = Math.max(...v) / Math.min(...ref);
  return `${lo <= 1 && hi >= 1 ? '≈ ' : ''}${(median(v) / median(ref)).toFixed(2)}× (${lo.toFixed(2)}-${hi.toFixed(2)})`;
}
