// The service pipeline with both families' maps (issue 14), over in-memory maps: a dual-stack
// Service through ServiceSync lands in each family's maps (NodePorts on the node's IPv6
// address, loadBalancerSourceRanges in weir_lb_src6 with prefixlen 32 + the CIDR's, the
// Maglev table of an IPv6 frontend in the one table map under its id), a restart adopts
// both with zero writes, the API server bootstrap with IPv6 addresses reaches the IPv6 maps,
// and the clean-up and conntrack GC treat the IPv6 maps as the IPv4 ones.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { enums, type WeirCt4, type WeirCt4Key, type WeirMaglev4, type WeirMaglev4Key } from '../../src/bpf/index.js';
import { IPPROTO } from '../../src/bpf/ip.js';
import { BackendCleanup } from '../../src/dataplane/backend-cleanup.js';
import { ConntrackGc } from '../../src/dataplane/conntrack-gc.js';
import { ServiceSync } from '../../src/dataplane/service-sync.js';
import { sourceRangeKey } from '../../src/dataplane/reconcile.js';
import type { NodeContext } from '../../src/model/service-types.js';
import { memoryLogger } from '../../src/log.js';
import { bootstrapEvents } from '../../src/sources/kube-bootstrap.js';
import { Store } from '../../src/sources/store.js';
import { FakeMap, fakeDualStackMaps } from './fake-maps.js';

const FF = enums.weir_frontend_flags;
const NODE: NodeContext = { nodeName: 'node-a', nodeAddresses: ['198.18.0.1', '2001:2::1'] };
const M = 251;

function put(store: Store, kind: 'Service' | 'EndpointSlice', object: V1Service | V1EndpointSlice): void {
  const key = `${object.metadata!.namespace ?? 'default'}/${object.metadata!.name}`;
  store.apply({ type: 'upsert', kind, key, object, origin: 'test', observedAt: 0 } as never);
}

/** A dual-stack LoadBalancer (NodePort 30080) with source ranges of both families, Maglev. */
function dualStackLb(): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default', annotations: { 'service.weir.dev/lb-algorithm': 'maglev' } },
    spec: {
      type: 'LoadBalancer',
      clusterIP: '198.19.0.10',
      clusterIPs: ['198.19.0.10', '2001:2:ff::10'],
      ipFamilies: ['IPv4', 'IPv6'],
      ipFamilyPolicy: 'RequireDualStack',
      ports: [{ name: 'http', port: 80, targetPort: 8080 as never, nodePort: 30080, protocol: 'TCP' }],
      loadBalancerSourceRanges: ['198.18.100.0/24', '2001:2:100::/48'],
    },
    status: { loadBalancer: { ingress: [{ ip: '198.18.5.1' }, { ip: '2001:2:5::1' }] } },
  };
}

function slice(name: string, addressType: 'IPv4' | 'IPv6', ips: string[], protocol = 'TCP'): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType,
    ports: [{ name: 'http', port: 8080, protocol }],
    endpoints: ips.map((ip) => ({ addresses: [ip], nodeName: 'node-a', conditions: { ready: true, serving: true, terminating: false } })),
  };
}

type Key = { address: string; port: number; protocol: number; scope: number };
type Value = { id: number; backend_count: number; flags: number };
type Entries = { entries(): Iterable<unknown> };
const frontends = (m: Entries) =>
  [...(m.entries() as Iterable<[Key, Value]>)].map(([k, v]) => ({ at: `${k.address}:${k.port}`, id: v.id, count: v.backend_count, flags: v.flags }));

