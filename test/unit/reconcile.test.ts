// The reconciler and its planning (src/dataplane/frontend-entries.ts, frontend-plan.ts,
// reconcile.ts) over in-memory maps: least writes, safe ordering, adoption with zero writes,
// drift repair counted, cleanup of removed endpoints (backend-cleanup.ts, fed by the applied
// plan), and a failing map op that is logged and retried, not fatal.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WeirCt4, WeirCt4Key } from '../../src/bpf/index.js';
import { enums } from '../../src/bpf/index.js';
import { BackendCleanup } from '../../src/dataplane/backend-cleanup.js';
import { frontendEntries, type DesiredFrontend } from '../../src/dataplane/frontend-entries.js';
import { IdAllocator } from '../../src/dataplane/frontend-ids.js';
import { applyToLive, assignSlots, emptyLive, planSize, planSync } from '../../src/dataplane/frontend-plan.js';
import { Reconciler } from '../../src/dataplane/reconcile.js';
import type { Backend, Frontend } from '../../src/model/service-types.js';
import { memoryLogger } from '../../src/log.js';
import { fakeMaps } from './fake-maps.js';

const be = (address: string, port = 8080, extra: Partial<Backend> = {}): Backend => ({
  address,
  port,
  nodeName: 'node-a',
  isLocal: true,
  ready: true,
  serving: true,
  terminating: false,
  zone: '',
  ...extra,
});

function fe(address: string, port: number, backends: Backend[], extra: Partial<Frontend> = {}): Frontend {
  const protocol = extra.protocol ?? 'TCP';
  return {
    id: `${address}:${port}/${protocol}`,
    serviceKey: 'default/web',
    portName: 'http',
    servicePortKey: 'default/web:http/TCP',
    kind: 'ClusterIP',
    family: 4,
    address,
    port,
    protocol,
    backends,
    inClusterBackends: backends,
    establishedOnly: [],
    localOnly: false,
    reject: backends.length === 0,
    affinity: null,
    sourceRanges: null,
    lbAlgorithm: null,
    ...extra,
  };
}

function desiredOf(...fs: Frontend[]): Map<string, DesiredFrontend> {
  const m = new Map<string, DesiredFrontend>();
  for (const f of fs) for (const d of frontendEntries(f) as DesiredFrontend[]) m.set(d.keyString, d);
  return m;
}

const A = '198.18.1.10';
const B = '198.18.1.11';
const C = '198.18.1.12';

test('planSync from empty: slots before the frontend, ids from 1; the same state again plans nothing', () => {
  const ids = new IdAllocator();
  const live = emptyLive();
  const desired = desiredOf(fe('198.19.0.10', 80, [be(A), be(B)]));
  const p = planSync(desired, live, ids);
  assert.deepEqual(
    p[4].backendWrites.map(([k, v]) => [k.frontend_id, k.slot, v.address]),
    [
      [1, 0, A],
      [1, 1, B],
    ],
  );
  assert.deepEqual(
    p[4].frontendWrites.map(([k, v]) => [k.address, k.port, k.protocol, v.id, v.backend_count]),
    [['198.19.0.10', 80, 6, 1, 2]],
  );
  assert.equal(planSize(p), 3);
  // apply and plan again: nothing
  applyToLive(live, p);
  assert.equal(planSize(planSync(desired, live, ids)), 0);
});

test('planSync shrink: replacement slot first, count next, the top slot deleted last; the endpoint that left is reported', () => {
  const ids = new IdAllocator();
  const live = emptyLive();
  applyToLive(live, planSync(desiredOf(fe('198.19.0.10', 80, [be(A), be(B), be(C)])), live, ids));
  const p = planSync(desiredOf(fe('198.19.0.10', 80, [be(B), be(C)])), live, ids, { previous: desiredOf(fe('198.19.0.10', 80, [be(A), be(B), be(C)])) });
  // only slots 0..1 remain: B keeps slot 1, C moves into A's slot 0
  assert.deepEqual(
    p[4].backendWrites.map(([k, v]) => [k.slot, v.address]),
    [[0, C]],
  );
  assert.deepEqual(
    p[4].frontendWrites.map(([, v]) => v.backend_count),
    [2],
  );
  assert.deepEqual(
    p[4].backendDeletes.map((k) => k.slot),
    [2],
  );
  assert.deepEqual(
    p.removedBackends.map((r) => r.address),
    [A],
  );
});

