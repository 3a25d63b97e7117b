// Service model semantics (reference §5): which services are proxied, frontends per port,
// backend selection (conditions, traffic policies, topology), affinity, reject vs drop.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildServiceState, computeService, listConflicts, sortedFrontends } from '../../src/model/services.js';
import type { Frontend, NodeContext } from '../../src/model/service-types.js';
import { inputs, NODE, slice, svc, type Ep } from './model-helpers.js';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

function model(s: V1Service, slices: V1EndpointSlice[], node: NodeContext = NODE) {
  return computeService(s, slices, node);
}
function fe(s: V1Service, slices: V1EndpointSlice[], node: NodeContext = NODE): Frontend[] {
  return model(s, slices, node)?.frontends ?? [];
}
function one(frontends: Frontend[], kind: Frontend['kind'], family: 4 | 6 = 4): Frontend {
  const f = frontends.filter((x) => x.kind === kind && x.family === family);
  assert.equal(f.length, 1, `expected one ${kind} v${family} frontend, got ${f.map((x) => x.id).join(',')}`);
  return f[0]!;
}
const addrs = (bs: { address: string; port: number }[]) => bs.map((b) => `${b.address}:${b.port}`);
const three: Ep[] = [
  { ip: '198.18.1.12', node: 'node-b' },
  { ip: '198.18.1.10', node: 'node-a' },
  { ip: '198.18.1.11', node: 'node-b' },
];

test('ClusterIP service: one frontend, sorted backends from the slice port', () => {
  const [f, ...rest] = fe(svc('web'), [slice('web-1', 'web', three)]);
  assert.equal(rest.length, 0);
  assert.deepEqual(
    { id: f!.id, kind: f!.kind, family: f!.family, serviceKey: f!.serviceKey, portName: f!.portName, reject: f!.reject },
    { id: '198.19.0.10:80/TCP', kind: 'ClusterIP', family: 4, serviceKey: 'default/web', portName: 'http', reject: false },
  );
  assert.equal(f!.servicePortKey, 'default/web:http/TCP');
  assert.deepEqual(addrs(f!.backends), ['198.18.1.10:8080', '198.18.1.11:8080', '198.18.1.12:8080']);
  assert.deepEqual(f!.backends[0], {
    address: '198.18.1.10',
    port: 8080,
    nodeName: 'node-a',
    isLocal: true,
    ready: true,
    serving: true,
    terminating: false,
    zone: '',
  });
  assert.equal(f!.inClusterBackends, f!.backends);
  assert.deepEqual(f!.establishedOnly, []);
  assert.equal(f!.localOnly, false);
  assert.equal(f!.affinity, null);
  assert.equal(f!.sourceRanges, null);
});

test('skipped: ExternalName, headless (None and empty), foreign service-proxy-name', () => {
  const eps = [slice('x-1', 'x', three)];
  assert.equal(model(svc('x', { type: 'ExternalName', externalName: 'db.example', clusterIP: undefined }), eps), null);
  assert.equal(model(svc('x', { clusterIP: 'None' }), eps), null);
  assert.equal(model(svc('x', { clusterIP: '' }), eps), null);
  assert.equal(model(svc('x', { clusterIP: 'None', clusterIPs: ['None'] }), eps), null);
  const labelled = svc('x', {}, { labels: { 'service.kubernetes.io/service-proxy-name': 'other' } });
  assert.equal(model(labelled, eps), null, 'no proxyName: every labelled service is skipped');
  assert.equal(model(labelled, eps, { ...NODE, proxyName: 'weir' }), null);
  const ours = svc('x', {}, { labels: { 'service.kubernetes.io/service-proxy-name': 'weir' } });
  assert.notEqual(model(ours, eps, { ...NODE, proxyName: 'weir' }), null);
  assert.equal(model(ours, eps), null);
});

test('slices: joined by label and namespace; headless-labelled and FQDN slices ignored', () => {
  const s = svc('web');
  const slices = [
    slice('web-1', 'web', [{ ip: '198.18.1.10' }]),
    slice('web-other-ns', 'web', [{ ip: '198.18.1.20' }], { namespace: 'other' }),
    slice('api-1', 'api', [{ ip: '198.18.1.30' }]),
    slice('web-headless', 'web', [{ ip: '198.18.1.40' }], { labels: { 'service.kubernetes.io/headless': '' } }),
    slice('web-fqdn', 'web', [{ ip: 'web.example' }], { addressType: 'FQDN' }),
  ];
  assert.deepEqual(addrs(one(fe(s, slices), 'ClusterIP').backends), ['198.18.1.10:8080']);
});

