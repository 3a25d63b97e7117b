// Dual-stack services through the one planner and the one id allocator
// (src/dataplane/frontend-plan.ts, frontend-ids.ts): frontend ids unique across IPv4 and
// IPv6, each family's writes in its own part of the plan, and a reconciler that applies only
// the families it has maps for (pins of a release without the IPv6 maps: counted as skipped).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { frontendEntries, type DesiredFrontend } from '../../src/dataplane/frontend-entries.js';
import { IdAllocator } from '../../src/dataplane/frontend-ids.js';
import { applyToLive, emptyLive, planSize, planSync } from '../../src/dataplane/frontend-plan.js';
import { Reconciler, type FamilyMaps } from '../../src/dataplane/reconcile.js';
import type { Backend, Frontend } from '../../src/model/service-types.js';
import { memoryLogger } from '../../src/log.js';
import { FakeMap, fakeMaps } from './fake-maps.js';

const be = (address: string, port = 8080): Backend => ({
  address,
  port,
  nodeName: 'node-a',
  isLocal: true,
  ready: true,
  serving: true,
  terminating: false,
  zone: '',
});

/** One port of a dual-stack ClusterIP service: its IPv4 and its IPv6 frontend. */
function dualStack(name: string, v4: string, v6: string, backends4: Backend[], backends6: Backend[]): Frontend[] {
  const base = {
    serviceKey: `default/${name}`,
    portName: 'http',
    servicePortKey: `default/${name}:http/TCP`,
    kind: 'ClusterIP',
    port: 80,
    protocol: 'TCP',
  } as const;
  const rest = { establishedOnly: [], localOnly: false, affinity: null, sourceRanges: null, lbAlgorithm: null };
  return [
    { ...base, ...rest, id: `${v4}:80/TCP`, family: 4, address: v4, backends: backends4, inClusterBackends: backends4, reject: backends4.length === 0 },
    { ...base, ...rest, id: `[${v6}]:80/TCP`, family: 6, address: v6, backends: backends6, inClusterBackends: backends6, reject: backends6.length === 0 },
  ];
}

function desiredOf(fs: Frontend[]): Map<string, DesiredFrontend> {
  const m = new Map<string, DesiredFrontend>();
  for (const f of fs) for (const d of frontendEntries(f) as DesiredFrontend[]) m.set(d.keyString, d);
  return m;
}

const WEB = dualStack('web', '198.19.0.10', '2001:2::10', [be('198.18.1.10'), be('198.18.1.11')], [be('2001:2:1::10'), be('2001:2:1::11')]);
const DNS = dualStack('dns', '198.19.0.11', '2001:2::11', [be('198.18.1.12', 53)], [be('2001:2:1::12', 53)]);

test('frontendEntries: an IPv6 frontend becomes IPv6 entries, canonical, bracketed key; backends of the other family are dropped', () => {
  const [, v6] = dualStack('web', '198.19.0.10', '2001:0002::0010', [], [be('2001:2:1:0::10'), be('198.18.1.10')]);
  const [e] = frontendEntries({ ...v6!, reject: false }) as DesiredFrontend[];
  assert.equal(e!.family, 6);
  assert.equal(e!.key.address, '2001:2::10');
  assert.equal(e!.keyString, '[2001:2::10]:80/6/0');
  assert.deepEqual(
    e!.backends.map((b) => b.address),
    ['2001:2:1::10'],
  );
});

test('planSync, dual-stack: each family in its own part; ids from one allocator, unique across families; planned again: nothing', () => {
  const ids = new IdAllocator();
  const live = emptyLive();
  const desired = desiredOf([...WEB, ...DNS]);
  const p = planSync(desired, live, ids);
  assert.deepEqual(
    p[4].frontendWrites.map(([k]) => k.address),
    ['198.19.0.10', '198.19.0.11'],
  );
  assert.deepEqual(
    p[6].frontendWrites.map(([k]) => k.address),
    ['2001:2::10', '2001:2::11'],
  );
  assert.deepEqual(
    p[6].backendWrites.map(([k, v]) => [k.slot, v.address]),
    [
      [0, '2001:2:1::10'],
      [1, '2001:2:1::11'],
      [0, '2001:2:1::12'],
    ],
  );
  const v4Ids = p[4].frontendWrites.map(([, v]) => v.id);
  const v6Ids = p[6].frontendWrites.map(([, v]) => v.id);
  assert.deepEqual([...v4Ids, ...v6Ids].sort(), [1, 2, 3, 4], 'four frontends, four distinct ids');
  // each family's backend slots are keyed by that family's frontend ids
  assert.deepEqual([...new Set(p[6].backendWrites.map(([k]) => k.frontend_id))].sort(), [...v6Ids].sort());
  assert.equal(planSize(p), 4 + 3 + 3);
  applyToLive(live, p);
  assert.equal(live[6].frontends.size, 2);
  assert.equal(planSize(planSync(desired, live, ids)), 0);
});

