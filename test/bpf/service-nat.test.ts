// Service NAT through BPF_PROG_TEST_RUN: new flows DNAT'd with valid checksums, the
// established and reply directions from conntrack, hairpin, affinity, SCTP, ICMP echo,
// and packets the service path must leave alone. Exact counter totals after each case.

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { assertPacket, decodePacket, eth, IPPROTO_TCP } from '../lib/packet.js';
import { addService, IPPROTO, loadServiceDataplane, TC, type ServiceDataplane } from './service-fixture.js';

const CLIENT = '198.18.1.10';
const FRONTEND = '198.19.0.10';
const BACKEND_A = '198.18.2.20';
const BACKEND_B = '198.18.2.21';

let dp: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane();
});
after(async () => {
  await dp?.close();
});
beforeEach(() => dp.reset());

const pod = (src: string, dst: string, protocol?: number) =>
  eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src, dst, ...(protocol ? { protocol } : {}) });

function web(backends = [{ address: BACKEND_A, port: 8080 }], extra: Partial<Parameters<typeof addService>[1]> = {}) {
  addService(dp, { id: 7, address: FRONTEND, port: 80, backends, ...extra });
}

test('a new TCP flow is DNATed to the backend with valid checksums, and both conntrack entries exist', () => {
  web();
  const syn = pod(CLIENT, FRONTEND).tcp({ sport: 40000, dport: 80, flags: ['syn'], seq: 1 }).payload('hello').build();
  const r = dp.run('fromPod', syn);
  assert.equal(r.retval, TC.pass);
  assertPacket(r.data, {
    ipv4: { src: CLIENT, dst: BACKEND_A, ttl: 64 },
    tcp: { sport: 40000, dport: 8080, flags: ['syn'], seq: 1 },
    payload: 'hello',
  });
  const fwd = dp.conntrack.lookup({ saddr: CLIENT, daddr: FRONTEND, sport: 40000, dport: 80, protocol: IPPROTO_TCP });
  assert.ok(fwd, 'forward entry');
  assert.equal(fwd.flags, dp.ctFlag.dnat);
  assert.deepEqual([fwd.nat_daddr, fwd.nat_dport, fwd.frontend_id, fwd.packets, fwd.tcp_flags_seen], [BACKEND_A, 8080, 7, 1n, 0x02]);
  const rev = dp.conntrack.lookup({ saddr: BACKEND_A, daddr: CLIENT, sport: 8080, dport: 40000, protocol: IPPROTO_TCP });
  assert.ok(rev, 'reverse entry');
  assert.equal(rev.flags, dp.ctFlag.snat! | dp.ctFlag.reply!);
  assert.deepEqual([rev.nat_saddr, rev.nat_sport], [FRONTEND, 80]);
  assert.equal(dp.conntrack.entries().length, 2);
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 1 } });
});

test('later packets follow conntrack, and replies from the backend are turned back into the frontend', () => {
  web([{ address: BACKEND_A, port: 8080 }, { address: BACKEND_B, port: 8080 }]);
  const first = dp.run('fromPod', pod(CLIENT, FRONTEND).tcp({ sport: 40001, dport: 80, flags: ['syn'] }).build());
  const backend = decodePacket(first.data).ipv4!.dst;
  assert.ok([BACKEND_A, BACKEND_B].includes(backend));
  for (let i = 0; i < 5; i++) {
    const r = dp.run('fromPod', pod(CLIENT, FRONTEND).tcp({ sport: 40001, dport: 80, flags: ['ack'] }).payload(`data${i}`).build());
    assert.equal(r.retval, TC.pass);
    assertPacket(r.data, { ipv4: { src: CLIENT, dst: backend }, tcp: { sport: 40001, dport: 8080, flags: ['ack'] } });
  }
  const reply = dp.run('fromPod', pod(backend, CLIENT).tcp({ sport: 8080, dport: 40001, flags: ['syn', 'ack'] }).payload('x').build());
  assert.equal(reply.retval, TC.pass);
  assertPacket(reply.data, { ipv4: { src: FRONTEND, dst: CLIENT }, tcp: { sport: 80, dport: 40001, flags: ['syn', 'ack'] }, payload: 'x' });
  const fwd = dp.conntrack.lookup({ saddr: CLIENT, daddr: FRONTEND, sport: 40001, dport: 80, protocol: IPPROTO_TCP })!;
  assert.equal(fwd.packets, 6n);
  assert.equal(Number(fwd.flags) & dp.ctFlag.seen!, dp.ctFlag.seen);
  assert.equal(fwd.tcp_flags_seen, 0x12);
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 1, nat_established: 5, reverse_nat: 1 } });
});

