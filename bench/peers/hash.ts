// bench/peers: kube-proxy's chain-name hashes. iptables: base32(sha256(servicePortName +
// protocol [+ "ip:port"]))[:16] (pkg/proxy/iptables portProtoHash / servicePortEndpointChainName);
// nftables: the readable base name prefixed with base32(sha256(base))[:8]. Checked against
// the names in kube-proxy's own unit tests (hash.test in bench/peers/check.ts).

import { createHash } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32, Go's base32.StdEncoding without the padding (never reached: we truncate) */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = ((value << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

export function hashPrefix(s: string, n: number): string {
  return base32(createHash('sha256').update(s).digest()).slice(0, n);
}

/** KUBE-SVC-/KUBE-EXT-/KUBE-SVL-/KUBE-FW- suffix */
export function portProtoHash(servicePortName: string, protocol: string): string {
  return hashPrefix(servicePortName + protocol, 16);
}

/** KUBE-SEP- suffix; endpoint is "ip:port" */
export function endpointHash(servicePortName: string, protocol: string, endpoint: string): string {
  return hashPrefix(servicePortName + protocol + endpoint, 16);
}

/** nftables chain name: `<prefix>-<HASH8>-<base>` */
export function nftChainName(prefix: string, base: string): string {
  return `${prefix}-${hashPrefix(base, 8)}-${base}`;
}
