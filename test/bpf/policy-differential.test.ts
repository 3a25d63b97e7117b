// Differential test of the policy stage in BPF: the programs' verdicts (from_pod and from_host
// loaded with policy_enabled and ct_track_all, run through BPF_PROG_TEST_RUN) against the
// spec-written reference evaluator (test/unit/policy-reference.ts), on clusters from the shared
// generator (test/unit/policy-generator.ts) whose pods sit on this node and on two others, the
// maps programmed from each cluster the daemon's way: buildPolicyModel -> desiredPolicyMaps ->
// one PolicyWriter across the run (so its diffs between unrelated clusters are exercised too).
// Each case is a new flow (fresh source port, conntrack emptied per cluster) whose halves this
// node decides are compared: the egress of a local client, the ingress of a local destination;
// through a ClusterIP (egress judged on the backend), a NodePort and the tunnel from another node
// (ingress on the client's own address) too. An allowed flow's reply must pass whatever the
// reverse direction's policy says. The clusters are dual-stack: the same cases between the
// parties' IPv6 addresses (and through IPv6 ClusterIPs and NodePorts; no tunnel cases yet) go
// through the hooks' chains to from_pod6/from_host6, on the same policy maps, in the same counters.
// WEIR_POLICY_SEED=<n> replays a run, WEIR_POLICY_CASES=<n> sets how many cases at least.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { desiredPolicyMaps, PolicyWriter } from '../../src/dataplane/policy-maps.js';
import type { NodeInfo } from '../../src/model/nodes.js';
import { buildPolicyModel, verdict, type PolicyModel } from '../../src/model/policy/network-policy.js';
import { EXTERNAL, gen, mulberry32, mutate, PORTS } from '../unit/policy-generator.js';
import { referenceSides, type RefCluster, type RefParty } from '../unit/policy-reference.js';
import { enums } from '../../src/bpf/index.js';
import { dsrMacs, flowPacket, PolicyDataplane, PROTO_NUMBER, TC_ACT_SHOT, tunnelled, type Frontend, type Hook, type ProtocolName } from './policy-dataplane.js';

const THIS_NODE = 'this-node';
/** every address of each node, per family: this node's InternalIP and a gateway address inside namespace x's pod /24 (/64) (and its ipBlocks) */
const NODES = [
  { name: THIS_NODE, addresses: ['198.18.0.1', '198.18.1.1'], addresses6: ['2001:2::1', '2001:2:0:1::1'] },
  { name: 'node-2', addresses: ['198.18.0.2'], addresses6: ['2001:2::2'] },
  { name: 'node-3', addresses: ['198.18.2.1'], addresses6: ['2001:2:0:2::1'] },
];
/** half the pods on this node */
const PLACEMENT = [THIS_NODE, THIS_NODE, 'node-2', 'node-3'];
/** addresses of no node (nor pod, when a cluster leaves that slot free): the generator's, and more inside an except, a pod slot, the block's edge */
const OUTSIDE = [...EXTERNAL.filter((a) => !a.includes(':')), '198.18.2.250', '198.18.3.13', '198.19.255.254'];
const OUTSIDE6 = [...EXTERNAL.filter((a) => a.includes(':')), '2001:2:0:2::fa', '2001:2:0:3::d', '2001:2:0:ffff::fe'];
const PROTOCOLS: readonly [ProtocolName, number][] = [
  ['TCP', 0.35],
  ['UDP', 0.3],
  ['SCTP', 0.25],
  ['ICMP', 0.1],
];

/** source ports of the cases, one per case of a cluster (conntrack is emptied between clusters) */
const EPHEMERAL = 49152;

const THIS_ADDRESS = NODES[0]!.addresses[0]!;
/** changes applied to each generated cluster, its cases run again after each */
const CHANGES = 2;

const nodeInfo = (n: (typeof NODES)[number]): NodeInfo => ({
  name: n.name,
  internalIP: { 4: n.addresses[0]!, 6: n.addresses6[0]! },
  podCIDRs: [],
  zone: '',
  toBeDeleted: false,
});

