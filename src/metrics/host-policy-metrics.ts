// metrics/host-policy-metrics: host protection (issue 17) in /metrics: where the XDP prefilter is
// attached and in which mode (weir_xdp_attached), this node's host endpoints and compiled rules,
// and what could not be used or written (weir_host_policy_errors_total{reason}: plan errors by
// kind, map refusals, a full rule array, a missing object). Read at scrape time from the daemon.

import { Counter, Gauge, type Registry } from 'prom-client';

export interface HostPolicyView {
  /** ifname -> XDP mode ('native', 'generic', 'unknown' for an adopted link the dump did not describe) */
  xdp(): ReadonlyMap<string, string>;
  /** the last plan written: host endpoints of this node, rules in force */
  figures(): { endpoints: number; rules: number } | undefined;
}

export class HostPolicyMetrics {
  readonly errors: Counter<'reason'>;

  private figures = false;

  constructor(
    private readonly registry: Registry,
    private readonly view: () => HostPolicyView | undefined,
  ) {
    this.errors = new Counter({
      name: 'weir_host_policy_errors_total',
      help: 'Host policy objects or entries that could not be used or written (logged one line each), by reason: plan_<kind> (an invalid GlobalNetworkPolicy or HostEndpoint), rules_full, map_full, bad_entry, write_failed, object_missing.',
      labelNames: ['reason'] as const,
      registers: [registry],
    });
    new Gauge({
      name: 'weir_xdp_attached',
      help: 'Host interfaces with the XDP prefilter attached (1), by interface and mode (native, generic); absent: TC walks the untracked rules there.',
      labelNames: ['interface', 'mode'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [iface, mode] of view()?.xdp() ?? []) this.set({ interface: iface, mode }, 1);
      },
    });
  }

  /** The host endpoint and rule gauges, once host policy runs (absent otherwise: `weir status` says nothing of it). */
  enableFigures(): void {
    if (this.figures) return;
    this.figures = true;
    const view = this.view;
    new Gauge({
      name: 'weir_host_endpoints',
      help: "This node's host endpoints in force (the automatic one and explicit HostEndpoints).",
      registers: [this.registry],
      collect() {
        const f = view()?.figures();
        if (f) this.set(f.endpoints);
      },
    });
    new Gauge({
      name: 'weir_host_policy_rules',
      help: 'Compiled host policy rules in force in weir_host_rules (one half of it).',
      registers: [this.registry],
      collect() {
        const f = view()?.figures();
        if (f) this.set(f.rules);
      },
    });
  }
}
