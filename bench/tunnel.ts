// bench: NodePort to a backend on another node (issue 12, "Speed"), with real traffic. One
// two-node lab per contestant (node1, node2 on an underlay bridge, the backend pod on node2, a
// client on the underlay), so no contestant inherits another's netfilter, conntrack or BPF
// state. The client dials node1:NodePort; weir (one contestant per --external-service-mode)
// sends the flow through its VXLAN tunnel to node2, kube-proxy (its iptables rules through
// iptables-nft, its nftables table) DNATs and MASQUERADEs it to node1's address
// (externalTrafficPolicy: Cluster). Then the encapsulation alone, with no NAT: the client
// dials the pod's own address through node1, routed plainly, encapsulated by weir's BPF code,
// or by a collect_md VXLAN device (bench/tools/encap.bpf.c). The same C client (tcpbench) and
// iperf3 (both directions, uncapped) measure every contestant; CPU is read from /proc/stat.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachTc, BpfMap, BpfObject, codecFor, type TcAttachment, typedMap } from '../src/bpf/index.js';
import { counterTotals, readCounters } from '../src/dataplane/counters.js';
import { Lab, type External, type LabNode, type Pod } from '../test/lib/lab.js';
import { sleep } from '../test/lib/proc.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../test/lib/weir-node.js';
import { applyIptables, flushIptables, iptablesRestoreInput } from './peers/iptables.js';
import { applyNftables, flushNftables, nftablesInput } from './peers/nftables.js';
import type { BenchService } from './peers/services.js';
import { encapObject, runClient, startServer, type TcpbenchResult } from './tools.js';

/** weir's --external-service-mode values under test; one contestant each (`dsr`: issue 12's DSR mode) */
export const WEIR_MODES = ['tunnel', 'dsr'] as const;
export type WeirMode = (typeof WEIR_MODES)[number];

export const TUNNEL_CONTESTANTS = [...WEIR_MODES.map((m) => `weir-${m}` as const), 'nftables', 'iptables-nft', 'routed', 'encap-bpf', 'encap-md'] as const;
export type TunnelContestant = (typeof TUNNEL_CONTESTANTS)[number];

export const TUNNEL_LABEL: Record<TunnelContestant, string> = {
  'weir-tunnel': 'weir tunnel (VXLAN in BPF)',
  'weir-dsr': 'weir dsr',
  nftables: 'kube-proxy nftables (SNAT)',
  'iptables-nft': 'kube-proxy iptables (nft, SNAT)',
  routed: 'kernel routing, no tunnel, no BPF (reference)',
  'encap-bpf': "VXLAN in BPF (weir's tunnel.h)",
  'encap-md': 'VXLAN collect_md device + set_tunnel_key',
};

/** which question a contestant answers: NodePort to a remote backend, or the encapsulation alone */
export const tunnelPart = (c: TunnelContestant): 'nodeport' | 'encap' => (c === 'routed' || c.startsWith('encap') ? 'encap' : 'nodeport');

export const ADDR = {
  node1: '198.18.0.1',
  node2: '198.18.0.2',
  client: '198.18.0.100',
  pods1: '198.18.65.0/24',
  pods2: '198.18.66.0/24',
  clusterCIDR: '198.18.64.0/18',
  serviceCIDR: '198.19.0.0/16',
  clusterIP: '198.19.255.20',
} as const;
export const PORTS = { echo: 7000, iperf: 5201, echoNodePort: 30080, iperfNodePort: 30081 } as const;
/** the core the tcpbench client and server share: placed by the scheduler, the kept-alive
 *  request rate on this 2-core machine is bimodal (same core or not: ~15k or ~100k/s) */
const CPU = 0;
/** the collect_md devices' MAC, the same on both nodes (the inner frame's destination) */
const VXLAN_MAC = '02:00:5e:57:45:49';

export interface TunnelDurations {
  crrSeconds: number;
  rrSeconds: number;
  /** whole seconds: iperf3 -t takes an integer (0.5 reads as 0, which runs for ever) */
  iperfSeconds: number;
  warmup: number;
}

export interface Iperf {
  bps: number;
  retransmits: number;
  /** busy CPU (user+system+irq+softirq, every core) over the run, per Gbit carried: ms */
  cpuMsPerGbit: number;
}

