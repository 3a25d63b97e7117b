// daemon/daemon: `weir daemon` wired together. source (manifests directory or Kubernetes API)
// -> store -> model -> reconciler -> pinned maps; the attach manager follows interfaces
// through netlink; timers run the periodic resync and conntrack GC; /metrics, /healthz and
// /readyz on the metrics address. Everything it programs is pinned under
// <bpf-root>/weir/<instance>, so stopping (SIGTERM, or kill -9) leaves the dataplane
// working and the next daemon adopts it (docs/daemon.md). With the API source, the
// `kubernetes` Service from the bootstrap environment is programmed and the programs attached
// before the API is asked anything: weir reaches the API server through its own dataplane.

import { readFileSync, writeFileSync } from 'node:fs';
import { AttachManager, type InterfaceRef } from '../dataplane/attach.js';
import { ConntrackGc } from '../dataplane/conntrack-gc.js';
import { computeNodeNetwork, type NodeNetwork } from '../dataplane/interfaces.js';
import { takeOverKubeProxy } from '../dataplane/kube-proxy.js';
import { loadDataplaneAsync, mapOf, type LoadedDataplane } from '../dataplane/loader.js';
import { handOff, type MigrationReport } from '../dataplane/map-upgrade.js';
import { dumpAddresses, dumpLinks, dumpRoutes, watchNetlink } from '../dataplane/netlink.js';
import { Reconciler, type SyncResult } from '../dataplane/reconcile.js';
import { destroySocketsEverywhere } from '../dataplane/sockets.js';
import { startHttp, type HttpEndpoint } from '../metrics/http.js';
import { Metrics } from '../metrics/metrics.js';
import { affectedServiceKeys, buildServiceState, updateServiceState } from '../model/services.js';
import type { NodeContext, ServiceState } from '../model/service-types.js';
// the API source pulls in all of client-node (~1 s to import): loaded only when configured
import type { KubeSource } from '../sources/kube.js';
import { BOOTSTRAP_ORIGIN, bootstrapEvents, obsoleteBootstrapSlices } from '../sources/kube-bootstrap.js';
import type { Logger } from '../sources/log.js';
import { ManifestsSource } from '../sources/manifests.js';
import { Store } from '../sources/store.js';
import type { ObjectEvent, SourceEvent } from '../sources/types.js';
import type { DaemonConfig } from './config.js';
import { DaemonHealth } from './health.js';
import { countingServiceMaps } from './map-writes.js';

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Replies of NodePort flows leave from_pod reverse-NATed to the node's own address, and the
 * stack drops a packet with a local source arriving on another interface unless that
 * interface accepts local sources. Set per workload interface, in the daemon's netns.
 */
function allowLocalSource(ifname: string, log: Logger): void {
  const path = `/proc/sys/net/ipv4/conf/${ifname}/accept_local`;
  try {
    if (readFileSync(path, 'utf8').trim() !== '1') writeFileSync(path, '1');
  } catch (e) {
    log.debug('accept_local not set', { ifname, error: errText(e) });
  }
}

const refs = (l: readonly { ifindex: number; ifname: string }[]): InterfaceRef[] => l.map((x) => ({ ifindex: x.ifindex, ifname: x.ifname }));
const refKey = (l: readonly InterfaceRef[]) => l.map((x) => `${x.ifindex}:${x.ifname}`).join(',');

/** the least time between two incremental syncs (kube-proxy's minSyncPeriod, in spirit) */
const MIN_SYNC_INTERVAL_MS = 5;

