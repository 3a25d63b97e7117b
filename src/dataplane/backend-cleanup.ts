// dataplane/backend-cleanup: the clean-up stage, after the maps are applied (Cilium's
// termination.go, kube-proxy's processServiceMapChange). Fed by the applied plan: endpoints
// that left a frontend lose their affinity entries and their UDP conntrack entries at once,
// connected UDP sockets to them are destroyed (weir_sock_destroy4/6 + the iter/udp program),
// and the lb-stats of released frontend ids go (an id is reused: counts must not follow).
// One code path for both families: each family's removals go to that family's maps (a
// released id is looked for in every family's: ids are unique across them). Each step fails
// on its own: logged and counted, the others still run.

import { IPPROTO, type IpFamily } from '../bpf/ip.js';
import { type LogFields, type Logger, errText } from '../log.js';
import { planBackendConntrackDeletes } from './conntrack-gc.js';
import { addressPort, backendIdentity, type DesiredFrontend } from './frontend-entries.js';
import type { RemovedBackend } from './frontend-plan.js';
import { deleteLbStatsOf } from './lb-stats.js';
import type { FamilyServiceMaps, SockDestroyKey } from './loader.js';

/** removed endpoints logged one line each per sync; the rest are counted in one line */
const REMOVED_LINES = 20;

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

/** The maps one family's clean-up touches. */
export type FamilyCleanupMaps = Pick<FamilyServiceMaps, 'affinity' | 'conntrack' | 'sockDestroy' | 'lbStats'>;

/** The IPv4 clean-up maps, and the IPv6 ones where they exist (ServiceMaps is one). */
export type CleanupMaps = FamilyCleanupMaps & { ipv6?: FamilyCleanupMaps };

export class BackendCleanup {
  readonly stats: BackendCleanupStats = { removedBackends: 0, affinityDeleted: 0, conntrackDeleted: 0, lbStatsDeleted: 0, socketDestroyRuns: 0, errors: 0 };
  private readonly families: ReadonlyArray<readonly [IpFamily, FamilyCleanupMaps]>;

  constructor(
    maps: CleanupMaps,
    private readonly log: Logger,
    private readonly opts: BackendCleanupOptions = {},
  ) {
    this.families = maps.ipv6
      ? [
          [4, maps],
          [6, maps.ipv6],
        ]
      : [[4, maps]];
  }

  /** Affinity, lb-stats, UDP conntrack and connected UDP sockets of what the plan removed. */
  run(applied: AppliedRemovals): void {
    // removals of a family without maps here have nothing to clean (the reconciler does not
    // apply such a family, so it passes none)
    const removed = applied.removedBackends.filter((r) => this.families.some(([f]) => f === r.family));
    if (removed.length === 0 && applied.releasedIds.length === 0) return;
    this.stats.removedBackends += removed.length;
    const fields: LogFields = { backends: removed.length };
    const add = (field: 'affinityDeleted' | 'conntrackDeleted' | 'lbStatsDeleted', n: number) => {
      this.stats[field] += n;
      fields[field] = ((fields[field] as number | undefined) ?? 0) + n;
    };
    const released = new Set(applied.releasedIds);
    const udp = removed.filter((r) => r.protocol === IPPROTO.UDP);
    for (const [family, maps] of this.families) {
      const mine = removed.filter((r) => r.family === family);
      if (mine.length > 0 || released.size > 0) {
        this.step(family, 'affinity', () => {
          const gone = new Set(mine.map((r) => `${r.frontendId}|${backendIdentity(r)}`));
          const keys = [];
          for (const [k, v] of maps.affinity.entries()) {
            if (released.has(k.frontend_id) || gone.has(`${k.frontend_id}|${v.backend}:${v.port}`)) keys.push(k);
          }
          add('affinityDeleted', keys.length ? maps.affinity.deleteMany(keys) : 0);
        });
      }
      const lbStats = maps.lbStats;
      if (lbStats && released.size) this.step(family, 'lb stats', () => add('lbStatsDeleted', deleteLbStatsOf(lbStats, released)));
      const udpMine = udp.filter((r) => r.family === family);
      if (udpMine.length) {
        this.step(family, 'conntrack', () => {
          // chunk by chunk: a full table is never held in memory (the GC's walk, conntrack-gc.ts)
          for (const { entries } of maps.conntrack.chunks()) {
            const keys = planBackendConntrackDeletes(entries, udpMine);
            add('conntrackDeleted', keys.length ? maps.conntrack.deleteMany(keys) : 0);
          }
        });
      }
    }
    if (udp.length && this.opts.destroySockets) this.destroyUdpSockets(udp, applied.desired, this.opts.destroySockets, fields);
    // a line per endpoint while they are few; a restart that removes 20,000 services would
    // otherwise write 200,000 lines on the event loop: past the limit, one line with the count
    // and the first ones
    const named = removed.slice(0, REMOVED_LINES);
    for (const r of named) {
      this.log.info('backend removed', { frontendId: r.frontendId, backend: addressPort(r.family, r.address, r.port), protocol: r.protocol });
    }
    if (removed.length > named.length) this.log.info('backends removed', { backends: removed.length, logged: named.length });
    this.log.info('cleanup', fields);
  }

  private step(family: IpFamily, what: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      this.stats.errors++;
      this.log.warn(`${what} cleanup failed`, { family: `IPv${family}`, error: errText(e) });
    }
  }

  /**
   * Lists the peers in each family's weir_sock_destroy map, runs the iterator once (it reads
   * the map of each socket's family), and empties the lists again.
   */
  private destroyUdpSockets(udp: readonly RemovedBackend[], desired: Iterable<DesiredFrontend>, destroy: () => number, fields: LogFields): void {
    // a peer still serving another UDP frontend keeps its sockets (identities are unique
    // across families: an IPv6 address has colons where an IPv4 one has dots)
    const stillUsed = new Set<string>();
    for (const d of desired) if (d.key.protocol === IPPROTO.UDP) for (const b of d.backends) stillUsed.add(backendIdentity(b));
    const peers = [...new Map(udp.filter((r) => !stillUsed.has(backendIdentity(r))).map((r) => [backendIdentity(r), r])).values()];
    if (peers.length === 0) return;
    const listed: Array<[FamilyCleanupMaps['sockDestroy'] & object, SockDestroyKey[]]> = [];
    try {
      for (const [family, maps] of this.families) {
        const keys = peers.filter((r) => r.family === family).map((r) => ({ address: r.address, port: r.port, pad: 0 }));
        if (keys.length === 0) continue;
        if (!maps.sockDestroy) {
          this.log.warn('socket destroy skipped', { family: `IPv${family}`, peers: keys.length, reason: 'no weir_sock_destroy map for this family' });
          continue;
        }
        listed.push([maps.sockDestroy, keys]);
        maps.sockDestroy.setMany(keys.map((k) => [k, 1] as const));
      }
      if (listed.length === 0) return;
      fields.socketNetns = destroy();
      this.stats.socketDestroyRuns++;
    } catch (e) {
      this.stats.errors++;
      this.log.warn('socket destroy failed', { error: errText(e) });
    } finally {
      for (const [map, keys] of listed) {
        try {
          map.deleteMany(keys);
        } catch (e) {
          this.log.warn('socket destroy map cleanup failed', { error: errText(e) });
        }
      }
    }
  }
}
