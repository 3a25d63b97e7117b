// Address text <-> bytes for packet fixtures: MAC, IPv4, IPv6. Fixtures write addresses
// as strings; headers and BPF map keys need bytes (network order) or u32 words. Addresses
// parse with weir's own parser (src/bpf/ip.ts): one parser for fixtures and dataplane.

import { bytesToIp4, bytesToIp6, ipBytes } from '../../../src/bpf/ip.js';

export function parseMac(text: string): Buffer {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new Error(`invalid MAC address ${JSON.stringify(text)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function parseIPv4(text: string): Buffer {
  const b = ipBytes(text);
  if (!b || b.length !== 4) throw new Error(`invalid IPv4 address ${JSON.stringify(text)}`);
  return b;
}

export function formatIPv4(bytes: Uint8Array): string {
  return bytesToIp4(bytes);
}

/** 198.18.0.1 -> 0xc6120001: the address as a number, most significant byte first. */
export function ip4ToU32(text: string): number {
  return parseIPv4(text).readUInt32BE(0);
}

export function u32ToIp4(value: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0, 0);
  return formatIPv4(b);
}

/** Accepts RFC 4291 text: `::` compression and a dotted IPv4 tail (`::ffff:198.18.0.1`). */
export function parseIPv6(text: string): Buffer {
  const b = text.includes(':') ? ipBytes(text) : null;
  if (!b) throw new Error(`invalid IPv6 address ${JSON.stringify(text)}`);
  return b;
}

/** RFC 5952 canonical text: lowercase, the longest run of two or more zero words as `::`. */
export function formatIPv6(bytes: Uint8Array): string {
  return bytesToIp6(bytes);
}

/** The four 32-bit words of an IPv6 address, each read most significant byte first. */
export function ip6ToU32s(text: string): [number, number, number, number] {
  const b = parseIPv6(text);
  return [b.readUInt32BE(0), b.readUInt32BE(4), b.readUInt32BE(8), b.readUInt32BE(12)];
}

/** Parses either family; which one is decided by the presence of `:`. */
export function parseIP(text: string): Buffer {
  return text.includes(':') ? parseIPv6(text) : parseIPv4(text);
}