export class Daemon {
  readonly metrics = new Metrics();
  readonly health = new DaemonHealth(this.metrics);
  private readonly log: Logger;
  private http: HttpEndpoint | undefined;
  private dp!: LoadedDataplane;
  private reconciler!: Reconciler;
  private attach!: AttachManager;
  private gc!: ConntrackGc;
  private readonly store = new Store();
  private source: ManifestsSource | KubeSource | undefined;
  /** set when the source is the API server */
  private kube: KubeSource | undefined;
  private node!: NodeContext;
  /** observedAt of the events behind the pending keys (programming latency) */
  private pendingObservedAt: number[] = [];
  /** store keys of synthetic `kubernetes` EndpointSlices not yet replaced by the API's */
  private readonly bootstrapSlices = new Set<string>();
  /** source counters already turned into metric deltas */
  private exported = { apiErrors: 0, rejected: new Map<string, number>() };
  private state: ServiceState | undefined;
  private network: NodeNetwork | undefined;
  /** service keys touched since the last sync */
  private readonly pending = new Set<string>();
  private syncTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** when the last incremental sync ended (performance.now()) */
  private lastSyncAt = -Infinity;
  private readonly timers: NodeJS.Timeout[] = [];
  private stopNetlink: (() => void) | undefined;
  private networkBusy: Promise<void> = Promise.resolve();
  private ready = false;
  private cgroupAttached = false;
  private stopped = false;

  constructor(
    readonly cfg: DaemonConfig,
    log: Logger,
  ) {
    this.log = this.health.wrapLogger(log);
  }

  /**
   * Loads, adopts, syncs, attaches; resolves once `event=ready` was logged (or on stop).
   * /healthz and /readyz answer from the start; with the API source, start waits for the
   * API server as long as it takes (the bootstrap `kubernetes` Service is programmed first).
   */
  async start(): Promise<void> {
    const t0 = performance.now();
    const cfg = this.cfg;
    // the verifier (~0.7 s for the four objects) runs on worker threads; a manifests source
    // is read meanwhile (the API source needs the dataplane first: its bootstrap Service)
    const dpLoading = loadDataplaneAsync({ bpfRoot: cfg.bpfRoot, instance: cfg.instance, sockLbMode: cfg.sockLb, serviceStats: cfg.serviceStats, ...(cfg.objectDir ? { objectDir: cfg.objectDir } : {}) });
    let manifestsRead: Promise<void> | undefined;
    if (cfg.source.kind === 'manifests') {
      const source = await this.makeSource();
      this.health.source = { problems: () => [], notReady: () => (this.health.sourceSynced ? [] : ['manifests not read yet']) };
      manifestsRead = source.start(this.sink);
      manifestsRead.catch(() => undefined); // awaited below, after the dataplane
    }
    try {
      this.dp = await dpLoading;
    } catch (e) {
      await manifestsRead?.catch(() => undefined);
      await this.source?.stop();
      throw e;
    }
    this.log.info('loaded', { pinDir: this.dp.pinDir, sockLb: cfg.sockLb, cgroup: cfg.cgroup ?? 'none', hostNetnsCookie: String(this.dp.hostNetnsCookie) });
    for (const n of this.dp.upgrade.notes) this.log[n.action === 'error' ? 'warn' : 'info']('pinned-state', { ...n });
    const destroyProg = this.dp.objects.sock_lb.program('weir_sock_destroy');
    this.reconciler = new Reconciler(countingServiceMaps(this.dp.maps, this.health), this.log, {
      destroySockets: () => destroySocketsEverywhere(destroyProg, this.cfg.cgroup, this.log),
    });
    const adopted = this.reconciler.adopt();
    this.log.info('adopt', adopted);
    this.attach = new AttachManager(this.dp.pinDir, this.dp.objects, this.log);
    this.gc = new ConntrackGc(this.dp.maps.conntrack, this.log);
    await this.startMetrics();

    this.network = await this.readNetwork();
    this.node = { nodeName: cfg.nodeName, nodeAddresses: [...this.network.nodePortAddresses], ...(cfg.proxyName ? { proxyName: cfg.proxyName } : {}) };

    if (manifestsRead) {
      await manifestsRead;
    } else {
      const source = await this.makeSource();
      this.health.source = this.kube;
      // before the API is asked: the `kubernetes` Service (if configured) and the programs
      // that serve it, so that our own client reaches the API server through them
      this.programBootstrap();
      this.applyAttachments(this.network);
      this.stopNetlink = watchNetlink(() => void this.onNetlinkChange());
      await source.start(this.sink);
    }
    if (this.stopped) return;

    // first full sync: the maps hold the whole desired state (before any program runs on
    // it, on a first start with manifests)
    const tSync = performance.now();
    this.state = buildServiceState(this.store, this.node);
    this.reconciler.setAll(this.state.frontends.values());
    const first = this.reconciler.sync();
    this.synced('start', 'full', first, (performance.now() - tSync) / 1000, []);
    this.health.fullSynced = true;

    this.applyAttachments(this.network);
    // every pinned link now runs this release's programs: what the old ones created since
    // the first conversion pass is copied, then the old release's pins go (map-upgrade.ts)
    const migrated = this.finishUpgrade();
    // kube-proxy's rules go once weir's own dataplane is programmed and attached, and as
    // soon as that: while its iptables rules remain, netfilter marks the replies weir
    // translates back as INVALID and KUBE-FORWARD drops them (docs/kube-proxy.md)
    void takeOverKubeProxy({ cleanup: cfg.kubeProxyCleanup, log: this.log });
    this.stopNetlink ??= watchNetlink(() => void this.onNetlinkChange());
    this.every(cfg.resyncIntervalMs, () => this.resync());
    this.every(cfg.ctGcIntervalMs, () => this.gc.run());
    this.ready = true;
    this.log.info('ready', {
      writes: first.writes,
      frontends: first.frontends,
      services: this.state.services.size,
      workloads: this.network.workloads.length,
      hostInterfaces: this.network.hostInterfaces.map((l) => l.ifname).join(','),
      nodePortAddresses: this.node.nodeAddresses.join(','),
      attached: this.attach.stats.attached,
      adoptedLinks: this.attach.stats.updated,
      migrated: migrated.map((m) => `${m.map}:v${m.from}->v${m.to}:${m.entries + m.delta}`).join(',') || undefined,
      ms: Math.round(performance.now() - t0),
    });
    if (this.kube) void this.warnAboutKubeProxyDaemonSet();
  }

