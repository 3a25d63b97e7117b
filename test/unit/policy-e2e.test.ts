// The upstream NetworkPolicy e2e suite (kubernetes/kubernetes test/e2e/network/netpol/network_policy.go)
// ported to the pure model: the same x/y/z × a/b/c cluster, the same policies (built as the suite's
// Gen…/SetSpec…Rules helpers build them: SetSpecIngressRules/SetSpecEgressRules add their type to
// policyTypes), and each Reachability table written exactly as the suite writes it. Every expected
// value below is the suite's, transcribed from the named `It(...)`; none comes from running the model.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPolicyModel } from '../../src/model/policy/network-policy.js';
import { diffPolicyModels } from '../../src/model/policy/diff.js';
import { assertReachability, check, e2eInputs, podIp, policy, Reachability } from './policy-helpers.js';

const R = (def = true): Reachability => new Reachability(def);
const NS_LABEL = 'kubernetes.io/metadata.name';
/** GenNetworkPolicyWithNameAndPodSelector(name, sel, SetSpecIngressRules(rules…)) in namespace x. */
const ingressPolicy = (name: string, podSelector: object, ingress: object[], ns = 'x') => policy(ns, name, { podSelector, policyTypes: ['Ingress'], ingress });
const egressPolicy = (name: string, podSelector: object, egress: object[], ns = 'x') => policy(ns, name, { podSelector, policyTypes: ['Egress'], egress });
const podA = { matchLabels: { pod: 'a' } };

test("e2e: should support a 'default-deny-ingress' policy (TCP, UDP and SCTP variants)", () => {
  const want = R().expectPeer({}, { ns: 'x' }, false);
  for (const proto of ['TCP', 'UDP', 'SCTP']) check([ingressPolicy('deny-ingress', {}, [])], want, proto, 80);
});

test("e2e: should support a 'default-deny-all' policy", () => {
  const p = policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] });
  check([p], R().expectPeer({}, { ns: 'x' }, false).expectPeer({ ns: 'x' }, {}, false), 'TCP', 80);
});

test('e2e: should enforce policy to allow traffic from pods within server namespace based on PodSelector', () => {
  const p = ingressPolicy('x-a-allows-x-b', podA, [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }]);
  check([p], R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true), 'TCP', 80);
});

test('e2e: should enforce policy to allow ingress traffic for a target', () => {
  const deny = ingressPolicy('deny-all', {}, []);
  const allow = ingressPolicy('allow-all-to-a', podA, [{ from: [{ podSelector: {}, namespaceSelector: {} }] }]);
  // the suite's table (x/a, x/b, y/a) plus x/c, isolated by deny-all exactly like x/b
  check([deny, allow], R().expectAllIngress('x/a', true).expectAllIngress('x/b', false).expectAllIngress('x/c', false), 'TCP', 80);
});

test('e2e: should enforce policy to allow ingress traffic from pods in all namespaces', () => {
  check([ingressPolicy('allow-from-another-ns', podA, [{ from: [{ namespaceSelector: { matchLabels: {} } }] }])], R(), 'TCP', 80);
});

test('e2e: should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector (and using default ns label)', () => {
  const want = R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false);
  check([ingressPolicy('allow-client-a-via-ns-selector', podA, [{ from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } } }] }])], want, 'TCP', 80);
});

test('e2e: should enforce policy based on PodSelector with MatchExpressions', () => {
  const p = ingressPolicy('x-a-allows-x-b', podA, [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] }]);
  check([p], R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true), 'TCP', 80);
});

test('e2e: should enforce policy based on NamespaceSelector with MatchExpressions', () => {
  const sel = { matchExpressions: [{ key: NS_LABEL, operator: 'In', values: ['y'] }] };
  const want = R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false);
  check([ingressPolicy('allow-ns-y-match-selector', podA, [{ from: [{ namespaceSelector: sel }] }])], want, 'TCP', 80);
});

test('e2e: should enforce policy based on PodSelector or NamespaceSelector', () => {
  const ns = { matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: ['x'] }] };
  const p = ingressPolicy('allow-ns-y-match-selector', podA, [{ from: [{ namespaceSelector: ns }, { podSelector: { matchLabels: { pod: 'b' } } }] }]);
  check([p], R().expect('x/a', 'x/a', false).expect('x/c', 'x/a', false), 'TCP', 80);
});

test('e2e: should enforce policy based on PodSelector and NamespaceSelector', () => {
  const ns = { matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: ['x'] }] };
  const p = ingressPolicy('allow-ns-y-podselector-and-nsselector', podA, [{ from: [{ namespaceSelector: ns, podSelector: { matchLabels: { pod: 'b' } } }] }]);
  check([p], R().expectAllIngress('x/a', false).expect('y/b', 'x/a', true).expect('z/b', 'x/a', true), 'TCP', 80);
});

