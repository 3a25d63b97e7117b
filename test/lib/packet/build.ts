// The packet builder: fixtures written layer by layer, outermost first, serialized to the
// bytes BPF_PROG_TEST_RUN feeds a program. Every length, protocol number and checksum is
// derived from the layers below unless the fixture overrides it, which is how malformed
// packets are made: override one field and everything else stays correct.
//
//   eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
//     .ipv4({ src: '198.18.0.1', dst: '198.19.0.10' })
//     .tcp({ sport: 40000, dport: 80, flags: ['syn'] })
//     .payload('hi')
//     .build();
//
// Builders are immutable, so a common prefix can be shared between fixtures.

import { parseIPv4, parseIPv6, parseMac } from './addr.js';
import { inetChecksum, ipv4PseudoHeader, ipv6PseudoHeader } from './checksum.js';
import {
  ETH_P_8021Q,
  ETH_P_IP,
  ETH_P_IPV6,
  ICMP_TYPES,
  ICMPV6_TYPES,
  IPPROTO_DSTOPTS,
  IPPROTO_FRAGMENT,
  IPPROTO_HOPOPTS,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_IPIP,
  IPPROTO_IPV6,
  IPPROTO_NONE,
  IPPROTO_ROUTING,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_FLAGS,
  TCP_FLAGS,
  flagBits,
} from './names.js';
import {
  toBuffer,
  type Bytes,
  type EthSpec,
  type IcmpSpec,
  type Icmpv6Spec,
  type Ipv4Spec,
  type Ipv6ExtSpec,
  type Ipv6Spec,
  type TcpSpec,
  type UdpSpec,
  type VlanSpec,
} from './spec.js';

type Layer =
  | { kind: 'eth'; spec: EthSpec }
  | { kind: 'ipv4'; spec: Ipv4Spec }
  | { kind: 'ipv6'; spec: Ipv6Spec }
  | { kind: 'tcp'; spec: TcpSpec }
  | { kind: 'udp'; spec: UdpSpec }
  | { kind: 'icmp'; spec: IcmpSpec }
  | { kind: 'icmpv6'; spec: Icmpv6Spec }
  | { kind: 'payload'; bytes: Buffer };
type Kind = Layer['kind'];
type L3 = Extract<Layer, { kind: 'ipv4' | 'ipv6' }>;

const MAY_FOLLOW: Record<Kind, readonly (Kind | 'start')[]> = {
  eth: ['start'],
  ipv4: ['start', 'eth', 'ipv4', 'ipv6'],
  ipv6: ['start', 'eth', 'ipv4', 'ipv6'],
  tcp: ['ipv4', 'ipv6'],
  udp: ['ipv4', 'ipv6'],
  icmp: ['ipv4', 'ipv6'],
  icmpv6: ['ipv4', 'ipv6'],
  payload: ['start', 'eth', 'ipv4', 'ipv6', 'tcp', 'udp', 'icmp', 'icmpv6'],
};

const IP_PROTOCOL: Partial<Record<Kind, number>> = {
  ipv4: IPPROTO_IPIP,
  ipv6: IPPROTO_IPV6,
  tcp: IPPROTO_TCP,
  udp: IPPROTO_UDP,
  icmp: IPPROTO_ICMP,
  icmpv6: IPPROTO_ICMPV6,
};

export class PacketBuilder {
  /** Use eth(), ipv4(), ipv6() or raw() to start a packet. */
  constructor(
    private readonly layers: readonly Layer[] = [],
    private readonly truncateTo?: number,
  ) {}

  ipv4(spec: Ipv4Spec): PacketBuilder {
    return this.push({ kind: 'ipv4', spec });
  }
  ipv6(spec: Ipv6Spec): PacketBuilder {
    return this.push({ kind: 'ipv6', spec });
  }
  tcp(spec: TcpSpec): PacketBuilder {
    return this.push({ kind: 'tcp', spec });
  }
  udp(spec: UdpSpec): PacketBuilder {
    return this.push({ kind: 'udp', spec });
  }
  icmp(spec: IcmpSpec): PacketBuilder {
    return this.push({ kind: 'icmp', spec });
  }
  icmpv6(spec: Icmpv6Spec): PacketBuilder {
    return this.push({ kind: 'icmpv6', spec });
  }
  payload(bytes: Bytes): PacketBuilder {
    return this.push({ kind: 'payload', bytes: toBuffer(bytes) });
  }
  /** Keep only the first n bytes of the built packet (a snapped or short packet). */
  truncate(n: number): PacketBuilder {
    return new PacketBuilder(this.layers, n);
  }