function dualStackSync() {
  const store = new Store();
  put(store, 'Service', dualStackLb());
  put(store, 'EndpointSlice', slice('web-v4', 'IPv4', ['198.18.1.10', '198.18.1.11']));
  put(store, 'EndpointSlice', slice('web-v6', 'IPv6', ['2001:2:1::10', '2001:2:1::11']));
  const { fake, fake6, maps } = fakeDualStackMaps();
  const maglev = new FakeMap<WeirMaglev4Key, WeirMaglev4>();
  const log = memoryLogger();
  const make = () => new ServiceSync({ maps: { ...maps, maglev: maglev as never }, inputs: store, log, maglevTableSize: M });
  return { store, fake, fake6, maglev, log, make };
}

test('ServiceSync with IPv6 maps: a dual-stack LoadBalancer lands in each family; NodePorts on the IPv6 node address; nothing skipped', () => {
  const s = dualStackSync();
  const sync = s.make();
  sync.adopt();
  const r = sync.full('start', NODE);
  assert.equal(r.errors, 0);
  assert.equal(sync.reconciler.stats.skipped.size, 0, 'no skipped=ipv6');
  assert.ok(!s.log.lines.some((l) => l.includes('skipped=')), s.log.lines.join('\n'));
  const v4 = frontends(s.fake.frontends)
    .map((f) => f.at)
    .sort();
  const v6 = frontends(s.fake6.frontends)
    .map((f) => f.at)
    .sort();
  assert.deepEqual(v4, ['198.18.0.1:30080', '198.18.5.1:80', '198.19.0.10:80']);
  assert.deepEqual(v6, ['2001:2:5::1:80', '2001:2::1:30080', '2001:2:ff::10:80']);
  // the IPv6 slots hold the IPv6 endpoints, two per frontend
  for (const f of frontends(s.fake6.frontends)) assert.equal(f.count, 2, f.at);
  assert.deepEqual([...new Set([...s.fake6.backends.entries()].map(([, v]) => (v as { address: string }).address))].sort(), ['2001:2:1::10', '2001:2:1::11']);
  // ids are unique across the families
  const ids = [...frontends(s.fake.frontends), ...frontends(s.fake6.frontends)].map((f) => f.id);
  assert.equal(new Set(ids).size, 6);
  // both families' frontends are counted (weir_frontends)
  assert.equal(r.frontends, 6);
  sync.stop();
});

test('IPv6 loadBalancerSourceRanges go to weir_lb_src6 (prefixlen 32 + length) under the IPv6 LB frontend id; IPv4 ones stay in weir_lb_src4', () => {
  const s = dualStackSync();
  const sync = s.make();
  sync.full('start', NODE);
  const lb6 = frontends(s.fake6.frontends).find((f) => f.at === '2001:2:5::1:80')!;
  assert.ok(lb6.flags & FF.WEIR_FRONTEND_SOURCE_RANGES);
  const trie = (m: Entries) =>
    [...(m.entries() as Iterable<[{ prefixlen: number; frontend_id: number; address: string }, number]>)].map(([k]) => [k.frontend_id, k.address, k.prefixlen]);
  // the model adds the node's own address (a /128) when it lies in a range: not here
  assert.deepEqual(trie(s.fake6.sourceRanges), [[lb6.id, '2001:2:100::', 32 + 48]]);
  const lb4 = frontends(s.fake.frontends).find((f) => f.at === '198.18.5.1:80')!;
  assert.deepEqual(trie(s.fake.sourceRanges), [[lb4.id, '198.18.100.0', 32 + 24]]);
  assert.deepEqual(sourceRangeKey(7, '2001:2:100::/48', 6), { prefixlen: 80, frontend_id: 7, address: '2001:2:100::' });
  assert.equal(sourceRangeKey(7, '2001:2:100::/48', 4), null, 'a CIDR of the other family is no key of this map');
  sync.stop();
});

