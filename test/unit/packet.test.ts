// The packet test library itself: known checksum vectors, build -> decode round trips for
// every layer, malformed packets decoded without throwing, and diffs that name the field.

import assert from 'node:assert/strict';
import { AssertionError } from 'node:assert';
import { describe, it } from 'node:test';
import {
  assertPacket,
  decodePacket,
  diffPackets,
  eth,
  formatIPv6,
  formatMac,
  inetChecksum,
  ip4ToU32,
  ip6ToU32s,
  ipv4,
  ipv6,
  onesSum,
  parseIPv4,
  parseIPv6,
  parseMac,
  truncate,
  u32ToIp4,
} from '../lib/packet.js';

const MACS = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };
const CLIENT = '198.18.0.1';
const SERVICE = '198.19.0.10';
const CLIENT6 = '2001:2::1';
const SERVICE6 = '2001:2::2';

const syn = eth(MACS)
  .ipv4({ src: CLIENT, dst: SERVICE })
  .tcp({ sport: 40000, dport: 80, seq: 1, flags: ['syn'], options: [2, 4, 0x05, 0xb4] /* mss 1460 */ })
  .payload('hi');

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('checksums against known values', () => {
  it("RFC 1071 section 3 example: one's-complement sum ddf2, checksum 220d", () => {
    const data = hex('0001 f203 f4f5 f6f7');
    assert.equal(onesSum(data), 0xddf2);
    assert.equal(inetChecksum(data), 0x220d);
  });

  it('odd-length data is padded with a zero byte', () => {
    assert.equal(onesSum(hex('0001 f203 f4f5 f6')), onesSum(hex('0001 f203 f4f5 f600')));
  });

  it('hand-computed IPv4 header: 4500 0054 0000 4000 4001 ae78 c612 0001 c613 000a', () => {
    // 4500+0054+4000+4001+c612+0001+c613+000a = 2_5185 -> 5187 folded -> ae78 inverted
    const header = hex('4500 0054 0000 4000 4001 0000 c612 0001 c613 000a');
    assert.equal(inetChecksum(header), 0xae78);
    const built = ipv4({ src: CLIENT, dst: SERVICE, flags: ['df'] })
      .icmp({ type: 'echo-request' })
      .payload(Buffer.alloc(56))
      .build();
    assert.deepEqual(built.subarray(0, 20), hex('4500 0054 0000 4000 4001 ae78 c612 0001 c613 000a'));
    assert.equal(onesSum(built.subarray(0, 20)), 0xffff, 'a header summed with its checksum is all ones');
  });

  it('TCP SYN builds the exact bytes tcpdump -vvv reports as "cksum 0x06f9 (correct)"', () => {
    assert.deepEqual(
      syn.build(),
      hex(`020000000002 020000000001 0800
           4500 002e 0000 0000 4006 ee99 c612 0001 c613 000a
           9c40 0050 0000 0001 0000 0000 6002 ffff 06f9 0000 0204 05b4
           6869`),
    );
  });

  it('IPv6 checksums use the final destination of a routing header (tcpdump: 0xf7c6 correct)', () => {
    const pkt = eth(MACS)
      .ipv6({ src: CLIENT6, dst: SERVICE6, ext: [{ type: 'routing', segmentsLeft: 1, addresses: ['2001:2::3'] }] })
      .tcp({ sport: 1, dport: 2, flags: ['ack'] })
      .payload('x')
      .build();
    const d = decodePacket(pkt);
    assert.equal(d.tcp?.checksum, 0xf7c6);
    assert.equal(d.tcp?.checksumValid, true);
  });

  it('UDP over IPv6 extension headers and ICMPv6 echo match tcpdump ("sum ok")', () => {
    const udp = eth(MACS)
      .ipv6({ src: CLIENT6, dst: SERVICE6, ext: [{ type: 'hop-by-hop' }, { type: 'dest-opts', options: [1, 1, 0] }] })
      .udp({ sport: 1, dport: 53 })
      .payload('q');
    assert.equal(decodePacket(udp.build()).udp?.checksum, 0x4e9d);
    const echo = eth(MACS).ipv6({ src: CLIENT6, dst: SERVICE6 }).icmpv6({ type: 'echo-request', id: 7, seq: 1 }).payload('ping');
    assert.equal(decodePacket(echo.build()).icmpv6?.checksum, 0x60d7);
  });

  it('a UDP checksum of 0 means "none": valid over IPv4, invalid over IPv6', () => {
    const v4 = eth(MACS).ipv4({ src: CLIENT, dst: SERVICE }).udp({ sport: 5353, dport: 53, checksum: 0 }).payload('q');
    const v6 = eth(MACS).ipv6({ src: CLIENT6, dst: SERVICE6 }).udp({ sport: 5353, dport: 53, checksum: 0 }).payload('q');
    assert.deepEqual(decodePacket(v4.build()).udp, { proto: 'udp', sport: 5353, dport: 53, length: 9, checksum: 0, checksumValid: true });
    assert.equal(decodePacket(v6.build()).udp?.checksumValid, false);
  });
});

