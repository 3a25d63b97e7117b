// The upstream NetworkPolicy e2e suite (kubernetes/kubernetes test/e2e/network/netpol/network_policy.go)
// as data, shared by the pure-model test (test/unit/policy-e2e.test.ts) and the lab test on real
// packets (test/lab/policy-e2e.test.ts): the same x/y/z × a/b/c cluster, the same policies (built
// as the suite's Gen…/SetSpec…Rules helpers build them: SetSpecIngressRules/SetSpecEgressRules add
// their type to policyTypes), and each Reachability table written exactly as the suite writes it.
// Every expected value is the suite's, transcribed from the named `It(...)`; none comes from running
// the model (test/unit/policy-e2e.test.ts also holds each table against test/unit/policy-reference.ts).

import type { V1NetworkPolicy } from '@kubernetes/client-node';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
/** 'x/a' … 'z/c' in the suite's order */
export const ALL_PODS: string[] = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));
export const NS_LABEL = 'kubernetes.io/metadata.name';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** A NetworkPolicy from a namespace, a name and a spec written as in YAML. */
export function policy(ns: string, name: string, spec: Record<string, unknown>): V1NetworkPolicy {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec: spec as V1NetworkPolicy['spec'] };
}

/** Labels that differ from the suite's defaults (pods: pod=<name>; namespaces: ns=<name> and the name label). */
export interface ClusterOptions {
  podLabels?: Record<string, Record<string, string>>;
  nsLabels?: Record<string, Record<string, string>>;
}

interface PeerSpec {
  ns?: string;
  pod?: string;
}

function matches(p: PeerSpec, pod: string): boolean {
  const [ns, name] = pod.split('/');
  return (p.ns === undefined || p.ns === ns) && (p.pod === undefined || p.pod === name);
}

/** The e2e suite's Reachability: a from × to table with a default, refined by Expect* calls in order. */
export class Reachability {
  readonly cells = new Map<string, boolean>();
  constructor(def: boolean) {
    for (const f of ALL_PODS) for (const t of ALL_PODS) this.cells.set(`${f}>${t}`, def);
  }
  expectPeer(from: PeerSpec, to: PeerSpec, v: boolean): this {
    for (const f of ALL_PODS) for (const t of ALL_PODS) if (matches(from, f) && matches(to, t)) this.cells.set(`${f}>${t}`, v);
    return this;
  }
  expect(from: string, to: string, v: boolean): this {
    this.cells.set(`${from}>${to}`, v);
    return this;
  }
  expectAllIngress(to: string, v: boolean): this {
    for (const f of ALL_PODS) this.cells.set(`${f}>${to}`, v);
    return this;
  }
  expectAllEgress(from: string, v: boolean): this {
    for (const t of ALL_PODS) this.cells.set(`${from}>${t}`, v);
    return this;
  }
  get(from: string, to: string): boolean {
    return this.cells.get(`${from}>${to}`)!;
  }
}

/**
 * Observed against expected over every ordered pair but loopback (upstream's ignoreLoopback:
 * CNIs disagree on a pod reaching itself), printed as upstream prints its truth tables:
 * '.' allowed, 'X' denied; in the comparison '.' right, 'X' wrong.
 */
export function compareTruthTable(observed: (from: string, to: string) => boolean, want: Reachability): { checked: number; wrong: string[]; table: string } {
  const wrong: string[] = [];
  const head = `-    ${ALL_PODS.join(' ')}`;
  const grid = (cell: (f: string, t: string) => string) =>
    [head, ...ALL_PODS.map((f) => `${f}   ${ALL_PODS.map((t) => (f === t ? '#' : cell(f, t))).join('   ')}`)].join('\n');
  let checked = 0;
  for (const f of ALL_PODS)
    for (const t of ALL_PODS) {
      if (f === t) continue;
      checked++;
      if (observed(f, t) !== want.get(f, t))
        wrong.push(`${f} -> ${t}: observed ${observed(f, t) ? 'allowed' : 'denied'}, expected ${want.get(f, t) ? 'allowed' : 'denied'}`);
    }
  const mark = (v: boolean) => (v ? '.' : 'X');
  const table = [
    `reachability: correct:${checked - wrong.length}, incorrect:${wrong.length}, result=${wrong.length === 0}`,
    '###### Expected',
    grid((f, t) => mark(want.get(f, t))),
    '###### Observed',
    grid((f, t) => mark(observed(f, t))),
    '###### Comparison',
    grid((f, t) => mark(observed(f, t) === want.get(f, t))),
  ].join('\n');
  return { checked, wrong, table };
}