export interface TunnelMeasurement {
  contestant: TunnelContestant;
  /** what was set up */
  setup?: string;
  crr?: TcpbenchResult;
  rr?: TcpbenchResult;
  /** client -> backend */
  forward?: Iperf;
  /** backend -> client (iperf3 -R) */
  reverse?: Iperf;
  /** how the bench checked that the traffic took the path it is named for */
  path?: string;
  error?: string;
  /** the contestant cannot run here (e.g. the daemon rejects the mode): no number, by design */
  unavailable?: string;
}

interface Arena {
  c: TunnelContestant;
  lab: Lab;
  node1: LabNode;
  node2: LabNode;
  backend: Pod;
  client: External;
  weir: WeirNode[];
  objects: BpfObject[];
  attachments: TcAttachment[];
  setup: string;
}

const remoteServices = (backendIP: string): BenchService[] =>
  (['echo', 'iperf'] as const).map((name) => ({
    namespace: 'bench',
    name: 'remote',
    portName: name,
    protocol: 'tcp',
    clusterIP: ADDR.clusterIP,
    port: name === 'echo' ? 80 : PORTS.iperf,
    nodePort: name === 'echo' ? PORTS.echoNodePort : PORTS.iperfNodePort,
    externalTrafficPolicy: 'Cluster',
    endpoints: [{ ip: backendIP, port: name === 'echo' ? PORTS.echo : PORTS.iperf, local: false }],
  }));

function nodeObject(n: LabNode): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name } },
    spec: { podCIDR: n.podSubnet, podCIDRs: [n.podSubnet] },
    status: { addresses: [{ type: 'InternalIP', address: n.address }] },
  };
}

/** The NodePort service and both Node objects, as the daemon reads them from its manifests directory. */
function weirManifests(nodes: LabNode[], backend: Pod): object[] {
  const ports: PortSpec[] = [
    { name: 'echo', port: 80, targetPort: PORTS.echo, protocol: 'TCP', nodePort: PORTS.echoNodePort },
    { name: 'iperf', port: PORTS.iperf, targetPort: PORTS.iperf, protocol: 'TCP', nodePort: PORTS.iperfNodePort },
  ];
  return [
    ...nodes.map(nodeObject),
    service({ name: 'remote', namespace: 'bench', type: 'NodePort', clusterIP: ADDR.clusterIP, ports, externalTrafficPolicy: 'Cluster' }),
    endpointSlice({ name: 'remote-1', service: 'remote', namespace: 'bench', ports, endpoints: [{ ip: backend.ip, node: backend.node.name }] }),
  ];
}

/**
 * The tunnel maps through their pins: `peer`'s pod CIDR (and `extra` /32s) to its address,
 * and `peer` as a node whose tunnel packets are accepted. The daemon will write the same
 * from the Node objects; until it does, the bench does (the same values either way).
 */
function writeTunnelMaps(pinDir: string, peer: LabNode, extra: string[] = []): void {
  const tunnel = typedMap(BpfMap.openPinned(join(pinDir, 'weir_tunnel4')), codecFor('weir_tunnel4_key'), codecFor('weir_tunnel4'));
  const nodes = typedMap(BpfMap.openPinned(join(pinDir, 'weir_nodes4')), codecFor('weir_node4_key'), codecFor('weir_node4'));
  try {
    const [net, len] = peer.podSubnet!.split('/');
    tunnel.set({ prefixlen: Number(len), address: net! }, { node_ip: peer.address, flags: 1 });
    for (const a of extra) tunnel.set({ prefixlen: 32, address: a }, { node_ip: peer.address, flags: 2 });
    nodes.set({ address: peer.address }, { flags: 1 });
  } finally {
    tunnel.map.close();
    nodes.map.close();
  }
}

let daemonHelp: string | undefined;
async function daemonKnows(ns: LabNode['ns'], flag: string): Promise<boolean> {
  daemonHelp ??= (await ns.exec(join(process.cwd(), 'bin', 'weir'), ['daemon', '--help'], { check: false })).stdout;
  return daemonHelp.includes(flag);
}