  private finishUpgrade(): MigrationReport[] {
    const reports = this.dp.upgrade.finish((name) => mapOf(this.dp.objects, name));
    for (const r of reports) {
      this.log.info('migrate', { map: r.map, from: r.from, to: r.to, entries: r.entries, delta: r.delta, dropped: r.dropped, how: r.how });
      this.metrics.mapMigratedEntries.inc({ map: r.map, from: String(r.from), to: String(r.to) }, r.entries + r.delta);
    }
    return reports;
  }

  /**
   * Graceful stop: the layouts the previous release reads are written back beside ours, so
   * a rollback adopts established flows (docs/upgrade.md). Flows this release's programs
   * create after this copy, until that release swaps the links, are mirrored into it.
   */
  private handOffForRollback(): void {
    try {
      for (const r of handOff(this.dp.pinDir, (name) => mapOf(this.dp.objects, name))) {
        this.log.info('handoff', { map: r.map, from: r.from, to: r.to, entries: r.entries, skipped: r.skipped, ms: r.ms });
        this.metrics.mapHandedOffEntries.inc({ map: r.map, from: String(r.from), to: String(r.to) }, r.entries);
      }
    } catch (e) {
      this.log.warn('handoff failed', { error: errText(e) });
    }
  }

  /** Where the source's events go: the store (and, after the first sync, the pending set). */
  private readonly sink = (e: SourceEvent): void => {
    if (e.type === 'synced') {
      this.health.sourceSynced = true;
      return;
    }
    this.metrics.sourceEvents.inc({ kind: e.kind, type: e.type });
    this.onEvent(e);
  };

