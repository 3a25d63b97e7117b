// weir_lb_stats6 through the library the metrics, `weir services` and the clean-up use
// (dataplane/lb-stats.ts): flows of an IPv6 frontend counted by from_pod6 are read back as
// IPv6 rows (the key size tells the map's family), beside the IPv4 map's rows; deleting a
// released frontend id removes its counts from the IPv6 map and nothing else.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BpfMap } from '../../src/bpf/index.js';
import { deleteLbStatsOf, readLbStats } from '../../src/dataplane/lb-stats.js';
import { eth } from '../lib/packet.js';
import { addService, loadServiceDataplane, type ServiceDataplane } from './service-fixture.js';

const CLIENT6 = '2001:2:1::50';
const BACKENDS6 = ['2001:2:1::10', '2001:2:1::11'];

let dp: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane({ lb_stats_enabled: Buffer.from([1]) });
  addService(dp, { id: 21, address: '2001:2:ff::10', port: 80, backends: BACKENDS6.map((address) => ({ address, port: 8080 })) });
  addService(dp, { id: 22, address: '2001:2:ff::11', port: 80, backends: [{ address: BACKENDS6[0]!, port: 8080 }] });
  addService(dp, { id: 7, address: '198.19.0.10', port: 80, backends: [{ address: '198.18.2.20', port: 8080 }] });
});
after(async () => {
  await dp?.close();
});

const syn6 = (dst: string, sport: number) =>
  eth()
    .ipv6({ src: CLIENT6, dst })
    .tcp({ sport, dport: 80, flags: ['syn'] })
    .build();

function withMap<R>(name: string, f: (m: BpfMap) => R): R {
  const m = BpfMap.openPinned(`${dp.bpffs.path}/${name}`);
  try {
    return f(m);
  } finally {
    m.close();
  }
}

test('readLbStats on weir_lb_stats6: IPv6 rows; deleteLbStatsOf removes a released id only', () => {
  for (let i = 0; i < 20; i++) assert.equal(dp.run('fromPod6', syn6('2001:2:ff::10', 41000 + i)).retval, 0);
  for (let i = 0; i < 3; i++) assert.equal(dp.run('fromPod6', syn6('2001:2:ff::11', 42000 + i)).retval, 0);
  assert.equal(
    dp.run(
      'fromPod',
      eth()
        .ipv4({ src: '198.18.1.10', dst: '198.19.0.10' })
        .tcp({ sport: 43000, dport: 80, flags: ['syn'] })
        .build(),
    ).retval,
    0,
  );
  const rows6 = withMap('weir_lb_stats6', readLbStats);
  assert.ok(
    rows6.every((r) => r.family === 6 && BACKENDS6.includes(r.backend) && r.port === 8080),
    JSON.stringify(rows6, (_, v) => (typeof v === 'bigint' ? Number(v) : v)),
  );
  const total = (id: number) => rows6.filter((r) => r.frontendId === id).reduce((n, r) => n + Number(r.newConnections), 0);
  assert.deepEqual([total(21), total(22)], [20, 3], 'one count per new flow');
  assert.deepEqual(
    withMap('weir_lb_stats4', readLbStats).map((r) => [r.family, r.frontendId, r.backend, Number(r.newConnections)]),
    [[4, 7, '198.18.2.20', 1]],
  );
  const before = rows6.filter((r) => r.frontendId === 21).length;
  assert.equal(
    withMap('weir_lb_stats6', (m) => deleteLbStatsOf(m, [21])),
    before,
  );
  assert.deepEqual(
    withMap('weir_lb_stats6', readLbStats).map((r) => r.frontendId),
    [22],
  );
  assert.equal(withMap('weir_lb_stats4', readLbStats).length, 1, 'the IPv4 map untouched');
});
