// Differential test of the policy stage in BPF: the programs' verdicts (from_pod and from_host
// loaded with policy_enabled and ct_track_all, run through BPF_PROG_TEST_RUN) against the
// spec-written reference evaluator (test/unit/policy-reference.ts), on clusters from the shared
// generator (test/unit/policy-generator.ts) whose pods sit on this node and on two others, the
// maps programmed from each cluster the daemon's way: buildPolicyModel -> desiredPolicyMaps ->
// one PolicyWriter across the run (so its diffs between unrelated clusters are exercised too).
// Every case is a new flow (fresh source port, conntrack emptied per cluster).
// WEIR_POLICY_SEED=<n> replays a run, WEIR_POLICY_CASES=<n> sets how many cases at least.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BpfObject, codecFor, typedMap, type BpfProgram, type TypedMap, type WeirCt4, type WeirCt4Key } from '../../src/bpf/index.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { policyMaps } from '../../src/dataplane/loader.js';
import { desiredPolicyMaps, fromCString, PolicyWriter, POLICY_EGRESS, POLICY_INGRESS, type PolicyMaps } from '../../src/dataplane/policy-maps.js';
import { buildPolicyModel, verdict, type Party, type PolicyModel } from '../../src/model/policy/network-policy.js';
import type { NodeInfo } from '../../src/model/nodes.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { eth } from '../lib/packet.js';
import { EXTERNAL, gen, mulberry32, PORTS } from '../unit/policy-generator.js';
import { referenceSides, type RefCluster, type RefParty } from '../unit/policy-reference.js';

const OBJ_DIR = join(process.cwd(), 'build', 'bpf');
const TC_ACT_SHOT = 2;
const THIS_NODE = 'this-node';
/** every address of each node: this node's InternalIP and a gateway address inside namespace x's pod /24 (and its ipBlocks) */
const NODES = [
  { name: THIS_NODE, addresses: ['198.18.0.1', '198.18.1.1'] },
  { name: 'node-2', addresses: ['198.18.0.2'] },
  { name: 'node-3', addresses: ['198.18.2.1'] },
];
/** half the pods on this node */
const PLACEMENT = [THIS_NODE, THIS_NODE, 'node-2', 'node-3'];
/** addresses of no node (nor pod, when a cluster leaves that slot free): the generator's, and more inside an except, a pod slot, the block's edge */
const OUTSIDE = [...EXTERNAL.filter((a) => !a.includes(':')), '198.18.2.250', '198.18.3.13', '198.19.255.254'];
const PROTOCOLS = [
  { name: 'TCP', number: 6, weight: 0.35 },
  { name: 'UDP', number: 17, weight: 0.3 },
  { name: 'SCTP', number: 132, weight: 0.25 },
  { name: 'ICMP', number: 1, weight: 0.1 },
] as const;
type Protocol = (typeof PROTOCOLS)[number];

const nodeInfo = (n: (typeof NODES)[number]): NodeInfo => ({ name: n.name, internalIP: { 4: n.addresses[0]!, 6: null }, podCIDRs: [], zone: '', toBeDeleted: false });

/** from_pod and from_host in a private bpffs, sharing their maps by pin name as in production. */
class PolicyDataplane {
  readonly objects: BpfObject[] = [];
  readonly fromPod: BpfProgram;
  readonly fromHost: BpfProgram;
  readonly maps: PolicyMaps;
  readonly ct: TypedMap<WeirCt4Key, WeirCt4>;

  constructor(readonly bpffs: PrivateBpffs) {
    const load = (n: string) => {
      const o = BpfObject.load(join(OBJ_DIR, `${n}.o`), { pinDir: bpffs.path, consts: { policy_enabled: 1, ct_track_all: 1 } });
      this.objects.push(o);
      return o;
    };
    const pod = load('from_pod');
    this.fromPod = pod.program('weir_from_pod');
    this.fromHost = load('from_host').program('weir_from_host');
    this.maps = policyMaps((name) => pod.map(name));
    this.ct = typedMap(pod.map('weir_ct4_v2'), codecFor('weir_ct4_key'), codecFor('weir_ct4'));
  }

  counters(): Record<string, Record<string, number>> {
    return counterTotals(readCounters(this.objects[0]!.map('weir_counters')));
  }

  resetFlows(): void {
    this.ct.deleteMany([...this.ct.keys()]);
    resetCounters(this.objects[0]!.map('weir_counters'));
  }