describe('address helpers', () => {
  it('parses and formats MAC, IPv4 and IPv6', () => {
    assert.deepEqual(parseMac('02:00:00:00:00:0A'), hex('02000000000a'));
    assert.equal(formatMac(hex('02000000000a')), '02:00:00:00:00:0a');
    assert.deepEqual(parseIPv4('198.19.0.10'), hex('c613000a'));
    assert.equal(ip4ToU32('198.18.0.1'), 0xc6120001);
    assert.equal(u32ToIp4(0xc613000a), '198.19.0.10');
    assert.deepEqual(parseIPv6('2001:2::1'), hex('20010002000000000000000000000001'));
    assert.deepEqual(ip6ToU32s('2001:2::ff'), [0x20010002, 0, 0, 0xff]);
  });

  it('formats IPv6 canonically (RFC 5952)', () => {
    assert.equal(formatIPv6(parseIPv6('2001:0002:0000:0000:0000:0000:0000:0001')), '2001:2::1');
    assert.equal(formatIPv6(parseIPv6('2001:2:0:1:0:0:0:1')), '2001:2:0:1::1');
    assert.equal(formatIPv6(parseIPv6('2001:2::')), '2001:2::');
    assert.equal(formatIPv6(parseIPv6('2001:2:0:0:1:0:0:1')), '2001:2::1:0:0:1');
    assert.equal(formatIPv6(parseIPv6('2001:2:0:1:2:3:4:5')), '2001:2:0:1:2:3:4:5');
    assert.equal(formatIPv6(parseIPv6('::ffff:198.18.0.1')), '::ffff:c612:1');
  });

  it('rejects malformed addresses', () => {
    for (const bad of ['198.18.0', '198.18.0.256', '198.18.0.1.1']) assert.throws(() => parseIPv4(bad), /invalid IPv4/);
    for (const bad of ['2001:2:::1', '2001:2::1::2', '2001:2:0:0:0:0:0:0:1', '2001:2::g']) assert.throws(() => parseIPv6(bad), /invalid IPv6/);
    assert.throws(() => parseMac('02:00:00:00:00'), /invalid MAC/);
  });
});

