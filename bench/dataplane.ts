// bench: the data plane with real traffic. One lab per contestant (a node netns, a client
// pod and 3 backend pods made by the CNI ptp plugin), so no contestant inherits another's
// netfilter hooks or conntrack state; only that contestant's rules or programs are loaded,
// and they are removed before the next service count. The same C client (tcpbench) and
// iperf3 measure every contestant against the target ClusterIP, written last. `family: 6`
// measures the same services in IPv6: dual-stack pods, an IPv6 ClusterIP, kube-proxy's IPv6
// proxier rules (ip6tables, the ip6 nft table) and weir's IPv6 programs and maps.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BpfLink, TcAttachment } from '../src/bpf/index.js';
import { Lab, type Cgroup, type LabNode, type Pod } from '../test/lib/lab.js';
import { applyIptables, flushIptables, iptablesRestoreInput, ruleCount, type IptablesVariant } from './peers/iptables.js';
import { applyNftables, flushNftables, nftablesInput, nftCounts } from './peers/nftables.js';
import { benchServices, CLUSTER, CLUSTER6, CLUSTERS, TARGET, targetIP, type BenchService, type Family } from './peers/services.js';
import { CPUS, pinSelf, runClient, startServer, unpinAll, type Dist, type TcpbenchResult } from './tools.js';
import { attachSockLb, attachTcPath, loadWeir, programWeir, unprogramWeir, type Programmed, type WeirInstance } from './weir.js';

export const CONTESTANTS = ['direct', 'weir-sock', 'weir-tc', 'nftables', 'iptables-nft', 'iptables-legacy'] as const;
export type Contestant = (typeof CONTESTANTS)[number];

export const LABEL: Record<Contestant, string> = {
  direct: 'direct to pod (ceiling)',
  'weir-sock': 'weir connect-time LB',
  'weir-tc': 'weir TC path',
  nftables: 'kube-proxy nftables',
  'iptables-nft': 'kube-proxy iptables (nft)',
  'iptables-legacy': 'kube-proxy iptables (legacy)',
};

export interface Durations {
  crrSeconds: number;
  rrSeconds: number;
  iperfSeconds: number;
  warmup: number;
}

/** One round's figures of one contestant (a Measurement holds their medians, these give the spread). */
export interface RoundFigures {
  connectP50Us: number;
  connectP99Us: number;
  connPerSec: number;
  reqPerSec: number;
  bps: number;
}

export interface Measurement {
  contestant: Contestant;
  services: number;
  family?: Family;
  /** time to program this service set (iptables-restore / nft -f / weir map writes), ms */
  programMs?: number;
  /** what was programmed: rules, chains, map entries */
  programmed?: string;
  crr?: TcpbenchResult;
  rr?: TcpbenchResult;
  /** iperf3 receiver bits per second */
  throughputBps?: number;
  /** every round's figures, in round order (the medians above are over these) */
  rounds?: RoundFigures[];
  error?: string;
  /** why this contestant was not measured at this size */
  skipped?: string;
  note?: string;
}

export interface Arena {
  contestant: Contestant;
  family: Family;
  lab: Lab;
  node: LabNode;
  client: Pod;
  backends: Pod[];
  cgroup?: Cgroup;
  weir?: WeirInstance;
  attachments: (TcAttachment | BpfLink)[];
  programmed?: Programmed;
}

/** a pod's address in the measured family */
const addressOf = (p: Pod, family: Family) => (family === 6 ? p.ip6! : p.ip);