  build(): Buffer {
    let inner: Buffer = Buffer.alloc(0);
    for (let i = this.layers.length - 1; i >= 0; i--) {
      inner = encodeLayer(this.layers[i]!, inner, this.layers[i + 1]?.kind, this.enclosingL3(i));
    }
    return this.truncateTo === undefined ? inner : truncate(inner, this.truncateTo);
  }

  private push(layer: Layer): PacketBuilder {
    const prev = this.layers.at(-1)?.kind ?? 'start';
    if (this.truncateTo !== undefined || !MAY_FOLLOW[layer.kind].includes(prev)) {
      throw new Error(`packet builder: ${layer.kind} cannot follow ${this.truncateTo !== undefined ? 'truncate' : prev}`);
    }
    return new PacketBuilder([...this.layers, layer]);
  }

  private enclosingL3(i: number): L3 | undefined {
    for (let j = i - 1; j >= 0; j--) {
      const l = this.layers[j]!;
      if (l.kind === 'ipv4' || l.kind === 'ipv6') return l;
    }
    return undefined;
  }
}

export function eth(spec: EthSpec = {}): PacketBuilder {
  return new PacketBuilder([{ kind: 'eth', spec }]);
}
/** A packet that starts at the IPv4 header (L3 hooks, ICMP-embedded packets). */
export function ipv4(spec: Ipv4Spec): PacketBuilder {
  return new PacketBuilder().ipv4(spec);
}
export function ipv6(spec: Ipv6Spec): PacketBuilder {
  return new PacketBuilder().ipv6(spec);
}
/** Bytes with no headers at all. */
export function raw(bytes: Bytes): PacketBuilder {
  return new PacketBuilder().payload(bytes);
}

/** The first n bytes, copied. */
export function truncate(packet: Uint8Array, n: number): Buffer {
  return Buffer.from(packet.subarray(0, Math.max(0, n)));
}

function encodeLayer(layer: Layer, inner: Buffer, next: Kind | undefined, l3: L3 | undefined): Buffer {
  switch (layer.kind) {
    case 'eth':
      return encodeEth(layer.spec, inner, next);
    case 'ipv4':
      return encodeIpv4(layer.spec, inner, next);
    case 'ipv6':
      return encodeIpv6(layer.spec, inner, next);
    case 'tcp':
      return encodeTcp(layer.spec, inner, l3!);
    case 'udp':
      return encodeUdp(layer.spec, inner, l3!);
    case 'icmp':
      return encodeIcmp(layer.spec, inner, l3!, false);
    case 'icmpv6':
      return encodeIcmp(layer.spec, inner, l3!, true);
    case 'payload':
      return Buffer.concat([layer.bytes, inner]);
  }
}

function encodeEth(spec: EthSpec, inner: Buffer, next: Kind | undefined): Buffer {
  const type = spec.type ?? (next === 'ipv4' ? ETH_P_IP : next === 'ipv6' ? ETH_P_IPV6 : undefined);
  if (type === undefined) throw new Error('eth: give `type` when no IP layer follows');
  const vlan: VlanSpec | undefined = typeof spec.vlan === 'number' ? { id: spec.vlan } : spec.vlan;
  const h = Buffer.alloc(vlan ? 18 : 14);
  parseMac(spec.dst ?? '02:00:00:00:00:02').copy(h, 0);
  parseMac(spec.src ?? '02:00:00:00:00:01').copy(h, 6);
  let off = 12;
  if (vlan) {
    h.writeUInt16BE(vlan.tpid ?? ETH_P_8021Q, 12);
    h.writeUInt16BE((((vlan.pcp ?? 0) & 7) << 13) | (vlan.dei ? 0x1000 : 0) | (vlan.id & 0xfff), 14);
    off = 16;
  }
  h.writeUInt16BE(type, off);
  return Buffer.concat([h, inner]);
}

/** Nothing after the IP header is "no next header" (59); a raw payload must say what it is. */
function upperProtocol(layer: string, given: number | undefined, next: Kind | undefined): number {
  const p = given ?? (next ? IP_PROTOCOL[next] : IPPROTO_NONE);
  if (p === undefined) throw new Error(`${layer}: give the protocol number when a raw payload follows`);
  return p;
}

