// dataplane/maglev-hash: the flow hash lib/lb.h (lb4_maglev_hash) and lib/lb6.h (lb6_maglev_hash)
// index a frontend's Maglev table with, recomputed in TypeScript so `weir explain` (explain.ts)
// names the one slot the program takes. Pure; test/cli/explain.test.ts checks it against the
// programs' picks through BPF_PROG_TEST_RUN.

import { endianness } from 'node:os';
import { ipBytes } from '../bpf/ip.js';

const INITVAL = 0xdeadbeef;
const rol32 = (w: number, s: number) => ((w << s) | (w >>> (32 - s))) >>> 0;

/** weir_jhash_3words (lib/jhash.h, the kernel's jhash_3words): u32 arithmetic on JS numbers. */
export function jhash3words(a: number, b: number, c: number, initval: number): number {
  const add = (INITVAL + (3 << 2) + initval) >>> 0;
  a = (a + add) >>> 0;
  b = (b + add) >>> 0;
  c = (c + add) >>> 0;
  c = ((c ^ b) - rol32(b, 14)) >>> 0;
  a = ((a ^ c) - rol32(c, 11)) >>> 0;
  b = ((b ^ a) - rol32(a, 25)) >>> 0;
  c = ((c ^ b) - rol32(b, 16)) >>> 0;
  a = ((a ^ c) - rol32(c, 4)) >>> 0;
  b = ((b ^ a) - rol32(a, 14)) >>> 0;
  c = ((c ^ b) - rol32(b, 24)) >>> 0;
  return c;
}

// The program reads network-order bytes as host-order words (pkt->saddr, __be16 ports): so do we.
const LE = endianness() === 'LE';
const word = (b: Buffer, off: number) => (LE ? b.readUInt32LE(off) : b.readUInt32BE(off));
const port16 = (p: number) => (LE ? ((p & 0xff) << 8) | (p >>> 8) : p);

/** The hash of a flow's first packet: source address, both ports (ICMP echo: the identifier twice), protocol. */
export function maglevFlowHash(src: string, sport: number, dport: number, protocol: number): number {
  const s = ipBytes(src);
  if (!s) throw new Error(`maglev hash: ${src} is not an address`);
  const ports = ((port16(sport) << 16) | port16(dport)) >>> 0;
  if (s.length === 4) return jhash3words(word(s, 0), ports, protocol, 0);
  return jhash3words((word(s, 0) ^ word(s, 4)) >>> 0, (word(s, 8) ^ word(s, 12)) >>> 0, ports, protocol);
}
