// The API source's retry delays: exponential, capped, with equal jitter, reset on progress.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, errorStatus } from '../../src/sources/kube.js';

test('backoff doubles from the initial delay to the cap, each delay jittered within [d/2, d]', () => {
  const lo = new Backoff(500, 30_000, () => 0);
  const hi = new Backoff(500, 30_000, () => 1);
  const los = Array.from({ length: 9 }, () => lo.next());
  const his = Array.from({ length: 9 }, () => hi.next());
  assert.deepEqual(his, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.deepEqual(los, [250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  hi.reset();
  assert.equal(hi.next(), 500);
  const mid = new Backoff(1000, 8000, () => 0.5);
  assert.deepEqual([mid.next(), mid.next()], [750, 1500]);
});

test('errorStatus reads list (ApiException.code) and watch (statusCode) errors', () => {
  assert.equal(errorStatus({ code: 410 }), 410);
  assert.equal(errorStatus({ statusCode: 410 }), 410);
  assert.equal(errorStatus({ code: 'ECONNREFUSED' }), undefined);
  assert.equal(errorStatus(null), undefined);
});
