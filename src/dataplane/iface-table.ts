// dataplane/iface-table: weir_ifaces, the interfaces weir attaches to, by ifindex. The
// forward stage (bpf-c/lib/forward.h) looks up the interface the kernel routes a new
// service flow's backend to; a workload interface here means the flow stays on the node
// and both directions are redirected interface to interface, past the host stack. Written
// from the same interface list the attachments follow, so the two never disagree for long:
// an interface missing here only means its flows take the stack, as before.

import { enums, type TypedMap, type WeirIface } from '../bpf/index.js';
import { type Logger, errText } from '../log.js';
import type { InterfaceRef } from './attach.js';

const WORKLOAD = enums.weir_iface_flags.WEIR_IFACE_WORKLOAD;

export class IfaceTable {
  /** failed writes and deletes (logged), for the metrics */
  errors = 0;

  constructor(
    private readonly map: TypedMap<number, WeirIface>,
    private readonly log: Logger,
  ) {}

  /** Makes the map hold exactly these workload interfaces. Returns the writes it made. */
  sync(workloads: readonly InterfaceRef[]): number {
    const want = new Map(workloads.map((w) => [w.ifindex, w]));
    let have: Map<number, WeirIface>;
    try {
      have = new Map(this.map.entries());
    } catch (e) {
      this.errors++;
      this.log.warn('weir_ifaces read failed', { error: errText(e) });
      return 0;
    }
    let writes = 0;
    for (const [ifindex, w] of want) {
      if ((have.get(ifindex)?.flags ?? 0) === WORKLOAD) continue;
      try {
        this.map.set(ifindex, { flags: WORKLOAD });
        writes++;
      } catch (e) {
        this.errors++;
        this.log.warn('weir_ifaces write failed', { ifindex, ifname: w.ifname, error: errText(e) });
      }
    }
    for (const ifindex of have.keys()) {
      if (want.has(ifindex)) continue;
      try {
        this.map.delete(ifindex);
        writes++;
      } catch (e) {
        this.errors++;
        this.log.warn('weir_ifaces delete failed', { ifindex, error: errText(e) });
      }
    }
    return writes;
  }
}