interface Case {
  hook: Hook;
  /** the family of srcIp and dstIp: IPv6 cases go on to from_pod6/from_host6 */
  family: 4 | 6;
  /** the client, and the party policy judges on the other side: the destination, or the Service's backend */
  src: RefParty;
  dst: RefParty;
  srcIp: string;
  dstIp: string;
  proto: ProtocolName;
  port: number;
  /** through a Service: its frontend on the wire, `dst`/`dstIp`/`port` being its backend */
  via?: Frontend;
  /** from another node through the tunnel (tunnel mode: translated there), its address the outer source */
  tunnelFrom?: string;
  /** through the tunnel in DSR mode: untranslated, to this frontend (of the ingress node), the backend `dst` in the inner MACs */
  dsr?: { address: string; port: number };
  /** the halves this node decides: the egress of a local client, the ingress of a local destination */
  egress: boolean;
  ingress: boolean;
}

const keyOf = (p: { metadata?: { namespace?: string; name?: string } }): string => `${p.metadata!.namespace}/${p.metadata!.name}`;
const partyText = (p: RefParty): string => ('pod' in p ? p.pod : p.ip);

/** for the tally: a pod (local or remote), an address of this node or another, any other address */
function partyKind(p: RefParty, local: boolean): string {
  if ('pod' in p) return local ? 'local pod' : 'remote pod';
  const node = NODES.find((n) => n.addresses.includes(p.ip) || n.addresses6.includes(p.ip));
  return node ? (node.name === THIS_NODE ? 'this node' : 'other node') : 'address';
}

/**
 * The cases of one cluster: every local pod to every other party (from_pod), every other party to
 * every local pod (from_host), `samples` (protocol, port) draws each; every local pod to each
 * ClusterIP, every other party to each NodePort (its backend local). The frontends come with them.
 */