test('UDP: checksums stay valid, and a zero ("none") checksum stays zero', () => {
  addService(dp, { id: 9, address: FRONTEND, port: 53, protocol: IPPROTO.udp, backends: [{ address: BACKEND_A, port: 5353 }] });
  const q = dp.run('fromPod', pod(CLIENT, FRONTEND).udp({ sport: 33000, dport: 53 }).payload('query').build());
  assert.equal(q.retval, TC.pass);
  assertPacket(q.data, { ipv4: { src: CLIENT, dst: BACKEND_A }, udp: { sport: 33000, dport: 5353 }, payload: 'query' });
  const none = dp.run('fromPod', pod(CLIENT, FRONTEND).udp({ sport: 33001, dport: 53, checksum: 0 }).payload('query').build());
  assertPacket(none.data, { ipv4: { src: CLIENT, dst: BACKEND_A }, udp: { sport: 33001, dport: 5353, checksum: 0 } });
  const answer = dp.run('fromPod', pod(BACKEND_A, CLIENT).udp({ sport: 5353, dport: 33000 }).payload('answer').build());
  assertPacket(answer.data, { ipv4: { src: FRONTEND, dst: CLIENT }, udp: { sport: 53, dport: 33000 }, payload: 'answer' });
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 2, reverse_nat: 1 } });
});

test('hairpin: a pod reaching itself through its service gets the frontend as source, and its reply is restored both ways', () => {
  web([{ address: CLIENT, port: 8080 }]);
  const out = dp.run('fromPod', pod(CLIENT, FRONTEND).tcp({ sport: 40002, dport: 80, flags: ['syn'] }).build());
  assert.equal(out.retval, TC.pass);
  assertPacket(out.data, { ipv4: { src: FRONTEND, dst: CLIENT }, tcp: { sport: 40002, dport: 8080 } });
  const back = dp.run('fromPod', pod(CLIENT, FRONTEND).tcp({ sport: 8080, dport: 40002, flags: ['syn', 'ack'] }).build());
  assertPacket(back.data, { ipv4: { src: FRONTEND, dst: CLIENT }, tcp: { sport: 80, dport: 40002 } });
  const fwd = dp.conntrack.lookup({ saddr: CLIENT, daddr: FRONTEND, sport: 40002, dport: 80, protocol: IPPROTO_TCP })!;
  assert.equal(fwd.flags, dp.ctFlag.dnat! | dp.ctFlag.snat! | dp.ctFlag.hairpin!);
  assert.deepEqual(dp.counters(), { from_pod: { hairpin: 1, reverse_nat: 1 } });
});

test('session affinity: the same client gets the same backend for 50 new flows', () => {
  const backends = [1, 2, 3, 4].map((i) => ({ address: `198.18.2.${30 + i}`, port: 8080 }));
  web(backends, { flags: ['affinity'], affinityTimeout: 10800 });
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const r = dp.run('fromPod', pod(CLIENT, FRONTEND).tcp({ sport: 41000 + i, dport: 80, flags: ['syn'] }).build());
    seen.add(decodePacket(r.data).ipv4!.dst);
  }
  assert.equal(seen.size, 1, `one backend, got ${[...seen].join(', ')}`);
  const aff = dp.affinity.lookup({ client: CLIENT, frontend_id: 7 });
  assert.equal(aff?.backend, [...seen][0]);
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 50 } });
});

test('without affinity, new flows spread over the backends', () => {
  const backends = [1, 2, 3, 4].map((i) => ({ address: `198.18.2.${30 + i}`, port: 8080 }));
  web(backends);
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const r = dp.run('fromPod', pod(CLIENT, FRONTEND).tcp({ sport: 42000 + i, dport: 80, flags: ['syn'] }).build());
    seen.add(decodePacket(r.data).ipv4!.dst);
  }
  assert.ok(seen.size > 1, 'more than one backend in 50 flows');
  assert.equal(dp.affinity.entries().length, 0);
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 50 } });
});

// SCTP common header (ports, verification tag, CRC32c) + a chunk; the CRC is not
// recomputed by anyone, so it is just bytes here
function sctp(sport: number, dport: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt32BE(0xdeadbeef, 4);
  b.writeUInt32BE(0x12345678, 8);
  b.writeUInt32BE(0x01000004, 12);
  return b;
}

