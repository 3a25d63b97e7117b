// metrics/metrics: everything weir exports to Prometheus, in one registry. Dataplane counters
// and map fill are read from the pinned maps at scrape time (no polling loop, always
// current); control-plane figures are pushed by the daemon as they happen. Names follow
// Prometheus conventions (_total, _seconds, base units); where kube-proxy has an equivalent
// an operator alerts on, the kube-proxy name is exported too (docs/metrics.md). Node's own
// process metrics (CPU, memory, event-loop lag, heap, GC) come from prom-client's defaults.

import { kernelRelease } from '../bpf/features.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BpfMap } from '../bpf/index.js';
import type { CtGcPass } from '../dataplane/conntrack-gc.js';
import { readCounters, verdictOf, type CounterRow } from '../dataplane/counters.js';
import { boundedLbSeries, readLbStats, type LbSeries } from '../dataplane/lb-stats.js';
import type { ChangeQueueFigures } from '../dataplane/service-sync.js';
import { buildInfo } from './build-info.js';

/** What the scrape reads from the dataplane: the counters map and every map whose fill matters. */
export interface DataplaneView {
  counters(): BpfMap | undefined;
  maps(): Iterable<BpfMap>;
  /** weir_lb_stats4 and weir_lb_stats6 where pinned (undefined with --service-stats off), who each frontend id is, and
   *  whether per-backend series are exported (--service-stats backend) */
  lbStats?(): { maps: readonly BpfMap[]; frontends: Map<number, { service: string; frontend: string }>; backends?: boolean } | undefined;
  /** service ports with a Local traffic policy and endpoints, none on this node (service-sync.ts) */
  noLocalEndpoints?(): { internal: number; external: number } | undefined;
  /** weir_policy_stats (undefined with --policy-stats or --network-policy off) and each slot's policy */
  policyStats?(): { map: BpfMap; names: Map<number, string> } | undefined;
}

/** What a policy sync reports to the metrics (dataplane/policy-sync.ts). */
export interface PolicySyncFigures {
  reason: string;
  buildMs: number;
  result: { ms: number; writes: number; errors: number; endpoints: number; identities: number; ipcache: number };
  observedAt: number[];
  issues: { policy: Map<string, number>; pod: Map<string, number> };
}

/** Hard cap on weir_policy_flows_total series (policies x 4); the rest sum into policy="other". */
export const POLICY_SERIES_CAP = 2000;

/** Hard cap on weir_service_new_connections_total and weir_service_backend_new_connections_total series each; the rest
 *  sum into one series labelled "other". */
export const LB_SERIES_CAP = 2000;

// network programming latency runs from milliseconds to minutes (kube-proxy's buckets)
const PROGRAMMING_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600];
const SYNC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
// a conntrack GC pass: a dump of up to millions of entries, milliseconds to seconds
const CT_GC_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface MetricsOptions {
  /** Node's process metrics (process_*, nodejs_*); default on. Off where several registries share a process (tests). */
  processMetrics?: boolean;
}

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

export class Metrics {
  readonly registry = new Registry();
  private dataplane: DataplaneView | undefined;
  private readonly scrapeHooks: (() => void)[] = [];
  /** the counters map read once per scrape (six metrics split the same rows) */
  private rowsOfScrape: CounterRow[] | undefined;
  private inScrape = false;

