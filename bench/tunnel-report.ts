// bench: the tables of the "NodePort to a remote backend" part (bench/tunnel.ts and
// bench/tunnel-perpacket.ts), written to bench/results/tunnel.md by bench/run.ts.

import type { TunnelPerPacketRow } from './tunnel-perpacket.js';
import { TUNNEL_LABEL, tunnelPart, type TunnelMeasurement } from './tunnel.js';

export interface TunnelRunInfo {
  command: string;
  machine: string;
  started: string;
  seconds: number;
  durations: string;
}

const gbit = (bps?: number) => (bps === undefined ? '–' : (bps / 1e9).toFixed(2));
const us = (x?: number) => (x === undefined ? '–' : x.toFixed(1));
const int = (x?: number) => (x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
const ratio = (a?: number, b?: number) => (a === undefined || b === undefined || !b ? '–' : `${(a / b).toFixed(2)}×`);

function table(ms: TunnelMeasurement[]): string[] {
  const out = [
    '| contestant | connect p50 µs | connect p99 µs | connections/s | requests/s (kept alive) | iperf3 client→backend Gbit/s | backend→client Gbit/s | CPU ms per Gbit (→ / ←) | retransmits (→ / ←) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const m of ms) {
    if (m.unavailable || m.error) {
      out.push(`| ${TUNNEL_LABEL[m.contestant]} | ${m.unavailable ? `not available: ${m.unavailable}` : `FAILED: ${m.error}`} |||||||| `);
      continue;
    }
    out.push(
      `| ${TUNNEL_LABEL[m.contestant]} | ${us(m.crr?.connect?.p50_us)} | ${us(m.crr?.connect?.p99_us)} | ${int(m.crr?.rate)} | ${int(m.rr?.rate)} | ` +
        `${gbit(m.forward?.bps)} | ${gbit(m.reverse?.bps)} | ${int(m.forward?.cpuMsPerGbit)} / ${int(m.reverse?.cpuMsPerGbit)} | ${int(m.forward?.retransmits)} / ${int(m.reverse?.retransmits)} |`,
    );
  }
  return out;
}

function ratios(a: TunnelMeasurement, b: TunnelMeasurement): string {
  return (
    `| ${TUNNEL_LABEL[a.contestant]} / ${TUNNEL_LABEL[b.contestant]} | ${ratio(a.crr?.connect?.p50_us, b.crr?.connect?.p50_us)} | ` +
    `${ratio(a.crr?.connect?.p99_us, b.crr?.connect?.p99_us)} | ${ratio(a.crr?.rate, b.crr?.rate)} | ${ratio(a.rr?.rate, b.rr?.rate)} | ` +
    `${ratio(a.forward?.bps, b.forward?.bps)} | ${ratio(a.reverse?.bps, b.reverse?.bps)} |`
  );
}

const RATIO_HEAD = [
  '| ratio | connect p50 | connect p99 | connections/s | requests/s | client→backend | backend→client |',
  '|---|---:|---:|---:|---:|---:|---:|',
];

export function tunnelMarkdown(info: TunnelRunInfo, ms: TunnelMeasurement[], pp: TunnelPerPacketRow[]): string {
  const ok = (m: TunnelMeasurement) => !m.error && !m.unavailable && m.crr;
  const nodeport = ms.filter((m) => tunnelPart(m.contestant) === 'nodeport');
  const encap = ms.filter((m) => tunnelPart(m.contestant) === 'encap');
  const weirs = nodeport.filter((m) => m.contestant.startsWith('weir-') && ok(m));
  const kps = nodeport.filter((m) => !m.contestant.startsWith('weir-') && ok(m));
  const by = (c: string) => ms.find((m) => m.contestant === c && ok(m));
  const lines = [
    '# NodePort to a backend on another node (issue 12)',
    '',
    `Run ${info.started}, ${Math.round(info.seconds)} s: \`${info.command}\`. Machine: ${info.machine}.`,
    `${info.durations}. The tcpbench client and server run on core 0 (taskset): left to the scheduler the kept-alive`,
    'rate is bimodal on this machine. iperf3 is not pinned and not capped (one lab carries traffic at a time). CPU: busy jiffies of the whole machine',
    '(/proc/stat: user, system, irq, softirq) over each iperf3 run, per Gbit received: it counts every process on this shared',
    'machine, so compare contestants within one run only.',
    '',
    'Two lab nodes per contestant on one underlay bridge (veth pairs), the backend pod on node2 (CNI ptp), a client on the',
    'underlay that knows no pod route dialling node1:NodePort (externalTrafficPolicy: Cluster). weir: `weir daemon` on both',
    'nodes (Node objects in its manifests; the tunnel maps also written through the pins until the daemon writes them).',
    'kube-proxy: its rules on node1 only (DNAT to the pod, MASQUERADE to node1: the backend sees node1, not the client).',
    '',
    '## NodePort, remote backend',
    '',
    ...table(nodeport),
    '',
    ...(weirs.length && kps.length ? ['weir / kube-proxy (latency: below 1 is better; rates and throughput: above 1 is better):', '', ...RATIO_HEAD] : []),
    ...weirs.flatMap((w) => kps.map((k) => ratios(w, k))),
    '',
    'How each path was checked before it was measured:',
    '',
    ...nodeport.filter((m) => m.path).map((m) => `- ${TUNNEL_LABEL[m.contestant]}: ${m.path}`),
    '',
    "## The encapsulation alone: weir's BPF VXLAN code against a collect_md device",
    '',
    'No NAT, no conntrack: the client dials the pod itself, routed through node1 (node MTU 1550, so that neither way meets',
    "path MTU discovery). `bench/tools/encap.bpf.c`: weir's `tunnel4_route`/`tunnel4_encap`/`tunnel4_decap` at TC ingress",
    "of both nodes' eth0 and the backend's veth, against `bpf_skb_set_tunnel_key` + `bpf_redirect` to `vxlan0`",
    "(`type vxlan external dstport 4789`), which builds the outer headers, the peer's device stripping them and a FIB",
    'redirect on its ingress (as Cilium does on cilium_vxlan).',
    '',
    ...table(encap),
    '',
    ...(by('encap-bpf') && by('encap-md') ? [...RATIO_HEAD, ratios(by('encap-bpf')!, by('encap-md')!)] : []),
    ...(by('encap-bpf') && by('routed') ? [ratios(by('encap-bpf')!, by('routed')!)] : []),
    '',
    ...encap.filter((m) => m.path).map((m) => `- ${TUNNEL_LABEL[m.contestant]}: ${m.path}`),
    '',
    '## Per-packet cost (BPF_PROG_TEST_RUN)',
    '',
    `Median of ${pp[0]?.runs ?? 0} single runs per case (p90 beside it), every case a distinct skb, run inside its lab node's`,
    "netns with the skb's ifindex set (so weir's FIB lookups see real routes); the verdict and output of each case were",
    'checked (encapsulated to the right node, decapsulated and redirected, reverse-NATed). A test run returns the redirect',
    "verdict but does not run the neighbour output or the device transmit: the collect_md row leaves out the VXLAN device's",
    'work, which is where that way encapsulates. Single runs include the test-run call (the floor row).',
    '',
    '| case | node | program | ns (median) | ns (p90) |',
    '|---|---|---|---:|---:|',
    ...pp.map((r) => `| ${r.case} | ${r.node} | ${r.program} | ${r.nsPerPacket} | ${r.p90Ns} |`),
    '',
  ];
  return lines.join('\n');
}
