// The node maps' planner (dataplane/node-maps.ts desiredNodeMaps): which nodes are peers and
// which prefixes route to them, from Node objects and endpoint locations; the endpoint
// locations read from EndpointSlices; and NodeMapSync following store changes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import { buildNodeTable } from '../../src/model/nodes.js';
import type { WeirNode4, WeirNode4Key, WeirTunnel4, WeirTunnel4Key } from '../../src/bpf/index.js';
import {
  desiredNodeMaps,
  NODE_PEER,
  sliceLocations,
  TUNNEL_ENDPOINT,
  TUNNEL_POD_CIDR,
  v4Mapped,
  type EndpointLocation,
  type NodeMaps,
} from '../../src/dataplane/node-maps.js';
import { NodeMapSync } from '../../src/dataplane/node-map-sync.js';
import { memoryLogger } from '../../src/log.js';
import { Store } from '../../src/sources/store.js';
import { FakeMap } from './fake-maps.js';

function node(name: string, addresses: string[], podCIDRs: string[] = []): V1Node {
  return {
    metadata: { name },
    spec: { podCIDRs },
    status: { addresses: addresses.map((address) => ({ type: 'InternalIP', address })) },
  };
}

const SELF = 'node-a';
const NODES = [
  node('node-a', ['198.18.0.1'], ['198.18.1.0/24']),
  node('node-b', ['198.18.0.2', '2001:2::2'], ['198.18.2.0/24', '2001:2:0:2::/64']),
  node('node-c', ['198.18.0.3'], ['198.18.3.0/24']),
];
const plan = (nodes: V1Node[], endpoints: EndpointLocation[] = []) => desiredNodeMaps(buildNodeTable(nodes), SELF, endpoints);
const sorted = <V>(m: Map<string, V>) => [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1));

test('every other node with an IPv4 InternalIP is a peer with its IPv4 pod CIDRs; this node is not', () => {
  const d = plan(NODES);
  assert.deepEqual(sorted(d.nodes), [
    ['198.18.0.2', NODE_PEER],
    ['198.18.0.3', NODE_PEER],
  ]);
  assert.deepEqual(sorted(d.tunnel), [
    ['198.18.2.0/24', { nodeIp: '198.18.0.2', flags: TUNNEL_POD_CIDR }],
    ['198.18.3.0/24', { nodeIp: '198.18.0.3', flags: TUNNEL_POD_CIDR }],
  ]);
  // node-b's IPv6 pod CIDR is the IPv6 maps' (below)
  assert.deepEqual([...d.skipped], []);
  assert.deepEqual(d.issues, []);
});

test('an endpoint inside its node pod CIDR adds nothing; one outside gets a /32; local, unknown (and IPv6) endpoints get nothing in the IPv4 maps', () => {
  const d = plan(NODES, [
    { address: '198.18.2.7', nodeName: 'node-b' }, // covered by node-b's /24
    { address: '198.18.9.7', nodeName: 'node-b' }, // outside: /32
    { address: '198.18.3.9', nodeName: 'node-b' }, // inside node-c's CIDR, but nodeName says node-b
    { address: '198.18.9.7', nodeName: 'node-b' }, // the same pod in a second slice
    { address: '198.18.1.5', nodeName: 'node-a' }, // this node
    { address: '198.18.9.8', nodeName: 'node-z' }, // unknown node
    { address: '198.18.9.9', nodeName: '' },
    { address: '2001:2:0:2::7', nodeName: 'node-b' },
  ]);
  assert.deepEqual(sorted(d.tunnel), [
    ['198.18.2.0/24', { nodeIp: '198.18.0.2', flags: TUNNEL_POD_CIDR }],
    ['198.18.3.0/24', { nodeIp: '198.18.0.3', flags: TUNNEL_POD_CIDR }],
    ['198.18.3.9/32', { nodeIp: '198.18.0.2', flags: TUNNEL_ENDPOINT }],
    ['198.18.9.7/32', { nodeIp: '198.18.0.2', flags: TUNNEL_ENDPOINT }],
  ]);
  assert.deepEqual(Object.fromEntries(d.skipped), {
    endpoint_local: 1,
    endpoint_unknown_node: 1,
    endpoint_no_node_name: 1,
  });
  assert.deepEqual(d.unplaced, [{ address: '198.18.9.8', nodeName: 'node-z' }]);
});

