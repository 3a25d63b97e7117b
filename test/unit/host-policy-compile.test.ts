// compileHostPolicy (model/host-policy/compile.ts): automatic and explicit host endpoints, chains
// per policy kind, Calico's tier order, Pass jumps, end-of-tier denies, profiles, forward chains,
// address sets from nets and selectors, stable ids across rebuilds, bad objects as plan errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointForInterface } from '../../src/model/host-policy/interface-endpoint.js';
import { chainText, compile, gnp, hep, namespace, node, pod } from './host-policy-helpers.js';

const NODES = [node('n1', '198.18.0.1', { role: 'edge', zone: 'a' }), node('n2', '198.18.0.2', { zone: 'b' })];

test('auto host endpoint: node labels, every interface, node addresses, default-allow profile; no policy = allow', () => {
  const plan = compile({ nodes: NODES });
  assert.equal(plan.endpoints.length, 1);
  const e = plan.endpoints[0]!;
  assert.deepEqual(
    { name: e.name, auto: e.auto, interfaces: e.interfaces, expectedIPs: e.expectedIPs, profiles: e.profiles, labels: e.labels },
    {
      name: 'n1-auto-hep',
      auto: true,
      interfaces: '*',
      expectedIPs: ['198.18.0.1'],
      profiles: ['projectcalico-default-allow'],
      labels: { role: 'edge', zone: 'a', 'projectcalico.org/created-by': 'calico-kube-controllers' },
    },
  );
  assert.deepEqual(
    plan.chains.map((c) => c.kind),
    ['normalIn', 'normalOut'],
  );
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'normalIn'), ['allow profile']);
  assert.deepEqual(plan.errors, []);
  assert.equal(compile({ nodes: NODES, autoHostEndpoints: false }).endpoints.length, 0);
});

test('a policy selects nodes by label: only the labelled node gets it, ports become one flat rule each', () => {
  const policies = [
    gnp('ssh', {
      selector: "role == 'edge'",
      ingress: [
        { action: 'Allow', protocol: 'TCP', source: { nets: ['198.18.100.1/32'] }, destination: { ports: [2222, '3000:3010'] } },
        { action: 'Deny', protocol: 'TCP', destination: { ports: [2222] } },
      ],
    }),
  ];
  const n1 = compile({ nodes: NODES, globalNetworkPolicies: policies });
  assert.deepEqual(chainText(n1, 'n1-auto-hep', 'normalIn'), [
    'allow p6 d2222-2222 v4 src[198.18.100.1/32] default/ssh#0',
    'allow p6 d3000-3010 v4 src[198.18.100.1/32] default/ssh#0',
    'deny p6 d2222-2222 default/ssh#1',
    'deny tierEnd',
    'allow profile',
  ]);
  // types default to Ingress: egress untouched
  assert.deepEqual(chainText(n1, 'n1-auto-hep', 'normalOut'), ['allow profile']);
  assert.deepEqual(n1.endpoints[0]!.policies, [{ chain: 'normalIn', slot: 1, name: 'default/ssh' }]);
  const n2 = compile({ nodeName: 'n2', nodes: NODES, globalNetworkPolicies: policies });
  assert.deepEqual(chainText(n2, 'n2-auto-hep', 'normalIn'), ['allow profile']);
});

