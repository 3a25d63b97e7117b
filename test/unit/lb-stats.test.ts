// boundedLbSeries: the cardinality bound of weir_service_new_connections_total, over the rows
// of both families' lb-stats maps.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { boundedLbSeries, type LbStatsRow } from '../../src/dataplane/lb-stats.js';

const row = (frontendId: number, i: number, n: number): LbStatsRow => ({
  family: 4,
  frontendId,
  backend: `198.18.2.${i}`,
  port: 8080,
  newConnections: BigInt(n),
});
const row6 = (frontendId: number, i: number, n: number): LbStatsRow => ({
  family: 6,
  frontendId,
  backend: `2001:2:1::${i}`,
  port: 8080,
  newConnections: BigInt(n),
});
const describe = (id: number) => (id === 1 ? { service: 'default/web', frontend: '198.19.0.10:80/tcp' } : undefined);

test('under the cap: one series per backend, labelled; unknown frontend ids say so', () => {
  const s = boundedLbSeries([row(1, 1, 5), row(1, 2, 7), row(2, 3, 1)], describe, 10);
  assert.deepEqual(s, [
    { service: 'default/web', frontend: '198.19.0.10:80/tcp', backend: '198.18.2.2:8080', value: 7 },
    { service: 'default/web', frontend: '198.19.0.10:80/tcp', backend: '198.18.2.1:8080', value: 5 },
    { service: 'unknown', frontend: 'id:2', backend: '198.18.2.3:8080', value: 1 },
  ]);
});

test('over the cap: exactly cap series, the largest kept, the rest summed into "other"; the total is kept', () => {
  const rows = Array.from({ length: 50 }, (_, i) => row(1, i, i + 1));
  const s = boundedLbSeries(rows, describe, 10);
  assert.equal(s.length, 10);
  assert.deepEqual(
    s.slice(0, 9).map((x) => x.value),
    [50, 49, 48, 47, 46, 45, 44, 43, 42],
  );
  assert.deepEqual(s[9], { service: 'other', frontend: 'other', backend: 'other', value: (41 * 42) / 2 });
  assert.equal(
    s.reduce((n, x) => n + x.value, 0),
    (50 * 51) / 2,
  );
});

test('IPv6 rows beside IPv4 ones: the backend label is [address]:port, as every IPv6 endpoint is printed', () => {
  const both = (id: number) => (id === 3 ? { service: 'default/web', frontend: '[2001:2::10]:80/tcp' } : describe(id));
  const s = boundedLbSeries([row(1, 1, 2), row6(3, 10, 4)], both, 10);
  assert.deepEqual(s, [
    { service: 'default/web', frontend: '[2001:2::10]:80/tcp', backend: '[2001:2:1::10]:8080', value: 4 },
    { service: 'default/web', frontend: '198.19.0.10:80/tcp', backend: '198.18.2.1:8080', value: 2 },
  ]);
});
