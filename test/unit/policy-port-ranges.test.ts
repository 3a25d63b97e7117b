// Port ranges as LPM prefixes (model/policy/port-ranges.ts): every port of the range covered exactly
// once, none outside, and the known minimal counts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { portPrefixes } from '../../src/model/policy/port-ranges.js';

function covered(port: number, endPort: number): number[] {
  const hits = new Array<number>(65536).fill(0);
  for (const p of portPrefixes(port, endPort)) {
    const size = 2 ** (16 - p.prefixLen);
    assert.equal(p.port % size, 0, `block ${p.port}/${p.prefixLen} is aligned`);
    for (let i = p.port; i < p.port + size; i++) hits[i]!++;
  }
  return hits;
}

test('portPrefixes: exact cover of the range, nothing outside', () => {
  const ranges: [number, number][] = [
    [0, 65535],
    [1, 65535],
    [80, 80],
    [80, 81],
    [79, 80],
    [1000, 2047],
    [1024, 2047],
    [32000, 32768],
    [65535, 65535],
    [0, 0],
    [3, 65534],
  ];
  for (const [lo, hi] of ranges) {
    const hits = covered(lo, hi);
    for (let i = 0; i < 65536; i++) assert.equal(hits[i], i >= lo && i <= hi ? 1 : 0, `[${lo}, ${hi}] port ${i}`);
  }
});

test('portPrefixes: minimal counts', () => {
  assert.deepEqual(portPrefixes(0, 65535), [{ port: 0, prefixLen: 0 }]);
  assert.deepEqual(portPrefixes(80, 81), [{ port: 80, prefixLen: 15 }]);
  assert.deepEqual(portPrefixes(79, 80), [
    { port: 79, prefixLen: 16 },
    { port: 80, prefixLen: 16 },
  ]);
  assert.equal(portPrefixes(1, 65535).length, 16);
  assert.equal(portPrefixes(1024, 2047).length, 1);
  // the docs' example range 32000-32768: 32000-32255 (0x7d00/8), 32256-32767 (0x7e00/7), 32768
  assert.deepEqual(portPrefixes(32000, 32768), [
    { port: 32000, prefixLen: 8 },
    { port: 32256, prefixLen: 7 },
    { port: 32768, prefixLen: 16 },
  ]);
});
