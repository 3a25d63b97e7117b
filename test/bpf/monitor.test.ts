// `weir monitor`'s kernel half through the real from_pod, from_host and from_pod6 objects
// (BPF_PROG_TEST_RUN): no lease, an expired lease or the daemon's switch off emit nothing; a
// lease emits exactly the reasons its mask names, with the packet's addresses and, for a new
// NAT flow, the backend from conntrack; the sample rate thins them; the counters are the
// same with and without a monitor. Then the userspace filter (matchesFilter, reasonMask).

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { BpfMap, RingBuffer } from '../../src/bpf/index.js';
import {
  applyMonitorSwitch,
  decodeEvent,
  matchesFilter,
  monitorStats,
  MonitorLease,
  MonitorRefused,
  normalizeFilter,
  readMonitorCfg,
  reasonMask,
  type MonitorEvent,
} from '../../src/dataplane/monitor.js';
import { reasonNames } from '../../src/dataplane/counters.js';
import { eth } from '../lib/packet.js';
import { addService, loadServiceDataplane, TC, type ServiceDataplane } from './service-fixture.js';

const CLIENT = '198.18.1.10';
const EXTERNAL = '198.18.100.5';
const EMPTY = '198.19.0.12'; // ClusterIP with no endpoints: rejected
const FRONTEND = '198.19.0.10';
const NODE = '198.18.0.1';
const BACKEND = { address: '198.18.2.20', port: 8080 };
const CLIENT6 = '2001:2::10';
const EMPTY6 = '2001:2:0:ff::12';

let dp: ServiceDataplane;
let cfg: BpfMap;
let stats: BpfMap;
let ring: RingBuffer;

before(() => {
  dp = loadServiceDataplane();
  cfg = BpfMap.openPinned(`${dp.bpffs.path}/weir_monitor_cfg`);
  stats = BpfMap.openPinned(`${dp.bpffs.path}/weir_monitor_stats`);
  const events = BpfMap.openPinned(`${dp.bpffs.path}/weir_events`);
  ring = new RingBuffer(events);
  events.close(); // the reader holds its own fd
});
after(async () => {
  ring?.close();
  cfg?.close();
  stats?.close();
  await dp?.close();
});
beforeEach(() => {
  dp.reset();
  applyMonitorSwitch(cfg, true);
  cfg.update(Buffer.alloc(4), Buffer.alloc(cfg.valueSize)); // nobody monitors
  ring.consume(); // whatever an earlier test left
  addService(dp, { id: 7, address: FRONTEND, port: 80, backends: [BACKEND] });
  addService(dp, { id: 9, address: EMPTY, port: 443, flags: ['reject'], backends: [] });
  // NodePort, externalTrafficPolicy: Local with no local endpoint (external scope drops) and
  // the Cluster view for pods, as the reconciler writes it
  addService(dp, { id: 10, address: NODE, port: 30081, scope: 'external', flags: ['nodeport', 'drop'], backends: [] });
  addService(dp, { id: 11, address: EMPTY6, port: 443, flags: ['reject'], backends: [] });
});

const syn = (src: string, dst: string, sport: number, dport: number) =>
  eth()
    .ipv4({ src, dst })
    .tcp({ sport, dport, flags: ['syn'] })
    .build();
const syn6 = (src: string, dst: string, sport: number, dport: number) =>
  eth()
    .ipv6({ src, dst })
    .tcp({ sport, dport, flags: ['syn'] })
    .build();

/** One of each: a reject, a Local-policy drop, a new NAT flow and its next packet. */
function traffic(sport: number): void {
  dp.run('fromPod', syn(CLIENT, EMPTY, sport, 443));
  assert.equal(dp.run('fromHost', syn(EXTERNAL, NODE, sport, 30081)).retval, TC.drop);
  assert.equal(dp.run('fromPod', syn(CLIENT, FRONTEND, sport, 80)).retval, TC.pass);
  dp.run(
    'fromPod',
    eth()
      .ipv4({ src: CLIENT, dst: FRONTEND })
      .tcp({ sport, dport: 80, flags: ['ack'] })
      .build(),
  );
}

function events(): MonitorEvent[] {
  return ring.consume().map((b) => decodeEvent(b)!);
}

test('nobody monitoring: the programs emit nothing and count nothing in weir_monitor_stats', () => {
  traffic(40000);
  assert.deepEqual(ring.consume(), []);
  assert.deepEqual(monitorStats(stats), { emitted: 0n, lost: 0n });
});