export async function buildArena(contestant: Contestant, family: Family): Promise<Arena> {
  const lab = await Lab.create({ name: `bench-${contestant}` });
  try {
    const v6 = family === 6 ? { address6: CLUSTER6.nodeAddress, podSubnet6: CLUSTER6.podSubnet } : {};
    const node = await lab.node('node', { address: CLUSTER.nodeAddress, podSubnet: CLUSTER.podSubnet, ...v6 });
    const client = await lab.pod(node, 'client');
    const backends = [await lab.pod(node, 'be0'), await lab.pod(node, 'be1'), await lab.pod(node, 'be2')];
    await client.ns.sysctl('net.ipv4.ip_local_port_range', '1024 65535');
    for (const b of backends) startServer(b.ns, TARGET.echoTargetPort, CPUS.loops);
    await backends[0]!.ns.iperfServer({ port: TARGET.iperfPort, cpu: CPUS.iperfServer });
    for (const b of backends) await client.ns.waitForPort(TARGET.echoTargetPort, { host: addressOf(b, family), timeoutMs: 5000 });
    const arena: Arena = { contestant, family, lab, node, client, backends, attachments: [] };
    if (contestant === 'weir-tc' || contestant === 'weir-sock') {
      // both attach the per-packet programs to every workload interface, as the daemon
      // does; weir-sock adds the socket programs on the client's cgroup
      // IPv6: from_pod6 chained after from_pod on the same TCX hook, as the daemon attaches it
      const tc = family === 6 ? ['from_pod', 'from_pod6', 'to_pod'] : ['from_pod', 'to_pod'];
      arena.weir = loadWeir(lab.bpffs, contestant === 'weir-sock' ? [...tc, 'sock_lb'] : tc, family);
      arena.attachments.push(
        ...attachTcPath(
          arena.weir,
          node.ns.name,
          [client, ...backends].map((p) => p.hostIfname),
        ),
      );
      if (contestant === 'weir-sock') {
        arena.cgroup = await lab.cgroup('client');
        arena.attachments.push(...attachSockLb(arena.weir, arena.cgroup.path, family));
      }
    }
    return arena;
  } catch (e) {
    await lab.destroy().catch(() => {});
    throw e;
  }
}

export async function destroyArena(a: Arena): Promise<void> {
  for (const x of a.attachments.splice(0)) {
    try {
      x.detach();
    } catch {
      /* the netns goes with the lab anyway */
    }
  }
  a.weir?.close();
  await a.lab.destroy();
}

/** Program the contestant for `services`; returns time and what was written. */
export async function program(a: Arena, services: BenchService[], tmp: string): Promise<{ ms: number; what: string; note?: string }> {
  const file = join(tmp, `${a.contestant}-ipv${a.family}.rules`);
  const { family } = a;
  const cluster = CLUSTERS[family];
  switch (a.contestant) {
    case 'direct':
      return { ms: 0, what: 'nothing' };
    case 'iptables-nft':
    case 'iptables-legacy': {
      const input = iptablesRestoreInput(services, { clusterCIDR: cluster.clusterCIDR, family });
      const ms = await applyIptables(a.node.ns, a.contestant.slice('iptables-'.length) as IptablesVariant, input, file, { family });
      return { ms, what: `${ruleCount(input)} rules` };
    }
    case 'nftables': {
      const nodePortIPs = [family === 6 ? a.node.address6! : a.node.address];
      const input = nftablesInput(services, { clusterCIDR: cluster.clusterCIDR, serviceCIDR: cluster.serviceCIDR, nodePortIPs, family });
      const ms = await applyNftables(a.node.ns, input, file, { family });
      const c = nftCounts(input);
      return { ms, what: `${c.chains} chains, ${c.rules} rules` };
    }
    case 'weir-tc':
    case 'weir-sock': {
      const p = programWeir(a.weir!.maps, services, 10);
      a.programmed = p;
      const note =
        p.endpointsPerFiller < 10
          ? `weir_backend4 holds ${a.weir!.maps.backends.map.maxEntries} entries: filler services got ${p.endpointsPerFiller} endpoints, not 10`
          : undefined;
      return { ms: p.ms, what: `${p.frontendKeys.length} frontends, ${p.backendKeys.length} backends`, ...(note ? { note } : {}) };
    }
  }
}

export async function unprogram(a: Arena): Promise<void> {
  switch (a.contestant) {
    case 'iptables-nft':
    case 'iptables-legacy':
      return flushIptables(a.node.ns, a.contestant.slice('iptables-'.length) as IptablesVariant, a.family);
    case 'nftables':
      return flushNftables(a.node.ns, a.family);
    case 'weir-tc':
    case 'weir-sock':
      if (a.programmed) unprogramWeir(a.weir!.maps, a.programmed);
      a.programmed = undefined;
  }
}