test('tiers: kube-admin, default, custom tiers by name, kube-baseline; policies by order then name; Pass jumps past its tier', () => {
  const policies = [
    gnp('base', { tier: 'kube-baseline', ingress: [{ action: 'Deny', protocol: 'UDP' }] }),
    gnp('zz', { tier: 'zeta', ingress: [{ action: 'Allow', protocol: 'ICMP' }] }),
    gnp('aa', { tier: 'alpha', ingress: [{ action: 'Deny', protocol: 'ICMP' }] }),
    gnp('late', { order: 200, ingress: [{ action: 'Allow', protocol: 'TCP' }] }),
    gnp('unordered', { ingress: [{ action: 'Allow', protocol: 'SCTP' }] }),
    gnp('early-b', { order: 100, ingress: [{ action: 'Pass', protocol: 'UDP' }] }),
    gnp('early-a', { order: 100, ingress: [{ action: 'Allow', protocol: 17, destination: { ports: [53] } }] }),
    gnp('admin', { tier: 'kube-admin', ingress: [{ action: 'Pass', source: { nets: ['198.18.9.0/24'] } }] }),
  ];
  const plan = compile({ nodes: NODES, globalNetworkPolicies: policies });
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'normalIn'), [
    // kube-admin: default action Pass, so no tier-end deny; its Pass jumps to the default tier
    'pass v4 src[198.18.9.0/24] ->1 kube-admin/admin#0',
    'allow p17 d53-53 default/early-a#0',
    'pass p17 ->6 default/early-b#0',
    'allow p6 default/late#0',
    'allow p132 default/unordered#0',
    'deny tierEnd',
    // kube-baseline (order 10,000,000, default action Pass: no tier-end deny)
    'deny p17 kube-baseline/base#0',
    // tiers without a known order: +Inf, after every known tier, by name, default action Deny
    'deny p1 alpha/aa#0',
    'deny tierEnd',
    'allow p1 zeta/zz#0',
    'deny tierEnd',
    'allow profile',
  ]);
  assert.deepEqual(
    plan.endpoints[0]!.policies.map((p) => p.name),
    ['kube-admin/admin', 'default/early-a', 'default/early-b', 'default/late', 'default/unordered', 'kube-baseline/base', 'alpha/aa', 'zeta/zz'],
  );
});

test('a policy that applies with no rules takes part: its tier ends in a deny (default deny)', () => {
  const plan = compile({ nodes: NODES, globalNetworkPolicies: [gnp('deny-all', { selector: 'all()', types: ['Ingress', 'Egress'] })] });
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'normalIn'), ['deny tierEnd', 'allow profile']);
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'normalOut'), ['deny tierEnd', 'allow profile']);
});

test('explicit host endpoints: this node only, profile-less ones end in deny, a named one beats *', () => {
  const heps = [
    hep('eth0-n1', { node: 'n1', interfaceName: 'eth0', expectedIPs: ['198.18.0.1'] }, { role: 'edge' }),
    hep('by-ip', { node: 'n1', expectedIPs: ['198.18.5.1'] }),
    hep('eth0-n2', { node: 'n2', interfaceName: 'eth0' }),
  ];
  const plan = compile({ nodes: NODES, hostEndpoints: heps });
  assert.deepEqual(
    plan.endpoints.map((e) => [e.id, e.name, e.interfaces]),
    [
      [1, 'n1-auto-hep', '*'],
      [2, 'eth0-n1', ['eth0']],
      [3, 'by-ip', []],
    ],
  );
  assert.deepEqual(chainText(plan, 'eth0-n1', 'normalIn'), ['deny profile']);
  assert.equal(endpointForInterface(plan, 'eth0')?.name, 'eth0-n1');
  assert.equal(endpointForInterface(plan, 'eth1', ['198.18.5.1'])?.name, 'by-ip');
  assert.equal(endpointForInterface(plan, 'eth1', ['198.18.7.7'])?.name, 'n1-auto-hep');
  const star = compile({ nodes: NODES, hostEndpoints: [...heps, hep('star', { node: 'n1', interfaceName: '*' })] });
  assert.equal(endpointForInterface(star, 'eth1', ['198.18.7.7'])?.name, 'star', 'an explicit * beats the automatic one');
  assert.equal(endpointForInterface(star, 'eth0')?.name, 'eth0-n1', 'a named one beats an explicit *');
  const noAuto = compile({ nodes: NODES, hostEndpoints: heps, autoHostEndpoints: false });
  assert.equal(endpointForInterface(noAuto, 'eth1'), undefined, 'no host endpoint: the interface is not policed');
});