  /** A kube-proxy DaemonSet still deployed would rewrite its rules on every node: say so loudly. */
  private async warnAboutKubeProxyDaemonSet(): Promise<void> {
    const sc = this.cfg.source;
    if (sc.kind !== 'kube') return;
    try {
      const { findKubeProxyDaemonSet } = await import('../sources/kube-proxy-daemonset.js');
      const { loadKubeConfig } = await import('../sources/kube.js');
      const ds = await findKubeProxyDaemonSet(loadKubeConfig(sc.kubeconfig ? { kubeconfig: sc.kubeconfig } : {}));
      if (ds.present)
        this.log.warn('kube-proxy-daemonset-active', {
          namespace: 'kube-system',
          desired: ds.desired,
          ready: ds.ready,
          hint: 'kube-proxy will rewrite its rules at its next sync; delete it (kubectl -n kube-system delete ds kube-proxy) to finish the takeover',
        });
    } catch (e) {
      this.log.debug('kube-proxy daemonset check failed', { error: errText(e) });
    }
  }

  private async makeSource(): Promise<ManifestsSource | KubeSource> {
    const sc = this.cfg.source;
    if (sc.kind === 'manifests') {
      this.source = new ManifestsSource({ dir: sc.dir, log: this.log });
    } else {
      const { KubeSource, loadKubeConfig } = await import('../sources/kube.js');
      this.source = this.kube = new KubeSource({ kubeConfig: loadKubeConfig(sc.kubeconfig ? { kubeconfig: sc.kubeconfig } : {}), log: this.log, outageBoundMs: sc.outageBoundMs });
    }
    return this.source;
  }

  /** /metrics, /healthz, /readyz, and what the scrape reads from the dataplane and the source. */
  private async startMetrics(): Promise<void> {
    const maps = this.dp.maps;
    this.metrics.attachDataplane({
      counters: () => this.dp.objects.from_pod.map('weir_counters'),
      maps: () => [maps.frontends.map, maps.backends.map, maps.affinity.map, maps.conntrack.map, maps.sockDestroy.map, ...(maps.lbStats ? [maps.lbStats] : [])],
      lbStats: () => (this.cfg.serviceStats && maps.lbStats && this.reconciler ? { map: maps.lbStats, frontends: this.reconciler.frontendsById() } : undefined),
    });
    this.metrics.beforeScrape(() => this.exportSourceCounters());
    if (this.cfg.metricsAddress === null) return;
    this.http = await startHttp(this.cfg.metricsAddress, this.metrics, this.health);
    this.log.info('metrics listening', { address: this.http.address, port: this.http.port });
  }

  /** Source counters (kept by the sources) as deltas of weir_source_errors_total. */
  private exportSourceCounters(): void {
    const s = this.source;
    if (s !== undefined && s === this.kube) {
      const d = s.counters.errors - this.exported.apiErrors;
      if (d > 0) this.metrics.sourceErrors.inc({ reason: 'api_list_watch' }, d);
      this.exported.apiErrors = s.counters.errors;
    } else if (s instanceof ManifestsSource) {
      for (const [reason, n] of s.counters.rejected) {
        const d = n - (this.exported.rejected.get(reason) ?? 0);
        if (d > 0) this.metrics.sourceErrors.inc({ reason }, d);
        this.exported.rejected.set(reason, n);
      }
    }
  }