test('SCTP: DNAT when the backend port equals the service port, drop when it would need a port rewrite', () => {
  addService(dp, { id: 11, address: FRONTEND, port: 3868, protocol: IPPROTO.sctp, backends: [{ address: BACKEND_A, port: 3868 }] });
  addService(dp, { id: 12, address: FRONTEND, port: 2905, protocol: IPPROTO.sctp, backends: [{ address: BACKEND_A, port: 2906 }] });
  const ok = dp.run('fromPod', pod(CLIENT, FRONTEND, IPPROTO.sctp).payload(sctp(5000, 3868)).build());
  assert.equal(ok.retval, TC.pass);
  const d = decodePacket(ok.data);
  assert.deepEqual([d.ipv4!.dst, d.ipv4!.checksumValid], [BACKEND_A, true]);
  assert.ok(d.payload.equals(sctp(5000, 3868)), 'SCTP header untouched');
  const reply = dp.run('fromPod', pod(BACKEND_A, CLIENT, IPPROTO.sctp).payload(sctp(3868, 5000)).build());
  assert.equal(decodePacket(reply.data).ipv4!.src, FRONTEND);
  const bad = dp.run('fromPod', pod(CLIENT, FRONTEND, IPPROTO.sctp).payload(sctp(5000, 2905)).build());
  assert.equal(bad.retval, TC.drop);
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 1, reverse_nat: 1, sctp_port_rewrite: 1 } });
});

test('ICMP echo to a frontend with an ICMP entry is NATed with its identifier kept', () => {
  addService(dp, { id: 13, address: FRONTEND, port: 0, protocol: IPPROTO.icmp, backends: [{ address: BACKEND_A, port: 0 }] });
  const req = dp.run('fromPod', pod(CLIENT, FRONTEND).icmp({ type: 'echo-request', id: 0x4242, seq: 1 }).payload('ping').build());
  assertPacket(req.data, { ipv4: { src: CLIENT, dst: BACKEND_A }, icmp: { type: 8, id: 0x4242, seq: 1 } });
  const rep = dp.run('fromPod', pod(BACKEND_A, CLIENT).icmp({ type: 'echo-reply', id: 0x4242, seq: 1 }).payload('ping').build());
  assertPacket(rep.data, { ipv4: { src: FRONTEND, dst: CLIENT }, icmp: { type: 0, id: 0x4242 } });
  // a frontend without an ICMP entry: ping passes untouched
  const other = pod(CLIENT, '198.19.0.99').icmp({ type: 'echo-request', id: 1, seq: 1 }).build();
  assert.ok(dp.run('fromPod', other).data.equals(other));
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 1, reverse_nat: 1, pass: 1 } });
});

test('packets the service path must not touch pass unchanged, each counted once under its reason', () => {
  web();
  const cases: [string, Buffer][] = [
    ['pass', pod(CLIENT, '198.19.0.11').tcp({ sport: 1, dport: 80, flags: ['syn'] }).build()], // not a frontend
    ['pass', pod(CLIENT, FRONTEND).tcp({ sport: 1, dport: 81, flags: ['syn'] }).build()], // wrong port
    ['pass', pod(CLIENT, FRONTEND).udp({ sport: 1, dport: 80 }).build()], // wrong protocol
    ['malformed_l4', pod(CLIENT, FRONTEND).tcp({ sport: 1, dport: 80, dataOffset: 15 }).build()],
    ['malformed_l4', eth().ipv4({ src: CLIENT, dst: FRONTEND, totalLength: 30 }).tcp({ sport: 1, dport: 80 }).build()],
    ['malformed_ipv4_len', pod(CLIENT, FRONTEND).tcp({ sport: 1, dport: 80 }).truncate(14 + 30).build()], // IP says 40
    ['malformed_ipv4_hdr', eth().ipv4({ src: CLIENT, dst: FRONTEND, ihl: 4 }).tcp({ sport: 1, dport: 80 }).build()],
    ['malformed_eth', Buffer.alloc(14).subarray(0, 10)],
    ['not_ip', eth({ type: 0x0806 }).payload(Buffer.alloc(28)).build()],
    ['fragment', eth().ipv4({ src: CLIENT, dst: FRONTEND, flags: ['mf'] }).tcp({ sport: 1, dport: 80 }).build()], // first fragment
    ['fragment', eth().ipv4({ src: CLIENT, dst: FRONTEND, fragOffset: 10, protocol: IPPROTO_TCP }).payload(Buffer.alloc(24)).build()],
  ];
  const want: Record<string, number> = {};
  for (const [reason, pkt] of cases) {
    if (pkt.length < 14) continue; // BPF_PROG_TEST_RUN wants at least an Ethernet header
    const r = dp.run('fromPod', pkt);
    assert.equal(r.retval, TC.pass, reason);
    assert.ok(r.data.equals(pkt), `${reason}: packet changed`);
    want[reason] = (want[reason] ?? 0) + 1;
  }
  assert.equal(dp.conntrack.entries().length, 0);
  assert.deepEqual(dp.counters(), { from_pod: want });
});

test('to_pod counts and passes', () => {
  const pkt = pod(FRONTEND, CLIENT).tcp({ sport: 80, dport: 40000 }).build();
  const r = dp.run('toPod', pkt);
  assert.equal(r.retval, TC.pass);
  assert.ok(r.data.equals(pkt));
  assert.deepEqual(dp.counters(), { to_pod: { pass: 1 } });
});

