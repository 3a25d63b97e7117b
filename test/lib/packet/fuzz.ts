// Hostile packets for the fuzzer (test/fuzz): a pool of well-formed templates of every kind
// the programs parse (both families, VXLAN frames with either inner family, ICMP errors that
// quote NAT'd flows, fragments, IPv4 options, IPv6 extension headers, SCTP, ARP, VLAN), each
// aimed either at the state the fuzzer programs into the maps or at strangers, then mutated
// (bytes flipped, lengths lied about, truncated, checksums broken, junk appended) by a seeded
// PRNG: the same seed gives the same packets, byte for byte.

import { eth, ipv4, ipv6, type PacketBuilder } from './build.js';
import { parseIPv6 } from './addr.js';

/** Addresses of the state the fuzzer programs, and of strangers that match none of it. */
export interface FuzzWorld {
  v4: FamilyWorld;
  v6: FamilyWorld;
}
export interface FamilyWorld {
  /** frontends as address, port, protocol (6, 17, 132; 1 or 58: an echo frontend); `empty`: no
   *  backends, so a new flow gets a reject built from the hostile packet */
  frontends: { address: string; port: number; protocol: number; empty?: boolean }[];
  backends: { address: string; port: number }[];
  clients: string[];
  /** peer nodes' underlay addresses (weir_nodes4/6) */
  peers: string[];
  /** addresses in another node's pod CIDR (weir_tunnel4/6) */
  remotePods: string[];
  /** addresses no map holds, nor any prefix of one (stateless below) */
  strangers: string[];
}

/**
 * The world the campaign programs. All state is in 198.18.0.0/16 and in five /64s of
 * 2001:2::/48; strangers are in 198.19.0.0/16 and 2001:2:0:ff::/64, so stateless() can tell
 * from the bytes alone that a packet matches no state.
 */
export const FUZZ_WORLD: FuzzWorld = {
  v4: {
    frontends: [
      { address: '198.18.100.1', port: 80, protocol: 6 },
      { address: '198.18.100.1', port: 53, protocol: 17 },
      { address: '198.18.100.2', port: 9000, protocol: 132 },
      { address: '198.18.100.3', port: 0, protocol: 1 },
      { address: '198.18.100.4', port: 80, protocol: 6, empty: true },
      { address: '198.18.100.4', port: 53, protocol: 17, empty: true },
    ],
    backends: [
      { address: '198.18.1.10', port: 8080 },
      { address: '198.18.1.11', port: 8080 },
      { address: '198.18.2.20', port: 8080 }, // on the peer node: through the tunnel
    ],
    clients: ['198.18.50.1', '198.18.50.2'],
    peers: ['198.18.200.2'],
    remotePods: ['198.18.2.20', '198.18.2.99'],
    strangers: ['198.19.7.1', '198.19.7.2', '198.19.9.9', '198.19.255.254'],
  },
  v6: {
    frontends: [
      { address: '2001:2:0:f::1', port: 80, protocol: 6 },
      { address: '2001:2:0:f::1', port: 53, protocol: 17 },
      { address: '2001:2:0:f::2', port: 9000, protocol: 132 },
      { address: '2001:2:0:f::3', port: 0, protocol: 58 },
      { address: '2001:2:0:f::4', port: 80, protocol: 6, empty: true },
      { address: '2001:2:0:f::4', port: 53, protocol: 17, empty: true },
    ],
    backends: [
      { address: '2001:2:0:b::10', port: 8080 },
      { address: '2001:2:0:b::11', port: 8080 },
      { address: '2001:2:0:2::20', port: 8080 },
    ],
    clients: ['2001:2:0:c::1', '2001:2:0:c::2'],
    peers: ['2001:2:0:a::2'],
    remotePods: ['2001:2:0:2::20', '2001:2:0:2::99'],
    strangers: ['2001:2:0:ff::1', '2001:2:0:ff::2', '2001:2:0:ff::99', '2001:2:0:ff:ffff::1'],
  },
};

const V4_STATE = Buffer.from([198, 18]);
const V6_HEAD = parseIPv6('2001:2::').subarray(0, 6);
const V6_STATE = ['a', 'b', 'c', 'f', '2'].map((g) => parseIPv6(`2001:2:0:${g}::`).subarray(0, 8));

/**
 * Whether @packet matches no state of FUZZ_WORLD, judged from its bytes alone: no 198.18.x.x
 * anywhere in it (v4-mapped IPv6 addresses included), nor the /64 of any IPv6 state address.
 * Conservative: a packet that merely carries those bytes in its payload counts as stateful.
 */