function casesOf(cluster: RefCluster, rand: () => number, samples: number, family: 4 | 6): { cases: Case[]; frontends: Frontend[] } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const ipOf = (p: (typeof cluster.pods)[number]): string | undefined =>
    family === 4 ? p.status!.podIP! : p.status?.podIPs?.map((x) => x.ip).find((ip) => ip.includes(':'));
  const pods = cluster.pods.flatMap((p) => {
    const ip = ipOf(p);
    return ip === undefined ? [] : [{ key: keyOf(p), ip, local: p.spec!.nodeName === THIS_NODE, pod: p }];
  });
  const podIps = new Set(pods.map((p) => p.ip));
  const addresses = [
    ...(family === 4 ? OUTSIDE : OUTSIDE6).filter((a) => !podIps.has(a)),
    ...NODES.flatMap((n) => (family === 4 ? n.addresses : n.addresses6)),
  ];
  // ports on and around every number the policies name: range ends are where an LPM prefix goes wrong
  const edges = new Set<number>(PORTS);
  for (const np of cluster.policies)
    for (const r of [...(np.spec?.ingress ?? []), ...(np.spec?.egress ?? [])])
      for (const pp of r.ports ?? [])
        if (typeof pp.port === 'number') for (const p of [pp.port - 1, pp.port, pp.port + 1, ...(pp.endPort ? [pp.endPort, pp.endPort + 1] : [])]) edges.add(p);
  const edgeList = [...edges].filter((p) => p > 0 && p < 65536);
  const proto = (): ProtocolName => {
    let r = rand();
    for (const [p, weight] of PROTOCOLS) if ((r -= weight) < 0) return p;
    return 'TCP';
  };
  // below the ephemeral range the clients' source ports come from, so no case meets another's reply entry
  const port = (): number => (rand() < 0.75 ? pick(edgeList) : 1 + Math.floor(rand() * (EPHEMERAL - 1)));
  const cases: Case[] = [];
  const add = (hook: Hook, src: RefParty, dst: RefParty, srcIp: string, dstIp: string, egress: boolean, ingress: boolean) => {
    for (let i = 0; i < samples; i++) cases.push({ hook, family, src, dst, srcIp, dstIp, proto: proto(), port: port(), egress, ingress });
  };
  const local = pods.filter((p) => p.local);
  for (const s of local) {
    for (const d of pods) if (d.key !== s.key) add('from_pod', { pod: s.key }, { pod: d.key }, s.ip, d.ip, true, d.local);
    for (const ip of addresses) add('from_pod', { pod: s.key }, { ip }, s.ip, ip, true, false);
  }
  for (const d of local) {
    for (const s of pods) if (!s.local) add('from_host', { pod: s.key }, { pod: d.key }, s.ip, d.ip, false, true);
    for (const ip of addresses) add('from_host', { ip }, { pod: d.key }, ip, d.ip, false, true);
  }
  // through the tunnel from another node (a Service flow it translated toward a backend here), the client's own address inside;
  // IPv4 only for now: the tunnel carries IPv4 inner packets
  const peers = NODES.slice(1).map((n) => n.addresses[0]!);
  // a third of them in DSR mode: to a LoadBalancer IP or the ingress node's NodePort, the backend named in the inner MACs
  const tunnelled = (src: RefParty, srcIp: string, d: (typeof local)[number]) => {
    const tunnelFrom = pick(peers);
    const p = proto();
    const dsr =
      p !== 'ICMP' && rand() < 1 / 3
        ? pick([
            { address: '198.19.100.200', port: 443 },
            { address: tunnelFrom, port: 30080 },
          ])
        : undefined;
    cases.push({
      hook: 'from_host',
      family,
      src,
      dst: { pod: d.key },
      srcIp,
      dstIp: d.ip,
      proto: p,
      port: port(),
      tunnelFrom,
      ...(dsr ? { dsr } : {}),
      egress: false,
      ingress: true,
    });
  };
  if (family === 4)
    for (const d of local) {
      for (const s of pods) if (!s.local) tunnelled({ pod: s.key }, s.ip, d);
      for (const ip of addresses) if (!NODES[0]!.addresses.includes(ip)) tunnelled({ ip }, ip, d);
    }

  // Services: two ClusterIPs (any backend), a NodePort on this node's address (a local backend);
  // the backend port is one of the pod's container ports when it has one of that protocol
  const frontends: Frontend[] = [];
  const service = (id: number, nodePort: boolean): void => {
    const candidates = nodePort ? local : pods;
    if (candidates.length === 0) return;
    const b = pick(candidates);
    // an SCTP frontend cannot rewrite the port (sctp_port_rewrite): a ClusterIP on the backend's port, no NodePort
    const protocol = pick<ProtocolName>(nodePort ? ['TCP', 'UDP'] : ['TCP', 'UDP', 'SCTP']);
    const named = (b.pod.spec?.containers ?? []).flatMap((c) => c.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === protocol);
    const target = named.length > 0 && rand() < 0.7 ? pick(named).containerPort : pick(edgeList);
    const f: Frontend = {
      id,
      address: nodePort ? (family === 4 ? NODES[0]!.addresses[0]! : NODES[0]!.addresses6[0]!) : family === 4 ? `198.19.100.${id}` : `2001:2:0:100::${id}`,
      port: nodePort ? 30000 + id : protocol === 'SCTP' ? target : pick([80, 443, 8080]),
      protocol,
      nodePort,
      backend: { address: b.ip, port: target },
    };
    frontends.push(f);
    const via = (hook: Hook, src: RefParty, srcIp: string, egress: boolean) =>
      cases.push({ hook, family, src, dst: { pod: b.key }, srcIp, dstIp: b.ip, proto: protocol, port: target, via: f, egress, ingress: b.local });
    if (!nodePort) for (const s of local) if (s.key !== b.key) via('from_pod', { pod: s.key }, s.ip, true);
    if (nodePort) {
      for (const s of pods) if (!s.local) via('from_host', { pod: s.key }, s.ip, false);
      for (const ip of addresses) via('from_host', { ip }, ip, false);
    }
  };
  // frontend ids are unique across families (one allocator)
  const base = family === 4 ? 0 : 10;
  service(base + 1, false);
  service(base + 2, false);
  service(base + 3, true);
  return { cases, frontends };
}

/** What this node must decide for a case: the halves it owns, from the reference. */
function expected(cluster: RefCluster, c: Case): { allowed: boolean; egress: boolean | null; ingress: boolean | null } {
  // parties by address: the reference then judges the pods' addresses of the case's family (ipBlocks differ per family)
  const r =
    c.family === 6 ? referenceSides(cluster, { ip: c.srcIp }, { ip: c.dstIp }, c.proto, c.port) : referenceSides(cluster, c.src, c.dst, c.proto, c.port);
  const egress = c.egress ? r.egress : null;
  const ingress = c.ingress ? r.ingress : null;
  return { allowed: egress !== false && ingress !== false, egress, ingress };
}

let dp: PolicyDataplane;
before(() => {
  dp = new PolicyDataplane();
  // the other nodes are peers: their tunnel packets are accepted
  for (const n of NODES.slice(1)) dp.nodes.set({ address: n.addresses[0]! }, { flags: enums.weir_node_flags.WEIR_NODE_PEER });
});
after(async () => {
  await dp?.close();
});