test('a node without an IPv4 InternalIP is no peer, and its endpoints get nothing', () => {
  const d = plan(
    [...NODES, node('node-6', ['2001:2::6'], ['198.18.6.0/24']), node('node-x', [], ['198.18.7.0/24'])],
    [
      { address: '198.18.6.1', nodeName: 'node-6' },
      { address: '198.18.9.1', nodeName: 'node-6' },
    ],
  );
  assert.deepEqual([...d.nodes.keys()].sort(), ['198.18.0.2', '198.18.0.3']);
  assert.ok(
    ![...d.tunnel.keys()].some((k) => k.startsWith('198.18.6.') || k.startsWith('198.18.7.') || k.startsWith('198.18.9.')),
    [...d.tunnel.keys()].join(),
  );
  assert.equal(d.skipped.get('node_no_ipv4'), 2);
  assert.equal(d.skipped.get('endpoint_unknown_node'), 2);
});

test('a bad pod CIDR in a Node is left out with an issue; the node stays a peer with its good one', () => {
  const nodes = [...NODES, node('node-d', ['198.18.0.4'], ['198.18.4.0/33', '198.18.5.9/24'])];
  const table = buildNodeTable(nodes);
  assert.deepEqual(
    table.issues.map((i) => [i.node, i.reason]),
    [['node-d', 'bad_pod_cidr']],
  );
  const d = desiredNodeMaps(table, SELF, []);
  assert.equal(d.nodes.get('198.18.0.4'), NODE_PEER);
  // host bits cleared, as the LPM trie needs
  assert.deepEqual(d.tunnel.get('198.18.5.0/24'), { nodeIp: '198.18.0.4', flags: TUNNEL_POD_CIDR });
  assert.ok(![...d.tunnel.keys()].some((k) => k.startsWith('198.18.4.')));
});

test("never an entry for this node's pod CIDRs; conflicts are issues, decided by the first name whatever the order", () => {
  const extra = [
    node('node-e', ['198.18.0.5'], ['198.18.1.0/24']), // claims this node's CIDR
    node('node-f', ['198.18.0.6'], ['198.18.3.0/24']), // claims node-c's
    node('node-g', ['198.18.0.1']), // this node's address
  ];
  const eps = [
    { address: '198.18.9.5', nodeName: 'node-c' },
    { address: '198.18.9.5', nodeName: 'node-b' },
    // a slice without nodeName does not contradict one with it
    { address: '198.18.9.6', nodeName: '' },
    { address: '198.18.9.6', nodeName: 'node-c' },
    // in node-f's claimed CIDR, which node-c keeps: node-f's endpoint needs its own /32
    { address: '198.18.3.77', nodeName: 'node-f' },
  ];
  const d = plan([...NODES, ...extra], eps);
  const r = plan([...extra, ...NODES].reverse(), [...eps].reverse());
  assert.deepEqual(sorted(d.tunnel), sorted(r.tunnel));
  assert.deepEqual(sorted(d.nodes), sorted(r.nodes));
  assert.equal(d.tunnel.get('198.18.1.0/24'), undefined);
  assert.deepEqual(d.tunnel.get('198.18.3.0/24'), { nodeIp: '198.18.0.3', flags: TUNNEL_POD_CIDR });
  assert.deepEqual(d.tunnel.get('198.18.9.5/32'), { nodeIp: '198.18.0.2', flags: TUNNEL_ENDPOINT });
  assert.deepEqual(d.tunnel.get('198.18.9.6/32'), { nodeIp: '198.18.0.3', flags: TUNNEL_ENDPOINT });
  assert.deepEqual(d.tunnel.get('198.18.3.77/32'), { nodeIp: '198.18.0.6', flags: TUNNEL_ENDPOINT });
  assert.equal(d.nodes.has('198.18.0.1'), false);
  assert.deepEqual(d.issues.map((i) => i.reason).sort(), ['endpoint_conflict', 'node_same_address', 'own_pod_cidr', 'pod_cidr_conflict']);
});

