// compileHostPolicy + evaluate against the reference evaluator (host-policy-reference.ts, written
// from Calico's documentation, walking the objects themselves) on generated clusters: random
// tiers, orders, actions, protocols, ports, nets, notNets, selectors, namespaceSelectors,
// applyOnForward / preDNAT / doNotTrack, and packets between clients, pods and the node, on every
// chain of the node's automatic host endpoint and of an explicit one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate } from '../../src/model/host-policy/evaluate.js';
import { CHAIN_KINDS, type HostPacket } from '../../src/model/host-policy/types.js';
import { compile, gnp, hep, namespace, node, pod } from './host-policy-helpers.js';
import { referenceVerdict, type RefEndpoint, type RefPolicy } from './host-policy-reference.js';

/** mulberry32: a small seeded PRNG, so a failure names a reproducible case */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NODE_IP = '198.18.0.1';
const HEP_IP = '198.18.0.50';
const CLIENTS = ['198.18.100.1', '198.18.100.2', '198.18.101.7', '198.18.0.2'];
const POD_IPS = ['198.18.10.1', '198.18.10.2', '198.18.10.3', '198.18.11.4'];
const NETS = ['198.18.100.0/24', '198.18.100.1/32', '198.18.10.0/24', '198.18.0.0/16', '198.18.11.0/24'];
const NETS6 = ['2001:2::/48', '2001:2::100:0/112', '2001:2::10:1/128'];
const CLIENTS6 = ['2001:2::100:1', '2001:2::200:1'];
const POD6 = '2001:2::10:1';
const SELECTORS = ["app == 'web'", "app == 'db'", 'has(app)', '!has(role)', "role == 'edge'", "app in {'web', 'db'}", "app != 'web'", 'all()'];
const NS_SELECTORS = ["team == 'a'", 'global()', "global() || team == 'b'", 'all()'];
const PORTS = [22, 80, 443, 2222, 30080];

function generate(seed: number): { policies: RefPolicy[]; packets: HostPacket[] } {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const maybe = (p: number) => r() < p;
  const entity = (protocol: string | undefined, nets: readonly string[]) => {
    const e: Record<string, unknown> = {};
    if (maybe(0.3)) e.nets = [pick(nets)];
    if (maybe(0.15)) e.notNets = [pick(nets)];
    if (maybe(0.3)) e.selector = pick(SELECTORS);
    if (maybe(0.1)) e.notSelector = pick(SELECTORS);
    if (maybe(0.15)) e.namespaceSelector = pick(NS_SELECTORS);
    if (protocol && maybe(0.5)) {
      const lo = pick(PORTS);
      e.ports = maybe(0.7) ? [pick(PORTS)] : [pick(PORTS), `${lo}:${lo + 100}`];
    }
    return e;
  };
  const rule = () => {
    const protocol = maybe(0.6) ? pick(['TCP', 'UDP']) : undefined;
    const x: Record<string, unknown> = { action: pick(['Allow', 'Allow', 'Deny', 'Pass']) };
    if (protocol) x.protocol = protocol;
    const nets = maybe(0.2) ? NETS6 : NETS; // one family per rule
    if (maybe(0.7)) x.source = entity(protocol, nets);
    if (maybe(0.5)) x.destination = entity(protocol, nets);
    return x;
  };
  const policies: RefPolicy[] = [];
  const n = 1 + Math.floor(r() * 6);
  for (let i = 0; i < n; i++) {
    const kind = pick(['normal', 'normal', 'normal', 'preDNAT', 'doNotTrack']);
    const spec: Record<string, unknown> = {};
    if (maybe(0.6)) spec.tier = pick(['default', 'kube-admin', 'kube-baseline', 'alpha']);
    if (maybe(0.7)) spec.order = pick([1, 2, 2, 5]);
    if (maybe(0.6)) spec.selector = pick(["role == 'edge'", 'all()', "role == 'other'", 'has(role)', "hep == 'yes'"]);
    spec.ingress = Array.from({ length: Math.floor(r() * 3) }, rule);
    if (kind !== 'preDNAT') spec.egress = Array.from({ length: Math.floor(r() * 3) }, rule);
    if (maybe(0.3)) spec.types = kind === 'preDNAT' ? ['Ingress'] : pick([['Ingress'], ['Egress'], ['Ingress', 'Egress']]);
    if (kind === 'preDNAT') spec.preDNAT = true;
    if (kind === 'doNotTrack') spec.doNotTrack = true;
    spec.applyOnForward = kind !== 'normal' || maybe(0.5);
    policies.push(gnp(`p${i}`, spec) as RefPolicy);
  }
  const packets: HostPacket[] = [];
  for (let i = 0; i < 12; i++) {
    const v6 = maybe(0.2);
    const s = v6 ? pick([...CLIENTS6, POD6]) : pick([...CLIENTS, ...POD_IPS, NODE_IP]);
    const d = v6 ? pick([...CLIENTS6, POD6]) : pick([NODE_IP, HEP_IP, ...POD_IPS, ...CLIENTS]);
    packets.push({ family: v6 ? 6 : 4, protocol: pick([6, 17]), saddr: s, daddr: d, sport: pick([...PORTS, 40000]), dport: pick(PORTS) });
  }
  return { policies, packets };
}