test('preDNAT and doNotTrack chains: no tier-end deny, no profile; normal chains untouched by them', () => {
  const policies = [
    gnp('nodeport', {
      preDNAT: true,
      applyOnForward: true,
      ingress: [
        { action: 'Allow', protocol: 'TCP', source: { nets: ['198.18.100.1/32'] }, destination: { ports: [30080] } },
        { action: 'Deny', protocol: 'TCP', destination: { ports: [30080] } },
      ],
    }),
    gnp('flood', {
      doNotTrack: true,
      applyOnForward: true,
      types: ['Ingress', 'Egress'],
      ingress: [{ action: 'Deny', source: { nets: ['198.18.66.0/24'] } }],
      egress: [{ action: 'Allow', protocol: 'UDP', destination: { ports: [53] } }],
    }),
    gnp('pass-untracked', { doNotTrack: true, applyOnForward: true, order: 1, ingress: [{ action: 'Pass', protocol: 'ICMP' }] }),
  ];
  const plan = compile({ nodes: NODES, globalNetworkPolicies: policies });
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'untrackedIn'), ['pass p1 ->2 default/pass-untracked#0', 'deny v4 src[198.18.66.0/24] default/flood#0']);
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'untrackedOut'), ['allow p17 d53-53 default/flood#0']);
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'preDnatIn'), [
    'allow p6 d30080-30080 v4 src[198.18.100.1/32] default/nodeport#0',
    'deny p6 d30080-30080 default/nodeport#1',
  ]);
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'normalIn'), ['allow profile']);
  assert.equal(chainText(plan, 'n1-auto-hep', 'forwardIn'), undefined, 'doNotTrack/preDNAT are not forward policies');
});

test('applyOnForward: forward chains only for the direction an applyOnForward policy applies to, ending in deny', () => {
  const fwd = gnp('fwd', { applyOnForward: true, ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [8080] } }] });
  const plan = compile({ nodes: NODES, globalNetworkPolicies: [fwd] });
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'forwardIn'), ['allow p6 d8080-8080 default/fwd#0', 'deny tierEnd', 'deny profile']);
  assert.equal(chainText(plan, 'n1-auto-hep', 'forwardOut'), undefined);
  // the same policy applies to the host's own ingress too
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'normalIn'), ['allow p6 d8080-8080 default/fwd#0', 'deny tierEnd', 'allow profile']);
  const off = compile({ nodes: NODES, globalNetworkPolicies: [gnp('fwd', { ingress: [{ action: 'Allow' }] })] });
  assert.equal(chainText(off, 'n1-auto-hep', 'forwardIn'), undefined);
});