function target(a: Arena): { host: string; port: number } {
  return a.contestant === 'direct'
    ? { host: addressOf(a.backends[0]!, a.family), port: TARGET.echoTargetPort }
    : { host: targetIP(a.family), port: TARGET.echoPort };
}

/** One short run first: a contestant that does not carry traffic fails here, loudly. */
async function probe(a: Arena): Promise<void> {
  const t = target(a);
  await runClient(a.client.ns, 'crr', t.host, t.port, { seconds: 0.2, warmup: 0, cgroup: a.cgroup, cpu: CPUS.loops });
}

async function measure(a: Arena, d: Durations): Promise<{ crr: TcpbenchResult; rr: TcpbenchResult; bps: number }> {
  const t = target(a);
  const cg = a.cgroup;
  const crr = await runClient(a.client.ns, 'crr', t.host, t.port, { seconds: d.crrSeconds, warmup: d.warmup, cgroup: cg, cpu: CPUS.loops });
  const rr = await runClient(a.client.ns, 'rr', t.host, t.port, { seconds: d.rrSeconds, warmup: d.warmup, cgroup: cg, cpu: CPUS.loops });
  const host = a.contestant === 'direct' ? addressOf(a.backends[0]!, a.family) : targetIP(a.family);
  const ip = await a.client.ns.iperfClient(host, { port: TARGET.iperfPort, seconds: d.iperfSeconds, cpu: CPUS.iperfClient, ...(cg ? { cgroup: cg } : {}) });
  return { crr, rr, bps: ip.receivedBitsPerSecond };
}

export interface DataplaneOptions {
  sizes: number[];
  durations: Durations;
  /** measurement rounds per size; each figure is the median over rounds */
  rounds: number;
  tmp: string;
  /** skip a contestant at a size when its programming time, projected quadratically from
   *  the previous size, would exceed this (iptables-nft-restore and nft -f grow faster than
   *  linearly with chains) */
  programBudgetMs: number;
  log: (line: string) => void;
  /** the address family measured (default 4) */
  family?: Family;
}

/** the median; of an even count, the mean of the middle two (of quick runs' 2 rounds, not the larger) */
const med = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};
function medianDist(ds: Dist[]): Dist {
  return {
    p50_us: med(ds.map((d) => d.p50_us)),
    p90_us: med(ds.map((d) => d.p90_us)),
    p99_us: med(ds.map((d) => d.p99_us)),
    mean_us: med(ds.map((d) => d.mean_us)),
    max_us: med(ds.map((d) => d.max_us)),
  };
}
/** field-wise median over rounds (counts summed) */
function medianResult(rs: TcpbenchResult[]): TcpbenchResult {
  const conns = rs.map((r) => r.connect).filter((c): c is Dist => !!c);
  return {
    mode: rs[0]!.mode,
    count: rs.reduce((a, r) => a + r.count, 0),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    seconds: rs.reduce((a, r) => a + r.seconds, 0),
    rate: med(rs.map((r) => r.rate)),
    ...(conns.length ? { connect: medianDist(conns) } : {}),
    txn: medianDist(rs.map((r) => r.txn)),
  };
}

/**
 * Every contestant at every size. Per size: program every contestant (each in its own node
 * netns, so a packet only ever meets one contestant's rules), then `rounds` rounds that
 * measure the contestants one after the other, so slow drift of this shared machine hits
 * them alike; then remove everything before the next size.
 */
