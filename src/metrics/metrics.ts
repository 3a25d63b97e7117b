// metrics/metrics: everything weir exports to Prometheus, in one registry. Dataplane counters
// and map fill are read from the pinned maps at scrape time (dataplane-metrics.ts);
// control-plane figures are pushed by the daemon as they happen. Names follow
// Prometheus conventions (_total, _seconds, base units); where kube-proxy has an equivalent
// an operator alerts on, the kube-proxy name is exported too (docs/metrics.md). Node's own
// process metrics (CPU, memory, event-loop lag, heap, GC) come from prom-client's defaults.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { kernelRelease } from '../bpf/features.js';
import type { CtGcPass } from '../dataplane/conntrack-gc.js';
import { readCounters, type CounterRow } from '../dataplane/counters.js';
import type { ChangeQueueFigures } from '../dataplane/service-sync.js';
import { buildInfo } from './build-info.js';
import { registerDataplaneMetrics, type DataplaneView } from './dataplane-metrics.js';

export { LB_SERIES_CAP, POLICY_SERIES_CAP, perFrontendSeries, type DataplaneView } from './dataplane-metrics.js';

/** What a policy sync reports to the metrics (dataplane/policy-sync.ts). */
export interface PolicySyncFigures {
  reason: string;
  buildMs: number;
  result: { ms: number; writes: number; errors: number; endpoints: number; identities: number; ipcache: number };
  observedAt: number[];
  issues: { policy: Map<string, number>; pod: Map<string, number> };
}

// network programming latency runs from milliseconds to minutes (kube-proxy's buckets)
const PROGRAMMING_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600];
const SYNC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
// a conntrack GC pass: a dump of up to millions of entries, milliseconds to seconds
const CT_GC_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface MetricsOptions {
  /** Node's process metrics (process_*, nodejs_*); default on. Off where several registries share a process (tests). */
  processMetrics?: boolean;
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
  readonly servicesUnprogrammed = new Gauge({
    name: 'weir_services_unprogrammed',
    help: 'Services with a frontend the maps could not take after the last sync (map_full: no room; write_failed: refused), retried when room frees.',
    labelNames: ['reason'] as const,
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
    registerDataplaneMetrics(
      this.registry,
      () => this.dataplane,
      () => this.counterRows(),
    );
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

  // ---- Kubernetes API connectivity (API source only: registered at the first observation) ----

  private apiConnected: Gauge | undefined;
  private apiLastContact: Gauge | undefined;

  /** The API source's view at scrape time: connected (1/0) and the last successful exchange (ms, null: none yet). */
  observeApiConnectivity(connected: boolean, lastContactMs: number | null): void {
    this.apiConnected ??= new Gauge({
      name: 'weir_k8s_api_connected',
      help: '1 while the Kubernetes API server answers weir (the last exchange reached it and the last success is within --api-outage-bound), else 0.',
      registers: [this.registry],
    });
    this.apiConnected.set(connected ? 1 : 0);
    if (lastContactMs === null) return;
    this.apiLastContact ??= new Gauge({
      name: 'weir_k8s_api_last_contact_timestamp_seconds',
      help: 'When weir last exchanged successfully with the Kubernetes API server (unix seconds): an outage started after it.',
      registers: [this.registry],
    });
    this.apiLastContact.set(lastContactMs / 1000);
  }
}