test('port name matching: backend port comes from the slice port with the same name, never targetPort', () => {
  const s = svc('web', {
    ports: [
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 'web' as never },
      { name: 'metrics', port: 9090, protocol: 'TCP', targetPort: 9999 as never },
    ],
  });
  // Two slices: pods resolved the named targetPort to different numbers.
  const slices = [
    slice('web-a', 'web', [{ ip: '198.18.1.10' }], {
      ports: [
        { name: 'http', port: 8080 },
        { name: 'metrics', port: 9100 },
      ],
    }),
    slice('web-b', 'web', [{ ip: '198.18.1.11' }], {
      ports: [
        { name: 'http', port: 8081 },
        { name: 'metrics', port: 9100 },
      ],
    }),
    slice('web-c', 'web', [{ ip: '198.18.1.12' }], { ports: [{ name: 'other', port: 80 }] }),
  ];
  const fs = fe(s, slices);
  assert.deepEqual(
    fs.map((f) => f.id),
    ['198.19.0.10:80/TCP', '198.19.0.10:9090/TCP'],
  );
  assert.deepEqual(addrs(fs[0]!.backends), ['198.18.1.10:8080', '198.18.1.11:8081']);
  assert.deepEqual(addrs(fs[1]!.backends), ['198.18.1.10:9100', '198.18.1.11:9100']);
});

test('port matching also needs the protocol; same port number with TCP, UDP and SCTP', () => {
  const s = svc('dns', {
    ports: [
      { name: 'dns-tcp', port: 53, protocol: 'TCP' },
      { name: 'dns-udp', port: 53, protocol: 'UDP' },
      { name: 'dns-sctp', port: 53, protocol: 'SCTP' },
    ],
  });
  const sl = slice('dns-1', 'dns', [{ ip: '198.18.1.53' }], {
    ports: [
      { name: 'dns-tcp', port: 5353, protocol: 'TCP' },
      { name: 'dns-udp', port: 5354, protocol: 'UDP' },
      { name: 'dns-sctp', port: 5355, protocol: 'TCP' }, // protocol mismatch: not joined
    ],
  });
  const fs = fe(s, [sl]);
  assert.deepEqual(
    fs.map((f) => f.id),
    ['198.19.0.10:53/SCTP', '198.19.0.10:53/TCP', '198.19.0.10:53/UDP'],
  );
  assert.equal(fs[0]!.reject, true);
  assert.deepEqual(addrs(fs[1]!.backends), ['198.18.1.53:5353']);
  assert.deepEqual(addrs(fs[2]!.backends), ['198.18.1.53:5354']);
});

test('unnamed single port matches an unnamed slice port; default protocol TCP', () => {
  const s = svc('web', { ports: [{ port: 80 }] });
  const fs = fe(s, [slice('w', 'web', [{ ip: '198.18.1.10' }], { ports: [{ port: 8080 }] })]);
  assert.equal(fs[0]!.id, '198.19.0.10:80/TCP');
  assert.equal(fs[0]!.portName, '');
  assert.deepEqual(addrs(fs[0]!.backends), ['198.18.1.10:8080']);
});

test('dual-stack: each ClusterIP gets the endpoints of its own family', () => {
  const s = svc('web', { clusterIP: '198.19.0.10', clusterIPs: ['198.19.0.10', '2001:2::a'], ipFamilies: ['IPv4', 'IPv6'] });
  const slices = [slice('web-v4', 'web', [{ ip: '198.18.1.10' }]), slice('web-v6', 'web', [{ ip: '2001:2:0:1::10' }])];
  const fs = fe(s, slices);
  assert.deepEqual(
    fs.map((f) => f.id),
    ['198.19.0.10:80/TCP', '[2001:2::a]:80/TCP'],
  );
  assert.deepEqual(addrs(one(fs, 'ClusterIP', 4).backends), ['198.18.1.10:8080']);
  assert.deepEqual(addrs(one(fs, 'ClusterIP', 6).backends), ['2001:2:0:1::10:8080']);
  // IPv6 only has endpoints: the IPv4 frontend rejects, the IPv6 one forwards.
  const v6only = fe(s, [slices[1]!]);
  assert.equal(one(v6only, 'ClusterIP', 4).reject, true);
  assert.equal(one(v6only, 'ClusterIP', 6).reject, false);
});

