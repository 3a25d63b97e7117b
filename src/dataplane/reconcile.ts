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
  emptyFamilyPlan,
  emptyLive,
  FAMILIES,
  familyPlanSize,
  planSync,
  type FamilyLive,
  type FamilyPlan,
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
  /** failed map operations, and entries left out for want of room (logged once per sync) */
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
  /** frontend entries not in the maps for want of room (or a refused write), after this sync */
  unprogrammed: number;
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
  /** setAll() ran: the next sync plans every live entry as well as the dirty ones */
  private wholeState = false;
  /** keyString -> why the maps do not hold it as desired */
  private readonly unprogrammed = new Map<string, Unprogrammed & { key?: string }>();
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
    return drain(this.dumpLiveSteps());
  }

  private *dumpLiveSteps(): Generator<void, LiveState> {
    const live = emptyLive();
    for (const f of FAMILIES) {
      const maps = this.familyMaps[f];
      if (maps) live[f] = yield* dumpFamily(f, maps);
    }
    return live;
  }

  /** Reads the (possibly adopted) maps: their entries become the mirror, their ids taken. */
  adopt(): { frontends: number; backends: number } {
    return drain(this.adoptSteps());
  }

  /** adopt(), yielding to the event loop every ADOPT_CHUNK entries (/healthz answers meanwhile). */
  adoptAsync(): Promise<{ frontends: number; backends: number }> {
    return drainAsync(this.adoptSteps());
  }

  private *adoptSteps(): Generator<void, { frontends: number; backends: number }> {
    this.live = yield* this.dumpLiveSteps();
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

  /**
   * Replaces the whole desired state (first sync, node address change). The next sync
   * compares every entry the maps hold too: an adopted entry nothing wants any more (a
   * Service deleted while weir was down) is deleted by it, not by the next resync.
   */
  setAll(frontends: Iterable<Frontend>): void {
    this.wholeState = true;
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

  /**
   * Frontend entries the maps could not take (a full map, a refused write), by keyString:
   * not written at all, or left as they were; retried by the first sync that may have room.
   */
  unprogrammedEntries(): ReadonlyMap<string, Unprogrammed> {
    return this.unprogrammed;
  }

  /** Services with at least one unprogrammed frontend entry, by reason. */
  unprogrammedServices(): Map<UnprogrammedReason, number> {
    const by = new Map<UnprogrammedReason, Set<string>>();
    for (const u of this.unprogrammed.values()) {
      let s = by.get(u.reason);
      if (!s) by.set(u.reason, (s = new Set()));
      s.add(u.service);
    }
    return new Map([...by].map(([r, s]) => [r, s.size]));
  }

  /** Writes what changed since the last sync (against the mirror of the maps), in one go. */
  sync(): SyncResult {
    return drain(this.syncSteps());
  }

  /** sync() in bounded batches that yield to the event loop between them (/healthz answers). */
  syncAsync(): Promise<SyncResult> {
    return drainAsync(this.syncSteps());
  }

  private *syncSteps(): Generator<void, SyncResult> {
    if (!this.adopted) this.adopt();
    // entries that did not fit are retried when this sync may free room (a frontend leaves, a
    // frontend loses slots: its deletes come first) or the mirror says a map has room (room
    // made behind our back); not on every sync, which would retry a full map's overflow each time
    const scope = new Set(this.dirty);
    if (this.wholeState) for (const f of FAMILIES) for (const k of this.live[f].frontends.keys()) scope.add(k);
    this.wholeState = false;
    if (this.unprogrammed.size > 0 && this.mayHaveRoom(scope)) for (const k of this.unprogrammed.keys()) scope.add(k);
    this.dirty.clear();
    // deletions first (room for the writes after them), then the rest, PLAN_CHUNK keys per
    // plan with a turn of the event loop between: planning 60,000 keys at once blocked it ~0.5 s
    const keys = [...scope].sort((a, b) => Number(this.desired.has(a)) - Number(this.desired.has(b)));
    let total: SyncResult | undefined;
    const failed = new Map<string, Unprogrammed>();
    for (let i = 0; i === 0 || i < keys.length; i += PLAN_CHUNK) {
      if (i > 0) yield;
      const part = keys.slice(i, i + PLAN_CHUNK);
      const r = yield* this.applySteps(planSync(this.desired, this.live, this.ids, { scope: part, previous: this.applied }), part, failed);
      total = total ? sumResults(total, r) : r;
    }
    if (failed.size > 0) this.logUnprogrammed(failed);
    return total!;
  }

  /**
   * Re-reads the maps and rewrites whatever differs from the desired state (entries
   * changed, added or deleted behind our back; orphaned backend slots). Every write that
   * succeeds here is a repair.
   */
  resync(): SyncResult {
    return drain(this.resyncSteps());
  }

  resyncAsync(): Promise<SyncResult> {
    return drainAsync(this.resyncSteps());
  }

  private *resyncSteps(): Generator<void, SyncResult> {
    const preferredIds = new Map<string, number>();
    for (const f of FAMILIES) for (const [k, { value }] of this.live[f].frontends) preferredIds.set(k, value.id);
    this.live = this.dumpLive();
    // ids seen in the maps stay taken; our own allocations stay taken too
    for (const f of FAMILIES) for (const { value } of this.live[f].frontends.values()) this.ids.adopt(value.id);
    this.adopted = true;
    this.dirty.clear();
    const failed = new Map<string, Unprogrammed>();
    const r = yield* this.applySteps(planSync(this.desired, this.live, this.ids, { previous: this.applied, orphans: true, preferredIds }), undefined, failed);
    if (failed.size > 0) this.logUnprogrammed(failed);
    this.stats.repairs += r.writes;
    return r;
  }

  /** A dirty key frees room (a frontend removed or shrunk), or a map that refused an entry has room in the mirror. */
  private mayHaveRoom(scope: ReadonlySet<string>): boolean {
    const refusing = new Set<string>();
    for (const u of this.unprogrammed.values()) refusing.add(u.map);
    for (const f of FAMILIES) {
      const m = this.familyMaps[f];
      if (!m) continue;
      const live = this.live[f];
      // a refusal by another map (a source-range trie, a fake without names): try again
      if ([...refusing].some((name) => name !== mapName(m.frontends) && name !== mapName(m.backends))) return true;
      if (refusing.has(mapName(m.frontends)) && live.frontends.size < capacity(m.frontends)) return true;
      if (refusing.has(mapName(m.backends)) && slotCount(live) < capacity(m.backends)) return true;
    }
    for (const k of scope) {
      for (const f of FAMILIES) {
        const have = this.live[f].frontends.get(k);
        if (!have) continue;
        const want = this.desired.get(k);
        if (!want || want.backends.length < have.value.backend_count) return true;
      }
    }
    return false;
  }

  /** Applies a plan; the entries it could not program are added to `failed` (logged by the caller, once a sync). */
  private *applySteps(plan: Plan, scope: string[] | undefined, failed: Map<string, Unprogrammed>): Generator<void, SyncResult> {
    const t0 = performance.now();
    this.stats.syncs++;
    const errorsBefore = this.stats.errors;
    const out: ApplyOutcome = { writes: 0, failed: new Map(), releasedIds: [...plan.releasedIds] };
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
      yield* this.applyFamily(f, m, part, out);
    }
    for (const id of out.releasedIds) this.ids.release(id);
    this.stats.writes += out.writes;
    // the entries planned in this sync that did not make it; every other one planned is programmed
    for (const k of scope ?? [...this.unprogrammed.keys(), ...this.desired.keys()]) {
      const failed = out.failed.get(k);
      if (failed && this.desired.has(k)) this.unprogrammed.set(k, failed);
      else this.unprogrammed.delete(k);
    }
    this.stats.errors += out.failed.size;
    for (const [k, u] of out.failed) failed.set(k, u);
    let writes = out.writes;
    // after the slots and counts: the tables of the frontends this plan touched (all on a
    // resync), built from the slots as the maps now hold them; one table map for both
    // families (ids are unique across them)
    if (this.opts.maglev && applied.length > 0) {
      let ids: Set<number> | undefined;
      if (scope) {
        ids = new Set(out.releasedIds);
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
      if (d && !out.failed.has(k)) this.applied.set(k, d);
      else if (!d) this.applied.delete(k);
    }
    const removedBackends = plan.removedBackends.filter((r) => applied.includes(r.family));
    this.stats.removedBackends += removedBackends.length;
    this.opts.onApplied?.({ removedBackends, releasedIds: out.releasedIds, desired: this.desired.values() });
    let frontends = 0;
    for (const f of applied) frontends += this.live[f].frontends.size;
    return {
      writes,
      frontends,
      removedBackends: removedBackends.length,
      errors: this.stats.errors - errorsBefore,
      unprogrammed: this.unprogrammed.size,
      ms: Math.round((performance.now() - t0) * 100) / 100,
    };
  }

  /**
   * One family's part, in the plan's order (frontend-plan.ts), each step in chunks. What
   * succeeded goes into the mirror, so a failure needs no re-read of the maps. A frontend
   * whose slots could not all be written is not written (a new one) or keeps its old count
   * and slots (a changed one), so it never points at missing slots; the slots a new one got
   * are deleted again and its id released.
   */
  private *applyFamily(f: IpFamily, m: FamilyMaps, planned: FamilyPlan, out: ApplyOutcome): Generator<void> {
    const live = this.live[f];
    const part = this.deferWhatCannotFit(f, m, planned, out);
    const done = emptyFamilyPlan();
    // frontend id -> keyString, built on the first failure only
    let byId: Map<number, string> | undefined;
    const keyOfId = (id: number): string | undefined => {
      if (!byId) {
        byId = new Map();
        for (const [k, e] of live.frontends) byId.set(e.value.id, k);
        for (const [k, v] of part.frontendWrites) byId.set(v.id, frontendKeyString(f, k));
      }
      return byId.get(id);
    };
    let failed = yield* this.ops(
      part.frontendDeletes,
      (ks) => m.frontends.deleteMany(ks),
      (k) => void m.frontends.delete(k),
    );
    done.frontendDeletes = part.frontendDeletes.filter((_, i) => !failed.has(i));
    failed = yield* this.ops(
      part.removedSlots,
      (ks) => m.backends.deleteMany(ks),
      (k) => void m.backends.delete(k),
    );
    done.removedSlots = part.removedSlots.filter((_, i) => !failed.has(i));
    applyFamilyToLive(f, live, done);
    out.writes += done.frontendDeletes.length + done.removedSlots.length;

    const slotsInMap = slotCount(live);
    failed = yield* this.ops(
      part.backendWrites,
      (es) => m.backends.setMany(es),
      ([k, v]) => m.backends.set(k, v),
      ([k]) => !live.backends.get(k.frontend_id)?.has(k.slot),
      capacity(m.backends) - slotsInMap,
    );
    // frontend id -> why its slots are incomplete
    const blocked = new Map<number, Unprogrammed & { key?: string }>();
    for (const [i, code] of failed) {
      const id = part.backendWrites[i]![0].frontend_id;
      if (!blocked.has(id)) blocked.set(id, this.unprogrammedOf(keyOfId(id), m.backends, code));
    }
    done.backendWrites = part.backendWrites.filter((_, i) => !failed.has(i));
    // LPM tries have no batch ops: one by one
    const rangeWrites = part.rangeWrites.filter((r) => !blocked.has(r.frontendId));
    failed = yield* this.ops(rangeWrites, null, (r) => this.rangeOp(f, m, r.frontendId, r.cidr, true));
    done.rangeWrites = rangeWrites.filter((_, i) => !failed.has(i));
    for (const [i, code] of failed) {
      const id = rangeWrites[i]!.frontendId;
      if (!blocked.has(id)) blocked.set(id, { ...this.unprogrammedOf(keyOfId(id), undefined, code), map: `weir_lb_src${f}` });
    }

    const frontendWrites = part.frontendWrites.filter(([, v]) => !blocked.has(v.id));
    failed = yield* this.ops(
      frontendWrites,
      (es) => m.frontends.setMany(es),
      ([k, v]) => m.frontends.set(k, v),
      ([k]) => !live.frontends.has(frontendKeyString(f, k)),
      capacity(m.frontends) - live.frontends.size,
    );
    for (const [i, code] of failed) {
      const [k, v] = frontendWrites[i]!;
      blocked.set(v.id, this.unprogrammedOf(frontendKeyString(f, k), m.frontends, code));
    }
    done.frontendWrites = frontendWrites.filter((_, i) => !failed.has(i));
    // a blocked frontend keeps its old count: the slots above its new count stay too
    const backendDeletes = part.backendDeletes.filter((k) => !blocked.has(k.frontend_id));
    failed = yield* this.ops(
      backendDeletes,
      (ks) => m.backends.deleteMany(ks),
      (k) => void m.backends.delete(k),
    );
    done.backendDeletes = backendDeletes.filter((_, i) => !failed.has(i));
    const rangeDeletes = part.rangeDeletes.filter((r) => !blocked.has(r.frontendId));
    failed = yield* this.ops(rangeDeletes, null, (r) => this.rangeOp(f, m, r.frontendId, r.cidr, false));
    done.rangeDeletes = rangeDeletes.filter((_, i) => !failed.has(i));
    const stepsAfterDeletes = { ...done, frontendDeletes: [], removedSlots: [] };
    applyFamilyToLive(f, live, stepsAfterDeletes);
    out.writes += familyPlanSize(stepsAfterDeletes);

    if (blocked.size === 0) return;
    // a blocked frontend the maps do not hold: what was written for it goes again (and is
    // not counted: nothing changed), its id is free
    const undo = emptyFamilyPlan();
    const undone = new Set<number>();
    for (const [id, why] of blocked) {
      const key = why.key;
      if (key) out.failed.set(key, why);
      if (key && live.frontends.has(key)) continue;
      undone.add(id);
      for (const slot of live.backends.get(id)?.keys() ?? []) undo.removedSlots.push({ frontend_id: id, slot });
      for (const cidr of live.ranges.get(id) ?? []) undo.rangeDeletes.push({ frontendId: id, cidr });
      out.releasedIds.push(id);
    }
    out.writes -= done.backendWrites.filter(([k]) => undone.has(k.frontend_id)).length + done.rangeWrites.filter((r) => undone.has(r.frontendId)).length;
    failed = yield* this.ops(
      undo.removedSlots,
      (ks) => m.backends.deleteMany(ks),
      (k) => void m.backends.delete(k),
    );
    undo.removedSlots = undo.removedSlots.filter((_, i) => !failed.has(i));
    failed = yield* this.ops(undo.rangeDeletes, null, (r) => this.rangeOp(f, m, r.frontendId, r.cidr, false));
    undo.rangeDeletes = undo.rangeDeletes.filter((_, i) => !failed.has(i));
    applyFamilyToLive(f, live, undo);
  }

  /**
   * New frontends beyond the room the mirror says the frontend and backend maps have are
   * left out before anything is written (their ids released): an overflow of 60,000 costs
   * no syscall per entry. Room made or taken behind our back is found by the writes.
   */
  private deferWhatCannotFit(f: IpFamily, m: FamilyMaps, part: FamilyPlan, out: ApplyOutcome): FamilyPlan {
    const live = this.live[f];
    let frontendRoom = capacity(m.frontends) - live.frontends.size + part.frontendDeletes.length;
    let slotRoom = capacity(m.backends) - slotCount(live) + part.removedSlots.length;
    if (frontendRoom >= part.frontendWrites.length && slotRoom >= part.backendWrites.length) return part;
    const newSlots = new Map<number, number>();
    for (const [k] of part.backendWrites)
      if (!live.backends.get(k.frontend_id)?.has(k.slot)) newSlots.set(k.frontend_id, (newSlots.get(k.frontend_id) ?? 0) + 1);
    // slots of frontends already in the maps are written first (they keep serving)
    for (const [k, v] of part.frontendWrites) if (live.frontends.has(frontendKeyString(f, k))) slotRoom -= newSlots.get(v.id) ?? 0;
    const deferred = new Set<number>();
    for (const [k, v] of part.frontendWrites) {
      const key = frontendKeyString(f, k);
      if (live.frontends.has(key)) continue;
      const slots = newSlots.get(v.id) ?? 0;
      if (frontendRoom >= 1 && slotRoom >= slots) {
        frontendRoom--;
        slotRoom -= slots;
        continue;
      }
      deferred.add(v.id);
      out.releasedIds.push(v.id);
      out.failed.set(key, this.unprogrammedOf(key, frontendRoom < 1 ? m.frontends : m.backends, 'E2BIG'));
    }
    if (deferred.size === 0) return part;
    return {
      ...part,
      backendWrites: part.backendWrites.filter(([k]) => !deferred.has(k.frontend_id)),
      frontendWrites: part.frontendWrites.filter(([, v]) => !deferred.has(v.id)),
      rangeWrites: part.rangeWrites.filter((r) => !deferred.has(r.frontendId)),
    };
  }

  private unprogrammedOf(key: string | undefined, map: { map?: { name: string } } | undefined, code: string): Unprogrammed & { key?: string } {
    const d = key === undefined ? undefined : this.desired.get(key);
    return {
      ...(key !== undefined && { key }),
      service: d?.serviceKey ?? '',
      map: (map as TypedMap<unknown, unknown> | undefined)?.map?.name ?? '',
      reason: code === 'E2BIG' || code === 'ENOSPC' ? 'map_full' : 'write_failed',
    };
  }

  /** One line for a sync's failures: the services, not one line per entry. */
  private logUnprogrammed(failed: ReadonlyMap<string, Unprogrammed>): void {
    const byService = new Map<string, Unprogrammed>();
    for (const u of failed.values()) if (!byService.has(u.service)) byService.set(u.service, u);
    const names = [...byService.keys()].sort();
    const maps = [...new Set([...failed.values()].map((u) => `${u.map}:${u.reason}`))].sort().join(',');
    this.log.warn('services not programmed', {
      services: names.length,
      entries: failed.size,
      maps,
      names:
        names.slice(0, UNPROGRAMMED_NAMES_LOGGED).join(',') +
        (names.length > UNPROGRAMMED_NAMES_LOGGED ? `,+${names.length - UNPROGRAMMED_NAMES_LOGGED} more` : ''),
      retry: 'when a sync frees room',
    });
  }

  private rangeOp(family: IpFamily, m: FamilyMaps, frontendId: number, cidr: string, add: boolean): void {
    const key = sourceRangeKey(frontendId, cidr, family);
    if (!m.sourceRanges || !key) throw new Error(`no weir_lb_src${family} entry for ${cidr}`);
    if (add) m.sourceRanges.set(key, 1);
    else m.sourceRanges.delete(key);
  }

  /**
   * Map operations in chunks of APPLY_CHUNK: one batch op each, entry by entry when it fails
   * (a full map, a bad entry), yielding between chunks. Returns the errno name of each item
   * that failed, by index (nothing logged here: the caller says which services are affected).
   * `isNew` and `room`: once a new entry was refused as E2BIG (or the room is used up), the
   * rest of the new entries are refused without a syscall each.
   */
  private *ops<T>(
    items: readonly T[],
    many: ((items: T[]) => unknown) | null,
    one: (item: T) => void,
    isNew?: (item: T) => boolean,
    room = Infinity,
  ): Generator<void, Map<number, string>> {
    const failed = new Map<number, string>();
    let full = false;
    for (let start = 0; start < items.length; start += APPLY_CHUNK) {
      if (start > 0) yield;
      const chunk = items.slice(start, start + APPLY_CHUNK);
      if (many && !full && (!isNew || room >= chunk.length)) {
        try {
          many(chunk);
          if (isNew) for (const it of chunk) if (isNew(it)) room--;
          continue;
        } catch (e) {
          this.log.debug('batch failed, retrying entry by entry', { entries: chunk.length, error: errText(e) });
        }
      }
      chunk.forEach((it, j) => {
        const fresh = isNew?.(it) ?? false;
        if (fresh && full) {
          failed.set(start + j, 'E2BIG');
          return;
        }
        try {
          one(it);
          if (fresh) room--;
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          const c = typeof code === 'string' && code ? code : 'unknown';
          failed.set(start + j, c);
          if (fresh && c === 'E2BIG') full = true;
        }
      });
    }
    return failed;
  }
}

/** desired keys planned (and applied) per turn of the event loop in syncAsync */
const PLAN_CHUNK = 2048;
/** entries decoded per turn of the event loop in adoptAsync */
const ADOPT_CHUNK = 16_384;
/** map entries per batch syscall, and per turn of the event loop in syncAsync/resyncAsync */
export const APPLY_CHUNK = 4096;
/** services named in the `services not programmed` line (the rest counted) */
const UNPROGRAMMED_NAMES_LOGGED = 20;

export type UnprogrammedReason = 'map_full' | 'write_failed';

/** A frontend entry the maps could not take. */
export interface Unprogrammed {
  service: string;
  /** the map that refused it (weir_frontend4, weir_backend6, ...) */
  map: string;
  reason: UnprogrammedReason;
}

interface ApplyOutcome {
  /** map operations that succeeded */
  writes: number;
  /** keyString -> why it is not programmed */
  failed: Map<string, Unprogrammed>;
  /** ids free after this plan: of deleted frontends, and of new ones that were not written */
  releasedIds: number[];
}

/** max_entries of a map (a fake without a kernel map: unbounded). */
function capacity(m: TypedMap<unknown, unknown> | { map?: unknown }): number {
  return (m as { map?: { maxEntries?: number } }).map?.maxEntries ?? Infinity;
}

function mapName(m: TypedMap<unknown, unknown> | { map?: unknown }): string {
  return (m as { map?: { name?: string } }).map?.name ?? '';
}

/** Two chunks' results as one sync's. */
function sumResults(a: SyncResult, b: SyncResult): SyncResult {
  return {
    writes: a.writes + b.writes,
    frontends: b.frontends,
    removedBackends: a.removedBackends + b.removedBackends,
    errors: a.errors + b.errors,
    unprogrammed: b.unprogrammed,
    ms: Math.round((a.ms + b.ms) * 100) / 100,
  };
}

function slotCount(live: FamilyLive): number {
  let n = 0;
  for (const s of live.backends.values()) n += s.size;
  return n;
}

function drain<R>(g: Generator<void, R>): R {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

async function drainAsync<R>(g: Generator<void, R>): Promise<R> {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** One family's maps as a mirror, each map from one batch dump, yielding every ADOPT_CHUNK entries. */
function* dumpFamily(family: IpFamily, maps: FamilyMaps): Generator<void, FamilyLive> {
  const live = emptyFamilyLive();
  yield* eachEntry(maps.frontends, (key, value) => void live.frontends.set(frontendKeyString(family, key), { key, value }));
  // grouped into arrays first, then one Map per frontend built slot by slot: the dump comes
  // in hash order, and growing 60,000 Maps at random costs twice as much
  const bySlot = new Map<number, BackendValue[]>();
  yield* eachEntry(maps.backends, (key, value) => {
    let a = bySlot.get(key.frontend_id);
    if (!a) bySlot.set(key.frontend_id, (a = []));
    a[key.slot] = value;
  });
  for (const [id, a] of bySlot) {
    const m = new Map<number, BackendValue>();
    a.forEach((v, slot) => void m.set(slot, v));
    live.backends.set(id, m);
  }
  // an LPM trie has no batch lookup: key by key (a few entries per LoadBalancer frontend)
  for (const [key] of maps.sourceRanges?.entries() ?? []) {
    let m = live.ranges.get(key.frontend_id);
    if (!m) live.ranges.set(key.frontend_id, (m = new Set()));
    m.add(`${key.address}/${key.prefixlen - 32}`);
  }
  return live;
}

function* eachEntry<K, V>(m: TypedMap<K, V>, f: (key: K, value: V) => void): Generator<void> {
  const d = m.dumpPacked();
  if (!d) {
    for (const [k, v] of m.entries()) f(k, v);
    return;
  }
  for (let i = 0; i < d.count; i++) {
    if (i > 0 && i % ADOPT_CHUNK === 0) yield;
    f(d.key(i), d.value(i));
  }
}

/** An allocator holding every id the maps of either family use. */
function idsOf(live: LiveState): IdAllocator {
  const ids = new IdAllocator();
  for (const f of FAMILIES) for (const { value } of live[f].frontends.values()) ids.adopt(value.id);
  return ids;
}
