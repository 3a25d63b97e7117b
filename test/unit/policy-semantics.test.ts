// NetworkPolicy semantics the e2e tables do not reach (model/policy): the policyTypes default,
// named ports resolved per destination pod (ingress on the endpoint, egress on each peer), ipBlock
// with except for addresses outside the cluster, bad input reported and failing closed, host-network
// pods and the node, and the identity allocator. Expected values from the NetworkPolicy API docs
// (kubernetes.io/docs/concepts/services-networking/network-policies and the API reference).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { buildPolicyModel, type PolicyInputs } from '../../src/model/policy/network-policy.js';
import { allowed, verdict } from '../../src/model/policy/verdict.js';
import { allocateIds, FIRST_POD_IDENTITY, IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD } from '../../src/model/policy/identities.js';
import { diffPolicyModels, keyWrites } from '../../src/model/policy/diff.js';
import { e2eInputs, namespace, pod, podIp, policy } from './policy-helpers.js';

const A = { pod: 'x/a' };
const B = { pod: 'x/b' };
const YA = { pod: 'y/a' };

function inputs(policies: PolicyInputs['policies'], pods: V1Pod[]): PolicyInputs {
  return { policies, pods, namespaces: ['x', 'y'].map((n) => namespace(n)) };
}

test('policyTypes absent: Ingress always, Egress only when there are egress rules', () => {
  // ingress rules only → isolated for ingress, egress untouched
  let m = buildPolicyModel(e2eInputs([policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: {} }] }] })]));
  assert.equal(m.endpoints.get('x/a')!.ingress.isolated, true);
  assert.equal(m.endpoints.get('x/a')!.egress.isolated, false);
  assert.equal(allowed(m, A, YA, 'TCP', 80), true);
  assert.equal(allowed(m, YA, A, 'TCP', 80), false);
  // egress rules only, no policyTypes → Ingress AND Egress: ingress is denied (no ingress rules)
  m = buildPolicyModel(e2eInputs([policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, egress: [{ ports: [{ port: 80 }] }] })]));
  assert.equal(m.endpoints.get('x/a')!.ingress.isolated, true);
  assert.equal(m.endpoints.get('x/a')!.egress.isolated, true);
  assert.equal(allowed(m, YA, A, 'TCP', 80), false);
  assert.equal(allowed(m, A, YA, 'TCP', 80), true);
  assert.equal(allowed(m, A, YA, 'TCP', 81), false);
  // `egress: []` is no egress rule: Ingress only
  m = buildPolicyModel(e2eInputs([policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, egress: [] })]));
  assert.equal(m.endpoints.get('x/a')!.egress.isolated, false);
  assert.equal(m.endpoints.get('x/a')!.ingress.isolated, true);
  // policyTypes [Egress] ignores ingress rules and does not isolate for ingress
  m = buildPolicyModel(e2eInputs([policy('x', 'p', { podSelector: {}, policyTypes: ['Egress'], ingress: [{}], egress: [] })]));
  assert.equal(m.endpoints.get('x/a')!.ingress.isolated, false);
  assert.equal(allowed(m, YA, A, 'TCP', 80), true);
  assert.equal(allowed(m, A, YA, 'TCP', 80), false);
});

test('spec.podSelector absent means every pod of the namespace (it is required; {} when omitted)', () => {
  const m = buildPolicyModel(e2eInputs([policy('x', 'p', { policyTypes: ['Ingress'] })]));
  assert.deepEqual(
    [...m.endpoints.values()].filter((e) => e.ingress.isolated).map((e) => e.pod),
    ['x/a', 'x/b', 'x/c'],
  );
});

