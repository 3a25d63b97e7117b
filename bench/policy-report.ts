// bench: the tables of the NetworkPolicy part (bench/policy.ts), written to bench/results/policy.md
// (quick runs: policy-quick.md) by bench/run.ts.

import type { Percentiles } from './controlplane.js';
import { POLICY_LABEL, type LabResult, type PolicyBenchResult, type WeirCpResult } from './policy.js';

export interface PolicyRunInfo {
  command: string;
  machine: string;
  started: string;
  seconds: number;
  /** /proc/loadavg at the start and the end of the part (the machine is shared) */
  load: { start: string; end: string };
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x?: number) => (x === undefined ? '–' : x < 10 ? x.toFixed(2) : x.toFixed(0));
const int = (x?: number) => (x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
const ratio = (a?: number, b?: number) => (a === undefined || b === undefined || !b ? '–' : `${(a / b).toFixed(2)}×`);
const pcts = (p?: Percentiles) => (p ? `${ms(p.p50_ms)} | ${ms(p.p99_ms)} | ${ms(p.max_ms)}` : '– | – | –');
const spread = (xs: number[]) => (xs.length > 1 ? ` (${ms(Math.min(...xs))}–${ms(Math.max(...xs))})` : '');

function weirLine(w: WeirCpResult): string {
  const c = w.counts;
  return (
    `${c.policies} policies, ${c.identities} identities, ${int(c.ipcache)} ipcache, ${int(c.endpoints)} endpoints, ` +
    `${int(c.keys)} policy keys (${int(w.writes)} map writes${w.errors ? `, **${int(w.errors)} refused**: ${w.failures?.join('; ')}` : ''})`
  );
}

function fromNothing(r: PolicyBenchResult): string[] {
  const out = [
    '| contestant | layout | what is programmed | from nothing, ms: median (range) | first run | of which (medians) |',
    '|---|---|---|---:|---:|---|',
  ];
  for (const w of r.weir)
    out.push(
      `| ${POLICY_LABEL.weir} | ${w.layout} (${w.localPods} local pods) | ${weirLine(w)} | ${ms(med(w.programMs))}${spread(w.programMs)} | ` +
        `${ms(w.programMs[0])} | build ${ms(med(w.buildMs))}, write ${ms(med(w.writeMs))} |`,
    );
  for (const p of r.peers)
    out.push(
      p.error
        ? `| ${POLICY_LABEL[p.contestant]} | ${p.layout} | FAILED: ${p.error} | | | |`
        : `| ${POLICY_LABEL[p.contestant]} | ${p.layout} | ${p.programmed} | ${ms(med(p.programMs))}${spread(p.programMs)} | ` +
            `${ms(p.programMs[0])} | ${p.ipsetMs ? `ipset restore ${ms(med(p.ipsetMs))}` : ''} |`,
    );
  return out;
}

function changes(r: PolicyBenchResult): string[] {
  const out = ['| contestant | layout | changes | p50 ms | p99 ms | max ms | what a change wrote |', '|---|---|---:|---:|---:|---:|---|'];
  for (const w of r.weir)
    out.push(
      `| ${POLICY_LABEL.weir} | ${w.layout} | ${w.change?.count ?? 0} | ${pcts(w.change)} | map writes p50 ` +
        `${int(w.changeWrites?.p50_ms)}, p99 ${int(w.changeWrites?.p99_ms)}; build p50 ${ms(w.changeBuild?.p50_ms)} / p99 ` +
        `${ms(w.changeBuild?.p99_ms)} ms, write p50 ${ms(w.changeWrite?.p50_ms)} / p99 ${ms(w.changeWrite?.p99_ms)} ms; local pods p50 ` +
        `${ms(w.changeLocal?.p50_ms)} / p99 ${ms(w.changeLocal?.p99_ms)}, remote p50 ${ms(w.changeRemote?.p50_ms)} / p99 ` +
        `${ms(w.changeRemote?.p99_ms)}${w.changesWithoutEndpoint ? `; ${w.changesWithoutEndpoint} relabelled local pods had no endpoint (map full)` : ''} |`,
    );
  for (const p of r.peers)
    if (!p.error) out.push(`| ${POLICY_LABEL[p.contestant]} | ${p.layout} | ${p.change?.count ?? 0} | ${pcts(p.change)} | ${p.changeWhat ?? ''} |`);
  return out;
}

function cpRatios(r: PolicyBenchResult): string[] {
  const out = ['| weir ÷ peer | layout | from nothing | change p50 | change p99 |', '|---|---|---:|---:|---:|'];
  for (const p of r.peers) {
    const w = r.weir.find((x) => x.layout === p.layout);
    if (!w || p.error) continue;
    out.push(
      `| weir ÷ ${POLICY_LABEL[p.contestant]} | ${p.layout} | ${ratio(med(w.programMs), med(p.programMs))} | ` +
        `${ratio(w.change?.p50_ms, p.change?.p50_ms)} | ${ratio(w.change?.p99_ms, p.change?.p99_ms)} |`,
    );
  }
  return out;
}

function perPacket(r: PolicyBenchResult): string[] {
  const out = [
    '| case | program | method | policy on | policy off (conntrack of every flow kept) | all off | the policy stage adds | policy on adds to all off |',
    '|---|---|---|---:|---:|---:|---:|---:|',
    `| floor: an empty TC program | bench_floor | fastest round | ${r.floor} | | | | |`,
  ];
  for (const x of r.perPacket) out.push(`| ${x.case} | ${x.program} | ${x.method} | ${x.on} | ${x.ctOnly} | ${x.off} | ${x.on - x.ctOnly} | ${x.on - x.off} |`);
  return out;
}

const perConnUs = (rate?: number) => (rate ? 1e6 / rate : undefined);
function lab(rs: LabResult[]): string[] {
  const out = [
    '| contestant | conn/s on | conn/s off | on ÷ off | connect p50 µs on / off | added per connection µs | ' +
      'req/s on | req/s off | on ÷ off | added per request µs |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const l of rs) {
    if (l.error || !l.on || !l.off) {
      out.push(`| ${POLICY_LABEL[l.contestant]} | FAILED: ${l.error ?? 'no figures'} |||||||||`);
      continue;
    }
    const dc = perConnUs(l.on.crr.rate)! - perConnUs(l.off.crr.rate)!;
    const dr = perConnUs(l.on.rr.rate)! - perConnUs(l.off.rr.rate)!;
    out.push(
      `| ${POLICY_LABEL[l.contestant]} | ${int(l.on.crr.rate)} | ${int(l.off.crr.rate)} | ${ratio(l.on.crr.rate, l.off.crr.rate)} | ` +
        `${l.on.crr.connect?.p50_us.toFixed(1)} / ${l.off.crr.connect?.p50_us.toFixed(1)} | ${dc.toFixed(2)} | ${int(l.on.rr.rate)} | ` +
        `${int(l.off.rr.rate)} | ${ratio(l.on.rr.rate, l.off.rr.rate)} | ${dr.toFixed(2)} |`,
    );
  }
  return out;
}

export function policyMarkdown(info: PolicyRunInfo, r: PolicyBenchResult): string {
  const node = r.weir.find((w) => w.layout === 'node');
  const target = (ok: boolean) => (ok ? 'met' : '**missed**');
  return [
    '# NetworkPolicy speed (issue 13)',
    '',
    `\`${info.command}\` · ${info.machine} · started ${info.started} · ${Math.round(info.seconds)} s · ` +
      `load average (1/5/15 min) at start ${info.load.start}, at end ${info.load.end}`,
    '',
    'The cluster (bench/peers/policy-cluster.ts): 1,000 NetworkPolicies over 5,000 pods in 50 namespaces, 46 nodes; 600 pod',
    'identities, 500 ipBlock prefixes (cidr + except), named ports that resolve to 8080 or 8081 by pod, a port range. **node**: this',
    "node holds its share (~110 pods); **all-local**: every pod on this node (the worst case for one node's maps). Every",
    'contestant programs the same objects; see docs/bench.md "NetworkPolicy" for what each figure includes.',
    '',
    `Targets (node layout): from nothing under 1 s: median ${ms(node ? med(node.programMs) : undefined)} ms, ` +
      `${target(!!node && med(node.programMs) < 1000)}; ` +
      `the first run, in a cold process as a daemon starts: ${ms(node?.programMs[0])} ms, ${target(!!node && node.programMs[0]! < 1000)}; ` +
      `one label change under 50 ms p99: ${ms(node?.change?.p99_ms)} ms, ${target(!!node?.change && node.change.p99_ms < 50)}.`,
    '',
    '## Control plane: from nothing',
    '',
    ...fromNothing(r),
    '',
    '## Control plane: one pod relabelled, end to end',
    '',
    'weir: the Pod object replaced in the store → PolicySync (incremental build with the last model, desiredPolicyMaps, PolicyWriter.apply)',
    "→ the apply's end; the pinned ipcache (and the endpoint, for a local pod) then checked for the pod's new identity. Peers: their",
    'commands only (ipset restore + iptables-restore --noflush of the chains that differ; one nft -f transaction).',
    '',
    ...changes(r),
    '',
    ...cpRatios(r),
    '',
    '## Per packet: weir through BPF_PROG_TEST_RUN, ns per packet, the 1,000-policy maps loaded (node layout)',
    '',
    ...perPacket(r),
    '',
    ...r.checks.map((c) => `- checked: ${c}`),
    '',
    '## Per packet in a lab: real connections through each contestant, its policy on and off',
    '',
    'Client (ns-24, app-1) and server (ns-24, app-0, :8080) pods of the cluster on one lab node, the contestant programmed with',
    'the whole cluster (node layout); before measuring, a pod no policy allows was refused with the policy on and let through',
    'with it off. "added" = 1/rate(on) − 1/rate(off), the time per connection (per request) the policy adds.',
    '',
    ...lab(r.lab),
    '',
  ].join('\n');
}
