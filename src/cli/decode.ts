// cli/decode: map entries into the words an operator reads. Flag and state names come from
// the ABI enums (BTF), so a new flag in C shows up here without a hand-kept table.

import { enums } from '../bpf/index.js';
import { ipFamilyOf, unmapIp4, type IpFamily } from '../bpf/ip.js';
import { addressPort } from '../dataplane/frontend-entries.js';

// protocol numbers <-> names: the one table, next to the one IP parser
export { protocolName, protocolNumber } from '../bpf/ip.js';

/** Set bits of a flags value as lower-case names without the enum's prefix. */
export function flagNames(table: Record<string, number>, prefix: string, value: number): string[] {
  return Object.entries(table)
    .filter(([, bit]) => bit !== 0 && (value & bit) === bit)
    .map(([name]) => name.slice(prefix.length).toLowerCase());
}

export const frontendFlags = (v: number) => flagNames(enums.weir_frontend_flags, 'WEIR_FRONTEND_', v);
export const backendFlags = (v: number) => flagNames(enums.weir_backend_flags, 'WEIR_BACKEND_', v);
export const ctFlags = (v: number) => flagNames(enums.weir_ct_flags, 'WEIR_CT_', v);
export const nodeFlags = (v: number) => flagNames(enums.weir_node_flags, 'WEIR_NODE_', v);
export const scopeName = (v: number) =>
  Object.entries(enums.weir_frontend_scope)
    .find(([, n]) => n === v)?.[0]
    .slice('WEIR_SCOPE_'.length)
    .toLowerCase() ?? String(v);

/** TCP flag bits as tcpdump prints them. */
export function tcpFlagString(bits: number): string {
  const names: Array<[number, string]> = [
    [0x02, 'S'],
    [0x10, '.'],
    [0x08, 'P'],
    [0x01, 'F'],
    [0x04, 'R'],
  ];
  return (
    names
      .filter(([b]) => bits & b)
      .map(([, n]) => n)
      .join('') || '-'
  );
}

/** Seconds since a bpf_ktime_get_ns() stamp (CLOCK_MONOTONIC, what hrtime reads). */
export function ageSeconds(stampNs: bigint, now = process.hrtime.bigint()): number {
  if (stampNs === 0n) return 0;
  return Number((now - stampNs) / 1_000_000n) / 1000;
}

/** The family as operators and Kubernetes (`ipFamilies`) name it: `IPv4`, `IPv6`. */
export const familyName = (f: IpFamily): string => `IPv${f}`;

/** `198.18.1.10:8080`, `[2001:2:1::10]:8080`: an endpoint of either family, as printed everywhere. */
export const endpoint = (address: string, port: number): string => addressPort(ipFamilyOf(address) ?? 4, address, port);

/** A tunnel node address as weir_ct4_v2 / weir_ct6 hold it, or null for none (all zero). An
 *  IPv4 underlay in weir_ct6 is v4-mapped (::ffff:a.b.c.d): shown as the IPv4 address it is. */
export function tunnelNode(address: string): string | null {
  if (address === '0.0.0.0' || address === '::') return null;
  return unmapIp4(address) ?? address;
}

/** Where a conntrack entry's direction goes (the forward stage): `tunnel→NODE` (VXLAN to that
 *  node; the forward direction of a DSR flow says `dsr→NODE`), `redirect→ifindex N`
 *  (interface to interface, past the host stack), or `stack` (the kernel routes it). */
export function ctForward(v: { tunnel_node: string; ifindex: number; flags: number }): string {
  const flags = ctFlags(v.flags);
  const node = tunnelNode(v.tunnel_node);
  if (node !== null) return `${flags.includes('dsr') && !flags.includes('reply') ? 'dsr' : 'tunnel'}→${node}`;
  return v.ifindex ? `redirect→ifindex ${v.ifindex}` : 'stack';
}