test('e2e: should enforce policy based on Multiple PodSelectors and NamespaceSelectors', () => {
  const ns = { matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: ['x'] }] };
  const pods = { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] };
  const p = ingressPolicy('allow-ns-y-z-pod-b-c', podA, [{ from: [{ namespaceSelector: ns, podSelector: pods }] }]);
  // the suite's table (x/a,x/b,y/a,y/b,y/c) plus z/a, which neither selector half spares either
  const want = R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expect('y/a', 'x/a', false).expect('z/a', 'x/a', false);
  check([p], want, 'TCP', 80);
});

test('e2e: should enforce policy based on any PodSelectors', () => {
  const p = ingressPolicy('allow-ns-x-pod-b-c', podA, [
    { from: [{ podSelector: { matchLabels: { pod: 'b' } } }, { podSelector: { matchLabels: { pod: 'c' } } }] },
  ]);
  check([p], R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true).expect('x/c', 'x/a', true), 'TCP', 80);
});

test('e2e: should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector (TCP, UDP, SCTP)', () => {
  const p = ingressPolicy('allow-ns-y-pod-a-via-namespace-pod-selector', podA, [
    { from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } }, podSelector: { matchLabels: { pod: 'a' } } }] },
  ]);
  for (const proto of ['TCP', 'UDP', 'SCTP']) check([p], R().expectAllIngress('x/a', false).expect('y/a', 'x/a', true), proto, 80);
});

test('e2e: should enforce policy based on Ports (TCP, UDP, SCTP)', () => {
  for (const proto of ['TCP', 'UDP', 'SCTP']) {
    const p = ingressPolicy('allow-ingress-on-port-81-ns-x', podA, [
      { from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } } }], ports: [{ port: 81, protocol: proto }] },
    ]);
    const want = R()
      .expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false)
      .expectPeer({ ns: 'y' }, { ns: 'x', pod: 'a' }, true)
      .expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false);
    check([p], want, proto, 81);
  }
});

test('e2e: should enforce multiple, stacked policies with overlapping podSelectors', () => {
  const rule = (port: number) => ({ from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } } }], ports: [{ port, protocol: 'TCP' }] });
  const p81 = ingressPolicy('allow-client-a-via-ns-selector', podA, [rule(81)]);
  const allow = () =>
    R()
      .expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false)
      .expectPeer({ ns: 'y' }, { ns: 'x', pod: 'a' }, true)
      .expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false);
  check([p81], allow(), 'TCP', 81);
  check([p81], R().expectAllIngress('x/a', false), 'TCP', 80);
  const p80 = ingressPolicy('allow-client-a-via-ns-selector-80', podA, [rule(80)]);
  check([p81, p80], allow(), 'TCP', 80);
});

test('e2e: should support allow-all policy', () => {
  const p = ingressPolicy('allow-all', { matchLabels: {} }, [{}]);
  check([p], R(), 'TCP', 80);
  check([p], R(), 'TCP', 81);
});

test('e2e: should allow ingress access on one named port', () => {
  const p = ingressPolicy('allow-all', { matchLabels: {} }, [{ ports: [{ port: 'serve-81-tcp' }] }]);
  check([p], R(), 'TCP', 81);
  check([p], R().expectPeer({}, { ns: 'x' }, false), 'TCP', 80);
});

test('e2e: should allow ingress access from namespace on one named port', () => {
  const p = ingressPolicy('allow-client-a-via-ns-selector-80', podA, [
    { from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } } }], ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] },
  ]);
  check([p], R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false), 'TCP', 80);
  check([p], R().expectAllIngress('x/a', false), 'TCP', 81);
});

test('e2e: should allow egress access on one named port', () => {
  const p = egressPolicy('allow-egress', { matchLabels: {} }, [{ ports: [{ port: 'serve-80-tcp' }] }]);
  check([p], R(), 'TCP', 80);
  check([p], R().expectPeer({ ns: 'x' }, {}, false), 'TCP', 81);
});

test('e2e: should enforce updated policy (allow-all mutated to deny-all)', () => {
  check([ingressPolicy('allow-all-mutate-to-deny-all', { matchLabels: {} }, [{}])], R(), 'TCP', 81);
  check([ingressPolicy('allow-all-mutate-to-deny-all', { matchLabels: {} }, [])], R().expectPeer({}, { ns: 'x' }, false), 'TCP', 81);
});

test('e2e: should allow ingress access from updated namespace', () => {
  const p = ingressPolicy('allow-client-a-via-ns-selector', podA, [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }]);
  const before = check([p], R().expectAllIngress('x/a', false), 'TCP', 80);
  const after = check([p], R().expectAllIngress('x/a', false).expectPeer({ ns: 'y' }, {}, true), 'TCP', 80, { nsLabels: { y: { ns2: 'updated' } } });
  // the relabel gives y's pods new identities; only x/a (the one endpoint selecting them) gains keys
  const d = diffPolicyModels(before, after);
  assert.deepEqual(
    d.endpoints.changed.filter((c) => c.ingress.added.length + c.egress.added.length > 0).map((c) => c.pod),
    ['x/a'],
  );
});

