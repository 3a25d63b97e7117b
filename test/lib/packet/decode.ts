// The packet decoder: the bytes a BPF program put out, as plain layers with every field,
// so tests compare fields rather than hex. It reads malformed and truncated packets the
// way a careful parser would: it keeps what it could read, says why it stopped in
// `errors`, and never throws. A header cut short becomes a layer with `truncated: true`
// that holds only the fields whose bytes arrived.

import { formatIPv4, formatIPv6, formatMac } from './addr.js';
import { ipv4PseudoHeader, ipv6PseudoHeader, onesSum } from './checksum.js';
import {
  ETH_P_8021AD,
  ETH_P_8021Q,
  ETH_P_IP,
  ETH_P_IPV6,
  ICMP_ECHO_TYPES,
  ICMP_ERROR_TYPES,
  ICMP_TYPES,
  ICMPV6_ECHO_TYPES,
  ICMPV6_ERROR_TYPES,
  ICMPV6_TYPES,
  IPPROTO_DSTOPTS,
  IPPROTO_FRAGMENT,
  IPPROTO_HOPOPTS,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_ROUTING,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_FLAGS,
  TCP_FLAGS,
  flagNames,
  nameOf,
} from './names.js';
import type { DecodeOptions, DecodedPacket, EthLayer, IcmpLayer, Ipv4Layer, Ipv6Ext, Ipv6Layer, TcpLayer, UdpLayer, VlanTag } from './layers.js';

/** Reads a layer's fields, giving undefined for those beyond `end`. */
class Cursor {
  constructor(
    readonly buf: Buffer,
    readonly start: number,
    readonly end: number,
  ) {}
  has(off: number, n: number): boolean {
    return this.start + off + n <= this.end;
  }
  u8(off: number): number | undefined {
    return this.has(off, 1) ? this.buf[this.start + off] : undefined;
  }
  u16(off: number): number | undefined {
    return this.has(off, 2) ? this.buf.readUInt16BE(this.start + off) : undefined;
  }
  u32(off: number): number | undefined {
    return this.has(off, 4) ? this.buf.readUInt32BE(this.start + off) : undefined;
  }
  bytes(off: number, n: number): Buffer | undefined {
    return this.has(off, n) ? this.buf.subarray(this.start + off, this.start + off + n) : undefined;
  }
}

/** Drop fields that could not be read; a partial layer is marked truncated. */
function layer<T>(fields: Record<string, unknown>, truncated: boolean): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v;
  if (truncated) out.truncated = true;
  return out as T;
}

const map = <A, B>(v: A | undefined, f: (a: A) => B): B | undefined => (v === undefined ? undefined : f(v));

/** Record why decoding stops here; `keep` saves the bytes not understood as payload. */
function stop(d: DecodedPacket, error: string, keep?: () => void): void {
  d.errors.push(error);
  keep?.();
}

interface Pseudo {
  src: Buffer;
  dst: Buffer;
  v6: boolean;
  /** false for fragments and cut-off datagrams: the checksum covers bytes we do not have */
  complete: boolean;
}

export function decodePacket(bytes: Uint8Array, opts: DecodeOptions = {}): DecodedPacket {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const d: DecodedPacket = { length: buf.length, payload: Buffer.alloc(0), errors: [] };
  const rest = (off: number, end = buf.length): void => {
    d.payload = Buffer.from(buf.subarray(Math.min(off, end), end));
  };
  try {
    let off = 0;
    let ethertype: number | undefined;
    if ((opts.from ?? 'eth') === 'eth') {
      const r = decodeEth(buf, d);
      if (r === undefined) return d;
      [off, ethertype] = r;
    } else {
      const version = buf.length ? buf[0]! >> 4 : undefined;
      ethertype = version === 4 ? ETH_P_IP : version === 6 ? ETH_P_IPV6 : undefined;
      if (ethertype === undefined) d.errors.push(`ip: version ${version ?? '(none)'} is neither 4 nor 6`);
    }
    if (ethertype === ETH_P_IP) decodeIpv4(buf, off, d, rest);
    else if (ethertype === ETH_P_IPV6) decodeIpv6(buf, off, d, rest);
    else rest(off);
  } catch (err) {
    // a decoder bug must not hide the packet: report it like any other problem
    d.errors.push(`decoder: ${(err as Error).message}`);
  }
  return d;
}

