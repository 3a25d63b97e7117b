// The Internet checksum (RFC 1071) and the pseudo-headers TCP, UDP, ICMPv6 fold in.

/** One's-complement sum of 16-bit big-endian words, folded to 16 bits (not inverted). */
export function onesSum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = data.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length & 1) sum += data[data.length - 1]! << 8; // odd length: pad with a zero byte
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The value to store in a checksum field: the inverted one's-complement sum of all parts. */
export function inetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  for (const p of parts) sum = onesSum(p, sum);
  return ~sum & 0xffff;
}

/** RFC 793 / 768 pseudo-header: src, dst, zero, protocol, upper-layer length (16 bits). */
export function ipv4PseudoHeader(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): Buffer {
  const b = Buffer.alloc(12);
  b.set(src.subarray(0, 4), 0);
  b.set(dst.subarray(0, 4), 4);
  b[9] = protocol;
  b.writeUInt16BE(length & 0xffff, 10);
  return b;
}

/** RFC 8200 §8.1 pseudo-header: src, final dst, upper-layer length (32 bits), next header. */
export function ipv6PseudoHeader(src: Uint8Array, dst: Uint8Array, nextHeader: number, length: number): Buffer {
  const b = Buffer.alloc(40);
  b.set(src.subarray(0, 16), 0);
  b.set(dst.subarray(0, 16), 16);
  b.writeUInt32BE(length >>> 0, 32);
  b[39] = nextHeader;
  return b;
}
