// The IPv6 tunnel's two ends (bpf-c/lib/tunnel6.h, issue 14) through BPF_PROG_TEST_RUN, byte
// for byte: an IPv6 packet encapsulated toward a node over the IPv4 underlay (v4-mapped node
// address: outer IPv4, +50) and over the IPv6 underlay (outer IPv6, +70), in tunnel mode and in
// DSR mode (the backend in a Destination Options header, +24); a packet too big for the tunnel
// turned into ICMPv6 Packet Too Big with the MTU that fits; decapsulation of each, back to the
// packet that went in, with what the tunnel carried in skb->cb; strangers and other VNIs. The
// harness (test/fixtures/bpf/tunnel6.c) calls the library as from_host6 does; the real
// from_host and from_host6 are checked for the hand-over of IPv4-outer packets with IPv6 inside.
// Runs happen inside a lab node's netns with the skb on its eth0, so the FIB lookups the
// encapsulation makes (route to the peer, outer source, neighbour MACs, MTU) are real ones.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BpfObject, codecFor, typedMap, u8, withNetns, type BpfProgram } from '../../src/bpf/index.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { v4Mapped } from '../../src/dataplane/node-maps.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode } from '../lib/lab.js';
import { bytesToIp6 } from '../../src/bpf/ip.js';
import { assertPacket, decodePacket, eth, ipv6, parseIPv6, type PacketBuilder } from '../lib/packet.js';

const OBJ = join(process.cwd(), 'build', 'test-bpf', 'tunnel6.o');
const WEIR_OBJ = join(process.cwd(), 'build', 'bpf');
const TC_PASS = 0;
const TC_DROP = 2;
const TC_REDIRECT = 7;
const TCX_NEXT = -1;
const VNI = 0x574549;
const PORT = 4789;
const CLIENT = '2001:2:ff::100';
const CLIENT_OPTOUT = '2001:2:ff::101'; // in weir_dsr_optout6: tunnel mode under dsr
const CLIENT_MAC = '02:00:00:00:01:00';
/** pods of node2 reached over the IPv4 underlay, and (another prefix of it) over the IPv6 one */
const POD_V4U = '2001:2:0:2::7';
const POD_V6U = '2001:2:0:12::7';
const MARK = '02:57:45:49:00:0';

/** struct __sk_buff up to ifindex (offset 40); cb[0..4] at 48 comes back in the context out */
function ctxFor(ifindex: number): Buffer {
  const b = Buffer.alloc(68);
  b.writeUInt32LE(ifindex, 40);
  return b;
}

/** What tunnel6_meta_save left in skb->cb: the address (peer or DSR backend), port, mode. */
function metaOf(ctx: Buffer): { addr: string; port: number; mode: number } {
  const cb = ctx.subarray(48, 68);
  const word4 = cb.readUInt32LE(16);
  // the port is stored as the __be16 it is, shifted into the word's high half
  const port = ((word4 >>> 16) & 0xff) * 256 + (word4 >>> 24);
  return { addr: bytesToIp6(cb.subarray(0, 16)), port, mode: word4 & 0xff };
}

const synTo = (src: string, dst: string, payload = 0, macs = { src: CLIENT_MAC, dst: '02:00:00:00:00:01' }): PacketBuilder =>
  eth(macs)
    .ipv6({ src, dst, flowLabel: 0x12345 })
    .tcp({ sport: 40000, dport: 8080, seq: 1, flags: ['syn'] })
    .payload(Buffer.alloc(payload, 0x61));

/** The VXLAN header: the I flag, weir's VNI (the mode rides in the inner Ethernet header). */
function vxlan(): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(0x08000000, 0);
  b.writeUInt32BE(VNI << 8, 4);
  return b;
}

/** weir's inner Ethernet header: the mode in the destination MAC, nothing in the source, IPv6 inside. */
const innerEth = (mode: number) => eth({ dst: `${MARK}${mode}`, src: '00:00:00:00:00:00', type: 0x86dd }).build();

/** The DSR option tunnel6_dsr_opt_push writes: type 0x1e, length 18, the backend, its port (PadN after). */
const dsrOption = (backend: string, port: number) => Buffer.concat([Buffer.from([0x1e, 18]), parseIPv6(backend), Buffer.from([port >> 8, port & 0xff])]);