test('e2e: should allow ingress access from updated pod', () => {
  const matchLabels = { pod: 'b', pod2: 'updated' };
  const p = ingressPolicy('allow-client-a-via-pod-selector', podA, [{ from: [{ podSelector: { matchLabels } }] }]);
  check([p], R().expectAllIngress('x/a', false), 'TCP', 80);
  check([p], R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true), 'TCP', 80, { podLabels: { 'x/b': matchLabels } });
});

test('e2e: should deny ingress from pods on other namespaces', () => {
  const p = ingressPolicy('deny-empty-policy', {}, [{ from: [{ podSelector: { matchLabels: {} } }] }]);
  check([p], R().expectPeer({ ns: 'y' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false), 'TCP', 80);
});

test('e2e: should deny ingress access to updated pod', () => {
  const p = ingressPolicy('deny-ingress-via-label-selector', { matchLabels: { target: 'isolated' } }, []);
  check([p], R(), 'TCP', 80);
  check([p], R().expectAllIngress('x/a', false), 'TCP', 80, { podLabels: { 'x/a': { pod: 'a', target: 'isolated' } } });
});

test('e2e: should deny egress from pods based on PodSelector', () => {
  check([egressPolicy('deny-egress-pod-a', podA, [])], R().expectAllEgress('x/a', false), 'TCP', 80);
});

test('e2e: should deny egress from all pods in a namespace', () => {
  check([egressPolicy('deny-egress-ns-x', {}, [])], R().expectPeer({ ns: 'x' }, {}, false), 'TCP', 80);
});

test('e2e: should work with Ingress, Egress specified together', () => {
  const p = policy('x', 'allow-client-a-via-pod-selector', {
    podSelector: podA,
    policyTypes: ['Egress', 'Ingress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
    egress: [{ ports: [{ port: 80 }] }],
  });
  check([p], R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true), 'TCP', 80);
  check([p], R().expectAllIngress('x/a', false).expectAllEgress('x/a', false).expect('x/b', 'x/a', true), 'TCP', 81);
});

test('e2e: should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)', () => {
  const toYa = egressPolicy('allow-to-ns-y-pod-a', podA, [{ to: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } }, podSelector: podA }] }]);
  const fromXa = [{ from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'x' } }, podSelector: podA }] }];
  const ya = ingressPolicy('allow-from-xa-on-ya-match-selector', podA, fromXa, 'y');
  const yb = ingressPolicy('allow-from-xa-on-yb-match-selector', { matchLabels: { pod: 'b' } }, fromXa, 'y');
  const want = R()
    .expectPeer({ ns: 'x', pod: 'a' }, {}, false)
    .expectPeer({}, { ns: 'y', pod: 'a' }, false)
    .expectPeer({ ns: 'x', pod: 'a' }, { ns: 'y', pod: 'a' }, true)
    .expectPeer({}, { ns: 'y', pod: 'b' }, false);
  check([toYa, ya, yb], want, 'TCP', 80);
});

test('e2e: should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector', () => {
  const p = egressPolicy('allow-to-ns-y-pod-a', podA, [{ to: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } }, podSelector: podA }] }]);
  check([p], R().expectAllEgress('x/a', false).expect('x/a', 'y/a', true), 'TCP', 80);
});

test('e2e: should enforce ingress policy allowing any port traffic to a server on a specific protocol', () => {
  const p = ingressPolicy('allow-ingress-by-proto', podA, [{ ports: [{ protocol: 'TCP' }] }]);
  check([p], R(), 'TCP', 80);
  check([p], R().expectPeer({}, { ns: 'x', pod: 'a' }, false), 'UDP', 80);
});

test('e2e: should enforce multiple ingress policies with ingress allow-all policy taking precedence', () => {
  const only80 = ingressPolicy('allow-ingress-port-80', { matchLabels: {} }, [{ ports: [{ port: 80 }] }]);
  check([only80], R().expectPeer({}, { ns: 'x' }, false), 'TCP', 81);
  check([only80, ingressPolicy('allow-ingress', { matchLabels: {} }, [{}])], R(), 'TCP', 81);
});

test('e2e: should enforce multiple egress policies with egress allow-all policy taking precedence', () => {
  const only80 = egressPolicy('allow-egress-port-80', { matchLabels: {} }, [{ ports: [{ port: 80 }] }]);
  check([only80], R().expectPeer({ ns: 'x' }, {}, false), 'TCP', 81);
  check([only80, egressPolicy('allow-egress', { matchLabels: {} }, [{}])], R(), 'TCP', 81);
});

