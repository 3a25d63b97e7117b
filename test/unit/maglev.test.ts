// dataplane/maglev.ts: the table is a pure function of the backend identities (same input,
// any order -> same table), spreads entries evenly, and moves few flows when a backend goes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPrime, maglevTable, tableSizeProblem } from '../../src/dataplane/maglev.js';

const M = 16381;
const four = ['198.18.2.20:8080', '198.18.2.21:8080', '198.18.2.22:8080', '198.18.2.23:8080'];

/** entry -> identity */
function named(ids: readonly string[], m = M): string[] {
  return Array.from(maglevTable(ids, m), (i) => ids[i]!);
}

test('deterministic: the same identities in any order give the same table', () => {
  const a = named(four);
  const b = named([...four].reverse());
  assert.deepEqual(a, b);
  assert.deepEqual(named(four), a);
  assert.equal(a.length, M);
});

test('near-even spread: each backend holds M/N entries within 1%', () => {
  for (const n of [2, 3, 4, 7, 10, 50]) {
    const ids = Array.from({ length: n }, (_, i) => `198.18.${2 + (i >> 8)}.${i & 255}:80`);
    const counts = new Map<string, number>();
    for (const id of named(ids)) counts.set(id, (counts.get(id) ?? 0) + 1);
    assert.equal(counts.size, n);
    for (const [id, c] of counts) assert.ok(Math.abs(c - M / n) <= Math.max(1, 0.01 * (M / n)), `${n} backends: ${id} holds ${c}, want about ${M / n}`);
  }
});

test("minimal disruption: removing 1 of 4 keeps >= 80% (in fact about all) of the other backends' entries", () => {
  const before = named(four);
  const after = named(four.filter((id) => id !== four[2]));
  let kept = 0;
  let others = 0;
  for (let i = 0; i < M; i++) {
    if (before[i] === four[2]) continue;
    others++;
    if (after[i] === before[i]) kept++;
  }
  const share = kept / others;
  console.log(`remove 1 of 4 (M=${M}): ${((1 - share) * 100).toFixed(2)}% of the remaining backends' entries moved`);
  assert.ok(share >= 0.8, `only ${(share * 100).toFixed(1)}% kept`);
  // every entry of the removed backend went to one of the others
  assert.ok(after.every((id) => id !== four[2]));
});

test('adding a 5th backend moves about 1/5 of the entries', () => {
  const before = named(four);
  const after = named([...four, '198.18.2.24:8080']);
  const moved = before.filter((id, i) => after[i] !== id).length / M;
  console.log(`add a 5th backend: ${(moved * 100).toFixed(2)}% of entries moved`);
  assert.ok(moved < 0.25, `${(moved * 100).toFixed(1)}% moved`);
});

test('table sizes: primes in range only; an empty backend list gives an empty table', () => {
  assert.equal(tableSizeProblem(16381), null);
  assert.equal(tableSizeProblem(251), null);
  assert.match(tableSizeProblem(16384)!, /prime|range|integer/);
  assert.match(tableSizeProblem(16383)!, /integer in/); // above the map's array
  assert.match(tableSizeProblem(1000)!, /prime/);
  assert.match(tableSizeProblem(7)!, /integer in/);
  assert.ok(isPrime(65521) && !isPrime(65535));
  assert.equal(maglevTable([], M).length, 0);
});
