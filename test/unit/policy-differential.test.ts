// Differential test: the policy model's verdict (identities, ipcache, keys: what BPF will hold)
// against the spec-written reference evaluator (policy-reference.ts) on generated clusters —
// random labels, namespaces, named ports, selectors with every operator, ipBlocks with except
// around pod and external addresses, port ranges, both directions, several policies per pod.
// The seed is printed; POLICY_SEED=<n> replays one run, POLICY_CLUSTERS=<n> sets its size.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { buildPolicyModel, type PolicyKey, type PolicyModel } from '../../src/model/policy/network-policy.js';
import { diffPolicyModels, keyWrites } from '../../src/model/policy/diff.js';
import { allowed } from '../../src/model/policy/verdict.js';
import { namespace, pod, policy } from './policy-helpers.js';
import { referenceAllowed, type RefCluster, type RefParty } from './policy-reference.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NS = ['x', 'y', 'z'];
const PROTOS = ['TCP', 'UDP', 'SCTP'];
const PORTS = [53, 79, 80, 81, 443, 8080, 9090];
const EXTERNAL = [
  '198.19.0.1',
  '198.19.1.7',
  '198.19.1.200',
  '198.19.200.5',
  '198.18.9.9',
  '2001:2:0:f200::1',
  '2001:2:0:f1ff::1',
  '2001:2:0:e000::1',
  '2001:2:0:2::99',
];