export function stateless(packet: Buffer): boolean {
  if (packet.indexOf(V4_STATE) >= 0) return false;
  if (packet.indexOf(V6_HEAD) < 0) return true;
  return V6_STATE.every((p) => packet.indexOf(p) < 0);
}

/** Small deterministic PRNG (mulberry32), so a failure names a reproducible seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rnd = () => number;
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const int = (rnd: Rnd, n: number) => Math.floor(rnd() * n);

export const VXLAN_PORT = 4789;
const WEIR_VNI = 0x574549;
const WEIR_MAC = (mode: number) => `02:57:45:49:00:0${mode}`;

/** One template: a kind (for the report) and its bytes. */
export interface FuzzTemplate {
  kind: string;
  packet: Buffer;
}

interface Ends {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
}

/** A flow's ends in @w: to a frontend, its reply from a backend, or between strangers. */
function ends(rnd: Rnd, w: FamilyWorld): Ends {
  const fe = pick(rnd, w.frontends);
  const be = pick(rnd, w.backends);
  const client = pick(rnd, w.clients);
  const sport = 40000 + int(rnd, 4);
  switch (int(rnd, 4)) {
    case 0:
      return { src: client, dst: fe.address, sport, dport: fe.port, proto: fe.protocol };
    case 1:
      return { src: be.address, dst: client, sport: be.port, dport: sport, proto: pick(rnd, [6, 17]) };
    case 2:
      return { src: client, dst: be.address, sport, dport: be.port, proto: pick(rnd, [6, 17, 132]) };
    default:
      return { src: pick(rnd, w.strangers), dst: pick(rnd, w.strangers), sport, dport: pick(rnd, [80, 53, 9000, VXLAN_PORT]), proto: pick(rnd, [6, 17]) };
  }
}

/** The IP layer and what is inside it, for @e; ICMP when the protocol is the family's echo. */
function ipPacket(rnd: Rnd, v6: boolean, e: Ends, opts: { frag?: 'first' | 'later'; ext?: boolean; options?: boolean } = {}): PacketBuilder {
  let b: PacketBuilder;
  if (v6) {
    const ext: NonNullable<Parameters<typeof ipv6>[0]['ext']>[number][] = [];
    if (opts.ext) {
      const kinds = ['hop-by-hop', 'dest-opts', 'routing'] as const;
      // now and then a chain deeper than the parser walks (PARSE_IPV6_MAX_EXTHDRS, 6)
      for (let n = rnd() < 0.1 ? 5 + int(rnd, 4) : 1 + int(rnd, 3); n > 0; n--) {
        const k = pick(rnd, kinds);
        ext.push(k === 'routing' ? { type: k, segmentsLeft: 0, addresses: [pick(rnd, FUZZ_WORLD.v6.strangers)] } : { type: k, options: [1, 2, 0, 0] });
      }
    }
    if (opts.frag)
      ext.push({ type: 'fragment', offset: opts.frag === 'later' ? 1 + int(rnd, 100) : 0, more: opts.frag === 'first' || rnd() < 0.5, id: int(rnd, 1 << 30) });
    b = ipv6({ src: e.src, dst: e.dst, hopLimit: 1 + int(rnd, 255), ext });
  } else {
    b = ipv4({
      src: e.src,
      dst: e.dst,
      ttl: 1 + int(rnd, 255),
      id: int(rnd, 65536),
      flags: opts.frag === 'first' ? ['mf'] : rnd() < 0.5 ? ['df'] : [],
      fragOffset: opts.frag === 'later' ? 1 + int(rnd, 100) : 0,
      ...(opts.options
        ? {
            options: pick(rnd, [
              [1, 1, 1, 1],
              [0x94, 4, 0, 0],
              [7, 7, 4, 0, 0, 0, 0],
              [0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ]),
          }
        : {}),
    });
  }
  // now and then too big for the tunnel once encapsulated (frag needed, packet too big)
  const payload = Buffer.alloc(rnd() < 0.05 ? 1380 + int(rnd, 200) : int(rnd, 48), 0x61);
  if (e.proto === 6)
    return b
      .tcp({ sport: e.sport, dport: e.dport, seq: int(rnd, 1 << 30), flags: pick(rnd, [['syn'], ['ack'], ['fin', 'ack'], ['rst']] as const) })
      .payload(payload);
  if (e.proto === 17) return b.udp({ sport: e.sport, dport: e.dport }).payload(payload);
  if (e.proto === 1 || e.proto === 58) {
    const echo = { id: e.sport, seq: int(rnd, 65536) };
    return (v6 ? b.icmpv6({ type: 128 + int(rnd, 2), ...echo }) : b.icmp({ type: pick(rnd, [0, 8]), ...echo })).payload(payload);
  }
  // SCTP: the common header (ports, verification tag, checksum), then a chunk's worth of bytes
  const sctp = Buffer.alloc(12 + int(rnd, 20));
  sctp.writeUInt16BE(e.sport, 0);
  sctp.writeUInt16BE(e.dport, 2);
  return v6 ? ipv6({ src: e.src, dst: e.dst, nextHeader: 132 }).payload(sctp) : ipv4({ src: e.src, dst: e.dst, protocol: 132 }).payload(sctp);
}

/** An ICMP(v6) error from a router or an end, quoting a packet of a flow (NAT'd or not). */
function icmpError(rnd: Rnd, v6: boolean, w: FamilyWorld): PacketBuilder {
  const e = ends(rnd, w);
  if (e.proto === 132 || e.proto === 1 || e.proto === 58) e.proto = 17;
  const quoted = ipPacket(rnd, v6, e);
  const reporter = rnd() < 0.5 ? e.dst : pick(rnd, [...w.strangers, ...w.peers]);
  if (v6) {
    const [type, code] = pick(rnd, [
      [1, 4],
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0],
    ] as const);
    return ipv6({ src: reporter, dst: e.src }).icmpv6({ type, code, mtu: 1280, embedded: quoted.truncate(40 + 8 + int(rnd, 40)) });
  }
  const [type, code] = pick(rnd, [
    [3, 3],
    [3, 4],
    [3, 1],
    [11, 0],
    [12, 0],
  ] as const);
  return ipv4({ src: reporter, dst: e.src }).icmp({ type, code, mtu: 1400, embedded: quoted.truncate(20 + 8 + int(rnd, 40)) });
}

