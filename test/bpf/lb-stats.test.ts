// weir_lb_stats4: new connections per {frontend, backend}, counted where a new flow picks
// its backend (from_pod, from_host), read back as readLbStats() does for the metrics and
// `weir services`. N new flows give exactly N counts, split as the conntrack entries say
// the flows went; later packets and rejected flows count nothing; the lb_stats_enabled knob
// set to 0 at load counts nothing at all while forwarding stays the same.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { BpfMap } from '../../src/bpf/index.js';
import { readLbStats } from '../../src/dataplane/lb-stats.js';
import { eth, IPPROTO_TCP } from '../lib/packet.js';
import { addService, loadServiceDataplane, TC, type ServiceDataplane } from './service-fixture.js';

const CLIENT = '198.18.1.10';
const FRONTEND = '198.19.0.10';
const NODE = '198.18.0.1';
const BACKENDS = [
  { address: '198.18.2.20', port: 8080 },
  { address: '198.18.2.21', port: 8080 },
  { address: '198.18.2.22', port: 8080 },
];

const open: ServiceDataplane[] = [];
after(async () => {
  for (const dp of open) await dp.close();
});

function load(enabled: boolean): ServiceDataplane {
  const dp = loadServiceDataplane({ lb_stats_enabled: Buffer.from([enabled ? 1 : 0]) });
  open.push(dp);
  addService(dp, { id: 7, address: FRONTEND, port: 80, backends: BACKENDS });
  addService(dp, { id: 8, address: NODE, port: 30080, flags: ['nodeport'], backends: [BACKENDS[0]!] });
  addService(dp, { id: 9, address: '198.19.0.12', port: 443, flags: ['reject'], backends: [] });
  return dp;
}

/** "frontendId backend:port" -> new connections, through the library reader. */
function stats(dp: ServiceDataplane): Record<string, number> {
  const map = BpfMap.openPinned(`${dp.bpffs.path}/weir_lb_stats4`);
  try {
    return Object.fromEntries(readLbStats(map).map((r) => [`${r.frontendId} ${r.backend}:${r.port}`, Number(r.newConnections)]));
  } finally {
    map.close();
  }
}

const syn = (src: string, dst: string, sport: number, dport: number) =>
  eth()
    .ipv4({ src, dst })
    .tcp({ sport, dport, flags: ['syn'] })
    .build();
const ack = (sport: number) =>
  eth()
    .ipv4({ src: CLIENT, dst: FRONTEND })
    .tcp({ sport, dport: 80, flags: ['ack'] })
    .build();

test('N new flows count exactly N, split by backend as conntrack says they went; later packets and rejects count nothing', () => {
  const dp = load(true);
  const N = 60;
  for (let i = 0; i < N; i++) {
    assert.equal(dp.run('fromPod', syn(CLIENT, FRONTEND, 41000 + i, 80)).retval, TC.pass);
    assert.equal(dp.run('fromPod', ack(41000 + i)).retval, TC.pass); // established: not a new connection
  }
  for (let i = 0; i < 5; i++) dp.run('fromHost', syn('198.18.100.5', NODE, 52000 + i, 30080));
  dp.run('fromPod', syn(CLIENT, '198.19.0.12', 43000, 443)); // rejected: no backend picked

  const expected: Record<string, number> = {};
  for (let i = 0; i < N; i++) {
    const ct = dp.conntrack.get({ saddr: CLIENT, daddr: FRONTEND, sport: 41000 + i, dport: 80, protocol: IPPROTO_TCP })!;
    const k = `7 ${ct.nat_daddr}:${ct.nat_dport}`;
    expected[k] = (expected[k] ?? 0) + 1;
  }
  expected[`8 ${BACKENDS[0]!.address}:8080`] = 5;
  assert.deepEqual(stats(dp), expected);
  assert.ok(Object.keys(expected).length >= 3, 'random choice spread 60 flows over more than one backend');
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: N, nat_established: N, no_backend_reject: 1 }, from_host: { service_nat: 5 } });
});

test('lb_stats_enabled = 0: nothing counted, the same forwarding', () => {
  const dp = load(false);
  for (let i = 0; i < 10; i++) assert.equal(dp.run('fromPod', syn(CLIENT, FRONTEND, 44000 + i, 80)).retval, TC.pass);
  dp.run('fromHost', syn('198.18.100.5', NODE, 53000, 30080));
  assert.deepEqual(stats(dp), {});
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 10 }, from_host: { service_nat: 1 } });
});