test('Maglev: IPv6 external frontends get their table in the one table map under their id; a restart adopts both families with zero writes', () => {
  const s = dualStackSync();
  const sync = s.make();
  sync.full('start', NODE);
  const external6 = frontends(s.fake6.frontends).filter((f) => f.flags & FF.WEIR_FRONTEND_MAGLEV);
  assert.deepEqual(external6.map((f) => f.at).sort(), ['2001:2:5::1:80', '2001:2::1:30080'], 'NodePort and LB, not the ClusterIP');
  const tableIds = [...s.maglev.keys()].map((k) => k.frontend_id).sort((a, b) => a - b);
  const wantIds = [...frontends(s.fake.frontends), ...external6].filter((f) => f.flags & FF.WEIR_FRONTEND_MAGLEV).map((f) => f.id);
  assert.deepEqual(
    tableIds,
    wantIds.sort((a, b) => a - b),
    'a table for every Maglev frontend of both families',
  );
  // the IPv6 table only names the IPv6 frontend's two slots
  const t = s.maglev.get({ frontend_id: external6[0]!.id })!;
  assert.deepEqual([...new Set(t.slots.slice(0, M))].sort(), [0, 1]);
  sync.stop();

  const again = s.make();
  assert.deepEqual(again.adopt(), { frontends: 6, backends: 12 });
  const r = again.full('start', NODE);
  assert.equal(r.writes, 0, 'adopted: no write in either family, tables included');
  again.stop();
});

test('the API server bootstrap with IPv6 addresses programs the IPv6 maps', () => {
  const store = new Store();
  for (const e of bootstrapEvents({
    service: [
      { ip: '198.19.0.1', port: 443 },
      { ip: '2001:2:ff::1', port: 443 },
    ],
    endpoints: [
      { ip: '198.18.0.10', port: 6443 },
      { ip: '2001:2::10', port: 6443 },
      { ip: '2001:2::11', port: 6443 },
    ],
  }))
    store.apply(e);
  const { fake, fake6, maps } = fakeDualStackMaps();
  const sync = new ServiceSync({ maps, inputs: store, log: memoryLogger() });
  sync.adopt();
  const { frontends: n, result } = sync.programPartial(NODE);
  assert.equal(n, 2);
  assert.equal(result.errors, 0);
  assert.deepEqual(
    frontends(fake.frontends).map((f) => `${f.at}x${f.count}`),
    ['198.19.0.1:443x1'],
  );
  assert.deepEqual(
    frontends(fake6.frontends).map((f) => `${f.at}x${f.count}`),
    ['2001:2:ff::1:443x2'],
  );
  assert.deepEqual([...fake6.backends.entries()].map(([, v]) => `${(v as { address: string; port: number }).address}:${(v as { port: number }).port}`).sort(), [
    '2001:2::10:6443',
    '2001:2::11:6443',
  ]);
  assert.equal(sync.reconciler.stats.skipped.size, 0);
  sync.stop();
});

// ---- clean-up and conntrack GC over both families -------------------------------------

const CLIENT6 = '2001:2:1::50';
const VIP6 = '2001:2:ff::10';

/** The two entries of a CLIENT6 -> VIP6:53 UDP flow DNAT'd to backend:5353 (either family's shape). */
function udpFlow6(sport: number, backend: string, frontendId: number, lastSeen = 0n, protocol = 17): Array<[WeirCt4Key, WeirCt4]> {
  const base = {
    policy: 0,
    tunnel_node: '::',
    ifindex: 0,
    frontend_id: frontendId,
    created_ns: 0n,
    packets: 1n,
    bytes: 60n,
    last_seen_ns: lastSeen,
    tcp_flags_seen: 0,
  };
  return [
    [
      { saddr: CLIENT6, daddr: VIP6, sport, dport: 53, protocol },
      { ...base, nat_saddr: CLIENT6, nat_sport: sport, nat_daddr: backend, nat_dport: 5353, flags: 2 },
    ],
    [
      { saddr: backend, daddr: CLIENT6, sport: 5353, dport: sport, protocol },
      { ...base, nat_saddr: VIP6, nat_sport: 53, nat_daddr: CLIENT6, nat_dport: sport, flags: 1 | 4 },
    ],
  ];
}