test('e2e: should stop enforcing policies after they are deleted', () => {
  const p = policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] });
  const before = check([p], R().expectPeer({ ns: 'x' }, {}, false).expectPeer({}, { ns: 'x' }, false), 'TCP', 80);
  const after = check([], R(), 'TCP', 80);
  const d = diffPolicyModels(before, after);
  assert.equal(d.endpoints.changed.length, 3, 'the three x pods lose isolation');
  assert.ok(d.endpoints.changed.every((c) => c.ingress.isolated?.to === false && c.egress.isolated?.to === false));
});

test('e2e: should allow egress access to server in CIDR block', () => {
  const p = egressPolicy('allow-client-a-via-cidr-egress-rule', podA, [{ to: [{ ipBlock: { cidr: `${podIp('y/b')}/32` } }] }]);
  check([p], R().expectAllEgress('x/a', false).expect('x/a', 'y/b', true), 'TCP', 80);
});

/** makeLargeCIDRForIP: the pod IP with a /4 mask, masked (IPv4). */
const largeCidr = (): string => '192.0.0.0/4';

test('e2e: should enforce except clause while egress access to server in CIDR block', () => {
  const p = egressPolicy('allow-client-a-via-cidr-egress-rule', podA, [{ to: [{ ipBlock: { cidr: largeCidr(), except: [`${podIp('x/b')}/32`] } }] }]);
  check([p], R().expect('x/a', 'x/b', false), 'TCP', 80);
});

test('e2e: should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed', () => {
  const p1 = egressPolicy('allow-client-a-via-cidr-egress-rule', podA, [{ to: [{ ipBlock: { cidr: largeCidr(), except: [`${podIp('x/b')}/32`] } }] }]);
  check([p1], R().expect('x/a', 'x/b', false), 'TCP', 80);
  // the suite *updates* the same-named policy: only the /32 allow remains
  const p2 = egressPolicy('allow-client-a-via-cidr-egress-rule', podA, [{ to: [{ ipBlock: { cidr: `${podIp('x/b')}/32` } }] }]);
  check([p2], R().expectAllEgress('x/a', false).expect('x/a', 'x/b', true), 'TCP', 80);
});

test('e2e: should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector', () => {
  const allowEgress = egressPolicy('allow-egress-for-target', podA, [{}]);
  check([allowEgress], R(), 'TCP', 80);
  check([allowEgress, ingressPolicy('deny-ingress-via-label-selector', podA, [])], R().expectAllIngress('x/a', false), 'TCP', 80);
});

test("e2e: should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP", () => {
  const deny = ingressPolicy('deny-ingress', {}, []);
  const sctp = ingressPolicy('allow-only-sctp-ingress-on-port-81', podA, [{ ports: [{ port: 81, protocol: 'SCTP' }] }]);
  check([deny, sctp], R().expectPeer({}, { ns: 'x' }, false), 'TCP', 81);
});

test("e2e: should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP", () => {
  check(
    [ingressPolicy('allow-only-sctp-ingress-on-port-80', podA, [{ ports: [{ port: 80, protocol: 'SCTP' }] }])],
    R().expectAllIngress('x/a', false),
    'TCP',
    81,
  );
});

test('e2e: should not allow access by TCP when a policy specifies only UDP', () => {
  check(
    [ingressPolicy('allow-only-udp-ingress-on-port-81', podA, [{ ports: [{ port: 81, protocol: 'UDP' }] }])],
    R().expectAllIngress('x/a', false),
    'TCP',
    81,
  );
});

test('e2e: should enforce policy based on NamespaceSelector with MatchExpressions using default ns label (egress NotIn)', () => {
  const p = egressPolicy('allow-ns-y-match-selector-for-immutable-ns-label', podA, [
    { to: [{ namespaceSelector: { matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: ['y'] }] } }] },
  ]);
  check([p], R().expectPeer({ ns: 'x', pod: 'a' }, { ns: 'y' }, false), 'TCP', 80);
});

test('docs "Targeting a range of ports": endPort allows [port, endPort] and nothing outside', () => {
  // kubernetes.io/docs/concepts/services-networking/network-policies/#targeting-a-range-of-ports
  const p = ingressPolicy('range', podA, [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }]);
  check([p], R(), 'TCP', 80);
  check([p], R(), 'TCP', 81);
  check([p], R().expectAllIngress('x/a', false), 'TCP', 82);
  check([p], R().expectAllIngress('x/a', false), 'TCP', 79);
  check([p], R().expectAllIngress('x/a', false), 'UDP', 80);
});

test('truth table count: every scenario checks 72 ordered pairs', () => {
  const model = buildPolicyModel(e2eInputs([]));
  assert.equal(assertReachability(model, R(), 'TCP', 80), 72);
  assert.equal(model.endpoints.size, 9);
});