test('a lease with the default mask: the reject, the drop and the new NAT flow, with their addresses; not the established packet', () => {
  const lease = new MonitorLease(cfg, reasonMask(), 1);
  lease.acquire();
  traffic(40100);
  lease.release();
  const got = events();
  assert.deepEqual(
    got.map((e) => [e.type, e.hook, e.reason, e.proto, `${e.src}:${e.srcPort}`, `${e.dst}:${e.dstPort}`, e.natDst && `${e.natDst}:${e.natDstPort}`]),
    [
      ['reject', 'from_pod', 'no_backend_reject', 'tcp', `${CLIENT}:40100`, `${EMPTY}:443`, undefined],
      ['drop', 'from_host', 'no_local_backend_drop', 'tcp', `${EXTERNAL}:40100`, `${NODE}:30081`, undefined],
      ['nat', 'from_pod', 'service_nat', 'tcp', `${CLIENT}:40100`, `${FRONTEND}:80`, `${BACKEND.address}:${BACKEND.port}`],
    ],
  );
  assert.equal(got[0]!.family, 4);
  assert.equal(got[0]!.tcpFlags, 0x02);
  assert.equal(monitorStats(stats).emitted, 3n);
  // released: nothing more
  traffic(40101);
  assert.deepEqual(ring.consume(), []);
});

test('IPv6: a rejected connection with both IPv6 ends', () => {
  const lease = new MonitorLease(cfg, reasonMask(['reject']), 1);
  lease.acquire();
  dp.run('fromPod6', syn6(CLIENT6, EMPTY6, 40200, 443));
  lease.release();
  const got = events();
  assert.equal(got.length, 1);
  assert.deepEqual([got[0]!.family, got[0]!.reason, got[0]!.src, got[0]!.dst, got[0]!.dstPort], [6, 'no_backend_reject', CLIENT6, EMPTY6, 443]);
});

test('the mask: only the types asked for; --reason nat_established adds the per-packet verdict', () => {
  const lease = new MonitorLease(cfg, reasonMask(['drop']), 1);
  lease.acquire();
  traffic(40300);
  assert.deepEqual(
    events().map((e) => e.reason),
    ['no_local_backend_drop'],
  );
  lease.release();
  const est = new MonitorLease(cfg, reasonMask([], ['nat_established']), 1);
  est.acquire();
  traffic(40301);
  est.release();
  const got = events();
  assert.deepEqual(
    got.map((e) => [e.reason, e.natDst]),
    [['nat_established', BACKEND.address]],
  );
});

test('switch off: the CLI is refused and a lease written past it emits nothing', () => {
  assert.equal(applyMonitorSwitch(cfg, false), true);
  assert.throws(() => new MonitorLease(cfg, reasonMask(), 1).acquire(), MonitorRefused);
  // a lease written by hand with the DISABLED flag kept: the programs still say no
  const c = readMonitorCfg(cfg);
  const forged = Buffer.alloc(cfg.valueSize);
  forged.writeBigUInt64LE(process.hrtime.bigint() + 60_000_000_000n, 0);
  forged.writeBigUInt64LE(reasonMask(), 8);
  forged.writeUInt32LE(c.flags, 20);
  cfg.update(Buffer.alloc(4), forged);
  const before = monitorStats(stats).emitted;
  traffic(40400);
  assert.deepEqual(ring.consume(), []);
  assert.equal(monitorStats(stats).emitted, before);
  // the daemon's periodic re-assertion puts the entry back to all-zero-but-disabled
  assert.equal(applyMonitorSwitch(cfg, false), true);
  assert.equal(readMonitorCfg(cfg).until_ns, 0n);
  applyMonitorSwitch(cfg, true);
  new MonitorLease(cfg, reasonMask(), 1).acquire(); // on again: accepted
});

test('an expired lease (a monitor killed -9) emits nothing', () => {
  const v = Buffer.alloc(cfg.valueSize);
  v.writeBigUInt64LE(process.hrtime.bigint() - 1n, 0);
  v.writeBigUInt64LE(reasonMask(), 8);
  cfg.update(Buffer.alloc(4), v);
  traffic(40500);
  assert.deepEqual(ring.consume(), []);
});

test('a second monitor is refused while the first one lives; a dead owner is taken over', () => {
  const ghost = new MonitorLease(cfg, reasonMask(), 1, 0x3fffffff); // a pid no process has
  ghost.acquire();
  const mine = new MonitorLease(cfg, reasonMask(), 1);
  mine.acquire(); // the owner is dead: taken over
  assert.equal(readMonitorCfg(cfg).owner_pid, process.pid);
  assert.equal(ghost.renew(), false, 'the ghost lost its lease');
  assert.throws(() => new MonitorLease(cfg, reasonMask(), 1, 0x3ffffffe).acquire(), /another weir monitor \(pid \d+\) is running/);
  assert.equal(mine.renew(), true);
  mine.release();
  assert.equal(readMonitorCfg(cfg).until_ns, 0n);
});