// ---- the IPv6 maps (issue 14): the same planner with the family a value ----

const DUAL = [
  node('node-a', ['198.18.0.1', '2001:2::1'], ['198.18.1.0/24', '2001:2:0:1::/64']),
  node('node-b', ['198.18.0.2', '2001:2::2'], ['198.18.2.0/24', '2001:2:0:2::/64']),
  node('node-c', ['198.18.0.3'], ['198.18.3.0/24', '2001:2:0:3::/64']), // IPv4 underlay only
  node('node-d', ['2001:2::4'], ['2001:2:0:4::/64']), // IPv6 only
];
const plan6 = (nodes: V1Node[], endpoints: EndpointLocation[] = [], underlay?: 'ipv4' | 'ipv6') =>
  desiredNodeMaps(buildNodeTable(nodes), SELF, endpoints, { family: 6, ...(underlay ? { underlay } : {}) });

test('IPv6 maps, --tunnel-underlay ipv4 (default): IPv6 pod CIDRs go to the IPv4 underlay (v4-mapped) where both nodes have one, else IPv6', () => {
  const d = plan6(DUAL, [
    { address: '2001:2:0:2::7', nodeName: 'node-b' }, // inside node-b's /64
    { address: '2001:2:0:9::7', nodeName: 'node-b' }, // outside: /128
    { address: '2001:2:0:1::5', nodeName: 'node-a' }, // this node
    { address: '198.18.9.7', nodeName: 'node-b' }, // the IPv4 maps'
  ]);
  // weir_nodes6: the peers' IPv6 underlay addresses (whose IPv6-outer packets are accepted)
  assert.deepEqual(sorted(d.nodes), [
    ['2001:2::2', NODE_PEER],
    ['2001:2::4', NODE_PEER],
  ]);
  assert.deepEqual(sorted(d.tunnel), [
    ['2001:2:0:2::/64', { nodeIp: '::ffff:c612:2', flags: TUNNEL_POD_CIDR }],
    ['2001:2:0:3::/64', { nodeIp: '::ffff:c612:3', flags: TUNNEL_POD_CIDR }],
    ['2001:2:0:4::/64', { nodeIp: '2001:2::4', flags: TUNNEL_POD_CIDR }],
    ['2001:2:0:9::7/128', { nodeIp: '::ffff:c612:2', flags: TUNNEL_ENDPOINT }],
  ]);
  assert.equal(v4Mapped('198.18.0.2'), '::ffff:c612:2', 'as the codec prints ::ffff:198.18.0.2');
  assert.deepEqual(Object.fromEntries(d.skipped), { endpoint_local: 1 });
});

test('IPv6 maps, --tunnel-underlay ipv6: the IPv6 underlay where both nodes have an IPv6 InternalIP, else IPv4; no address of either: no peer', () => {
  const d = plan6([...DUAL, node('node-x', [], ['2001:2:0:8::/64'])], [{ address: '2001:2:0:8::1', nodeName: 'node-x' }], 'ipv6');
  assert.deepEqual(sorted(d.tunnel), [
    ['2001:2:0:2::/64', { nodeIp: '2001:2::2', flags: TUNNEL_POD_CIDR }],
    ['2001:2:0:3::/64', { nodeIp: '::ffff:c612:3', flags: TUNNEL_POD_CIDR }],
    ['2001:2:0:4::/64', { nodeIp: '2001:2::4', flags: TUNNEL_POD_CIDR }],
  ]);
  assert.deepEqual(Object.fromEntries(d.skipped), { node_no_underlay: 1, endpoint_unknown_node: 1 });
  // the IPv4 maps do not change with the option
  const v4 = desiredNodeMaps(buildNodeTable(DUAL), SELF, [], { family: 4, underlay: 'ipv6' });
  assert.deepEqual([...v4.tunnel.keys()].sort(), ['198.18.2.0/24', '198.18.3.0/24']);
  assert.deepEqual([...v4.nodes.keys()].sort(), ['198.18.0.2', '198.18.0.3']);
});

