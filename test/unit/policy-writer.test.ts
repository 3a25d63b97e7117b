// PolicyWriter (src/dataplane/policy-maps.ts) on in-memory maps: what a model becomes in the
// five policy maps, that only differences are written (a second apply and a restart's adopt
// write nothing), that a relabel into an identity this node already has writes one endpoint
// entry and no policy key, the order that never opens a gap (keys before endpoints, deletes
// last), port ranges as LPM blocks, and a full map failing closed without losing the rest.
// Dual stack: each address goes to its family's maps (weir_ipcache6, its host hash,
// weir_endpoints6) under the same identity, with the same guarantees.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { desiredPolicyMaps, EP_INGRESS_ISOLATED, fromCString, POLICY_FIXED_BITS, PolicyWriter, type PolicyMaps } from '../../src/dataplane/policy-maps.js';
import { buildPolicyModel } from '../../src/model/policy/network-policy.js';
import type { PolicyInputs } from '../../src/model/policy/policy-types.js';
import { FakeMap } from './fake-maps.js';
import { ALL_PODS, namespace, pod, podIp, policy } from './policy-helpers.js';

/** the e2e cluster, with x/* on this node and the rest on another */
function inputs(policies: V1NetworkPolicy[], labels: Record<string, Record<string, string>> = {}): PolicyInputs {
  return {
    policies,
    pods: ALL_PODS.map((k) => pod(k, { node: k.startsWith('x/') ? 'node-1' : 'node-2', ...(labels[k] ? { labels: labels[k] } : {}) })),
    namespaces: ['x', 'y', 'z'].map((n) => namespace(n)),
  };
}

function fakes() {
  const f = {
    ipcache: new FakeMap(),
    endpoints: new FakeMap(),
    hosts: new FakeMap(),
    policy: new FakeMap(),
    names: new FakeMap(),
    identities: new FakeMap(),
    selects: new FakeMap(),
    ipcache6: new FakeMap(),
    endpoints6: new FakeMap(),
    hosts6: new FakeMap(),
  };
  const log: string[] = [];
  for (const [name, m] of Object.entries(f)) {
    const set = m.set.bind(m);
    const del = m.delete.bind(m);
    m.set = (k: never, v: never) => (log.push(`set ${name}`), set(k, v));
    m.delete = (k: never) => (log.push(`delete ${name}`), del(k));
  }
  const { ipcache, endpoints, hosts, policy, names, identities, selects, ipcache6, endpoints6, hosts6 } = f;
  const maps = {
    ipcache,
    endpoints,
    ipcacheHosts: hosts,
    policy,
    names,
    identities,
    selects,
    ipv6: { ipcache: ipcache6, endpoints: endpoints6, ipcacheHosts: hosts6 },
  };
  return { f, maps: maps as unknown as PolicyMaps, log };
}

const allowFromB = policy('x', 'a-from-b', {
  podSelector: { matchLabels: { pod: 'a' } },
  ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 8080, endPort: 8090, protocol: 'TCP' }] }],
});

test('a model in the maps: endpoints of this node only, every pod in the ipcache, keys per identity with port ranges as blocks', () => {
  const { f, maps } = fakes();
  const w = new PolicyWriter(maps);
  const model = buildPolicyModel({ ...inputs([allowFromB]), localNode: 'node-1' });
  const r = w.apply(desiredPolicyMaps(model, 'node-1', ['198.18.0.1']));
  assert.equal(r.errors, 0);
  assert.equal(f.endpoints.data.size, 3, 'x/a, x/b, x/c are on node-1');
  const a = f.endpoints.get({ address: podIp('x/a') }) as { identity: number; flags: number; ingress_policy: number };
  assert.equal(a.flags, EP_INGRESS_ISOLATED);
  assert.equal(fromCString((f.names.get(a.ingress_policy) as { name: Buffer }).name), 'x/a-from-b');
  for (const p of ALL_PODS) assert.ok(f.ipcache.get({ prefixlen: 32, address: podIp(p) }), `${p} in the ipcache`);
  assert.equal((f.ipcache.get({ prefixlen: 32, address: '198.18.0.1' }) as { identity: number }).identity, 1, 'a host address is the host identity');
  // 8080-8090 = 8080/13 (8080-8087), 8088/15 (8088-8089), 8090/16
  const b = model.endpoints.get('x/b')!.identity;
  const keys = [...f.policy.data.values()].map(([k]) => k as { prefixlen: number; identity: number; peer: number; port: number; protocol: number });
  assert.deepEqual(
    keys.map((k) => [k.identity, k.peer, k.protocol, k.port, k.prefixlen - POLICY_FIXED_BITS - 8]).sort(),
    [
      [a.identity, b, 6, 8080, 13],
      [a.identity, b, 6, 8088, 15],
      [a.identity, b, 6, 8090, 16],
    ].sort(),
  );
  // a second apply of the same model writes nothing
  const again = w.apply(desiredPolicyMaps(model, 'node-1', ['198.18.0.1']));
  assert.equal(again.writes, 0);
});

