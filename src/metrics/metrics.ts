// metrics/metrics: everything weir exports to Prometheus, in one registry. Dataplane counters
// and map fill are read from the pinned maps at scrape time (no polling loop, always
// current); control-plane figures are pushed by the daemon as they happen. Names follow
// Prometheus conventions (_total, _seconds, base units); where kube-proxy has an equivalent
// an operator alerts on, the kube-proxy name is exported too (docs/metrics.md).

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BpfMap } from '../bpf/index.js';
import { readCounters } from '../dataplane/counters.js';
import { boundedLbSeries, readLbStats } from '../dataplane/lb-stats.js';

/** What the scrape reads from the dataplane: the counters map and every map whose fill matters. */
export interface DataplaneView {
  counters(): BpfMap | undefined;
  maps(): Iterable<BpfMap>;
  /** weir_lb_stats4 and weir_lb_stats6 where pinned (undefined with --service-stats off) and who each frontend id is */
  lbStats?(): { maps: readonly BpfMap[]; frontends: Map<number, { service: string; frontend: string }> } | undefined;
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

/** Hard cap on weir_service_new_connections_total series; the rest sum into backend="other". */
export const LB_SERIES_CAP = 2000;

// network programming latency runs from milliseconds to minutes (kube-proxy's buckets)
const PROGRAMMING_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600];
const SYNC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new Registry();
  private dataplane: DataplaneView | undefined;
  private readonly scrapeHooks: (() => void)[] = [];

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

  constructor() {
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
    new Counter({
      name: 'weir_service_new_connections_total',
      help: `New connections (flows) sent to each backend, by service, frontend and backend (weir_lb_stats4, weir_lb_stats6). At most ${LB_SERIES_CAP} series: the largest counts, the rest summed into service/frontend/backend="other".`,
      labelNames: ['service', 'frontend', 'backend'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        let view;
        try {
          view = self.dataplane?.lbStats?.();
          if (!view) return;
          const rows = view.maps.flatMap((m) => readLbStats(m));
          for (const s of boundedLbSeries(rows, (id) => view!.frontends.get(id), LB_SERIES_CAP))
            this.inc({ service: s.service, frontend: s.frontend, backend: s.backend }, s.value);
        } catch {
          /* a map closed under us: nothing this scrape */
        }
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

  private counterRows() {
    const map = this.dataplane?.counters();
    if (!map) return [];
    try {
      return readCounters(map);
    } catch {
      return [];
    }
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
    return this.registry.metrics();
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
