// model/host-policy/failsafe: Felix's ProtoPort lists (FailsafeInboundHostPorts /
// FailsafeOutboundHostPorts: `tcp:22`, `udp:68`, `tcp:198.18.0.0/15:22`, `tcp:[2001:2::]/48:22`)
// parsed from the daemon flags into FailsafeEntry values and formatted back, with Felix's defaults.

import { parseCidr } from '../../bpf/ip.js';
import type { FailsafeEntry } from './types.js';

/** Felix's FailsafeInboundHostPorts default (felix/config/config_params.go). */
export const DEFAULT_FAILSAFE_INBOUND = 'tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667';
/** Felix's FailsafeOutboundHostPorts default. */
export const DEFAULT_FAILSAFE_OUTBOUND = 'udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667';

const PROTOCOLS: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp']);

/**
 * A comma-separated ProtoPort list -> entries of one direction. `none` or empty = no entries.
 * An entry is `[proto:][cidr:]port`: protocol tcp (the default), udp or sctp; an IPv6 CIDR in
 * brackets. Bad entries are reported (with the entry) and left out; the good ones are kept.
 */
export function parseFailsafes(text: string, direction: 'in' | 'out'): { entries: FailsafeEntry[]; errors: string[] } {
  const entries: FailsafeEntry[] = [];
  const errors: string[] = [];
  const t = text.trim();
  if (t === '' || t.toLowerCase() === 'none') return { entries, errors };
  for (const raw of t.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const e = parseEntry(item, direction);
    if (typeof e === 'string') errors.push(`failsafe ${JSON.stringify(item)}: ${e}`);
    else if (!entries.some((x) => x.protocol === e.protocol && x.port === e.port && x.net === e.net)) entries.push(e);
  }
  return { entries, errors };
}

function parseEntry(item: string, direction: 'in' | 'out'): FailsafeEntry | string {
  let rest = item;
  let protocol = 'tcp';
  const colon = rest.indexOf(':');
  if (colon !== -1 && !rest.startsWith('[')) {
    const head = rest.slice(0, colon).toLowerCase();
    if (PROTOCOLS.has(head)) {
      protocol = head;
      rest = rest.slice(colon + 1);
    } else if (!/^[0-9]/.test(head)) return `unknown protocol ${JSON.stringify(head)} (tcp, udp, sctp)`;
  }
  let net: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) return "missing ']' after the IPv6 CIDR";
    const after = rest.slice(close + 1); // "/48:22"
    const m = /^(\/[0-9]+)?:(.*)$/.exec(after);
    if (!m) return 'expected [ipv6]/prefix:port';
    // [2001:2::]/48 and [2001:2::/48] both read (the prefix inside the brackets or after)
    const inner = rest.slice(1, close);
    const cidr = parseCidr(inner.includes('/') && !m[1] ? inner : `${inner}${m[1] ?? '/128'}`);
    if (!cidr || cidr.family !== 6) return `bad IPv6 CIDR ${JSON.stringify(rest.slice(0, close + 1) + (m[1] ?? ''))}`;
    net = `${cidr.address}/${cidr.prefix}`;
    rest = m[2]!;
  } else {
    const last = rest.lastIndexOf(':');
    if (last !== -1) {
      const c = rest.slice(0, last);
      const cidr = parseCidr(c.includes('/') ? c : `${c}/32`);
      if (!cidr || cidr.family !== 4) return `bad CIDR ${JSON.stringify(c)}`;
      net = `${cidr.address}/${cidr.prefix}`;
      rest = rest.slice(last + 1);
    }
  }
  if (!/^[0-9]{1,5}$/.test(rest) || Number(rest) < 1 || Number(rest) > 65535) return `bad port ${JSON.stringify(rest)} (1-65535)`;
  const entry: FailsafeEntry = { direction, protocol: protocol as FailsafeEntry['protocol'], port: Number(rest) };
  if (net !== undefined) entry.net = net;
  return entry;
}

/** Entries -> the flag's text (one direction's entries; `none` when there are none). */
export function formatFailsafes(entries: readonly FailsafeEntry[]): string {
  if (entries.length === 0) return 'none';
  return entries
    .map((e) => {
      if (e.net === undefined) return `${e.protocol}:${e.port}`;
      const slash = e.net.lastIndexOf('/');
      const net = e.net.includes(':') ? `[${e.net.slice(0, slash)}]${e.net.slice(slash)}` : e.net;
      return `${e.protocol}:${net}:${e.port}`;
    })
    .join(',');
}