test('a restart adopts the maps: the same ids are built and nothing is written', () => {
  const { maps, log } = fakes();
  const first = new PolicyWriter(maps);
  const before = buildPolicyModel({ ...inputs([allowFromB]), localNode: 'node-1' });
  first.apply(desiredPolicyMaps(before, 'node-1', []));
  log.length = 0;
  const next = new PolicyWriter(maps);
  const ids = next.adopt();
  // the ids a fresh process would not otherwise pick in this order
  const model = buildPolicyModel({ ...inputs([allowFromB]), localNode: 'node-1', previous: ids });
  assert.deepEqual([...model.podIdentityIds].sort(), [...before.podIdentityIds].sort());
  const r = next.apply(desiredPolicyMaps(model, 'node-1', []));
  assert.equal(r.writes, 0, log.join(','));
});

test('a relabel into an identity this node already has: one endpoint entry and one ipcache entry (and its host-hash copy), no policy key', () => {
  const { maps, log } = fakes();
  const w = new PolicyWriter(maps);
  const m1 = buildPolicyModel({ ...inputs([allowFromB]), localNode: 'node-1' });
  w.apply(desiredPolicyMaps(m1, 'node-1', []));
  log.length = 0;
  // x/c takes x/b's labels: same namespace, same labels, same named ports -> x/b's identity
  const m2 = buildPolicyModel({ ...inputs([allowFromB], { 'x/c': { pod: 'b' } }), localNode: 'node-1', previousModel: m1 });
  assert.equal(m2.endpoints.get('x/c')!.identity, m2.endpoints.get('x/b')!.identity);
  w.apply(desiredPolicyMaps(m2, 'node-1', []));
  // (x/c's old identity is gone from the cluster: its weir_identities entry goes too)
  assert.deepEqual(log.filter((l) => !l.endsWith('identities')).sort(), ['set endpoints', 'set hosts', 'set ipcache']);
});

test('order: keys and ipcache before the endpoint switch, deletions after it', () => {
  const { maps, log } = fakes();
  const w = new PolicyWriter(maps);
  w.apply(desiredPolicyMaps(buildPolicyModel({ ...inputs([]), localNode: 'node-1' }), 'node-1', []));
  log.length = 0;
  w.apply(desiredPolicyMaps(buildPolicyModel({ ...inputs([allowFromB]), localNode: 'node-1' }), 'node-1', []));
  const firstEndpoint = log.indexOf('set endpoints');
  assert.ok(firstEndpoint > log.lastIndexOf('set policy') && firstEndpoint > log.lastIndexOf('set names'), log.join(','));
  log.length = 0;
  w.apply(desiredPolicyMaps(buildPolicyModel({ ...inputs([]), localNode: 'node-1' }), 'node-1', []));
  assert.ok(log.indexOf('set endpoints') < log.indexOf('delete policy'), `isolation lifted before its keys go: ${log.join(',')}`);
  assert.ok(log.indexOf('delete policy') < log.indexOf('delete names'), log.join(','));
});

test('a full policy map: the keys that fit are written, the failures are named, the endpoint stays isolated (fail closed)', () => {
  const { f, maps } = fakes();
  const w = new PolicyWriter(maps);
  // room for two entries (an existing key can always be rewritten, as in the kernel)
  f.policy.failOn = (k) => f.policy.data.size >= 2 && !f.policy.data.has(JSON.stringify(k));
  const r = w.apply(desiredPolicyMaps(buildPolicyModel({ ...inputs([allowFromB]), localNode: 'node-1' }), 'node-1', []));
  assert.equal(r.errors, 1);
  assert.equal(f.policy.data.size, 2);
  const failures = w.takeFailures();
  assert.equal(failures.length, 1);
  assert.equal(failures[0]!.map, 'weir_policy4');
  assert.match(failures[0]!.error, /E2BIG/);
  const a = f.endpoints.get({ address: podIp('x/a') }) as { flags: number };
  assert.equal(a.flags, EP_INGRESS_ISOLATED, 'x/a is isolated: the missing key denies, never allows');
  // room again: the next apply writes the missing key
  f.policy.failOn = undefined;
  const retry = w.apply(desiredPolicyMaps(buildPolicyModel({ ...inputs([allowFromB]), localNode: 'node-1' }), 'node-1', []));
  assert.equal(retry.writes, 1);
  assert.equal(f.policy.data.size, 3);
});