  /** The synthetic `kubernetes` Service + EndpointSlices, into the store and the maps. */
  private programBootstrap(): void {
    if (!this.cfg.bootstrap) return;
    const events = bootstrapEvents(this.cfg.bootstrap);
    for (const e of events) {
      this.store.apply(e);
      if (e.kind === 'EndpointSlice') this.bootstrapSlices.add(e.key);
    }
    // only this service's frontends: whatever adopted maps hold for other services stays
    // until the API's state is known (the first full sync)
    const state = buildServiceState(this.store, this.node);
    const frontends = [...state.frontends.values()];
    this.reconciler.update(frontends, []);
    const r = this.reconciler.sync();
    this.health.syncDone(r.errors);
    const svc = this.cfg.bootstrap;
    this.log.info('bootstrap', {
      service: svc.service.map((a) => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`)).join(','),
      endpoints: svc.endpoints.map((a) => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`)).join(','),
      frontends: frontends.length,
      writes: r.writes,
    });
  }

  /** A source event into the store; after the first full sync, its services are re-synced. */
  private onEvent(e: ObjectEvent): void {
    if (e.origin !== BOOTSTRAP_ORIGIN && e.kind === 'EndpointSlice') {
      // the API's own `kubernetes` slices retire the synthetic ones (same key: replaced)
      for (const key of obsoleteBootstrapSlices(e, this.bootstrapSlices)) {
        const old = this.store.get('EndpointSlice', key);
        this.bootstrapSlices.delete(key);
        if (old) this.applyToStore({ type: 'delete', kind: 'EndpointSlice', key, object: old, origin: BOOTSTRAP_ORIGIN, observedAt: e.observedAt });
      }
      if (this.bootstrapSlices.delete(e.key)) this.log.info('bootstrap replaced', { kind: 'EndpointSlice', key: e.key });
    }
    this.applyToStore(e);
  }

  private applyToStore(e: ObjectEvent): void {
    const change = this.store.apply(e);
    if (!change || !this.health.fullSynced) return;
    for (const k of affectedServiceKeys(change.kind, change.previous as never, change.current as never)) this.pending.add(k);
    this.pendingObservedAt.push(e.observedAt);
    this.scheduleSync();
  }

  get isReady(): boolean {
    return this.ready;
  }

  private every(ms: number, f: () => void): void {
    if (!(ms > 0)) return;
    const t = setInterval(() => {
      try {
        f();
      } catch (e) {
        this.log.warn('periodic task failed', { error: errText(e) });
      }
    }, ms);
    this.timers.push(t);
  }

  /** One sync done: log line, metrics, health. `seconds` covers model + plan + writes. */
  private synced(reason: string, kind: 'full' | 'incremental', r: SyncResult, seconds: number, observedAt: readonly number[]): void {
    this.metrics.observeSync(kind, seconds, observedAt);
    this.metrics.frontends.set(r.frontends);
    this.health.syncDone(r.errors);
    if (reason === 'resync') return;
    const skipped = [...this.reconciler.stats.skipped].map(([k, v]) => `${k}:${v}`).join(',');
    this.log.info('sync', { reason, writes: r.writes, frontends: r.frontends, removedBackends: r.removedBackends, errors: r.errors, ms: r.ms, skipped: skipped || undefined });
  }

  /**
   * Changes are applied on the next turn of the event loop: every event that arrived in the
   * same read (a watch chunk, a manifest file) lands in one sync, and a lone change reaches
   * the maps without waiting for a timer. Syncs are at least MIN_SYNC_INTERVAL_MS apart, so
   * a storm of events (a rollout) batches up instead of syncing per event.
   */
  private scheduleSync(): void {
    if (this.syncTimer || this.stopped) return;
    const run = () => {
      this.syncTimer = undefined;
      try {
        this.syncChanges();
      } catch (e) {
        this.log.warn('sync failed', { error: errText(e) });
      }
      this.lastSyncAt = performance.now();
    };
    const wait = this.lastSyncAt + MIN_SYNC_INTERVAL_MS - performance.now();
    this.syncTimer = wait > 0 ? setTimeout(run, wait) : setImmediate(run);
  }

  private syncChanges(): void {
    if (!this.state || this.pending.size === 0) return;
    const t0 = performance.now();
    const keys = [...this.pending];
    const observedAt = this.pendingObservedAt;
    this.pending.clear();
    this.pendingObservedAt = [];
    const diff = updateServiceState(this.state, this.store, this.node, keys);
    if (diff.upserted.length === 0 && diff.removed.length === 0) return;
    this.reconciler.update(diff.upserted, diff.removed);
    const r = this.reconciler.sync();
    this.synced('change', 'incremental', r, (performance.now() - t0) / 1000, observedAt);
  }

  private resync(): void {
    const t0 = performance.now();
    this.health.inResync = true;
    let r: SyncResult;
    try {
      r = this.reconciler.resync();
    } finally {
      this.health.inResync = false;
    }
    this.synced('resync', 'full', r, (performance.now() - t0) / 1000, []);
    this.metrics.observeResync(r.writes);
    this.log[r.writes ? 'warn' : 'debug']('resync', { repairs: r.writes, totalRepairs: this.reconciler.stats.repairs, frontends: r.frontends, ms: r.ms });
    // interfaces too: a link pin removed or a missed netlink event
    void this.onNetlinkChange();
  }

  private async readNetwork(): Promise<NodeNetwork> {
    const [links, addresses, routes] = await Promise.all([dumpLinks(), dumpAddresses(), dumpRoutes()]);
    const net = computeNodeNetwork(links, addresses, routes, { hostInterfaces: this.cfg.hostInterfaces, nodePortAddresses: this.cfg.nodePortAddresses });
    for (const n of net.missingHostInterfaces) this.log.warn('host interface missing', { ifname: n });
    return net;
  }

  /** TC links for the interfaces (cheap when held); the socket LB's cgroup links once. */
  private applyAttachments(net: NodeNetwork): void {
    const errorsBefore = this.attach.stats.errors;
    this.attach.syncInterfaces(refs(net.workloads), refs(net.hostInterfaces));
    for (const w of net.workloads) allowLocalSource(w.ifname, this.log);
    if (!this.cgroupAttached) {
      const before = this.attach.stats.errors;
      this.attach.syncCgroup(this.cfg.sockLb === 'off' ? null : this.cfg.cgroup);
      this.cgroupAttached = this.attach.stats.errors === before;
    }
    this.health.attachDone(this.attach.stats.errors - errorsBefore);
  }

  private onNetlinkChange(): Promise<void> {
    this.networkBusy = this.networkBusy.then(async () => {
      if (this.stopped) return;
      let net: NodeNetwork;
      try {
        net = await this.readNetwork();
      } catch (e) {
        this.log.warn('netlink dump failed', { error: errText(e) });
        return;
      }
      if (this.stopped) return;
      const prev = this.network;
      this.network = net;
      if (!prev || refKey(refs(prev.workloads)) !== refKey(refs(net.workloads)) || refKey(refs(prev.hostInterfaces)) !== refKey(refs(net.hostInterfaces))) {
        this.log.info('interfaces changed', { workloads: net.workloads.map((w) => w.ifname).join(','), hostInterfaces: net.hostInterfaces.map((l) => l.ifname).join(',') });
      }
      // cheap when nothing changed: links held are skipped, pins of vanished ones removed
      this.applyAttachments(net);
      if (net.nodePortAddresses.join(',') !== this.node.nodeAddresses.join(',')) {
        this.node = { ...this.node, nodeAddresses: [...net.nodePortAddresses] };
        // before the first full sync the store is incomplete: the first sync uses this.node
        if (!this.health.fullSynced) return;
        const t0 = performance.now();
        const next = buildServiceState(this.store, this.node);
        this.state = next;
        this.reconciler.setAll(next.frontends.values());
        this.synced('node-addresses', 'full', this.reconciler.sync(), (performance.now() - t0) / 1000, []);
      }
    });
    return this.networkBusy;
  }

  /** Stops watching and closes fds; pinned maps and links keep the dataplane working. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.syncTimer) {
      clearTimeout(this.syncTimer as NodeJS.Timeout);
      clearImmediate(this.syncTimer as NodeJS.Immediate);
    }
    for (const t of this.timers) clearInterval(t);
    this.stopNetlink?.();
    await this.source?.stop();
    await this.http?.close();
    await this.networkBusy.catch(() => {});
    if (this.ready) this.handOffForRollback();
    this.attach?.close();
    this.dp?.close();
  }
}