const NODES = [node('n1', NODE_IP, { role: 'edge' }), node('n2', '198.18.0.2', { role: 'other' })];
const NAMESPACES = [namespace('a', { team: 'a' }), namespace('b', { team: 'b' })];
const PODS = [
  { ...pod('a', 'web1', POD_IPS[0]!, { app: 'web' }), status: { phase: 'Running', podIPs: [{ ip: POD_IPS[0]! }, { ip: POD6 }] } },
  pod('a', 'db1', POD_IPS[1]!, { app: 'db' }),
  pod('b', 'web2', POD_IPS[2]!, { app: 'web', role: 'edge' }),
  pod('b', 'other', POD_IPS[3]!, {}),
];
const HEPS = [hep('eth1-n1', { node: 'n1', interfaceName: 'eth1', expectedIPs: [HEP_IP] }, { hep: 'yes' })];
// what a selector can pick, as the reference sees it
const ENDPOINTS: RefEndpoint[] = [
  { labels: { app: 'web', 'projectcalico.org/namespace': 'a' }, namespaceLabels: { team: 'a', 'kubernetes.io/metadata.name': 'a' }, ips: [POD_IPS[0]!, POD6] },
  { labels: { app: 'db', 'projectcalico.org/namespace': 'a' }, namespaceLabels: { team: 'a', 'kubernetes.io/metadata.name': 'a' }, ips: [POD_IPS[1]!] },
  {
    labels: { app: 'web', role: 'edge', 'projectcalico.org/namespace': 'b' },
    namespaceLabels: { team: 'b', 'kubernetes.io/metadata.name': 'b' },
    ips: [POD_IPS[2]!],
  },
  { labels: { 'projectcalico.org/namespace': 'b' }, namespaceLabels: { team: 'b', 'kubernetes.io/metadata.name': 'b' }, ips: [POD_IPS[3]!] },
  { labels: { role: 'edge', 'projectcalico.org/created-by': 'calico-kube-controllers' }, ips: [NODE_IP] },
  { labels: { role: 'other', 'projectcalico.org/created-by': 'calico-kube-controllers' }, ips: ['198.18.0.2'] },
  { labels: { hep: 'yes' }, ips: [HEP_IP] },
];

test('differential: compile + evaluate agree with the reference on 400 generated clusters', () => {
  let compared = 0;
  const verdicts = { allow: 0, deny: 0, nomatch: 0 };
  for (let seed = 1; seed <= 400; seed++) {
    const { policies, packets } = generate(seed);
    const plan = compile({ nodes: NODES, pods: PODS, namespaces: NAMESPACES, hostEndpoints: HEPS, globalNetworkPolicies: policies });
    assert.deepEqual(plan.errors, [], `seed ${seed}`);
    for (const e of plan.endpoints) {
      const allow = e.profiles.includes('projectcalico-default-allow');
      for (const chain of CHAIN_KINDS)
        for (const p of packets) {
          const got = evaluate(plan, e.id, chain, p).verdict;
          const want = referenceVerdict(policies, e.labels, allow, chain, p, ENDPOINTS);
          if (got !== want)
            assert.fail(
              `seed ${seed}, endpoint ${e.name}, chain ${chain}, packet ${JSON.stringify(p)}: model ${got}, reference ${want}\n${JSON.stringify(policies, null, 1)}`,
            );
          verdicts[got]++;
          compared++;
        }
    }
  }
  console.log(`differential: ${compared} verdicts compared (${JSON.stringify(verdicts)})`);
  // the generator must exercise every outcome
  assert.ok(verdicts.allow > 1000 && verdicts.deny > 1000 && verdicts.nomatch > 1000, JSON.stringify(verdicts));
});
