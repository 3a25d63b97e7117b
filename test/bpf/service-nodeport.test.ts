// NodePorts and other external frontends through from_host: DNAT without SNAT (the
// backend sees the real client), EXTERNAL scope first (externalTrafficPolicy: Local),
// replies from a local backend reverse NATed by from_pod, from a remote one by from_host.

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { assertPacket, eth, IPPROTO_TCP } from '../lib/packet.js';
import { addService, loadServiceDataplane, TC, type ServiceDataplane } from './service-fixture.js';

const EXTERNAL_CLIENT = '198.18.100.5';
const NODE = '198.18.0.1';
const LOCAL_BACKEND = '198.18.2.20';
const REMOTE_BACKEND = '198.18.3.30';

let dp: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane();
});
after(async () => {
  await dp?.close();
});
beforeEach(() => dp.reset());

const wire = (src: string, dst: string) => eth().ipv4({ src, dst });

test('NodePort: DNAT to the backend with the client address preserved; the local backend reply is reverse NATed in from_pod', () => {
  addService(dp, { id: 20, address: NODE, port: 30080, flags: ['nodeport'], backends: [{ address: LOCAL_BACKEND, port: 8080 }] });
  const syn = dp.run('fromHost', wire(EXTERNAL_CLIENT, NODE).tcp({ sport: 50000, dport: 30080, flags: ['syn'] }).build());
  assert.equal(syn.retval, TC.pass);
  assertPacket(syn.data, { ipv4: { src: EXTERNAL_CLIENT, dst: LOCAL_BACKEND }, tcp: { sport: 50000, dport: 8080 } });
  const fwd = dp.conntrack.lookup({ saddr: EXTERNAL_CLIENT, daddr: NODE, sport: 50000, dport: 30080, protocol: IPPROTO_TCP })!;
  assert.equal(fwd.flags, dp.ctFlag.dnat! | dp.ctFlag.nodeport!);
  const reply = dp.run('fromPod', wire(LOCAL_BACKEND, EXTERNAL_CLIENT).tcp({ sport: 8080, dport: 50000, flags: ['syn', 'ack'] }).build());
  assertPacket(reply.data, { ipv4: { src: NODE, dst: EXTERNAL_CLIENT }, tcp: { sport: 30080, dport: 50000 } });
  const ack = dp.run('fromHost', wire(EXTERNAL_CLIENT, NODE).tcp({ sport: 50000, dport: 30080, flags: ['ack'] }).build());
  assertPacket(ack.data, { ipv4: { src: EXTERNAL_CLIENT, dst: LOCAL_BACKEND }, tcp: { dport: 8080 } });
  assert.deepEqual(dp.counters(), { from_host: { service_nat: 1, nat_established: 1 }, from_pod: { reverse_nat: 1 } });
});

test('a remote backend reply arriving on a host interface is reverse NATed by from_host', () => {
  addService(dp, { id: 21, address: NODE, port: 30081, flags: ['nodeport'], backends: [{ address: REMOTE_BACKEND, port: 9090 }] });
  dp.run('fromHost', wire(EXTERNAL_CLIENT, NODE).tcp({ sport: 50001, dport: 30081, flags: ['syn'] }).build());
  const reply = dp.run('fromHost', wire(REMOTE_BACKEND, EXTERNAL_CLIENT).tcp({ sport: 9090, dport: 50001, flags: ['syn', 'ack'] }).build());
  assert.equal(reply.retval, TC.pass);
  assertPacket(reply.data, { ipv4: { src: NODE, dst: EXTERNAL_CLIENT }, tcp: { sport: 30081, dport: 50001 } });
  assert.deepEqual(dp.counters(), { from_host: { service_nat: 1, reverse_nat: 1 } });
});

test('externalTrafficPolicy: Local: the EXTERNAL entry (local endpoints only) wins over INTERNAL in from_host', () => {
  addService(dp, { id: 22, address: NODE, port: 30082, scope: 'external', flags: ['nodeport'], backends: [{ address: LOCAL_BACKEND, port: 8080 }] });
  addService(dp, { id: 23, address: NODE, port: 30082, flags: ['nodeport'], backends: [{ address: REMOTE_BACKEND, port: 8080 }] });
  for (let i = 0; i < 10; i++) {
    const r = dp.run('fromHost', wire(EXTERNAL_CLIENT, NODE).tcp({ sport: 51000 + i, dport: 30082, flags: ['syn'] }).build());
    assertPacket(r.data, { ipv4: { src: EXTERNAL_CLIENT, dst: LOCAL_BACKEND } });
  }
  assert.deepEqual(dp.counters(), { from_host: { service_nat: 10 } });
});

test('a ClusterIP reached from outside the node is DNATed by from_host too', () => {
  addService(dp, { id: 24, address: '198.19.0.10', port: 80, backends: [{ address: LOCAL_BACKEND, port: 8080 }] });
  const r = dp.run('fromHost', wire(EXTERNAL_CLIENT, '198.19.0.10').udp({ sport: 1234, dport: 80 }).build());
  assert.equal(r.retval, TC.pass);
  assert.deepEqual(dp.counters(), { from_host: { pass: 1 } }, 'a UDP packet to a TCP frontend is not ours');
  dp.resetCounters();
  const t = dp.run('fromHost', wire(EXTERNAL_CLIENT, '198.19.0.10').tcp({ sport: 1234, dport: 80, flags: ['syn'] }).build());
  assertPacket(t.data, { ipv4: { src: EXTERNAL_CLIENT, dst: LOCAL_BACKEND }, tcp: { dport: 8080 } });
  assert.deepEqual(dp.counters(), { from_host: { service_nat: 1 } });
});
