// daemon/failsafe-ports: --failsafe-inbound-host-ports / --failsafe-outbound-host-ports. The
// syntax and Felix's default lists are the model's (src/model/host-policy/failsafe.ts); here
// weir's own listeners are added, so host policy never locks out its probes and scrapes.

import type { FailsafeEntry } from '../model/host-policy/types.js';
import { DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND, parseFailsafes } from '../model/host-policy/failsafe.js';

export { DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND, parseFailsafes };

/**
 * `entries` with the TCP port of each of weir's own listeners open inbound: --metrics-address
 * (/metrics, /healthz, /readyz: the kubelet's probes and Prometheus) and --healthz-address
 * (kube-proxy's 10256, which cloud load balancers probe). Null addresses (off) add nothing.
 */
export function withOwnPorts(entries: readonly FailsafeEntry[], ...addresses: Array<string | null | undefined>): FailsafeEntry[] {
  const out = [...entries];
  for (const address of addresses) {
    const m = address ? /:(\d+)$/.exec(address) : null;
    const port = m ? Number(m[1]) : undefined;
    if (port === undefined || out.some((e) => e.direction === 'in' && e.protocol === 'tcp' && e.port === port && !e.net)) continue;
    out.push({ direction: 'in', protocol: 'tcp', port });
  }
  return out;
}