test('assignSlots keeps every backend that stays in its slot', () => {
  const live = new Map([
    [0, { address: A, port: 1, flags: 0, pad: 0 }],
    [1, { address: B, port: 1, flags: 0, pad: 0 }],
  ]);
  const out = assignSlots(live, [
    { address: C, port: 1, flags: 0, pad: 0 },
    { address: B, port: 1, flags: 0, pad: 0 },
  ]);
  assert.deepEqual(
    out.map((b) => b.address),
    [C, B],
  );
});

test('frontendEntries: a NodePort with eTP=Local gets INTERNAL and EXTERNAL entries; bad input is a skip reason', () => {
  const local = be(A);
  const remote = be(B, 8080, { isLocal: false, nodeName: 'node-b' });
  const f = fe('198.18.0.1', 30080, [local], { kind: 'NodePort', localOnly: true, inClusterBackends: [local, remote] });
  const e = frontendEntries(f) as DesiredFrontend[];
  assert.deepEqual(
    e.map((d) => [d.key.scope, d.backends.map((b) => b.address)]),
    [
      [0, [A, B]],
      [1, [A]],
    ],
  );
  assert.equal(frontendEntries(fe('198.19.0.10', 0, [be(A)])), 'bad_port');
  assert.equal(frontendEntries(fe('not-an-ip', 80, [be(A)])), 'bad_address');
  assert.equal(frontendEntries({ ...fe('2001:2::1', 80, [be(A)]), family: 4 }), 'bad_address', 'an IPv6 address is not an IPv4 frontend');
});

test('Reconciler: first sync writes, a restart on the same maps adopts them and writes 0', () => {
  const { fake, maps } = fakeMaps();
  const state = [fe('198.19.0.10', 80, [be(A), be(B)]), fe('198.19.0.11', 53, [be(C, 5353)], { protocol: 'UDP' })];
  const r1 = new Reconciler(maps, memoryLogger());
  r1.setAll(state);
  assert.equal(r1.sync().writes, 5);
  const opsAfterFirst = fake.frontends.ops + fake.backends.ops;
  const r2 = new Reconciler(maps, memoryLogger());
  assert.deepEqual(r2.adopt(), { frontends: 2, backends: 3 });
  r2.setAll(state);
  const s = r2.sync();
  assert.equal(s.writes, 0);
  assert.equal(fake.frontends.ops + fake.backends.ops, opsAfterFirst, 'no map op at all');
  // a change after adoption reuses the adopted ids
  r2.update([fe('198.19.0.10', 80, [be(A), be(B), be(C)])], []);
  assert.equal(r2.sync().writes, 2); // slot 2 + the count
  assert.deepEqual([...fake.backends.entries()].map(([k]) => (k as { frontend_id: number }).frontend_id).sort(), [1, 1, 1, 2]);
});

test('Reconciler.resync repairs drift and counts it; a deleted frontend gets its old id back', () => {
  const { fake, maps } = fakeMaps();
  const r = new Reconciler(maps, memoryLogger());
  r.setAll([fe('198.19.0.10', 80, [be(A), be(B)])]);
  r.sync();
  assert.equal(r.resync().writes, 0);
  const [[key]] = [...fake.frontends.data.values()];
  fake.frontends.delete(key);
  fake.backends.set({ frontend_id: 99, slot: 0 }, { address: C, port: 1, flags: 0, pad: 0 }); // an orphan slot
  const s = r.resync();
  assert.equal(s.writes, 2, 'the frontend rewritten, the orphan deleted');
  assert.equal(r.stats.repairs, 2);
  assert.equal((fake.frontends.get(key) as { id: number }).id, 1);
});