function gen(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chance = (p: number): boolean => rand() < p;
  const labels = (): Record<string, string> => {
    const l: Record<string, string> = {};
    if (chance(0.8)) l.app = pick(['web', 'db', 'cache']);
    if (chance(0.5)) l.tier = pick(['front', 'back']);
    return l;
  };
  const selector = (): object => {
    const r = rand();
    if (r < 0.2) return {};
    if (r < 0.5) return { matchLabels: { app: pick(['web', 'db', 'cache']) } };
    const key = pick(['app', 'tier', 'team']);
    const op = pick(['In', 'NotIn', 'Exists', 'DoesNotExist']);
    const values = op === 'In' || op === 'NotIn' ? [pick(['web', 'db', 'front', 'back', 'red'])] : undefined;
    return { matchExpressions: [{ key, operator: op, ...(values ? { values } : {}) }] };
  };
  const nsSelector = (): object =>
    chance(0.4) ? { matchLabels: { 'kubernetes.io/metadata.name': pick(NS) } } : chance(0.5) ? { matchLabels: { team: pick(['red', 'blue']) } } : selector();
  const ipBlock = (): object => {
    const r = rand();
    if (r < 0.3) return { cidr: '198.19.0.0/16', except: chance(0.5) ? ['198.19.1.0/24'] : [] };
    if (r < 0.5) return { cidr: '198.19.1.0/24', ...(chance(0.5) ? { except: ['198.19.1.128/25'] } : {}) };
    if (r < 0.8) {
      const net = 1 + Math.floor(rand() * 3);
      return { cidr: `198.18.${net}.0/24`, ...(chance(0.5) ? { except: [`198.18.${net}.${10 + Math.floor(rand() * 4)}/32`] } : {}) };
    }
    if (r < 0.9) return { cidr: '198.18.0.0/15', except: ['198.18.2.0/24'] };
    if (r < 0.95) return { cidr: '2001:2:0:f000::/52', ...(chance(0.7) ? { except: ['2001:2:0:f100::/56'] } : {}) };
    const net = 1 + Math.floor(rand() * 3);
    return { cidr: `2001:2:0:${net}::/64`, ...(chance(0.5) ? { except: [`2001:2:0:${net}::${10 + Math.floor(rand() * 4)}/128`] } : {}) };
  };
  const peer = (allowIp: boolean): object => {
    const r = rand();
    if (r < 0.3) return { podSelector: selector() };
    if (r < 0.55) return { namespaceSelector: nsSelector() };
    if (r < 0.8 || !allowIp) return { podSelector: selector(), namespaceSelector: nsSelector() };
    return { ipBlock: ipBlock() };
  };
  const port = (named: boolean): object => {
    const protocol = chance(0.6) ? undefined : pick(PROTOS);
    const r = rand();
    const o: Record<string, unknown> = protocol ? { protocol } : {};
    if (r < 0.15) return o;
    if (r < 0.4 && named) return { ...o, port: pick(['http', 'dns', 'metrics']) };
    const p = pick(PORTS);
    return chance(0.3) ? { ...o, port: p, endPort: p + Math.floor(rand() * 2000) } : { ...o, port: p };
  };
  const rule = (dir: 'ingress' | 'egress'): object => {
    const field = dir === 'ingress' ? 'from' : 'to';
    const o: Record<string, unknown> = {};
    const hasPorts = chance(0.6);
    const r = rand();
    let hasIp = false;
    if (r < 0.15) o[field] = [];
    else if (r < 0.85) {
      const peers = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => peer(true));
      hasIp = peers.some((p) => 'ipBlock' in p);
      o[field] = peers;
    }
    // a named port towards an ipBlock on egress is a documented approximation (identity-wide), left out here
    if (hasPorts) o.ports = Array.from({ length: 1 + Math.floor(rand() * 2) }, () => port(!(dir === 'egress' && hasIp)));
    return o;
  };
  const pods: V1Pod[] = [];
  for (const ns of NS)
    for (let i = 0; i < 2 + Math.floor(rand() * 3); i++) {
      const ports: [string, number, string][] = [];
      if (chance(0.7)) ports.push(['http', pick([80, 8080, 9090]), 'TCP']);
      if (chance(0.4)) ports.push(['dns', 53, pick(['UDP', 'TCP'])]);
      if (chance(0.3)) ports.push(['metrics', pick([9090, 443]), 'TCP']);
      const p = pod(`${ns}/p${i}`, { labels: labels(), ip: `198.18.${NS.indexOf(ns) + 1}.${10 + i}`, ports });
      p.status!.podIPs!.push({ ip: `2001:2:0:${NS.indexOf(ns) + 1}::${10 + i}` });
      pods.push(p);
    }
  const namespaces = NS.map((n) => namespace(n, chance(0.5) ? { team: pick(['red', 'blue']) } : {}));
  const policies: V1NetworkPolicy[] = [];
  for (let i = 0; i < 1 + Math.floor(rand() * 4); i++) {
    const spec: Record<string, unknown> = { podSelector: selector() };
    const t = rand();
    if (t < 0.25) spec.policyTypes = ['Ingress'];
    else if (t < 0.5) spec.policyTypes = ['Egress'];
    else if (t < 0.75) spec.policyTypes = ['Ingress', 'Egress'];
    if (chance(0.7)) spec.ingress = Array.from({ length: Math.floor(rand() * 3) }, () => rule('ingress'));
    if (chance(0.6)) spec.egress = Array.from({ length: Math.floor(rand() * 3) }, () => rule('egress'));
    policies.push(policy(pick(NS), `np${i}`, spec));
  }
  return { cluster: { policies, pods, namespaces } as RefCluster, pick };
}