  /** every policy map emptied (LPM tries have no batch delete): for a rewrite from scratch */
  clearPolicy(): void {
    for (const m of [this.maps.ipcache, this.maps.endpoints, this.maps.policy, this.maps.names, this.maps.identities, this.maps.selects!] as TypedMap<unknown, unknown>[])
      for (const k of [...m.keys()]) m.delete(k);
  }

  async close(): Promise<void> {
    for (const o of this.objects) o.close();
    await this.bpffs.cleanup();
  }
}

interface Case {
  hook: 'from_pod' | 'from_host';
  src: RefParty;
  dst: RefParty;
  srcIp: string;
  dstIp: string;
  proto: Protocol;
  port: number;
  /** which halves this node decides: the egress of a local source, the ingress of a local destination */
  egress: boolean;
  ingress: boolean;
}

/** The first packet of a new flow: a TCP SYN, a UDP datagram, an SCTP INIT, an ICMP echo request (sport as its id). */
function packet(c: Case, sport: number): Buffer {
  const ip = eth({}).ipv4({ src: c.srcIp, dst: c.dstIp, ...(c.proto.name === 'SCTP' ? { protocol: 132 } : {}) });
  switch (c.proto.name) {
    case 'TCP':
      return ip.tcp({ sport, dport: c.port, flags: ['syn'] }).build();
    case 'UDP':
      return ip.udp({ sport, dport: c.port }).payload('q').build();
    case 'ICMP':
      return ip.icmp({ type: 'echo-request', id: sport, seq: 1 }).build();
    case 'SCTP': {
      // common header (ports, verification tag 0, checksum) + an INIT chunk (type 1, length 20)
      const b = Buffer.alloc(32);
      b.writeUInt16BE(sport, 0);
      b.writeUInt16BE(c.port, 2);
      b.writeUInt8(1, 12);
      b.writeUInt16BE(20, 14);
      b.writeUInt32BE(0x01020304, 16); // initiate tag
      b.writeUInt32BE(65536, 20); // a_rwnd
      b.writeUInt16BE(1, 24);
      b.writeUInt16BE(1, 26);
      b.writeUInt32BE(1, 28); // initial TSN
      return ip.payload(b).build();
    }
  }
}

const podIp = (c: RefCluster, key: string): string => c.pods.find((p) => `${p.metadata!.namespace}/${p.metadata!.name}` === key)!.status!.podIP!;
/** for the tally: a pod (local or remote), an address of this node or another, any other address */
function partyKind(p: RefParty, local: boolean): string {
  if ('pod' in p) return local ? 'local pod' : 'remote pod';
  const node = NODES.find((n) => n.addresses.includes(p.ip));
  return node ? (node.name === THIS_NODE ? 'this node' : 'other node') : 'address';
}
const partyText = (p: RefParty): string => ('pod' in p ? p.pod : p.ip);

/** The cases of one cluster: every local pod to every other party (from_pod), every non-local party to every local pod (from_host). */
function casesOf(cluster: RefCluster, rand: () => number, samples: number): Case[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const pods = cluster.pods.map((p) => ({ key: `${p.metadata!.namespace}/${p.metadata!.name}`, local: p.spec!.nodeName === THIS_NODE }));
  const podIps = new Set(pods.map((p) => podIp(cluster, p.key)));
  const addresses = [...OUTSIDE.filter((a) => !podIps.has(a)), ...NODES.flatMap((n) => n.addresses)];
  // ports on and around every number the policies name: range ends are where an LPM prefix goes wrong
  const edges = new Set<number>(PORTS);
  for (const np of cluster.policies)
    for (const r of [...(np.spec?.ingress ?? []), ...(np.spec?.egress ?? [])])
      for (const pp of r.ports ?? [])
        if (typeof pp.port === 'number') for (const p of [pp.port - 1, pp.port, pp.port + 1, ...(pp.endPort ? [pp.endPort, pp.endPort + 1] : [])]) edges.add(p);
  const edgeList = [...edges].filter((p) => p > 0 && p < 65536);
  const proto = (): Protocol => {
    let r = rand();
    for (const p of PROTOCOLS) if ((r -= p.weight) < 0) return p;
    return PROTOCOLS[0];
  };
  const port = (): number => (rand() < 0.75 ? pick(edgeList) : 1 + Math.floor(rand() * 65535));
  const out: Case[] = [];
  const add = (hook: Case['hook'], src: RefParty, dst: RefParty, srcIp: string, dstIp: string, egress: boolean, ingress: boolean) => {
    for (let i = 0; i < samples; i++) out.push({ hook, src, dst, srcIp, dstIp, proto: proto(), port: port(), egress, ingress });
  };
  for (const s of pods.filter((p) => p.local)) {
    const sip = podIp(cluster, s.key);
    for (const d of pods) if (d.key !== s.key) add('from_pod', { pod: s.key }, { pod: d.key }, sip, podIp(cluster, d.key), true, d.local);
    for (const ip of addresses) add('from_pod', { pod: s.key }, { ip }, sip, ip, true, false);
  }
  for (const d of pods.filter((p) => p.local)) {
    const dip = podIp(cluster, d.key);
    for (const s of pods.filter((p) => !p.local)) add('from_host', { pod: s.key }, { pod: d.key }, podIp(cluster, s.key), dip, false, true);
    for (const ip of addresses) add('from_host', { ip }, { pod: d.key }, ip, dip, false, true);
  }
  return out;
}

