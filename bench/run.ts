// bench: `make bench` / `make bench-quick`. Checks the peer generators, measures the
// per-packet cost and the data plane of every contestant in one run, prints the tables,
// and writes bench/results/latest.{md,svg,json} (quick runs: quick.*). Root only: namespaces, BPF, cgroups.
//
//   node dist/bench/run.js [--quick] [--sizes 1,1000,...] [--only dataplane|controlplane|tunnel|policy] [--changes K] [--check]
//                          [--family 4|6|both] [--rounds K]
// --quick: data plane N in {1, 1000}, 1 s per measurement; control plane N = 1000, 20
//          changes; < 3 minutes; exits non-zero unless every contestant produced a number at
//          every size (the CI smoke check, .ci/run); writes bench/results/quick.*.
// --only:  one part (the data plane with per-packet cost, or the control plane); writes
//          bench/results/latest-<part>.* so that a whole run's latest.* stay. `tunnel`: only
//          the NodePort-to-a-remote-backend part (bench/tunnel.ts), which every run ends with
//          and which writes bench/results/tunnel.{md,json} (quick runs: tunnel-quick.*, one
//          short round: it only checks that every contestant produced a number). `policy`: only
//          the NetworkPolicy part (bench/policy.ts), which every run ends with and which writes
//          bench/results/policy.{md,json} (quick runs: policy-quick.*, ~60 s).
// --sizes: both parts (the control plane leaves out sizes below 1,000).
// --check: only the peer generator checks.
// --rounds: data-plane rounds per size (default 5, quick 2); the tables show the median and min–max.
// --family: the data plane in IPv4 (default), IPv6, or both in the same run; IPv6 writes
//          bench/results/<base>-ipv6.{md,json} next to the IPv4 files (the same contestants:
//          kube-proxy's IPv6 proxier rules against weir's IPv6 programs).

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitAfter } from '../test/lib/cleanup.js';
import { Lab } from '../test/lib/lab.js';
import { CP_CONTESTANTS, CP_LABEL, runControlplane, type CpMeasurement } from './controlplane.js';
import { CONTESTANTS, LABEL, runDataplane, type Durations, type Measurement } from './dataplane.js';
import { checkPeers } from './peers/check.js';
import type { Family } from './peers/services.js';
import { runPerPacket, runPerPacketSets, THIS_TREE_V6 } from './perpacket.js';
import type { PerPacketRow } from './perpacket.js';
import { runPolicyBench } from './policy.js';
import { policyMarkdown } from './policy-report.js';
import { cpSvg, markdown, svg, type RunInfo } from './report.js';
import { CPUS, ROOT, tcpbenchBinary } from './tools.js';
import { runTunnel, TUNNEL_CONTESTANTS, TUNNEL_LABEL, type TunnelDurations } from './tunnel.js';
import { runTunnelPerPacket } from './tunnel-perpacket.js';
import { tunnelMarkdown, type TunnelRunInfo } from './tunnel-report.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const checkOnly = argv.includes('--check');
const sizesArg = argv[argv.indexOf('--sizes') + 1];
const sizes = argv.includes('--sizes') && sizesArg ? sizesArg.split(',').map(Number) : quick ? [1, 1000] : [1, 1000, 10_000, 50_000];
const durations: Durations = quick
  ? { crrSeconds: 1, rrSeconds: 0.5, iperfSeconds: 1, warmup: 0.2 }
  : { crrSeconds: 2, rrSeconds: 1, iperfSeconds: 2, warmup: 0.3 };
// 5 rounds: the median and the min–max over them are what the tables print; quick runs take 2
// (a smoke check: their spread is two points)
const rounds = argv.includes('--rounds') ? Number(argv[argv.indexOf('--rounds') + 1]) : quick ? 2 : 5;
const onlyArg = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
if (onlyArg !== undefined && onlyArg !== 'dataplane' && onlyArg !== 'controlplane' && onlyArg !== 'tunnel' && onlyArg !== 'policy') {
  console.error(`--only dataplane|controlplane|tunnel|policy, not ${onlyArg}`);
  process.exit(2);
}
const parts: RunInfo['parts'] = onlyArg === 'tunnel' || onlyArg === 'policy' ? [] : onlyArg ? [onlyArg] : ['dataplane', 'controlplane'];
const tunnelToo = onlyArg === undefined || onlyArg === 'tunnel';
const policyToo = onlyArg === undefined || onlyArg === 'policy';
const tunnelDurations: TunnelDurations = quick
  ? { crrSeconds: 0.3, rrSeconds: 0.2, iperfSeconds: 1, warmup: 0.1 }
  : { crrSeconds: 2, rrSeconds: 1, iperfSeconds: 2, warmup: 0.3 };