async function setupWeir(a: Arena, mode: WeirMode): Promise<string> {
  const flag = '--external-service-mode';
  const known = await daemonKnows(a.node1.ns, flag);
  // before the flag, tunnel was weir's only way to a remote backend: the daemon without it is that mode
  if (!known && mode !== 'tunnel') throw Object.assign(new Error(`this weir has no ${flag} (mode ${mode})`), { unavailable: true });
  const extraArgs = known ? [flag, mode] : [];
  for (const n of [a.node1, a.node2]) {
    const w = await WeirNode.create(a.lab, n, { connectTimeLb: 'off', logLevel: 'info', extraArgs });
    w.writeManifest('bench.yaml', weirManifests([a.node1, a.node2], a.backend));
    a.weir.push(w);
  }
  try {
    await Promise.all(a.weir.map((w) => w.start()));
  } catch (e) {
    // the daemon's own words: why it refused (stderr) or its last log lines
    const said = a.weir.flatMap((w) => [...(w.process?.stderr ?? '').trim().split('\n'), ...w.runLines()].filter(Boolean));
    const lines = said
      .filter((l) => /error|invalid|unknown|bad /i.test(l))
      .slice(0, 2)
      .concat(said.slice(-1));
    throw Object.assign(
      new Error(`weir daemon --external-service-mode ${mode} did not start: ${[...lines, (e as Error).message.slice(0, 160)].join(' ').replace(/\s+/g, ' ')}`),
      {
        // a mode the daemon refuses is not on offer; tunnel failing to start is a failure
        unavailable: mode !== 'tunnel',
      },
    );
  }
  writeTunnelMaps(a.weir[0]!.pinDir, a.node2);
  writeTunnelMaps(a.weir[1]!.pinDir, a.node1);
  return `weir daemon on both nodes (${extraArgs.length ? extraArgs.join(' ') : 'no --external-service-mode flag: tunnel is the only mode'}), Node objects in its manifests, tunnel maps written through the pins`;
}

async function setupEncap(a: Arena, how: 'bpf' | 'md'): Promise<string> {
  const obj = encapObject();
  for (const [n, peer] of [
    [a.node1, a.node2],
    [a.node2, a.node1],
  ] as const) {
    const ns = n.ns.name;
    let consts = {};
    if (how === 'md') {
      await n.ns.ip('link', 'add', 'vxlan0', 'type', 'vxlan', 'external', 'dstport', '4789');
      await n.ns.ip('link', 'set', 'vxlan0', 'address', VXLAN_MAC, 'mtu', '1500', 'up');
      consts = { vxlan_ifindex: await n.ns.ifindex('vxlan0'), vxlan_mac: Buffer.from(VXLAN_MAC.split(':').map((h) => parseInt(h, 16))) };
    }
    const pinDir = join(a.lab.bpffs, `encap-${n.name}`);
    mkdirSync(pinDir, { recursive: true });
    const o = BpfObject.load(obj, { pinDir, consts });
    a.objects.push(o);
    // node2 sends the backend's replies (to the client, not a pod) back to node1
    writeTunnelMaps(pinDir, peer, n === a.node2 ? [ADDR.client] : []);
    const prog = o.program(how === 'bpf' ? 'bench_encap_bpf' : 'bench_encap_md');
    a.attachments.push(attachTc(prog, n.ifname, 'ingress', { netns: ns }));
    if (n === a.node2) a.attachments.push(attachTc(prog, a.backend.hostIfname, 'ingress', { netns: ns }));
    if (how === 'md') a.attachments.push(attachTc(o.program('bench_fwd'), 'vxlan0', 'ingress', { netns: ns }));
  }
  return how === 'bpf'
    ? "bench_encap_bpf (weir's tunnel4_route/encap/decap) at TC ingress of both nodes' eth0 and the backend's veth"
    : 'bench_encap_md (set_tunnel_key + redirect to vxlan0, external dstport 4789) at the same places, bench_fwd on vxlan0 ingress';
}

