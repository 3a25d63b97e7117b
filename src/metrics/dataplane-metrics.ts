// metrics/dataplane-metrics: the metrics read from the pinned maps when Prometheus scrapes (no
// polling loop, always current): the counters map as packets, drops and forwarded packets, new
// connections per service port (per backend on request), per-policy flows. Map fill is the
// exception: entry counts come from the map census (dataplane/map-census.ts), counted in the
// background, so a scrape costs the same with an empty or a full conntrack table.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { BpfMap } from '../bpf/index.js';
import { verdictOf, type CounterRow } from '../dataplane/counters.js';
import type { CensusRow } from '../dataplane/map-census.js';
import { boundedLbSeries, readLbStats, type LbSeries } from '../dataplane/lb-stats.js';

/** What the scrape reads from the dataplane: the counters map and every pinned map's counted fill. */
export interface DataplaneView {
  counters(): BpfMap | undefined;
  /** every pinned map by pin name, with its last count (MapCensus.rows: no syscall) */
  maps(): readonly CensusRow[];
  /** weir_lb_stats4 and weir_lb_stats6 where pinned (undefined with --service-stats off), who each frontend id is, and
   *  whether per-backend series are exported (--service-stats backend) */
  lbStats?(): { maps: readonly BpfMap[]; frontends: Map<number, { service: string; frontend: string }>; backends?: boolean } | undefined;
  /** service ports with a Local traffic policy and endpoints, none on this node (service-sync.ts) */
  noLocalEndpoints?(): { internal: number; external: number } | undefined;
  /** weir_policy_stats (undefined with --policy-stats or --network-policy off) and each slot's policy */
  policyStats?(): { map: BpfMap; names: Map<number, string> } | undefined;
}

/** Hard cap on weir_policy_flows_total series (policies x 4); the rest sum into policy="other". */
export const POLICY_SERIES_CAP = 2000;

/** Hard cap on weir_service_new_connections_total and weir_service_backend_new_connections_total series each; the rest
 *  sum into one series labelled "other". */
export const LB_SERIES_CAP = 2000;

/** Series per {service, frontend}: the per-backend rows summed, then bounded like them. */
export function perFrontendSeries(series: readonly LbSeries[], cap: number): LbSeries[] {
  const byFrontend = new Map<string, LbSeries>();
  for (const s of series) {
    const k = `${s.service}|${s.frontend}`;
    const prev = byFrontend.get(k);
    if (prev) prev.value += s.value;
    else byFrontend.set(k, { ...s, backend: '' });
  }
  const sorted = [...byFrontend.values()].sort((a, b) => b.value - a.value || a.service.localeCompare(b.service) || a.frontend.localeCompare(b.frontend));
  if (sorted.length <= cap) return sorted;
  const kept = sorted.slice(0, Math.max(0, cap - 1));
  const rest = sorted.slice(kept.length).reduce((n, s) => n + s.value, 0);
  return [...kept, { service: 'other', frontend: 'other', backend: '', value: rest }];
}

/** Registers the scrape-time metrics; `dataplane` is the daemon's (undefined before it loads), `counterRows` the counters
 *  map read once per scrape. */