test('a policy with an invalid CIDR: reported, the rest of the policy set still in the maps', () => {
  const { f, maps } = fakes();
  const bad = policy('x', 'bad-cidr', { podSelector: { matchLabels: { pod: 'c' } }, ingress: [{ from: [{ ipBlock: { cidr: '198.18.300.0/24' } }] }] });
  const model = buildPolicyModel({ ...inputs([allowFromB, bad]), localNode: 'node-1' });
  assert.deepEqual(
    model.policyIssues.map((i) => [i.policy, i.reason]),
    [['x/bad-cidr', 'invalid_cidr']],
  );
  new PolicyWriter(maps).apply(desiredPolicyMaps(model, 'node-1', []));
  const c = f.endpoints.get({ address: podIp('x/c') }) as { flags: number; identity: number };
  assert.equal(c.flags, EP_INGRESS_ISOLATED, 'x/c stays isolated by the policy whose peer was dropped (fail closed)');
  assert.ok(![...f.policy.data.values()].some(([k]) => (k as { identity: number }).identity === c.identity), 'and nothing is allowed into it');
  assert.equal(f.policy.data.size, 3, "a-from-b's keys are all there");
});

/** A pod's IPv6 address in the e2e cluster: 2001:2:0:<namespace>::<pod>, as podIp's IPv4 one. */
function podIp6(key: string): string {
  const [, ns, last] = /^198\.18\.(\d+)\.(\d+)$/.exec(podIp(key))!;
  return `2001:2:0:${ns}::${Number(last).toString(16)}`;
}

/** inputs() with every pod dual-stack (except those in `v4only`) and two dual-stack nodes */
function dualStack(policies: V1NetworkPolicy[], v4only: string[] = []): PolicyInputs {
  const base = inputs(policies);
  const pods = [...base.pods].map((p) => {
    const key = `${p.metadata!.namespace}/${p.metadata!.name}`;
    if (v4only.includes(key)) return p;
    return { ...p, status: { ...p.status, podIPs: [...p.status!.podIPs!, { ip: podIp6(key) }] } };
  });
  const node = (name: string, v4: string, v6: string) => ({ name, internalIP: { 4: v4, 6: v6 }, podCIDRs: [], zone: '', toBeDeleted: false });
  return { ...base, pods, nodes: [node('node-1', '198.18.0.1', '2001:2::1'), node('node-2', '198.18.0.2', '2001:2::2')], localNode: 'node-1' };
}

const HOST_ADDRESSES = ['198.18.0.1', '2001:2::1', '2001:2:0:1::1'];

const allowV6Block = policy('x', 'a-from-v6-block', {
  podSelector: { matchLabels: { pod: 'a' } },
  ingress: [{ from: [{ ipBlock: { cidr: '2001:2:0:f000::/52', except: ['2001:2:0:f100::/56'] } }] }],
});