  readonly sourceEvents = new Counter({
    name: 'weir_source_events_total',
    help: 'Kubernetes object events received from the source, by kind and type (upsert, delete).',
    labelNames: ['kind', 'type'] as const,
    registers: [this.registry],
  });
  readonly sourceErrors = new Counter({
    name: 'weir_source_errors_total',
    help: 'Objects or files the source could not use (logged with the reason), by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly syncDuration = new Histogram({
    name: 'weir_sync_duration_seconds',
    help: 'Time to turn a batch of changes into map writes (model + plan + write).',
    labelNames: ['kind'] as const, // full (start, resync) or incremental
    buckets: SYNC_BUCKETS,
    registers: [this.registry],
  });
  readonly kubeProxySyncDuration = new Histogram({
    name: 'kubeproxy_sync_proxy_rules_duration_seconds',
    help: "weir's equivalent of kube-proxy's rule sync duration: any sync that wrote the maps.",
    buckets: SYNC_BUCKETS,
    registers: [this.registry],
  });
  readonly kubeProxyLastSync = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
    help: "weir's equivalent of kube-proxy's last successful sync time (unix seconds).",
    registers: [this.registry],
  });
  readonly programmingLatency = new Histogram({
    name: 'weir_network_programming_duration_seconds',
    help: 'From the source seeing an object change to its map entries written (the network programming latency SLI).',
    buckets: PROGRAMMING_BUCKETS,
    registers: [this.registry],
  });
  readonly kubeProxyProgrammingLatency = new Histogram({
    name: 'kubeproxy_network_programming_duration_seconds',
    help: "weir's equivalent of kube-proxy's network programming latency.",
    buckets: PROGRAMMING_BUCKETS,
    registers: [this.registry],
  });
  readonly mapWrites = new Counter({
    name: 'weir_map_writes_total',
    help: 'Map entries written or deleted by the reconciler, by map and operation.',
    labelNames: ['map', 'op'] as const,
    registers: [this.registry],
  });
  readonly mapWriteFailures = new Counter({
    name: 'weir_map_write_failures_total',
    help: 'Map writes the kernel refused, by map and errno name (E2BIG: the map is full).',
    labelNames: ['map', 'error'] as const,
    registers: [this.registry],
  });
  readonly mapMigratedEntries = new Counter({
    name: 'weir_map_migrated_entries_total',
    help: "Entries start converted from the map layout an earlier release pinned (from) into this release's (to), delta pass included.",
    labelNames: ['map', 'from', 'to'] as const,
    registers: [this.registry],
  });
  readonly mapHandedOffEntries = new Counter({
    name: 'weir_map_handed_off_entries_total',
    help: "Entries a graceful stop wrote back in an earlier release's layout (to), so that release can adopt them (rollback).",
    labelNames: ['map', 'from', 'to'] as const,
    registers: [this.registry],
  });
  readonly resyncRepairs = new Counter({
    name: 'weir_resync_repairs_total',
    help: 'Entries a periodic resync found different from the desired state and rewrote (drift).',
    labelNames: ['map'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'weir_errors_total',
    help: 'Errors by kind (attach, sync, conntrack_gc, netlink, ...), each also logged.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly driftEntries = new Gauge({
    name: 'weir_dataplane_drift_entries',
    help: 'Entries the last periodic resync found different from the desired state (and then repaired); 0 on a healthy node.',
    registers: [this.registry],
  });
  readonly lastResync = new Gauge({
    name: 'weir_dataplane_last_resync_timestamp_seconds',
    help: 'When the last periodic resync compared the maps with the desired state (unix seconds).',
    registers: [this.registry],
  });
  readonly frontends = new Gauge({
    name: 'weir_frontends',
    help: 'Frontends programmed (ClusterIP, NodePort, externalIP, LoadBalancer addresses x ports).',
    registers: [this.registry],
  });

  readonly policySyncDuration = new Histogram({
    name: 'weir_policy_sync_duration_seconds',
    help: 'One NetworkPolicy sync: the model built from the changed objects and the difference written to the policy maps.',
    labelNames: ['reason'] as const,
    buckets: SYNC_BUCKETS,
    registers: [this.registry],
  });
  readonly policyProgrammingLatency = new Histogram({
    name: 'weir_policy_programming_latency_seconds',
    help: 'From a NetworkPolicy, Pod, Namespace or Node change seen by weir to the policy maps written for it.',
    buckets: PROGRAMMING_BUCKETS,
    registers: [this.registry],
  });
  readonly policyIssues = new Gauge({
    name: 'weir_policy_issues',
    help: 'Parts of NetworkPolicies (kind="policy") or pods (kind="pod") weir could not use, by reason (each logged): an invalid CIDR, an unknown named port, ... A policy part that cannot be compiled allows nothing (fail closed).',
    labelNames: ['kind', 'reason'] as const,
    registers: [this.registry],
  });
  readonly policyObjects = new Gauge({
    name: 'weir_policy_objects',
    help: 'What the policy maps hold: local endpoints, identities, ipcache entries.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  // kube-proxy's change queue (pkg/proxy/metrics): what is waiting for the next sync
  readonly kubeProxyLastQueued = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
    help: "weir's equivalent of kube-proxy's: the last time a Service or EndpointSlice change queued a sync (unix seconds).",
    registers: [this.registry],
  });
  readonly serviceChangesPending = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_service_changes_pending',
    help: 'Services whose Service object changed since the last sync (waiting for it).',
    registers: [this.registry],
  });
  readonly endpointChangesPending = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
    help: 'Services whose EndpointSlices changed since the last sync (waiting for it).',
    registers: [this.registry],
  });
  readonly serviceChanges = new Counter({
    name: 'kubeproxy_sync_proxy_rules_service_changes_total',
    help: 'Service object changes (add, update, delete) queued for a sync.',
    registers: [this.registry],
  });
  readonly endpointChanges = new Counter({
    name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total',
    help: 'EndpointSlice changes (add, update, delete) queued for a sync.',
    registers: [this.registry],
  });

  // conntrack GC (dataplane/conntrack-gc.ts), as Cilium's datapath_conntrack_gc_* metrics
  readonly ctGcRuns = new Counter({
    name: 'weir_conntrack_gc_runs_total',
    help: "Conntrack GC passes over one family's map, by family and status (completed, failed).",
    labelNames: ['family', 'status'] as const,
    registers: [this.registry],
  });
  readonly ctGcDuration = new Histogram({
    name: 'weir_conntrack_gc_duration_seconds',
    help: "One conntrack GC pass over one family's map: dump, plan, delete.",
    labelNames: ['family'] as const,
    buckets: CT_GC_BUCKETS,
    registers: [this.registry],
  });
  readonly ctGcDeleted = new Counter({
    name: 'weir_conntrack_gc_deleted_entries_total',
    help: 'Conntrack entries the GC deleted, by family and reason (the idle timeout that expired: tcp_syn_only, tcp_established, tcp_closing, udp, icmp, other).',
    labelNames: ['family', 'reason'] as const,
    registers: [this.registry],
  });
  readonly ctGcAlive = new Gauge({
    name: 'weir_conntrack_gc_entries',
    help: "Conntrack entries left in each family's map after the last GC pass.",
    labelNames: ['family'] as const,
    registers: [this.registry],
  });
  readonly ctGcLastRun = new Gauge({
    name: 'weir_conntrack_gc_last_run_timestamp_seconds',
    help: "When the last conntrack GC pass over each family's map ended (unix seconds).",
    labelNames: ['family'] as const,
    registers: [this.registry],
  });

  constructor(opts: MetricsOptions = {}) {
    if (opts.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // gauges named like counters, which promtool rejects; nodejs_active_{handles,requests,resources} (by type) stay
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
        this.registry.removeSingleMetric(name);
    }
    const build = buildInfo();
    new Gauge({
      name: 'weir_build_info',
      help: 'Which weir runs here (always 1): version, commit (dirty: built from a tree with changes), Node.js, libbpf, kernel release.',
      labelNames: ['version', 'commit', 'dirty', 'node_version', 'libbpf_version', 'kernel_release'] as const,
      registers: [this.registry],
    }).set(
      {
        version: build.version,
        commit: build.commit,
        dirty: String(build.dirty),
        node_version: build.nodeVersion,
        libbpf_version: build.libbpfVersion,
        kernel_release: kernelRelease(),
      },
      1,
    );
    // prom-client calls collect() with `this` bound to the metric: the registry's state is reached through `self`
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    new Counter({
      name: 'weir_dataplane_packets_total',
      help: 'Packets seen by the BPF programs, by hook and reason (the per-CPU counters map, summed).',
      labelNames: ['hook', 'reason'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const r of self.counterRows()) this.inc({ hook: r.hook, reason: r.reason }, Number(r.packets));
      },
    });
    new Counter({
      name: 'weir_dataplane_bytes_total',
      help: 'Bytes seen by the BPF programs, by hook and reason.',
      labelNames: ['hook', 'reason'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const r of self.counterRows()) this.inc({ hook: r.hook, reason: r.reason }, Number(r.bytes));
      },
    });
    // drops apart from forwarded packets (Cilium's cilium_drop_count_total / cilium_forward_count_total), split by
    // the one verdict table of dataplane/counters.ts
    const verdictCounter = (name: string, help: string, verdict: 'drop' | 'forward', field: 'packets' | 'bytes') =>
      new Counter({
        name,
        help,
        labelNames: verdict === 'drop' ? (['hook', 'reason'] as const) : (['hook'] as const),
        registers: [this.registry],
        collect() {
          this.reset();
          for (const r of self.counterRows()) {
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
        const view = self.dataplane?.lbStats?.();
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
      registers: [this.registry],
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
      registers: [this.registry],
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
      registers: [this.registry],
      collect() {
        this.reset();
        for (const r of self.counterRows()) {
          const m = /^policy_(egress|ingress)_(allowed|denied)$/.exec(r.reason);
          if (m) this.inc({ direction: m[1]!, verdict: m[2]! }, Number(r.packets));
        }
      },
    });
    new Counter({
      name: 'weir_policy_flows_total',
      help: `New flows per NetworkPolicy: allowed by one of its rules, or denied by default while it isolated the pod (the first such policy). At most ${POLICY_SERIES_CAP} series; --policy-stats off removes them.`,
      labelNames: ['policy', 'direction', 'verdict'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        try {
          const view = self.dataplane?.policyStats?.();
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
      registers: [this.registry],
      collect() {
        this.reset();
        const n = self.dataplane?.noLocalEndpoints?.();
        if (!n) return;
        this.set({ traffic_policy: 'internal' }, n.internal);
        this.set({ traffic_policy: 'external' }, n.external);
      },
    });
    const fill = (name: string, help: string, value: (m: BpfMap) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['map'] as const,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const m of self.dataplane?.maps() ?? []) {
            try {
              this.set({ map: m.name }, value(m));
            } catch {
              /* a map closed under us: skip it this scrape */
            }
          }
        },
      });
    const entries = (m: BpfMap) => (m.type.includes('array') ? m.maxEntries : m.count());
    fill('weir_map_entries', 'Entries in each BPF map.', entries);
    fill('weir_map_capacity', 'max_entries of each BPF map.', (m) => m.maxEntries);
    fill('weir_map_pressure_ratio', 'entries / capacity of each BPF map (LRU maps evict near 1).', (m) => entries(m) / m.maxEntries);
  }

  attachDataplane(view: DataplaneView): void {
    this.dataplane = view;
  }

  private counterRows(): CounterRow[] {
    if (this.rowsOfScrape) return this.rowsOfScrape;
    const map = this.dataplane?.counters();
    let rows: CounterRow[] = [];
    try {
      if (map) rows = readCounters(map);
    } catch {
      rows = [];
    }
    if (this.inScrape) this.rowsOfScrape = rows;
    return rows;
  }

  /** A Service or EndpointSlice change queued, or the queue taken by a sync (dataplane/service-sync.ts). */
  observeQueue(q: ChangeQueueFigures, now = Date.now()): void {
    if (q.queued === 'service') this.serviceChanges.inc();
    if (q.queued === 'endpoints') this.endpointChanges.inc();
    if (q.queued) this.kubeProxyLastQueued.set(now / 1000);
    this.serviceChangesPending.set(q.servicesPending);
    this.endpointChangesPending.set(q.endpointsPending);
  }

  /** One conntrack GC pass over one family's map. */
  observeConntrackGc(p: CtGcPass, now = Date.now()): void {
    const family = `ipv${p.family}`;
    this.ctGcRuns.inc({ family, status: p.ok ? 'completed' : 'failed' });
    this.ctGcDuration.observe({ family }, p.seconds);
    this.ctGcLastRun.set({ family }, now / 1000);
    if (!p.ok) return;
    for (const [reason, n] of Object.entries(p.deleted)) if (n > 0) this.ctGcDeleted.inc({ family, reason }, n);
    this.ctGcAlive.set({ family }, p.alive);
  }

  /** One sync that wrote the maps: duration, writes, and for each object its programming latency. */
  observeSync(kind: 'full' | 'incremental', seconds: number, observedAt: readonly number[] = [], now = Date.now()): void {
    this.syncDuration.observe({ kind }, seconds);
    this.kubeProxySyncDuration.observe(seconds);
    this.kubeProxyLastSync.set(now / 1000);
    for (const t of observedAt) {
      const latency = Math.max(0, (now - t) / 1000);
      this.programmingLatency.observe(latency);
      this.kubeProxyProgrammingLatency.observe(latency);
    }
  }

  /** One policy sync (dataplane/policy-sync.ts). */
  observePolicySync(r: PolicySyncFigures, now = Date.now()): void {
    this.policySyncDuration.observe({ reason: r.reason }, (r.buildMs + r.result.ms) / 1000);
    for (const t of r.observedAt) this.policyProgrammingLatency.observe(Math.max(0, (now - t) / 1000));
    this.policyIssues.reset();
    for (const [reason, n] of r.issues.policy) this.policyIssues.set({ kind: 'policy', reason }, n);
    for (const [reason, n] of r.issues.pod) this.policyIssues.set({ kind: 'pod', reason }, n);
    this.policyObjects.set({ kind: 'endpoints' }, r.result.endpoints);
    this.policyObjects.set({ kind: 'identities' }, r.result.identities);
    this.policyObjects.set({ kind: 'ipcache' }, r.result.ipcache);
  }

  /** A periodic resync: how many entries differed (each one rewritten). */
  observeResync(drift: number, now = Date.now()): void {
    this.driftEntries.set(drift);
    this.lastResync.set(now / 1000);
  }

  /** Runs before each scrape: turn counters kept elsewhere (a source's) into metric deltas. */
  beforeScrape(f: () => void): void {
    this.scrapeHooks.push(f);
  }

  async text(): Promise<string> {
    for (const f of this.scrapeHooks) {
      try {
        f();
      } catch {
        /* a hook must not break the scrape */
      }
    }
    this.inScrape = true;
    try {
      return await this.registry.metrics();
    } finally {
      this.inScrape = false;
      this.rowsOfScrape = undefined;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
