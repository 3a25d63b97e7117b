// The daemon's logs (src/log.ts, --log-format, --log-level): JSON lines with time, level, msg
// and typed fields; the error level and its filtering; weir's own failures (ERROR_KINDS of
// daemon/health.ts) at level error, bad input at warn, event names unchanged, both counted.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DaemonHealth } from '../../src/daemon/health.js';
import { createDaemonLogger, formatJsonLine, formatLogfmt } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';

test('--log-format json: one object a line, time/level/msg first, fields typed, reserved names kept aside', () => {
  const now = new Date('2026-11-30T12:00:00.000Z');
  const line = formatJsonLine('info', 'sync', { reason: 'change', frontends: 3, full: false, peer: null, skip: undefined, msg: 'inner' }, now);
  assert.equal(line, '{"time":"2026-11-30T12:00:00.000Z","level":"info","msg":"sync","reason":"change","frontends":3,"full":false,"peer":null,"_msg":"inner"}');
  assert.deepEqual(Object.keys(JSON.parse(formatJsonLine('warn', 'x', { n: NaN }, now)) as object), ['time', 'level', 'msg', 'n']);
  assert.equal(
    formatLogfmt('error', 'attach failed', { ifname: 'eth 0' }, now),
    'ts=2026-11-30T12:00:00.000Z level=error event="attach failed" ifname="eth 0"',
  );
});

test('--log-level error shows only errors; warn shows warn and error; both formats', () => {
  const lines: string[] = [];
  const log = createDaemonLogger('error', 'json', (l) => lines.push(l));
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e', { code: 'E2BIG' });
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { level: string; msg: string }).msg),
    ['e'],
  );
  const fmt: string[] = [];
  const w = createDaemonLogger('warn', 'logfmt', (l) => fmt.push(l));
  w.info('i');
  w.warn('w');
  w.error('e');
  assert.deepEqual(
    fmt.map((l) => / level=(\w+) event=(\w+)/.exec(l)!.slice(1).join(':')),
    ['warn:w', 'error:e'],
  );
});

test("weir's own failures log at error, bad input at warn; the event names and the error counts are unchanged", async () => {
  const metrics = new Metrics();
  const health = new DaemonHealth(metrics);
  const lines: string[] = [];
  const log = health.wrapLogger(createDaemonLogger('debug', 'json', (l) => lines.push(l)));
  log.warn('map update failed', { map: 'weir_frontend4', error: 'E2BIG' });
  log.warn('attach failed', { hook: 'from_pod', ifname: 'veth0', error: 'EPERM' });
  log.warn('kube: list/watch failed, retrying', { error: 'ECONNREFUSED' });
  log.warn('manifests: rejected', { file: 'x.yaml' });
  log.warn('frontend skipped', { service: 'a/b' });
  log.warn('resync', { repairs: 1 });
  const got = lines.map((l) => JSON.parse(l) as { level: string; msg: string }).map((l) => `${l.level} ${l.msg}`);
  assert.deepEqual(got, [
    'error map update failed',
    'error attach failed',
    'error kube: list/watch failed, retrying',
    'warn manifests: rejected',
    'warn frontend skipped',
    'warn resync',
  ]);
  const counts = (await metrics.errors.get()).values.map((v) => `${String(v.labels.kind)}=${v.value}`).sort();
  assert.deepEqual(counts, ['api=1', 'attach=1', 'map_write=1', 'model=1', 'source=1']);
});