test('clean-up, IPv6: a removed UDP backend loses its weir_ct6 flows and weir_affinity6 entries, its sockets go through weir_sock_destroy6; IPv4 maps untouched', () => {
  const { fake, fake6, maps } = fakeDualStackMaps();
  const listed: string[][] = [];
  const cleanup = new BackendCleanup(maps, memoryLogger(), {
    destroySockets: () => {
      listed.push(
        [...fake6.sockDestroy.entries()].map(([k]) => `${(k as { address: string }).address}`),
        [...fake.sockDestroy.keys()].map(String),
      );
      return 1;
    },
  });
  for (const [k, v] of [...udpFlow6(4000, '2001:2:1::10', 3), ...udpFlow6(4001, '2001:2:1::11', 3)]) fake6.conntrack.set(k, v);
  fake6.affinity.set({ client: CLIENT6, frontend_id: 3 }, { backend: '2001:2:1::10', port: 5353, pad: 0, last_used_ns: 1n });
  fake6.affinity.set({ client: '2001:2:1::51', frontend_id: 3 }, { backend: '2001:2:1::11', port: 5353, pad: 0, last_used_ns: 1n });
  // an IPv4 entry under the same frontend id cannot exist (ids are unique); one of another id stays
  fake.affinity.set({ client: '198.18.1.50', frontend_id: 1 }, { backend: '198.18.1.10', port: 5353, pad: 0, last_used_ns: 1n });
  cleanup.run({ removedBackends: [{ family: 6, frontendId: 3, address: '2001:2:1::10', port: 5353, protocol: 17 }], releasedIds: [], desired: [] });
  assert.deepEqual(
    [...fake6.conntrack.keys()].map((k) => `${k.saddr}>${k.daddr}`).sort(),
    [`2001:2:1::11>${CLIENT6}`, `${CLIENT6}>${VIP6}`],
    'both entries of the removed backend flow went, the other flow stays',
  );
  assert.deepEqual(
    [...fake6.affinity.entries()].map(([, v]) => v.backend),
    ['2001:2:1::11'],
  );
  assert.deepEqual(listed, [['2001:2:1::10'], []], 'listed in weir_sock_destroy6 during the one iterator run, not in weir_sock_destroy4');
  assert.equal(fake6.sockDestroy.data.size, 0, 'the destroy list is emptied again');
  assert.equal(fake.affinity.data.size, 1);
  assert.deepEqual(
    [cleanup.stats.removedBackends, cleanup.stats.conntrackDeleted, cleanup.stats.affinityDeleted, cleanup.stats.socketDestroyRuns],
    [1, 2, 1, 1],
  );
  // a released IPv6 frontend id: its remaining affinity entries go too
  cleanup.run({ removedBackends: [], releasedIds: [3], desired: [] });
  assert.equal(fake6.affinity.data.size, 0);
  assert.equal(fake.affinity.data.size, 1);
});