test('differential: the model agrees with the spec-written reference on generated clusters', () => {
  const seed = process.env.POLICY_SEED ? Number(process.env.POLICY_SEED) : Math.floor(Math.random() * 2 ** 31);
  const clusters = process.env.POLICY_CLUSTERS ? Number(process.env.POLICY_CLUSTERS) : 1000;
  console.log(`policy differential: seed ${seed} (replay with POLICY_SEED=${seed}), ${clusters} clusters`);
  const rand = mulberry32(seed);
  let cases = 0;
  let allowedCount = 0;
  for (let n = 0; n < clusters; n++) {
    const { cluster, pick } = gen(rand);
    const model = buildPolicyModel(cluster);
    const issues = model.policyIssues.filter((i) => i.reason !== 'named_port_to_ipblock');
    assert.deepEqual(issues, [], `cluster ${n}: generated input is valid`);
    const v6Of = new Map(cluster.pods.map((p) => [`${p.metadata!.namespace}/${p.metadata!.name}`, p.status!.podIPs![1]!.ip]));
    const podParties: RefParty[] = cluster.pods.map((p) => ({ pod: `${p.metadata!.namespace}/${p.metadata!.name}` }));
    const parties: RefParty[] = [...podParties, ...EXTERNAL.map((ip) => ({ ip }))];
    for (const src of parties)
      for (const dst of parties) {
        if (!('pod' in src) && !('pod' in dst)) continue;
        if ('pod' in src && 'pod' in dst && src.pod === dst.pod) continue;
        // pod to pod by name talks IPv4; at random the destination is named by its IPv6 address instead
        const s = src;
        const d = 'pod' in src && 'pod' in dst && rand() < 0.3 ? { ip: v6Of.get(dst.pod)! } : dst;
        const proto = pick(PROTOS);
        const port = pick(PORTS);
        const want = referenceAllowed(cluster, s, d, proto, port);
        const got = allowed(model, s, d, proto, port);
        cases++;
        if (want) allowedCount++;
        if (got !== want)
          assert.fail(
            `seed ${seed} cluster ${n}: ${JSON.stringify(s)} -> ${JSON.stringify(d)} ${proto}/${port}: model ${got}, reference ${want}\n` +
              JSON.stringify(
                {
                  policies: cluster.policies.map((p) => ({ ns: p.metadata?.namespace, spec: p.spec })),
                  pods: cluster.pods.map((p) => [p.metadata, p.spec?.containers?.map((c) => c.ports)]),
                  ns: cluster.namespaces.map((x) => x.metadata),
                },
                null,
                1,
              ),
          );
      }
  }
  console.log(`policy differential: ${cases} cases agree (${allowedCount} allowed, ${cases - allowedCount} denied)`);
  // both verdicts must be well represented, or the generator tests nothing
  assert.ok(allowedCount > cases / 10 && cases - allowedCount > cases / 10, `allowed ${allowedCount} of ${cases}`);
});

interface MapState {
  ipcache: Map<string, string>;
  endpoints: Map<string, { entry: string; ingress: Set<string>; egress: Set<string> }>;
}

const keyStr = (k: PolicyKey): string => `${k.peer}/${k.protocol}/${k.port}-${k.endPort}`;

/** What the maps hold for a model, written from scratch. */
function mapState(m: PolicyModel): MapState {
  const s: MapState = { ipcache: new Map(), endpoints: new Map() };
  for (const [cidr, e] of m.ipcache) s.ipcache.set(cidr, `${e.identity}/${e.cidrIdentity}`);
  for (const [pod, ep] of m.endpoints)
    s.endpoints.set(pod, {
      entry: `${ep.identity} ${ep.ips.join()} ${ep.ingress.isolated} ${ep.egress.isolated}`,
      ingress: new Set(ep.ingress.keys.map(keyStr)),
      egress: new Set(ep.egress.keys.map(keyStr)),
    });
  return s;
}

/** One change of a kind the sources deliver, chosen at random. */
function mutate(cluster: RefCluster, rand: () => number, pick: <T>(xs: readonly T[]) => T, n: number): { next: RefCluster; kind: string } {
  const next: RefCluster = { policies: [...cluster.policies], pods: [...cluster.pods], namespaces: [...cluster.namespaces] };
  const kind = pick(['relabel-pod', 'relabel-ns', 'drop-policy', 'add-policy', 'drop-pod', 'move-pod', 'nothing']);
  const i = Math.floor(rand() * next.pods.length);
  const p = next.pods[i]!;
  if (kind === 'relabel-pod')
    next.pods[i] = { ...p, metadata: { ...p.metadata, labels: { ...(p.metadata?.labels ?? {}), app: pick(['web', 'db', 'cache']) } } };
  else if (kind === 'relabel-ns') {
    const j = Math.floor(rand() * next.namespaces.length);
    const ns = next.namespaces[j]!;
    next.namespaces[j] = { ...ns, metadata: { ...ns.metadata, labels: { ...(ns.metadata?.labels ?? {}), team: pick(['red', 'blue', 'green']) } } };
  } else if (kind === 'drop-policy') next.policies.splice(Math.floor(rand() * next.policies.length), 1);
  else if (kind === 'add-policy')
    next.policies.push(
      ...gen(rand)
        .cluster.policies.slice(0, 1)
        .map((np) => ({ ...np, metadata: { ...np.metadata, name: `added${n}` } })),
    );
  else if (kind === 'drop-pod') next.pods.splice(i, 1);
  else if (kind === 'move-pod') {
    const ip = `198.18.${4 + (n % 3)}.${n % 250}`;
    next.pods[i] = { ...p, status: { ...p.status, podIP: ip, podIPs: [{ ip }] } };
  }
  return { next, kind };
}

