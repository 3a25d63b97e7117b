// dataplane/backend-cleanup: the clean-up stage, after the maps are applied (Cilium's
// termination.go, kube-proxy's processServiceMapChange). Fed by the applied plan: endpoints
// that left a frontend lose their affinity entries and their UDP conntrack entries at once,
// connected UDP sockets to them are destroyed (weir_sock_destroy4/6 + the iter/udp program),
// and the lb-stats of released frontend ids go (an id is reused: counts must not follow).
// Each step fails on its own: logged and counted, the others still run.

import { IPPROTO } from '../bpf/ip.js';
import { type LogFields, type Logger, errText } from '../log.js';
import { planBackendConntrackDeletes } from './conntrack-gc.js';
import { addressPort, backendIdentity, type DesiredFrontend } from './frontend-entries.js';
import type { RemovedBackend } from './frontend-plan.js';
import { deleteLbStatsOf } from './lb-stats.js';
import type { ServiceMaps } from './loader.js';

/** What an applied plan removed (only the families whose maps were written). */
export interface AppliedRemovals {
  /** endpoints that left a frontend */
  removedBackends: readonly RemovedBackend[];
  /** frontend ids deleted from the maps, free for another frontend from now on */
  releasedIds: readonly number[];
  /** the desired frontends after the sync: a UDP peer another frontend still uses keeps its sockets */
  desired: Iterable<DesiredFrontend>;
}

export interface BackendCleanupStats {
  /** endpoints that left a frontend (clean-up ran for each) */
  removedBackends: number;
  affinityDeleted: number;
  conntrackDeleted: number;
  lbStatsDeleted: number;
  socketDestroyRuns: number;
  /** failed steps (each logged) */
  errors: number;
}

export interface BackendCleanupOptions {
  /** Runs the socket-destroy iterator in every namespace that may hold sockets to the
   *  peers now listed in weir_sock_destroy4/6; returns how many namespaces it ran in. */
  destroySockets?: () => number;
}

export type CleanupMaps = Pick<ServiceMaps, 'affinity' | 'conntrack' | 'sockDestroy' | 'sockDestroy6' | 'lbStats'>;

export class BackendCleanup {
  readonly stats: BackendCleanupStats = { removedBackends: 0, affinityDeleted: 0, conntrackDeleted: 0, lbStatsDeleted: 0, socketDestroyRuns: 0, errors: 0 };

  constructor(
    private readonly maps: CleanupMaps,
    private readonly log: Logger,
    private readonly opts: BackendCleanupOptions = {},
  ) {}

  /** Affinity, lb-stats, UDP conntrack and connected UDP sockets of what the plan removed. */
  run(applied: AppliedRemovals): void {
    // the maps below are IPv4's: the IPv6 ones arrive with the IPv6 frontend maps
    const removed = applied.removedBackends.filter((r) => r.family === 4);
    // connected UDP sockets of both families (weir_sock_destroy6 where the maps have it)
    const udpPeers = applied.removedBackends.filter((r) => r.protocol === IPPROTO.UDP && (r.family === 4 || this.maps.sockDestroy6));
    if (removed.length === 0 && applied.releasedIds.length === 0 && udpPeers.length === 0) return;
    this.stats.removedBackends += removed.length;
    const fields: LogFields = { backends: removed.length };
    const released = new Set(applied.releasedIds);
    this.step('affinity', () => {
      const gone = new Set(removed.map((r) => `${r.frontendId}|${backendIdentity(r)}`));
      const keys = [];
      for (const [k, v] of this.maps.affinity.entries()) {
        if (released.has(k.frontend_id) || gone.has(`${k.frontend_id}|${v.backend}:${v.port}`)) keys.push(k);
      }
      const n = keys.length ? this.maps.affinity.deleteMany(keys) : 0;
      this.stats.affinityDeleted += n;
      fields.affinityDeleted = n;
    });
    const lbStats = this.maps.lbStats;
    if (lbStats && released.size) {
      this.step('lb stats', () => {
        const n = deleteLbStatsOf(lbStats, released);
        this.stats.lbStatsDeleted += n;
        fields.lbStatsDeleted = n;
      });
    }
    const udp = removed.filter((r) => r.protocol === IPPROTO.UDP);
    if (udp.length) {
      this.step('conntrack', () => {
        const keys = planBackendConntrackDeletes(this.maps.conntrack.entries(), udp);
        const n = keys.length ? this.maps.conntrack.deleteMany(keys) : 0;
        this.stats.conntrackDeleted += n;
        fields.conntrackDeleted = n;
      });
    }
    if (udpPeers.length && this.opts.destroySockets) this.destroyUdpSockets(udpPeers, applied.desired, this.opts.destroySockets, fields);
    for (const r of removed) {
      this.log.info('backend removed', { frontendId: r.frontendId, backend: addressPort(r.family, r.address, r.port), protocol: r.protocol });
    }
    this.log.info('cleanup', fields);
  }

  private step(what: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      this.stats.errors++;
      this.log.warn(`${what} cleanup failed`, { error: errText(e) });
    }
  }

  private destroyUdpSockets(udp: readonly RemovedBackend[], desired: Iterable<DesiredFrontend>, destroy: () => number, fields: LogFields): void {
    // a peer still serving another UDP frontend keeps its sockets (an address names its family)
    const stillUsed = new Set<string>();
    for (const d of desired) if (d.key.protocol === IPPROTO.UDP) for (const b of d.backends) stillUsed.add(backendIdentity(b));
    const peers = [...new Map(udp.filter((r) => !stillUsed.has(backendIdentity(r))).map((r) => [backendIdentity(r), r])).values()];
    if (peers.length === 0) return;
    const keysOf = (family: 4 | 6) => peers.filter((r) => r.family === family).map((r) => ({ address: r.address, port: r.port, pad: 0 }));
    const keys = keysOf(4);
    const keys6 = this.maps.sockDestroy6 ? keysOf(6) : [];
    try {
      if (keys.length) this.maps.sockDestroy.setMany(keys.map((k) => [k, 1] as const));
      if (keys6.length) this.maps.sockDestroy6?.setMany(keys6.map((k) => [k, 1] as const));
      fields.socketNetns = destroy();
      this.stats.socketDestroyRuns++;
    } catch (e) {
      this.stats.errors++;
      this.log.warn('socket destroy failed', { error: errText(e) });
    } finally {
      try {
        if (keys.length) this.maps.sockDestroy.deleteMany(keys);
        if (keys6.length) this.maps.sockDestroy6?.deleteMany(keys6);
      } catch (e) {
        this.log.warn('socket destroy map cleanup failed', { error: errText(e) });
      }
    }
  }
}
