// src/bpf: IP addresses to and from the network-order bytes maps store them in
// (the `weir_ip4` and `weir_ip6` typedefs of the ABI).

import { isIPv6 } from 'node:net';

/**
 * Dotted quad → 4 bytes, exactly what node:net's isIPv4 accepts (no leading zeros). Hand-rolled
 * (no regex, no split): it runs for every map key and value written.
 */
export function ip4ToBytes(ip: string, out: Buffer, off = 0): void {
  let value = 0;
  let part = 0;
  let octet = 0;
  let digits = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || part === 3) throw notIp4(ip);
      value = value * 256 + octet;
      part++;
      octet = digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) throw notIp4(ip);
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) throw notIp4(ip);
    } else {
      throw notIp4(ip);
    }
  }
  if (digits === 0 || part !== 3) throw notIp4(ip);
  out.writeUInt32BE(value * 256 + octet, off);
}

const notIp4 = (ip: string) => new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);

export function bytesToIp4(b: Buffer, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function ip6ToBytes(ip: string, out: Buffer, off = 0): void {
  if (!isIPv6(ip)) throw new TypeError(`not an IPv6 address: ${JSON.stringify(ip)}`);
  let s = ip.split('%')[0]!;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = Buffer.alloc(4);
    ip4ToBytes(v4[1]!, b);
    s = s.slice(0, -v4[1]!.length) + `${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), off + 2 * i));
}

/** RFC 5952 text: lower case, the longest run of zero groups (2 or more) as `::`. */
export function bytesToIp6(b: Buffer, off = 0): string {
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(off + 2 * i));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}
