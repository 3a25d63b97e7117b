// daemon/daemon: `weir daemon` wired together. source (manifests directory or Kubernetes API)
// -> store -> the service pipeline (dataplane/service-sync.ts: model -> entries -> plan ->
// apply -> pinned maps, docs/architecture.md); the attach manager follows interfaces
// through netlink; timers run the periodic resync and conntrack GC; /metrics, /healthz and
// /readyz on the metrics address; kube-proxy's node health server (--healthz-address) and
// the eTP=Local services' health check node ports (health-check-ports.ts). Everything it programs is pinned under
// <bpf-root>/weir/<instance>, so stopping (SIGTERM, or kill -9) leaves the dataplane
// working and the next daemon adopts it (docs/daemon.md). With the API source, the
// `kubernetes` Service from the bootstrap environment is programmed and the programs attached
// before the API is asked anything: weir reaches the API server through its own dataplane.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { AttachManager, type InterfaceRef } from '../dataplane/attach.js';
import { IfaceTable } from '../dataplane/iface-table.js';
import { PodSourceTable } from '../dataplane/pod-sources.js';
import { syncDsrOptout } from '../dataplane/dsr-optout.js';
import { ConntrackGc } from '../dataplane/conntrack-gc.js';
import { MapCensus, pinnedMaps } from '../dataplane/map-census.js';
import { HealthCheckPorts } from '../dataplane/health-check-ports.js';
import { computeNodeNetwork, type NodeNetwork } from '../dataplane/interfaces.js';
import { takeOverKubeProxy } from '../dataplane/kube-proxy.js';
import { loadDataplaneAsync, mapOf, serviceFamilies, type LoadedDataplane } from '../dataplane/loader.js';
import { acquireInstanceLock, type Lock } from '../dataplane/instance-lock.js';
import { handOff, type MigrationReport } from '../dataplane/map-upgrade.js';
import { applyMonitorSwitch } from '../dataplane/monitor.js';
import { dumpAddresses, dumpLinks, dumpRoutes, watchNetlink, type Link } from '../dataplane/netlink.js';
import { NodeMapSync } from '../dataplane/node-map-sync.js';
import type { NodeMaps } from '../dataplane/node-maps.js';
import { PolicySync } from '../dataplane/policy-sync.js';
import { ServiceSync, type SyncReport } from '../dataplane/service-sync.js';
import { destroySocketsEverywhere } from '../dataplane/sockets.js';
import { CgroupMembers } from '../dataplane/cgroup-members.js';
import { hostProcBlindness } from '../dataplane/namespaces.js';
import { allowLocalSource, SysctlRecorder } from '../dataplane/sysctl.js';
import { startHttp, type HttpEndpoint } from '../metrics/http.js';
import { Metrics } from '../metrics/metrics.js';
import { ProxyHealth, proxyHealthCounters, startProxyHealthServer, type FamilyName, type ProxyHealthServer } from '../metrics/proxy-health.js';
import type { NodeContext } from '../model/service-types.js';
// the API source pulls in all of client-node (~1 s to import): loaded only when configured
import type { KubeSource } from '../sources/kube.js';
import { BOOTSTRAP_ORIGIN, bootstrapEvents, obsoleteBootstrapSlices } from '../sources/kube-bootstrap.js';
import { type Logger, errText } from '../log.js';
import { ManifestsSource } from '../sources/manifests.js';
import { Store } from '../sources/store.js';
import type { ObjectEvent, SourceEvent } from '../sources/types.js';
import type { DaemonConfig } from './config.js';
import { DaemonHealth } from './health.js';
import { countingMap, countingServiceMaps } from './map-writes.js';
import { withOwnPorts } from './failsafe-ports.js';
import { compileHostPolicy } from '../model/host-policy/compile.js';
import { HostPolicySync, type HostPolicyInputsView } from './host-policy.js';
import { HostPolicyMetrics, type HostPolicyView } from '../metrics/host-policy-metrics.js';

