// Protocol numbers and the names fixtures use for flags and ICMP types, shared by the
// builder (name -> bits) and the decoder (bits -> names) so the two cannot disagree.

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;

/** In the order the bits sit in the TCP flags byte, lowest first; decoded lists use this order. */
export const TCP_FLAGS = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20, ece: 0x40, cwr: 0x80 } as const;
export type TcpFlag = keyof typeof TCP_FLAGS;

/** Bits of the 3-bit IPv4 flags field, in header order; `rf` is the reserved (evil) bit. */
export const IPV4_FLAGS = { rf: 0x4, df: 0x2, mf: 0x1 } as const;
export type Ipv4Flag = keyof typeof IPV4_FLAGS;

export const ICMP_TYPES = {
  'echo-reply': 0,
  'dest-unreachable': 3,
  'source-quench': 4,
  redirect: 5,
  'echo-request': 8,
  'time-exceeded': 11,
  'parameter-problem': 12,
  'timestamp-request': 13,
  'timestamp-reply': 14,
} as const;
export type IcmpTypeName = keyof typeof ICMP_TYPES;

export const ICMPV6_TYPES = {
  'dest-unreachable': 1,
  'packet-too-big': 2,
  'time-exceeded': 3,
  'parameter-problem': 4,
  'echo-request': 128,
  'echo-reply': 129,
  'router-solicit': 133,
  'router-advert': 134,
  'neighbor-solicit': 135,
  'neighbor-advert': 136,
} as const;
export type Icmpv6TypeName = keyof typeof ICMPV6_TYPES;

/** Types whose body (after the 4 type-specific bytes) is the offending packet's IP header and more. */
export const ICMP_ERROR_TYPES: ReadonlySet<number> = new Set([3, 4, 5, 11, 12]);
export const ICMPV6_ERROR_TYPES: ReadonlySet<number> = new Set([1, 2, 3, 4]);
export const ICMP_ECHO_TYPES: ReadonlySet<number> = new Set([0, 8, 13, 14]);
export const ICMPV6_ECHO_TYPES: ReadonlySet<number> = new Set([128, 129]);

export function nameOf<T extends Record<string, number>>(table: T, value: number): keyof T | undefined {
  return (Object.keys(table) as (keyof T)[]).find((k) => table[k] === value);
}

export function flagNames<T extends Record<string, number>>(table: T, bits: number): (keyof T)[] {
  return (Object.keys(table) as (keyof T)[]).filter((k) => (bits & table[k]!) !== 0);
}

export function flagBits<T extends Record<string, number>>(table: T, names: readonly (keyof T)[]): number {
  return names.reduce((bits, n) => {
    if (!(n in table)) throw new Error(`unknown flag ${String(n)}; known: ${Object.keys(table).join(', ')}`);
    return bits | table[n]!;
  }, 0);
}