describe('build -> decode round trips', () => {
  it('Ethernet, IPv4 and TCP: every field', () => {
    const pkt = eth(MACS)
      .ipv4({ src: CLIENT, dst: SERVICE, ttl: 17, id: 0x1234, tos: 0x10, flags: ['df'] })
      .tcp({ sport: 40000, dport: 80, seq: 0xdeadbeef, ack: 7, flags: ['psh', 'ack'], window: 512, urgent: 3, options: [1, 1, 8] })
      .payload('hello')
      .build();
    assert.deepEqual(decodePacket(pkt), {
      length: 14 + 20 + 24 + 5,
      eth: { dst: MACS.dst, src: MACS.src, type: 0x0800 },
      ipv4: {
        version: 4,
        ihl: 5,
        tos: 0x10,
        totalLength: 49,
        id: 0x1234,
        flags: ['df'],
        fragOffset: 0,
        ttl: 17,
        protocol: 6,
        checksum: decodePacket(pkt).ipv4!.checksum,
        checksumValid: true,
        src: CLIENT,
        dst: SERVICE,
        options: Buffer.alloc(0),
      },
      tcp: decodePacket(pkt).tcp,
      l4: decodePacket(pkt).tcp,
      payload: Buffer.from('hello'),
      errors: [],
    });
    assertPacket(pkt, {
      tcp: {
        sport: 40000,
        dport: 80,
        seq: 0xdeadbeef,
        ack: 7,
        dataOffset: 6,
        reserved: 0,
        flags: ['ack', 'psh'],
        window: 512,
        urgent: 3,
        options: [1, 1, 8, 0],
      },
    });
  });

  it('802.1Q tag, IPv4 options padded to 4 bytes, UDP', () => {
    const pkt = eth({ ...MACS, vlan: { id: 100, pcp: 3 } })
      .ipv4({ src: CLIENT, dst: SERVICE, options: [0x94, 0x04, 0x00] /* router alert, 3 of 4 bytes */ })
      .udp({ sport: 5353, dport: 53 })
      .payload('abc')
      .build();
    assertPacket(pkt, {
      eth: { type: 0x0800, vlan: { tpid: 0x8100, pcp: 3, dei: false, id: 100 } },
      ipv4: { ihl: 6, totalLength: 24 + 8 + 3, protocol: 17, options: [0x94, 0x04, 0x00, 0x00] },
      udp: { sport: 5353, dport: 53, length: 11 },
      payload: 'abc',
    });
  });

  it('IPv6 with hop-by-hop, destination options, routing and fragment headers', () => {
    const pkt = eth(MACS)
      .ipv6({
        src: CLIENT6,
        dst: SERVICE6,
        hopLimit: 9,
        trafficClass: 0xb8,
        flowLabel: 0x12345,
        ext: [
          { type: 'hop-by-hop', options: [5, 2, 0, 0] /* router alert */ },
          { type: 'dest-opts' },
          { type: 'routing', routingType: 0, segmentsLeft: 0, addresses: ['2001:2::3'] },
          { type: 'fragment', id: 0xabcdef, offset: 0, more: false },
        ],
      })
      .udp({ sport: 1, dport: 53 })
      .payload('q')
      .build();
    assertPacket(pkt, {
      eth: { type: 0x86dd },
      ipv6: {
        version: 6,
        trafficClass: 0xb8,
        flowLabel: 0x12345,
        payloadLength: 8 + 8 + 24 + 8 + 9,
        nextHeader: 0,
        hopLimit: 9,
        src: CLIENT6,
        dst: SERVICE6,
        ext: [
          { type: 'hop-by-hop', nextHeader: 60, length: 8, options: [5, 2, 0, 0, 1, 0] /* + PadN */ },
          { type: 'dest-opts', nextHeader: 43, length: 8, options: [1, 4, 0, 0, 0, 0] },
          { type: 'routing', nextHeader: 44, length: 24, routingType: 0, segmentsLeft: 0, addresses: ['2001:2::3'] },
          { type: 'fragment', nextHeader: 17, length: 8, offset: 0, more: false, id: 0xabcdef },
        ],
      },
      udp: { sport: 1, dport: 53, length: 9 },
      payload: 'q',
    });
  });

  it('ICMP echo and an ICMP error carrying the offending packet', () => {
    const echo = eth(MACS).ipv4({ src: CLIENT, dst: SERVICE }).icmp({ type: 'echo-request', id: 0x1234, seq: 1 }).payload('ping');
    assertPacket(echo.build(), {
      icmp: { type: 8, typeName: 'echo-request', code: 0, id: 0x1234, seq: 1, rest: 0x12340001 },
      payload: 'ping',
    });
    const offending = ipv4({ src: SERVICE, dst: '198.18.0.99', ttl: 1 }).tcp({ sport: 80, dport: 40000, flags: ['syn', 'ack'] });
    const err = eth(MACS).ipv4({ src: '198.18.0.254', dst: SERVICE }).icmp({ type: 'dest-unreachable', code: 4, mtu: 1400, embedded: offending }).build();
    assertPacket(err, {
      icmp: {
        typeName: 'dest-unreachable',
        code: 4,
        mtu: 1400,
        checksumValid: true,
        embedded: { ipv4: { src: SERVICE, dst: '198.18.0.99', ttl: 1, checksumValid: true }, tcp: { flags: ['syn', 'ack'], checksumValid: true } },
      },
      payload: '',
    });
  });

  it('ICMPv6 echo reply and packet-too-big', () => {
    const reply = eth(MACS).ipv6({ src: SERVICE6, dst: CLIENT6 }).icmpv6({ type: 'echo-reply', id: 7, seq: 2 }).payload('pong');
    assertPacket(reply.build(), { ipv6: { nextHeader: 58 }, icmpv6: { type: 129, id: 7, seq: 2 }, payload: 'pong' });
    const ptb = eth(MACS)
      .ipv6({ src: '2001:2::fe', dst: CLIENT6 })
      .icmpv6({ type: 'packet-too-big', mtu: 1280, embedded: ipv6({ src: CLIENT6, dst: SERVICE6 }).udp({ sport: 3, dport: 4 }).payload('x') })
      .build();
    assertPacket(ptb, { icmpv6: { type: 2, mtu: 1280, rest: 1280, embedded: { ipv6: { dst: SERVICE6 }, udp: { dport: 4 }, payload: 'x' } } });
  });

  it('packets that start at the IP header decode with from: "ip"', () => {
    const pkt = ipv6({ src: CLIENT6, dst: SERVICE6 })
      .tcp({ sport: 1, dport: 443, flags: ['fin', 'ack'] })
      .build();
    assertPacket(pkt, { ipv6: { src: CLIENT6 }, tcp: { dport: 443, flags: ['fin', 'ack'] } }, { from: 'ip' });
    assert.equal(decodePacket(pkt, { from: 'ip' }).eth, undefined);
  });

  it('IPv4 fragments: the first has an uncheckable L4 checksum, later ones no L4 header', () => {
    const first = eth(MACS)
      .ipv4({ src: CLIENT, dst: SERVICE, id: 9, flags: ['mf'] })
      .udp({ sport: 1, dport: 2, length: 1000 })
      .payload('x');
    assertPacket(first.build(), { ipv4: { flags: ['mf'], fragOffset: 0 }, udp: { checksumValid: null } }, { cleanDecode: false });
    const later = eth(MACS).ipv4({ src: CLIENT, dst: SERVICE, id: 9, fragOffset: 125, protocol: 17 }).payload('rest of datagram');
    const d = decodePacket(later.build());
    assert.equal(d.l4, undefined);
    assert.deepEqual(d.payload, Buffer.from('rest of datagram'));
    assert.deepEqual(d.errors, []);
  });

  it('IP in IP and non-IP ethertypes', () => {
    const tunnel = eth(MACS).ipv4({ src: CLIENT, dst: SERVICE }).ipv6({ src: CLIENT6, dst: SERVICE6 }).udp({ sport: 1, dport: 2 });
    assertPacket(tunnel.build(), { ipv4: { protocol: 41 }, payload: tunnel.build().subarray(34) });
    const arp = eth({ ...MACS, type: 0x0806 })
      .payload([0, 1, 8, 0])
      .build();
    assert.deepEqual(decodePacket(arp), { length: 18, eth: { ...MACS, type: 0x0806 }, payload: hex('00010800'), errors: [] });
  });

  it('builders are immutable, so fixtures can share a prefix', () => {
    const toService = eth(MACS).ipv4({ src: CLIENT, dst: SERVICE });
    const tcp = toService.tcp({ sport: 1, dport: 80 }).build();
    const udp = toService.udp({ sport: 1, dport: 53 }).build();
    assert.equal(decodePacket(tcp).ipv4?.protocol, 6);
    assert.equal(decodePacket(udp).ipv4?.protocol, 17);
    assert.equal(toService.build().length, 34);
  });

  it('rejects layer orders and raw payloads it cannot label', () => {
    assert.throws(() => eth(MACS).tcp({ sport: 1, dport: 2 }), /tcp cannot follow eth/);
    assert.throws(() => eth(MACS).payload('x').build(), /eth: give `type`/);
    assert.throws(() => eth(MACS).ipv4({ src: CLIENT, dst: SERVICE }).payload('x').build(), /ipv4: give the protocol/);
    assert.throws(() => syn.truncate(10).payload('x'), /cannot follow truncate/);
  });
});