test('clusterIPs wins over clusterIP; IPv6 addresses are canonicalized', () => {
  const s = svc('web', { clusterIP: '198.19.0.99', clusterIPs: ['2001:0002:0000::000a'] });
  const fs = fe(s, [slice('w', 'web', [{ ip: '2001:2:0:0:0:0:0:10' }])]);
  assert.deepEqual(
    fs.map((f) => f.id),
    ['[2001:2::a]:80/TCP'],
  );
  assert.deepEqual(addrs(fs[0]!.backends), ['2001:2::10:8080']);
});

test('endpoint conditions: nil ready → ready; nil serving → ready; nil terminating → false', () => {
  const s = svc('web');
  const fs = fe(s, [slice('w', 'web', [{ ip: '198.18.1.10' }, { ip: '198.18.1.11', ready: false }])]);
  const f = one(fs, 'ClusterIP');
  assert.deepEqual(addrs(f.backends), ['198.18.1.10:8080']);
  assert.deepEqual(f.backends[0]!.serving, true);
  assert.deepEqual(f.backends[0]!.terminating, false);
  assert.deepEqual(f.establishedOnly, [], 'not-ready, not-terminating is neither new nor established-only');
});

test('terminating: ready endpoints preferred; serving-terminating kept as established-only', () => {
  const s = svc('web');
  const fs = fe(s, [
    slice('w', 'web', [
      { ip: '198.18.1.10', ready: true },
      { ip: '198.18.1.11', ready: false, serving: true, terminating: true },
      { ip: '198.18.1.12', ready: false, serving: false, terminating: true },
    ]),
  ]);
  const f = one(fs, 'ClusterIP');
  assert.deepEqual(addrs(f.backends), ['198.18.1.10:8080']);
  assert.deepEqual(addrs(f.establishedOnly), ['198.18.1.11:8080']);
  assert.equal(f.reject, false);
});

test('fallback: no ready endpoint → serving && terminating ones get new flows', () => {
  const s = svc('web');
  const fs = fe(s, [
    slice('w', 'web', [
      { ip: '198.18.1.11', ready: false, serving: true, terminating: true },
      { ip: '198.18.1.12', ready: false, serving: false, terminating: true },
      { ip: '198.18.1.13', ready: false },
    ]),
  ]);
  const f = one(fs, 'ClusterIP');
  assert.deepEqual(addrs(f.backends), ['198.18.1.11:8080']);
  assert.deepEqual(f.establishedOnly, []);
  assert.equal(f.reject, false);
});

test('no usable endpoint → reject on every frontend kind', () => {
  const s = svc(
    'web',
    {
      type: 'LoadBalancer',
      externalIPs: ['198.18.100.1'],
      ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }],
    },
    { lb: [{ ip: '198.18.200.1' }] },
  );
  for (const slices of [[], [slice('w', 'web', [{ ip: '198.18.1.10', ready: false, serving: false, terminating: true }])]]) {
    const fs = fe(s, slices);
    assert.deepEqual(fs.map((f) => f.kind).sort(), ['ClusterIP', 'ExternalIP', 'LoadBalancer', 'NodePort', 'NodePort']);
    for (const f of fs) {
      assert.equal(f.reject, true, f.id);
      assert.deepEqual(f.backends, []);
      assert.deepEqual(f.inClusterBackends, []);
    }
  }
});

