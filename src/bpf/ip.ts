// src/bpf: the one IP parser, and the IP protocol numbers. Address text to and from the
// network-order bytes maps store (the `weir_ip4` and `weir_ip6` typedefs of the ABI), the
// canonical text the model keys on, and prefix matching. No I/O and no imports: the model,
// the dataplane, the CLI, the bench and the test library all parse addresses here.

/** The address family as a value (Cilium's L3n4Addr.IsIPv6() picks the map the same way). */
export type IpFamily = 4 | 6;

/** IP protocol numbers (IANA), by the name the model and the CLI use. */
export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17, SCTP: 132, ICMPV6: 58 } as const;
export type IpProtocolName = keyof typeof IPPROTO;

const PROTOCOL_NAMES = new Map<number, string>(Object.entries(IPPROTO).map(([name, n]) => [n, name.toLowerCase()]));

/** 6 -> 'tcp'; an unnamed number as its digits. */
export function protocolName(p: number): string {
  return PROTOCOL_NAMES.get(p) ?? String(p);
}

/** 'tcp' / 'TCP' / '6' -> 6; undefined when neither a known name nor a number 0..255. */
export function protocolNumber(name: string): number | undefined {
  const n = Number(name);
  if (name !== '' && Number.isInteger(n) && n >= 0 && n < 256) return n;
  return (IPPROTO as Record<string, number>)[name.toUpperCase()];
}

/**
 * Dotted quad -> the 4 octets in `out`, or null. Exactly what node:net's isIPv4 accepts: no
 * leading zeros (octal in some parsers; Go's net.ParseIP rejects them too). Hand-rolled (no
 * split, no regex): it runs for every endpoint address of every slice and every map write.
 */
export function parseIp4Octets(s: string, out: number[] = [0, 0, 0, 0]): number[] | null {
  let part = 0;
  let val = 0;
  let digits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || part === 3) return null;
      out[part++] = val;
      val = 0;
      digits = 0;
      continue;
    }
    if (c < 48 || c > 57) return null;
    if (digits > 0 && val === 0) return null;
    val = val * 10 + (c - 48);
    if (++digits > 3 || val > 255) return null;
  }
  if (part !== 3 || digits === 0) return null;
  out[3] = val;
  return out;
}

