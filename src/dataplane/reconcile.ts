// dataplane/reconcile: the apply stage. Holds the desired entries (frontend-entries.ts), a
// mirror of what the frontend and backend maps hold, plans (frontend-plan.ts) and applies each
// family's part to that family's maps in the safe order with batch ops. At start it adopts
// whatever pinned maps hold (ids included) and writes only the differences; a periodic resync
// re-reads the maps and repairs drift (counted as repairs). It only applies: what a plan
// removed goes to `onApplied` (backend-cleanup.ts cleans up after removed endpoints).
//
// A family without maps (IPv6 on pins of a release before issue 14, or a fake without them)
// is planned like the other, ids included, but its part is not applied: its frontends are
// counted as skipped (reason `ipv6`), and the ids planned for them are released.

import type { TypedMap, WeirLbSrc4Key } from '../bpf/index.js';
import { parseCidr, protocolName, type IpFamily } from '../bpf/ip.js';
import type { Frontend, LbAlgorithm } from '../model/service-types.js';
import { type Logger, errText } from '../log.js';
import type { AppliedRemovals } from './backend-cleanup.js';
import {
  addressPort,
  frontendEntries,
  frontendKeyString,
  type BackendKey,
  type BackendValue,
  type DesiredFrontend,
  type FrontendKey,
  type FrontendValue,
  type SkipReason,
} from './frontend-entries.js';
import { IdAllocator } from './frontend-ids.js';
import type { MaglevTables } from './maglev-tables.js';
import {
  applyFamilyToLive,
  emptyFamilyLive,
  emptyLive,
  FAMILIES,
  familyPlanSize,
  planSync,
  type FamilyLive,
  type LiveState,
  type Plan,
} from './frontend-plan.js';

/** A weir_lb_src4 / weir_lb_src6 key (one shape: the address is text of the map's family). */
export type SourceRangeKey = WeirLbSrc4Key;

/** The frontend and backend maps of one family. */
export interface FamilyMaps {
  frontends: TypedMap<FrontendKey, FrontendValue>;
  backends: TypedMap<BackendKey, BackendValue>;
  /** weir_lb_src4 / weir_lb_src6: without it, source ranges are flagged but never admit
   *  anyone, so it is required wherever the programs run */
  sourceRanges?: TypedMap<SourceRangeKey, number>;
}

/**
 * A weir_lb_src4 / weir_lb_src6 key: the frontend id is matched whole (32 bits) before the
 * CIDR's prefix, so prefixlen = 32 + the CIDR's length in both. Null for no CIDR, or one not
 * of `family` (when given: the map the key is for).
 */
export function sourceRangeKey(frontendId: number, cidr: string, family?: IpFamily): SourceRangeKey | null {
  const c = parseCidr(cidr);
  if (!c || (family !== undefined && c.family !== family)) return null;
  return { prefixlen: 32 + c.prefix, frontend_id: frontendId, address: c.address };
}

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
  /** endpoints that left a frontend (handed to onApplied) */
  removedBackends: number;
}

export interface SyncResult {
  writes: number;
  frontends: number;
  removedBackends: number;
  errors: number;
  ms: number;
}

export interface ReconcilerOptions {
  /** the IPv6 frontend, backend and source-range maps; without them IPv6 frontends are skipped */
  ipv6?: FamilyMaps;
  /** after every applied plan: what it removed (the clean-up stage) */
  onApplied?: (removals: AppliedRemovals) => void;
  /** --lb-algorithm: for services without the annotation (default random) */
  lbAlgorithm?: LbAlgorithm;
  /** the Maglev tables of both families (weir_maglev4, by frontend id); without them Maglev
   *  frontends pick at random */
  maglev?: MaglevTables;
}