test('address sets: selector -> pod IPs and host endpoint addresses cluster-wide; namespaceSelector; nets ∧ selector; notNets ∨ notSelector', () => {
  const pods = [
    pod('prod', 'web-1', '198.18.10.1', { app: 'web' }),
    pod('prod', 'web-2', '198.18.20.2', { app: 'web' }, 'n2'),
    pod('dev', 'web-3', '198.18.10.3', { app: 'web' }),
    pod('prod', 'db', '198.18.10.9', { app: 'db' }),
    { ...pod('prod', 'hostnet', '198.18.0.1', { app: 'web' }), spec: { hostNetwork: true, containers: [] } },
    { ...pod('prod', 'done', '198.18.10.7', { app: 'web' }), status: { phase: 'Succeeded', podIPs: [{ ip: '198.18.10.7' }] } },
  ];
  const namespaces = [namespace('prod', { env: 'prod' }), namespace('dev', { env: 'dev' })];
  const rule = (source: Record<string, unknown>) => ({ action: 'Allow', source });
  const policies = [
    gnp('p', {
      order: 1,
      ingress: [
        rule({ selector: "app == 'web'" }),
        rule({ selector: "app == 'web'", namespaceSelector: "env == 'prod'" }),
        rule({ namespaceSelector: "env == 'dev'" }),
        rule({ selector: 'has(zone)' }),
        rule({ selector: 'has(zone)', namespaceSelector: 'global()' }),
        rule({ selector: "app == 'web'", nets: ['198.18.10.0/24'] }),
        rule({ notNets: ['198.18.66.0/24'], notSelector: "app == 'db'" }),
        rule({ selector: "app == 'nothing'" }),
        rule({ selector: "projectcalico.org/namespace == 'dev'" }),
      ],
    }),
  ];
  const plan = compile({ nodes: NODES, pods, namespaces, globalNetworkPolicies: policies });
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'normalIn')!.slice(0, 9), [
    'allow src[198.18.10.1/32 198.18.10.3/32 198.18.20.2/32] default/p#0',
    'allow src[198.18.10.1/32 198.18.20.2/32] default/p#1',
    'allow src[198.18.10.3/32] default/p#2',
    'allow src[198.18.0.1/32 198.18.0.2/32] default/p#3', // both nodes' automatic host endpoints
    'allow src[198.18.0.1/32 198.18.0.2/32] default/p#4', // global(): host endpoints only
    'allow v4 src[198.18.10.1/32 198.18.10.3/32] default/p#5',
    'allow v4 !src[198.18.10.9/32 198.18.66.0/24] default/p#6',
    'allow src[] default/p#7', // a selector that picks nothing matches nothing
    'allow src[198.18.10.3/32] default/p#8',
  ]);
  // one set per distinct content (#2 = #8, #3 = #4)
  assert.equal(plan.sets.size, 7);
});

test('named ports resolve per endpoint: host endpoint spec.ports and pod container ports, one flat rule per (protocol, port)', () => {
  const heps = [
    hep('eth0', { node: 'n1', interfaceName: 'eth0', ports: [{ name: 'ssh', protocol: 'TCP', port: 2222 }] }),
    hep('other', { node: 'n2', interfaceName: 'eth0', expectedIPs: ['198.18.0.2'], ports: [{ name: 'ssh', protocol: 'TCP', port: 22 }] }),
  ];
  const web = (name: string, ip: string, port: number, protocol = 'TCP') => ({
    ...pod('prod', name, ip, { app: 'web' }),
    spec: { containers: [{ name: 'c', ports: [{ name: 'http', containerPort: port, protocol }] }] },
  });
  const pods = [web('a', '198.18.10.1', 8080), web('b', '198.18.10.2', 8080), web('c', '198.18.10.3', 9090), web('d', '198.18.10.4', 53, 'UDP')];
  const policies = [
    gnp('named', {
      applyOnForward: true,
      ingress: [
        { action: 'Allow', destination: { ports: ['ssh'] } },
        { action: 'Allow', protocol: 'TCP', destination: { selector: "app == 'web'", ports: ['http', 443] } },
        { action: 'Allow', destination: { ports: ['nothing'] } },
      ],
    }),
  ];
  const plan = compile({ nodes: NODES, pods, hostEndpoints: heps, globalNetworkPolicies: policies });
  assert.deepEqual(chainText(plan, 'eth0', 'forwardIn'), [
    // 'ssh' on every endpoint that names it, cluster-wide; no protocol in the rule: the named port's
    'allow p6 d22-22 dst[198.18.0.2/32] default/named#0',
    // (eth0's own 'ssh' = 2222 gives no rule: it has no expectedIPs, Calico resolves named ports to addresses)
    'allow p6 d443-443 dst[198.18.10.1/32 198.18.10.2/32 198.18.10.3/32 198.18.10.4/32] default/named#1',
    'allow p6 d8080-8080 dst[198.18.10.1/32 198.18.10.2/32] default/named#1',
    'allow p6 d9090-9090 dst[198.18.10.3/32] default/named#1', // UDP 53 'http' left out: the rule is TCP
    // 'nothing' names no port: no flat rule, the rule matches nothing
    'deny tierEnd',
    'deny profile',
  ]);
});