const refs = (l: readonly { ifindex: number; ifname: string }[]): InterfaceRef[] => l.map((x) => ({ ifindex: x.ifindex, ifname: x.ifname }));
/** host interfaces with the XDP mode the dump shows (an adopted XDP link's mode) */
const hostRefs = (l: readonly Link[]): InterfaceRef[] => l.map((x) => ({ ifindex: x.ifindex, ifname: x.ifname, ...(x.xdp && { xdp: x.xdp }) }));
const refKey = (l: readonly InterfaceRef[]) => l.map((x) => `${x.ifindex}:${x.ifname}`).join(',');
/** a map weir wrote is recounted for /metrics this long after (writes meanwhile join the count) */
const CENSUS_AFTER_WRITE_MS = 1000;
/** with the periodic resync off, how long a queued change may wait before /healthz on 10256 fails */
const HEALTHZ_TIMEOUT_WITHOUT_RESYNC_MS = 120_000;

export class Daemon {
  readonly metrics = new Metrics();
  readonly health = new DaemonHealth(this.metrics);
  private readonly log: Logger;
  private http: HttpEndpoint | undefined;
  /** kube-proxy's node health server state (/healthz, /livez on --healthz-address) */
  readonly proxyHealth: ProxyHealth;
  private healthz: ProxyHealthServer | undefined;
  private readonly healthzCounters = proxyHealthCounters(this.metrics.registry);
  /** the eTP=Local LoadBalancer services' health check node ports */
  private healthPorts!: HealthCheckPorts;
  private dp!: LoadedDataplane;
  private services!: ServiceSync;
  private attach!: AttachManager;
  private ifaces?: IfaceTable;
  private podSources?: PodSourceTable;
  /** weir_nodes4 / weir_tunnel4 from Nodes and EndpointSlices (node-maps.ts) */
  private nodeMaps?: NodeMapSync;
  private policy?: PolicySync;
  /** host protection (issue 17): GlobalNetworkPolicy / HostEndpoint -> the host policy maps */
  private hostPolicy?: HostPolicySync;
  private readonly hostPolicyMetrics = new HostPolicyMetrics(this.metrics.registry, () => this.hostPolicyView());
  private gc!: ConntrackGc;
  /** entry counts of every pinned map for /metrics, taken in the background (map-census.ts) */
  private census!: MapCensus;
  /** sysctls weir sets, with their values before (for weir uninstall) */
  private sysctls!: SysctlRecorder;
  /** held while running: `weir uninstall` refuses while it is (instance-lock.ts) */
  private lock: Lock | undefined;
  private readonly store = new Store();
  private source: ManifestsSource | KubeSource | undefined;
  /** set when the source is the API server */
  private kube: KubeSource | undefined;
  private node!: NodeContext;
  /** store keys of synthetic `kubernetes` EndpointSlices not yet replaced by the API's */
  private readonly bootstrapSlices = new Set<string>();
  /** source counters already turned into metric deltas */
  private exported = { apiErrors: 0, apiNotServed: 0, rejected: new Map<string, number>() };
  private network: NodeNetwork | undefined;
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
    // kube-proxy's bound is 2 x its sync period; weir's equivalent period is the resync
    this.proxyHealth = new ProxyHealth(cfg.resyncIntervalMs > 0 ? 2 * cfg.resyncIntervalMs : HEALTHZ_TIMEOUT_WITHOUT_RESYNC_MS);
  }

  /**
   * Loads, adopts, syncs, attaches; resolves once `event=ready` was logged (or on stop).
   * /healthz and /readyz answer from the start; with the API source, start waits for the
   * API server as long as it takes (the bootstrap `kubernetes` Service is programmed first).
   */
  async start(): Promise<void> {
    const t0 = performance.now();
    const cfg = this.cfg;
    this.lock = await acquireInstanceLock(cfg.instance).catch((e: NodeJS.ErrnoException) => {
      const error = e.code === 'EADDRINUSE' ? 'another weir daemon runs this instance in this network namespace' : errText(e);
      this.log.warn('instance lock not held', { instance: cfg.instance, error });
      return undefined;
    });
    // the verifier (~0.7 s for the four objects) runs on worker threads; a manifests source
    // is read meanwhile (the API source needs the dataplane first: its bootstrap Service)
    const dpLoading = loadDataplaneAsync({
      bpfRoot: cfg.bpfRoot,
      instance: cfg.instance,
      sockLbMode: cfg.sockLb,
      serviceStats: cfg.serviceStats,
      maglevTableSize: cfg.maglevTableSize,
      tunnelPort: cfg.tunnelPort,
      externalServiceMode: cfg.externalServiceMode,
      networkPolicy: cfg.networkPolicy,
      policyStats: cfg.policyStats,
      podSourceCheck: cfg.podSourceCheck !== false,
      mapSizes: cfg.mapSizes,
      hostPolicy: cfg.hostPolicy !== false,
      ...(cfg.objectDir ? { objectDir: cfg.objectDir } : {}),
    });
    let manifestsRead: Promise<void> | undefined;
    if (cfg.source.kind === 'manifests') {
      const source = await this.makeSource();
      this.health.source = { notReady: () => (this.health.sourceSynced ? [] : ['manifests not read yet']) };
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
    for (const m of this.dp.missingKnobs) this.log.warn('object lacks a knob, left at its built-in value', m);
    for (const object of this.dp.missingObjects) {
      this.log.error('host policy object missing: host policy is NOT enforced (run make build, or --host-policy off)', { object });
      this.hostPolicyMetrics.errors.inc({ reason: 'object_missing' });
    }
    for (const n of this.dp.upgrade.notes) this.log[n.action === 'error' ? 'warn' : 'info']('pinned-state', { ...n });
    const blind = hostProcBlindness(cfg.hostProc);
    if (blind) this.log.warn('host proc blind', { hostProc: cfg.hostProc, message: blind });
    const members = cfg.cgroup ? new CgroupMembers(cfg.cgroup, cfg.hostProc, this.log) : null;
    const destroyProg = this.dp.objects.sock_lb.program('weir_sock_destroy');
    this.services = new ServiceSync({
      maps: countingServiceMaps(this.dp.maps, this.health),
      inputs: this.store,
      log: this.log,
      lbAlgorithm: this.cfg.lbAlgorithm,
      maglevTableSize: this.cfg.maglevTableSize,
      destroySockets: () => destroySocketsEverywhere(destroyProg, members, this.log),
      onSync: (s) => this.synced(s),
      onDrained: () => this.drained(),
      onQueue: (q) => this.metrics.observeQueue(q),
    });
    this.healthPorts = new HealthCheckPorts({ log: this.log, proxyHealthy: () => this.proxyHealth.healthy() });
    // listening before the adoption (docs/daemon.md, start step 0): /healthz answers and
    // /readyz says 503 while a restart reads 600,000 pinned backends
    await this.startMetrics();
    this.log.info('adopting', { pinDir: this.dp.pinDir });
    const adopting = performance.now();
    const adopted = await this.services.adoptAsync();
    this.log.info('adopt', { ...adopted, ms: Math.round(performance.now() - adopting) });
    this.attach = new AttachManager(this.dp.pinDir, this.dp.objects, this.log);
    this.attach.xdpMode = cfg.xdpMode ?? 'auto';
    if (this.dp.maps.ifaces) this.ifaces = new IfaceTable(this.dp.maps.ifaces, this.log);
    // a refused write (map full) drops that pod's packets as spoofed: counted in weir_map_write_failures_total
    const pa = this.dp.maps.podAddrs;
    if (pa) this.podSources = new PodSourceTable({ 4: countingMap(pa[4], this.health), 6: countingMap(pa[6], this.health) }, this.log);
    const { dsrOptout, dsrOptout6, nodes, tunnel, nodes6, tunnel6 } = this.dp.maps;
    if (dsrOptout) syncDsrOptout({ 4: dsrOptout, ...(dsrOptout6 && { 6: dsrOptout6 }) }, cfg.dsrOptoutCidrs, this.log);
    if (nodes && tunnel) {
      const pairs: NodeMaps[] = [{ family: 4, nodes: countingMap(nodes, this.health), tunnel: countingMap(tunnel, this.health) }];
      if (nodes6 && tunnel6) pairs.push({ family: 6, nodes: countingMap(nodes6, this.health), tunnel: countingMap(tunnel6, this.health) });
      this.nodeMaps = new NodeMapSync(pairs, this.store, cfg.nodeName, this.log, cfg.tunnelUnderlay ?? 'ipv4');
    }
    const pm = this.dp.maps.policy;
    if (pm && cfg.networkPolicy)
      this.policy = new PolicySync(
        {
          ...pm,
          ipcache: countingMap(pm.ipcache, this.health),
          endpoints: countingMap(pm.endpoints, this.health),
          policy: countingMap(pm.policy, this.health),
          ...(pm.ipv6 && { ipv6: { ...pm.ipv6, ipcache: countingMap(pm.ipv6.ipcache, this.health), endpoints: countingMap(pm.ipv6.endpoints, this.health) } }),
        },
        this.store,
        cfg.nodeName,
        () => this.network?.localAddresses ?? [],
        this.log,
        (r) => this.metrics.observePolicySync(r),
      );
    const hp = this.dp.hostPolicy;
    if (hp && cfg.hostPolicy !== false) {
      this.hostPolicy = new HostPolicySync(
        hp,
        this.store as unknown as HostPolicyInputsView,
        {
          nodeName: cfg.nodeName,
          failsafes: withOwnPorts(cfg.failsafes ?? [], cfg.metricsAddress, cfg.healthzAddress),
          autoHostEndpoints: cfg.autoHostEndpoints !== false,
          compile: compileHostPolicy,
          hosts: () => refs(this.network?.hostInterfaces ?? []),
          xdpAttached: () => this.xdpIfindexes(),
          onError: (reason) => this.hostPolicyMetrics.errors.inc({ reason }),
        },
        this.log,
      );
      this.hostPolicyMetrics.enableFigures();
    }
    const ctMaps = Object.fromEntries(serviceFamilies(this.dp.maps).map(([f, m]) => [f, m.conntrack]));
    this.census = new MapCensus(pinnedMaps(Object.values(this.dp.objects)), {
      refreshAfterWriteMs: CENSUS_AFTER_WRITE_MS,
      onError: (map, e) => this.log.debug('map census: count failed', { map, error: errText(e) }),
    });
    this.health.mapWritten = (map) => this.census.written(map);
    this.gc = new ConntrackGc(ctMaps, this.log, {
      onPass: (p) => {
        this.metrics.observeConntrackGc(p);
        if (p.ok) this.census.set(p.map, p.alive);
      },
    });
    // the node's net sysctls: a container's own /proc/sys is read-only (the manifest mounts
    // the node's /proc/sys/net writable under --host-proc)
    this.sysctls = SysctlRecorder.open(this.dp.pinDir, this.log, join(cfg.hostProc, 'sys'));
    this.monitorSwitch();

    this.network = await this.readNetwork();
    this.node = { nodeName: cfg.nodeName, nodeAddresses: [...this.network.nodePortAddresses], ...(cfg.proxyName ? { proxyName: cfg.proxyName } : {}) };
    this.nodeAddressesChanged();

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
    const first = await this.services.fullAsync('start', this.node);
    this.health.fullSynced = true;
    this.nodeMaps?.start();
    this.policy?.start();
    // chains in place before the host programs attach (a first start), unchanged on a restart
    this.hostPolicy?.start();

    this.applyAttachments(this.network);
    // where XDP attached just now: its flag in weir_hep_ifaces before `ready`
    this.hostPolicy?.flush();
    // every pinned link now runs this release's programs: what the old ones created since
    // the first conversion pass is copied, then the old release's pins go (map-upgrade.ts)
    const migrated = this.finishUpgrade();
    // kube-proxy's rules go once weir's own dataplane is programmed and attached, and as
    // soon as that: while its iptables rules remain, netfilter marks the replies weir
    // translates back as INVALID and KUBE-FORWARD drops them (docs/kube-proxy.md)
    void takeOverKubeProxy({ cleanup: cfg.kubeProxyCleanup, log: this.log, procRoot: cfg.hostProc });
    this.stopNetlink ??= watchNetlink(() => void this.onNetlinkChange());
    this.every('periodic resync', cfg.resyncIntervalMs, () => this.resync());
    // the GC pass counts the conntrack maps; the census then the other maps the programs fill
    this.every('conntrack GC', cfg.ctGcIntervalMs, () => this.gc.run().then(() => this.census.refresh()));
    void this.census.refresh();
    this.ready = true;
    this.log.info('ready', {
      writes: first.writes,
      frontends: first.frontends,
      services: this.services.serviceCount,
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

  /** --monitor: off keeps weir_monitor_cfg disabled (re-asserted every second, so a lease written
   *  past the CLI is cut within one); on clears what an earlier off run left (docs/monitor.md). */
  private monitorSwitch(): void {
    const on = this.cfg.monitor !== false;
    try {
      const cfgMap = mapOf(this.dp.objects, 'weir_monitor_cfg');
      if (applyMonitorSwitch(cfgMap, on)) this.log.info('monitor switch', { monitor: on ? 'on' : 'off' });
      if (!on) this.every('monitor switch', 1000, () => void applyMonitorSwitch(cfgMap, false));
    } catch (e) {
      this.log.warn('monitor switch not applied', { monitor: on ? 'on' : 'off', error: errText(e) });
    }
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
      this.source = this.kube = new KubeSource({
        kubeConfig: loadKubeConfig(sc.kubeconfig ? { kubeconfig: sc.kubeconfig } : {}),
        log: this.log,
        outageBoundMs: sc.outageBoundMs,
      });
    }
    return this.source;
  }

  /** /metrics, /healthz, /readyz, and what the scrape reads from the dataplane and the source. */
  private async startMetrics(): Promise<void> {
    const maps = this.dp.maps;
    const families = serviceFamilies(maps).map(([, m]) => m);
    const lbStats = families.flatMap((m) => (m.lbStats ? [m.lbStats] : []));
    this.metrics.attachDataplane({
      counters: () => this.dp.objects.from_pod.map('weir_counters'),
      // every pinned map, by pin name, as last counted
      maps: () => this.census.rows(),
      lbStats: () =>
        this.cfg.serviceStats && lbStats.length > 0 && this.services
          ? { maps: lbStats, frontends: this.services.reconciler.frontendsById(), backends: this.cfg.serviceStatsBackends === true }
          : undefined,
      noLocalEndpoints: () => this.services?.noLocalEndpoints(),
      policyStats: () =>
        this.cfg.policyStats && this.policy && maps.policy?.stats ? { map: maps.policy.stats, names: this.policy.writer.names() } : undefined,
    });
    this.metrics.beforeScrape(() => this.exportSourceCounters());
    await this.startHealthz();
    if (this.cfg.metricsAddress === null) return;
    this.http = await startHttp(this.cfg.metricsAddress, this.metrics, this.health);
    this.log.info('metrics listening', { address: this.http.address, port: this.http.port });
  }

  /** kube-proxy's node health server; a busy port is logged and retried at each resync, never fatal. */
  private async startHealthz(): Promise<void> {
    const addr = this.cfg.healthzAddress;
    if (addr === null || this.healthz || this.stopped) return;
    try {
      this.healthz = await startProxyHealthServer(addr, this.proxyHealth, this.healthzCounters);
      this.log.info('healthz listening', { address: this.healthz.address, port: this.healthz.port, timeoutMs: this.proxyHealth.timeoutMs });
    } catch (e) {
      this.log.warn('healthz listen failed', { address: addr, error: errText(e), retry: 'next resync' });
    }
  }

  /** The health check ports listen on the nodePortAddresses when they are restricted; the families /healthz reports. */
  private nodeAddressesChanged(): void {
    this.healthPorts.setAddresses(this.cfg.nodePortAddresses.length > 0 ? this.node.nodeAddresses : null);
    const families = new Set<FamilyName>(this.node.nodeAddresses.map((a) => (a.includes(':') ? 'IPv6' : 'IPv4')));
    this.proxyHealth.families = families.size > 0 ? [...families].sort() : ['IPv4'];
  }

  /** Source counters (kept by the sources) as deltas of weir_source_errors_total. */
  private exportSourceCounters(): void {
    const s = this.source;
    if (s !== undefined && s === this.kube) {
      const d = s.counters.errors - this.exported.apiErrors;
      if (d > 0) this.metrics.sourceErrors.inc({ reason: 'api_list_watch' }, d);
      this.exported.apiErrors = s.counters.errors;
      // lists of a kind whose CRD is not installed (Calico's, without Calico): empty, retried
      const notServed = Object.values(s.counters.notServed).reduce((a, n) => a + n, 0);
      if (notServed > this.exported.apiNotServed) this.metrics.sourceErrors.inc({ reason: 'api_kind_not_served' }, notServed - this.exported.apiNotServed);
      this.exported.apiNotServed = notServed;
      this.metrics.observeApiConnectivity(s.health().connected, s.counters.lastContactAt);
    }
    if ((s !== undefined && s === this.kube) || s instanceof ManifestsSource) {
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
    const { frontends, result: r } = this.services.programPartial(this.node);
    this.health.syncDone(r.errors);
    const svc = this.cfg.bootstrap;
    this.log.info('bootstrap', {
      service: svc.service.map((a) => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`)).join(','),
      endpoints: svc.endpoints.map((a) => (a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`)).join(','),
      frontends,
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
    if (change && e.kind === 'Node' && e.key === this.cfg.nodeName) this.proxyHealth.syncNode(change.current as never);
    // the manifests are read while the dataplane loads: the first full sync takes those
    if (change && this.health.fullSynced) {
      if (e.kind === 'Service' || e.kind === 'EndpointSlice') {
        this.proxyHealth.queued();
        this.healthPorts.changed(change.kind, change.previous, change.current);
      }
      this.services.changed(change, e.observedAt);
      this.nodeMaps?.changed(change);
      this.policy?.changed(change, e.observedAt);
      this.hostPolicy?.changed(change);
    }
    // while the start sync's batches are written (it yields): queued behind it
    else if (change && this.services?.fullSynced) this.services.changed(change, e.observedAt);
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** A periodic task under the liveness watchdog: a pass counts once `f` (and the promise it returns) completes. */
  private every(task: string, ms: number, f: () => void | Promise<void>): void {
    if (!(ms > 0)) return;
    this.health.expect(task, ms);
    const t = setInterval(() => {
      try {
        const done = f();
        if (done)
          done.then(
            () => this.health.ran(task),
            (e: unknown) => this.log.warn('periodic task failed', { task, error: errText(e) }),
          );
        else this.health.ran(task);
      } catch (e) {
        this.log.warn('periodic task failed', { task, error: errText(e) });
      }
    }, ms);
    this.timers.push(t);
  }

  /** One sync done (the service pipeline logs it): metrics, health. */
  private synced(s: SyncReport): void {
    // a full sync (start, node addresses, resync) recomputes every health check port and
    // retries ports that were busy; after an incremental one, drained() flushes what it touched
    if (s.kind === 'full') {
      this.proxyHealth.updated();
      void this.healthPorts.flush(this.store, this.node, true);
    }
    this.metrics.observeSync(s.kind, s.seconds, s.observedAt);
    this.metrics.frontends.set(s.result.frontends);
    const unprogrammed = this.services.reconciler.unprogrammedServices();
    for (const reason of ['map_full', 'write_failed'] as const) this.metrics.servicesUnprogrammed.set({ reason }, unprogrammed.get(reason) ?? 0);
    this.health.syncDone(s.result.errors);
    if (s.reason === 'resync') this.metrics.observeResync(s.result.writes);
  }

  /** Every pending change is handled (written, or needing no write): what /healthz on 10256 waits for. */
  private drained(): void {
    this.proxyHealth.updated();
    void this.healthPorts.flush(this.store, this.node);
  }

  /** Resolves when its interface pass is done (it queues behind a running one: a hung netlink dump stalls it). */
  private async resync(): Promise<void> {
    void this.startHealthz();
    this.health.inResync = true;
    try {
      // queued behind a running service sync; its batches yield to the event loop
      await this.services.resync();
      this.nodeMaps?.resync();
      this.policy?.resync();
      this.hostPolicy?.resync();
    } finally {
      this.health.inResync = false;
    }
    // interfaces too: a link pin removed or a missed netlink event
    return this.onNetlinkChange();
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
    // before the attach: a new from_pod never meets its pod without the pod's addresses
    this.podSources?.sync(net.workloads);
    this.attach.syncInterfaceHooks({ workload: refs(net.workloads), host: hostRefs(net.hostInterfaces) });
    // weir_hep_ifaces follows the host interfaces and where XDP attached (a no-op when unchanged)
    this.hostPolicy?.interfacesChanged();
    // after the attach: a flow redirected to an interface meets weir's programs there
    this.ifaces?.sync(refs(net.workloads));
    for (const w of net.workloads) allowLocalSource(this.sysctls, w);
    this.sysctls.prune();
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
        this.log.info('interfaces changed', {
          workloads: net.workloads.map((w) => w.ifname).join(','),
          hostInterfaces: net.hostInterfaces.map((l) => l.ifname).join(','),
        });
      }
      // cheap when nothing changed: links held are skipped, pins of vanished ones removed
      this.applyAttachments(net);
      if (net.nodePortAddresses.join(',') !== this.node.nodeAddresses.join(',')) {
        this.node = { ...this.node, nodeAddresses: [...net.nodePortAddresses] };
        this.nodeAddressesChanged();
        // before the first full sync the store is incomplete: the first sync uses this.node
        this.services.nodeChanged(this.node);
      }
      if (prev && prev.localAddresses.join(',') !== net.localAddresses.join(',')) this.policy?.hostAddressesChanged();
    });
    return this.networkBusy;
  }

  /**
   * Where the XDP prefilter runs: the attach manager's links once it synced; before that (the
   * first apply after a restart) the pins it will adopt, so the adopted flags are not rewritten.
   */
  private xdpIfindexes(): Set<number> {
    const held = this.attach?.xdpAttached();
    if (held && held.size > 0) return new Set(held.keys());
    if (this.cfg.xdpMode === 'off') return new Set();
    const dir = join(this.dp.pinDir, 'links');
    const pinned = existsSync(dir) ? readdirSync(dir) : [];
    return new Set(pinned.flatMap((n) => (/^xdp-(\d+)-prefilter$/.exec(n) ? [Number(/^xdp-(\d+)/.exec(n)![1])] : [])));
  }

  private hostPolicyView(): HostPolicyView | undefined {
    if (!this.hostPolicy) return undefined;
    return {
      xdp: () => new Map([...(this.attach?.xdpAttached().values() ?? [])].map((x) => [x.ifname, x.mode])),
      figures: () => this.hostPolicy?.figures(),
    };
  }

  /** Stops watching and closes fds; pinned maps and links keep the dataplane working. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.services?.stop();
    this.nodeMaps?.stop();
    this.policy?.stop();
    this.hostPolicy?.stop();
    for (const t of this.timers) clearInterval(t);
    await this.gc?.stop();
    await this.census?.stop();
    this.stopNetlink?.();
    await this.source?.stop();
    await this.http?.close();
    await this.healthz?.close();
    await this.healthPorts?.close();
    await this.networkBusy.catch(() => {});
    if (this.ready) this.handOffForRollback();
    this.attach?.close();
    this.sysctls?.close();
    this.dp?.close();
    await this.lock?.release();
  }
}