export class Reconciler {
  readonly stats: ReconcileStats = { syncs: 0, writes: 0, repairs: 0, errors: 0, skipped: new Map(), removedBackends: 0 };
  /** keyString -> desired entry (both families) */
  private readonly desired = new Map<string, DesiredFrontend>();
  /** model Frontend.id -> its entries' keyStrings */
  private readonly byModelId = new Map<string, string[]>();
  /** keyStrings whose desired value changed since the last sync */
  private readonly dirty = new Set<string>();
  /** desired entries as of the last applied sync (for the `known` sets of removed endpoints) */
  private readonly applied = new Map<string, DesiredFrontend>();
  private live: LiveState = emptyLive();
  /** one allocator for both families: a frontend id is unique across them */
  private ids = new IdAllocator();
  private adopted = false;
  /** each family's maps; undefined: the family is planned, not applied */
  private readonly familyMaps: Record<IpFamily, FamilyMaps | undefined>;

  constructor(
    maps: FamilyMaps,
    private readonly log: Logger,
    private readonly opts: ReconcilerOptions = {},
  ) {
    const four: FamilyMaps = { frontends: maps.frontends, backends: maps.backends };
    if (maps.sourceRanges) four.sourceRanges = maps.sourceRanges;
    this.familyMaps = { 4: four, 6: opts.ipv6 };
  }

  /** What the frontend and backend maps hold now, read from the kernel (a family without maps: nothing). */
  dumpLive(): LiveState {
    const live = emptyLive();
    for (const f of FAMILIES) {
      const maps = this.familyMaps[f];
      if (maps) live[f] = dumpFamily(f, maps);
    }
    return live;
  }