describe('IPv6 through the tunnel (tunnel6.h), byte for byte', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let mac1: string;
  let mac2: string;
  let eth1: number;
  let eth2: number;
  const objects: BpfObject[] = [];
  let send1: BpfProgram;
  let recv2: BpfProgram;
  let fromHost2: BpfProgram;
  let fromHost62: BpfProgram;
  let counters: () => Record<string, Record<string, number>>;
  let resetCounts: () => void;

  const run = (node: LabNode, prog: BpfProgram, data: Buffer, ifindex: number) =>
    withNetns(node.ns.name, () => prog.testRun({ data, ctx: ctxFor(ifindex), ctxSizeOut: 256 }));

  before(async () => {
    lab = await Lab.create({ name: 'tunnel6-bpf' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', address6: '2001:2::1/64' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', address6: '2001:2::2/64' });
    // the neighbours known, so the FIB gives their MACs (a plain redirect, exact bytes)
    await node1.ns.exec('ping', ['-c1', '-W2', node2.address]);
    await node1.ns.exec('ping', ['-6', '-c1', '-W2', node2.address6!]);
    [mac1, mac2] = [await node1.ns.mac('eth0'), await node2.ns.mac('eth0')];
    [eth1, eth2] = [await node1.ns.ifindex('eth0'), await node2.ns.ifindex('eth0')];
    const load = (dir: string, path: string, consts: Record<string, unknown> = {}) => {
      const pinDir = join(lab.bpffs, dir);
      mkdirSync(pinDir, { recursive: true });
      const o = BpfObject.load(path, { pinDir, consts: consts as never });
      objects.push(o);
      return o;
    };
    // node1 sends: DSR mode, CLIENT_OPTOUT opted out; DSR flows name POD_V4U's or POD_V6U's twin
    const n1 = load('node1', OBJ, { external_service_mode: 1, test_backend: parseIPv6(POD_V6U), test_backend_port: 0x901f });
    send1 = n1.program('tunnel6_test_send');
    const tunnel = typedMap(n1.map('weir_tunnel6'), codecFor('weir_tunnel6_key'), codecFor('weir_tunnel6'));
    tunnel.set({ prefixlen: 64, address: '2001:2:0:2::' }, { node_ip: v4Mapped(node2.address), flags: 1 });
    tunnel.set({ prefixlen: 64, address: '2001:2:0:12::' }, { node_ip: node2.address6!, flags: 1 });
    typedMap(n1.map('weir_dsr_optout6'), codecFor('weir_dsr_optout6_key'), u8).set({ prefixlen: 128, address: CLIENT_OPTOUT }, 1);
    // node2 receives: node1 a peer under both families; the real from_host/from_host6 share its pins
    const n2 = load('node2', OBJ);
    recv2 = n2.program('tunnel6_test_recv');
    typedMap(n2.map('weir_nodes4'), codecFor('weir_node4_key'), codecFor('weir_node4')).set({ address: node1.address }, { flags: 1 });
    typedMap(n2.map('weir_nodes6'), codecFor('weir_node6_key'), codecFor('weir_node6')).set({ address: node1.address6! }, { flags: 1 });
    fromHost2 = load('node2', join(WEIR_OBJ, 'from_host.o')).program('weir_from_host');
    fromHost62 = load('node2', join(WEIR_OBJ, 'from_host6.o')).program('weir_from_host6');
    // both nodes' counters, one map each: summed under the hook
    counters = () => {
      const a = counterTotals(readCounters(n1.map('weir_counters')));
      const b = counterTotals(readCounters(n2.map('weir_counters')));
      const out: Record<string, Record<string, number>> = {};
      for (const t of [a, b]) for (const [h, rs] of Object.entries(t)) for (const [r, n] of Object.entries(rs)) (out[h] ??= {})[r] = (out[h]?.[r] ?? 0) + n;
      return out;
    };
    resetCounts = () => {
      resetCounters(n1.map('weir_counters'));
      resetCounters(n2.map('weir_counters'));
    };
  });
  after(async () => {
    for (const o of objects) o.close();
    await lab?.destroy();
    await runCleanups();
  });

  /** Sends `input` from node1 and checks the outer headers field by field; returns the output. */
  function encapsulated(input: Buffer, underlay: 4 | 6, mode: 0 | 1, inner: Buffer): Buffer {
    const r = run(node1, send1, input, eth1);
    assert.equal(r.retval, TC_REDIRECT, `verdict ${r.retval}`);
    const d = decodePacket(r.data);
    assert.ok(d.udp, `UDP outside: ${JSON.stringify(d.ipv4 ?? d.ipv6)}`);
    const sport = d.udp.sport;
    assert.ok(sport >= 0xc000, `outer source port from the flow hash, 49152..65535: ${sport}`);
    const payload = Buffer.concat([vxlan(), innerEth(mode), inner]);
    const outer =
      underlay === 4
        ? eth({ src: mac1, dst: mac2 }).ipv4({ src: node1.address, dst: node2.address, flags: ['df'], ttl: 64 })
        : eth({ src: mac1, dst: mac2 }).ipv6({ src: node1.address6!, dst: node2.address6!, hopLimit: 64, flowLabel: d.ipv6?.flowLabel ?? -1 });
    if (underlay === 6) assert.equal(d.ipv6!.flowLabel & 0x3fff, sport & 0x3fff, 'the flow label and the source port from the same hash');
    assertPacket(r.data, outer.udp({ sport, dport: PORT, checksum: 0 }).payload(payload));
    return r.data;
  }

  for (const underlay of [4, 6] as const) {
    const pod = underlay === 4 ? POD_V4U : POD_V6U;
    const label = underlay === 4 ? 'IPv4 underlay (node ::ffff:198.18.0.2): outer IPv4, +50' : 'IPv6 underlay (node 2001:2::2): outer IPv6, +70';

    test(`tunnel mode, ${label}; node2 decapsulates it back to the packet that went in, the peer in skb->cb`, () => {
      resetCounts();
      const input = synTo(CLIENT_OPTOUT, pod, 16).build();
      const out = encapsulated(input, underlay, 0, input.subarray(14));
      assert.equal(out.length, input.length + (underlay === 4 ? 50 : 70));
      const r = run(node2, recv2, out, eth2);
      assert.equal(r.retval, TC_PASS);
      assertPacket(r.data, Buffer.concat([out.subarray(0, 12), Buffer.from([0x86, 0xdd]), input.subarray(14)]));
      assert.deepEqual(metaOf(r.ctx), { addr: underlay === 4 ? v4Mapped(node1.address) : node1.address6!, port: 0, mode: 0 });
      assert.deepEqual(counters(), { from_host: { tunnel_encap: 1, tunnel_decap: 1 } });
    });

    test(`DSR mode, ${label}: the client's packet unmodified but for a Destination Options header naming the backend (+24); node2 takes it out`, (t) => {
      resetCounts();
      // the backend the harness names (test_backend, in node2's 2001:2:0:12::/64), over this underlay
      const tunnel = typedMap(objects[0]!.map('weir_tunnel6'), codecFor('weir_tunnel6_key'), codecFor('weir_tunnel6'));
      tunnel.set({ prefixlen: 64, address: '2001:2:0:12::' }, { node_ip: underlay === 4 ? v4Mapped(node2.address) : node2.address6!, flags: 1 });
      t.after(() => tunnel.set({ prefixlen: 64, address: '2001:2:0:12::' }, { node_ip: node2.address6!, flags: 1 }));
      const input = synTo(CLIENT, '2001:2::1', 16).build(); // to the frontend (node1's address)
      const inner = ipv6({ src: CLIENT, dst: '2001:2::1', flowLabel: 0x12345, ext: [{ type: 'dest-opts', options: dsrOption(POD_V6U, 8080) }] })
        .tcp({ sport: 40000, dport: 8080, seq: 1, flags: ['syn'] })
        .payload(Buffer.alloc(16, 0x61))
        .build();
      const out = encapsulated(input, underlay, 1, inner);
      assert.equal(out.length, input.length + (underlay === 4 ? 50 : 70) + 24);
      const r = run(node2, recv2, out, eth2);
      assert.equal(r.retval, TC_PASS);
      assertPacket(r.data, Buffer.concat([out.subarray(0, 12), Buffer.from([0x86, 0xdd]), input.subarray(14)]));
      assert.deepEqual(metaOf(r.ctx), { addr: POD_V6U, port: 8080, mode: 1 });
      assert.deepEqual(counters(), { from_host: { tunnel_encap: 1, tunnel_decap: 1 } });
    });
  }

  for (const [underlay, mode, mtu] of [
    [4, 0, 1450],
    [6, 0, 1430],
    [6, 1, 1406],
  ] as const) {
    test(`a 1500-byte IPv6 packet, ${mode ? 'DSR' : 'tunnel'} mode over the IPv${underlay} underlay: ICMPv6 Packet Too Big, MTU ${mtu}, back to the client as it sent it`, () => {
      resetCounts();
      const dst = mode ? '2001:2::1' : underlay === 4 ? POD_V4U : POD_V6U;
      const input = synTo(mode ? CLIENT : CLIENT_OPTOUT, dst, 1500 - 60).build();
      assert.equal(input.length, 14 + 1500);
      const r = run(node1, send1, input, eth1);
      assert.equal(r.retval, TC_REDIRECT, 'back out the interface it came in on');
      const ip = decodePacket(input).ipv6!;
      assertPacket(
        r.data,
        eth({ src: '02:00:00:00:00:01', dst: CLIENT_MAC })
          .ipv6({ src: ip.dst, dst: ip.src, hopLimit: 64 })
          .icmpv6({ type: 'packet-too-big', mtu, embedded: input.subarray(14, 14 + 40 + 8) }),
      );
      assert.deepEqual(counters(), { from_host: { tunnel_frag_needed: 1 } });
    });
  }

  test("node2: weir's VNI from an address that is no peer is dropped (tunnel_denied); another VNI is not weir's and passes untouched", () => {
    resetCounts();
    const inner = Buffer.concat([vxlan(), innerEth(0), synTo(CLIENT, POD_V6U).build().subarray(14)]);
    const stranger = eth({}).ipv6({ src: '2001:2::99', dst: node2.address6! }).udp({ sport: 50000, dport: PORT, checksum: 0 }).payload(inner).build();
    assert.equal(run(node2, recv2, stranger, eth2).retval, TC_DROP);
    const other = Buffer.from(inner);
    other.writeUInt32BE((VNI + 1) << 8, 4);
    const notOurs = eth({}).ipv6({ src: node1.address6!, dst: node2.address6! }).udp({ sport: 50000, dport: PORT, checksum: 0 }).payload(other).build();
    const r = run(node2, recv2, notOurs, eth2);
    assert.equal(r.retval, TC_PASS);
    assertPacket(r.data, notOurs);
    assert.deepEqual(counters(), { from_host: { tunnel_denied: 1 } });
  });

  test('the real hooks: from_host hands an IPv4-outer tunnel packet with IPv6 inside to the next program (TCX_NEXT, untouched); from_host6 decapsulates it', () => {
    resetCounts();
    const input = synTo(CLIENT_OPTOUT, POD_V4U, 16).build();
    const out = encapsulated(input, 4, 0, input.subarray(14));
    resetCounts();
    const v4 = run(node2, fromHost2, out, eth2);
    assert.equal(v4.retval | 0, TCX_NEXT, 'from_host: on to from_host6');
    assertPacket(v4.data, out);
    const v6 = run(node2, fromHost62, out, eth2);
    assert.equal(v6.retval, TC_PASS);
    assertPacket(v6.data, Buffer.concat([out.subarray(0, 12), Buffer.from([0x86, 0xdd]), input.subarray(14)]));
    const c = counters();
    assert.equal(c.from_host?.tunnel_decap, 1, JSON.stringify(c));
  });

  test('figures: the median time of one run of each end (printed, not asserted: benches measure)', () => {
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const time = (node: LabNode, prog: BpfProgram, data: Buffer, ifindex: number) => {
      const ns: number[] = [];
      for (let i = 0; i < 500; i++) ns.push(run(node, prog, data, ifindex).durationNs);
      return median(ns);
    };
    const rows: string[] = [];
    for (const [label, input] of [
      ['tunnel, IPv4 underlay', synTo(CLIENT_OPTOUT, POD_V4U, 16).build()],
      ['tunnel, IPv6 underlay', synTo(CLIENT_OPTOUT, POD_V6U, 16).build()],
      ['DSR, IPv6 underlay', synTo(CLIENT, '2001:2::1', 16).build()],
    ] as const) {
      const out = run(node1, send1, input, eth1);
      assert.equal(out.retval, TC_REDIRECT, label);
      rows.push(`${label}: encapsulate ${time(node1, send1, input, eth1)} ns, decapsulate ${time(node2, recv2, out.data, eth2)} ns`);
    }
    for (const r of rows) console.log(`# ${r}`);
  });
});