/** A VXLAN frame to the tunnel port: weir's VNI or another, from a peer or a stranger, IPv4 or IPv6 inside. */
function vxlanFrame(rnd: Rnd, outerV6: boolean): PacketBuilder {
  const ow = outerV6 ? FUZZ_WORLD.v6 : FUZZ_WORLD.v4;
  const innerV6 = rnd() < 0.5;
  const iw = innerV6 ? FUZZ_WORLD.v6 : FUZZ_WORLD.v4;
  const inner = rnd() < 0.2 ? icmpError(rnd, innerV6, iw) : ipPacket(rnd, innerV6, ends(rnd, iw), rnd() < 0.1 ? { frag: 'first' } : {});
  const vx = Buffer.alloc(8);
  vx.writeUInt32BE(rnd() < 0.9 ? 0x08000000 : int(rnd, 1 << 30), 0);
  vx.writeUInt32BE(((rnd() < 0.85 ? WEIR_VNI : int(rnd, 1 << 24)) << 8) >>> 0, 4);
  const innerEth = eth({ dst: WEIR_MAC(int(rnd, 3)), src: '00:00:00:00:00:00', type: innerV6 ? 0x86dd : 0x0800 }).build();
  const innerBytes = Buffer.concat([vx, innerEth, inner.build()]);
  const src = rnd() < 0.6 ? pick(rnd, ow.peers) : pick(rnd, ow.strangers);
  const dst = pick(rnd, [...ow.strangers, ...ow.backends.map((b) => b.address)]);
  const outer = outerV6 ? ipv6({ src, dst }) : ipv4({ src, dst, flags: ['df'] });
  return outer.udp({ sport: 49152 + int(rnd, 16384), dport: VXLAN_PORT, ...(outerV6 ? {} : { checksum: 0 }) }).payload(innerBytes);
}

/** An IPv6 packet with an Authentication Header (RFC 4302: its length in 4-byte units, minus 2)
 *  before the transport header, which the builder has no layer for. */
function withAh(rnd: Rnd, w: FamilyWorld): PacketBuilder {
  const e = ends(rnd, w);
  if (e.proto !== 6 && e.proto !== 17) e.proto = 6;
  const l4 = ipPacket(rnd, true, e).build().subarray(40);
  const words = 1 + int(rnd, 3); // 12, 16 or 20 bytes
  const ah = Buffer.alloc((words + 2) * 4);
  ah[0] = e.proto;
  ah[1] = words;
  ah.writeUInt32BE(int(rnd, 1 << 30), 4);
  return ipv6({ src: e.src, dst: e.dst, nextHeader: 51 }).payload(Buffer.concat([ah, l4]));
}