test('sampling 1 in 2^32-1: of 20 matching packets none (or almost none) is emitted', () => {
  const lease = new MonitorLease(cfg, reasonMask(['reject']), 0xffffffff);
  lease.acquire();
  for (let i = 0; i < 20; i++) dp.run('fromPod', syn(CLIENT, EMPTY, 40600 + i, 443));
  lease.release();
  assert.ok(events().length < 20);
});

test('the counters are the same with a monitor as without', () => {
  traffic(40700);
  const without = dp.counters();
  dp.reset();
  addService(dp, { id: 7, address: FRONTEND, port: 80, backends: [BACKEND] });
  addService(dp, { id: 9, address: EMPTY, port: 443, flags: ['reject'], backends: [] });
  addService(dp, { id: 10, address: NODE, port: 30081, scope: 'external', flags: ['nodeport', 'drop'], backends: [] });
  const lease = new MonitorLease(cfg, reasonMask(['drop', 'reject', 'nat', 'policy', 'trace'], []), 1);
  lease.acquire();
  traffic(40700);
  lease.release();
  assert.ok(events().length > 0);
  assert.deepEqual(dp.counters(), without);
});

const ev = (o: Partial<MonitorEvent>): MonitorEvent => ({
  time: '',
  type: 'drop',
  hook: 'from_host',
  reason: 'no_local_backend_drop',
  family: 4,
  proto: 'tcp',
  src: EXTERNAL,
  srcPort: 50000,
  dst: NODE,
  dstPort: 30081,
  ifindex: 1,
  len: 60,
  ...o,
});

test('filter: address at either end or the NAT target, both families; port; reason; type', () => {
  const f = (x: Parameters<typeof normalizeFilter>[0]) => normalizeFilter(x);
  assert.equal(matchesFilter(ev({}), f({ addresses: [EXTERNAL] })), true);
  assert.equal(matchesFilter(ev({}), f({ addresses: [NODE] })), true);
  assert.equal(matchesFilter(ev({}), f({ addresses: [CLIENT] })), false);
  assert.equal(matchesFilter(ev({ natDst: BACKEND.address, natDstPort: 8080 }), f({ addresses: [BACKEND.address] })), true);
  // IPv6 in another spelling
  assert.equal(matchesFilter(ev({ family: 6, src: CLIENT6, dst: EMPTY6 }), f({ addresses: ['2001:0002:0:0::10'] })), true);
  assert.equal(matchesFilter(ev({}), f({ ports: [30081] })), true);
  assert.equal(matchesFilter(ev({}), f({ ports: [50000] })), true);
  assert.equal(matchesFilter(ev({}), f({ ports: [80] })), false);
  assert.equal(matchesFilter(ev({}), f({ reasons: ['no_backend_reject', 'no_local_backend_drop'] })), true);
  assert.equal(matchesFilter(ev({}), f({ reasons: ['no_backend_reject'] })), false);
  assert.equal(matchesFilter(ev({}), f({ types: ['reject'] })), false);
  assert.equal(matchesFilter(ev({}), f({ addresses: [EXTERNAL], ports: [80] })), false, 'all given filters must hold');
  assert.throws(() => normalizeFilter({ addresses: ['not-an-ip'] }), /not an IP address/);
});

test('reasonMask: default types, a type, reasons, reasons within a type, unknown names', () => {
  const bit = (n: number) => 1n << BigInt(n);
  const value = (name: string) => [...reasonNames].find(([, n]) => n === name)![0];
  const enums = {
    r: {
      no_backend_reject: value('no_backend_reject'),
      no_local_backend_drop: value('no_local_backend_drop'),
      service_nat: value('service_nat'),
      nat_established: value('nat_established'),
    },
  };
  const all = reasonMask();
  assert.ok(all & bit(enums.r.no_backend_reject) && all & bit(enums.r.no_local_backend_drop) && all & bit(enums.r.service_nat));
  assert.equal(all & bit(enums.r.nat_established), 0n);
  assert.equal(reasonMask(['reject']) & bit(enums.r.no_local_backend_drop), 0n);
  assert.equal(reasonMask([], ['nat_established']), bit(enums.r.nat_established));
  assert.equal(reasonMask(['drop'], ['nat_established', 'no_local_backend_drop']), bit(enums.r.no_local_backend_drop));
  assert.throws(() => reasonMask([], ['no_such_reason']), /unknown reason no_such_reason/);
  assert.throws(() => reasonMask(['nope' as never]), /unknown event type/);
});