/** One probe of the whole matrix: every ordered pair on one protocol and port. */
export interface Probe {
  protocol: Protocol;
  port: number;
  want: Reachability;
}

/** The cluster in one state (these policies, these labels) and what it must allow. */
export interface Step {
  policies: V1NetworkPolicy[];
  cluster?: ClusterOptions;
  probes: Probe[];
}

export interface Scenario {
  /** the suite's It(...) text */
  name: string;
  steps: Step[];
}

/** The ports the suite's pods serve (80 and 81, each on TCP, UDP and SCTP, named serve-<port>-<proto>). */
export const SERVE_PORTS = [80, 81] as const;
export const namedPorts = (ports: readonly number[] = SERVE_PORTS): { name: string; containerPort: number; protocol: Protocol }[] =>
  ports.flatMap((containerPort) =>
    (['TCP', 'UDP', 'SCTP'] as const).map((protocol) => ({ name: `serve-${containerPort}-${protocol.toLowerCase()}`, containerPort, protocol })),
  );

const R = (def = true): Reachability => new Reachability(def);
const podA = { matchLabels: { pod: 'a' } };
const podB = { matchLabels: { pod: 'b' } };
const notX = { matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: ['x'] }] };
/** GenNetworkPolicyWithNameAndPodSelector(name, sel, SetSpecIngressRules(rules…)) in namespace x. */
const ingressPolicy = (name: string, podSelector: object, ingress: object[], ns = 'x') => policy(ns, name, { podSelector, policyTypes: ['Ingress'], ingress });
const egressPolicy = (name: string, podSelector: object, egress: object[], ns = 'x') => policy(ns, name, { podSelector, policyTypes: ['Egress'], egress });
const step = (policies: V1NetworkPolicy[], probes: Probe[], cluster?: ClusterOptions): Step => ({ policies, probes, ...(cluster ? { cluster } : {}) });
const probe = (protocol: Protocol, port: number, want: Reachability): Probe => ({ protocol, port, want });
const one = (name: string, policies: V1NetworkPolicy[], want: Reachability, protocol: Protocol = 'TCP', port = 80): Scenario => ({
  name,
  steps: [step(policies, [probe(protocol, port, want)])],
});
/** x/a reachable from y only (the suite's "allow from ns y" table) */
const onlyYToXa = () => R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expectPeer({ ns: 'z' }, { ns: 'x', pod: 'a' }, false);