/** Not IP, or IP behind a VLAN tag: the programs pass these on. */
function other(rnd: Rnd): Buffer {
  if (rnd() < 0.5)
    return eth({ type: 0x0806 })
      .payload(Buffer.alloc(28, int(rnd, 256)))
      .build();
  return eth({ vlan: 1 + int(rnd, 4000) })
    .ipv4({ src: pick(rnd, FUZZ_WORLD.v4.clients), dst: FUZZ_WORLD.v4.frontends[0]!.address })
    .tcp({ sport: 40000, dport: 80, flags: ['syn'] })
    .build();
}

/** One template of a random kind. */
export function template(rnd: Rnd): FuzzTemplate {
  const v6 = rnd() < 0.5;
  const w = v6 ? FUZZ_WORLD.v6 : FUZZ_WORLD.v4;
  const fam = v6 ? '6' : '4';
  const r = rnd();
  const frame = (kind: string, b: PacketBuilder): FuzzTemplate => ({
    kind: kind + fam,
    packet: eth({ type: v6 ? 0x86dd : 0x0800 })
      .payload(b.build())
      .build(),
  });
  if (r < 0.3) return frame('flow', ipPacket(rnd, v6, ends(rnd, w)));
  if (r < 0.45) return frame('icmp-error', icmpError(rnd, v6, w));
  if (r < 0.65) return frame('vxlan-outer', vxlanFrame(rnd, v6));
  if (r < 0.75) return frame('fragment', ipPacket(rnd, v6, ends(rnd, w), { frag: rnd() < 0.5 ? 'first' : 'later' }));
  if (r < 0.9) return frame(v6 ? 'ext-headers' : 'options', ipPacket(rnd, v6, ends(rnd, w), v6 ? { ext: true } : { options: true }));
  if (r < 0.92 && v6) return frame('ah', withAh(rnd, w));
  if (r < 0.95 && v6) return frame('nd', ipv6({ src: pick(rnd, w.clients), dst: 'ff02::1:ff00:1', hopLimit: 255 }).icmpv6({ type: 135, rest: 0 }));
  return { kind: 'other', packet: other(rnd) };
}

/** Where the length, version and protocol fields of the packet's outer headers are (the lies go there). */
function fieldOffsets(p: Buffer): number[] {
  const out = [12, 13, 14, 16, 17, 18, 19, 20, 23, 24, 25];
  if (p.length < 34) return out;
  const v4 = p.readUInt16BE(12) === 0x0800;
  const l4 = v4 ? 14 + (p[14]! & 0x0f) * 4 : 54;
  out.push(l4 + 4, l4 + 5, l4 + 6, l4 + 7, l4 + 12, l4 + 8, l4 + 9, l4 + 10, l4 + 11, l4 + 14, l4 + 15, l4 + 16, l4 + 22);
  return out;
}

/** The ways a packet is broken: one of them, or none (a fifth of the packets go in as built). */
export function mutate(base: Buffer, rnd: Rnd): { packet: Buffer; how: string } {
  const p = Buffer.from(base);
  const k = rnd();
  if (k < 0.2) return { packet: p, how: 'none' };
  if (k < 0.45) {
    for (let n = 1 + int(rnd, 4); n > 0; n--) p[int(rnd, Math.min(p.length, 120))] = int(rnd, 256);
    return { packet: p, how: 'bytes' };
  }
  if (k < 0.65) {
    const offs = fieldOffsets(p).filter((o) => o < p.length);
    for (let n = 1 + int(rnd, 2); n > 0 && offs.length; n--) p[pick(rnd, offs)] = pick(rnd, [0, 1, 0xff, int(rnd, 256), p[pick(rnd, offs)]! + 1]);
    return { packet: p, how: 'lengths' };
  }
  if (k < 0.82) return { packet: p.subarray(0, int(rnd, p.length)), how: 'truncated' };
  if (k < 0.92) {
    // checksums: IPv4 header, and the transport checksum wherever it sits
    for (const at of [24, 25, 50, 51, 40, 41, 56, 57, 60, 61]) if (at < p.length && rnd() < 0.3) p[at] = int(rnd, 256);
    return { packet: p, how: 'checksums' };
  }
  return { packet: Buffer.concat([p, Buffer.alloc(1 + int(rnd, 64), int(rnd, 256))]), how: 'appended' };
}

/** The first @count packets of the stream of @seed: the same seed, the same packets. */
export function* fuzzStream(seed: number, count: number): Generator<FuzzTemplate & { how: string }> {
  const rnd = prng(seed);
  for (let i = 0; i < count; i++) {
    const t = template(rnd);
    const m = mutate(t.packet, rnd);
    yield { kind: t.kind, packet: m.packet, how: m.how };
  }
}
