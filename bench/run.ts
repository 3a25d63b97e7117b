// bench: `make bench` / `make bench-quick`. Checks the peer generators, measures the
// per-packet cost and the data plane of every contestant in one run, prints the tables,
// and writes bench/results/latest.{md,svg,json}. Root only: namespaces, BPF, cgroups.
//
//   node dist/bench/run.js [--quick] [--sizes 1,1000,...] [--check]
// --quick: N in {1, 1000}, 1 s per measurement, < 3 minutes; exits non-zero unless every
//          contestant produced a number at every size (the CI smoke check).
// --check: only the peer generator checks.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCleanups } from '../test/lib/cleanup.js';
import { Lab } from '../test/lib/lab.js';
import { CONTESTANTS, LABEL, runDataplane, type Durations } from './dataplane.js';
import { checkPeers } from './peers/check.js';
import { runPerPacket } from './perpacket.js';
import { markdown, svg, type RunInfo } from './report.js';
import { ROOT, tcpbenchBinary } from './tools.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const checkOnly = argv.includes('--check');
const sizesArg = argv[argv.indexOf('--sizes') + 1];
const sizes = argv.includes('--sizes') && sizesArg ? sizesArg.split(',').map(Number) : quick ? [1, 1000] : [1, 1000, 10_000, 50_000];
const durations: Durations = quick ? { crrSeconds: 1, rrSeconds: 0.5, iperfSeconds: 1, warmup: 0.2 } : { crrSeconds: 2, rrSeconds: 1, iperfSeconds: 2, warmup: 0.3 };
const rounds = quick ? 2 : 3;
const RESULTS = join(ROOT, 'bench', 'results');

const sh = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n')[0]!;
  } catch {
    return '?';
  }
};
const log = (line: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('bench needs root (network namespaces, BPF, cgroups)');
    return 1;
  }
  const started = Date.now();
  const tmp = mkdtempSync(join(tmpdir(), 'weir-bench-'));
  try {
    tcpbenchBinary();
    const checkLab = await Lab.create({ name: 'bench-check' });
    let checks: string[];
    try {
      checks = await checkPeers(checkLab, tmp);
    } finally {
      await checkLab.destroy();
    }
    checks.forEach((c) => log(`check: ${c}`));
    if (checkOnly) return 0;

    log('per-packet cost (BPF_PROG_TEST_RUN)');
    const perPacket = await runPerPacket(quick ? { repeat: 100_000, singles: 2000 } : { repeat: 1_000_000, singles: 20_000 });

    log(`data plane: sizes ${sizes.join(', ')}; contestants ${CONTESTANTS.join(', ')}`);
    const results = await runDataplane({ sizes, durations, rounds, tmp, programBudgetMs: quick ? 60_000 : 300_000, log });

    const cpu = cpus()[0]?.model ?? '?';
    const info: RunInfo = {
      command: `make bench${quick ? '-quick' : ''}  (node --enable-source-maps dist/bench/run.js ${argv.join(' ')})`.replace(/ \)$/, ')'),
      machine: `${sh('uname', ['-srm'])}, ${cpus().length} × ${cpu}, ${Math.round(Number(readFileSync('/proc/meminfo', 'utf8').match(/MemTotal:\s+(\d+)/)?.[1] ?? 0) / 1048576)} GiB`,
      tools: [sh('iptables-legacy', ['--version']), sh('iptables-nft', ['--version']), sh('nft', ['--version']), sh('iperf3', ['--version']), `node ${process.version}`].join('; '),
      started: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
      seconds: (Date.now() - started) / 1000,
      mode: quick ? 'quick' : 'full',
      sizes,
      durations: `${rounds} rounds per size, each figure the median over rounds; per round and contestant: ${durations.crrSeconds} s connect/request/close loop, ${durations.rrSeconds} s kept-alive request/response, ${durations.iperfSeconds} s iperf3 (after ${durations.warmup} s warm-up each)`,
      checks,
    };
    const md = markdown(info, results, perPacket);
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(join(RESULTS, 'latest.md'), md);
    writeFileSync(join(RESULTS, 'latest.svg'), svg(info, results));
    writeFileSync(join(RESULTS, 'latest.json'), JSON.stringify({ info, perPacket, results }, null, 2) + '\n');
    console.log(md);
    log(`wrote bench/results/latest.{md,svg,json} in ${Math.round(info.seconds)} s`);

    // the smoke check: every contestant produced a number (quick: at every size; full: at
    // every size it was not skipped for its programming time)
    // (a peer whose own tool fails to load its ruleset at a size, e.g. iptables-legacy-restore
    // at 50k services, is a finding about the peer, reported in the table, not a failed run)
    const peerLoadFailure = (r: (typeof results)[number]) => !quick && !!r.error && r.contestant !== 'direct' && !r.contestant.startsWith('weir') && !r.programmed;
    const missing = results.filter((r) => !peerLoadFailure(r) && (r.error || (!r.skipped && !r.crr) || (quick && r.skipped)));
    const noNumber = CONTESTANTS.filter((c) => !results.some((r) => r.contestant === c && r.crr));
    for (const m of missing) log(`no number: ${LABEL[m.contestant]} at ${m.services} services: ${m.error ?? m.skipped}`);
    for (const c of noNumber) log(`no number at all: ${LABEL[c]}`);
    if (!perPacket.every((r) => r.nsPerPacket > 0)) log('per-packet: a case measured 0 ns');
    return missing.length || noNumber.length || !perPacket.every((r) => r.nsPerPacket > 0) ? 1 : 0;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(e);
} finally {
  await runCleanups();
}
process.exit(code);