test('planSync, dual-stack: an IPv6 frontend removed deletes from the IPv6 part only; its id is released and its endpoints reported', () => {
  const ids = new IdAllocator();
  const live = emptyLive();
  const all = desiredOf([...WEB, ...DNS]);
  applyToLive(live, planSync(all, live, ids));
  const webV6Id = live[6].frontends.get('[2001:2::10]:80/6/0')!.value.id;
  const p = planSync(desiredOf([...WEB.slice(0, 1), ...DNS]), live, ids, { previous: all });
  assert.equal(
    planSize({
      ...p,
      6: { frontendDeletes: [], removedSlots: [], backendWrites: [], frontendWrites: [], backendDeletes: [], rangeWrites: [], rangeDeletes: [] },
    }),
    0,
    'nothing for IPv4',
  );
  assert.deepEqual(
    p[6].frontendDeletes.map((k) => k.address),
    ['2001:2::10'],
  );
  assert.deepEqual(
    p[6].removedSlots.map((k) => [k.frontend_id, k.slot]),
    [
      [webV6Id, 0],
      [webV6Id, 1],
    ],
  );
  assert.deepEqual(p.releasedIds, [webV6Id]);
  assert.deepEqual(
    p.removedBackends.map((r) => [r.family, r.address]),
    [
      [6, '2001:2:1::10'],
      [6, '2001:2:1::11'],
    ],
  );
});

test('planSync, dual-stack: a preferred id taken by the other family is not reused', () => {
  const ids = new IdAllocator();
  const live = emptyLive();
  applyToLive(live, planSync(desiredOf(WEB), live, ids));
  const v4Id = live[4].frontends.get('198.19.0.10:80/6/0')!.value.id;
  // the IPv6 frontend vanished from the maps; resync would prefer the IPv4 frontend's id for it (a corrupt hint)
  live[6].frontends.clear();
  const p = planSync(desiredOf(WEB), live, ids, { preferredIds: new Map([['[2001:2::10]:80/6/0', v4Id]]) });
  assert.equal(p[6].frontendWrites.length, 1);
  assert.notEqual(p[6].frontendWrites[0]![1].id, v4Id);
});

test('Reconciler without IPv6 maps: dual-stack services write IPv4 only, IPv6 counted as skipped; ids stay dense; resync repairs nothing', () => {
  const { fake, maps } = fakeMaps();
  const r = new Reconciler(maps, memoryLogger());
  r.setAll([...WEB, ...DNS]);
  const s = r.sync();
  assert.equal(s.writes, 2 + 3, 'two IPv4 frontends and their three slots');
  assert.equal(s.frontends, 2);
  assert.deepEqual([...fake.frontends.entries()].map(([k]) => (k as { address: string }).address).sort(), ['198.19.0.10', '198.19.0.11']);
  assert.deepEqual([...fake.frontends.entries()].map(([, v]) => (v as { id: number }).id).sort(), [1, 2]);
  assert.deepEqual([...r.stats.skipped], [['ipv6', 2]]);
  assert.equal(r.resync().writes, 0, 'the unapplied family is no drift');
  // the ids the IPv6 frontends were planned with went back: a new IPv4 frontend gets 3
  r.update(dualStack('api', '198.19.0.12', '2001:2::12', [be('198.18.1.13')], [be('2001:2:1::13')]), []);
  assert.equal(r.sync().writes, 2);
  assert.deepEqual([...fake.frontends.entries()].map(([, v]) => (v as { id: number }).id).sort(), [1, 2, 3]);
});

test('Reconciler with IPv6 maps: each family to its own maps, ids unique across them; a restart adopts both with zero writes', () => {
  const { fake, maps } = fakeMaps();
  const v6 = { frontends: new FakeMap(), backends: new FakeMap() };
  const ipv6 = v6 as unknown as FamilyMaps;
  const r = new Reconciler(maps, memoryLogger(), { ipv6 });
  r.setAll([...WEB, ...DNS]);
  assert.equal(r.sync().writes, 10);
  assert.deepEqual([...v6.frontends.entries()].map(([k]) => (k as { address: string }).address).sort(), ['2001:2::10', '2001:2::11']);
  const idsOf = (m: FakeMap<unknown, unknown>) => [...m.entries()].map(([, v]) => (v as { id: number }).id);
  assert.deepEqual([...idsOf(fake.frontends), ...idsOf(v6.frontends)].sort(), [1, 2, 3, 4]);
  assert.deepEqual(r.stats.skipped.size, 0);
  const r2 = new Reconciler(maps, memoryLogger(), { ipv6 });
  assert.deepEqual(r2.adopt(), { frontends: 4, backends: 6 });
  r2.setAll([...WEB, ...DNS]);
  assert.equal(r2.sync().writes, 0);
  // a new frontend after adoption does not collide with either family's ids
  r2.update(dualStack('api', '198.19.0.12', '2001:2::12', [be('198.18.1.13')], [be('2001:2:1::13')]), []);
  r2.sync();
  assert.deepEqual([...idsOf(fake.frontends), ...idsOf(v6.frontends)].sort(), [1, 2, 3, 4, 5, 6]);
});
