// bench: the staged pipeline (issue 11, must-show 7) against release 2e42a8d in one run: the
// per-packet cost of the same cases through both sets of objects (and the all-inlined build
// of this tree), and what the verifier spends on each build variant. Writes
// bench/results/pipeline.{md,json} (quick runs: pipeline-quick.*). Root only (BPF, bpffs).
//
//   node dist/bench/pipeline.js [--quick]

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { exitAfter } from '../test/lib/cleanup.js';
import { releaseSet, runPerPacketSets, THIS_TREE, type ObjectSet, type PerPacketRow } from './perpacket.js';
import { pipelineMarkdown, type PipelineRun } from './pipeline-report.js';
import { BASELINE_REV, releaseObjects, tailcallObjects, variantObjects } from './release-objects.js';
import { ROOT } from './tools.js';
import { runVerifier, type VerifierVariant } from './verifier.js';

const quick = process.argv.includes('--quick');
const log = (line: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('bench needs root (BPF, bpffs)');
    return 1;
  }
  const started = Date.now();
  log(`building ${BASELINE_REV}'s objects from git history and this tree's variants`);
  const release = releaseObjects();
  const inline = variantObjects('inline', ['WEIR_SLOW_PATH_INLINE']);
  const staticNoinline = variantObjects('static', ['WEIR_SLOW_PATH_STATIC']);
  const global = variantObjects('global', []);
  const tailcall = tailcallObjects();

  const verifierRuns = quick ? 3 : 7;
  log(`verifier: ${verifierRuns} loads of each variant`);
  const variants: VerifierVariant[] = [
    { label: BASELINE_REV, dir: release },
    { label: 'inline', dir: inline },
    { label: 'static noinline', dir: staticNoinline },
    { label: 'global (chosen)', dir: global },
    { label: 'tail call (from_pod only)', dir: tailcall },
    { label: 'inline, ct_track_all=1', dir: inline, consts: { ct_track_all: 1 } },
    { label: 'global, ct_track_all=1', dir: global, consts: { ct_track_all: 1 } },
  ];
  const verifier = (await runVerifier(variants, ['from_pod', 'from_host'], verifierRuns)).filter(
    (r) => !(r.variant.startsWith('tail call') && r.object !== 'from_pod'),
  );

  const o = quick ? { repeat: 100_000, singles: 2000, rounds: 5 } : { repeat: 1_000_000, singles: 40_000, rounds: 21 };
  // the control: the baseline's own objects loaded a second time, so its ratio is the method's noise
  // a variant the verifier refuses (the all-inlined build since the tunnel stages: past its
  // limits) has no per-packet figures, only its verifier row saying why
  const loads = (label: string) => !verifier.some((r) => r.variant === label && r.loadError !== undefined);
  const sets: ObjectSet[] = [
    releaseSet(BASELINE_REV, release),
    THIS_TREE,
    releaseSet(`control: ${BASELINE_REV} again`, release),
    ...(loads('inline') ? [{ ...THIS_TREE, label: 'this tree, all inlined', dir: inline }] : []),
    ...(loads('tail call (from_pod only)') ? [{ ...THIS_TREE, label: 'tail call (from_pod only)', dir: tailcall }] : []),
  ];
  for (const v of verifier.filter((r) => r.loadError !== undefined)) log(`${v.variant} ${v.object}: ${v.loadError}`);
  log(`per-packet: ${sets.map((s) => s.label).join(', ')}; ${o.rounds} rounds × repeat ${o.repeat}, ${o.singles} single runs`);
  const perPacket: PerPacketRow[] = await runPerPacketSets(o, sets);

  const run: PipelineRun = {
    command: `node --enable-source-maps dist/bench/pipeline.js${quick ? ' --quick' : ''}`,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    started: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
    seconds: (Date.now() - started) / 1000,
    baseline: BASELINE_REV,
    options: { ...o, verifierRuns },
    perPacket,
    verifier,
  };
  const md = pipelineMarkdown(run);
  const dir = join(ROOT, 'bench', 'results');
  const base = quick ? 'pipeline-quick' : 'pipeline';
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${base}.md`), md);
  writeFileSync(join(dir, `${base}.json`), JSON.stringify(run, null, 2) + '\n');
  console.log(md);
  log(`wrote bench/results/${base}.{md,json} in ${Math.round(run.seconds)} s`);
  return perPacket.every((r) => r.nsPerPacket > 0) ? 0 : 1;
}

await exitAfter(main);