export function registerDataplaneMetrics(registry: Registry, dataplane: () => DataplaneView | undefined, counterRows: () => CounterRow[]): void {
  new Counter({
    name: 'weir_dataplane_packets_total',
    help: 'Packets seen by the BPF programs, by hook and reason (the per-CPU counters map, summed).',
    labelNames: ['hook', 'reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of counterRows()) this.inc({ hook: r.hook, reason: r.reason }, Number(r.packets));
    },
  });
  new Counter({
    name: 'weir_dataplane_bytes_total',
    help: 'Bytes seen by the BPF programs, by hook and reason.',
    labelNames: ['hook', 'reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of counterRows()) this.inc({ hook: r.hook, reason: r.reason }, Number(r.bytes));
    },
  });
  // drops apart from forwarded packets (Cilium's cilium_drop_count_total / cilium_forward_count_total), split by
  // the one verdict table of dataplane/counters.ts
  const verdictCounter = (name: string, help: string, verdict: 'drop' | 'forward', field: 'packets' | 'bytes') =>
    new Counter({
      name,
      help,
      labelNames: verdict === 'drop' ? (['hook', 'reason'] as const) : (['hook'] as const),
      registers: [registry],
      collect() {
        this.reset();
        for (const r of counterRows()) {
          if (verdictOf(r.hook, r.reason) !== verdict) continue;
          this.inc(verdict === 'drop' ? { hook: r.hook, reason: r.reason } : { hook: r.hook }, Number(r[field]));
        }
      },
    });
  verdictCounter('weir_drops_total', 'Packets the BPF programs dropped (a reject drops the packet and answers it), by hook and reason.', 'drop', 'packets');
  verdictCounter('weir_drop_bytes_total', 'Bytes of the packets the BPF programs dropped, by hook and reason.', 'drop', 'bytes');
  verdictCounter('weir_forwarded_packets_total', 'Packets the BPF programs let through (passed, NATed, redirected), by hook.', 'forward', 'packets');
  verdictCounter('weir_forwarded_bytes_total', 'Bytes of the packets the BPF programs let through, by hook.', 'forward', 'bytes');
  // weir_lb_stats read per metric and scrape; per backend only with --service-stats backend
  const lbSeries = (cap: number): { all: LbSeries[]; backends: boolean } | undefined => {
    try {
      const view = dataplane()?.lbStats?.();
      if (!view) return undefined;
      const rows = view.maps.flatMap((m) => readLbStats(m));
      return { all: boundedLbSeries(rows, (id) => view.frontends.get(id), cap), backends: view.backends === true };
    } catch {
      return undefined; // a map closed under us: nothing this scrape
    }
  };
  new Counter({
    name: 'weir_service_new_connections_total',
    help: `New connections (flows) to each service frontend (address:port/protocol), backends summed (weir_lb_stats4, weir_lb_stats6). At most ${LB_SERIES_CAP} series: the largest counts, the rest summed into service/frontend="other".`,
    labelNames: ['service', 'frontend'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const s = lbSeries(Number.MAX_SAFE_INTEGER);
      for (const x of s ? perFrontendSeries(s.all, LB_SERIES_CAP) : []) this.inc({ service: x.service, frontend: x.frontend }, x.value);
    },
  });
  new Counter({
    name: 'weir_service_backend_new_connections_total',
    help: `New connections (flows) sent to each backend, by service, frontend and backend; only with --service-stats backend. At most ${LB_SERIES_CAP} series: the largest counts, the rest summed into service/frontend/backend="other".`,
    labelNames: ['service', 'frontend', 'backend'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const s = lbSeries(LB_SERIES_CAP);
      if (!s?.backends) return;
      for (const x of s.all) this.inc({ service: x.service, frontend: x.frontend, backend: x.backend }, x.value);
    },
  });
  new Counter({
    name: 'weir_policy_verdicts_total',
    help: 'New flows decided by NetworkPolicy on this node, by direction (the isolated side whose policy decided) and verdict (the BPF counters of the policy stage).',
    labelNames: ['direction', 'verdict'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of counterRows()) {
        const m = /^policy_(egress|ingress)_(allowed|denied)$/.exec(r.reason);
        if (m) this.inc({ direction: m[1]!, verdict: m[2]! }, Number(r.packets));
      }
    },
  });
  new Counter({
    name: 'weir_policy_flows_total',
    help: `New flows per NetworkPolicy: allowed by one of its rules, or denied by default while it isolated the pod (the first such policy). At most ${POLICY_SERIES_CAP} series; --policy-stats off removes them.`,
    labelNames: ['policy', 'direction', 'verdict'] as const,
    registers: [registry],
    collect() {
      this.reset();
      try {
        const view = dataplane()?.policyStats?.();
        if (!view) return;
        const rows: { policy: string; direction: string; verdict: string; value: number }[] = [];
        for (const [key, value] of view.map.lookupBatch()) {
          const slot = key.readUInt32LE(0);
          const sums = [0, 0, 0, 0];
          for (const cpu of view.map.splitPerCpu(value)) for (let i = 0; i < 4; i++) sums[i]! += Number(cpu.readBigUInt64LE(i * 8));
          if (sums.every((s) => s === 0)) continue;
          const policy = view.names.get(slot) ?? 'other';
          const labels: [string, string][] = [
            ['ingress', 'allowed'],
            ['ingress', 'denied'],
            ['egress', 'allowed'],
            ['egress', 'denied'],
          ];
          labels.forEach(([direction, verdict], i) => sums[i]! > 0 && rows.push({ policy, direction, verdict, value: sums[i]! }));
        }
        rows.sort((a, b) => b.value - a.value);
        for (const [i, r] of rows.entries())
          this.inc(
            i < POLICY_SERIES_CAP
              ? { policy: r.policy, direction: r.direction, verdict: r.verdict }
              : { policy: 'other', direction: r.direction, verdict: r.verdict },
            r.value,
          );
      } catch {
        /* a map closed under us: nothing this scrape */
      }
    },
  });
  new Gauge({
    // kube-proxy's kubeproxy_sync_proxy_rules_no_local_endpoints_total is a gauge named like a counter, which promtool rejects
    name: 'weir_service_ports_no_local_endpoints',
    help: "kube-proxy's no_local_endpoints_total: service ports with a Local traffic policy whose endpoints are all on other nodes (traffic to them here is dropped), by traffic_policy (internal, external).",
    labelNames: ['traffic_policy'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const n = dataplane()?.noLocalEndpoints?.();
      if (!n) return;
      this.set({ traffic_policy: 'internal' }, n.internal);
      this.set({ traffic_policy: 'external' }, n.external);
    },
  });
  const fill = (name: string, help: string, value: (m: CensusRow) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['map'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const m of dataplane()?.maps() ?? []) {
          const v = value(m);
          if (v !== undefined) this.set({ map: m.name }, v);
        }
      },
    });
  fill('weir_map_entries', 'Entries in each pinned BPF map (by pin name), as last counted: weir_map_counted_timestamp_seconds says when.', (m) => m.entries);
  fill('weir_map_capacity', 'max_entries of each pinned BPF map.', (m) => m.capacity);
  fill('weir_map_pressure_ratio', 'entries / capacity of each pinned BPF map, as last counted (LRU maps evict near 1).', (m) =>
    m.entries === undefined || !m.capacity ? undefined : m.entries / m.capacity,
  );
  fill(
    'weir_map_counted_timestamp_seconds',
    'When weir_map_entries of each map was counted (unix seconds): the conntrack GC pass, or the background census.',
    (m) => (m.countedAt === undefined ? undefined : m.countedAt / 1000),
  );
}
