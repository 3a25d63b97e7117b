// `weir monitor`'s output and arguments without a kernel: the table line (time of day, hook,
// type, reason, protocol, flow, NAT target; IPv6 in brackets) and --duration's units.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration, tableLine } from '../../src/cli/monitor.js';
import type { MonitorEvent } from '../../src/dataplane/monitor.js';

const base: MonitorEvent = {
  time: '2026-11-30T13:43:09.564Z',
  type: 'nat',
  hook: 'from_host',
  reason: 'service_nat',
  family: 4,
  proto: 'tcp',
  src: '198.18.0.100',
  srcPort: 48108,
  dst: '198.18.0.1',
  dstPort: 30080,
  natDst: '198.18.1.2',
  natDstPort: 8080,
  ifindex: 2,
  len: 74,
};

test('table line: one event, the flow and the NAT target; IPv6 addresses in brackets', () => {
  assert.match(tableLine(base), /^13:43:09\.564 +from_host +nat +service_nat +tcp +198\.18\.0\.100:48108 -> 198\.18\.0\.1:30080 +-> 198\.18\.1\.2:8080$/);
  const v6 = tableLine({ ...base, family: 6, src: '2001:2::10', dst: '2001:2:0:ff::12', natDst: undefined, natDstPort: undefined, type: 'reject' });
  assert.match(v6, /\[2001:2::10\]:48108 -> \[2001:2:0:ff::12\]:30080$/);
  assert.ok(!tableLine({ ...base, natDst: undefined }).includes('->  '), 'no NAT column without a NAT target');
});

test('--duration: ms, s, m, h, plain seconds; anything else is refused', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('5'), 5000);
  assert.throws(() => parseDuration('soon'), /--duration soon/);
});
