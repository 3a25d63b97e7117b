// Issue 16, "Chaos under load" (must-show 1), the short variant of `make chaos` (bench/chaos.ts):
// two lab nodes fed by the fake API server (test/lib/chaos-lab.ts), a new connection every 100 ms
// on each of ten paths (ClusterIP from a pod on each node through the socket LB, NodePorts local
// and forwarded in tunnel and DSR mode from external clients, one per frontend, an allowed pod
// pair across nodes, and three pairs the NetworkPolicy denies) and four long-lived streams, while
// weir on both nodes is killed with kill -9 and restarted 5 times, stopped while endpoints and
// policies change and restarted, and the API server restarts and drops every watch. No
// connection fails, no denied connection gets through, no stream loses a line or waits a second;
// after the stop both nodes' maps match the API server and the renamed policy selects the backends.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runChaos, type ChaosFigures } from '../lib/chaos-campaign.js';
import { chaosLab, type ChaosLab } from '../lib/chaos-lab.js';
import { runCleanups } from '../lib/cleanup.js';

describe('chaos under load (short): kill -9 of both nodes, stop with changes, API server restarts', () => {
  let c: ChaosLab;
  before(async () => {
    c = await chaosLab('chaos');
  });
  after(async () => {
    await c?.lab.destroy();
    await runCleanups();
  });

  test('0 failed connections, 0 policy violations, no stream gap of 1 s, maps converge after each fault', async () => {
    const f: ChaosFigures = await runChaos(c, { rounds: 5, stoppedRounds: 1, apiFaults: 2, log: (l) => console.log(`# ${l}`) });
    for (const p of f.paths)
      console.log(`# ${p.name}: ${p.attempts} connections, ${p.expect === 'allow' ? `${p.failed} failed, ${p.slow} over 1 s` : `${p.violations} got through`}`);
    for (const s of f.streams) console.log(`# ${s.name}: ${s.received}/${s.sent} lines, longest gap ${s.maxGapMs} ms${s.error ? `, ${s.error}` : ''}`);
    const own = f.restarts.map((r) => r.daemonMs);
    console.log(
      `# ready after kill -9: median ${f.readyMs.median} ms, max ${f.readyMs.max} ms (${f.readyMs.n} restarts; the daemon's own ms: ${own.join(',')}); ${f.durationS} s in all`,
    );
    console.log(`# stopped with changes: maps matched ${f.stopped.map((s) => `${s.mapsMs} ms, policy ${s.policyMs} ms`).join('; ')} after ready`);
    console.log(`# API faults: ${f.api.map((a) => `${a.fault} ${a.convergeMs} ms`).join(', ')}`);

    assert.ok(
      f.paths.every((p) => p.attempts > 0),
      'every path was probed',
    );
    assert.deepEqual(
      f.paths.filter((p) => p.failed > 0).map((p) => `${p.name}: ${p.failed} of ${p.attempts} failed: ${p.examples.join('; ')}`),
      [],
      'failed connections',
    );
    assert.deepEqual(
      f.paths.filter((p) => p.violations > 0).map((p) => `${p.name}: ${p.violations} of ${p.attempts} got through: ${p.examples.join('; ')}`),
      [],
      'policy violations',
    );
    for (const s of f.streams) {
      assert.equal(s.error, undefined, `${s.name}: ${s.error}`);
      assert.equal(s.received, s.sent, `${s.name}: every line came back`);
      assert.ok(s.maxGapMs < 1000, `${s.name}: longest gap ${s.maxGapMs} ms`);
    }
    assert.equal(f.restarts.length, 5 * 2, 'both nodes restarted every round');
    assert.equal(f.stopped.length, 1);
    assert.equal(f.api.length, 2);
  });
});
