// The frontend id allocator (src/dataplane/frontend-ids.ts): lowest free id first, adoption
// in any order, release and reuse; and its cost, counted in elementary steps rather than
// timed: adopting n ids in random order (a map dump's order) stays linear in n.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdAllocator } from '../../src/dataplane/frontend-ids.js';

/** A seeded shuffle: the same order every run. */
function shuffled(n: number, seed = 7): number[] {
  const a = Array.from({ length: n }, (_, i) => i + 1);
  let s = seed;
  for (let i = n - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

test('ids: lowest free first; a released id is reused before a new one', () => {
  const ids = new IdAllocator();
  assert.deepEqual([ids.allocate(), ids.allocate(), ids.allocate(), ids.allocate()], [1, 2, 3, 4]);
  ids.release(3);
  ids.release(2);
  ids.release(2); // twice: no effect
  assert.deepEqual([ids.allocate(), ids.allocate(), ids.allocate()], [2, 3, 5]);
  assert.equal(ids.size, 5);
});

test('ids: adopted ids stay taken; the gaps between them are handed out lowest first', () => {
  const ids = new IdAllocator();
  for (const id of [7, 3, 5]) ids.adopt(id);
  assert.deepEqual(
    Array.from({ length: 6 }, () => ids.allocate()),
    [1, 2, 4, 6, 8, 9],
  );
  // adopting an id that was released (a resync finds it in the maps again) takes it back
  ids.release(2);
  ids.adopt(2);
  ids.release(4);
  assert.equal(ids.allocate(), 4);
  assert.equal(ids.allocate(), 10);
  assert.ok([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].every((i) => ids.isUsed(i)));
});

test('ids: adopting 60,000 ids in random order, then filling 1,000 holes, takes linear steps', () => {
  const n = 60_000;
  const order = shuffled(n);
  const holes = new Set(order.slice(0, 1000));
  const ids = new IdAllocator();
  for (const id of order) if (!holes.has(id)) ids.adopt(id);
  const adoptSteps = ids.steps;
  const got = Array.from({ length: holes.size }, () => ids.allocate());
  assert.deepEqual(
    got,
    [...holes].sort((a, b) => a - b),
    'the holes, lowest first',
  );
  assert.equal(ids.allocate(), n + 1);
  console.log(`adopt: ${adoptSteps} steps for ${n - holes.size} ids; fill: ${ids.steps - adoptSteps} steps for ${holes.size} holes`);
  // a quadratic adopt (one pass over the free list per id) takes ~n²/4 ≈ 9e8 steps
  assert.ok(adoptSteps <= 2 * n, `adopt steps ${adoptSteps}`);
  assert.ok(ids.steps <= 4 * n, `total steps ${ids.steps}`);
});

test('ids: releasing and reallocating low ids in a large table costs log steps, not a scan', () => {
  const ids = new IdAllocator();
  const n = 60_000;
  for (let i = 0; i < n; i++) ids.allocate();
  const before = ids.steps;
  for (let round = 0; round < 1000; round++) {
    const id = 1 + ((round * 7919) % n);
    ids.release(id);
    assert.equal(ids.allocate(), id);
  }
  const per = (ids.steps - before) / 1000;
  console.log(`release + allocate: ${per} steps each with ${n} ids in use`);
  assert.ok(per <= 40, `steps per release+allocate: ${per}`);
});