describe('malformed packets decode with errors, never throw', () => {
  const base = { src: CLIENT, dst: SERVICE };

  it('IHL below 5', () => {
    const d = decodePacket(
      eth(MACS)
        .ipv4({ ...base, ihl: 4 })
        .tcp({ sport: 1, dport: 2 })
        .build(),
    );
    assert.equal(d.ipv4?.ihl, 4);
    assert.equal(d.ipv4?.src, CLIENT);
    assert.equal(d.ipv4?.checksumValid, null);
    assert.equal(d.l4, undefined);
    assert.deepEqual(d.errors, ['ipv4: ihl 4 below 5']);
  });

  it('IHL beyond the packet', () => {
    const d = decodePacket(
      eth(MACS)
        .ipv4({ ...base, ihl: 15, protocol: 6 })
        .build(),
    );
    assert.deepEqual(d.errors, ['ipv4: header length 60 (ihl 15) exceeds 20 bytes available']);
    assert.equal(d.ipv4?.truncated, true);
  });

  it('total length longer than the packet, and shorter than the header', () => {
    const long = decodePacket(
      eth(MACS)
        .ipv4({ ...base, totalLength: 1500 })
        .udp({ sport: 1, dport: 2 })
        .payload('x')
        .build(),
    );
    assert.deepEqual(long.errors, ['ipv4: total length 1500 exceeds 29 bytes available']);
    assert.equal(long.udp?.dport, 2, 'still reads the transport header that arrived');
    assert.equal(long.udp?.checksumValid, null);
    const short = decodePacket(
      eth(MACS)
        .ipv4({ ...base, totalLength: 12 })
        .udp({ sport: 1, dport: 2 })
        .build(),
    );
    assert.deepEqual(short.errors, ['ipv4: total length 12 below header length 20']);
  });

  it('TCP data offset beyond the segment', () => {
    const d = decodePacket(eth(MACS).ipv4(base).tcp({ sport: 1, dport: 2, dataOffset: 15 }).payload('abcd').build());
    assert.deepEqual(d.errors, ['tcp: data offset 15 (60 bytes) beyond segment of 24 bytes']);
    assert.equal(d.tcp?.truncated, true);
    assert.equal(d.tcp?.sport, 1);
  });

  it('UDP length beyond the IP payload', () => {
    const d = decodePacket(eth(MACS).ipv4(base).udp({ sport: 1, dport: 2, length: 100 }).build());
    assert.deepEqual(d.errors, ['udp: length 100 exceeds 8 bytes of IP payload']);
  });

  it('truncated Ethernet keeps the addresses that arrived', () => {
    const d = decodePacket(truncate(syn.build(), 10));
    assert.deepEqual(d.eth, { dst: MACS.dst, truncated: true });
    assert.deepEqual(d.errors, ['eth: truncated header: 10 of 14 bytes']);
  });

  it('IPv6 extension header running past the payload', () => {
    const d = decodePacket(
      eth(MACS)
        .ipv6({ src: CLIENT6, dst: SERVICE6, ext: [{ type: 'hop-by-hop', hdrExtLen: 4 }] })
        .udp({ sport: 1, dport: 2 })
        .build(),
    );
    assert.deepEqual(d.errors, ['ipv6: hop-by-hop header of 40 bytes exceeds 16 bytes left']);
  });

  it('wrong checksums are reported as invalid, not corrected', () => {
    const d = decodePacket(
      eth(MACS)
        .ipv4({ ...base, checksum: 0x1234 })
        .tcp({ sport: 1, dport: 2, checksum: 0xbeef })
        .build(),
    );
    assert.deepEqual([d.ipv4?.checksum, d.ipv4?.checksumValid, d.tcp?.checksum, d.tcp?.checksumValid], [0x1234, false, 0xbeef, false]);
  });

  it('every truncation of every layer type decodes without throwing', () => {
    const fixtures = [
      syn,
      eth({ ...MACS, vlan: 7 })
        .ipv4({ ...base, options: [1, 1, 1, 0] })
        .udp({ sport: 1, dport: 2 })
        .payload('udp'),
      eth(MACS)
        .ipv4(base)
        .icmp({ type: 'time-exceeded', embedded: ipv4(base).udp({ sport: 1, dport: 2 }) }),
      eth(MACS)
        .ipv6({ src: CLIENT6, dst: SERVICE6, ext: [{ type: 'hop-by-hop' }, { type: 'routing', addresses: [CLIENT6] }, { type: 'fragment' }] })
        .icmpv6({ type: 'echo-request' }),
    ];
    for (const f of fixtures) {
      const full = f.build();
      assert.deepEqual(decodePacket(full).errors, [], 'the untruncated fixture is clean');
      for (let n = 0; n < full.length; n++) {
        const d = decodePacket(f.truncate(n).build());
        assert.equal(d.length, n);
        assert.ok(d.errors.length > 0, `${n} of ${full.length} bytes must report an error`);
        assert.ok(!d.errors.some((e) => e.startsWith('decoder:')), d.errors.join('; '));
      }
    }
  });
});