test('NodePort: one frontend per node address of the matching family, only for NodePort/LoadBalancer', () => {
  const s = svc('np', { type: 'NodePort', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] });
  const fs = fe(s, [slice('np-1', 'np', [{ ip: '198.18.1.10' }])]);
  assert.deepEqual(
    fs.map((f) => `${f.kind} ${f.id}`),
    ['NodePort 198.18.0.1:30080/TCP', 'ClusterIP 198.19.0.10:80/TCP', 'NodePort [2001:2::1]:30080/TCP'],
  );
  const v4 = one(fs, 'NodePort', 4);
  assert.deepEqual(addrs(v4.backends), ['198.18.1.10:8080']);
  assert.equal(one(fs, 'NodePort', 6).reject, true, 'single-stack v4 service: no v6 endpoints');
  // A ClusterIP service with a stray nodePort gets no NodePort frontend.
  const cip = svc('c', { ports: [{ name: 'http', port: 80, nodePort: 30081 }] });
  assert.deepEqual(
    fe(cip, []).map((f) => f.kind),
    ['ClusterIP'],
  );
  // LoadBalancer without allocated node ports (allocateLoadBalancerNodePorts: false).
  const lb = svc('lb', { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false }, { lb: [{ ip: '198.18.200.1' }] });
  assert.deepEqual(
    fe(lb, [])
      .map((f) => f.kind)
      .sort(),
    ['ClusterIP', 'LoadBalancer'],
  );
});

test('externalIPs and LoadBalancer ingress (ipMode Proxy and hostname-only skipped); source ranges', () => {
  const s = svc(
    'lb',
    {
      type: 'LoadBalancer',
      externalIPs: ['198.18.100.1'],
      loadBalancerSourceRanges: [' 198.18.50.0/24', '198.18.60.7/24', '2001:2:ff::/64'],
      ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }],
    },
    { lb: [{ ip: '198.18.200.1' }, { ip: '198.18.200.2', ipMode: 'Proxy' }, { ip: '198.18.200.3', ipMode: 'VIP' }, { hostname: 'lb.example' }] },
  );
  const fs = fe(s, [slice('lb-1', 'lb', [{ ip: '198.18.1.10' }])]);
  assert.deepEqual(
    fs.filter((f) => f.kind === 'LoadBalancer').map((f) => f.address),
    ['198.18.200.1', '198.18.200.3'],
  );
  assert.deepEqual(
    fs.filter((f) => f.kind === 'ExternalIP').map((f) => f.address),
    ['198.18.100.1'],
  );
  for (const f of fs.filter((x) => x.kind === 'LoadBalancer')) assert.deepEqual(f.sourceRanges, ['198.18.50.0/24', '198.18.60.0/24']);
  assert.equal(one(fs, 'ExternalIP').sourceRanges, null);
  // Ranges only of the other family: kube-proxy filters by family and an empty list means no
  // firewall chain, so this family's LB IP is unrestricted.
  const v6ranges = svc('lb', { type: 'LoadBalancer', loadBalancerSourceRanges: ['2001:2::/48'] }, { lb: [{ ip: '198.18.200.1' }] });
  assert.equal(one(fe(v6ranges, []), 'LoadBalancer').sourceRanges, null);
});

test('loadBalancerSourceRanges as kube-proxy reads them: bad entries left out and reported, /0 opens, node addresses admit the LB IP', () => {
  const lb = (ranges: string[]) => svc('lb', { type: 'LoadBalancer', loadBalancerSourceRanges: ranges }, { lb: [{ ip: '198.18.200.1' }] });
  const ranges = (ranges: string[], node: NodeContext = { ...NODE, nodeAddresses: [] }) => one(fe(lb(ranges), [], node), 'LoadBalancer').sourceRanges;
  // whitespace tolerated; an entry that is no CIDR is ignored, the others still apply
  const bad = lb(['198.18.50.0/24 ', 'not-a-cidr', '198.18.51.0/33', '198.18.52.1']);
  const m = model(bad, [], { ...NODE, nodeAddresses: [] })!;
  assert.deepEqual(one(m.frontends, 'LoadBalancer').sourceRanges, ['198.18.50.0/24']);
  assert.deepEqual(m.info.invalidSourceRanges, ['not-a-cidr', '198.18.51.0/33', '198.18.52.1']);
  assert.deepEqual(model(lb(['198.18.50.0/24']), [], NODE)!.info.invalidSourceRanges, []);
  // every entry bad: no range left, so no restriction (kube-proxy)
  assert.equal(ranges(['nope']), null);
  // a zero-length prefix means "allow any" (kube-proxy drops the whole list)
  assert.equal(ranges(['198.18.50.0/24', '0.0.0.0/0']), null);
  // a range holding a node address also admits the LB IP itself (a node with the VIP local)
  assert.deepEqual(ranges(['198.18.0.0/24'], { ...NODE, nodeAddresses: ['198.18.0.1'] }), ['198.18.0.0/24', '198.18.200.1/32']);
  assert.deepEqual(ranges(['198.18.50.0/24'], { ...NODE, nodeAddresses: ['198.18.0.1'] }), ['198.18.50.0/24']);
  // duplicates and host bits collapse to one canonical prefix
  assert.deepEqual(ranges(['198.18.50.9/24', '198.18.50.0/24']), ['198.18.50.0/24']);
});