test('BPF policy differential: from_pod and from_host (and from_pod6, from_host6 behind them) agree with the spec-written reference on generated dual-stack clusters', () => {
  const seed = process.env.WEIR_POLICY_SEED ? Number(process.env.WEIR_POLICY_SEED) : Math.floor(Math.random() * 2 ** 31);
  const target = process.env.WEIR_POLICY_CASES ? Number(process.env.WEIR_POLICY_CASES) : 100_000;
  const replay = `seed ${seed} (replay with WEIR_POLICY_SEED=${seed})`;
  console.log(`BPF policy differential: ${replay}, at least ${target} cases`);
  const rand = mulberry32(seed);
  const writer = new PolicyWriter(dp.maps);
  const hostAddrs = [...NODES[0]!.addresses, ...NODES[0]!.addresses6];
  const nodeAddresses = Object.fromEntries(NODES.map((n) => [n.name, [...n.addresses, ...n.addresses6]]));
  const tally = {
    cases: 0,
    allowed: 0,
    replies: 0,
    tunnelReplies: 0,
    clusters: 0,
    changes: 0,
    writes: 0,
    byKind: new Map<string, [number, number]>(),
    byProto: new Map<string, [number, number]>(),
  };
  const count = (m: Map<string, [number, number]>, k: string, allowed: boolean) => {
    const v = m.get(k) ?? [0, 0];
    v[allowed ? 0 : 1]++;
    m.set(k, v);
  };
  let runNs = 0n;
  const t0 = process.hrtime.bigint();
  /** One cluster's maps written (as diffs to what the maps hold), its cases run and checked. */
  const runCluster = (inputs: RefCluster, model: PolicyModel, where: string, samples: number): void => {
    const cluster: RefCluster = { ...inputs, nodeAddresses };
    const issues = model.policyIssues.filter((i) => i.reason !== 'named_port_to_ipblock');
    assert.deepEqual(issues, [], `${where}: generated input is valid`);
    const w = writer.apply(desiredPolicyMaps(model, THIS_NODE, hostAddrs));
    assert.equal(w.errors, 0, `${where}: map writes: ${JSON.stringify(writer.takeFailures())}`);
    tally.writes += w.writes;
    const { cases, frontends } = casesOf(cluster, rand, samples, 4);
    const v6 = casesOf(cluster, rand, samples, 6);
    // each family's cases a source port of their own: a new flow, no entry in its conntrack map has it
    assert.ok(Math.max(cases.length, v6.cases.length) <= 65535 - EPHEMERAL, `${where}: ${cases.length}, ${v6.cases.length} cases fit the source ports`);
    const ipv4Cases = cases.length;
    cases.push(...v6.cases);
    frontends.push(...v6.frontends);
    dp.resetFlows(frontends);
    const wantDenied: Record<string, Record<string, number>> = {};
    const wantByPolicy = new Map<string, number>();
    // the slots of this cluster's policies, and 0 ("none"): a denial credited anywhere else is missing from the sums below
    const slots = [0, ...writer.names().keys()];
    const statsBefore = dp.policyDenials(slots);
    let tunnelReplyDrops = 0;
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i]!;
      const want = expected(cluster, c);
      const sport = EPHEMERAL + (i < ipv4Cases ? i : i - ipv4Cases);
      const wire = c.via ? { ip: c.via.address, port: c.via.port } : c.dsr ? { ip: c.dsr.address, port: c.dsr.port } : { ip: c.dstIp, port: c.port };
      const first = (sp: number) => {
        const p = flowPacket(c.proto, c.srcIp, wire.ip, sp, wire.port, c.dsr ? { macs: dsrMacs(c.dstIp, c.port) } : {});
        return c.tunnelFrom ? tunnelled(c.tunnelFrom, THIS_ADDRESS, p, sp) : p;
      };
      const data = first(sport);
      const r0 = process.hrtime.bigint();
      const got = dp.run(c.hook, data);
      runNs += process.hrtime.bigint() - r0;
      const bpfAllowed = got !== TC_ACT_SHOT;
      if (!want.allowed) {
        // the egress half is decided first: a flow both halves deny counts as an egress denial
        const reason = want.egress === false ? 'policy_egress_denied' : 'policy_ingress_denied';
        const h = (wantDenied[c.hook] ??= {});
        h[reason] = (h[reason] ?? 0) + 1;
        // weir_policy_stats: the denial goes to the first policy isolating the denying side
        const side = want.egress === false ? { pod: c.src, dir: 'egress' as const } : { pod: c.dst, dir: 'ingress' as const };
        const ep = 'pod' in side.pod ? model.endpoints.get(side.pod.pod) : undefined;
        const k = `${ep?.[side.dir].policies[0]} ${side.dir}`;
        wantByPolicy.set(k, (wantByPolicy.get(k) ?? 0) + 1);
      }
      const to = c.via ?? c.dsr;
      const what = `${c.hook}${c.tunnelFrom ? ` (tunnel from ${c.tunnelFrom}${c.dsr ? ', DSR' : ''})` : ''} ${partyText(c.src)} (${c.srcIp}) -> ${to ? `${to.address}:${to.port} -> ` : ''}${partyText(c.dst)} (${c.dstIp}) ${c.proto}/${c.port}`;
      if (bpfAllowed !== want.allowed) {
        // the same case against maps written from scratch tells a writer-diff fault from a model or BPF one
        const entries = dp.entriesFor(c.srcIp, c.dstIp);
        dp.clearPolicy();
        new PolicyWriter(dp.maps).apply(desiredPolicyMaps(model, THIS_NODE, hostAddrs));
        const fresh = dp.run(c.hook, first(65535)) !== TC_ACT_SHOT;
        const mv = verdict(model, c.src, c.dst, c.proto, c.port);
        assert.fail(
          `${where} case ${i}: ${what}\n` +
            `  BPF: ${bpfAllowed ? 'allowed' : 'denied'} (retval ${got}; maps rewritten from scratch: ${fresh ? 'allowed' : 'denied'})\n` +
            `  reference: ${want.allowed ? 'allowed' : 'denied'} (egress ${want.egress}, ingress ${want.ingress}; null: not this node's to decide)\n` +
            `  model (both sides): ${JSON.stringify(mv)}\n` +
            `  maps: ${JSON.stringify(entries, null, 1)}\n` +
            `  cluster: ${JSON.stringify(
              {
                policies: cluster.policies.map((p) => ({ ns: p.metadata?.namespace, name: p.metadata?.name, spec: p.spec })),
                pods: cluster.pods.map((p) => [keyOf(p), p.metadata?.labels, p.spec?.nodeName, p.status?.podIP, p.spec?.containers?.map((ct) => ct.ports)]),
                ns: cluster.namespaces.map((x) => x.metadata),
              },
              null,
              1,
            )}`,
        );
      }
      if (bpfAllowed && c.family === 6) {
        // the verdict bits cached in the flow's entry (its wire tuple; ICMPv6 echo: the identifier as both ports): each isolated direction this node decided
        const isolated = (side: RefParty, dir: 'egress' | 'ingress') => ('pod' in side ? model.endpoints.get(side.pod)?.[dir].isolated === true : false);
        const bits = (c.egress && isolated(c.src, 'egress') ? 1 : 0) | (c.ingress && isolated(c.dst, 'ingress') ? 2 : 0);
        const icmp = c.proto === 'ICMP';
        const key = { saddr: c.srcIp, daddr: wire.ip, sport, dport: icmp ? sport : wire.port, protocol: icmp ? 58 : PROTO_NUMBER[c.proto] };
        assert.equal(dp.ct6.get(key)?.policy, bits, `${where} case ${i}: ${what}: weir_ct6.policy of ${JSON.stringify(key)}`);
      }
      if (bpfAllowed) {
        // stateful: the reply of an allowed flow passes, whatever the policies say of the reverse direction
        const replyHook: Hook = 'pod' in c.dst && c.ingress ? 'from_pod' : 'from_host';
        const reply = dp.run(replyHook, flowPacket(c.proto, c.dstIp, c.srcIp, c.port, sport, { reply: true }));
        // a tunnelled flow's reply goes back through the tunnel, which finds no route under BPF_PROG_TEST_RUN
        // (tunnel_failed, checked per cluster below): that drop is allowed, a policy drop is not
        if (reply === TC_ACT_SHOT && c.tunnelFrom) {
          tunnelReplyDrops++;
          tally.tunnelReplies++;
        } else if (reply === TC_ACT_SHOT)
          assert.fail(`${where} case ${i}: ${what}: allowed, but its reply is dropped at ${replyHook} (${JSON.stringify(dp.counters())})`);
        tally.replies++;
      }
      count(
        tally.byKind,
        `${c.family === 6 ? 'IPv6 ' : ''}${c.hook}${c.tunnelFrom ? (c.dsr ? ' tunnel (DSR):' : ' tunnel:') : ''} ${partyKind(c.src, c.egress)} -> ${c.via ? (c.via.nodePort ? 'NodePort -> ' : 'ClusterIP -> ') : ''}${partyKind(c.dst, c.ingress)}`,
        want.allowed,
      );
      count(tally.byProto, c.proto, want.allowed);
      if (want.allowed) tally.allowed++;
    }
    // every denial counted under its hook and reason, nothing more: no reply was a policy drop
    const counters = dp.counters();
    const denied = Object.fromEntries(
      Object.entries(counters)
        .map(([hook, h]) => [hook, Object.fromEntries(Object.entries(h).filter(([r]) => r.endsWith('_denied')))] as const)
        .filter(([, h]) => Object.keys(h).length > 0),
    );
    assert.deepEqual(denied, wantDenied, `${where}: policy_*_denied counters`);
    const names = writer.names();
    const byPolicy = new Map<string, number>();
    for (const [slot, d] of dp.policyDenials(slots)) {
      const was = statsBefore.get(slot) ?? { ingress: 0n, egress: 0n };
      for (const dir of ['ingress', 'egress'] as const)
        if (d[dir] > was[dir]) byPolicy.set(`${names.get(slot) ?? `slot ${slot}`} ${dir}`, Number(d[dir] - was[dir]));
    }
    assert.deepEqual(new Map([...byPolicy].sort()), new Map([...wantByPolicy].sort()), `${where}: denials per policy (weir_policy_stats)`);
    assert.equal(counters.from_pod?.tunnel_failed ?? 0, tunnelReplyDrops, `${where}: the dropped replies of tunnelled flows are tunnel_failed`);
    tally.cases += cases.length;
  };

  while (tally.cases < target) {
    const { cluster: generated, pick } = gen(rand, { nodes: PLACEMENT });
    const where = `${replay} cluster ${tally.clusters}`;
    let inputs = generated;
    let model = buildPolicyModel({ ...inputs, nodes: NODES.map(nodeInfo), localNode: THIS_NODE });
    runCluster(inputs, model, where, 2);
    // then changes as the sources deliver them (relabels, policies added and dropped, pods gone or moved), built
    // incrementally as the daemon does (ids kept) and written as diffs
    for (let step = 0; step < CHANGES; step++) {
      const { next, kind } = mutate(inputs, rand, pick, tally.clusters * CHANGES + step);
      model = buildPolicyModel({ ...next, nodes: NODES.map(nodeInfo), localNode: THIS_NODE, previousModel: model });
      inputs = next;
      runCluster(inputs, model, `${where} change ${step} (${kind})`, 1);
      tally.changes++;
    }
    tally.clusters++;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `BPF policy differential: ${tally.cases} cases over ${tally.clusters} clusters and ${tally.changes} changes agree (${tally.allowed} allowed, ${tally.cases - tally.allowed} denied), ` +
      `${tally.replies - tally.tunnelReplies} replies passed (${tally.tunnelReplies} more went back into the tunnel, no policy drop); ${s.toFixed(1)} s, ${Math.round(tally.cases / s)} cases/s ` +
      `(${Math.round(Number(runNs) / tally.cases / 1000)} µs per first packet through BPF_PROG_TEST_RUN); ${tally.writes} map writes`,
  );
  console.log(`  by protocol (allowed/denied): ${[...tally.byProto].map(([n, [a, d]]) => `${n} ${a}/${d}`).join(', ')}`);
  for (const [kind, [a, d]] of [...tally.byKind].sort()) console.log(`  ${kind.padEnd(48)} ${String(a).padStart(6)} allowed ${String(d).padStart(6)} denied`);
  // both verdicts well represented in every kind of case, or the generator tests nothing there; this
  // node's own addresses are the exception: always allowed (held case by case above)
  for (const [kind, [a, d]] of tally.byKind)
    if (!/( this node ->|-> this node$)/.test(kind)) assert.ok(a > (a + d) / 20 && d > (a + d) / 20, `${replay}: ${kind}: ${a} allowed, ${d} denied`);
  assert.ok(tally.cases >= target);
});