describe('diffs name the fields that differ', () => {
  it('partial expectations compare only the fields given', () => {
    const diffs = diffPackets(syn.build(), {
      ipv4: { ttl: 63, dst: '198.19.0.11' },
      tcp: { dport: 80, flags: ['syn', 'ack'] },
      payload: 'ho',
    });
    assert.deepEqual(diffs, [
      'ipv4.ttl: expected 63, got 64',
      'ipv4.dst: expected 198.19.0.11, got 198.19.0.10',
      'tcp.flags: expected [syn,ack], got [syn]',
      'payload: expected 2 bytes 686f "ho", got 2 bytes 6869 "hi" (first difference at offset 1)',
    ]);
  });

  it('whole-packet expectations compare every field, checksums included', () => {
    const expected = eth(MACS)
      .ipv4({ src: CLIENT, dst: SERVICE, ttl: 63 })
      .tcp({ sport: 40000, dport: 80, seq: 1, flags: ['syn'], options: [2, 4, 0x05, 0xb4] })
      .payload('hi');
    assert.deepEqual(diffPackets(syn.build(), expected), ['ipv4.ttl: expected 63, got 64', 'ipv4.checksum: expected 0xef99, got 0xee99']);
    assert.deepEqual(diffPackets(syn.build(), syn), []);
    assert.deepEqual(diffPackets(syn.build(), syn.build()), []);
  });

  it('a missing or unexpected layer is one line', () => {
    assert.deepEqual(diffPackets(syn.build(), { udp: { dport: 53 } }), ['udp: expected {dport: 53}, got (absent)']);
    const udp = eth(MACS).ipv4({ src: CLIENT, dst: SERVICE }).udp({ sport: 40000, dport: 80 }).payload('hi');
    const diffs = diffPackets(udp.build(), syn);
    assert.ok(diffs.includes('ipv4.protocol: expected 6, got 17'), diffs.join('\n'));
    assert.ok(
      diffs.some((d) => d.startsWith('tcp: expected {proto: tcp, sport: 40000')),
      diffs.join('\n'),
    );
    assert.ok(
      diffs.some((d) => d.startsWith('udp: expected (absent), got {proto: udp')),
      diffs.join('\n'),
    );
  });

  it('nested fields of an embedded packet are named by path', () => {
    const err = eth(MACS)
      .ipv4({ src: CLIENT, dst: SERVICE })
      .icmp({ type: 'time-exceeded', embedded: ipv4({ src: SERVICE, dst: CLIENT }).udp({ sport: 1, dport: 2 }) });
    assert.deepEqual(diffPackets(err.build(), { icmp: { embedded: { ipv4: { dst: SERVICE }, udp: { dport: 3 } } } }), [
      'icmp.embedded.ipv4.dst: expected 198.19.0.10, got 198.18.0.1',
      'icmp.embedded.udp.dport: expected 3, got 2',
    ]);
  });

  it('invalid checksums and decode errors fail a partial expectation unless it says otherwise', () => {
    const badL4 = eth(MACS).ipv4({ src: CLIENT, dst: SERVICE }).tcp({ sport: 1, dport: 2, checksum: 0 }).build();
    assert.deepEqual(diffPackets(badL4, { tcp: { dport: 2 } }), ['tcp.checksumValid: expected true, got false']);
    assert.deepEqual(diffPackets(badL4, { tcp: { dport: 2, checksumValid: false } }), []);
    assert.deepEqual(diffPackets(badL4, { tcp: { dport: 2 } }, { checksums: false }), []);
    const short = eth(MACS).ipv4({ src: CLIENT, dst: SERVICE, totalLength: 12 }).udp({ sport: 1, dport: 2 }).build();
    assert.deepEqual(diffPackets(short, { ipv4: { src: CLIENT } }), ['errors: expected none, got ipv4: total length 12 below header length 20']);
    assert.deepEqual(diffPackets(short, { ipv4: { src: CLIENT }, errors: ['ipv4: total length 12 below header length 20'] }), []);
  });

  it('assertPacket throws an AssertionError whose message is the diff', () => {
    assertPacket(syn.build(), { ipv4: { dst: SERVICE }, tcp: { flags: ['syn'] }, payload: 'hi' });
    assert.throws(
      () => assertPacket(syn.build(), { ipv4: { ttl: 63 }, tcp: { dport: 443 } }),
      (err: unknown) => {
        assert.ok(err instanceof AssertionError);
        assert.equal(
          err.message,
          [
            'packet differs in 2 fields:',
            '  ipv4.ttl: expected 63, got 64',
            '  tcp.dport: expected 443, got 80',
            '  actual: eth 02:00:00:00:00:01 > 02:00:00:00:00:02 ipv4 198.18.0.1 > 198.19.0.10 ttl 64 tcp 40000 > 80 [syn] len 2',
          ].join('\n'),
        );
        return true;
      },
    );
  });
});