test('ingress named port resolves on each destination pod; a pod without it gets nothing', () => {
  const pods = [
    pod('x/a', { ports: [['http', 8080, 'TCP']] }),
    pod('x/b', { ports: [['http', 9090, 'TCP']] }),
    pod('x/c', { ports: [['metrics', 9100, 'TCP']] }),
    pod('y/a'),
  ];
  const m = buildPolicyModel(inputs([policy('x', 'web', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] })], pods));
  assert.deepEqual(m.policyIssues, []);
  assert.equal(allowed(m, YA, A, 'TCP', 8080), true);
  assert.equal(allowed(m, YA, A, 'TCP', 9090), false);
  assert.equal(allowed(m, YA, B, 'TCP', 9090), true);
  assert.equal(allowed(m, YA, B, 'TCP', 8080), false);
  assert.equal(m.endpoints.get('x/c')!.ingress.isolated, true);
  assert.deepEqual(m.endpoints.get('x/c')!.ingress.keys, []);
  // the name is bound to the protocol: http/TCP does not open UDP
  assert.equal(allowed(m, YA, A, 'UDP', 8080), false);
});

test('egress named port resolves on each destination pod (pods with equal labels but other ports get other identities)', () => {
  const pods = [
    pod('x/a'),
    pod('y/a', { labels: { app: 'srv' }, ports: [['http', 8080, 'TCP']] }),
    pod('y/b', { labels: { app: 'srv' }, ports: [['http', 9090, 'TCP']] }),
    pod('y/c', { labels: { app: 'srv' }, ports: [] }),
  ];
  const p = policy('x', 'out', {
    podSelector: { matchLabels: { pod: 'a' } },
    policyTypes: ['Egress'],
    egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] }],
  });
  const m = buildPolicyModel(inputs([p], pods));
  assert.notEqual(m.endpoints.get('y/a')!.identity, m.endpoints.get('y/b')!.identity);
  assert.equal(allowed(m, A, YA, 'TCP', 8080), true);
  assert.equal(allowed(m, A, YA, 'TCP', 9090), false);
  assert.equal(allowed(m, A, { pod: 'y/b' }, 'TCP', 9090), true);
  assert.equal(allowed(m, A, { pod: 'y/b' }, 'TCP', 8080), false);
  assert.equal(allowed(m, A, { pod: 'y/c' }, 'TCP', 8080), false);
  // a named port never matches an address that is no pod
  assert.equal(allowed(m, A, { ip: '198.19.0.1' }, 'TCP', 8080), false);
});

test('ipBlock with except, ingress from and egress to addresses outside the cluster', () => {
  const block = { ipBlock: { cidr: '198.19.0.0/16', except: ['198.19.5.0/24'] } };
  const ing = policy('x', 'in', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [block], ports: [{ port: 443 }] }] });
  const eg = policy('x', 'out', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [block] }] });
  const m = buildPolicyModel(e2eInputs([ing, eg]));
  assert.deepEqual(m.policyIssues, []);
  assert.equal(allowed(m, { ip: '198.19.6.1' }, A, 'TCP', 443), true);
  assert.equal(allowed(m, { ip: '198.19.6.1' }, A, 'TCP', 80), false);
  assert.equal(allowed(m, { ip: '198.19.5.7' }, A, 'TCP', 443), false, 'inside except');
  assert.equal(allowed(m, { ip: '198.18.200.1' }, A, 'TCP', 443), false, 'outside cidr');
  assert.equal(allowed(m, A, { ip: '198.19.255.254' }, 'UDP', 53), true);
  assert.equal(allowed(m, A, { ip: '198.19.5.1' }, 'UDP', 53), false);
  // a second block inside the except re-allows part of it (union of peers)
  const m2 = buildPolicyModel(e2eInputs([ing, policy('x', 'in2', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '198.19.5.128/25' } }] }] })]));
  assert.equal(allowed(m2, { ip: '198.19.5.200' }, A, 'TCP', 443), true);
  assert.equal(allowed(m2, { ip: '198.19.5.7' }, A, 'TCP', 443), false);
});

