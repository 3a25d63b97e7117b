// PolicyWriter (src/dataplane/policy-maps.ts) on in-memory maps: what a model becomes in the
// five policy maps, that only differences are written (a second apply and a restart's adopt
// write nothing), that a relabel into an identity this node already has writes one endpoint
// entry and no policy key, the order that never opens a gap (keys before endpoints, deletes
// last), port ranges as LPM blocks, and a full map failing closed without losing the rest.

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
    policy: new FakeMap(),
    names: new FakeMap(),
    identities: new FakeMap(),
    selects: new FakeMap(),
  };
  const log: string[] = [];
  for (const [name, m] of Object.entries(f)) {
    const set = m.set.bind(m);
    const del = m.delete.bind(m);
    m.set = (k: never, v: never) => (log.push(`set ${name}`), set(k, v));
    m.delete = (k: never) => (log.push(`delete ${name}`), del(k));
  }
  return { f, maps: f as unknown as PolicyMaps, log };
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

test('a relabel into an identity this node already has: one endpoint entry and one ipcache entry, no policy key', () => {
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
  assert.deepEqual(log.filter((l) => !l.endsWith('identities')).sort(), ['set endpoints', 'set ipcache']);
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
