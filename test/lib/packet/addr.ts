// Address text <-> bytes for packet fixtures: MAC, IPv4, IPv6. Fixtures write addresses
// as strings; headers and BPF map keys need bytes (network order) or u32 words.

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
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new Error(`invalid IPv4 address ${JSON.stringify(text)}`);
  }
  return Buffer.from(parts.map(Number));
}

export function formatIPv4(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 4)).join('.');
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
  const fail = (): never => {
    throw new Error(`invalid IPv6 address ${JSON.stringify(text)}`);
  };
  let body = text;
  const words: number[] = [];
  const tail: number[] = [];
  const v4 = /(?:^|:)(\d+\.\d+\.\d+\.\d+)$/.exec(body);
  if (v4) {
    const b = parseIPv4(v4[1]!);
    tail.push(b.readUInt16BE(0), b.readUInt16BE(2));
    body = body.slice(0, body.length - v4[1]!.length);
    if (body.endsWith(':') && !body.endsWith('::')) body = body.slice(0, -1);
  }
  const halves = body.split('::');
  if (halves.length > 2) fail();
  const parse = (s: string): number[] =>
    s === '' ? [] : s.split(':').map((w) => (/^[0-9a-fA-F]{1,4}$/.test(w) ? parseInt(w, 16) : fail()));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const given = head.length + rest.length + tail.length;
  if (halves.length === 2 ? given > 7 : given !== 8) fail();
  words.push(...head, ...new Array<number>(8 - given).fill(0), ...rest, ...tail);
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** RFC 5952 canonical text: lowercase, the longest run of two or more zero words as `::`. */
export function formatIPv6(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, 16);
  const words = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
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