async function buildArena(c: TunnelContestant): Promise<Arena> {
  const lab = await Lab.create({ name: `bench-tun-${c}` });
  try {
    // the encapsulation contestants: an underlay MTU that fits a full-size inner packet, so
    // that neither way meets path MTU discovery and both carry the same segments
    const mtu = tunnelPart(c) === 'encap' ? { mtu: 1550 } : {};
    const node1 = await lab.node('node1', { address: `${ADDR.node1}/24`, podSubnet: ADDR.pods1, ...mtu });
    const node2 = await lab.node('node2', { address: `${ADDR.node2}/24`, podSubnet: ADDR.pods2, ...mtu });
    await lab.routePodSubnets();
    const backend = await lab.pod(node2, 'backend');
    startServer(backend.ns, PORTS.echo, CPU);
    await backend.ns.iperfServer({ port: PORTS.iperf });
    // NodePort contestants: the client knows no pod route, as a client outside the cluster;
    // the encapsulation contestants dial the pod through node1
    const client = await lab.external('client', {
      address: `${ADDR.client}/24`,
      routes: tunnelPart(c) === 'encap' ? [{ dst: ADDR.pods2, via: ADDR.node1 }] : [],
    });
    await client.ns.sysctl('net.ipv4.ip_local_port_range', '1024 65535');
    await node2.ns.waitForPort(PORTS.echo, { host: backend.ip, timeoutMs: 5000 });
    return { c, lab, node1, node2, backend, client, weir: [], objects: [], attachments: [], setup: '' };
  } catch (e) {
    await lab.destroy().catch(() => {});
    throw e;
  }
}

async function setup(a: Arena, tmp: string): Promise<string> {
  const services = remoteServices(a.backend.ip);
  const file = join(tmp, `tunnel-${a.c}.rules`);
  switch (a.c) {
    case 'weir-tunnel':
    case 'weir-dsr':
      return setupWeir(a, a.c.slice('weir-'.length) as WeirMode);
    case 'iptables-nft':
      await applyIptables(a.node1.ns, 'nft', iptablesRestoreInput(services, { clusterCIDR: ADDR.clusterCIDR }), file);
      return "kube-proxy's iptables-restore input on node1 (KUBE-NODEPORTS -> KUBE-EXT-* -> KUBE-MARK-MASQ, DNAT; MASQUERADE in KUBE-POSTROUTING)";
    case 'nftables':
      await applyNftables(
        a.node1.ns,
        nftablesInput(services, { clusterCIDR: ADDR.clusterCIDR, serviceCIDR: ADDR.serviceCIDR, nodePortIPs: [a.node1.address] }),
        file,
      );
      return "kube-proxy's ip kube-proxy table on node1 (service-nodeports -> external-* -> mark-for-masquerade, DNAT; masquerade)";
    case 'routed':
      return 'plain routes: node1 -> node2 -> pod; the replies go from node2 straight to the client';
    case 'encap-bpf':
      return setupEncap(a, 'bpf');
    case 'encap-md':
      return setupEncap(a, 'md');
  }
}

async function destroyArena(a: Arena): Promise<void> {
  for (const x of a.attachments.splice(0)) {
    try {
      x.detach();
    } catch {
      /* the netns goes with the lab anyway */
    }
  }
  for (const o of a.objects.splice(0)) o.close();
  if (a.c === 'iptables-nft') await flushIptables(a.node1.ns, 'nft').catch(() => {});
  if (a.c === 'nftables') await flushNftables(a.node1.ns).catch(() => {});
  await a.lab.destroy();
}

function target(a: Arena, port: 'echo' | 'iperf'): { host: string; port: number } {
  if (tunnelPart(a.c) === 'encap') return { host: a.backend.ip, port: PORTS[port] };
  return { host: ADDR.node1, port: port === 'echo' ? PORTS.echoNodePort : PORTS.iperfNodePort };
}

/** busy and total jiffies of every core (/proc/stat's first line) */
function cpuJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
}
const HZ = 100; // USER_HZ: /proc/stat counts in 1/100 s on Linux