/** What this node must decide for a case: the halves it owns, from the reference. */
function expected(cluster: RefCluster, c: Case): { allowed: boolean; egress: boolean | null; ingress: boolean | null } {
  const r = referenceSides(cluster, c.src, c.dst, c.proto.name, c.port);
  const egress = c.egress ? r.egress : null;
  const ingress = c.ingress ? r.ingress : null;
  return { allowed: egress !== false && ingress !== false, egress, ingress };
}

/** The map entries behind a case, for a failure message. */
function mapEntries(dp: PolicyDataplane, c: Case): Record<string, unknown> {
  const ep = (a: string) => dp.maps.endpoints.get({ address: a }) ?? null;
  const keysOf = (e: ReturnType<typeof ep>, direction: number) =>
    e === null
      ? []
      : [...dp.maps.policy.entries()]
          .filter(([k]) => k.identity === e.identity && k.direction === direction)
          .map(([k, v]) => `peer ${k.peer} proto ${k.protocol} port ${k.port}/${k.prefixlen - 80} -> policy ${v.policy} rule ${v.rule}`);
  const srcEp = ep(c.srcIp);
  const dstEp = ep(c.dstIp);
  return {
    ipcache: { [c.srcIp]: dp.maps.ipcache.get({ prefixlen: 32, address: c.srcIp }) ?? null, [c.dstIp]: dp.maps.ipcache.get({ prefixlen: 32, address: c.dstIp }) ?? null },
    endpoints: { [c.srcIp]: srcEp, [c.dstIp]: dstEp },
    srcEgressKeys: keysOf(srcEp, POLICY_EGRESS),
    dstIngressKeys: keysOf(dstEp, POLICY_INGRESS),
    policyNames: Object.fromEntries([...dp.maps.names.entries()].map(([k, v]) => [k, fromCString(v.name)])),
  };
}

let dp: PolicyDataplane;
before(() => {
  dp = new PolicyDataplane(mountPrivateBpffs('policy-diff'));
});
after(async () => {
  await dp?.close();
});

