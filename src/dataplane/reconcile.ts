// dataplane/reconcile: the applier between the model and the service maps. Holds the
// desired entries (services.ts turns model Frontends into them), a mirror of what the maps
// hold, and applies least-writes plans in the safe order with batch ops. At start it
// adopts whatever pinned maps hold (ids included) and writes only the differences; a
// periodic resync re-reads the maps and repairs drift (counted as repairs). Endpoints that
// leave a frontend lose their affinity entries and UDP conntrack entries at once, and
// connected UDP sockets to them are destroyed (weir_sock_destroy4 + the iter/udp program).

import type { Frontend } from '../model/service-types.js';
import type { LogFields, Logger } from '../sources/log.js';
import { planBackendConntrackDeletes } from './conntrack-gc.js';
import { deleteLbStatsOf } from './lb-stats.js';
import type { ServiceMaps } from './loader.js';
import {
  applyToLive,
  emptyLive,
  frontendEntries,
  IdAllocator,
  planSize,
  planSync,
  type DesiredFrontend,
  type LiveState,
  type Plan,
  type RemovedBackend,
  type SkipReason,
} from './services.js';

const PROTO_UDP = 17;
const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 132: 'sctp' };

export interface ReconcileStats {
  /** plans applied (incremental syncs, start, resyncs) */
  syncs: number;
  /** map entries written or deleted in frontend/backend maps, all-time */
  writes: number;
  /** writes made by periodic resyncs: drift that something else caused */
  repairs: number;
  /** failed map operations (each logged) */
  errors: number;
  /** model frontends with no map entry, by reason */
  skipped: Map<SkipReason, number>;
  /** endpoints that left a frontend (cleanup runs for each) */
  removedBackends: number;
  affinityDeleted: number;
  conntrackDeleted: number;
  socketDestroyRuns: number;
}

export interface SyncResult {
  writes: number;
  frontends: number;
  removedBackends: number;
  errors: number;
  ms: number;
}