test('conntrack GC: one pass over weir_ct4_v2 and weir_ct6 with the same timeouts; ICMPv6 ages as ICMP', async () => {
  const S = 1_000_000_000n;
  const now = 10_000n * S;
  const ct4 = new FakeMap<WeirCt4Key, WeirCt4>();
  const ct6 = new FakeMap<WeirCt4Key, WeirCt4>();
  const v4flow = udpFlow6(1, '2001:2:1::10', 1, now - 61n * S).map(([k, v]): [WeirCt4Key, WeirCt4] => [
    { ...k, saddr: k.saddr === CLIENT6 ? '198.18.1.50' : '198.18.1.10', daddr: k.daddr === VIP6 ? '198.19.0.10' : '198.18.1.50' },
    {
      ...v,
      nat_saddr: v.nat_saddr === CLIENT6 ? '198.18.1.50' : '198.19.0.10',
      nat_daddr: v.nat_daddr === CLIENT6 ? '198.18.1.50' : '198.18.1.10',
      tunnel_node: '0.0.0.0',
    },
  ]);
  for (const [k, v] of v4flow) ct4.set(k, v);
  for (const [k, v] of [
    ...udpFlow6(2, '2001:2:1::10', 2, now - 61n * S), // UDP idle 61 s: gone
    ...udpFlow6(3, '2001:2:1::10', 2, now - 59n * S), // UDP idle 59 s: stays
    ...udpFlow6(4, '2001:2:1::10', 2, now - 11n * S, IPPROTO.ICMPV6), // ICMPv6 idle 11 s: gone (10 s)
    ...udpFlow6(5, '2001:2:1::10', 2, now - 9n * S, IPPROTO.ICMPV6), // ICMPv6 idle 9 s: stays
  ])
    ct6.set(k, v);
  const gc = new ConntrackGc({ 4: ct4 as never, 6: ct6 as never }, memoryLogger(), { now: () => now });
  const plan = await gc.run();
  assert.equal(plan.expiredFlows, 3);
  assert.equal(ct4.data.size, 0);
  assert.deepEqual([...ct6.keys()].map((k) => (k.saddr === CLIENT6 ? k.sport : k.dport)).sort(), [3, 3, 5, 5]);
  assert.deepEqual(gc.stats, { runs: 1, scanned: 10, deleted: 6, errors: 0 });
});

test('ServiceSync, an IPv6 UDP endpoint removed: the applied plan cleans its weir_ct6 flows and weir_affinity6 entries at once', async () => {
  const store = new Store();
  const svc = dualStackLb();
  svc.spec = { ...svc.spec!, type: 'ClusterIP', ports: [{ name: 'http', port: 53, targetPort: 5353 as never, protocol: 'UDP' }], loadBalancerSourceRanges: [] };
  delete svc.status;
  put(store, 'Service', svc);
  const v6slice = (ips: string[]) => ({ ...slice('web-v6', 'IPv6', ips, 'UDP'), ports: [{ name: 'http', port: 5353, protocol: 'UDP' }] });
  put(store, 'EndpointSlice', v6slice(['2001:2:1::10', '2001:2:1::11']));
  const { fake6, maps } = fakeDualStackMaps();
  let drained: () => void = () => {};
  const sync = new ServiceSync({ maps, inputs: store, log: memoryLogger(), onDrained: () => drained() });
  sync.full('start', NODE);
  const id = frontends(fake6.frontends).find((f) => f.at === `${VIP6}:53`)!.id;
  for (const [k, v] of [...udpFlow6(4000, '2001:2:1::10', id), ...udpFlow6(4001, '2001:2:1::11', id)]) fake6.conntrack.set(k, v);
  fake6.affinity.set({ client: CLIENT6, frontend_id: id }, { backend: '2001:2:1::10', port: 5353, pad: 0, last_used_ns: 1n });
  // 2001:2:1::10 leaves the slice
  put(store, 'EndpointSlice', v6slice(['2001:2:1::11']));
  // the change is synced on a later turn (after a sync yielded, if it had to): wait for it
  const synced = new Promise<void>((r) => (drained = r));
  sync.changed({ kind: 'EndpointSlice', previous: v6slice(['2001:2:1::10', '2001:2:1::11']), current: v6slice(['2001:2:1::11']) }, Date.now());
  await synced;
  assert.equal(sync.cleanup.stats.removedBackends, 1);
  assert.deepEqual(
    [...fake6.conntrack.entries()].map(([k]) => `${k.saddr}>${k.daddr}`).sort(),
    [`2001:2:1::11>${CLIENT6}`, `${CLIENT6}>${VIP6}`],
    'the flow of the endpoint that left went; the other flow stays',
  );
  assert.equal([...fake6.conntrack.entries()].find(([k]) => k.saddr === CLIENT6)![1].nat_daddr, '2001:2:1::11');
  assert.equal(fake6.affinity.data.size, 0);
  sync.stop();
});
