// bench: what the verifier spends on each hook object, per build variant: the kernel's own
// verification time and instruction count (BPF_LOG_STATS: "processed N insns", states), the
// translated and JITed sizes, and the wall time of the whole load (maps created, programs
// verified) through bench/tools/verifier-stats.c. The median of `runs` loads, each into a
// fresh private bpffs, so no load adopts another's maps. Behind the tail-call vs global
// subprogram decision in docs/dataplane.md.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { mountPrivateBpffs } from '../test/lib/bpffs.js';
import { BUILD_DIR, ROOT } from './tools.js';

export interface VerifierVariant {
  /** e.g. '2e42a8d', 'global (this tree)' */
  label: string;
  dir: string;
  /** .rodata knobs, NAME -> value */
  consts?: Record<string, number>;
}

export interface VerifierRow {
  variant: string;
  object: string;
  program: string;
  /** median over runs */
  verifyUs: number;
  loadUs: number;
  processedInsns: number;
  totalStates: number;
  peakStates: number;
  xlatedInsns: number;
  jitedBytes: number;
  /** the object did not load (e.g. a variant past the verifier's limits): libbpf's reason; the
   *  figures are then 0 */
  loadError?: string;
}

interface StatsLine {
  loadUs: number;
  programs: { name: string; verifyUs: number; processedInsns: number; totalStates: number; peakStates: number; xlatedInsns: number; jitedBytes: number }[];
}

export function verifierStatsBinary(): string {
  const src = join(ROOT, 'bench', 'tools', 'verifier-stats.c');
  const bin = join(BUILD_DIR, 'verifier-stats');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(BUILD_DIR, { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', bin, src, '-lbpf'], { stdio: 'inherit' });
  }
  return bin;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function runVerifier(variants: VerifierVariant[], objects: readonly string[], runs: number): Promise<VerifierRow[]> {
  const bin = verifierStatsBinary();
  const samples = new Map<string, StatsLine[]>();
  const failed = new Map<string, string>();
  // interleaved: every variant once per run, so drift hits them alike
  for (let r = 0; r < runs; r++) {
    for (const v of variants) {
      for (const obj of objects) {
        const fs = mountPrivateBpffs('bench-verifier');
        try {
          const args = [join(v.dir, `${obj}.o`), fs.path, ...Object.entries(v.consts ?? {}).map(([k, x]) => `${k}=${x}`)];
          const key = `${v.label}\0${obj}`;
          let out: string;
          try {
            out = execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
          } catch (e) {
            const stderr = String((e as { stderr?: unknown }).stderr ?? '');
            failed.set(key, stderr.split('\n').find((l) => l.includes('load failed')) ?? (e as Error).message.split('\n')[0]!);
            continue;
          }
          samples.set(key, [...(samples.get(key) ?? []), JSON.parse(out.trim()) as StatsLine]);
        } finally {
          await fs.cleanup();
        }
      }
    }
  }
  const rows: VerifierRow[] = [];
  for (const v of variants)
    for (const obj of objects) {
      const key = `${v.label}\0${obj}`;
      const loadError = failed.get(key);
      if (loadError !== undefined) {
        const zero = { verifyUs: 0, loadUs: 0, processedInsns: 0, totalStates: 0, peakStates: 0, xlatedInsns: 0, jitedBytes: 0 };
        rows.push({ variant: v.label, object: obj, program: '-', ...zero, loadError });
        continue;
      }
      const lines = samples.get(key)!;
      for (const p of lines[0]!.programs) {
        const of = (f: (x: StatsLine['programs'][number]) => number) => median(lines.map((l) => f(l.programs.find((q) => q.name === p.name)!)));
        rows.push({
          variant: v.label,
          object: obj,
          program: p.name,
          verifyUs: of((x) => x.verifyUs),
          loadUs: median(lines.map((l) => l.loadUs)),
          processedInsns: p.processedInsns,
          totalStates: p.totalStates,
          peakStates: p.peakStates,
          xlatedInsns: p.xlatedInsns,
          jitedBytes: p.jitedBytes,
        });
      }
    }
  return rows;
}