test('bad input: invalid CIDR / except outside cidr / bad peers are reported, that peer dropped, the rest of the policy enforced', () => {
  const p = policy('x', 'mixed', {
    podSelector: { matchLabels: { pod: 'a' } },
    ingress: [
      {
        from: [
          { ipBlock: { cidr: '198.19.0.0/33' } },
          { ipBlock: { cidr: '198.19.0.0/16', except: ['198.18.0.0/24'] } },
          { ipBlock: { cidr: '198.19.0.0/16' }, podSelector: {} },
          {},
          { podSelector: { matchLabels: { pod: 'b' } } },
        ],
      },
      // every peer invalid: the rule must allow nothing, not everything
      { from: [{ ipBlock: { cidr: 'nope' } }] },
      // every port invalid: nothing, not all ports
      { ports: [{ protocol: 'ICMP', port: 1 }, { port: 80, endPort: 79 }, { port: 'http', endPort: 90 }, { port: 'Not_A_Name' }] },
    ],
  });
  const m = buildPolicyModel(e2eInputs([p]));
  assert.deepEqual(
    m.policyIssues.map((i) => `${i.reason} ${i.field}`),
    [
      'invalid_cidr spec.ingress[0].from[0].ipBlock.cidr',
      'invalid_cidr spec.ingress[0].from[1].ipBlock.except[0]',
      'invalid_peer spec.ingress[0].from[2]',
      'invalid_peer spec.ingress[0].from[3]',
      'invalid_cidr spec.ingress[1].from[0].ipBlock.cidr',
      'unknown_protocol spec.ingress[2].ports[0].protocol',
      'invalid_port spec.ingress[2].ports[1].endPort',
      'invalid_port spec.ingress[2].ports[2].endPort',
      'invalid_port spec.ingress[2].ports[3].port',
    ],
  );
  assert.equal(allowed(m, B, A, 'TCP', 80), true, 'the valid peer still allows');
  assert.equal(allowed(m, { pod: 'x/c' }, A, 'TCP', 80), false);
  assert.equal(allowed(m, { ip: '198.19.1.1' }, A, 'TCP', 80), false);
  assert.equal(allowed(m, YA, A, 'TCP', 80), false);
});

test('an invalid podSelector selects no pod and is reported', () => {
  const m = buildPolicyModel(e2eInputs([policy('x', 'bad', { podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: [] }] } })]));
  assert.deepEqual(
    m.policyIssues.map((i) => i.reason),
    ['invalid_selector'],
  );
  assert.ok([...m.endpoints.values()].every((e) => !e.ingress.isolated));
});

test('host-network pods are not endpoints; a pod and its own node always talk; another node is policed', () => {
  const pods = [pod('x/a', { node: 'node-1' }), pod('x/h', { hostNetwork: true, ip: '198.18.0.1', node: 'node-1' }), pod('y/a', { node: 'node-2' })];
  const nodes = [
    { name: 'node-1', internalIP: { 4: '198.18.0.1', 6: null }, podCIDRs: [], zone: '', toBeDeleted: false },
    { name: 'node-2', internalIP: { 4: '198.18.0.2', 6: null }, podCIDRs: [], zone: '', toBeDeleted: false },
  ];
  const deny = policy('x', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
  const m = buildPolicyModel({ ...inputs([deny], pods), nodes, localNode: 'node-1' });
  assert.equal(m.endpoints.has('x/h'), false);
  assert.equal(allowed(m, { node: 'node-1' }, A, 'TCP', 8080), true);
  assert.equal(allowed(m, { ip: '198.18.0.1' }, A, 'TCP', 8080), true, 'the host-network pod is its node');
  assert.deepEqual(verdict(m, { pod: 'x/h' }, A, 'TCP', 8080), { allowed: true, reason: 'node-local' });
  assert.equal(allowed(m, A, { node: 'node-1' }, 'TCP', 10250), true);
  assert.equal(allowed(m, { node: 'node-2' }, A, 'TCP', 8080), false);
  assert.equal(m.ipcache.get('198.18.0.1/32')!.identity, IDENTITY_HOST);
  assert.equal(m.ipcache.get('198.18.0.2/32')!.identity, IDENTITY_REMOTE_NODE);
  // a rule can still allow other nodes by address
  const m2 = buildPolicyModel({
    ...inputs([policy('x', 'nodes', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '198.18.0.0/30' } }] }] })], pods),
    nodes,
  });
  assert.equal(allowed(m2, { node: 'node-2' }, A, 'TCP', 8080), true);
});