  /** Reads the (possibly adopted) maps: their entries become the mirror, their ids taken. */
  adopt(): { frontends: number; backends: number } {
    this.live = this.dumpLive();
    this.ids = idsOf(this.live);
    this.adopted = true;
    this.opts.maglev?.adopt();
    let frontends = 0;
    let backends = 0;
    for (const f of FAMILIES) {
      frontends += this.live[f].frontends.size;
      for (const m of this.live[f].backends.values()) backends += m.size;
    }
    return { frontends, backends };
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

  private skip(reason: SkipReason): void {
    this.stats.skipped.set(reason, (this.stats.skipped.get(reason) ?? 0) + 1);
  }

  private put(f: Frontend): void {
    const entries = frontendEntries(f, this.opts.lbAlgorithm);
    if (typeof entries === 'string') {
      this.skip(entries);
      this.log.warn('frontend skipped', { frontend: f.id, service: f.serviceKey, reason: entries });
      return;
    }
    // planned all the same (ids included); only the apply step leaves it out
    if (!this.familyMaps[f.family]) this.skip('ipv6');
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
    for (const f of FAMILIES) {
      for (const [keyString, { key, value }] of this.live[f].frontends) {
        const d = this.desired.get(keyString) ?? this.applied.get(keyString);
        if (d) out.set(value.id, { service: d.serviceKey, frontend: `${addressPort(f, key.address, key.port)}/${protocolName(key.protocol)}` });
      }
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
    const preferredIds = new Map<string, number>();
    for (const f of FAMILIES) for (const [k, { value }] of this.live[f].frontends) preferredIds.set(k, value.id);
    this.live = this.dumpLive();
    // ids seen in the maps stay taken; our own allocations stay taken too
    for (const f of FAMILIES) for (const { value } of this.live[f].frontends.values()) this.ids.adopt(value.id);
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
    let writes = 0;
    const applied: IpFamily[] = [];
    for (const f of FAMILIES) {
      const m = this.familyMaps[f];
      const part = plan[f];
      if (!m) {
        // nowhere to write (and nothing live): the ids planned for its frontends are free again
        for (const [, v] of part.frontendWrites) this.ids.release(v.id);
        continue;
      }
      applied.push(f);
      this.batch(
        'frontend delete',
        part.frontendDeletes,
        (ks) => m.frontends.deleteMany(ks),
        (k) => void m.frontends.delete(k),
      );
      this.batch(
        'backend write',
        part.backendWrites,
        (es) => m.backends.setMany(es),
        ([k, v]) => m.backends.set(k, v),
      );
      // LPM tries have no batch ops: one by one
      this.batch('source range write', part.rangeWrites, null, (r) => this.rangeOp(f, m, r.frontendId, r.cidr, true));
      this.batch(
        'frontend write',
        part.frontendWrites,
        (es) => m.frontends.setMany(es),
        ([k, v]) => m.frontends.set(k, v),
      );
      this.batch(
        'backend delete',
        part.backendDeletes,
        (ks) => m.backends.deleteMany(ks),
        (k) => void m.backends.delete(k),
      );
      this.batch('source range delete', part.rangeDeletes, null, (r) => this.rangeOp(f, m, r.frontendId, r.cidr, false));
      writes += familyPlanSize(part);
    }
    this.stats.writes += writes;
    const failed = this.stats.errors > errorsBefore;
    if (failed) {
      // the maps hold something between the old and the new state: read what they hold,
      // and retry the entries involved at the next sync
      try {
        this.live = this.dumpLive();
        this.ids = idsOf(this.live);
      } catch (e) {
        this.log.warn('map dump failed', { error: errText(e) });
      }
      for (const k of scope ?? this.desired.keys()) this.dirty.add(k);
    } else {
      for (const f of applied) applyFamilyToLive(f, this.live[f], plan[f]);
      for (const id of plan.releasedIds) this.ids.release(id);
    }
    // after the slots and counts: the tables of the frontends this plan touched (all after
    // a failure or a resync), built from the slots as the maps now hold them; one table map
    // for both families (ids are unique across them)
    if (this.opts.maglev && applied.length > 0) {
      let ids: Set<number> | undefined;
      if (scope && !failed) {
        ids = new Set(plan.releasedIds);
        for (const k of scope) {
          for (const f of applied) {
            const e = this.live[f].frontends.get(k);
            if (e) ids.add(e.value.id);
          }
        }
      }
      writes += this.opts.maglev.update(
        applied.map((f) => this.live[f]),
        ids,
      );
    }
    for (const k of scope ?? [...this.applied.keys(), ...this.desired.keys()]) {
      const d = this.desired.get(k);
      if (d) this.applied.set(k, d);
      else this.applied.delete(k);
    }
    const removedBackends = plan.removedBackends.filter((r) => applied.includes(r.family));
    this.stats.removedBackends += removedBackends.length;
    this.opts.onApplied?.({ removedBackends, releasedIds: plan.releasedIds, desired: this.desired.values() });
    let frontends = 0;
    for (const f of applied) frontends += this.live[f].frontends.size;
    return {
      writes,
      frontends,
      removedBackends: removedBackends.length,
      errors: this.stats.errors - errorsBefore,
      ms: Math.round((performance.now() - t0) * 100) / 100,
    };
  }

  private rangeOp(family: IpFamily, m: FamilyMaps, frontendId: number, cidr: string, add: boolean): void {
    const key = sourceRangeKey(frontendId, cidr, family);
    if (!m.sourceRanges || !key) throw new Error(`no weir_lb_src${family} entry for ${cidr}`);
    if (add) m.sourceRanges.set(key, 1);
    else m.sourceRanges.delete(key);
  }

  /** One batch op; on failure (a full map, a bad entry) the entries one by one, each error logged. */
  private batch<T>(what: string, items: T[], many: ((items: T[]) => unknown) | null, one: (item: T) => void): void {
    if (items.length === 0) return;
    try {
      if (many) {
        many(items);
        return;
      }
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
}

function dumpFamily(family: IpFamily, maps: FamilyMaps): FamilyLive {
  const live = emptyFamilyLive();
  for (const [key, value] of maps.frontends.entries()) live.frontends.set(frontendKeyString(family, key), { key, value });
  for (const [key, value] of maps.backends.entries()) {
    let m = live.backends.get(key.frontend_id);
    if (!m) live.backends.set(key.frontend_id, (m = new Map()));
    m.set(key.slot, value);
  }
  for (const [key] of maps.sourceRanges?.entries() ?? []) {
    let m = live.ranges.get(key.frontend_id);
    if (!m) live.ranges.set(key.frontend_id, (m = new Set()));
    m.add(`${key.address}/${key.prefixlen - 32}`);
  }
  return live;
}

/** An allocator holding every id the maps of either family use. */
function idsOf(live: LiveState): IdAllocator {
  const ids = new IdAllocator();
  for (const f of FAMILIES) for (const { value } of live[f].frontends.values()) ids.adopt(value.id);
  return ids;
}