function decodeEth(buf: Buffer, d: DecodedPacket): [number, number] | undefined {
  const c = new Cursor(buf, 0, buf.length);
  let off = 12;
  let vlan: VlanTag | undefined;
  const tpid = c.u16(12);
  if (tpid === ETH_P_8021Q || tpid === ETH_P_8021AD) {
    const tci = c.u16(14);
    if (tci !== undefined) vlan = { tpid, pcp: tci >> 13, dei: (tci & 0x1000) !== 0, id: tci & 0xfff };
    off = 16;
  }
  const type = c.u16(off);
  const truncated = type === undefined;
  d.eth = layer<EthLayer>({ dst: map(c.bytes(0, 6), formatMac), src: map(c.bytes(6, 6), formatMac), type, vlan }, truncated);
  if (truncated) {
    d.errors.push(`eth: truncated header: ${buf.length} of ${off + 2} bytes`);
    return undefined;
  }
  return [off + 2, type];
}

function decodeIpv4(buf: Buffer, off: number, d: DecodedPacket, rest: (o: number, e?: number) => void): void {
  const c = new Cursor(buf, off, buf.length);
  const avail = buf.length - off;
  const vihl = c.u8(0);
  const ihl = map(vihl, (v) => v & 0xf);
  const fragWord = c.u16(6);
  const hl = (ihl ?? 0) * 4;
  const headerOk = avail >= 20 && (ihl ?? 0) >= 5 && hl <= avail;
  const h = layer<Ipv4Layer>(
    {
      version: map(vihl, (v) => v >> 4),
      ihl,
      tos: c.u8(1),
      totalLength: c.u16(2),
      id: c.u16(4),
      flags: map(fragWord, (w) => flagNames(IPV4_FLAGS, w >> 13)),
      fragOffset: map(fragWord, (w) => w & 0x1fff),
      ttl: c.u8(8),
      protocol: c.u8(9),
      checksum: c.u16(10),
      checksumValid: headerOk ? onesSum(buf.subarray(off, off + hl)) === 0xffff : avail >= 20 ? null : undefined,
      src: map(c.bytes(12, 4), formatIPv4),
      dst: map(c.bytes(16, 4), formatIPv4),
      options: headerOk ? Buffer.from(buf.subarray(off + 20, off + hl)) : avail >= 20 ? Buffer.alloc(0) : undefined,
    },
    avail < 20 || hl > avail,
  );
  d.ipv4 = h;
  if (avail < 20) return stop(d, `ipv4: truncated header: ${avail} of 20 bytes`);
  if (h.version !== 4) d.errors.push(`ipv4: version ${h.version}, not 4`);
  if (ihl! < 5) return stop(d, `ipv4: ihl ${ihl} below 5`, () => rest(off + 20));
  if (hl > avail) return stop(d, `ipv4: header length ${hl} (ihl ${ihl}) exceeds ${avail} bytes available`);
  if (h.totalLength < hl) {
    d.errors.push(`ipv4: total length ${h.totalLength} below header length ${hl}`);
    return rest(off + hl);
  }
  let end = off + h.totalLength;
  if (end > buf.length) {
    d.errors.push(`ipv4: total length ${h.totalLength} exceeds ${avail} bytes available`);
    end = buf.length;
  }
  if (h.fragOffset !== 0) return rest(off + hl, end); // a later fragment: no transport header here
  const complete = off + h.totalLength <= buf.length && !h.flags.includes('mf');
  const pseudo: Pseudo = { src: buf.subarray(off + 12, off + 16), dst: buf.subarray(off + 16, off + 20), v6: false, complete };
  decodeL4(buf, h.protocol, off + hl, end, pseudo, d, rest);
}

const EXT_NAMES: Record<number, Ipv6Ext['type']> = {
  [IPPROTO_HOPOPTS]: 'hop-by-hop',
  [IPPROTO_DSTOPTS]: 'dest-opts',
  [IPPROTO_ROUTING]: 'routing',
  [IPPROTO_FRAGMENT]: 'fragment',
};
const MAX_EXT_HEADERS = 8;