test('pods without an address or finished are no endpoints; verdict names the denying policies', () => {
  const done = pod('x/b');
  done.status!.phase = 'Succeeded';
  const m = buildPolicyModel(inputs([policy('x', 'deny-in', { podSelector: {} })], [pod('x/a'), done, pod('x/c', { ip: null }), pod('y/a')]));
  assert.deepEqual([...m.endpoints.keys()], ['x/a', 'y/a']);
  assert.deepEqual(verdict(m, YA, A, 'TCP', 80), { allowed: false, reason: 'ingress-denied', deniedBy: ['x/deny-in'] });
  assert.deepEqual(verdict(m, A, YA, 'TCP', 80), { allowed: true, reason: 'not-isolated' });
  assert.equal(verdict(m, { pod: 'x/zz' }, A, 'TCP', 80).reason, 'unknown-party');
});

test('verdict names the policy and rule that allowed each side (for weir explain)', () => {
  const ing = policy('x', 'web', {
    podSelector: { matchLabels: { pod: 'a' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'c' } } }] }, { from: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }],
  });
  const eg = policy('y', 'out', {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }, { to: [{ namespaceSelector: {} }] }],
  });
  const m = buildPolicyModel(e2eInputs([ing, eg]));
  const v = verdict(m, YA, A, 'TCP', 80);
  assert.equal(v.allowed, true);
  assert.deepEqual(v.ingressRule, { policy: 'x/web', rule: 1 });
  assert.deepEqual(v.egressRule, { policy: 'y/out', rule: 1 });
  assert.deepEqual(verdict(m, { pod: 'x/c' }, A, 'TCP', 81).ingressRule, { policy: 'x/web', rule: 0 });
  assert.equal(verdict(m, YA, A, 'TCP', 81).reason, 'ingress-denied');
});

test('identities: equal labels share one id, reserved ids stay free, ids are adopted across rebuilds', () => {
  const pods = [pod('x/a', { labels: { app: 'web' } }), pod('x/b', { labels: { app: 'web' } }), pod('x/c', { labels: { app: 'db' } })];
  const m1 = buildPolicyModel(inputs([], pods));
  assert.equal(m1.endpoints.get('x/a')!.identity, m1.endpoints.get('x/b')!.identity);
  assert.notEqual(m1.endpoints.get('x/a')!.identity, m1.endpoints.get('x/c')!.identity);
  assert.ok([...m1.podIdentities.keys()].every((id) => id >= FIRST_POD_IDENTITY));
  assert.equal(m1.podIdentities.size, 2);
  // a new pod with labels sorting first must not renumber the others when previous ids are given
  const pods2 = [pod('x/0', { labels: { app: 'aaa' } }), ...pods];
  const m2 = buildPolicyModel({ ...inputs([], pods2), previous: { podIdentities: m1.podIdentityIds } });
  assert.equal(m2.endpoints.get('x/a')!.identity, m1.endpoints.get('x/a')!.identity);
  assert.equal(m2.endpoints.get('x/c')!.identity, m1.endpoints.get('x/c')!.identity);
  assert.equal(m2.endpoints.get('x/0')!.identity, FIRST_POD_IDENTITY + 2);
});

