// dataplane/pod-sources: weir_pod_addrs4 / weir_pod_addrs6, the addresses each workload
// interface may send from (bpf-c/include/weir/pod_source.h). Written from the workload list
// the attachments follow (interfaces.ts: the CNI plugin's host routes `podIP dev vethX`), and
// before them, so an interface's from_pod never runs without its pod's addresses: a pod weir
// has not seen yet is not checked at all (nothing attached), one it has is checked exactly.
// The routes are the kernel's, set by the CNI plugin before the pod's first packet; the API
// server plays no part, so a pod is never dropped for an API that is late.

import { canonicalIp, ipFamilyOf, type IpFamily } from '../bpf/ip.js';
import type { TypedMap, WeirPodAddr } from '../bpf/index.js';
import { type Logger, errText } from '../log.js';

/** The two maps, by family; keys are addresses as text (the codecs' weir_ip4 / weir_ip6). */
export type PodAddrMaps = Record<IpFamily, TypedMap<{ address: string }, WeirPodAddr>>;

/** What the table needs of a workload interface (interfaces.ts WorkloadInterface). */
export interface PodAddressesOf {
  ifindex: number;
  ifname: string;
  /** the pod addresses routed to it, either family */
  addresses: readonly string[];
}

/** address -> ifindex wanted in each family's map. An address routed to two interfaces (a
 *  misconfiguration) goes to the lower ifindex, as the list is sorted, and is logged. */
export function podAddressTable(workloads: readonly PodAddressesOf[], log?: Logger): Record<IpFamily, Map<string, number>> {
  const want: Record<IpFamily, Map<string, number>> = { 4: new Map(), 6: new Map() };
  for (const w of workloads)
    for (const text of w.addresses) {
      const f = ipFamilyOf(text);
      const a = f === null ? null : canonicalIp(text, f); // as the codec reads it back
      if (f === null || a === null) continue;
      const have = want[f].get(a);
      if (have !== undefined && have !== w.ifindex) {
        log?.warn('pod address routed to two interfaces: only the first may send from it', { address: a, ifindex: have, other: w.ifindex });
        continue;
      }
      want[f].set(a, w.ifindex);
    }
  return want;
}

export class PodSourceTable {
  /** failed reads, writes and deletes (logged), for the metrics */
  errors = 0;

  constructor(
    private readonly maps: PodAddrMaps,
    private readonly log: Logger,
  ) {}

  /** Makes the maps hold exactly these interfaces' addresses. Returns the writes it made. */
  sync(workloads: readonly PodAddressesOf[]): number {
    const want = podAddressTable(workloads, this.log);
    let writes = 0;
    for (const f of [4, 6] as const) writes += this.syncFamily(f, want[f]);
    return writes;
  }

  private syncFamily(family: IpFamily, want: Map<string, number>): number {
    const map = this.maps[family];
    let have: Map<string, number>;
    try {
      have = new Map([...map.entries()].map(([k, v]) => [k.address, v.ifindex]));
    } catch (e) {
      this.errors++;
      this.log.warn('pod address map read failed', { family, error: errText(e) });
      return 0;
    }
    let writes = 0;
    // new bindings first: a pod that moved to a new interface is never without one
    for (const [address, ifindex] of want) {
      if (have.get(address) === ifindex) continue;
      try {
        map.set({ address }, { ifindex });
        writes++;
      } catch (e) {
        this.errors++;
        this.log.warn('pod address write failed: its packets are dropped as spoofed', { address, ifindex, error: errText(e) });
      }
    }
    for (const address of have.keys()) {
      if (want.has(address)) continue;
      try {
        map.delete({ address });
        writes++;
      } catch (e) {
        this.errors++;
        this.log.warn('pod address delete failed', { address, error: errText(e) });
      }
    }
    return writes;
  }
}
