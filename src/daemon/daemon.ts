// daemon/daemon: `weir daemon` wired together. manifests source -> store -> model ->
// reconciler -> pinned maps; the attach manager follows interfaces through netlink; timers
// run the periodic resync and conntrack GC. Everything it programs is pinned under
// <bpf-root>/weir/<instance>, so stopping (SIGTERM, or kill -9) leaves the dataplane
// working and the next daemon adopts it (docs/daemon.md).

import { readFileSync, writeFileSync } from 'node:fs';
import { AttachManager, type InterfaceRef } from '../dataplane/attach.js';
import { ConntrackGc } from '../dataplane/conntrack-gc.js';
import { computeNodeNetwork, type NodeNetwork } from '../dataplane/interfaces.js';
import { loadDataplane, type LoadedDataplane } from '../dataplane/loader.js';
import { dumpAddresses, dumpLinks, dumpRoutes, watchNetlink } from '../dataplane/netlink.js';
import { Reconciler, type SyncResult } from '../dataplane/reconcile.js';
import { destroySocketsEverywhere } from '../dataplane/sockets.js';
import { affectedServiceKeys, buildServiceState, updateServiceState } from '../model/services.js';
import type { NodeContext, ServiceState } from '../model/service-types.js';
import type { Logger } from '../sources/log.js';
import { ManifestsSource } from '../sources/manifests.js';
import { Store } from '../sources/store.js';
import type { SourceEvent } from '../sources/types.js';
import type { DaemonConfig } from './config.js';

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

export class Daemon {
  private dp!: LoadedDataplane;
  private reconciler!: Reconciler;
  private attach!: AttachManager;
  private gc!: ConntrackGc;
  private readonly store = new Store();
  private source!: ManifestsSource;
  private node!: NodeContext;
  private state: ServiceState | undefined;
  private network: NodeNetwork | undefined;
  /** service keys touched since the last sync */
  private readonly pending = new Set<string>();
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private stopNetlink: (() => void) | undefined;
  private networkBusy: Promise<void> = Promise.resolve();
  private ready = false;
  private stopped = false;

  constructor(
    readonly cfg: DaemonConfig,
    private readonly log: Logger,
  ) {}

  /** Loads, adopts, syncs, attaches; resolves once `event=ready` was logged. */
  async start(): Promise<void> {
    const t0 = performance.now();
    const cfg = this.cfg;
    this.dp = loadDataplane({ bpfRoot: cfg.bpfRoot, instance: cfg.instance, sockLbMode: cfg.sockLb, ...(cfg.objectDir ? { objectDir: cfg.objectDir } : {}) });
    this.log.info('loaded', { pinDir: this.dp.pinDir, sockLb: cfg.sockLb, cgroup: cfg.cgroup ?? 'none', hostNetnsCookie: String(this.dp.hostNetnsCookie) });
    const destroyProg = this.dp.objects.sock_lb.program('weir_sock_destroy');
    this.reconciler = new Reconciler(this.dp.maps, this.log, {
      destroySockets: () => destroySocketsEverywhere(destroyProg, this.cfg.cgroup, this.log),
    });
    const adopted = this.reconciler.adopt();
    this.log.info('adopt', adopted);
    this.attach = new AttachManager(this.dp.pinDir, this.dp.objects, this.log);
    this.gc = new ConntrackGc(this.dp.maps.conntrack, this.log);

    this.network = await this.readNetwork();
    this.node = { nodeName: cfg.nodeName, nodeAddresses: [...this.network.nodePortAddresses], ...(cfg.proxyName ? { proxyName: cfg.proxyName } : {}) };

    this.source = new ManifestsSource({ dir: cfg.manifests, log: this.log });
    let synced = false;
    await this.source.start((e: SourceEvent) => {
      if (e.type === 'synced') {
        synced = true;
        return;
      }
      const change = this.store.apply(e);
      if (!change || !synced) return;
      for (const k of affectedServiceKeys(change.kind, change.previous as never, change.current as never)) this.pending.add(k);
      this.scheduleSync();
    });

    // first full sync: the maps hold the whole desired state before any program runs on it
    this.state = buildServiceState(this.store, this.node);
    this.reconciler.setAll(this.state.frontends.values());
    const first = this.reconciler.sync();
    this.logSync('start', first);

    this.applyAttachments(this.network);
    this.attach.syncCgroup(cfg.sockLb === 'off' ? null : cfg.cgroup);

    this.stopNetlink = watchNetlink(() => void this.onNetlinkChange());
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
      ms: Math.round(performance.now() - t0),
    });
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

  private logSync(reason: string, r: SyncResult): void {
    const skipped = [...this.reconciler.stats.skipped].map(([k, v]) => `${k}:${v}`).join(',');
    this.log.info('sync', { reason, writes: r.writes, frontends: r.frontends, removedBackends: r.removedBackends, errors: r.errors, ms: r.ms, skipped: skipped || undefined });
  }

  private scheduleSync(): void {
    if (this.syncTimer || this.stopped) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      try {
        this.syncChanges();
      } catch (e) {
        this.log.warn('sync failed', { error: errText(e) });
      }
    }, 10);
  }

  private syncChanges(): void {
    if (!this.state || this.pending.size === 0) return;
    const keys = [...this.pending];
    this.pending.clear();
    const diff = updateServiceState(this.state, this.store, this.node, keys);
    if (diff.upserted.length === 0 && diff.removed.length === 0) return;
    this.reconciler.update(diff.upserted, diff.removed);
    this.logSync('change', this.reconciler.sync());
  }

  private resync(): void {
    const r = this.reconciler.resync();
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

  private applyAttachments(net: NodeNetwork): void {
    this.attach.syncInterfaces(refs(net.workloads), refs(net.hostInterfaces));
    for (const w of net.workloads) allowLocalSource(w.ifname, this.log);
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
        const next = buildServiceState(this.store, this.node);
        this.state = next;
        this.reconciler.setAll(next.frontends.values());
        this.logSync('node-addresses', this.reconciler.sync());
      }
    });
    return this.networkBusy;
  }

  /** Stops watching and closes fds; pinned maps and links keep the dataplane working. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    for (const t of this.timers) clearInterval(t);
    this.stopNetlink?.();
    await this.source?.stop();
    await this.networkBusy.catch(() => {});
    this.attach?.close();
    this.dp?.close();
  }
}