test('multi-port service: each port is an independent service-port', () => {
  const s = svc('m', {
    type: 'NodePort',
    ports: [
      { name: 'a', port: 80, protocol: 'TCP', nodePort: 30001 },
      { name: 'b', port: 81, protocol: 'UDP', nodePort: 30002 },
    ],
  });
  const fs = fe(s, [slice('m-1', 'm', [{ ip: '198.18.1.10' }], { ports: [{ name: 'a', port: 8080, protocol: 'TCP' }] })], {
    ...NODE,
    nodeAddresses: ['198.18.0.1'],
  });
  assert.deepEqual(
    fs.map((f) => `${f.id} ${f.reject ? 'reject' : addrs(f.backends).join(',')}`),
    ['198.18.0.1:30001/TCP 198.18.1.10:8080', '198.18.0.1:30002/UDP reject', '198.19.0.10:80/TCP 198.18.1.10:8080', '198.19.0.10:81/UDP reject'],
  );
});

test('multiple slices per service are merged; duplicates across slices de-duplicated', () => {
  const s = svc('web');
  const slices = [
    slice('web-b', 'web', [{ ip: '198.18.1.11' }, { ip: '198.18.1.10', node: 'node-a' }]),
    slice('web-a', 'web', [{ ip: '198.18.1.10', node: 'node-x', ready: false }, { ip: '198.18.1.12' }]),
  ];
  const f = one(fe(s, slices), 'ClusterIP');
  assert.deepEqual(addrs(f.backends), ['198.18.1.10:8080', '198.18.1.11:8080', '198.18.1.12:8080']);
  assert.equal(f.backends[0]!.isLocal, true, 'local copy of a duplicate wins (kube-proxy)');
  // Same address with a different port is a different backend.
  const two = [slice('p1', 'web', [{ ip: '198.18.1.10' }]), slice('p2', 'web', [{ ip: '198.18.1.10' }], { ports: [{ name: 'http', port: 8081 }] })];
  assert.deepEqual(addrs(one(fe(s, two), 'ClusterIP').backends), ['198.18.1.10:8080', '198.18.1.10:8081']);
});

test('only the first address of an endpoint counts; garbage and wrong-family addresses are skipped', () => {
  const sl = slice('w', 'web', [{ ip: '198.18.1.10' }, { ip: 'not-an-ip' }, { ip: '2001:2::5' }], { addressType: 'IPv4' });
  sl.endpoints![0]!.addresses.push('198.18.1.99');
  assert.deepEqual(addrs(one(fe(svc('web'), [sl]), 'ClusterIP').backends), ['198.18.1.10:8080']);
});

test('internalTrafficPolicy Local: ClusterIP uses node-local endpoints; none local → drop, not reject', () => {
  const s = svc('web', { internalTrafficPolicy: 'Local' });
  const f = one(fe(s, [slice('w', 'web', three)]), 'ClusterIP');
  assert.equal(f.localOnly, true);
  assert.deepEqual(addrs(f.backends), ['198.18.1.10:8080']);
  const remoteOnly = one(fe(s, [slice('w', 'web', [{ ip: '198.18.1.11', node: 'node-b' }])]), 'ClusterIP');
  assert.deepEqual(remoteOnly.backends, []);
  assert.equal(remoteOnly.reject, false, 'endpoints exist elsewhere: drop');
  const none = one(fe(s, []), 'ClusterIP');
  assert.equal(none.reject, true, 'no endpoints anywhere: reject');
});

test('iTP Local falls back to local serving-terminating endpoints', () => {
  const s = svc('web', { internalTrafficPolicy: 'Local' });
  const f = one(
    fe(s, [
      slice('w', 'web', [
        { ip: '198.18.1.10', node: 'node-a', ready: false, serving: true, terminating: true },
        { ip: '198.18.1.11', node: 'node-b' },
      ]),
    ]),
    'ClusterIP',
  );
  assert.deepEqual(addrs(f.backends), ['198.18.1.10:8080']);
});

