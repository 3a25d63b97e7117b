// dataplane/service-sync: the service pipeline, wired once. Store changes -> the services
// they touch -> the model (model/services.ts) -> the reconciler (entries, plan, apply) -> the
// pinned maps, then the clean-up after removed backends (backend-cleanup.ts). Batches changes into incremental syncs, runs the full syncs (start, node
// addresses, this node's zone label) and the periodic resync, and reports each sync (docs/architecture.md). The
// daemon only wires pipelines: policy arrives as a second one beside this.

import type { V1Node } from '@kubernetes/client-node';
import { buildNodeTable, nodeInfo, nodeZone, type NodeIssue } from '../model/nodes.js';
import { affectedServiceKeys, buildServiceState, updateServiceState } from '../model/services.js';
import type { LbAlgorithm, NodeContext, ServiceInputs, ServiceState } from '../model/service-types.js';
import { type Logger, errText } from '../log.js';
import { BackendCleanup } from './backend-cleanup.js';
import { MAGLEV_DEFAULT_TABLE_SIZE } from './maglev.js';
import { MaglevTables } from './maglev-tables.js';
import type { ServiceMaps } from './loader.js';
import { Reconciler, type SyncResult } from './reconcile.js';

/** the least time between two incremental syncs (kube-proxy's minSyncPeriod, in spirit) */
const MIN_SYNC_INTERVAL_MS = 5;

export type SyncKind = 'full' | 'incremental';
export type FullReason = 'start' | 'node-addresses' | 'node-zone';

/** One applied sync, for the daemon's metrics and health. `seconds` covers model + plan + writes. */
export interface SyncReport {
  reason: 'start' | 'change' | 'node-addresses' | 'node-zone' | 'resync';
  kind: SyncKind;
  result: SyncResult;
  seconds: number;
  /** when the events behind an incremental sync were observed (programming latency) */
  observedAt: readonly number[];
}

export interface ServiceSyncOptions {
  maps: ServiceMaps;
  /** the objects the model reads (the store) */
  inputs: ServiceInputs;
  log: Logger;
  /** runs the socket-destroy iterator where sockets to removed UDP backends may live */
  destroySockets?: () => number;
  /** --lb-algorithm for services without the annotation (default random) */
  lbAlgorithm?: LbAlgorithm;
  /** --maglev-table-size (the maglev_table_size knob the objects were loaded with) */
  maglevTableSize?: number;
  /** after every sync that reached the maps */
  onSync?: (report: SyncReport) => void;
  /** after the pending changes were handled, written or not (a change may need no write) */
  onDrained?: () => void;
  /** after a Service or EndpointSlice change was queued, and after a sync took the queue (kube-proxy's queue metrics) */
  onQueue?: (q: ChangeQueueFigures) => void;
}

/** The change queue as kube-proxy's metrics count it: services with a pending Service change and
 *  with pending EndpointSlice changes, and what was just queued (undefined: the queue was taken). */
export interface ChangeQueueFigures {
  queued?: 'service' | 'endpoints';
  servicesPending: number;
  endpointsPending: number;
}

/** A store change, as the source's event gave it. */
export interface ObjectChange {
  kind: string;
  previous: unknown;
  current: unknown;
}