test('differential: applying diff(old, new) to the maps of old gives the maps of new; an incremental build equals a full one', () => {
  const seed = process.env.POLICY_SEED ? Number(process.env.POLICY_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`policy diff: seed ${seed} (replay with POLICY_SEED=${seed})`);
  const rand = mulberry32(seed);
  let writes = 0;
  let steps = 0;
  for (let n = 0; n < 200; n++) {
    const g = gen(rand);
    const pick = g.pick;
    let cluster = g.cluster;
    let full = buildPolicyModel(cluster);
    let inc = full;
    for (let step = 0; step < 5; step++, steps++) {
      const { next, kind } = mutate(cluster, rand, pick, n * 5 + step);
      const m2 = buildPolicyModel({ ...next, previous: { podIdentities: full.podIdentityIds, cidrIdentities: full.cidrIdentityIds } });
      const m2inc = buildPolicyModel({ ...next, previousModel: inc });
      const where = `seed ${seed} cluster ${n} step ${step} (${kind})`;
      for (const [key, id] of m2.podIdentityIds)
        if (full.podIdentityIds.has(key)) assert.equal(id, full.podIdentityIds.get(key), `${where}: identity ${key} kept its id`);
      assert.deepEqual(mapState(m2inc), mapState(m2), `${where}: incremental build = full build`);
      assert.deepEqual(
        [...m2inc.endpoints.values()].map((e) => [e.ingress.rules, e.egress.rules]),
        [...m2.endpoints.values()].map((e) => [e.ingress.rules, e.egress.rules]),
        `${where}: incremental rules = full rules`,
      );
      const d = diffPolicyModels(full, m2);
      writes += keyWrites(d);
      // apply the diff to the old maps
      const s = mapState(full);
      for (const e of d.ipcache.upserted) s.ipcache.set(e.cidr, `${e.identity}/${e.cidrIdentity}`);
      for (const c of d.ipcache.removed) s.ipcache.delete(c);
      for (const pod of d.endpoints.removed) s.endpoints.delete(pod);
      for (const ep of d.endpoints.added)
        s.endpoints.set(ep.pod, mapState({ ...m2, endpoints: new Map([[ep.pod, ep]]), ipcache: new Map() }).endpoints.get(ep.pod)!);
      for (const c of d.endpoints.changed) {
        const cur = s.endpoints.get(c.pod)!;
        const ep = m2.endpoints.get(c.pod)!;
        cur.entry = `${ep.identity} ${ep.ips.join()} ${c.ingress.isolated?.to ?? ep.ingress.isolated} ${c.egress.isolated?.to ?? ep.egress.isolated}`;
        for (const k of c.ingress.added) cur.ingress.add(keyStr(k));
        for (const k of c.ingress.removed) cur.ingress.delete(keyStr(k));
        for (const k of c.egress.added) cur.egress.add(keyStr(k));
        for (const k of c.egress.removed) cur.egress.delete(keyStr(k));
      }
      assert.deepEqual(s, mapState(m2), `${where}: old maps + diff = new maps`);
      if (kind === 'nothing') assert.equal(keyWrites(d), 0, `${where}: no change, no writes`);
      cluster = next;
      full = m2;
      inc = m2inc;
    }
  }
  console.log(`policy diff: ${steps} changes applied, ${writes} key writes in all`);
});
