// The bench report's spread (bench/report.ts): every data-plane figure is the median over rounds
// with their min–max, and a ratio carries the range its rounds allow, marked ≈ when that range
// contains 1.00× (the run cannot tell the two apart). Made-up measurements, no lab.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Measurement, RoundFigures } from '../../bench/dataplane.js';
import { markdown, svg, type RunInfo } from '../../bench/report.js';

const info: RunInfo = {
  command: 'test',
  machine: 'test',
  tools: 'test',
  started: '2026-11-30T00:00:00Z',
  seconds: 1,
  mode: 'quick',
  sizes: [1],
  durations: '5 rounds',
  pinning: 'latency loops on CPU 0',
  checks: [],
  parts: ['dataplane'],
  cpSizes: [],
  cpChanges: 0,
};

/** a contestant whose conn/s over 5 rounds are `rates` (the other figures fixed) */
function measured(contestant: Measurement['contestant'], rates: number[]): Measurement {
  const rounds: RoundFigures[] = rates.map((r) => ({ connectP50Us: 10, connectP99Us: 30, connPerSec: r, reqPerSec: 50_000, bps: 10e9 }));
  const sorted = [...rates].sort((a, b) => a - b);
  const dist = { p50_us: 10, p90_us: 20, p99_us: 30, mean_us: 12, max_us: 90 };
  return {
    contestant,
    services: 1,
    programMs: 1,
    programmed: 'x',
    crr: { mode: 'crr', count: 1, errors: 0, seconds: 1, rate: sorted[2]!, connect: dist, txn: dist },
    rr: { mode: 'rr', count: 1, errors: 0, seconds: 1, rate: 50_000, txn: dist },
    throughputBps: 10e9,
    rounds,
  };
}

const row = (md: string, section: string, vs: string) => {
  const from = md.indexOf(`### ${section}`);
  return md
    .slice(from)
    .split('\n')
    .find((l) => l.startsWith(`| 1 | ${vs} |`))!;
};

test('a 5% lead whose rounds overlap is marked ≈; one whose rounds do not is not', () => {
  const peers = ['direct', 'nftables', 'iptables-nft', 'iptables-legacy'] as const;
  const results = [
    measured('weir-tc', [20_900, 21_000, 21_100, 21_000, 20_950]),
    measured('weir-sock', [19_000, 21_000, 23_000, 21_000, 22_000]),
    ...peers.map((p) => measured(p, [19_900, 20_000, 20_100, 20_000, 19_950])),
  ];
  const md = markdown(info, results, []);
  assert.match(md, /\| weir TC path \| 10\.0 \(10\.0–10\.0\) \| .* \| 21,000 \(20,900–21,100\) \|/);
  // weir TC: 1.05× with rounds 20,900-21,100 against 19,900-20,100: apart
  assert.match(row(md, 'weir TC path', 'kube-proxy nftables'), /\| 1\.05× \(1\.04–1\.06\) \|/);
  // weir socket LB: the same median lead, rounds 19,000-23,000: not told apart
  assert.match(row(md, 'weir connect-time LB', 'kube-proxy nftables'), /\| 1\.05× \(0\.95–1\.16, ≈\) \|/);
  assert.match(md, /Pinned: latency loops on CPU 0\./);
});

test('the chart draws a min–max bar per contestant and size', () => {
  const results = [measured('weir-tc', [1, 2, 3, 4, 5]), measured('nftables', [1, 2, 3, 4, 5])];
  results[0]!.rounds![0]!.connectP50Us = 8;
  results[0]!.rounds![4]!.connectP50Us = 14;
  const chart = svg(info, results);
  // two panels (p50, p99) × two contestants
  assert.equal(chart.match(/<line x1="[\d.]+" y1="[\d.]+" x2="[\d.]+" y2="[\d.]+" stroke="#[0-9a-f]+" stroke-width="1.5" opacity="0.6"\/>/g)?.length, 4);
});