async function iperf(a: Arena, seconds: number, reverse: boolean): Promise<Iperf> {
  const t = target(a, 'iperf');
  const c0 = cpuJiffies();
  const r = await a.client.ns.iperfClient(t.host, { port: t.port, seconds, reverse });
  if (!r.receivedBitsPerSecond) throw new Error(`iperf3 ${reverse ? '-R ' : ''}to ${t.host}:${t.port} received nothing`);
  const c1 = cpuJiffies();
  const gbit = (r.receivedBitsPerSecond * seconds) / 1e9;
  return { bps: r.receivedBitsPerSecond, retransmits: r.retransmits ?? 0, cpuMsPerGbit: gbit > 0 ? (((c1.busy - c0.busy) / HZ) * 1000) / gbit : 0 };
}

/** One short run first: a contestant that does not carry traffic fails here, loudly. */
async function probe(a: Arena): Promise<void> {
  const t = target(a, 'echo');
  const r = await runClient(a.client.ns, 'crr', t.host, t.port, { seconds: 0.3, warmup: 0, cpu: CPU });
  if (!r.count || r.errors) throw new Error(`probe: ${r.count} connections, ${r.errors} errors to ${t.host}:${t.port}`);
}

const counterOf = (pinDir: string, hook: string, reason: string): number => {
  const m = BpfMap.openPinned(join(pinDir, 'weir_counters'));
  try {
    return counterTotals(readCounters(m))[hook]?.[reason] ?? 0;
  } finally {
    m.close();
  }
};

/** The source address the backend sees on a connection's first packet (tcpdump in its netns). */
async function sourceSeenByBackend(a: Arena): Promise<string> {
  const cap = a.backend.ns.spawn('tcpdump', ['-i', a.backend.ifname, '-n', '-l', '-c', '1', 'tcp', 'dst', 'port', String(PORTS.echo)], { label: 'tcpdump' });
  await sleep(500);
  await probe(a);
  await Promise.race([cap.exited, sleep(3000)]);
  await cap.stop();
  return /IP (\d+\.\d+\.\d+\.\d+)\.\d+ >/.exec(cap.stdout)?.[1] ?? '?';
}

/**
 * Proof that the traffic took the contestant's path, or an error: the backend's view of the
 * client, and the tunnel counters (weir's, the bench program's, the VXLAN device's).
 */
async function provePath(a: Arena): Promise<string> {
  const seen = await sourceSeenByBackend(a);
  const want = a.c === 'iptables-nft' || a.c === 'nftables' ? ADDR.node1 : ADDR.client;
  if (seen !== want) throw new Error(`the backend saw ${seen}, expected ${want}`);
  const facts = [`the backend sees ${seen}`];
  const need = (what: string, n: number) => {
    if (!(n > 0)) throw new Error(`${what}: 0`);
    facts.push(`${what} ${n}`);
  };
  if (a.c.startsWith('weir-')) {
    need('node1 from_host tunnel_encap', counterOf(a.weir[0]!.pinDir, 'from_host', 'tunnel_encap'));
    need('node2 from_host tunnel_decap', counterOf(a.weir[1]!.pinDir, 'from_host', 'tunnel_decap'));
  } else if (a.c === 'encap-bpf') {
    need('node2 tunnel_decap', counterOf(join(a.lab.bpffs, 'encap-node2'), 'from_host', 'tunnel_decap'));
    need('node1 tunnel_decap (replies)', counterOf(join(a.lab.bpffs, 'encap-node1'), 'from_host', 'tunnel_decap'));
  } else if (a.c === 'encap-md') {
    for (const n of [a.node2, a.node1]) {
      const [link] = await n.ns.ipJson<{ stats64: { rx: { packets: number } } }[]>('-s', 'link', 'show', 'vxlan0');
      need(`${n.name} vxlan0 rx packets`, link!.stats64.rx.packets);
    }
  }
  return facts.join(', ');
}

