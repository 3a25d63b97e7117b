// `make fuzz`: the hostile-packet campaign (campaign.ts) at full count, its figures written to
// bench/results/fuzz.md and fuzz.json, failing packets as hex under build/fuzz/. Exits 1 when
// an oracle failed, so a replay (`make fuzz SEED=... COUNT=...`) shows the failure again;
// `make fuzz PACKET=build/fuzz/<file>.hex` runs one failing packet alone.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../lib/paths.js';
import { runCampaign, type CampaignResult } from './campaign.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '20261130' },
    count: { type: 'string', default: '1000000' },
    only: { type: 'string' },
    // a failing packet's hex file (build/fuzz/*.hex): just that packet, its result printed
    packet: { type: 'string' },
    out: { type: 'string', default: join(repoRoot, 'bench', 'results') },
  },
});
const seed = Number(values.seed);
const given = values.packet
  ? [
      Buffer.from(
        readFileSync(values.packet, 'utf8')
          .split('\n')
          .filter((l) => l && !l.startsWith('#'))
          .join(''),
        'hex',
      ),
    ]
  : undefined;
const count = given ? 1 : Number(values.count);
if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(count) || count <= 0) throw new Error(`bad --seed ${values.seed} or --count ${values.count}`);
const failureDir = join(repoRoot, 'build', 'fuzz');
// the failures of this run only: older ones would read as this run's
if (!given) rmSync(failureDir, { recursive: true, force: true });
mkdirSync(failureDir, { recursive: true });
console.log(`# fuzz: seed ${seed}, ${count} packets per program (replay: make fuzz SEED=${seed} COUNT=${count})`);
const t0 = performance.now();
const r = await runCampaign({
  seed,
  count,
  failureDir,
  log: (l) => console.log(l),
  ...(values.only ? { only: values.only.split(',') } : {}),
  ...(given ? { packets: given } : {}),
});
if (given) {
  // one packet: what each program did with it, and no results files
  for (const p of r.programs) console.log(`# ${p.program}: verdicts ${JSON.stringify(p.verdicts)}, reasons ${JSON.stringify(p.reasons)}`);
  for (const f of r.failures) console.log(`# FAIL ${f.program} ${f.oracle}: ${f.detail}`);
  process.exit(r.failures.length ? 1 : 0);
}
const wallSeconds = (performance.now() - t0) / 1000;

const pct = (a: number, b: number) => (b ? `${((100 * a) / b).toFixed(4)}%` : 'n/a');
function markdown(r: CampaignResult): string {
  const lines = [
    '# Hostile packets (issue 16): fuzz results',
    '',
    `Written by \`make fuzz SEED=${r.seed} COUNT=${r.count}\` (test/fuzz/main.ts) on Linux ${r.kernel}; replay with the same command.`,
    `Every program got the same ${r.count.toLocaleString('en')} packets: generated templates (test/lib/packet/fuzz.ts) of both families, VXLAN`,
    "frames with either inner family, ICMP/ICMPv6 errors quoting NAT'd flows, fragments, IPv4 options, IPv6 extension headers,",
    'then mutated. The maps held real state: frontends and backends of both families, a peer node and its pod CIDR, and',
    'conntrack entries made by running the first packets of flows. Oracles in docs/dataplane.md, "Hostile packets".',
    '',
    '| program | packets | refused (too short) | parse agreement (kernel = host) | decision agreement | stateless | rewritten without state | ' +
      'rewrites checked | checksums broken | unsafe | run time |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.programs.map(
      (p) =>
        `| ${p.program} | ${p.packets} | ${p.refused} | ${p.parseAgree}/${p.parseCompared} (${pct(p.parseAgree, p.parseCompared)}) | ` +
        `${p.decisionAgree}/${p.decisionChecked} (${pct(p.decisionAgree, p.decisionChecked)}) | ${p.stateless} | ${p.statelessRewritten} | ` +
        `${p.rewrittenChecked} | ${p.checksumsBroken} | ${p.unsafe} | ${p.runSeconds.toFixed(1)} s |`,
    ),
    '',
    `Generation: ${r.generateSeconds.toFixed(1)} s for ${r.count} packets, shared by all programs; whole run ${wallSeconds.toFixed(1)} s wall.`,
    r.dmesgNew.length
      ? `Kernel log: ${r.dmesgNew.length} new warning lines:\n\n    ${r.dmesgNew.join('\n    ')}`
      : 'Kernel log: no new warning line (dmesg before and after).',
    `Failures: ${r.failures.length ? '' : 'none.'}`,
    ...r.failures.map((f) => `- ${f.program} packet ${f.index}, ${f.oracle}: ${f.detail} (${f.file})`),
    '',
    '## What the programs did with them (weir_counters, per program)',
    '',
    ...r.programs.map((p) => `- ${p.program}: verdicts ${JSON.stringify(p.verdicts)}; reasons ${JSON.stringify(p.reasons)}`),
    '',
    '## The stream',
    '',
    `- kinds: ${JSON.stringify(r.kinds)}`,
    `- mutations: ${JSON.stringify(r.mutations)}`,
    '',
  ];
  return lines.join('\n');
}
mkdirSync(values.out, { recursive: true });
writeFileSync(join(values.out, 'fuzz.json'), JSON.stringify({ ...r, wallSeconds }, null, 2) + '\n');
writeFileSync(join(values.out, 'fuzz.md'), markdown(r));
for (const p of r.programs)
  console.log(
    `# ${p.program}: ${p.packets} packets in ${p.runSeconds.toFixed(1)} s; parse agreement ${p.parseAgree}/${p.parseCompared}; ` +
      `decision ${p.decisionAgree}/${p.decisionChecked}; rewritten without state ${p.statelessRewritten}/${p.stateless}; unsafe ${p.unsafe}`,
  );
console.log(`# dmesg: ${r.dmesgNew.length} new warning lines; ${r.failures.length} failures; results in ${values.out}/fuzz.md`);
if (r.failures.length || r.dmesgNew.length) process.exitCode = 1;
