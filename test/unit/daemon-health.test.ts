// DaemonHealth, the state behind /healthz and /readyz, on a fake clock: liveness fails only when
// periodic work stops completing (3 intervals + 30 s); an API outage, a refused map write and a
// failed attach make the node not ready and never unhealthy (a restart fixes none of them).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DaemonHealth, PROGRESS_SLACK_MS } from '../../src/daemon/health.js';
import { Metrics } from '../../src/metrics/metrics.js';

function healthAt(): { h: DaemonHealth; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const h = new DaemonHealth(new Metrics(), () => clock.now);
  h.sourceSynced = h.fullSynced = h.attached = true;
  return { h, clock };
}

test('the watchdog: live while the resync completes; 3 intervals + slack without a pass is a liveness problem', () => {
  const { h, clock } = healthAt();
  h.expect('periodic resync', 60_000);
  h.expect('conntrack GC', 10_000);
  const bound = 3 * 60_000 + PROGRESS_SLACK_MS;
  // the GC keeps running, the resync does not
  for (let t = 0; t < bound; t += 10_000) {
    clock.now += 10_000;
    h.ran('conntrack GC');
  }
  assert.deepEqual(h.problems(), [], `at ${bound / 1000}s exactly: still live`);
  clock.now += 1000;
  h.ran('conntrack GC');
  assert.deepEqual(h.problems(), ['no progress: periodic resync last completed 211.0s ago (every 60s, bound 210s)']);
  assert.deepEqual(h.notReady(), [], 'a stall is liveness, not readiness');
  h.ran('periodic resync');
  assert.deepEqual(h.problems(), []);
});

test('a task with its interval off (0) is not watched', () => {
  const { h, clock } = healthAt();
  h.expect('periodic resync', 0);
  clock.now += 86_400_000;
  assert.deepEqual(h.problems(), []);
});

test('an API outage past the bound: not ready, naming it; never unhealthy', () => {
  const { h, clock } = healthAt();
  h.expect('periodic resync', 60_000);
  let outage = false;
  h.source = { notReady: () => (outage ? ['kubernetes API unreachable for 61.0s (bound 60.0s)'] : []) };
  assert.deepEqual(h.notReady(), []);
  outage = true;
  clock.now += 30_000;
  h.ran('periodic resync');
  assert.deepEqual(h.notReady(), ['kubernetes API unreachable for 61.0s (bound 60.0s)']);
  assert.deepEqual(h.problems(), []);
});

test('a full map and a failed attach: not ready until a clean sync / attach pass; never unhealthy', () => {
  const { h } = healthAt();
  h.failed('weir_frontend4', 'update', 'E2BIG', 'Argument list too long');
  h.syncDone(1);
  assert.deepEqual(h.notReady(), ['dataplane cannot be programmed: 1 map write(s) failed in the last sync (weir_frontend4 update: E2BIG, map full)']);
  assert.deepEqual(h.problems(), []);
  h.syncDone(0);
  assert.deepEqual(h.notReady(), []);
  h.attachDone(2);
  assert.match(h.notReady()[0] ?? '', /^dataplane cannot be programmed: attaching failed \(2 error\(s\)/);
  assert.deepEqual(h.problems(), []);
  h.attachDone(0);
  assert.deepEqual(h.notReady(), []);
});

test('before the first sync: not ready with what is missing', () => {
  const h = new DaemonHealth(new Metrics());
  assert.deepEqual(h.notReady(), ['source has not delivered its initial state', 'first full sync not in the maps yet', 'programs not attached yet']);
  assert.deepEqual(h.problems(), []);
});
