// ICMP errors about NAT'd flows: the quoted packet carries the NAT'd tuple, which the
// other end never saw. from_pod and from_host translate the quote (and the outer
// addresses that are flow endpoints) back, keeping the quote's IP checksum and the
// ICMP checksum valid.

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { assertPacket, decodePacket, eth, inetChecksum, ipv4 } from '../lib/packet.js';
import { addService, IPPROTO, loadServiceDataplane, TC, type ServiceDataplane } from './service-fixture.js';

const CLIENT = '198.18.1.10';
const FRONTEND = '198.19.0.10';
const BACKEND = '198.18.2.20';
const ROUTER = '198.18.0.254';

let dp: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane();
});
after(async () => {
  await dp?.close();
});
beforeEach(() => dp.reset());

function quoteChecksOut(pkt: Buffer): void {
  const d = decodePacket(pkt);
  assert.equal(d.ipv4!.checksumValid, true, 'outer IPv4 checksum');
  assert.equal(inetChecksum(pkt.subarray(14 + d.ipv4!.ihl * 4, 14 + d.ipv4!.totalLength)), 0, 'ICMP checksum');
  assert.equal(d.icmp!.embedded!.ipv4!.checksumValid, true, 'quoted IPv4 header checksum');
}

test('frag needed from a router about a DNATed TCP flow reaches the client as about the frontend', () => {
  addService(dp, { id: 30, address: FRONTEND, port: 80, backends: [{ address: BACKEND, port: 8080 }] });
  dp.run('fromPod', eth().ipv4({ src: CLIENT, dst: FRONTEND }).tcp({ sport: 40000, dport: 80, flags: ['syn'] }).build());
  const quote = ipv4({ src: CLIENT, dst: BACKEND, flags: ['df'] }).tcp({ sport: 40000, dport: 8080, flags: ['ack'] }).payload(Buffer.alloc(64)).truncate(28);
  const err = eth().ipv4({ src: ROUTER, dst: CLIENT }).icmp({ type: 'dest-unreachable', code: 4, mtu: 1400, embedded: quote }).build();
  const r = dp.run('fromHost', err);
  assert.equal(r.retval, TC.pass);
  assertPacket(r.data, { ipv4: { src: ROUTER, dst: CLIENT }, icmp: { type: 3, code: 4, mtu: 1400 } }, { cleanDecode: false });
  const inner = decodePacket(r.data).icmp!.embedded!;
  assert.deepEqual([inner.ipv4!.src, inner.ipv4!.dst, inner.l4!.proto], [CLIENT, FRONTEND, 'tcp']);
  assert.deepEqual([(inner.l4 as { sport: number }).sport, (inner.l4 as { dport: number }).dport], [40000, 80]);
  quoteChecksOut(r.data);
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 1 }, from_host: { icmp_error_revnat: 1 } });
});

test('port unreachable from the backend itself about a UDP flow: outer source and quote both become the frontend', () => {
  addService(dp, { id: 31, address: FRONTEND, port: 53, protocol: IPPROTO.udp, backends: [{ address: BACKEND, port: 5353 }] });
  dp.run('fromPod', eth().ipv4({ src: CLIENT, dst: FRONTEND }).udp({ sport: 33000, dport: 53 }).payload('q').build());
  const quote = ipv4({ src: CLIENT, dst: BACKEND }).udp({ sport: 33000, dport: 5353 }).payload('q');
  const err = eth().ipv4({ src: BACKEND, dst: CLIENT }).icmp({ type: 'dest-unreachable', code: 3, embedded: quote }).build();
  const r = dp.run('fromPod', err);
  assert.equal(r.retval, TC.pass);
  assertPacket(r.data, { ipv4: { src: FRONTEND, dst: CLIENT }, icmp: { type: 3, code: 3 } }, { cleanDecode: false });
  const inner = decodePacket(r.data).icmp!.embedded!;
  assert.deepEqual([inner.ipv4!.src, inner.ipv4!.dst, inner.udp!.sport, inner.udp!.dport], [CLIENT, FRONTEND, 33000, 53]);
  quoteChecksOut(r.data);
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 1, icmp_error_revnat: 1 } });
});

test('an error from the client about a reply goes to the backend with the backend tuple', () => {
  addService(dp, { id: 32, address: FRONTEND, port: 53, protocol: IPPROTO.udp, backends: [{ address: BACKEND, port: 5353 }] });
  dp.run('fromPod', eth().ipv4({ src: CLIENT, dst: FRONTEND }).udp({ sport: 33001, dport: 53 }).build());
  // the client's socket is gone: it answers the (reverse NATed) reply F:53 -> C:33001
  const quote = ipv4({ src: FRONTEND, dst: CLIENT }).udp({ sport: 53, dport: 33001 }).payload('answer');
  const err = eth().ipv4({ src: CLIENT, dst: FRONTEND }).icmp({ type: 'dest-unreachable', code: 3, embedded: quote }).build();
  const r = dp.run('fromPod', err);
  assertPacket(r.data, { ipv4: { src: CLIENT, dst: BACKEND } }, { cleanDecode: false });
  const inner = decodePacket(r.data).icmp!.embedded!;
  assert.deepEqual([inner.ipv4!.src, inner.ipv4!.dst, inner.udp!.sport, inner.udp!.dport], [BACKEND, CLIENT, 5353, 33001]);
  quoteChecksOut(r.data);
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 1, icmp_error_revnat: 1 } });
});

test('time exceeded about a flow that is not NATed passes untouched', () => {
  const quote = ipv4({ src: CLIENT, dst: '198.18.9.9' }).tcp({ sport: 1, dport: 2 }).truncate(28);
  const err = eth().ipv4({ src: ROUTER, dst: CLIENT }).icmp({ type: 'time-exceeded', embedded: quote }).build();
  const r = dp.run('fromHost', err);
  assert.equal(r.retval, TC.pass);
  assert.ok(r.data.equals(err));
  assert.deepEqual(dp.counters(), { from_host: { pass: 1 } });
});