test('BPF policy differential: from_pod and from_host agree with the spec-written reference on generated clusters', () => {
  const seed = process.env.WEIR_POLICY_SEED ? Number(process.env.WEIR_POLICY_SEED) : Math.floor(Math.random() * 2 ** 31);
  const target = process.env.WEIR_POLICY_CASES ? Number(process.env.WEIR_POLICY_CASES) : 100_000;
  const replay = `seed ${seed} (replay with WEIR_POLICY_SEED=${seed})`;
  console.log(`BPF policy differential: ${replay}, at least ${target} cases`);
  const rand = mulberry32(seed);
  const writer = new PolicyWriter(dp.maps);
  const hostAddrs = NODES[0]!.addresses;
  const tally = { cases: 0, allowed: 0, clusters: 0, writes: 0, byKind: new Map<string, [number, number]>(), byProto: new Map<string, [number, number]>() };
  let runNs = 0n;
  const t0 = process.hrtime.bigint();
  while (tally.cases < target) {
    const { cluster: generated } = gen(rand, { nodes: PLACEMENT });
    const cluster: RefCluster = { ...generated, nodeAddresses: Object.fromEntries(NODES.map((n) => [n.name, n.addresses])) };
    const model: PolicyModel = buildPolicyModel({ ...generated, nodes: NODES.map(nodeInfo), localNode: THIS_NODE });
    const issues = model.policyIssues.filter((i) => i.reason !== 'named_port_to_ipblock');
    assert.deepEqual(issues, [], `${replay} cluster ${tally.clusters}: generated input is valid`);
    const w = writer.apply(desiredPolicyMaps(model, THIS_NODE, hostAddrs));
    assert.equal(w.errors, 0, `${replay} cluster ${tally.clusters}: map writes: ${JSON.stringify(writer.takeFailures())}`);
    tally.writes += w.writes;
    dp.resetFlows();
    let drops = 0;
    const cases = casesOf(cluster, rand, 2);
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i]!;
      const want = expected(cluster, c);
      const prog = c.hook === 'from_pod' ? dp.fromPod : dp.fromHost;
      const r0 = process.hrtime.bigint();
      const got = prog.testRun({ data: packet(c, 1024 + i) }).retval;
      runNs += process.hrtime.bigint() - r0;
      const bpfAllowed = got !== TC_ACT_SHOT;
      if (!bpfAllowed) drops++;
      if (bpfAllowed !== want.allowed) {
        // the same case against maps written from scratch tells a writer-diff fault from a model or BPF one
        const entries = mapEntries(dp, c);
        dp.clearPolicy();
        new PolicyWriter(dp.maps).apply(desiredPolicyMaps(model, THIS_NODE, hostAddrs));
        const fresh = prog.testRun({ data: packet(c, 60000) }).retval !== TC_ACT_SHOT;
        const toParty = (p: RefParty): Party => p;
        const mv = verdict(model, toParty(c.src), toParty(c.dst), c.proto.name, c.port);
        assert.fail(
          `${replay} cluster ${tally.clusters} case ${i}: ${c.hook} ${partyText(c.src)} (${c.srcIp}) -> ${partyText(c.dst)} (${c.dstIp}) ` +
            `${c.proto.name}/${c.port}\n` +
            `  BPF: ${bpfAllowed ? 'allowed' : 'denied'} (retval ${got}; maps rewritten from scratch: ${fresh ? 'allowed' : 'denied'})\n` +
            `  reference: ${want.allowed ? 'allowed' : 'denied'} (egress ${want.egress}, ingress ${want.ingress}; null: not this node's to decide)\n` +
            `  model (both sides): ${JSON.stringify(mv)}\n` +
            `  maps: ${JSON.stringify(entries, null, 1)}\n` +
            `  cluster: ${JSON.stringify(
              {
                policies: cluster.policies.map((p) => ({ ns: p.metadata?.namespace, name: p.metadata?.name, spec: p.spec })),
                pods: cluster.pods.map((p) => [p.metadata, p.spec?.nodeName, p.status?.podIP, p.spec?.containers?.map((ct) => ct.ports)]),
                ns: cluster.namespaces.map((x) => x.metadata),
              },
              null,
              1,
            )}`,
        );
      }
      const kind = `${c.hook} ${partyKind(c.src, c.egress)} -> ${partyKind(c.dst, c.ingress)}`;
      const k = tally.byKind.get(kind) ?? [0, 0];
      k[want.allowed ? 0 : 1]++;
      tally.byKind.set(kind, k);
      const p = tally.byProto.get(c.proto.name) ?? [0, 0];
      p[want.allowed ? 0 : 1]++;
      tally.byProto.set(c.proto.name, p);
      if (want.allowed) tally.allowed++;
    }
    // every drop is the policy's, counted under its reason; nothing else dropped a packet
    const counted = Object.values(dp.counters()).reduce((n, h) => n + (h.policy_egress_denied ?? 0) + (h.policy_ingress_denied ?? 0), 0);
    assert.equal(counted, drops, `${replay} cluster ${tally.clusters}: policy_*_denied counters = drops (${JSON.stringify(dp.counters())})`);
    tally.cases += cases.length;
    tally.clusters++;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `BPF policy differential: ${tally.cases} cases over ${tally.clusters} clusters agree (${tally.allowed} allowed, ${tally.cases - tally.allowed} denied); ` +
      `${s.toFixed(1)} s, ${Math.round(tally.cases / s)} cases/s (${Math.round(Number(runNs) / tally.cases / 1000)} µs per BPF_PROG_TEST_RUN); ` +
      `${tally.writes} map writes`,
  );
  console.log(`  by protocol: ${[...tally.byProto].map(([n, [a, d]]) => `${n} ${a}/${d}`).join(', ')} (allowed/denied)`);
  for (const [kind, [a, d]] of [...tally.byKind].sort()) console.log(`  ${kind.padEnd(44)} ${String(a).padStart(6)} allowed ${String(d).padStart(6)} denied`);
  // both verdicts well represented in every kind of case, or the generator tests nothing there; this node's
  // own addresses are the exception: always allowed (checked case by case above)
  for (const [kind, [a, d]] of tally.byKind)
    if (!kind.includes('this node')) assert.ok(a > (a + d) / 20 && d > (a + d) / 20, `${replay}: ${kind}: ${a} allowed, ${d} denied`);
  assert.ok(tally.cases >= target);
});