test('allocateIds: previous ids kept, released ids reused lowest-first, bad previous ids dropped', () => {
  const prev = new Map([
    ['a', 10],
    ['b', 11],
    ['c', 12],
    ['dup', 12],
    ['out', 99],
  ]);
  const { ids, issues } = allocateIds(['c', 'a', 'new2', 'new1', 'dup', 'out'], prev, 10, 20);
  assert.deepEqual(Object.fromEntries(ids), { a: 10, c: 12, dup: 11, new1: 13, new2: 14, out: 15 });
  assert.deepEqual(issues, [
    { key: 'dup', reason: 'previous_duplicate' },
    { key: 'out', reason: 'previous_out_of_range' },
  ]);
  const full = allocateIds(['a', 'b', 'c'], new Map(), 1, 2);
  assert.deepEqual(full.issues, [{ key: 'c', reason: 'range_exhausted' }]);
  assert.equal(IDENTITY_WORLD, 3);
});

test('churn: relabelling a pod into an existing identity rewrites only its own endpoint; an unrelated rebuild diffs empty', () => {
  const policies = [
    policy('x', 'to-web', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }] }] }),
    policy('y', 'from-x', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } } }] }] }),
  ];
  const base = ['a', 'b', 'c', 'd'].map((n) => pod(`x/${n}`, { labels: { app: 'web' }, ip: `198.18.1.${n.charCodeAt(0)}` }));
  const clients = [pod('x/k1', { labels: { role: 'client' }, ip: '198.18.1.201' }), pod('x/k2', { labels: { role: 'client' }, ip: '198.18.1.202' })];
  const ys = [pod('y/a', { ip: podIp('y/a') }), pod('y/b', { ip: podIp('y/b') })];
  const m1 = buildPolicyModel(inputs(policies, [...base, ...clients, ...ys]));
  const again = buildPolicyModel({
    ...inputs(policies, [...base, ...clients, ...ys]),
    previous: { podIdentities: m1.podIdentityIds, cidrIdentities: m1.cidrIdentityIds },
  });
  assert.equal(keyWrites(diffPolicyModels(m1, again)), 0);
  assert.deepEqual(diffPolicyModels(m1, again).ipcache, { upserted: [], removed: [] });
  // x/d becomes a client: the client identity exists and web keeps members → no other endpoint's keys move
  const relabelled = [...base.slice(0, 3), pod('x/d', { labels: { role: 'client' }, ip: `198.18.1.${'d'.charCodeAt(0)}` }), ...clients, ...ys];
  const m2 = buildPolicyModel({ ...inputs(policies, relabelled), previous: { podIdentities: m1.podIdentityIds } });
  const d = diffPolicyModels(m1, m2);
  assert.deepEqual(
    d.endpoints.changed.map((c) => c.pod),
    ['x/d'],
  );
  assert.deepEqual(d.identities, { added: [], removed: [] });
  assert.deepEqual(
    d.ipcache.upserted.map((e) => e.cidr),
    ['198.18.1.100/32'],
  );
  assert.equal(allowed(m2, { pod: 'x/d' }, { pod: 'x/a' }, 'TCP', 80), true);
  assert.equal(allowed(m1, { pod: 'x/d' }, { pod: 'x/a' }, 'TCP', 80), false);
  // scaling clients up: a new pod in an existing identity changes no endpoint's keys at all
  const m3 = buildPolicyModel({
    ...inputs(policies, [...base, ...clients, pod('x/k3', { labels: { role: 'client' }, ip: '198.18.1.203' }), ...ys]),
    previous: { podIdentities: m1.podIdentityIds },
  });
  const d3 = diffPolicyModels(m1, m3);
  assert.deepEqual(d3.endpoints.changed, []);
  assert.deepEqual(
    d3.endpoints.added.map((e) => e.pod),
    ['x/k3'],
  );
});