test("IPv6 maps: never this node's IPv6 pod CIDRs; a node with this node's IPv6 address is an issue", () => {
  const d = plan6([...DUAL, node('node-e', ['2001:2::1'], ['2001:2:0:1::/64'])], [], 'ipv6');
  assert.equal(d.tunnel.get('2001:2:0:1::/64'), undefined);
  assert.equal(d.nodes.has('2001:2::1'), false);
  assert.deepEqual(
    d.issues.map((i) => i.reason),
    ['node_same_address'],
  );
});

test('sliceLocations: first address and nodeName of each endpoint; headless slices and bad addresses give nothing', () => {
  const slice = (o: Partial<V1EndpointSlice>): V1EndpointSlice => ({ addressType: 'IPv4', endpoints: [], ...o });
  assert.deepEqual(
    sliceLocations(
      slice({
        endpoints: [
          { addresses: ['198.18.2.7', '198.18.2.8'], nodeName: 'node-b' },
          { addresses: ['198.18.9.7'] },
          { addresses: ['not-an-ip'], nodeName: 'node-b' },
        ],
      }),
    ),
    [
      { address: '198.18.2.7', nodeName: 'node-b' },
      { address: '198.18.9.7', nodeName: '' },
    ],
  );
  assert.deepEqual(sliceLocations(slice({ addressType: 'IPv6', endpoints: [{ addresses: ['2001:2:0:0::7'], nodeName: 'node-b' }] })), [
    { address: '2001:2::7', nodeName: 'node-b' },
  ]);
  assert.deepEqual(sliceLocations(slice({ metadata: { labels: { 'service.kubernetes.io/headless': '' } }, endpoints: [{ addresses: ['198.18.2.7'] }] })), []);
  assert.deepEqual(sliceLocations(slice({ addressType: 'FQDN', endpoints: [{ addresses: ['a.example'] }] })), []);
  assert.deepEqual(sliceLocations(undefined), []);
});

// ---- NodeMapSync: the daemon's end, over the real Store and in-memory maps ----

const tick = () => new Promise((r) => setImmediate(r));