function padTo(bytes: Buffer, multiple: number): Buffer {
  const pad = (multiple - (bytes.length % multiple)) % multiple;
  return pad ? Buffer.concat([bytes, Buffer.alloc(pad)]) : bytes;
}

function encodeIpv4(spec: Ipv4Spec, inner: Buffer, next: Kind | undefined): Buffer {
  const options = padTo(toBuffer(spec.options ?? []), 4);
  const h = Buffer.alloc(20 + options.length);
  h[0] = 0x40 | ((spec.ihl ?? h.length / 4) & 0xf);
  h[1] = spec.tos ?? 0;
  h.writeUInt16BE(spec.totalLength ?? h.length + inner.length, 2);
  h.writeUInt16BE(spec.id ?? 0, 4);
  h.writeUInt16BE((flagBits(IPV4_FLAGS, spec.flags ?? []) << 13) | ((spec.fragOffset ?? 0) & 0x1fff), 6);
  h[8] = spec.ttl ?? 64;
  h[9] = upperProtocol('ipv4', spec.protocol, next);
  parseIPv4(spec.src).copy(h, 12);
  parseIPv4(spec.dst).copy(h, 16);
  options.copy(h, 20);
  h.writeUInt16BE(spec.checksum ?? inetChecksum(h), 10);
  return Buffer.concat([h, inner]);
}

const EXT_PROTOCOL = {
  'hop-by-hop': IPPROTO_HOPOPTS,
  'dest-opts': IPPROTO_DSTOPTS,
  routing: IPPROTO_ROUTING,
  fragment: IPPROTO_FRAGMENT,
} as const;

/** Hop-by-hop and destination options end on an 8-byte boundary, filled with Pad1 or PadN. */
function padOptions(options: Buffer): Buffer {
  const pad = (8 - ((2 + options.length) % 8)) % 8;
  if (pad === 0) return options;
  const filler = pad === 1 ? Buffer.from([0]) : Buffer.concat([Buffer.from([1, pad - 2]), Buffer.alloc(pad - 2)]);
  return Buffer.concat([options, filler]);
}

function encodeExt(ext: Ipv6ExtSpec, nextHeader: number): Buffer {
  if (ext.type === 'fragment') {
    const h = Buffer.alloc(8);
    h[0] = ext.nextHeader ?? nextHeader;
    h.writeUInt16BE((((ext.offset ?? 0) & 0x1fff) << 3) | (ext.more ? 1 : 0), 2);
    h.writeUInt32BE((ext.id ?? 0) >>> 0, 4);
    return h;
  }
  let body: Buffer;
  if (ext.type === 'routing') {
    const data = Buffer.alloc(4);
    toBuffer(ext.data ?? []).copy(data);
    const addrs = (ext.addresses ?? []).map(parseIPv6);
    body = Buffer.concat([Buffer.from([ext.routingType ?? 0, ext.segmentsLeft ?? addrs.length]), data, ...addrs]);
  } else {
    body = padOptions(toBuffer(ext.options ?? []));
  }
  const h = Buffer.concat([Buffer.alloc(2), body]);
  h[0] = ext.nextHeader ?? nextHeader;
  h[1] = ext.hdrExtLen ?? h.length / 8 - 1;
  return h;
}

function encodeIpv6(spec: Ipv6Spec, inner: Buffer, next: Kind | undefined): Buffer {
  const exts = spec.ext ?? [];
  let nh = upperProtocol('ipv6', exts.length ? exts.at(-1)!.nextHeader : spec.nextHeader, next);
  const encoded: Buffer[] = [];
  for (let i = exts.length - 1; i >= 0; i--) {
    encoded.unshift(encodeExt(exts[i]!, nh));
    nh = EXT_PROTOCOL[exts[i]!.type];
  }
  const extBytes = Buffer.concat(encoded);
  const h = Buffer.alloc(40);
  const tc = spec.trafficClass ?? 0;
  const flow = spec.flowLabel ?? 0;
  h.writeUInt32BE(((6 << 28) | ((tc & 0xff) << 20) | (flow & 0xfffff)) >>> 0, 0);
  h.writeUInt16BE(spec.payloadLength ?? extBytes.length + inner.length, 4);
  h[6] = spec.nextHeader ?? nh;
  h[7] = spec.hopLimit ?? 64;
  parseIPv6(spec.src).copy(h, 8);
  parseIPv6(spec.dst).copy(h, 24);
  return Buffer.concat([h, extBytes, inner]);
}