test('dual-stack: both pod addresses carry the identity; IPv6 ipBlocks with except; a v4 block never matches v6', () => {
  const dual = (key: string, ip4: string, ip6: string): V1Pod => {
    const p = pod(key);
    p.status!.podIPs = [{ ip: ip4 }, { ip: ip6 }];
    p.status!.podIP = ip4;
    return p;
  };
  const pods = [dual('x/a', '198.18.1.10', '2001:2:0:1::a'), dual('y/a', '198.18.2.10', '2001:2:0:2::a'), dual('y/b', '198.18.2.11', '2001:2:0:2::b')];
  const p = policy('x', 'v6', {
    podSelector: {},
    ingress: [
      { from: [{ podSelector: {}, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }], ports: [{ port: 80 }] },
      { from: [{ ipBlock: { cidr: '2001:2:0:f000::/52', except: ['2001:2:0:f100::/56'] } }, { ipBlock: { cidr: '198.19.0.0/16' } }] },
    ],
  });
  const m = buildPolicyModel(inputs([p], pods));
  assert.deepEqual(m.policyIssues, []);
  assert.equal(m.ipcache.get('2001:2:0:2::a/128')!.identity, m.endpoints.get('y/a')!.identity);
  assert.equal(allowed(m, { ip: '2001:2:0:2::a' }, A, 'TCP', 80), true);
  assert.equal(allowed(m, { ip: '2001:2:0:2::a' }, A, 'TCP', 81), false);
  assert.equal(allowed(m, { ip: '2001:2:0:f200::1' }, { ip: '2001:2:0:1::a' }, 'TCP', 81), true);
  assert.equal(allowed(m, { ip: '2001:2:0:f1ff::1' }, A, 'TCP', 81), false, 'inside except');
  assert.equal(allowed(m, { ip: '2001:2:0:e000::1' }, A, 'TCP', 81), false, 'outside cidr');
  assert.equal(allowed(m, { ip: '198.19.3.3' }, A, 'TCP', 81), true);
  assert.equal(allowed(m, { ip: '2001:2:0:f200::1' }, { ip: '198.18.1.10' }, 'TCP', 81), true, 'v6 client, the same endpoint');
});

test('sidecar (init container) named ports count; a duplicate pod IP is reported and kept by the first pod', () => {
  const side = pod('x/a', { ports: [] });
  side.spec!.initContainers = [{ name: 'proxy', restartPolicy: 'Always', ports: [{ name: 'proxy', containerPort: 15001 }] }];
  const dup = pod('x/b', { ip: podIp('x/a') });
  const m = buildPolicyModel(inputs([policy('x', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'proxy' }] }] })], [side, dup, pod('y/a')]));
  assert.equal(allowed(m, YA, A, 'TCP', 15001), true);
  assert.equal(allowed(m, YA, A, 'TCP', 15002), false);
  assert.deepEqual(m.podIssues, [{ pod: 'x/b', reason: 'duplicate_ip', detail: `${podIp('x/a')} is also x/a's; x/a keeps it` }]);
  assert.equal(m.endpointByIp.get(podIp('x/a')), 'x/a');
});

test('policy-level bad input: no name, no spec, unknown policyTypes value', () => {
  const noName = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'x' }, spec: { podSelector: {} } };
  const noSpec = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'x', name: 'nospec' } };
  const badType = policy('x', 'types', { podSelector: {}, policyTypes: ['Ingress', 'Sideways'] });
  const m = buildPolicyModel(e2eInputs([noName as never, noSpec as never, badType]));
  assert.deepEqual(
    m.policyIssues.map((i) => `${i.policy} ${i.reason} ${i.field}`),
    ['x/ no_name metadata.name', 'x/nospec no_spec spec', 'x/types unknown_policy_type spec.policyTypes[1]'],
  );
  // the valid part of the last one still isolates x for ingress
  assert.equal(allowed(m, YA, A, 'TCP', 80), false);
  assert.equal(allowed(m, A, YA, 'TCP', 80), true);
});