/** The suite's scenarios; `ipOf` gives a pod's address (the CIDR scenarios name pods by address). */
export function netpolScenarios(ipOf: (pod: string) => string): Scenario[] {
  /** makeLargeCIDRForIP: the pod IP with a /4 mask, masked (IPv4): 198.x → 192.0.0.0/4 */
  const largeCidr = (pod: string) => `${(Number(ipOf(pod).split('.')[0]) >> 4) << 4}.0.0.0/4`;
  const denyAll = policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] });
  const stackedRule = (port: number) => ({ from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } } }], ports: [{ port, protocol: 'TCP' }] });
  const p81 = ingressPolicy('allow-client-a-via-ns-selector', podA, [stackedRule(81)]);
  const fromXa = [{ from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'x' } }, podSelector: podA }] }];
  const toYa = [{ to: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } }, podSelector: podA }] }];
  const exceptXb = egressPolicy('allow-client-a-via-cidr-egress-rule', podA, [
    { to: [{ ipBlock: { cidr: largeCidr('x/b'), except: [`${ipOf('x/b')}/32`] } }] },
  ]);
  const only80In = ingressPolicy('allow-ingress-port-80', { matchLabels: {} }, [{ ports: [{ port: 80 }] }]);
  const only80Out = egressPolicy('allow-egress-port-80', { matchLabels: {} }, [{ ports: [{ port: 80 }] }]);
  const allowEgressA = egressPolicy('allow-egress-for-target', podA, [{}]);
  const range = ingressPolicy('range', podA, [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }]);
  const ingressAndEgress = policy('x', 'allow-client-a-via-pod-selector', {
    podSelector: podA,
    policyTypes: ['Egress', 'Ingress'],
    ingress: [{ from: [{ podSelector: podB }] }],
    egress: [{ ports: [{ port: 80 }] }],
  });

  return [
    {
      name: "should support a 'default-deny-ingress' policy",
      steps: [
        step(
          [ingressPolicy('deny-ingress', {}, [])],
          (['TCP', 'UDP', 'SCTP'] as const).map((p) => probe(p, 80, R().expectPeer({}, { ns: 'x' }, false))),
        ),
      ],
    },
    one("should support a 'default-deny-all' policy", [denyAll], R().expectPeer({}, { ns: 'x' }, false).expectPeer({ ns: 'x' }, {}, false)),
    one(
      'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
      [ingressPolicy('x-a-allows-x-b', podA, [{ from: [{ podSelector: podB }] }])],
      R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true),
    ),
    // the suite's table (x/a, x/b, y/a) plus x/c, isolated by deny-all exactly like x/b
    one(
      'should enforce policy to allow ingress traffic for a target',
      [ingressPolicy('deny-all', {}, []), ingressPolicy('allow-all-to-a', podA, [{ from: [{ podSelector: {}, namespaceSelector: {} }] }])],
      R().expectAllIngress('x/a', true).expectAllIngress('x/b', false).expectAllIngress('x/c', false),
    ),
    one(
      'should enforce policy to allow ingress traffic from pods in all namespaces',
      [ingressPolicy('allow-from-another-ns', podA, [{ from: [{ namespaceSelector: { matchLabels: {} } }] }])],
      R(),
    ),
    one(
      'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector',
      [ingressPolicy('allow-client-a-via-ns-selector', podA, [{ from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } } }] }])],
      onlyYToXa(),
    ),
    one(
      'should enforce policy based on PodSelector with MatchExpressions',
      [ingressPolicy('x-a-allows-x-b', podA, [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] }])],
      R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true),
    ),
    one(
      'should enforce policy based on NamespaceSelector with MatchExpressions',
      [
        ingressPolicy('allow-ns-y-match-selector', podA, [
          { from: [{ namespaceSelector: { matchExpressions: [{ key: NS_LABEL, operator: 'In', values: ['y'] }] } }] },
        ]),
      ],
      onlyYToXa(),
    ),
    one(
      'should enforce policy based on PodSelector or NamespaceSelector',
      [ingressPolicy('allow-ns-y-match-selector', podA, [{ from: [{ namespaceSelector: notX }, { podSelector: podB }] }])],
      R().expect('x/a', 'x/a', false).expect('x/c', 'x/a', false),
    ),
    one(
      'should enforce policy based on PodSelector and NamespaceSelector',
      [ingressPolicy('allow-ns-y-podselector-and-nsselector', podA, [{ from: [{ namespaceSelector: notX, podSelector: podB }] }])],
      R().expectAllIngress('x/a', false).expect('y/b', 'x/a', true).expect('z/b', 'x/a', true),
    ),
    // the suite's table (x/a,x/b,y/a,y/b,y/c) plus z/a, which neither selector half spares either
    one(
      'should enforce policy based on Multiple PodSelectors and NamespaceSelectors',
      [
        ingressPolicy('allow-ns-y-z-pod-b-c', podA, [
          { from: [{ namespaceSelector: notX, podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } }] },
        ]),
      ],
      R().expectPeer({ ns: 'x' }, { ns: 'x', pod: 'a' }, false).expect('y/a', 'x/a', false).expect('z/a', 'x/a', false),
    ),
    one(
      'should enforce policy based on any PodSelectors',
      [ingressPolicy('allow-ns-x-pod-b-c', podA, [{ from: [{ podSelector: podB }, { podSelector: { matchLabels: { pod: 'c' } } }] }])],
      R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true).expect('x/c', 'x/a', true),
    ),
    {
      name: 'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
      steps: [
        step(
          [
            ingressPolicy('allow-ns-y-pod-a-via-namespace-pod-selector', podA, [
              { from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } }, podSelector: podA }] },
            ]),
          ],
          (['TCP', 'UDP', 'SCTP'] as const).map((p) => probe(p, 80, R().expectAllIngress('x/a', false).expect('y/a', 'x/a', true))),
        ),
      ],
    },
    {
      name: 'should enforce policy based on Ports',
      steps: (['TCP', 'UDP', 'SCTP'] as const).map((proto) =>
        step(
          [
            ingressPolicy('allow-ingress-on-port-81-ns-x', podA, [
              { from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } } }], ports: [{ port: 81, protocol: proto }] },
            ]),
          ],
          [probe(proto, 81, onlyYToXa())],
        ),
      ),
    },
    {
      name: 'should enforce multiple, stacked policies with overlapping podSelectors',
      steps: [
        step([p81], [probe('TCP', 81, onlyYToXa()), probe('TCP', 80, R().expectAllIngress('x/a', false))]),
        step([p81, ingressPolicy('allow-client-a-via-ns-selector-80', podA, [stackedRule(80)])], [probe('TCP', 80, onlyYToXa())]),
      ],
    },
    {
      name: 'should support allow-all policy',
      steps: [step([ingressPolicy('allow-all', { matchLabels: {} }, [{}])], [probe('TCP', 80, R()), probe('TCP', 81, R())])],
    },
    {
      name: 'should allow ingress access on one named port',
      steps: [
        step(
          [ingressPolicy('allow-all', { matchLabels: {} }, [{ ports: [{ port: 'serve-81-tcp' }] }])],
          [probe('TCP', 81, R()), probe('TCP', 80, R().expectPeer({}, { ns: 'x' }, false))],
        ),
      ],
    },
    {
      name: 'should allow ingress access from namespace on one named port',
      steps: [
        step(
          [
            ingressPolicy('allow-client-a-via-ns-selector-80', podA, [
              { from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } } }], ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] },
            ]),
          ],
          [probe('TCP', 80, onlyYToXa()), probe('TCP', 81, R().expectAllIngress('x/a', false))],
        ),
      ],
    },
    {
      name: 'should allow egress access on one named port',
      steps: [
        step(
          [egressPolicy('allow-egress', { matchLabels: {} }, [{ ports: [{ port: 'serve-80-tcp' }] }])],
          [probe('TCP', 80, R()), probe('TCP', 81, R().expectPeer({ ns: 'x' }, {}, false))],
        ),
      ],
    },
    {
      name: 'should enforce updated policy',
      steps: [
        step([ingressPolicy('allow-all-mutate-to-deny-all', { matchLabels: {} }, [{}])], [probe('TCP', 81, R())]),
        step([ingressPolicy('allow-all-mutate-to-deny-all', { matchLabels: {} }, [])], [probe('TCP', 81, R().expectPeer({}, { ns: 'x' }, false))]),
      ],
    },
    {
      name: 'should allow ingress access from updated namespace',
      steps: [
        step(
          [ingressPolicy('allow-client-a-via-ns-selector', podA, [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }])],
          [probe('TCP', 80, R().expectAllIngress('x/a', false))],
        ),
        step(
          [ingressPolicy('allow-client-a-via-ns-selector', podA, [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }])],
          [probe('TCP', 80, R().expectAllIngress('x/a', false).expectPeer({ ns: 'y' }, {}, true))],
          { nsLabels: { y: { ns2: 'updated' } } },
        ),
      ],
    },
    {
      name: 'should allow ingress access from updated pod',
      steps: [
        step(
          [ingressPolicy('allow-client-a-via-pod-selector', podA, [{ from: [{ podSelector: { matchLabels: { pod: 'b', pod2: 'updated' } } }] }])],
          [probe('TCP', 80, R().expectAllIngress('x/a', false))],
        ),
        step(
          [ingressPolicy('allow-client-a-via-pod-selector', podA, [{ from: [{ podSelector: { matchLabels: { pod: 'b', pod2: 'updated' } } }] }])],
          [probe('TCP', 80, R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true))],
          { podLabels: { 'x/b': { pod: 'b', pod2: 'updated' } } },
        ),
      ],
    },
    one(
      'should deny ingress from pods on other namespaces',
      [ingressPolicy('deny-empty-policy', {}, [{ from: [{ podSelector: { matchLabels: {} } }] }])],
      R().expectPeer({ ns: 'y' }, { ns: 'x' }, false).expectPeer({ ns: 'z' }, { ns: 'x' }, false),
    ),
    {
      name: 'should deny ingress access to updated pod',
      steps: [
        step([ingressPolicy('deny-ingress-via-label-selector', { matchLabels: { target: 'isolated' } }, [])], [probe('TCP', 80, R())]),
        step(
          [ingressPolicy('deny-ingress-via-label-selector', { matchLabels: { target: 'isolated' } }, [])],
          [probe('TCP', 80, R().expectAllIngress('x/a', false))],
          {
            podLabels: { 'x/a': { pod: 'a', target: 'isolated' } },
          },
        ),
      ],
    },
    one('should deny egress from pods based on PodSelector', [egressPolicy('deny-egress-pod-a', podA, [])], R().expectAllEgress('x/a', false)),
    one('should deny egress from all pods in a namespace', [egressPolicy('deny-egress-ns-x', {}, [])], R().expectPeer({ ns: 'x' }, {}, false)),
    {
      name: 'should work with Ingress, Egress specified together',
      steps: [
        step(
          [ingressAndEgress],
          [
            probe('TCP', 80, R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true)),
            probe('TCP', 81, R().expectAllIngress('x/a', false).expectAllEgress('x/a', false).expect('x/b', 'x/a', true)),
          ],
        ),
      ],
    },
    one(
      'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
      [
        egressPolicy('allow-to-ns-y-pod-a', podA, toYa),
        ingressPolicy('allow-from-xa-on-ya-match-selector', podA, fromXa, 'y'),
        ingressPolicy('allow-from-xa-on-yb-match-selector', podB, fromXa, 'y'),
      ],
      R()
        .expectPeer({ ns: 'x', pod: 'a' }, {}, false)
        .expectPeer({}, { ns: 'y', pod: 'a' }, false)
        .expectPeer({ ns: 'x', pod: 'a' }, { ns: 'y', pod: 'a' }, true)
        .expectPeer({}, { ns: 'y', pod: 'b' }, false),
    ),
    one(
      'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
      [egressPolicy('allow-to-ns-y-pod-a', podA, toYa)],
      R().expectAllEgress('x/a', false).expect('x/a', 'y/a', true),
    ),
    {
      name: 'should enforce ingress policy allowing any port traffic to a server on a specific protocol',
      steps: [
        step(
          [ingressPolicy('allow-ingress-by-proto', podA, [{ ports: [{ protocol: 'TCP' }] }])],
          [probe('TCP', 80, R()), probe('UDP', 80, R().expectPeer({}, { ns: 'x', pod: 'a' }, false))],
        ),
      ],
    },
    {
      name: 'should enforce multiple ingress policies with ingress allow-all policy taking precedence',
      steps: [
        step([only80In], [probe('TCP', 81, R().expectPeer({}, { ns: 'x' }, false))]),
        step([only80In, ingressPolicy('allow-ingress', { matchLabels: {} }, [{}])], [probe('TCP', 81, R())]),
      ],
    },
    {
      name: 'should enforce multiple egress policies with egress allow-all policy taking precedence',
      steps: [
        step([only80Out], [probe('TCP', 81, R().expectPeer({ ns: 'x' }, {}, false))]),
        step([only80Out, egressPolicy('allow-egress', { matchLabels: {} }, [{}])], [probe('TCP', 81, R())]),
      ],
    },
    {
      name: 'should stop enforcing policies after they are deleted',
      steps: [
        step([denyAll], [probe('TCP', 80, R().expectPeer({ ns: 'x' }, {}, false).expectPeer({}, { ns: 'x' }, false))]),
        step([], [probe('TCP', 80, R())]),
      ],
    },
    one(
      'should allow egress access to server in CIDR block',
      [egressPolicy('allow-client-a-via-cidr-egress-rule', podA, [{ to: [{ ipBlock: { cidr: `${ipOf('y/b')}/32` } }] }])],
      R().expectAllEgress('x/a', false).expect('x/a', 'y/b', true),
    ),
    one('should enforce except clause while egress access to server in CIDR block', [exceptXb], R().expect('x/a', 'x/b', false)),
    {
      name: 'should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed',
      steps: [
        step([exceptXb], [probe('TCP', 80, R().expect('x/a', 'x/b', false))]),
        // the suite *updates* the same-named policy: only the /32 allow remains
        step(
          [egressPolicy('allow-client-a-via-cidr-egress-rule', podA, [{ to: [{ ipBlock: { cidr: `${ipOf('x/b')}/32` } }] }])],
          [probe('TCP', 80, R().expectAllEgress('x/a', false).expect('x/a', 'x/b', true))],
        ),
      ],
    },
    {
      name: 'should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector',
      steps: [
        step([allowEgressA], [probe('TCP', 80, R())]),
        step([allowEgressA, ingressPolicy('deny-ingress-via-label-selector', podA, [])], [probe('TCP', 80, R().expectAllIngress('x/a', false))]),
      ],
    },
    one(
      "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
      [ingressPolicy('deny-ingress', {}, []), ingressPolicy('allow-only-sctp-ingress-on-port-81', podA, [{ ports: [{ port: 81, protocol: 'SCTP' }] }])],
      R().expectPeer({}, { ns: 'x' }, false),
      'TCP',
      81,
    ),
    one(
      "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
      [ingressPolicy('allow-only-sctp-ingress-on-port-80', podA, [{ ports: [{ port: 80, protocol: 'SCTP' }] }])],
      R().expectAllIngress('x/a', false),
      'TCP',
      81,
    ),
    one(
      'should not allow access by TCP when a policy specifies only UDP',
      [ingressPolicy('allow-only-udp-ingress-on-port-81', podA, [{ ports: [{ port: 81, protocol: 'UDP' }] }])],
      R().expectAllIngress('x/a', false),
      'TCP',
      81,
    ),
    one(
      'should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label',
      [ingressPolicy('allow-client-a-via-ns-selector-for-immutable-ns-label', podA, [{ from: [{ namespaceSelector: { matchLabels: { [NS_LABEL]: 'y' } } }] }])],
      onlyYToXa(),
    ),
    one(
      'should enforce policy based on NamespaceSelector with MatchExpressions using default ns label',
      [
        egressPolicy('allow-ns-y-match-selector-for-immutable-ns-label', podA, [
          { to: [{ namespaceSelector: { matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: ['y'] }] } }] },
        ]),
      ],
      R().expectPeer({ ns: 'x', pod: 'a' }, { ns: 'y' }, false),
    ),
    // kubernetes.io/docs/concepts/services-networking/network-policies/#targeting-a-range-of-ports (not in the suite)
    {
      name: 'docs "Targeting a range of ports": endPort allows [port, endPort] and nothing outside',
      steps: [
        step(
          [range],
          [
            probe('TCP', 80, R()),
            probe('TCP', 81, R()),
            probe('TCP', 82, R().expectAllIngress('x/a', false)),
            probe('TCP', 79, R().expectAllIngress('x/a', false)),
            probe('UDP', 80, R().expectAllIngress('x/a', false)),
          ],
        ),
      ],
    },
  ];
}
