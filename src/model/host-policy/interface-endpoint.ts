// model/host-policy/interface-endpoint: which host endpoint of a plan covers a host interface
// (what the writer puts in weir_hep_ifaces): a HostEndpoint naming the interface beats one picked
// by expectedIPs, which beats an explicit `*`, which beats the automatic one; ties: lowest id.

import type { HostEndpointPlan, HostPolicyPlan } from './types.js';

function rank(e: HostEndpointPlan, ifname: string, addresses: readonly string[]): number {
  if (e.interfaces === '*') return e.auto ? 3 : 2;
  if (e.interfaces.includes(ifname)) return 0;
  // interfaceName empty: the endpoint is the interface that holds one of its expected addresses
  if (e.interfaces.length === 0 && e.expectedIPs.some((ip) => addresses.includes(ip))) return 1;
  return Infinity;
}

/** The endpoint covering interface `ifname` (with its canonical `addresses`), or undefined: not policed. */
export function endpointForInterface(plan: HostPolicyPlan, ifname: string, addresses: readonly string[] = []): HostEndpointPlan | undefined {
  let best: HostEndpointPlan | undefined;
  let bestRank = Infinity;
  for (const e of plan.endpoints) {
    const r = rank(e, ifname, addresses);
    if (r < bestRank || (r === bestRank && best !== undefined && e.id < best.id)) {
      best = e;
      bestRank = r;
    }
  }
  return bestRank === Infinity ? undefined : best;
}