export interface TunnelOptions {
  durations: TunnelDurations;
  rounds: number;
  tmp: string;
  /** the contestants to run (default: all) */
  contestants?: readonly TunnelContestant[];
  log: (line: string) => void;
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const medIperf = (xs: Iperf[]): Iperf => ({
  bps: med(xs.map((x) => x.bps)),
  retransmits: med(xs.map((x) => x.retransmits)),
  cpuMsPerGbit: med(xs.map((x) => x.cpuMsPerGbit)),
});
function medResult(rs: TcpbenchResult[]): TcpbenchResult {
  const pick = (f: (r: TcpbenchResult) => number) => med(rs.map(f));
  const r0 = rs[0]!;
  return {
    ...r0,
    count: rs.reduce((s, r) => s + r.count, 0),
    errors: rs.reduce((s, r) => s + r.errors, 0),
    rate: pick((r) => r.rate),
    ...(r0.connect
      ? { connect: { ...r0.connect, p50_us: pick((r) => r.connect!.p50_us), p99_us: pick((r) => r.connect!.p99_us), mean_us: pick((r) => r.connect!.mean_us) } }
      : {}),
    txn: { ...r0.txn, p50_us: pick((r) => r.txn.p50_us), p99_us: pick((r) => r.txn.p99_us), mean_us: pick((r) => r.txn.mean_us) },
  };
}

/**
 * Every contestant: labs built and set up first, then `rounds` rounds that measure the
 * contestants one after the other (drift of this shared machine hits them alike); each
 * figure is the median over rounds.
 */
export async function runTunnel(o: TunnelOptions): Promise<TunnelMeasurement[]> {
  mkdirSync(o.tmp, { recursive: true });
  const arenas: Arena[] = [];
  const results: TunnelMeasurement[] = [];
  const live: { a: Arena; m: TunnelMeasurement; crr: TcpbenchResult[]; rr: TcpbenchResult[]; fwd: Iperf[]; rev: Iperf[] }[] = [];
  try {
    for (const c of o.contestants ?? TUNNEL_CONTESTANTS) {
      const m: TunnelMeasurement = { contestant: c };
      results.push(m);
      let a: Arena | undefined;
      try {
        a = await buildArena(c);
        arenas.push(a);
        m.setup = await setup(a, o.tmp);
        await probe(a);
        m.path = await provePath(a);
        live.push({ a, m, crr: [], rr: [], fwd: [], rev: [] });
        o.log(`tunnel: ${TUNNEL_LABEL[c]} ready: ${m.setup}; ${m.path}`);
      } catch (e) {
        const msg = (e as Error).message.split('\n').slice(0, 3).join(' ');
        if ((e as { unavailable?: boolean }).unavailable) m.unavailable = msg;
        else m.error = msg;
        o.log(`tunnel: ${TUNNEL_LABEL[c]}: ${m.unavailable ? 'not available' : 'FAILED'}: ${msg}`);
      }
    }
    const d = o.durations;
    for (let round = 0; round < o.rounds; round++)
      for (const l of live) {
        if (l.m.error) continue;
        try {
          const t = target(l.a, 'echo');
          l.crr.push(await runClient(l.a.client.ns, 'crr', t.host, t.port, { seconds: d.crrSeconds, warmup: d.warmup, cpu: CPU }));
          l.rr.push(await runClient(l.a.client.ns, 'rr', t.host, t.port, { seconds: d.rrSeconds, warmup: d.warmup, cpu: CPU }));
          const secs = Math.max(1, Math.round(d.iperfSeconds));
          l.fwd.push(await iperf(l.a, secs, false));
          l.rev.push(await iperf(l.a, secs, true));
        } catch (e) {
          l.m.error = (e as Error).message.split('\n').slice(0, 3).join(' ');
          o.log(`tunnel: ${TUNNEL_LABEL[l.a.c]}: FAILED ${l.m.error}`);
        }
      }
    for (const l of live) {
      if (l.m.error || !l.crr.length) continue;
      const m = l.m;
      m.crr = medResult(l.crr);
      m.rr = medResult(l.rr);
      m.forward = medIperf(l.fwd);
      m.reverse = medIperf(l.rev);
      o.log(
        `tunnel: ${TUNNEL_LABEL[l.a.c]}: connect p50 ${m.crr.connect?.p50_us}us p99 ${m.crr.connect?.p99_us}us, ${Math.round(m.crr.rate)} conn/s, ` +
          `${Math.round(m.rr.rate)} req/s, ${(m.forward.bps / 1e9).toFixed(2)} / ${(m.reverse.bps / 1e9).toFixed(2)} Gbit/s`,
      );
    }
  } finally {
    for (const a of arenas) await destroyArena(a).catch((e) => o.log(`teardown ${a.c}: ${(e as Error).message}`));
  }
  return results;
}