test('NodeMapSync: replans on Node changes and on slice changes that move an endpoint, once per turn; says conflicts once', async () => {
  const store = new Store();
  const put = (kind: 'Node' | 'EndpointSlice', key: string, object: object | undefined) => {
    const change = store.apply({ type: object ? 'upsert' : 'delete', kind, key, object: object as never, origin: 'test', observedAt: 0 } as never);
    if (change) sync.changed(change);
  };
  const slice = (eps: [string, string, boolean][]): V1EndpointSlice => ({
    addressType: 'IPv4',
    metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
    endpoints: eps.map(([ip, nodeName, ready]) => ({ addresses: [ip], nodeName, conditions: { ready } })),
  });
  const nodes = new FakeMap<WeirNode4Key, WeirNode4>();
  const tunnel = new FakeMap<WeirTunnel4Key, WeirTunnel4>();
  const log = memoryLogger();
  const sync = new NodeMapSync({ nodes, tunnel } as unknown as NodeMaps, store, SELF, log);
  for (const n of NODES) put('Node', n.metadata!.name!, n);
  put('EndpointSlice', 'default/web-1', slice([['198.18.9.7', 'node-b', true]]));
  assert.equal(sync.writer.stats.applies, 0, 'nothing before start');
  assert.deepEqual(sync.start(), { writes: 5, errors: 0, peers: 2, prefixes: 3 });

  // readiness flips move nothing: no replan
  put('EndpointSlice', 'default/web-1', slice([['198.18.9.7', 'node-b', false]]));
  await tick();
  assert.equal(sync.writer.stats.applies, 1);

  // the endpoint moves to node-c and node-c gains a CIDR in the same turn: one apply, two writes
  put('EndpointSlice', 'default/web-1', slice([['198.18.9.7', 'node-c', false]]));
  put('Node', 'node-c', node('node-c', ['198.18.0.3'], ['198.18.3.0/24', '198.18.33.0/24']));
  await tick();
  assert.equal(sync.writer.stats.applies, 2);
  assert.equal(sync.writer.stats.writes, 7);
  assert.deepEqual(tunnel.get({ prefixlen: 32, address: '198.18.9.7' }), { node_ip: '198.18.0.3', flags: TUNNEL_ENDPOINT });

  // a conflict is said once, however many applies see it
  put('Node', 'node-e', node('node-e', ['198.18.0.5'], ['198.18.2.0/24']));
  await tick();
  put('Node', 'node-f', node('node-f', ['198.18.0.6'], []));
  await tick();
  assert.equal(sync.writer.stats.applies, 4);
  assert.equal(log.lines.filter((l) => l.startsWith('warn node map conflict')).length, 1, log.lines.join('\n'));

  // node-b goes: its peer entry and CIDR go, node-e's claim on the CIDR is no conflict any more
  put('Node', 'node-b', undefined);
  await tick();
  assert.deepEqual(tunnel.get({ prefixlen: 24, address: '198.18.2.0' }), { node_ip: '198.18.0.5', flags: TUNNEL_POD_CIDR });
  assert.equal(nodes.get({ address: '198.18.0.2' }), undefined);
  sync.stop();
});

test('NodeMapSync with both pairs: one plan per family from the same objects, each into its own maps, --tunnel-underlay for the IPv6 one; a conflict said once', () => {
  const store = new Store();
  const put = (key: string, object: object) =>
    store.apply({ type: 'upsert', kind: 'Node', key, object: object as never, origin: 'test', observedAt: 0 } as never);
  for (const n of [...DUAL, node('node-e', ['198.18.0.1', '2001:2::1'])]) put(n.metadata!.name!, n);
  const pair = (family: 4 | 6) => ({ family, nodes: new FakeMap<object, object>(), tunnel: new FakeMap<object, object>() });
  const [p4, p6] = [pair(4), pair(6)];
  const log = memoryLogger();
  const sync = new NodeMapSync([p4, p6] as unknown as NodeMaps[], store, SELF, log, 'ipv6');
  const r = sync.start();
  assert.deepEqual(r.errors, 0);
  assert.deepEqual([...p4.tunnel.keys()].map((k) => JSON.stringify(k)).sort(), [
    '{"prefixlen":24,"address":"198.18.2.0"}',
    '{"prefixlen":24,"address":"198.18.3.0"}',
  ]);
  assert.deepEqual(p6.tunnel.get({ prefixlen: 64, address: '2001:2:0:2::' }), { node_ip: '2001:2::2', flags: TUNNEL_POD_CIDR });
  assert.deepEqual(p6.tunnel.get({ prefixlen: 64, address: '2001:2:0:3::' }), { node_ip: '::ffff:c612:3', flags: TUNNEL_POD_CIDR });
  assert.deepEqual([...p6.nodes.keys()].map((k) => (k as { address: string }).address).sort(), ['2001:2::2', '2001:2::4']);
  // node-e has this node's addresses: one issue per family's plan, said once
  assert.equal(log.lines.filter((l) => l.startsWith('warn node map conflict')).length, 2, log.lines.join('\n'));
  assert.ok(
    log.lines.some((l) => l.includes('node maps') && l.includes('ipv6:')),
    log.lines.join('\n'),
  );
  sync.stop();
});