function decodeIpv6(buf: Buffer, off: number, d: DecodedPacket, rest: (o: number, e?: number) => void): void {
  const c = new Cursor(buf, off, buf.length);
  const avail = buf.length - off;
  const w0 = c.u32(0);
  const h = layer<Ipv6Layer>(
    {
      version: map(c.u8(0), (v) => v >> 4),
      trafficClass: map(w0, (w) => (w >>> 20) & 0xff),
      flowLabel: map(w0, (w) => w & 0xfffff),
      payloadLength: c.u16(4),
      nextHeader: c.u8(6),
      hopLimit: c.u8(7),
      src: map(c.bytes(8, 16), formatIPv6),
      dst: map(c.bytes(24, 16), formatIPv6),
      ext: avail >= 40 ? [] : undefined,
    },
    avail < 40,
  );
  d.ipv6 = h;
  if (avail < 40) return stop(d, `ipv6: truncated header: ${avail} of 40 bytes`);
  if (h.version !== 6) d.errors.push(`ipv6: version ${h.version}, not 6`);
  let end = off + 40 + h.payloadLength;
  let complete = true;
  if (end > buf.length) {
    d.errors.push(`ipv6: payload length ${h.payloadLength} exceeds ${avail - 40} bytes available`);
    end = buf.length;
    complete = false;
  }
  let nh = h.nextHeader;
  let at = off + 40;
  let finalDst = buf.subarray(off + 24, off + 40);
  while (EXT_NAMES[nh] !== undefined) {
    if (h.ext.length === MAX_EXT_HEADERS) return stop(d, `ipv6: more than ${MAX_EXT_HEADERS} extension headers`, () => rest(at, end));
    const type = EXT_NAMES[nh]!;
    const e = new Cursor(buf, at, end);
    const len = type === 'fragment' ? 8 : ((e.u8(1) ?? 0) + 1) * 8;
    if (!e.has(0, len)) {
      d.errors.push(`ipv6: ${type} header of ${len} bytes exceeds ${end - at} bytes left`);
      return rest(at, end);
    }
    const ext: Ipv6Ext = { type, nextHeader: e.u8(0)!, length: len };
    if (type === 'fragment') {
      const w = e.u16(2)!;
      Object.assign(ext, { offset: w >> 3, more: (w & 1) === 1, id: e.u32(4)! });
    } else {
      ext.hdrExtLen = e.u8(1)!;
      if (type === 'routing') {
        ext.routingType = e.u8(2)!;
        ext.segmentsLeft = e.u8(3)!;
        ext.addresses = [];
        for (let a = 8; a + 16 <= len; a += 16) ext.addresses.push(formatIPv6(e.bytes(a, 16)!));
        if (ext.segmentsLeft > 0 && ext.addresses.length) {
          const pick = ext.routingType === 4 ? 8 : 8 + (ext.addresses.length - 1) * 16;
          finalDst = e.bytes(pick, 16)!;
        }
      } else {
        ext.options = Buffer.from(e.bytes(2, len - 2)!);
      }
    }
    h.ext.push(ext);
    at += len;
    nh = ext.nextHeader;
    if (type === 'fragment') {
      if (ext.offset !== 0) return rest(at, end);
      complete &&= !ext.more;
    }
  }
  const pseudo: Pseudo = { src: buf.subarray(off + 8, off + 24), dst: finalDst, v6: true, complete };
  decodeL4(buf, nh, at, end, pseudo, d, rest);
}

function l4ChecksumValid(buf: Buffer, start: number, len: number, protocol: number, p: Pseudo): boolean | null {
  if (!p.complete || start + len > buf.length) return null;
  const ph = p.v6 ? ipv6PseudoHeader(p.src, p.dst, protocol, len) : ipv4PseudoHeader(p.src, p.dst, protocol, len);
  const usesPseudo = protocol !== IPPROTO_ICMP;
  return onesSum(buf.subarray(start, start + len), usesPseudo ? onesSum(ph) : 0) === 0xffff;
}

