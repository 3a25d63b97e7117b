// daemon/failsafe-ports: --failsafe-inbound-host-ports / --failsafe-outbound-host-ports, Felix's
// syntax (`proto:port` or `proto:cidr:port`, IPv6 CIDRs in brackets, `none` = empty). A minimal
// parser until the model's (src/model/host-policy/failsafe.ts, same signature) replaces it.

import { parseCidr } from '../bpf/ip.js';
import type { FailsafeEntry } from '../model/host-policy/types.js';

export const DEFAULT_FAILSAFE_INBOUND = 'tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667';
export const DEFAULT_FAILSAFE_OUTBOUND = 'udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667';

/** Each entry of `text`; the ones it cannot read are named in `errors`. */
export function parseFailsafes(text: string, direction: 'in' | 'out'): { entries: FailsafeEntry[]; errors: string[] } {
  const entries: FailsafeEntry[] = [];
  const errors: string[] = [];
  const t = text.trim();
  if (t === '' || t.toLowerCase() === 'none') return { entries, errors };
  for (const raw of t
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s)) {
    // proto:port, proto:cidr:port, proto:[v6cidr]:port
    const m = /^(tcp|udp|sctp):(?:(\[[^\]]+\]|[^:[\]]+):)?(\d{1,5})$/i.exec(raw);
    const port = m ? Number(m[3]) : NaN;
    let net: string | undefined;
    if (m?.[2]) {
      const n = m[2].replace(/^\[|\]$/g, '');
      const c = parseCidr(n.includes('/') ? n : `${n}/${n.includes(':') ? 128 : 32}`);
      net = c ? `${c.address}/${c.prefix}` : undefined;
      if (!c) {
        errors.push(`${raw}: ${n} is not a CIDR`);
        continue;
      }
    }
    if (!m || port > 65535) {
      errors.push(`${raw}: use proto:port or proto:cidr:port (proto tcp, udp or sctp; IPv6 CIDRs in brackets)`);
      continue;
    }
    entries.push({ direction, protocol: m[1]!.toLowerCase() as FailsafeEntry['protocol'], port, ...(net ? { net } : {}) });
  }
  return { entries, errors };
}

/** `entries` with weir's own --metrics-address port open inbound (TCP), so host policy never locks out /metrics and the probes. */
export function withOwnPorts(entries: readonly FailsafeEntry[], metricsAddress: string | null): FailsafeEntry[] {
  const m = metricsAddress ? /:(\d+)$/.exec(metricsAddress) : null;
  const port = m ? Number(m[1]) : undefined;
  if (port === undefined || entries.some((e) => e.direction === 'in' && e.protocol === 'tcp' && e.port === port && !e.net)) return [...entries];
  return [...entries, { direction: 'in', protocol: 'tcp', port }];
}