/**
 * The pseudo-header for an upper-layer checksum. With a routing header that still has
 * segments left, IPv6 checksums cover the final destination (RFC 8200 §8.1): the last
 * address, or for a segment routing header (type 4) the first, since SRH lists segments
 * in reverse.
 */
function pseudoHeaderFor(l3: L3, protocol: number, length: number): Buffer {
  if (l3.kind === 'ipv4') return ipv4PseudoHeader(parseIPv4(l3.spec.src), parseIPv4(l3.spec.dst), protocol, length);
  let dst = l3.spec.dst;
  for (const ext of l3.spec.ext ?? []) {
    if (ext.type !== 'routing' || !ext.addresses?.length) continue;
    if ((ext.segmentsLeft ?? ext.addresses.length) === 0) continue;
    dst = ext.routingType === 4 ? ext.addresses[0]! : ext.addresses.at(-1)!;
  }
  return ipv6PseudoHeader(parseIPv6(l3.spec.src), parseIPv6(dst), protocol, length);
}

function encodeTcp(spec: TcpSpec, inner: Buffer, l3: L3): Buffer {
  const options = padTo(toBuffer(spec.options ?? []), 4);
  const h = Buffer.alloc(20 + options.length);
  h.writeUInt16BE(spec.sport, 0);
  h.writeUInt16BE(spec.dport, 2);
  h.writeUInt32BE((spec.seq ?? 0) >>> 0, 4);
  h.writeUInt32BE((spec.ack ?? 0) >>> 0, 8);
  h[12] = (((spec.dataOffset ?? h.length / 4) & 0xf) << 4) | ((spec.reserved ?? 0) & 0xf);
  h[13] = flagBits(TCP_FLAGS, spec.flags ?? []);
  h.writeUInt16BE(spec.window ?? 65535, 14);
  h.writeUInt16BE(spec.urgent ?? 0, 18);
  options.copy(h, 20);
  const seg = Buffer.concat([h, inner]);
  seg.writeUInt16BE(spec.checksum ?? inetChecksum(pseudoHeaderFor(l3, IPPROTO_TCP, seg.length), seg), 16);
  return seg;
}

function encodeUdp(spec: UdpSpec, inner: Buffer, l3: L3): Buffer {
  const seg = Buffer.concat([Buffer.alloc(8), inner]);
  seg.writeUInt16BE(spec.sport, 0);
  seg.writeUInt16BE(spec.dport, 2);
  seg.writeUInt16BE(spec.length ?? seg.length, 4);
  // A computed 0 goes on the wire as 0xffff: 0 means "no checksum" (RFC 768).
  const sum = inetChecksum(pseudoHeaderFor(l3, IPPROTO_UDP, seg.length), seg) || 0xffff;
  seg.writeUInt16BE(spec.checksum ?? sum, 6);
  return seg;
}

function encodeIcmp(spec: IcmpSpec | Icmpv6Spec, inner: Buffer, l3: L3, v6: boolean): Buffer {
  const names: Record<string, number> = v6 ? ICMPV6_TYPES : ICMP_TYPES;
  const type = typeof spec.type === 'number' ? spec.type : names[spec.type];
  if (type === undefined) throw new Error(`${v6 ? 'icmpv6' : 'icmp'}: unknown type ${String(spec.type)}`);
  const h = Buffer.alloc(8);
  h[0] = type;
  h[1] = spec.code ?? 0;
  let rest = (((spec.id ?? 0) & 0xffff) << 16) | ((spec.seq ?? 0) & 0xffff);
  if (spec.mtu !== undefined) rest = v6 ? spec.mtu : spec.mtu & 0xffff;
  h.writeUInt32BE((spec.rest ?? rest) >>> 0, 4);
  const embedded = spec.embedded === undefined ? Buffer.alloc(0) : spec.embedded instanceof PacketBuilder ? spec.embedded.build() : toBuffer(spec.embedded);
  const msg = Buffer.concat([h, embedded, inner]);
  const sum = v6 ? inetChecksum(pseudoHeaderFor(l3, IPPROTO_ICMPV6, msg.length), msg) : inetChecksum(msg);
  msg.writeUInt16BE(spec.checksum ?? sum, 2);
  return msg;
}
