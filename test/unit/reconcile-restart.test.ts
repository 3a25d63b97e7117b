// The reconciler after a restart and under refused writes, over in-memory maps (the same on
// real maps: test/bpf/reconcile-full-maps.test.ts): the start sync (setAll) deletes adopted
// entries the source no longer has; a resync counts as repairs only the writes that succeeded.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Reconciler } from '../../src/dataplane/reconcile.js';
import { memoryLogger } from '../../src/log.js';
import { bulkFrontend } from '../lib/frontend-fixtures.js';
import { fakeMaps } from './fake-maps.js';

const addressOf = (k: unknown) => (k as { address: string }).address;

test('start sync after adoption: a frontend the source no longer has leaves the maps (frontend and slots), the others stay untouched', () => {
  const { fake, maps } = fakeMaps();
  const [keep, gone] = [bulkFrontend(1, 2), bulkFrontend(2, 3)];
  const before = new Reconciler(maps, memoryLogger());
  before.setAll([keep, gone]);
  before.sync();
  assert.equal(fake.frontends.data.size, 2);
  assert.equal(fake.backends.data.size, 5);
  // a restart: `gone` was deleted while no daemon ran
  const after = new Reconciler(maps, memoryLogger());
  assert.deepEqual(after.adopt(), { frontends: 2, backends: 5 });
  after.setAll([keep]);
  const r = after.sync();
  assert.deepEqual([...fake.frontends.keys()].map(addressOf), [keep.address], 'the deleted Service is gone right after start');
  assert.equal(fake.backends.data.size, 2, 'its slots too');
  assert.equal(r.writes, 4, 'one frontend and three slots deleted, nothing else');
  assert.equal(after.sync().writes, 0);
});

test('resync: only the writes that succeeded are repairs', () => {
  const { fake, maps } = fakeMaps();
  const [a, b, c] = [bulkFrontend(1, 1), bulkFrontend(2, 1), bulkFrontend(3, 1)];
  const r = new Reconciler(maps, memoryLogger());
  r.setAll([a, b]);
  r.sync();
  // drift: a's entry deleted behind our back; c wanted but its frontend entry refused
  fake.frontends.delete([...fake.frontends.keys()].find((k) => addressOf(k) === a.address)!);
  fake.frontends.failOn = (k) => addressOf(k) === c.address;
  r.update([c], []);
  const s = r.sync();
  assert.equal(s.errors, 1);
  assert.equal(s.writes, 0, "c's slot was written and deleted again: nothing changed");
  const repairsBefore = r.stats.repairs;
  const rs = r.resync();
  assert.equal(rs.errors, 1, 'c refused again');
  assert.equal(rs.writes, 1, 'a rewritten: the one write that took');
  assert.equal(r.stats.repairs - repairsBefore, 1);
  assert.deepEqual([...fake.frontends.keys()].map(addressOf).sort(), [a.address, b.address]);
  assert.equal(fake.backends.data.size, 2, 'no slot left for the refused frontend');
});