const tunnelRounds = quick ? 1 : 3;
const cpSizes = argv.includes('--sizes') ? sizes.filter((n) => n >= 1000) : quick ? [1000] : [1000, 10_000, 50_000];
const cpChanges = argv.includes('--changes') ? Number(argv[argv.indexOf('--changes') + 1]) : quick ? 20 : 100;
const RESULTS = join(ROOT, 'bench', 'results');
const familyArg = argv.includes('--family') ? argv[argv.indexOf('--family') + 1] : '4';
if (familyArg !== '4' && familyArg !== '6' && familyArg !== 'both') {
  console.error(`--family 4|6|both, not ${familyArg}`);
  process.exit(2);
}
const families: Family[] = familyArg === 'both' ? [4, 6] : [Number(familyArg) as Family];

const sh = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split('\n')[0]!;
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

    let perPacket: PerPacketRow[] = [];
    let results: Measurement[] = [];
    let results6: Measurement[] = [];
    let perPacket6: PerPacketRow[] = [];
    let perPacket6Error: string | undefined;
    if (parts.includes('dataplane')) {
      if (families.includes(4)) {
        log('per-packet cost (BPF_PROG_TEST_RUN)');
        perPacket = await runPerPacket(quick ? { repeat: 100_000, singles: 2000, rounds: 3 } : { repeat: 1_000_000, singles: 20_000, rounds: 7 });
      }

      // 100 s: kube-proxy nftables at 10k services takes ~280 s to load here (projected
      // quadratically from 1k: ~130 s), which alone would push the full run past 20 minutes
      const programBudgetMs = quick ? 60_000 : 100_000;
      if (families.includes(4)) {
        log(`data plane: sizes ${sizes.join(', ')}; contestants ${CONTESTANTS.join(', ')}`);
        results = await runDataplane({ sizes, durations, rounds, tmp, programBudgetMs, log });
      }
      if (families.includes(6)) {
        log('per-packet cost over IPv6 (BPF_PROG_TEST_RUN)');
        try {
          perPacket6 = await runPerPacketSets(quick ? { repeat: 100_000, singles: 2000, rounds: 3 } : { repeat: 1_000_000, singles: 20_000, rounds: 7 }, [
            THIS_TREE_V6,
          ]);
        } catch (e) {
          perPacket6Error = (e as Error).message.split('\n')[0]!;
          log(`per-packet over IPv6: FAILED ${perPacket6Error}`);
        }
        log(`data plane over IPv6: sizes ${sizes.join(', ')}; contestants ${CONTESTANTS.join(', ')}`);
        results6 = await runDataplane({ sizes, durations, rounds, tmp, programBudgetMs, log: (l) => log(`IPv6: ${l}`), family: 6 });
      }
    }
    let cp: CpMeasurement[] = [];
    if (parts.includes('controlplane')) {
      log(`control plane: sizes ${cpSizes.join(', ')}; ${cpChanges} changes; contestants ${CP_CONTESTANTS.join(', ')}`);
      cp = await runControlplane({
        sizes: cpSizes,
        changes: cpChanges,
        tmp,
        programBudgetMs: quick ? 60_000 : 300_000,
        changeBudgetMs: quick ? 15_000 : 30_000,
        log,
      });
    }

    const cpu = cpus()[0]?.model ?? '?';
    const info: RunInfo = {
      command: `make bench${quick ? '-quick' : ''}  (node --enable-source-maps dist/bench/run.js ${argv.join(' ')})`.replace(/ \)$/, ')'),
      machine: `${sh('uname', ['-srm'])}, ${cpus().length} × ${cpu}, ${Math.round(Number(readFileSync('/proc/meminfo', 'utf8').match(/MemTotal:\s+(\d+)/)?.[1] ?? 0) / 1048576)} GiB`,
      tools: [
        sh('iptables-legacy', ['--version']),
        sh('iptables-nft', ['--version']),
        sh('nft', ['--version']),
        sh('iperf3', ['--version']),
        `node ${process.version}`,
      ].join('; '),
      started: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
      seconds: (Date.now() - started) / 1000,
      mode: quick ? 'quick' : 'full',
      sizes,
      durations: `${rounds} rounds per size (each starting one contestant later), each figure the median over rounds with its min–max; per round and contestant: ${durations.crrSeconds} s connect/request/close loop, ${durations.rrSeconds} s kept-alive request/response, ${durations.iperfSeconds} s iperf3 (after ${durations.warmup} s warm-up each)`,
      pinning: `latency loops (tcpbench client and servers) on CPU ${CPUS.loops}, iperf3 sender on CPU ${CPUS.iperfClient} and receiver on CPU ${CPUS.iperfServer} (taskset / iperf3 -A)`,
      checks,
      parts,
      cpSizes,
      cpChanges,
    };
    mkdirSync(RESULTS, { recursive: true });
    // a quick run never replaces the full run's figures (the README quotes those)
    const base = `${quick ? 'quick' : 'latest'}${onlyArg ? `-${onlyArg}` : ''}`;
    if (parts.includes('dataplane') && families.includes(6)) {
      const info6: RunInfo = { ...info, parts: ['dataplane'], family: 6 };
      const md6 = markdown(info6, results6, perPacket6) + (perPacket6Error ? `\nPer-packet cost over IPv6: FAILED ${perPacket6Error}\n` : '');
      writeFileSync(join(RESULTS, `${base}-ipv6.md`), md6);
      writeFileSync(join(RESULTS, `${base}-ipv6.json`), JSON.stringify({ info: info6, perPacket: perPacket6, results: results6 }, null, 2) + '\n');
      console.log(md6);
      log(`wrote bench/results/${base}-ipv6.{md,json}`);
    }
    if (parts.length && (families.includes(4) || parts.includes('controlplane'))) {
      const md = markdown(info, results, perPacket, cp);
      writeFileSync(join(RESULTS, `${base}.md`), md);
      if (parts.includes('dataplane')) writeFileSync(join(RESULTS, `${base}.svg`), svg(info, results));
      if (parts.includes('controlplane')) writeFileSync(join(RESULTS, `${base}-cp.svg`), cpSvg(info, cp));
      writeFileSync(join(RESULTS, `${base}.json`), JSON.stringify({ info, perPacket, results, controlplane: cp }, null, 2) + '\n');
      console.log(md);
      log(`wrote bench/results/${base}.{md,json} and charts in ${Math.round(info.seconds)} s`);
    }

    // NodePort to a remote backend (issue 12): its own labs, tables and files
    let tunnelMissing: string[] = [];
    if (tunnelToo) {
      const t0 = Date.now();
      log('tunnel: per-packet cost (BPF_PROG_TEST_RUN)');
      const tpp = await runTunnelPerPacket({ singles: quick ? 500 : 20_000 });
      log(`tunnel: NodePort to a remote backend; contestants ${TUNNEL_CONTESTANTS.join(', ')}`);
      const tm = await runTunnel({ durations: tunnelDurations, rounds: tunnelRounds, tmp, log });
      const d = tunnelDurations;
      const tinfo: TunnelRunInfo = {
        command: info.command,
        machine: info.machine,
        started: new Date(t0).toISOString().replace(/\.\d+Z$/, 'Z'),
        seconds: (Date.now() - t0) / 1000,
        durations: `${tunnelRounds} round(s), each figure the median over rounds; per round and contestant: ${d.crrSeconds} s connect/request/close loop, ${d.rrSeconds} s kept-alive request/response, ${d.iperfSeconds} s iperf3 each way (after ${d.warmup} s warm-up each)`,
      };
      const tmd = tunnelMarkdown(tinfo, tm, tpp);
      const tbase = quick ? 'tunnel-quick' : 'tunnel';
      writeFileSync(join(RESULTS, `${tbase}.md`), tmd);
      writeFileSync(join(RESULTS, `${tbase}.json`), JSON.stringify({ info: tinfo, perPacket: tpp, results: tm }, null, 2) + '\n');
      console.log(tmd);
      log(`wrote bench/results/${tbase}.{md,json} in ${Math.round(tinfo.seconds)} s`);
      // a contestant the daemon does not offer (unavailable) is reported, not a failure
      tunnelMissing = [
        ...tm
          .filter((m) => !m.unavailable && (m.error || !m.crr || !m.forward?.bps || !m.reverse?.bps))
          .map((m) => `${TUNNEL_LABEL[m.contestant]}: ${m.error ?? 'no number'}`),
        ...tpp.filter((r) => !(r.nsPerPacket > 0)).map((r) => `per-packet ${r.case}: 0 ns`),
      ];
      for (const m of tunnelMissing) log(`no number: ${m}`);
    }

    // NetworkPolicy (issue 13): its own bpffs, labs, tables and files
    const policyMissing: string[] = [];
    if (policyToo) {
      const t0 = Date.now();
      const loadStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      log(`policy: 1,000 policies over 5,000 pods; contestants weir, iptables + ipset, nftables`);
      const pr = await runPolicyBench({ quick, tmp, log: (l) => log(`policy: ${l}`) });
      const pinfo = {
        command: info.command,
        machine: info.machine,
        started: new Date(t0).toISOString().replace(/\.\d+Z$/, 'Z'),
        seconds: (Date.now() - t0) / 1000,
        load: { start: loadStart, end: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') },
      };
      const pmd = policyMarkdown(pinfo, pr);
      const pbase = quick ? 'policy-quick' : 'policy';
      writeFileSync(join(RESULTS, `${pbase}.md`), pmd);
      writeFileSync(join(RESULTS, `${pbase}.json`), JSON.stringify({ info: pinfo, ...pr }, null, 2) + '\n');
      console.log(pmd);
      log(`wrote bench/results/${pbase}.{md,json} in ${Math.round(pinfo.seconds)} s`);
      // weir must produce every figure; a peer whose own tool fails is a finding (full runs), not in quick ones
      for (const w of pr.weir) if (!w.change || !(w.programMs.length > 0)) policyMissing.push(`weir ${w.layout}: no figure`);
      for (const p of pr.peers) if (p.error && quick) policyMissing.push(`${p.contestant} ${p.layout}: ${p.error}`);
      for (const l of pr.lab)
        if ((l.error || !l.on) && (quick || l.contestant === 'weir')) policyMissing.push(`lab ${l.contestant}: ${l.error ?? 'no figure'}`);
      if (!pr.perPacket.every((r) => r.on > 0)) policyMissing.push('per-packet: a case measured 0 ns');
      for (const m of policyMissing) log(`no number: policy ${m}`);
    }

    // the smoke check: every contestant produced a number (quick: at every size; full: at
    // every size it was not skipped for its programming time)
    // (a peer whose own tool fails to load its ruleset at a size, e.g. iptables-legacy-restore
    // at 50k services, is a finding about the peer, reported in the table, not a failed run)
    const peerLoadFailure = (r: (typeof results)[number]) =>
      !quick && !!r.error && r.contestant !== 'direct' && !r.contestant.startsWith('weir') && !r.programmed;
    const missing = [...results, ...results6].filter((r) => !peerLoadFailure(r) && (r.error || (!r.skipped && !r.crr) || (quick && r.skipped)));
    const noNumber = parts.includes('dataplane')
      ? families.flatMap((fam) =>
          CONTESTANTS.filter((c) => !(fam === 6 ? results6 : results).some((r) => r.contestant === c && r.crr)).map((c) => `${c}${fam === 6 ? ' (IPv6)' : ''}`),
        )
      : [];
    // control plane: weir must produce every figure; a peer whose own tool fails at a size is a finding (full runs)
    const cpMissing = cp.filter(
      (m) => (m.error && (quick || m.contestant === 'weir' || m.programMs !== undefined)) || (quick && m.skipped) || (!m.error && !m.skipped && !m.change),
    );
    const cpNoNumber = parts.includes('controlplane') ? CP_CONTESTANTS.filter((c) => !cp.some((m) => m.contestant === c && m.change)) : [];
    for (const m of cpMissing) log(`no number: ${CP_LABEL[m.contestant]} at ${m.services} services: ${m.error ?? m.skipped}`);
    for (const c of cpNoNumber) log(`no number at all: ${CP_LABEL[c]}`);
    for (const m of missing) log(`no number: ${LABEL[m.contestant]}${m.family === 6 ? ' (IPv6)' : ''} at ${m.services} services: ${m.error ?? m.skipped}`);
    for (const c of noNumber) log(`no number at all: ${c}`);
    if (!perPacket.every((r) => r.nsPerPacket > 0)) log('per-packet: a case measured 0 ns');
    const perPacket6Missing = families.includes(6) && parts.includes('dataplane') && (!!perPacket6Error || !perPacket6.every((r) => r.nsPerPacket > 0));
    return missing.length ||
      noNumber.length ||
      cpMissing.length ||
      cpNoNumber.length ||
      tunnelMissing.length ||
      policyMissing.length ||
      perPacket6Missing ||
      !perPacket.every((r) => r.nsPerPacket > 0)
      ? 1
      : 0;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await exitAfter(main);
