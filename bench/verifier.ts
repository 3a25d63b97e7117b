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
  // interleaved: every variant once per run, so drift hits them alike
  for (let r = 0; r < runs; r++) {
    for (const v of variants) {
      for (const obj of objects) {
        const fs = mountPrivateBpffs('bench-verifier');
        try {
          const args = [join(v.dir, `${obj}.o`), fs.path, ...Object.entries(v.consts ?? {}).map(([k, x]) => `${k}=${x}`)];
          const line = JSON.parse(execFileSync(bin, args, { encoding: 'utf8' }).trim()) as StatsLine;
          const key = `${v.label}\0${obj}`;
          samples.set(key, [...(samples.get(key) ?? []), line]);
        } finally {
          await fs.cleanup();
        }
      }
    }
  }
  const rows: VerifierRow[] = [];
  for (const v of variants)
    for (const obj of objects) {
      const lines = samples.get(`${v.label}\0${obj}`)!;
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