test('externalTrafficPolicy Local: external clients get local endpoints, in-cluster clients all', () => {
  const s = svc(
    'lb',
    {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Local',
      healthCheckNodePort: 31000,
      externalIPs: ['198.18.100.1'],
      ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }],
    },
    { lb: [{ ip: '198.18.200.1' }] },
  );
  const m = model(s, [slice('lb-1', 'lb', three)], { ...NODE, nodeAddresses: ['198.18.0.1'] })!;
  for (const kind of ['NodePort', 'ExternalIP', 'LoadBalancer'] as const) {
    const f = one(m.frontends, kind);
    assert.equal(f.localOnly, true, kind);
    assert.deepEqual(addrs(f.backends), ['198.18.1.10:8080'], kind);
    assert.deepEqual(addrs(f.inClusterBackends), ['198.18.1.10:8080', '198.18.1.11:8080', '198.18.1.12:8080'], kind);
  }
  const c = one(m.frontends, 'ClusterIP');
  assert.equal(c.localOnly, false, 'eTP does not affect the ClusterIP');
  assert.equal(c.backends.length, 3);
  assert.equal(m.info.healthCheckNodePort, 31000);
  assert.deepEqual(m.info.localEndpoints, { 'default/lb:http/TCP': 1 });

  // No local endpoint: external clients dropped (not rejected), in-cluster clients still served.
  const remote = model(s, [slice('lb-1', 'lb', [{ ip: '198.18.1.11', node: 'node-b' }])], NODE)!;
  const np = one(remote.frontends, 'NodePort');
  assert.deepEqual(np.backends, []);
  assert.equal(np.reject, false);
  assert.deepEqual(addrs(np.inClusterBackends), ['198.18.1.11:8080']);
  assert.deepEqual(remote.info.localEndpoints, { 'default/lb:http/TCP': 0 });
});

test('eTP Local without external frontends behaves as Cluster; healthCheckNodePort only for LoadBalancer', () => {
  const s = svc('np', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80 }] });
  const m = model(s, [slice('np-1', 'np', three)])!;
  assert.equal(m.frontends.length, 1);
  assert.equal(m.frontends[0]!.backends.length, 3);
  assert.equal(m.info.healthCheckNodePort, null);
});

test('eTP Local serving-terminating fallback is local; remote terminating stays established-only', () => {
  const s = svc('np', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] });
  const eps: Ep[] = [
    { ip: '198.18.1.10', node: 'node-a', ready: false, serving: true, terminating: true },
    { ip: '198.18.1.11', node: 'node-b', ready: false, serving: true, terminating: true },
    { ip: '198.18.1.12', node: 'node-b', ready: true },
  ];
  const fs = fe(s, [slice('np-1', 'np', eps)], { ...NODE, nodeAddresses: ['198.18.0.1'] });
  const np = one(fs, 'NodePort');
  assert.deepEqual(addrs(np.backends), ['198.18.1.10:8080']);
  assert.deepEqual(addrs(np.inClusterBackends), ['198.18.1.12:8080']);
  assert.deepEqual(addrs(np.establishedOnly), ['198.18.1.11:8080']);
  const c = one(fs, 'ClusterIP');
  assert.deepEqual(addrs(c.backends), ['198.18.1.12:8080']);
  assert.deepEqual(addrs(c.establishedOnly), ['198.18.1.10:8080', '198.18.1.11:8080']);
});

test('sessionAffinity ClientIP: default timeout 10800, explicit timeout kept', () => {
  const a = one(fe(svc('web', { sessionAffinity: 'ClientIP' }), []), 'ClusterIP');
  assert.deepEqual(a.affinity, { timeoutSeconds: 10800 });
  const b = one(fe(svc('web', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }), []), 'ClusterIP');
  assert.deepEqual(b.affinity, { timeoutSeconds: 60 });
  assert.equal(one(fe(svc('web', { sessionAffinity: 'None' }), []), 'ClusterIP').affinity, null);
});