test('dual stack: IPv6 addresses in weir_ipcache6 and its host hash, local pods in weir_endpoints6 as in weir_endpoints4; the IPv4 maps hold no IPv6', () => {
  const { f, maps, log } = fakes();
  const w = new PolicyWriter(maps);
  const model = buildPolicyModel(dualStack([allowFromB, allowV6Block]));
  const r = w.apply(desiredPolicyMaps(model, 'node-1', HOST_ADDRESSES));
  assert.equal(r.errors, 0, JSON.stringify(w.takeFailures()));
  assert.equal(f.endpoints6.data.size, 3, 'x/a, x/b, x/c are on node-1');
  for (const p of ['x/a', 'x/b', 'x/c']) assert.deepEqual(f.endpoints6.get({ address: podIp6(p) }), f.endpoints.get({ address: podIp(p) }), p);
  const a = f.endpoints6.get({ address: podIp6('x/a') }) as { flags: number; ingress_policy: number };
  assert.equal(a.flags, EP_INGRESS_ISOLATED);
  for (const p of ALL_PODS) {
    const v6 = f.ipcache6.get({ prefixlen: 128, address: podIp6(p) }) as { identity: number } | undefined;
    assert.ok(v6, `${p} in weir_ipcache6`);
    assert.equal(v6.identity, (f.ipcache.get({ prefixlen: 32, address: podIp(p) }) as { identity: number }).identity, `${p}: one identity in both families`);
    assert.deepEqual(f.hosts6.get({ address: podIp6(p) }), v6, `${p} in weir_ipcache6_hosts`);
  }
  const identityOf = (address: string) => (f.ipcache6.get({ prefixlen: 128, address }) as { identity: number }).identity;
  assert.equal(identityOf('2001:2::1'), 1, "this node's InternalIP: host");
  assert.equal(identityOf('2001:2:0:1::1'), 1, 'its gateway address: host');
  assert.equal(identityOf('2001:2::2'), 2, "the other node's: remote node");
  const block = f.ipcache6.get({ prefixlen: 52, address: '2001:2:0:f000::' }) as { identity: number; cidr_identity: number };
  const except = f.ipcache6.get({ prefixlen: 56, address: '2001:2:0:f100::' }) as { identity: number; cidr_identity: number };
  assert.ok(block && except && block.identity !== except.identity, 'the ipBlock and its except: prefixes of their own');
  assert.ok(
    [...f.policy.data.values()].some(([k]) => (k as { peer: number }).peer === block.identity),
    'a key allows the block (the same weir_policy4 keys serve both families)',
  );
  assert.ok(![...f.policy.data.values()].some(([k]) => (k as { peer: number }).peer === except.identity), 'none the except');
  assert.ok(![...f.hosts6.keys()].some((k) => (k as { address: string }).address === '2001:2:0:f000::'), 'prefixes stay out of the host hash');
  const v4Keys = [...f.ipcache.keys(), ...f.endpoints.keys(), ...f.hosts.keys()].map((k) => (k as { address: string }).address);
  assert.ok(!v4Keys.some((a) => a.includes(':')), `no IPv6 address in an IPv4 map: ${v4Keys.join(',')}`);
  // no gap: the IPv6 ipcache before the endpoints that switch to it
  assert.ok(log.lastIndexOf('set ipcache6') < log.indexOf('set endpoints6'), log.join(','));
  assert.equal(w.apply(desiredPolicyMaps(model, 'node-1', HOST_ADDRESSES)).writes, 0, 'a second apply writes nothing');
});

test('dual stack: a restart adopts the IPv6 maps (0 writes); an IPv6 address gone leaves every IPv6 map, after its endpoint', () => {
  const { f, maps, log } = fakes();
  const desired = (v4only: string[] = [], previousModel?: ReturnType<typeof buildPolicyModel>) => {
    const model = buildPolicyModel({ ...dualStack([allowFromB, allowV6Block], v4only), ...(previousModel ? { previousModel } : {}) });
    return { model, want: desiredPolicyMaps(model, 'node-1', HOST_ADDRESSES) };
  };
  const first = desired();
  new PolicyWriter(maps).apply(first.want);
  log.length = 0;
  const next = new PolicyWriter(maps);
  const ids = next.adopt();
  const model = buildPolicyModel({ ...dualStack([allowFromB, allowV6Block]), previous: ids });
  assert.equal(next.apply(desiredPolicyMaps(model, 'node-1', HOST_ADDRESSES)).writes, 0, log.join(','));
  // x/b loses its IPv6 address (the pod IP list changed)
  const gone = desired(['x/b'], model);
  next.apply(gone.want);
  const b6 = podIp6('x/b');
  assert.equal(f.endpoints6.get({ address: b6 }), undefined);
  assert.equal(f.ipcache6.get({ prefixlen: 128, address: b6 }), undefined);
  assert.equal(f.hosts6.get({ address: b6 }), undefined);
  assert.ok(f.endpoints.get({ address: podIp('x/b') }), 'its IPv4 endpoint stays');
  assert.ok(log.indexOf('delete endpoints6') < log.indexOf('delete ipcache6'), `the endpoint goes before its ipcache entry: ${log.join(',')}`);
});