export class ServiceSync {
  readonly reconciler: Reconciler;
  readonly cleanup: BackendCleanup;
  private state: ServiceState | undefined;
  private node: NodeContext | undefined;
  /** service keys touched since the last sync */
  private readonly pending = new Set<string>();
  /** the pending keys by what changed: a Service object, or its EndpointSlices */
  private readonly pendingServices = new Set<string>();
  private readonly pendingEndpoints = new Set<string>();
  /** observedAt of the events behind the pending keys */
  private pendingObservedAt: number[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** when the last incremental sync ended (performance.now()) */
  private lastSyncAt = -Infinity;
  private stopped = false;
  /** the sync running or queued (exclusive()): one at a time */
  private queue: Promise<unknown> = Promise.resolve();
  /** a change sync is queued behind a running one and has not started */
  private runQueued = false;
  /** this node's Node object changed its zone label: the next sync is a full one */
  private zoneChanged = false;
  /** the topology fallback last logged per service (logged once per service and reason) */
  private readonly topologyLogged = new Map<string, string>();
  /** the invalid loadBalancerSourceRanges entries last logged per service */
  private readonly rangesLogged = new Map<string, string>();

  constructor(private readonly opts: ServiceSyncOptions) {
    this.cleanup = new BackendCleanup(opts.maps, opts.log, opts.destroySockets ? { destroySockets: opts.destroySockets } : {});
    this.reconciler = new Reconciler(opts.maps, opts.log, {
      ...(opts.maps.ipv6 ? { ipv6: opts.maps.ipv6 } : {}),
      onApplied: (removals) => this.cleanup.run(removals),
      ...(opts.lbAlgorithm ? { lbAlgorithm: opts.lbAlgorithm } : {}),
      ...(opts.maps.maglev ? { maglev: new MaglevTables(opts.maps.maglev, opts.maglevTableSize ?? MAGLEV_DEFAULT_TABLE_SIZE, opts.log) } : {}),
    });
  }

  /** Takes over what the pinned maps hold (ids included): the next sync writes only differences. */
  adopt(): { frontends: number; backends: number } {
    return this.reconciler.adopt();
  }

  /** adopt() in bounded batches that yield to the event loop (the daemon's start: /healthz answers meanwhile). */
  adoptAsync(): Promise<{ frontends: number; backends: number }> {
    return this.reconciler.adoptAsync();
  }

  /** true once the first full sync ran: changes are synced from then on */
  get fullSynced(): boolean {
    return this.state !== undefined;
  }

  /** Services in the model (after the first full sync). */
  get serviceCount(): number {
    return this.state?.services.size ?? 0;
  }

  /**
   * Service ports whose traffic policy is Local and that have endpoints, none of them on this
   * node (their traffic here is dropped), as kube-proxy's no_local_endpoints_total counts them:
   * `internal` for internalTrafficPolicy (ClusterIP), `external` for externalTrafficPolicy.
   */
  noLocalEndpoints(): { internal: number; external: number } {
    const internal = new Set<string>();
    const external = new Set<string>();
    for (const f of this.state?.frontends.values() ?? []) {
      if (!f.localOnly || f.reject || f.backends.length > 0) continue;
      (f.kind === 'ClusterIP' ? internal : external).add(f.servicePortKey);
    }
    return { internal: internal.size, external: external.size };
  }

  /**
   * Programs the frontends of what the inputs hold now and leaves whatever else the adopted
   * maps hold (the bootstrap `kubernetes` Service, before the source's state is known).
   */
  programPartial(node: NodeContext): { frontends: number; result: SyncResult } {
    const frontends = [...buildServiceState(this.opts.inputs, this.withZone(node)).frontends.values()];
    this.reconciler.update(frontends, []);
    return { frontends: frontends.length, result: this.withCleanupErrors(() => this.reconciler.sync()) };
  }

  /**
   * The whole desired state from the inputs, written (first sync, node addresses changed).
   * The source is complete here (manifests read, every informer listed), so whatever the
   * adopted maps hold that it no longer has is deleted (a Service deleted while weir was down).
   */
  full(reason: FullReason, node: NodeContext): SyncResult {
    const t0 = this.prepareFull(reason, node);
    return this.reportFull(
      reason,
      t0,
      this.withCleanupErrors(() => this.reconciler.sync()),
    );
  }

  /** full() with the writes in bounded batches that yield to the event loop, one sync at a time. */
  fullAsync(reason: FullReason, node: NodeContext): Promise<SyncResult> {
    return this.exclusive(async () => {
      const t0 = this.prepareFull(reason, node);
      return this.reportFull(reason, t0, await this.withCleanupErrorsAsync(() => this.reconciler.syncAsync()));
    });
  }

  private prepareFull(reason: FullReason, node: NodeContext): number {
    const t0 = performance.now();
    this.node = this.withZone(node);
    this.zoneChanged = false;
    this.state = buildServiceState(this.opts.inputs, this.node);
    this.logTopology(this.state.services.keys());
    if (reason === 'start') this.logNodeIssues(buildNodeTable(this.opts.inputs.nodes?.values() ?? []).issues);
    this.reconciler.setAll(this.state.frontends.values());
    return t0;
  }

  private reportFull(reason: FullReason, t0: number, r: SyncResult): SyncResult {
    this.report({ reason, kind: 'full', result: r, seconds: (performance.now() - t0) / 1000, observedAt: [] });
    return r;
  }

  /** The node's context changed: after the first full sync, a full sync with it. */
  nodeChanged(node: NodeContext): void {
    this.node = node;
    if (this.fullSynced) this.fullAsync('node-addresses', node).catch((e: unknown) => this.opts.log.warn('sync failed', { error: errText(e) }));
  }

  /** A store change: after the first full sync, its services are synced on the next turn. */
  changed(change: ObjectChange, observedAt: number): void {
    if (!this.fullSynced) return;
    if (change.kind === 'Node') {
      // what a Node object lacks is said when it changes, not on every sync
      const issues = (o: unknown): NodeIssue[] => (o ? nodeInfo(o as V1Node).issues : []);
      const now = issues(change.current);
      if (JSON.stringify(now) !== JSON.stringify(issues(change.previous))) this.logNodeIssues(now);
      // only this node's zone label matters to the services (topology hints)
      if (this.node && (this.withZone(this.node).zone ?? '') !== (this.node.zone ?? '')) {
        this.zoneChanged = true;
        this.schedule();
      }
      return;
    }
    const keys = affectedServiceKeys(change.kind, change.previous as never, change.current as never);
    for (const k of keys) this.pending.add(k);
    this.pendingObservedAt.push(observedAt);
    if (change.kind === 'Service' || change.kind === 'EndpointSlice') {
      const byKind = change.kind === 'Service' ? this.pendingServices : this.pendingEndpoints;
      for (const k of keys) byKind.add(k);
      this.queueFigures(change.kind === 'Service' ? 'service' : 'endpoints');
    }
    this.schedule();
  }

  /**
   * Re-reads the maps and repairs what differs from the desired state (docs/daemon.md).
   * Every write is a repair, so it is logged as a warning. Queued behind a running sync.
   */
  resync(): Promise<SyncResult> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      const r = await this.withCleanupErrorsAsync(() => this.reconciler.resyncAsync());
      this.report({ reason: 'resync', kind: 'full', result: r, seconds: (performance.now() - t0) / 1000, observedAt: [] });
      this.opts.log[r.writes ? 'warn' : 'debug']('resync', {
        repairs: r.writes,
        totalRepairs: this.reconciler.stats.repairs,
        frontends: r.frontends,
        ms: r.ms,
      });
      return r;
    });
  }

  /**
   * One sync at a time: an async sync yields between its batches, and another one must not
   * plan against a mirror that is half applied.
   */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = undefined;
    }
  }

  /**
   * Changes are applied on the next turn of the event loop: every event that arrived in the
   * same read (a watch chunk, a manifest file) lands in one sync, and a lone change reaches
   * the maps without waiting for a timer. Syncs are at least MIN_SYNC_INTERVAL_MS apart, so
   * a storm of events (a rollout) batches up instead of syncing per event.
   */
  private schedule(): void {
    if (this.timer || this.stopped || this.runQueued) return;
    const run = () => {
      this.timer = undefined;
      // queued behind a running sync: changes arriving meanwhile join this one
      this.runQueued = true;
      void this.exclusive(async () => {
        this.runQueued = false;
        try {
          await this.syncChanges();
          this.opts.onDrained?.();
        } catch (e) {
          this.opts.log.warn('sync failed', { error: errText(e) });
        }
        this.lastSyncAt = performance.now();
      });
    };
    const wait = this.lastSyncAt + MIN_SYNC_INTERVAL_MS - performance.now();
    this.timer = wait > 0 ? setTimeout(run, wait) : setImmediate(run);
  }

  /**
   * The node context with `zone` from this node's Node object when the inputs hold one
   * (`topology.kubernetes.io/zone`, '' when unlabelled), else as given.
   */
  private withZone(node: NodeContext): NodeContext {
    const obj = this.opts.inputs.nodes?.get(node.nodeName);
    if (!obj) return node;
    const zone = nodeZone(obj);
    return node.zone === zone ? node : { ...node, zone };
  }

  /** Logs a service's topology fallback once, when it starts or its reason changes (kube-proxy logs it on every sync). */
  private logTopology(keys: Iterable<string>): void {
    for (const key of keys) {
      this.logSourceRanges(key);
      const why = this.state?.services.get(key)?.info.topologyFallback ?? null;
      const before = this.topologyLogged.get(key);
      if (why === null) {
        if (before !== undefined) this.topologyLogged.delete(key);
        continue;
      }
      if (before === why) continue;
      this.topologyLogged.set(key, why);
      this.opts.log.info('topology hints ignored', { service: key, zone: this.node?.zone || undefined, reason: why });
    }
  }

  /** loadBalancerSourceRanges entries that are no CIDR: one warn (weir_errors_total{kind="model"}) when they appear or change. */
  private logSourceRanges(key: string): void {
    const bad = this.state?.services.get(key)?.info.invalidSourceRanges ?? [];
    const text = bad.join(',');
    if ((this.rangesLogged.get(key) ?? '') === text) return;
    if (text === '') this.rangesLogged.delete(key);
    else {
      this.rangesLogged.set(key, text);
      this.opts.log.warn('invalid source range ignored', { service: key, ranges: text, note: 'left out, as kube-proxy does; the other ranges apply' });
    }
  }

  /** Parts of Node objects the model left out (an invalid pod CIDR, no InternalIP), one line each. */
  private logNodeIssues(issues: readonly NodeIssue[]): void {
    for (const i of issues) this.opts.log.warn('node field skipped', { node: i.node || undefined, reason: i.reason, detail: i.detail });
  }

  private async syncChanges(): Promise<void> {
    if (this.zoneChanged && this.node) {
      const prev = this.node.zone ?? '';
      this.takeQueue();
      this.pendingObservedAt = [];
      const t0 = this.prepareFull('node-zone', this.node);
      this.reportFull('node-zone', t0, await this.withCleanupErrorsAsync(() => this.reconciler.syncAsync()));
      this.opts.log.info('node zone changed', { node: this.node.nodeName, from: prev || undefined, zone: this.node.zone || undefined });
      return;
    }
    if (!this.state || !this.node || this.pending.size === 0) return;
    const t0 = performance.now();
    const keys = [...this.pending];
    const observedAt = this.pendingObservedAt;
    this.takeQueue();
    this.pendingObservedAt = [];
    const diff = updateServiceState(this.state, this.opts.inputs, this.node, keys);
    this.logTopology(keys);
    if (diff.upserted.length === 0 && diff.removed.length === 0) return;
    this.reconciler.update(diff.upserted, diff.removed);
    const r = await this.withCleanupErrorsAsync(() => this.reconciler.syncAsync());
    this.report({ reason: 'change', kind: 'incremental', result: r, seconds: (performance.now() - t0) / 1000, observedAt });
  }

  private queueFigures(queued?: 'service' | 'endpoints'): void {
    this.opts.onQueue?.({ ...(queued && { queued }), servicesPending: this.pendingServices.size, endpointsPending: this.pendingEndpoints.size });
  }

  /** A sync takes every pending key: the queue is empty again. */
  private takeQueue(): void {
    this.pending.clear();
    this.pendingServices.clear();
    this.pendingEndpoints.clear();
    this.queueFigures();
  }

  /** A sync's errors include its clean-up's (health counts both). */
  private withCleanupErrors(f: () => SyncResult): SyncResult {
    const before = this.cleanup.stats.errors;
    const r = f();
    return { ...r, errors: r.errors + this.cleanup.stats.errors - before };
  }

  private async withCleanupErrorsAsync(f: () => Promise<SyncResult>): Promise<SyncResult> {
    const before = this.cleanup.stats.errors;
    const r = await f();
    return { ...r, errors: r.errors + this.cleanup.stats.errors - before };
  }

  private report(s: SyncReport): void {
    this.opts.onSync?.(s);
    if (s.reason === 'resync') return;
    const r = s.result;
    const skipped = [...this.reconciler.stats.skipped].map(([k, v]) => `${k}:${v}`).join(',');
    const fields = {
      reason: s.reason,
      writes: r.writes,
      frontends: r.frontends,
      removedBackends: r.removedBackends,
      errors: r.errors,
      unprogrammed: r.unprogrammed || undefined,
      ms: r.ms,
    };
    this.opts.log.info('sync', { ...fields, skipped: skipped || undefined });
  }
}