function decodeL4(buf: Buffer, protocol: number, start: number, end: number, p: Pseudo, d: DecodedPacket, rest: (o: number, e?: number) => void): void {
  const c = new Cursor(buf, start, end);
  const seg = end - start;
  if (protocol === IPPROTO_TCP) {
    const b12 = c.u8(12);
    const dataOffset = map(b12, (b) => b >> 4);
    const hl = (dataOffset ?? 0) * 4;
    const t = layer<TcpLayer>(
      {
        proto: 'tcp',
        sport: c.u16(0),
        dport: c.u16(2),
        seq: c.u32(4),
        ack: c.u32(8),
        dataOffset,
        reserved: map(b12, (b) => b & 0xf),
        flags: map(c.u8(13), (b) => flagNames(TCP_FLAGS, b)),
        window: c.u16(14),
        checksum: c.u16(16),
        checksumValid: seg >= 20 ? l4ChecksumValid(buf, start, seg, protocol, p) : undefined,
        urgent: c.u16(18),
        options: seg >= 20 ? Buffer.from(buf.subarray(start + 20, start + Math.max(20, Math.min(hl, seg)))) : undefined,
      },
      seg < 20 || hl > seg,
    );
    d.tcp = d.l4 = t;
    if (seg < 20) return stop(d, `tcp: truncated header: ${seg} of 20 bytes`);
    if (t.dataOffset < 5) return stop(d, `tcp: data offset ${t.dataOffset} below 5`, () => rest(start + 20, end));
    if (hl > seg) return stop(d, `tcp: data offset ${t.dataOffset} (${hl} bytes) beyond segment of ${seg} bytes`);
    return rest(start + hl, end);
  }
  if (protocol === IPPROTO_UDP) {
    const length = c.u16(4);
    const checksum = c.u16(6);
    let valid: boolean | null | undefined;
    if (seg >= 8) {
      const fits = length! >= 8 && length! <= seg;
      valid = checksum === 0 ? !p.v6 : fits ? l4ChecksumValid(buf, start, length!, protocol, p) : null;
    }
    const u = layer<UdpLayer>({ proto: 'udp', sport: c.u16(0), dport: c.u16(2), length, checksum, checksumValid: valid }, seg < 8);
    d.udp = d.l4 = u;
    if (seg < 8) return stop(d, `udp: truncated header: ${seg} of 8 bytes`);
    if (u.length < 8) return stop(d, `udp: length ${u.length} below 8`, () => rest(start + 8, end));
    if (u.length > seg) {
      d.errors.push(`udp: length ${u.length} exceeds ${seg} bytes of IP payload`);
      return rest(start + 8, end);
    }
    return rest(start + 8, start + u.length);
  }
  if (protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6) {
    const v6 = protocol === IPPROTO_ICMPV6;
    const type = c.u8(0);
    const r = c.u32(4);
    const isEcho = type !== undefined && (v6 ? ICMPV6_ECHO_TYPES : ICMP_ECHO_TYPES).has(type);
    const isError = type !== undefined && (v6 ? ICMPV6_ERROR_TYPES : ICMP_ERROR_TYPES).has(type);
    let mtu: number | undefined;
    if (r !== undefined && v6 && type === 2) mtu = r;
    if (r !== undefined && !v6 && type === 3 && c.u8(1) === 4) mtu = r & 0xffff;
    const i = layer<IcmpLayer>(
      {
        proto: v6 ? 'icmpv6' : 'icmp',
        type,
        typeName: map(type, (t) => nameOf<Record<string, number>>(v6 ? ICMPV6_TYPES : ICMP_TYPES, t)),
        code: c.u8(1),
        checksum: c.u16(2),
        checksumValid: seg >= 8 ? l4ChecksumValid(buf, start, seg, protocol, p) : undefined,
        rest: r,
        id: isEcho ? map(r, (x) => x >>> 16) : undefined,
        seq: isEcho ? map(r, (x) => x & 0xffff) : undefined,
        mtu,
        embedded: isError && seg > 8 ? decodePacket(buf.subarray(start + 8, end), { from: 'ip' }) : undefined,
      },
      seg < 8,
    );
    if (v6) d.icmpv6 = i;
    else d.icmp = i;
    d.l4 = i;
    if (seg < 8) return stop(d, `${i.proto}: truncated header: ${seg} of 8 bytes`);
    return rest(isError ? end : start + 8, end);
  }
  rest(start, end);
}