test('Reconciler: a removed UDP endpoint loses its affinity and conntrack entries at once; sockets are destroyed', () => {
  const { fake, maps } = fakeMaps();
  let destroyRuns = 0;
  const peersSeen: string[] = [];
  const cleanup = new BackendCleanup(maps, memoryLogger(), {
    destroySockets: () => {
      destroyRuns++;
      for (const [k] of fake.sockDestroy.entries()) peersSeen.push(`${(k as { address: string }).address}:${(k as { port: number }).port}`);
      return 3;
    },
  });
  const r = new Reconciler(maps, memoryLogger(), { onApplied: (removed) => cleanup.run(removed) });
  r.setAll([fe('198.19.0.10', 53, [be(A, 5353), be(B, 5353)], { protocol: 'UDP', affinity: { timeoutSeconds: 60 } })]);
  r.sync();
  const ct = (saddr: string, daddr: string, sport: number, dport: number, v: Partial<WeirCt4>): [WeirCt4Key, WeirCt4] => [
    { saddr, daddr, sport, dport, protocol: 17 },
    {
      nat_saddr: '0.0.0.0',
      nat_daddr: '0.0.0.0',
      nat_sport: 0,
      nat_dport: 0,
      flags: 0,
      tcp_flags_seen: 0,
      policy: 0,
      frontend_id: 1,
      tunnel_node: '0.0.0.0',
      ifindex: 0,
      created_ns: 0n,
      last_seen_ns: 0n,
      packets: 0n,
      bytes: 0n,
      ...v,
    },
  ];
  const client = '198.18.1.50';
  // the flow to A: original direction (DNAT) and reply direction (reverse NAT), and one to B
  for (const [k, v] of [
    ct(client, '198.19.0.10', 4000, 53, { nat_saddr: client, nat_sport: 4000, nat_daddr: A, nat_dport: 5353, flags: 2 }),
    ct(A, client, 5353, 4000, { nat_saddr: '198.19.0.10', nat_sport: 53, nat_daddr: client, nat_dport: 4000, flags: 1 | 4 }),
    ct(client, '198.19.0.10', 4001, 53, { nat_saddr: client, nat_sport: 4001, nat_daddr: B, nat_dport: 5353, flags: 2 }),
  ])
    fake.conntrack.set(k, v);
  fake.affinity.set({ client, frontend_id: 1 }, { backend: A, port: 5353, pad: 0, last_used_ns: 1n });
  fake.affinity.set({ client: '198.18.1.51', frontend_id: 1 }, { backend: B, port: 5353, pad: 0, last_used_ns: 1n });

  r.update([fe('198.19.0.10', 53, [be(B, 5353)], { protocol: 'UDP', affinity: { timeoutSeconds: 60 } })], []);
  const s = r.sync();
  assert.equal(s.removedBackends, 1);
  assert.equal(fake.conntrack.data.size, 1, 'only the flow to B is left');
  assert.deepEqual(
    [...fake.affinity.entries()].map(([, v]) => v.backend),
    [B],
  );
  assert.equal(destroyRuns, 1);
  assert.deepEqual(peersSeen, [`${A}:5353`]);
  assert.equal(fake.sockDestroy.data.size, 0, 'the destroy list is emptied again');
  assert.deepEqual([cleanup.stats.conntrackDeleted, cleanup.stats.affinityDeleted], [2, 1]);
});