function isHexGroup(t: string, from: number, to: number): boolean {
  if (to - from < 1 || to - from > 4) return false;
  for (let i = from; i < to; i++) {
    const c = t.charCodeAt(i) | 0x20; // lower case for letters
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function hexGroups(t: string): number[] | null {
  if (t === '') return [];
  const out: number[] = [];
  let from = 0;
  for (;;) {
    const to = t.indexOf(':', from);
    const end = to === -1 ? t.length : to;
    if (!isHexGroup(t, from, end)) return null;
    out.push(parseInt(t.slice(from, end), 16));
    if (to === -1) return out;
    from = to + 1;
  }
}

/**
 * RFC 4291 text -> 8 groups of 16 bits, or null: `::` compression (at most once, for one
 * group or more) and a dotted IPv4 tail (`::ffff:198.18.0.1`); no zone (`%eth0`), which no
 * map address carries.
 */
export function parseIp6Groups(s: string): number[] | null {
  if (s.length < 2 || s.length > 45 || s.includes('%')) return null;
  let head = s;
  let v4tail: number[] | null = null;
  const lastColon = s.lastIndexOf(':');
  if (lastColon === -1) return null;
  if (s.indexOf('.', lastColon) !== -1) {
    v4tail = parseIp4Octets(s.slice(lastColon + 1));
    if (!v4tail) return null;
    head = s.slice(0, lastColon + 1);
    // "::1.2.3.4" keeps its "::"; "a:b:1.2.3.4" becomes "a:b".
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const want = v4tail ? 6 : 8;
  const dbl = head.indexOf('::');
  if (dbl !== -1 && head.indexOf('::', dbl + 1) !== -1) return null;
  let groups: number[];
  if (dbl === -1) {
    const g = hexGroups(head);
    if (!g || g.length !== want) return null;
    groups = g;
  } else {
    const left = hexGroups(head.slice(0, dbl));
    const right = hexGroups(head.slice(dbl + 2));
    if (!left || !right) return null;
    const fill = want - left.length - right.length;
    if (fill < 1) return null;
    groups = [...left, ...new Array<number>(fill).fill(0), ...right];
  }
  if (v4tail) groups.push((v4tail[0]! << 8) | v4tail[1]!, (v4tail[2]! << 8) | v4tail[3]!);
  return groups;
}

/** RFC 5952 text: lower case, the longest run (2 or more, leftmost on a tie) of zero groups as `::`. */
export function formatIp6Groups(groups: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface ParsedIp {
  family: IpFamily;
  /** Canonical text: dotted quad without leading zeros, or RFC 5952 IPv6 (lowercase, `::`). */
  address: string;
}

const scratch = [0, 0, 0, 0];

/** An IPv4 or IPv6 address (no zone, no prefix) in canonical text, or null when invalid. */
export function parseIp(s: unknown): ParsedIp | null {
  if (typeof s !== 'string') return null;
  if (s.includes(':')) {
    const g = parseIp6Groups(s);
    return g ? { family: 6, address: formatIp6Groups(g) } : null;
  }
  // a strictly parsed dotted quad is already canonical
  return parseIp4Octets(s, scratch) ? { family: 4, address: s } : null;
}

/** Canonical text of an address of the given family, or null (wrong family or invalid). Allocation-free for IPv4. */
export function canonicalIp(s: unknown, family: IpFamily): string | null {
  if (typeof s !== 'string') return null;
  if (family === 4) return parseIp4Octets(s, scratch) ? s : null;
  if (!s.includes(':')) return null;
  const g = parseIp6Groups(s);
  return g ? formatIp6Groups(g) : null;
}

/** The family of an address text, or null when it is not an address. */
export function ipFamilyOf(s: unknown): IpFamily | null {
  return parseIp(s)?.family ?? null;
}

/** The address as network-order bytes (4 or 16), or null when invalid. */
export function ipBytes(s: string): Buffer | null {
  if (s.includes(':')) {
    const g = parseIp6Groups(s);
    if (!g) return null;
    const out = Buffer.alloc(16);
    g.forEach((w, i) => out.writeUInt16BE(w, 2 * i));
    return out;
  }
  const o = parseIp4Octets(s);
  return o ? Buffer.from(o) : null;
}

/** Dotted quad → 4 bytes at `off`; throws a TypeError (and writes nothing) when invalid. */
export function ip4ToBytes(ip: string, out: Buffer, off = 0): void {
  const o = parseIp4Octets(ip, scratch);
  if (!o) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  out[off] = o[0]!;
  out[off + 1] = o[1]!;
  out[off + 2] = o[2]!;
  out[off + 3] = o[3]!;
}

export function bytesToIp4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** IPv6 text → 16 bytes at `off`; throws a TypeError (and writes nothing) when invalid. */
export function ip6ToBytes(ip: string, out: Buffer, off = 0): void {
  const g = typeof ip === 'string' ? parseIp6Groups(ip) : null;
  if (!g) throw new TypeError(`not an IPv6 address: ${JSON.stringify(ip)}`);
  g.forEach((w, i) => out.writeUInt16BE(w, off + 2 * i));
}

/** 16 bytes → RFC 5952 text. */
export function bytesToIp6(b: Uint8Array, off = 0): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!);
  return formatIp6Groups(g);
}

export interface ParsedCidr {
  family: IpFamily;
  /** Canonical network address (host bits cleared). */
  address: string;
  prefix: number;
}

/** "addr/prefix" (surrounding whitespace tolerated, as kube-proxy does for source ranges), host bits cleared. */
export function parseCidr(s: unknown): ParsedCidr | null {
  if (typeof s !== 'string') return null;
  const t = s.trim();
  const slash = t.indexOf('/');
  if (slash === -1) return null;
  const prefixText = t.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  const bytes = ipBytes(t.slice(0, slash));
  if (!bytes || prefix > bytes.length * 8) return null;
  maskBytes(bytes, prefix);
  return bytes.length === 4 ? { family: 4, address: bytesToIp4(bytes), prefix } : { family: 6, address: bytesToIp6(bytes), prefix };
}

function maskBytes(b: Buffer, prefix: number): void {
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    b[i]! &= (0xff << (8 - bits)) & 0xff;
  }
}

/** true when `ip` is inside `cidr` (same family); a bare address is a /32 or /128. */
export function cidrContains(cidr: string, ip: string): boolean {
  const t = cidr.trim();
  const slash = t.indexOf('/');
  const lenText = slash === -1 ? undefined : t.slice(slash + 1);
  const net = ipBytes(slash === -1 ? t : t.slice(0, slash));
  const a = ipBytes(ip);
  if (!net || !a || net.length !== a.length || lenText === '') return false;
  const len = lenText === undefined ? net.length * 8 : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > net.length * 8) return false;
  maskBytes(net, len);
  maskBytes(a, len);
  return net.equals(a);
}

/** The IPv4 address inside a v4-mapped IPv6 one (::ffff:a.b.c.d, as the IPv6 maps hold an IPv4
 *  underlay node), or null when `address` is not v4-mapped. */
export function unmapIp4(address: string): string | null {
  if (!address.startsWith('::ffff:')) return null;
  const b = ipBytes(address);
  return b && b.length === 16 && b.readUInt16BE(10) === 0xffff && b.subarray(0, 10).every((x) => x === 0) ? bytesToIp4(b, 12) : null;
}
