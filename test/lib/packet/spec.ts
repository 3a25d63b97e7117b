// What a fixture writes for each layer: the builder's input, field by field. Anything
// left out is derived (lengths, protocol numbers, checksums) or a plain default.

import type { PacketBuilder } from './build.js';
import type { IcmpTypeName, Icmpv6TypeName, Ipv4Flag, TcpFlag } from './names.js';

/** Raw bytes as a fixture writes them; a string is UTF-8. */
export type Bytes = Uint8Array | readonly number[] | string;

export function toBuffer(bytes: Bytes): Buffer {
  return typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes as Uint8Array);
}

export interface VlanSpec {
  id: number;
  /** priority code point, 0-7 */
  pcp?: number;
  dei?: boolean;
  /** 0x8100 unless given (0x88a8 for a service tag) */
  tpid?: number;
}

export interface EthSpec {
  /** default 02:00:00:00:00:01 */
  src?: string;
  /** default 02:00:00:00:00:02 */
  dst?: string;
  /** ethertype; derived from the next layer (IPv4, IPv6), required before a raw payload */
  type?: number;
  /** an 802.1Q tag between the source MAC and the ethertype; a number is the VLAN id */
  vlan?: number | VlanSpec;
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  /** default 64 */
  ttl?: number;
  id?: number;
  tos?: number;
  flags?: readonly Ipv4Flag[];
  /** fragment offset field, in 8-byte units */
  fragOffset?: number;
  /** derived from the next layer (59, no next header, when none); required before a raw payload */
  protocol?: number;
  /** raw option bytes, zero-padded (EOL) to a multiple of 4 */
  options?: Bytes;
  /** overrides: the bytes written stay the same, only the field lies */
  ihl?: number;
  totalLength?: number;
  checksum?: number;
}

export type Ipv6ExtSpec =
  | { type: 'hop-by-hop' | 'dest-opts'; options?: Bytes; nextHeader?: number; hdrExtLen?: number }
  | {
      type: 'routing';
      /** default 0; 4 is a segment routing header */
      routingType?: number;
      segmentsLeft?: number;
      addresses?: readonly string[];
      /** the 4 type-specific bytes after segments left (default zero) */
      data?: Bytes;
      nextHeader?: number;
      hdrExtLen?: number;
    }
  | { type: 'fragment'; offset?: number; more?: boolean; id?: number; nextHeader?: number };

export interface Ipv6Spec {
  src: string;
  dst: string;
  /** default 64 */
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  /** extension headers in wire order; options are padded to 8 bytes with Pad1/PadN */
  ext?: readonly Ipv6ExtSpec[];
  /** overrides */
  nextHeader?: number;
  payloadLength?: number;
}

export interface TcpSpec {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags?: readonly TcpFlag[];
  /** default 65535 */
  window?: number;
  urgent?: number;
  /** raw option bytes, zero-padded (EOL) to a multiple of 4 */
  options?: Bytes;
  /** the 4 reserved bits after the data offset */
  reserved?: number;
  /** overrides, in 32-bit words for dataOffset */
  dataOffset?: number;
  checksum?: number;
}

export interface UdpSpec {
  sport: number;
  dport: number;
  /** overrides; `checksum: 0` sends "no checksum" (legal over IPv4 only) */
  length?: number;
  checksum?: number;
}

interface IcmpCommon {
  code?: number;
  /** echo identifier and sequence number */
  id?: number;
  seq?: number;
  /** next-hop MTU: frag-needed (ICMP 3/4, 16 bits) or packet-too-big (ICMPv6 2, 32 bits) */
  mtu?: number;
  /** the 4 type-specific bytes as one big-endian number; wins over id/seq/mtu */
  rest?: number;
  /** the offending packet an error carries, from its IP header on */
  embedded?: PacketBuilder | Bytes;
  checksum?: number;
}
export interface IcmpSpec extends IcmpCommon {
  type: IcmpTypeName | number;
}
export interface Icmpv6Spec extends IcmpCommon {
  type: Icmpv6TypeName | number;
}
