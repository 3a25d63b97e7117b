// Frontends with no usable endpoint: the packet comes back as an ICMP port unreachable
// from the frontend, built in place and redirected out the interface it came in on;
// Local-policy frontends with no local endpoint drop instead.

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { assertPacket, decodePacket, eth, inetChecksum } from '../lib/packet.js';
import { addService, IPPROTO, loadServiceDataplane, TC, type ServiceDataplane } from './service-fixture.js';

const CLIENT = '198.18.1.10';
const FRONTEND = '198.19.0.10';
const CLIENT_MAC = '02:00:00:00:00:01';
const HOST_MAC = '02:00:00:00:00:02';

let dp: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane();
});
after(async () => {
  await dp?.close();
});
beforeEach(() => dp.reset());

function expectPortUnreachable(out: Buffer, original: Buffer, quoted: number): void {
  const ipHeaderLen = (original[14]! & 0x0f) * 4;
  const quote = original.subarray(14, 14 + ipHeaderLen + quoted);
  assertPacket(out, {
    eth: { src: HOST_MAC, dst: CLIENT_MAC, type: 0x0800 },
    ipv4: { version: 4, ihl: 5, src: FRONTEND, dst: CLIENT, protocol: IPPROTO.icmp, ttl: 64, totalLength: 28 + quote.length, flags: [], fragOffset: 0 },
    icmp: { type: 3, code: 3, rest: 0 },
  });
  const d = decodePacket(out);
  assert.equal(out.length, 14 + 28 + quote.length, 'nothing after the quote');
  assert.ok(out.subarray(14 + 28).equals(quote), 'the quote is the original IP header and the first bytes of L4');
  assert.equal(inetChecksum(out.subarray(14 + 20)), 0, 'ICMP checksum over the whole message');
  assert.equal(d.icmp!.embedded!.ipv4!.src, CLIENT);
  assert.equal(d.icmp!.embedded!.ipv4!.dst, FRONTEND);
}

test('TCP SYN to a service with no endpoints: ICMP port unreachable back to the client', () => {
  addService(dp, { id: 3, address: FRONTEND, port: 80, flags: ['reject'], backends: [] });
  const syn = eth({ src: CLIENT_MAC, dst: HOST_MAC }).ipv4({ src: CLIENT, dst: FRONTEND, id: 77 })
    .tcp({ sport: 40000, dport: 80, flags: ['syn'], seq: 1000 }).payload('0123456789').build();
  const r = dp.run('fromPod', syn);
  assert.equal(r.retval, TC.redirect);
  expectPortUnreachable(r.data, syn, 8);
  const quoted = decodePacket(r.data).icmp!.embedded!;
  assert.deepEqual([r.data.readUInt16BE(14 + 28 + 20), r.data.readUInt16BE(14 + 28 + 22), quoted.ipv4!.id], [40000, 80, 77]);
  assert.equal(dp.conntrack.entries().length, 0);
  assert.deepEqual(dp.counters(), { from_pod: { no_backend_reject: 1 } });
});

test('UDP to a service with no endpoints, and an IPv4 header with options: the whole header is quoted', () => {
  addService(dp, { id: 4, address: FRONTEND, port: 53, protocol: IPPROTO.udp, flags: ['reject'], backends: [] });
  const q = eth({ src: CLIENT_MAC, dst: HOST_MAC }).ipv4({ src: CLIENT, dst: FRONTEND, options: [0x01, 0x01, 0x01, 0x00] })
    .udp({ sport: 33000, dport: 53 }).payload('a longer payload that is cut off').build();
  const r = dp.run('fromPod', q);
  assert.equal(r.retval, TC.redirect);
  expectPortUnreachable(r.data, q, 8);
  assert.deepEqual(dp.counters(), { from_pod: { no_backend_reject: 1 } });
});

test('a frontend with zero backends but no reject flag is rejected too (never a modulo by zero)', () => {
  addService(dp, { id: 5, address: FRONTEND, port: 80, backends: [] });
  const syn = eth({ src: CLIENT_MAC, dst: HOST_MAC }).ipv4({ src: CLIENT, dst: FRONTEND }).tcp({ sport: 40001, dport: 80, flags: ['syn'] }).build();
  const r = dp.run('fromPod', syn);
  assert.equal(r.retval, TC.redirect);
  expectPortUnreachable(r.data, syn, 8);
  assert.deepEqual(dp.counters(), { from_pod: { no_backend_reject: 1 } });
});

test('NodePort with no endpoints through from_host: rejected back out the host interface', () => {
  addService(dp, { id: 6, address: FRONTEND, port: 30080, flags: ['nodeport', 'reject'], backends: [] });
  const syn = eth({ src: CLIENT_MAC, dst: HOST_MAC }).ipv4({ src: CLIENT, dst: FRONTEND }).tcp({ sport: 50000, dport: 30080, flags: ['syn'] }).build();
  const r = dp.run('fromHost', syn);
  assert.equal(r.retval, TC.redirect);
  expectPortUnreachable(r.data, syn, 8);
  assert.deepEqual(dp.counters(), { from_host: { no_backend_reject: 1 } });
});

test('Local traffic policy with no local endpoint: dropped, not rejected', () => {
  addService(dp, { id: 8, address: FRONTEND, port: 30081, scope: 'external', flags: ['nodeport', 'drop'], backends: [] });
  addService(dp, { id: 9, address: FRONTEND, port: 30081, flags: ['nodeport'], backends: [{ address: '198.18.5.5', port: 8080 }] });
  const syn = eth({ src: CLIENT_MAC, dst: HOST_MAC }).ipv4({ src: '198.18.100.5', dst: FRONTEND }).tcp({ sport: 50001, dport: 30081, flags: ['syn'] }).build();
  const r = dp.run('fromHost', syn);
  assert.equal(r.retval, TC.drop);
  // an in-cluster client uses the INTERNAL entry: all endpoints
  const fromPod = eth().ipv4({ src: CLIENT, dst: FRONTEND }).tcp({ sport: 50002, dport: 30081, flags: ['syn'] }).build();
  assert.equal(decodePacket(dp.run('fromPod', fromPod).data).ipv4!.dst, '198.18.5.5');
  assert.deepEqual(dp.counters(), { from_host: { no_local_backend_drop: 1 }, from_pod: { service_nat: 1 } });
});