test('stable ids: a rebuild with the previous plan keeps endpoint ids, set ids and policy slots', () => {
  const a = gnp('a', { ingress: [{ action: 'Allow', source: { nets: ['198.18.1.0/24'] } }] });
  const b = gnp('b', { ingress: [{ action: 'Allow', source: { nets: ['198.18.2.0/24'] } }] });
  const c = gnp('c', { ingress: [{ action: 'Allow', source: { nets: ['198.18.3.0/24'] } }] });
  const heps = [hep('x', { node: 'n1', interfaceName: 'eth1' })];
  const first = compile({ nodes: NODES, globalNetworkPolicies: [a, b, c], hostEndpoints: heps });
  const second = compile({ nodes: NODES, globalNetworkPolicies: [c, a], hostEndpoints: heps, previous: first });
  const slot = (p: typeof first, name: string) => [...p.policyNames].find(([, n]) => n === name)?.[0];
  const setId = (p: typeof first, cidr: string) => [...p.sets].find(([, cs]) => cs.join() === cidr)?.[0];
  assert.deepEqual([slot(second, 'default/a'), slot(second, 'default/c')], [slot(first, 'default/a'), slot(first, 'default/c')]);
  assert.deepEqual([setId(second, '198.18.1.0/24'), setId(second, '198.18.3.0/24')], [setId(first, '198.18.1.0/24'), setId(first, '198.18.3.0/24')]);
  assert.equal(slot(second, 'default/b'), undefined);
  // a new policy takes the freed slot and set id
  const d = gnp('d', { ingress: [{ action: 'Allow', source: { nets: ['198.18.4.0/24'] } }] });
  const third = compile({ nodes: NODES, globalNetworkPolicies: [c, a, d], hostEndpoints: heps, previous: second });
  assert.equal(slot(third, 'default/d'), slot(first, 'default/b'));
  assert.equal(setId(third, '198.18.4.0/24'), setId(first, '198.18.2.0/24'));
  // endpoint ids follow names: the auto endpoint disappearing does not renumber the explicit one
  const noAuto = compile({ nodes: NODES, hostEndpoints: heps, autoHostEndpoints: false, previous: first });
  assert.equal(noAuto.endpoints[0]!.id, first.endpoints.find((e) => e.name === 'x')!.id);
});

test('bad objects go to plan.errors, the rest still compiles', () => {
  const plan = compile({
    nodes: NODES,
    globalNetworkPolicies: [
      gnp('bad', { preDNAT: true, doNotTrack: true }),
      null,
      gnp('good', { ingress: [{ action: 'Deny', protocol: 'TCP', destination: { ports: [2222] } }] }),
    ],
    hostEndpoints: [hep('h', { node: 'n1' }), 'nonsense', hep('n1-auto-hep', { node: 'n1', interfaceName: 'eth0' })],
  });
  assert.deepEqual(
    plan.errors.map((e) => [e.kind, e.name, e.message]),
    [
      ['GlobalNetworkPolicy', 'bad', 'spec: preDNAT and doNotTrack cannot both be true; spec.applyOnForward: must be true for preDNAT and doNotTrack policies'],
      ['GlobalNetworkPolicy', '', 'metadata.name: missing; spec: missing or not an object'],
      ['HostEndpoint', 'h', 'spec: needs interfaceName or expectedIPs'],
      ['HostEndpoint', '', 'metadata.name: missing; spec: missing or not an object'],
      ['HostEndpoint', 'n1-auto-hep', 'another host endpoint of this node has this name'],
    ],
  );
  assert.deepEqual(chainText(plan, 'n1-auto-hep', 'normalIn'), ['deny p6 d2222-2222 default/good#0', 'deny tierEnd', 'allow profile']);
  assert.deepEqual(
    plan.endpoints.map((e) => [e.id, e.name, e.auto]),
    [[1, 'n1-auto-hep', true]],
  );
});