test('Reconciler: a refused entry is logged once (the services), counted, not left half-written; the next sync with room retries', () => {
  const { fake, maps } = fakeMaps();
  const log = memoryLogger();
  const r = new Reconciler(maps, log);
  fake.frontends.failOn = (k) => (k as { address: string }).address === '198.19.0.11';
  r.setAll([fe('198.19.0.10', 80, [be(A)]), fe('198.19.0.11', 80, [be(B)]), fe('198.19.0.12', 80, [be(C)])]);
  const s = r.sync();
  assert.equal(s.errors, 1);
  assert.equal(r.stats.errors, 1);
  assert.equal(log.lines.filter((l) => /services not programmed services=1 entries=1 maps=:write_failed/.test(l)).length, 1, log.lines.join('\n'));
  assert.deepEqual([...fake.frontends.entries()].map(([k]) => (k as { address: string }).address).sort(), ['198.19.0.10', '198.19.0.12']);
  fake.frontends.failOn = undefined;
  const again = r.sync();
  assert.equal(again.errors, 0);
  assert.equal(fake.frontends.data.size, 3);
  // nothing left over: the slot written for the refused frontend was deleted again
  assert.equal(r.resync().writes, 0);
});

test('Reconciler: loadBalancerSourceRanges become weir_lb_src4 prefixes under each entry id, with the least writes', () => {
  const { fake, maps } = fakeMaps();
  const FF_RANGES = enums.weir_frontend_flags.WEIR_FRONTEND_SOURCE_RANGES;
  const lb = (ranges: string[] | null, extra: Partial<Frontend> = {}) =>
    fe('198.19.1.1', 80, [be(A)], { kind: 'LoadBalancer', sourceRanges: ranges, servicePortKey: 'default/lb:http/TCP', serviceKey: 'default/lb', ...extra });
  const trie = () => [...fake.sourceRanges.entries()].map(([k]) => `${k.frontend_id}:${k.address}/${k.prefixlen - 32}`).sort();
  const flags = () => [...fake.frontends.entries()].map(([, v]) => ((v as { flags: number }).flags & FF_RANGES) !== 0);
  const r = new Reconciler(maps, memoryLogger());
  r.setAll([lb(['198.18.100.4/30', '198.18.101.7/32'])]);
  assert.equal(r.sync().writes, 4); // slot, two prefixes, the frontend
  assert.deepEqual(trie(), ['1:198.18.100.4/30', '1:198.18.101.7/32']);
  assert.deepEqual(flags(), [true]);
  // one range swapped: one add, one delete, nothing else
  r.update([lb(['198.18.100.4/30', '198.18.101.8/32'])], []);
  assert.equal(r.sync().writes, 2);
  assert.deepEqual(trie(), ['1:198.18.100.4/30', '1:198.18.101.8/32']);
  // eTP=Local: the EXTERNAL entry has its own id and its own copy of the prefixes
  r.update([lb(['198.18.100.4/30'], { localOnly: true })], []);
  r.sync();
  assert.deepEqual(trie(), ['1:198.18.100.4/30', '2:198.18.100.4/30']);
  assert.deepEqual(flags(), [true, true]);
  // a restart adopts the trie too: no write
  const r2 = new Reconciler(maps, memoryLogger());
  r2.adopt();
  r2.setAll([lb(['198.18.100.4/30'], { localOnly: true })]);
  assert.equal(r2.sync().writes, 0);
  // ranges gone: the flag is cleared and the prefixes deleted
  r2.update([lb(null, { localOnly: true })], []);
  assert.equal(r2.sync().writes, 4); // two frontends, two prefixes
  assert.deepEqual(trie(), []);
  assert.deepEqual(flags(), [false, false]);
  // a stray prefix under an unused id is removed by the resync, as a repair
  fake.sourceRanges.set({ prefixlen: 56, frontend_id: 99, address: '198.18.9.0' }, 1);
  assert.equal(r2.resync().writes, 1);
  assert.deepEqual(trie(), []);
  // the frontend removed with its prefixes
  r2.update([lb(['198.18.100.4/30'])], []);
  r2.sync();
  r2.update([], [lb(null).id]);
  r2.sync();
  assert.deepEqual(trie(), []);
  assert.equal(fake.frontends.data.size, 0);
});