test('a SYN reusing the ports of a closed flow is balanced afresh; a retransmitted SYN is not', () => {
  web([{ address: BACKEND_A, port: 8080 }]);
  const seg = (flags: string[]) => pod(CLIENT, FRONTEND).tcp({ sport: 40100, dport: 80, flags: flags as never }).build();
  assert.equal(decodePacket(dp.run('fromPod', seg(['syn'])).data).ipv4!.dst, BACKEND_A);
  // the backend set changes while the flow is open: its packets (and a retransmitted SYN) stay on A
  web([{ address: BACKEND_B, port: 8080 }]);
  assert.equal(decodePacket(dp.run('fromPod', seg(['syn'])).data).ipv4!.dst, BACKEND_A, 'SYN retransmit of the open flow');
  assert.equal(decodePacket(dp.run('fromPod', seg(['ack'])).data).ipv4!.dst, BACKEND_A);
  assert.equal(decodePacket(dp.run('fromPod', seg(['fin', 'ack'])).data).ipv4!.dst, BACKEND_A);
  // the flow closed; a new connection from the same port must not follow it to A
  dp.resetCounters();
  const r = dp.run('fromPod', seg(['syn']));
  assert.equal(decodePacket(r.data).ipv4!.dst, BACKEND_B);
  assert.deepEqual(dp.counters(), { from_pod: { service_nat: 1 } });
  const fwd = dp.conntrack.lookup({ saddr: CLIENT, daddr: FRONTEND, sport: 40100, dport: 80, protocol: IPPROTO_TCP })!;
  assert.deepEqual([fwd.nat_daddr, fwd.tcp_flags_seen], [BACKEND_B, 0x02], 'a fresh entry');
  assert.equal(dp.conntrack.lookup({ saddr: BACKEND_A, daddr: CLIENT, sport: 8080, dport: 40100, protocol: IPPROTO_TCP }), null, "the old flow's reverse entry is gone");
  assert.ok(dp.conntrack.lookup({ saddr: BACKEND_B, daddr: CLIENT, sport: 8080, dport: 40100, protocol: IPPROTO_TCP }));
  assert.equal(dp.conntrack.entries().length, 2);
});

test("a SYN-ACK answering a new socket-LB connection on a closed flow's ports is not translated", () => {
  web([{ address: BACKEND_A, port: 8080 }]);
  const out = (flags: string[]) => pod(CLIENT, FRONTEND).tcp({ sport: 40200, dport: 80, flags: flags as never }).build();
  const back = (flags: string[]) => pod(BACKEND_A, CLIENT).tcp({ sport: 8080, dport: 40200, flags: flags as never }).build();
  dp.run('fromPod', out(['syn']));
  // a retransmitted SYN-ACK of the open flow is still turned back into the frontend
  assert.equal(decodePacket(dp.run('fromPod', back(['syn', 'ack'])).data).ipv4!.src, FRONTEND);
  dp.run('fromPod', out(['ack']));
  dp.run('fromPod', out(['fin', 'ack']));
  // the flow closed; the client's next socket (connect-time LB: straight to the backend)
  // reuses port 40200; the backend's SYN-ACK must reach it from the backend's own address
  dp.resetCounters();
  const r = dp.run('fromPod', back(['syn', 'ack']));
  assertPacket(r.data, { ipv4: { src: BACKEND_A, dst: CLIENT }, tcp: { sport: 8080, dport: 40200, flags: ['syn', 'ack'] } });
  assert.deepEqual(dp.counters(), { from_pod: { pass: 1 } });
  assert.equal(dp.conntrack.entries().length, 0, 'the stale pair is gone');
  // and the rest of that connection passes untouched too
  assertPacket(dp.run('fromPod', back(['ack'])).data, { ipv4: { src: BACKEND_A, dst: CLIENT }, tcp: { sport: 8080 } });
});

test('a TCP segment without SYN and without conntrack is passed to the kernel, not re-balanced', () => {
  // a connection kube-proxy set up before weir took over: the kernel's conntrack knows it
  web([{ address: BACKEND_A, port: 8080 }]);
  const ack = pod(CLIENT, FRONTEND).tcp({ sport: 40300, dport: 80, flags: ['ack', 'psh'] }).payload('mid-stream').build();
  const r = dp.run('fromPod', ack);
  assert.equal(r.retval, TC.pass);
  assert.deepEqual(r.data, ack, 'untouched');
  assert.equal(dp.conntrack.entries().length, 0, 'no entry made up for it');
  assert.deepEqual(dp.counters(), { from_pod: { midflow_no_conntrack: 1 } });
  const fromOutside = dp.run('fromHost', pod('198.18.0.100', FRONTEND).tcp({ sport: 40301, dport: 80, flags: ['ack'] }).build());
  assert.equal(decodePacket(fromOutside.data).ipv4!.dst, FRONTEND);
});