export async function runDataplane(o: DataplaneOptions): Promise<Measurement[]> {
  mkdirSync(o.tmp, { recursive: true });
  const arenas: Arena[] = [];
  const results: Measurement[] = [];
  // programming (and this process, idle while it waits for the pinned clients) on CPUS.programmer
  pinSelf(String(CPUS.programmer));
  try {
    // a contestant whose programs cannot be loaded or attached (say, IPv6 socket programs
    // this build lacks) is reported at every size; the others are measured
    const unavailable = new Map<Contestant, string>();
    for (const c of CONTESTANTS) {
      try {
        arenas.push(await buildArena(c, o.family ?? 4));
        o.log(`lab for ${LABEL[c]} ready`);
      } catch (e) {
        unavailable.set(c, `not available: ${(e as Error).message.split('\n')[0]}`);
        o.log(`${LABEL[c]}: ${unavailable.get(c)}`);
      }
    }
    const last = new Map<Contestant, { n: number; ms: number }>();
    for (const n of o.sizes) {
      for (const [c, error] of unavailable) results.push({ contestant: c, services: n, family: o.family ?? 4, error });
      const live: { a: Arena; m: Measurement; crr: TcpbenchResult[]; rr: TcpbenchResult[]; bps: number[] }[] = [];
      try {
        for (const a of arenas) {
          const m: Measurement = { contestant: a.contestant, services: n, family: a.family };
          results.push(m);
          const prev = last.get(a.contestant);
          // only from a size big enough for the per-rule cost to dominate the fixed cost
          const projected = prev && prev.n >= 1000 ? prev.ms * (n / prev.n) ** 2 : 0;
          if (projected > o.programBudgetMs) {
            m.skipped = `not run: programming ${n} services projected at ${Math.round(projected / 1000)} s from ${(prev!.ms / 1000).toFixed(1)} s at ${prev!.n} (budget ${o.programBudgetMs / 1000} s)`;
            o.log(`N=${n} ${LABEL[a.contestant]}: ${m.skipped}`);
            continue;
          }
          try {
            const p = await program(
              a,
              benchServices(
                n,
                a.backends.map((b) => addressOf(b, a.family)),
                10,
                a.family,
              ),
              o.tmp,
            );
            m.programMs = p.ms;
            m.programmed = p.what;
            if (p.note) m.note = p.note;
            last.set(a.contestant, { n, ms: p.ms });
            await probe(a);
            live.push({ a, m, crr: [], rr: [], bps: [] });
            o.log(`N=${n} ${LABEL[a.contestant]}: programmed ${p.what} in ${p.ms.toFixed(0)} ms`);
          } catch (e) {
            m.error = (e as Error).message.split('\n').slice(0, 3).join(' ');
            o.log(`N=${n} ${LABEL[a.contestant]}: FAILED ${m.error}`);
          }
        }
        // each round starts one contestant later than the one before, so that no contestant is
        // always measured first (right after programming) or last
        for (let round = 0; round < o.rounds; round++)
          for (const l of live.map((_, i) => live[(i + round) % live.length]!)) {
            if (l.m.error) continue;
            try {
              const r = await measure(l.a, o.durations);
              l.crr.push(r.crr);
              l.rr.push(r.rr);
              l.bps.push(r.bps);
            } catch (e) {
              l.m.error = (e as Error).message.split('\n').slice(0, 3).join(' ');
              o.log(`N=${n} ${LABEL[l.a.contestant]}: FAILED ${l.m.error}`);
            }
          }
        for (const l of live) {
          if (l.m.error || !l.crr.length) continue;
          l.m.crr = medianResult(l.crr);
          l.m.rr = medianResult(l.rr);
          l.m.throughputBps = med(l.bps);
          l.m.rounds = l.crr.map((c, i) => ({
            connectP50Us: c.connect?.p50_us ?? NaN,
            connectP99Us: c.connect?.p99_us ?? NaN,
            connPerSec: c.rate,
            reqPerSec: l.rr[i]!.rate,
            bps: l.bps[i]!,
          }));
          const m = l.m;
          o.log(
            `N=${n} ${LABEL[l.a.contestant]}: connect p50 ${m.crr!.connect!.p50_us}us p99 ${m.crr!.connect!.p99_us}us, ${Math.round(m.crr!.rate)} conn/s, ${Math.round(m.rr!.rate)} req/s, ${(m.throughputBps! / 1e9).toFixed(2)} Gbit/s`,
          );
        }
      } finally {
        for (const a of arenas) await unprogram(a).catch((e) => o.log(`unprogram ${a.contestant}: ${(e as Error).message}`));
      }
    }
  } finally {
    for (const a of arenas) await destroyArena(a).catch((e) => o.log(`teardown ${a.contestant}: ${(e as Error).message}`));
    unpinAll();
  }
  return results;
}
