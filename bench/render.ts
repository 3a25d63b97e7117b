// bench: re-renders bench/results/<base>.md and its charts from <base>.json, e.g. after the
// report's wording changed; the figures are the stored run's, untouched.
//
//   node dist/bench/render.js [latest|quick|latest-controlplane|...|soak|soak-5min]

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpSvg, markdown, svg, type RunInfo } from './report.js';
import type { CpMeasurement } from './controlplane.js';
import type { Measurement } from './dataplane.js';
import type { PerPacketRow } from './perpacket.js';
import { soakMarkdown, soakSvg, type SoakRun } from './soak-report.js';

const RESULTS = join(process.cwd(), 'bench', 'results');
const base = process.argv[2] ?? 'latest';
if (base.startsWith('soak')) {
  // the soak's own report (bench/soak-report.ts): its tables and its curves
  const soak = JSON.parse(readFileSync(join(RESULTS, `${base}.json`), 'utf8')) as SoakRun;
  writeFileSync(join(RESULTS, `${base}.md`), soakMarkdown(soak));
  writeFileSync(join(RESULTS, `${base}.svg`), soakSvg(soak));
  console.log(`rendered bench/results/${base}.{md,svg} from ${base}.json`);
  process.exit(0);
}
const run = JSON.parse(readFileSync(join(RESULTS, `${base}.json`), 'utf8')) as {
  info: RunInfo;
  perPacket: PerPacketRow[];
  results: Measurement[];
  controlplane: CpMeasurement[];
};
writeFileSync(join(RESULTS, `${base}.md`), markdown(run.info, run.results, run.perPacket, run.controlplane));
if (run.info.parts.includes('dataplane')) writeFileSync(join(RESULTS, `${base}.svg`), svg(run.info, run.results));
if (run.info.parts.includes('controlplane')) writeFileSync(join(RESULTS, `${base}-cp.svg`), cpSvg(run.info, run.controlplane));
console.log(`rendered bench/results/${base}.md and charts from ${base}.json`);
