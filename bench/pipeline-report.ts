// bench: bench/results/pipeline.md from a pipeline run (bench/pipeline.ts): per-packet ratios of
// this tree's objects against the baseline release's, same run, and the verifier's figures per
// build variant.

import type { PerPacketRow } from './perpacket.js';
import type { VerifierRow } from './verifier.js';

export interface PipelineRun {
  command: string;
  machine: string;
  started: string;
  seconds: number;
  baseline: string;
  options: { repeat: number; singles: number; rounds: number; verifierRuns: number };
  perPacket: PerPacketRow[];
  verifier: VerifierRow[];
}

/** The limit of issue 11: this tree within 5% of the baseline per case. */
export const PER_PACKET_LIMIT = 1.05;

const f = (n: number) => (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(1));
const table = (head: string[], rows: string[][]) => [
  `| ${head.join(' | ')} |`,
  `|${head.map(() => '---').join('|')}|`,
  ...rows.map((r) => `| ${r.join(' | ')} |`),
];

export interface Ratio {
  case: string;
  program: string;
  method: string;
  baseline: PerPacketRow;
  candidate: PerPacketRow;
  /** candidate / baseline, fastest round (repeated) or median (single runs) */
  ratio: number;
  /** the same for the median round of repeated cases */
  medianRatio?: number;
}

/** Case by case, `label` against the baseline rows. */
export function ratios(run: PipelineRun, label: string): Ratio[] {
  const base = run.perPacket.filter((r) => r.objects === run.baseline);
  const out: Ratio[] = [];
  for (const b of base) {
    const c = run.perPacket.find((r) => r.objects === label && r.case === b.case && r.method === b.method);
    if (!c) continue;
    out.push({
      case: b.case,
      program: b.program,
      method: b.method,
      baseline: b,
      candidate: c,
      ratio: c.nsPerPacket / b.nsPerPacket,
      ...(b.medianNs && c.medianNs ? { medianRatio: c.medianNs / b.medianNs } : {}),
    });
  }
  return out;
}

export function pipelineMarkdown(run: PipelineRun): string {
  const out: string[] = [];
  const floor = run.perPacket.find((r) => r.program === 'bench_floor');
  out.push(
    `# The staged pipeline against ${run.baseline}: per-packet cost and verifier`,
    '',
    `\`${run.command}\`, ${run.started}, ${Math.round(run.seconds)} s, ${run.machine}. Both sets of objects loaded side by side (each in its own bpffs: ` +
      `${run.baseline} pins \`weir_ct4\`, this tree \`weir_ct4_v2\`), ${run.baseline}'s built from \`git archive ${run.baseline} bpf-c\` with the Makefile's clang flags. ` +
      `Repeated cases: ${run.options.rounds} rounds × repeat ${f(run.options.repeat)}, every set measured in every round (in a random order each round), fastest round shown; ` +
      `new flows: median of ${f(run.options.singles)} single runs each, alternating between sets run by run (random order). Floor (empty TC program): ${floor ? `${f(floor.nsPerPacket)} ns` : '?'}.`,
    '',
    '## Per-packet cost, new ÷ old (same run)',
    '',
  );
  for (const label of [...new Set(run.perPacket.map((r) => r.objects).filter((l): l is string => !!l && l !== run.baseline))]) {
    const rs = ratios(run, label);
    out.push(`### ${label} ÷ ${run.baseline}`, '');
    out.push(
      ...table(
        [
          'case',
          'program',
          'method',
          `${run.baseline} ns`,
          `${label} ns`,
          'ratio',
          'median-round ratio',
          'slowest round old / new',
          `within ${Math.round((PER_PACKET_LIMIT - 1) * 100)}%`,
        ],
        rs.map((r) => [
          r.case,
          r.program,
          r.method.startsWith('fastest') ? 'fastest round' : 'median of single runs',
          f(r.baseline.nsPerPacket),
          f(r.candidate.nsPerPacket),
          `${r.ratio.toFixed(3)}×`,
          r.medianRatio !== undefined ? `${r.medianRatio.toFixed(3)}×` : '',
          r.baseline.slowestNs !== undefined ? `${f(r.baseline.slowestNs)} / ${f(r.candidate.slowestNs ?? 0)}` : '',
          r.ratio <= PER_PACKET_LIMIT ? 'yes' : 'NO',
        ]),
      ),
      '',
    );
  }
  out.push(
    `The control set is ${run.baseline}'s own objects loaded a second time: its ratios are what the method reads when nothing changed, the noise any other ratio carries.`,
    '',
    "The kernel reports a repeated run's mean in whole nanoseconds, so at ~50 ns one step is 2%: a ratio of 1.02× is one nanosecond. The slowest-round column shows how much the machine moved during the run: a case whose fastest and slowest rounds differ by more than 5% cannot be judged to 5% by one round, which is why the fastest of many is compared. Single runs alternate between the sets run by run, so each follows another program (colder caches than a run of the same program: the absolute figures are higher than `make bench`'s, the ratios are what counts).",
    '',
    '## Verifier, per build variant',
    '',
    `Median of ${run.options.verifierRuns} loads each, every load into a fresh bpffs (maps created, nothing adopted). verify µs and insns are the kernel's BPF_LOG_STATS figures ("verification time", "processed N insns", global subprograms included); load ms is the wall time of the whole bpf_object__load.`,
    '',
    ...table(
      ['variant', 'object', 'program', 'verify µs', 'load ms', 'processed insns', 'total states', 'peak states', 'xlated insns', 'JITed bytes'],
      run.verifier.map((v) =>
        v.loadError !== undefined
          ? [v.variant, v.object, v.program, `does not load: ${v.loadError}`, '–', '–', '–', '–', '–', '–']
          : [
              v.variant,
              v.object,
              v.program,
              f(v.verifyUs),
              (v.loadUs / 1000).toFixed(1),
              f(v.processedInsns),
              f(v.totalStates),
              f(v.peakStates),
              f(v.xlatedInsns),
              f(v.jitedBytes),
            ],
      ),
    ),
    '',
  );
  return out.join('\n');
}