export interface ReconcilerOptions {
  /** Runs the socket-destroy iterator in every namespace that may hold sockets to the
   *  peers now listed in weir_sock_destroy4; returns how many namespaces it ran in. */
  destroySockets?: () => number;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Reconciler {
  readonly stats: ReconcileStats = {
    syncs: 0,
    writes: 0,
    repairs: 0,
    errors: 0,
    skipped: new Map(),
    removedBackends: 0,
    affinityDeleted: 0,
    conntrackDeleted: 0,
    socketDestroyRuns: 0,
  };
  /** keyString -> desired entry */
  private readonly desired = new Map<string, DesiredFrontend>();
  /** model Frontend.id -> its entries' keyStrings */
  private readonly byModelId = new Map<string, string[]>();
  /** keyStrings whose desired value changed since the last sync */
  private readonly dirty = new Set<string>();
  /** desired entries as of the last applied sync (for the `known` sets of removed endpoints) */
  private readonly applied = new Map<string, DesiredFrontend>();
  private live: LiveState = emptyLive();
  private ids = new IdAllocator();
  private adopted = false;

  constructor(
    private readonly maps: ServiceMaps,
    private readonly log: Logger,
    private readonly opts: ReconcilerOptions = {},
  ) {}

  /** What the frontend and backend maps hold now, read from the kernel. */
  dumpLive(): LiveState {
    const live = emptyLive();
    for (const [key, value] of this.maps.frontends.entries()) live.frontends.set(`${key.address}:${key.port}/${key.protocol}/${key.scope}`, { key, value });
    for (const [key, value] of this.maps.backends.entries()) {
      let m = live.backends.get(key.frontend_id);
      if (!m) live.backends.set(key.frontend_id, (m = new Map()));
      m.set(key.slot, value);
    }
    return live;
  }

  /** Reads the (possibly adopted) maps: their entries become the mirror, their ids taken. */
  adopt(): { frontends: number; backends: number } {
    this.live = this.dumpLive();
    this.ids = new IdAllocator();
    for (const { value } of this.live.frontends.values()) this.ids.adopt(value.id);
    this.adopted = true;
    let backends = 0;
    for (const m of this.live.backends.values()) backends += m.size;
    return { frontends: this.live.frontends.size, backends };
  }

  /** Replaces the whole desired state (first sync, node address change). */
  setAll(frontends: Iterable<Frontend>): void {
    const before = new Set(this.desired.keys());
    this.desired.clear();
    this.byModelId.clear();
    this.stats.skipped.clear();
    for (const f of frontends) this.put(f);
    for (const k of before) this.dirty.add(k);
    for (const k of this.desired.keys()) this.dirty.add(k);
  }

  /** Applies a model diff: upserted frontends replace theirs, removed ids go. */
  update(upserted: Iterable<Frontend>, removedIds: Iterable<string>): void {
    for (const id of removedIds) this.remove(id);
    for (const f of upserted) {
      this.remove(f.id);
      this.put(f);
    }
  }

  private remove(modelId: string): void {
    for (const k of this.byModelId.get(modelId) ?? []) {
      this.desired.delete(k);
      this.dirty.add(k);
    }
    this.byModelId.delete(modelId);
  }

  private put(f: Frontend): void {
    const entries = frontendEntries(f);
    if (typeof entries === 'string') {
      this.stats.skipped.set(entries, (this.stats.skipped.get(entries) ?? 0) + 1);
      // IPv6 is expected (not programmed yet); anything else is bad input worth a line
      if (entries !== 'ipv6') this.log.warn('frontend skipped', { frontend: f.id, service: f.serviceKey, reason: entries });
      return;
    }
    const keys: string[] = [];
    for (const e of entries) {
      this.desired.set(e.keyString, e);
      this.dirty.add(e.keyString);
      keys.push(e.keyString);
    }
    this.byModelId.set(f.id, keys);
  }

  /** Frontend id -> the service and frontend (`address:port/protocol`) it serves, as in the maps. */
  frontendsById(): Map<number, { service: string; frontend: string }> {
    const out = new Map<number, { service: string; frontend: string }>();
    for (const [keyString, { key, value }] of this.live.frontends) {
      const d = this.desired.get(keyString) ?? this.applied.get(keyString);
      if (d) out.set(value.id, { service: d.serviceKey, frontend: `${key.address}:${key.port}/${PROTO_NAMES[key.protocol] ?? key.protocol}` });
    }
    return out;
  }

  get desiredCount(): number {
    return this.desired.size;
  }

  /** Writes what changed since the last sync (against the mirror of the maps). */
  sync(): SyncResult {
    if (!this.adopted) this.adopt();
    const scope = [...this.dirty];
    this.dirty.clear();
    return this.applyPlan(planSync(this.desired, this.live, this.ids, { scope, previous: this.applied }), scope);
  }

  /**
   * Re-reads the maps and rewrites whatever differs from the desired state (entries
   * changed, added or deleted behind our back; orphaned backend slots). Every write here
   * is a repair.
   */
  resync(): SyncResult {
    const preferredIds = new Map([...this.live.frontends].map(([k, { value }]) => [k, value.id]));
    this.live = this.dumpLive();
    // ids seen in the maps stay taken; our own allocations stay taken too
    for (const { value } of this.live.frontends.values()) this.ids.adopt(value.id);
    this.adopted = true;
    this.dirty.clear();
    const r = this.applyPlan(planSync(this.desired, this.live, this.ids, { previous: this.applied, orphans: true, preferredIds }), undefined);
    this.stats.repairs += r.writes;
    return r;
  }

  private applyPlan(plan: Plan, scope: string[] | undefined): SyncResult {
    const t0 = performance.now();
    this.stats.syncs++;
    const errorsBefore = this.stats.errors;
    const m = this.maps;
    this.batch('frontend delete', plan.frontendDeletes, (ks) => m.frontends.deleteMany(ks), (k) => void m.frontends.delete(k));
    this.batch('backend write', plan.backendWrites, (es) => m.backends.setMany(es), ([k, v]) => m.backends.set(k, v));
    this.batch('frontend write', plan.frontendWrites, (es) => m.frontends.setMany(es), ([k, v]) => m.frontends.set(k, v));
    this.batch('backend delete', plan.backendDeletes, (ks) => m.backends.deleteMany(ks), (k) => void m.backends.delete(k));
    const writes = planSize(plan);
    this.stats.writes += writes;
    const failed = this.stats.errors > errorsBefore;
    if (failed) {
      // the maps hold something between the old and the new state: read what they hold,
      // and retry the entries involved at the next sync
      try {
        this.live = this.dumpLive();
        this.ids = new IdAllocator();
        for (const { value } of this.live.frontends.values()) this.ids.adopt(value.id);
      } catch (e) {
        this.log.warn('map dump failed', { error: errText(e) });
      }
      for (const k of scope ?? this.desired.keys()) this.dirty.add(k);
    } else {
      applyToLive(this.live, plan);
      for (const id of plan.releasedIds) this.ids.release(id);
    }
    for (const k of scope ?? [...this.applied.keys(), ...this.desired.keys()]) {
      const d = this.desired.get(k);
      if (d) this.applied.set(k, d);
      else this.applied.delete(k);
    }
    this.cleanupRemoved(plan.removedBackends, plan.releasedIds);
    return {
      writes,
      frontends: this.live.frontends.size,
      removedBackends: plan.removedBackends.length,
      errors: this.stats.errors - errorsBefore,
      ms: Math.round((performance.now() - t0) * 100) / 100,
    };
  }

  /** One batch op; on failure (a full map, a bad entry) the entries one by one, each error logged. */
  private batch<T>(what: string, items: T[], many: (items: T[]) => unknown, one: (item: T) => void): void {
    if (items.length === 0) return;
    try {
      many(items);
      return;
    } catch (e) {
      this.log.debug('batch failed, retrying entry by entry', { op: what, entries: items.length, error: errText(e) });
    }
    for (const it of items) {
      try {
        one(it);
      } catch (e) {
        this.stats.errors++;
        this.log.warn('map update failed', { op: what, entry: JSON.stringify(it), error: errText(e) });
      }
    }
  }

  /** Affinity, UDP conntrack and connected UDP sockets of endpoints that left. */
  private cleanupRemoved(removed: RemovedBackend[], releasedIds: number[]): void {
    if (removed.length === 0 && releasedIds.length === 0) return;
    this.stats.removedBackends += removed.length;
    const gone = new Set(removed.map((r) => `${r.frontendId}|${r.address}:${r.port}`));
    const released = new Set(releasedIds);
    const fields: LogFields = { backends: removed.length };
    try {
      const keys = [];
      for (const [k, v] of this.maps.affinity.entries()) {
        if (released.has(k.frontend_id) || gone.has(`${k.frontend_id}|${v.backend}:${v.port}`)) keys.push(k);
      }
      const n = keys.length ? this.maps.affinity.deleteMany(keys) : 0;
      this.stats.affinityDeleted += n;
      fields.affinityDeleted = n;
    } catch (e) {
      this.stats.errors++;
      this.log.warn('affinity cleanup failed', { error: errText(e) });
    }
    if (this.maps.lbStats && released.size) {
      // a released id may be handed to another frontend: its counts must not follow
      try {
        fields.lbStatsDeleted = deleteLbStatsOf(this.maps.lbStats, released);
      } catch (e) {
        this.stats.errors++;
        this.log.warn('lb stats cleanup failed', { error: errText(e) });
      }
    }
    const udp = removed.filter((r) => r.protocol === PROTO_UDP);
    if (udp.length) {
      try {
        const keys = planBackendConntrackDeletes(this.maps.conntrack.entries(), udp);
        const n = keys.length ? this.maps.conntrack.deleteMany(keys) : 0;
        this.stats.conntrackDeleted += n;
        fields.conntrackDeleted = n;
      } catch (e) {
        this.stats.errors++;
        this.log.warn('conntrack cleanup failed', { error: errText(e) });
      }
      if (this.opts.destroySockets) this.destroyUdpSockets(udp, fields);
    }
    for (const r of removed) this.log.info('backend removed', { frontendId: r.frontendId, backend: `${r.address}:${r.port}`, protocol: r.protocol });
    this.log.info('cleanup', fields);
  }

  private destroyUdpSockets(udp: RemovedBackend[], fields: LogFields): void {
    // a peer still serving another UDP frontend keeps its sockets
    const stillUsed = new Set<string>();
    for (const d of this.desired.values()) if (d.key.protocol === PROTO_UDP) for (const b of d.backends) stillUsed.add(`${b.address}:${b.port}`);
    const peers = [...new Map(udp.filter((r) => !stillUsed.has(`${r.address}:${r.port}`)).map((r) => [`${r.address}:${r.port}`, r])).values()];
    if (peers.length === 0) return;
    const keys = peers.map((r) => ({ address: r.address, port: r.port, pad: 0 }));
    try {
      this.maps.sockDestroy.setMany(keys.map((k) => [k, 1] as const));
      fields.socketNetns = this.opts.destroySockets!();
      this.stats.socketDestroyRuns++;
    } catch (e) {
      this.stats.errors++;
      this.log.warn('socket destroy failed', { error: errText(e) });
    } finally {
      try {
        this.maps.sockDestroy.deleteMany(keys);
      } catch (e) {
        this.log.warn('socket destroy map cleanup failed', { error: errText(e) });
      }
    }
  }
}
