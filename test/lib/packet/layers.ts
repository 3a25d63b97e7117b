// The decoder's output: one plain object per header, every field, names for flags and
// ICMP types, and whether each checksum holds. Shared by decode.ts and diff.ts.

import type { Ipv4Flag, TcpFlag } from './names.js';

export interface VlanTag {
  tpid: number;
  pcp: number;
  dei: boolean;
  id: number;
}
export interface EthLayer {
  dst: string;
  src: string;
  /** the ethertype after any VLAN tag */
  type: number;
  vlan?: VlanTag;
  truncated?: true;
}
export interface Ipv4Layer {
  version: number;
  ihl: number;
  tos: number;
  totalLength: number;
  id: number;
  flags: Ipv4Flag[];
  /** in 8-byte units */
  fragOffset: number;
  ttl: number;
  protocol: number;
  checksum: number;
  /** null when the header is too short or cut off to check */
  checksumValid: boolean | null;
  src: string;
  dst: string;
  options: Buffer;
  truncated?: true;
}
export interface Ipv6Ext {
  type: 'hop-by-hop' | 'dest-opts' | 'routing' | 'fragment';
  nextHeader: number;
  /** the header's length in bytes */
  length: number;
  hdrExtLen?: number;
  /** hop-by-hop and destination options, padding included */
  options?: Buffer;
  routingType?: number;
  segmentsLeft?: number;
  addresses?: string[];
  /** fragment: offset in 8-byte units, more-fragments bit, identification */
  offset?: number;
  more?: boolean;
  id?: number;
}
export interface Ipv6Layer {
  version: number;
  trafficClass: number;
  flowLabel: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  src: string;
  dst: string;
  ext: Ipv6Ext[];
  truncated?: true;
}
/** checksumValid is null when it cannot be checked: a cut-off segment or a fragment. */
export interface TcpLayer {
  proto: 'tcp';
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  dataOffset: number;
  reserved: number;
  flags: TcpFlag[];
  window: number;
  checksum: number;
  checksumValid: boolean | null;
  urgent: number;
  options: Buffer;
  truncated?: true;
}
export interface UdpLayer {
  proto: 'udp';
  sport: number;
  dport: number;
  length: number;
  checksum: number;
  /** a zero checksum ("none") is valid over IPv4, invalid over IPv6 */
  checksumValid: boolean | null;
  truncated?: true;
}
export interface IcmpLayer {
  proto: 'icmp' | 'icmpv6';
  type: number;
  typeName?: string;
  code: number;
  checksum: number;
  checksumValid: boolean | null;
  /** the 4 type-specific bytes, big-endian */
  rest: number;
  id?: number;
  seq?: number;
  mtu?: number;
  /** error messages: the packet they carry, decoded from its IP header */
  embedded?: DecodedPacket;
  truncated?: true;
}
export type L4Layer = TcpLayer | UdpLayer | IcmpLayer;

export interface DecodedPacket {
  /** bytes given to the decoder */
  length: number;
  eth?: EthLayer;
  ipv4?: Ipv4Layer;
  ipv6?: Ipv6Layer;
  tcp?: TcpLayer;
  udp?: UdpLayer;
  icmp?: IcmpLayer;
  icmpv6?: IcmpLayer;
  /** the same object as tcp, udp, icmp or icmpv6, for checks that do not care which */
  l4?: L4Layer;
  /** bytes after the last header understood, up to the end the IP length gives */
  payload: Buffer;
  /** why decoding stopped early or what lied about a length; empty for a well-formed packet */
  errors: string[];
}

export interface DecodeOptions {
  /** where the bytes start: an Ethernet header (default), or an IP header of either version */
  from?: 'eth' | 'ip';
}