test('topology: PreferSameZone when every ready endpoint has a zone hint and one is for this zone', () => {
  const s = svc('web', { trafficDistribution: 'PreferSameZone' });
  const eps: Ep[] = [
    { ip: '198.18.1.10', zone: 'zone-1', zoneHints: ['zone-1'] },
    { ip: '198.18.1.11', zone: 'zone-2', zoneHints: ['zone-2'] },
    { ip: '198.18.1.12', ready: false, zone: 'zone-3' },
  ];
  assert.deepEqual(addrs(one(fe(s, [slice('w', 'web', eps)]), 'ClusterIP').backends), ['198.18.1.10:8080']);
  // Other zone without hints for it: hints ignored.
  assert.equal(one(fe(s, [slice('w', 'web', eps)], { ...NODE, zone: 'zone-9' }), 'ClusterIP').backends.length, 2);
  // One ready endpoint without a hint: hints ignored.
  const partial = [...eps, { ip: '198.18.1.13' }];
  assert.equal(one(fe(s, [slice('w', 'web', partial)]), 'ClusterIP').backends.length, 3);
  // Node without a zone label: hints ignored.
  assert.equal(one(fe(s, [slice('w', 'web', eps)], { nodeName: 'node-a', nodeAddresses: [] }), 'ClusterIP').backends.length, 2);
});

test('topology: PreferSameNode hints beat zone hints; iTP Local ignores hints', () => {
  const eps: Ep[] = [
    { ip: '198.18.1.10', node: 'node-b', nodeHints: ['node-a'], zoneHints: ['zone-1'] },
    { ip: '198.18.1.11', node: 'node-b', nodeHints: ['node-b'], zoneHints: ['zone-1'] },
    { ip: '198.18.1.12', node: 'node-a', nodeHints: ['node-c'], zoneHints: ['zone-2'] },
  ];
  const s = svc('web', { trafficDistribution: 'PreferSameNode' });
  assert.deepEqual(addrs(one(fe(s, [slice('w', 'web', eps)]), 'ClusterIP').backends), ['198.18.1.10:8080']);
  // Node hints present but none for this node → zone hints.
  assert.deepEqual(addrs(one(fe(s, [slice('w', 'web', eps)], { ...NODE, nodeName: 'node-z' }), 'ClusterIP').backends), [
    '198.18.1.10:8080',
    '198.18.1.11:8080',
  ]);
  const local = svc('web', { internalTrafficPolicy: 'Local' });
  assert.deepEqual(addrs(one(fe(local, [slice('w', 'web', eps)]), 'ClusterIP').backends), ['198.18.1.12:8080']);
});

test('service namespace defaults to default and keys are ns/name', () => {
  const s = svc('web');
  delete s.metadata!.namespace;
  const f = one(fe(s, [slice('w', 'web', three)]), 'ClusterIP');
  assert.equal(f.serviceKey, 'default/web');
});

test('buildServiceState: sorted frontends, services map, conflicts resolved deterministically', () => {
  const a = svc('a', { clusterIP: '198.19.0.1', externalIPs: ['198.19.0.2'] });
  const b = svc('b', { clusterIP: '198.19.0.2' }); // b's ClusterIP equals a's externalIP
  const h = svc('h', { clusterIP: 'None' });
  const state = buildServiceState(inputs([b, a, h], [slice('a-1', 'a', three), slice('b-1', 'b', [{ ip: '198.18.1.20' }])]), NODE);
  assert.deepEqual([...state.services.keys()].sort(), ['default/a', 'default/b']);
  assert.deepEqual([...state.frontends.keys()], ['198.19.0.1:80/TCP', '198.19.0.2:80/TCP']);
  assert.equal(state.frontends.get('198.19.0.2:80/TCP')!.serviceKey, 'default/b', 'the ClusterIP owner keeps a clashing address');
  assert.deepEqual(listConflicts(state), [{ id: '198.19.0.2:80/TCP', winner: 'default/b', losers: ['default/a'] }]);
  assert.deepEqual(
    sortedFrontends(state).map((f) => f.id),
    [...state.frontends.keys()],
  );
  // Same inputs, same output.
  const again = buildServiceState(inputs([a, b, h], [slice('b-1', 'b', [{ ip: '198.18.1.20' }]), slice('a-1', 'a', three)]), NODE);
  assert.deepEqual(sortedFrontends(again), sortedFrontends(state));
});
