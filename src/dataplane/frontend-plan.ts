// dataplane/frontend-plan: the plan stage. Desired entries (frontend-entries.ts) against what
// the maps hold -> the least writes, per address family, in the order a reader of the maps
// may see them; and the endpoints that left, for backend-cleanup.ts. One planner for both
// families: the family is a value on each entry, and each family's part of the plan goes to
// that family's maps (reconcile.ts). Pure: no kernel, no clock.

import type { IpFamily } from '../bpf/ip.js';
import {
  backendIdentity,
  frontendKeyString,
  type BackendKey,
  type BackendValue,
  type DesiredFrontend,
  type FrontendKey,
  type FrontendValue,
} from './frontend-entries.js';
import type { IdAllocator } from './frontend-ids.js';

export const FAMILIES: readonly IpFamily[] = [4, 6];

/** What one family's maps hold (a dump, or the reconciler's mirror of its own writes). */
export interface FamilyLive {
  /** keyString -> entry */
  frontends: Map<string, { key: FrontendKey; value: FrontendValue }>;
  /** frontend id -> slot -> backend */
  backends: Map<number, Map<number, BackendValue>>;
  /** frontend id -> its loadBalancerSourceRanges prefixes in weir_lb_src4/6 (`198.18.0.0/24`) */
  ranges: Map<number, Set<string>>;
}

export type LiveState = Record<IpFamily, FamilyLive>;

export function emptyFamilyLive(): FamilyLive {
  return { frontends: new Map(), backends: new Map(), ranges: new Map() };
}

export function emptyLive(): LiveState {
  return { 4: emptyFamilyLive(), 6: emptyFamilyLive() };
}

export interface RemovedBackend {
  family: IpFamily;
  frontendId: number;
  address: string;
  port: number;
  protocol: number;
}

/**
 * One family's writes that turn live into desired, in the order they must be applied so
 * that a reader never sees a frontend whose slots 0..count-1 are not all there:
 *   1. frontendDeletes   (removed frontends go before their slots)
 *   2. removedSlots      (the slots of removed frontends, and orphans: no frontend entry
 *                         reads them any more, so they go before any write, making room
 *                         in a full backend map for the writes that follow)
 *   3. backendWrites     (new and replaced slots, below the new count)
 *   4. frontendWrites    (new counts: a grown count after its slots, a shrunk count
 *                         while the slots above it still exist)
 *   5. backendDeletes    (slots at or above a frontend's new count)
 * Source-range prefixes (weir_lb_src4/6) are added with the backend writes, before the
 * frontend entry that flags them, and removed with the backend deletes, after it.
 * Shrinking writes the replacement slots before the count (rather than count first), so
 * a removed backend is never picked after its slot was overwritten: the only transient
 * is a moved backend present in two slots.
 */
export interface FamilyPlan {
  frontendDeletes: FrontendKey[];
  /** slots of removed frontends and orphan slots (applied right after frontendDeletes) */
  removedSlots: BackendKey[];
  backendWrites: Array<[BackendKey, BackendValue]>;
  frontendWrites: Array<[FrontendKey, FrontendValue]>;
  backendDeletes: BackendKey[];
  /** weir_lb_src4/6 prefixes to add (applied with backendWrites) */
  rangeWrites: SourceRange[];
  /** weir_lb_src4/6 prefixes to remove (applied with backendDeletes) */
  rangeDeletes: SourceRange[];
}

/** One weir_lb_src4/6 entry: a frontend id and a canonical CIDR of its family. */
export interface SourceRange {
  frontendId: number;
  cidr: string;
}

/** Each family's writes, and what the frontend ids and the clean-up need to know. */
export interface Plan extends Record<IpFamily, FamilyPlan> {
  /** ids of deleted frontends, to release after the plan is applied */
  releasedIds: number[];
  /** endpoints that left a frontend: their affinity, UDP conntrack and sockets go (backend-cleanup.ts) */
  removedBackends: RemovedBackend[];
}

export function emptyFamilyPlan(): FamilyPlan {
  return { frontendDeletes: [], removedSlots: [], backendWrites: [], frontendWrites: [], backendDeletes: [], rangeWrites: [], rangeDeletes: [] };
}

export function familyPlanSize(p: FamilyPlan): number {
  return (
    p.frontendDeletes.length +
    p.removedSlots.length +
    p.backendWrites.length +
    p.frontendWrites.length +
    p.backendDeletes.length +
    p.rangeWrites.length +
    p.rangeDeletes.length
  );
}

/** Map writes of every family. */
export function planSize(p: Plan): number {
  return FAMILIES.reduce((n, f) => n + familyPlanSize(p[f]), 0);
}

function sameBackend(a: BackendValue, b: BackendValue): boolean {
  return a.address === b.address && a.port === b.port && a.flags === b.flags;
}

/** Slot assignment that keeps every backend that stays where it is. */
export function assignSlots(live: ReadonlyMap<number, BackendValue> | undefined, desired: readonly BackendValue[]): BackendValue[] {
  const n = desired.length;
  const byId = new Map(desired.map((b) => [backendIdentity(b), b]));
  const result: (BackendValue | undefined)[] = new Array(n);
  const placed = new Set<string>();
  for (let i = 0; i < n; i++) {
    const cur = live?.get(i);
    if (!cur) continue;
    const id = backendIdentity(cur);
    const want = byId.get(id);
    if (want && !placed.has(id)) {
      result[i] = want;
      placed.add(id);
    }
  }
  const rest = desired.filter((b) => !placed.has(backendIdentity(b)));
  for (let i = 0, r = 0; i < n; i++) if (!result[i]) result[i] = rest[r++];
  return result as BackendValue[];
}

export interface PlanOptions {
  /** only these entry keys (keyString) are compared; default: every key in desired or live */
  scope?: Iterable<string>;
  /** the previous desired entries (for `known` sets of endpoints that left) */
  previous?: ReadonlyMap<string, DesiredFrontend>;
  /** resync: also delete backend slots whose frontend id no live or desired frontend uses */
  orphans?: boolean;
  /** ids to reuse for desired keys missing from live (resync: a frontend entry deleted
   *  behind our back gets its old id back, so its backend slots stay valid) */
  preferredIds?: ReadonlyMap<string, number>;
}

const bySlot = (a: number, b: number) => a - b;

/**
 * Diff desired against live and plan the least writes, each in its family's part.
 * Allocates ids for new frontends from the one allocator, so ids stay unique across families.
 */
export function planSync(desired: ReadonlyMap<string, DesiredFrontend>, live: LiveState, ids: IdAllocator, opts: PlanOptions = {}): Plan {
  const plan: Plan = { 4: emptyFamilyPlan(), 6: emptyFamilyPlan(), releasedIds: [], removedBackends: [] };
  const keys = opts.scope ? new Set(opts.scope) : new Set([...desired.keys(), ...FAMILIES.flatMap((f) => [...live[f].frontends.keys()])]);
  const liveIds: Record<IpFamily, Set<number>> = { 4: new Set(), 6: new Set() };
  // an id taken in either family is taken
  const taken = new Set<number>();
  for (const f of FAMILIES) for (const { value } of live[f].frontends.values()) taken.add(value.id);
  for (const ks of [...keys].sort()) {
    const want = desired.get(ks);
    // a key string names one family (IPv6 addresses are bracketed); a key only live is
    // deleted from the family that holds it
    const family = want?.family ?? FAMILIES.find((f) => live[f].frontends.has(ks));
    if (family === undefined) continue;
    const part = plan[family];
    const fl = live[family];
    const have = fl.frontends.get(ks);
    const liveSlots = have ? fl.backends.get(have.value.id) : undefined;
    if (have) liveIds[family].add(have.value.id);
    if (!want) {
      if (!have) continue;
      part.frontendDeletes.push(have.key);
      for (const slot of [...(liveSlots?.keys() ?? [])].sort(bySlot)) part.removedSlots.push({ frontend_id: have.value.id, slot });
      for (const cidr of [...(fl.ranges.get(have.value.id) ?? [])].sort()) part.rangeDeletes.push({ frontendId: have.value.id, cidr });
      plan.releasedIds.push(have.value.id);
      removed(plan, family, have.value.id, have.key.protocol, liveSlots, opts.previous?.get(ks)?.known, new Set());
      continue;
    }
    const preferred = opts.preferredIds?.get(ks);
    let id: number;
    if (have) id = have.value.id;
    else if (preferred !== undefined && !taken.has(preferred)) {
      id = preferred;
      ids.adopt(id);
    } else id = ids.allocate();
    taken.add(id);
    // a reused id (preferredIds) finds its slots still there
    const idSlots = have ? liveSlots : fl.backends.get(id);
    if (!have && idSlots) liveIds[family].add(id);
    const slots = assignSlots(idSlots, want.backends);
    slots.forEach((b, slot) => {
      const cur = idSlots?.get(slot);
      // b is shared with desired: never mutated
      if (!cur || !sameBackend(cur, b)) part.backendWrites.push([{ frontend_id: id, slot }, b.pad === 0 ? b : { ...b, pad: 0 }]);
    });
    const liveRanges = fl.ranges.get(id);
    const wantRanges = new Set(want.sourceRanges ?? []);
    for (const cidr of [...wantRanges].sort()) if (!liveRanges?.has(cidr)) part.rangeWrites.push({ frontendId: id, cidr });
    for (const cidr of [...(liveRanges ?? [])].sort()) if (!wantRanges.has(cidr)) part.rangeDeletes.push({ frontendId: id, cidr });
    const value: FrontendValue = { id, backend_count: slots.length, flags: want.flags, affinity_timeout: want.affinityTimeout, pad: 0 };
    const hv = have?.value;
    if (!hv || hv.backend_count !== value.backend_count || hv.flags !== value.flags || hv.affinity_timeout !== value.affinity_timeout || (hv.pad ?? 0) !== 0)
      part.frontendWrites.push([want.key, value]);
    for (const slot of [...(idSlots?.keys() ?? [])].sort(bySlot)) if (slot >= slots.length) part.backendDeletes.push({ frontend_id: id, slot });
    removed(plan, family, id, want.key.protocol, idSlots, opts.previous?.get(ks)?.known, want.known);
  }
  if (opts.orphans) {
    for (const f of FAMILIES) {
      const inUse = new Set<number>(liveIds[f]);
      for (const { value } of live[f].frontends.values()) inUse.add(value.id);
      for (const [, w] of plan[f].frontendWrites) inUse.add(w.id);
      for (const [id, slots] of live[f].backends) {
        if (inUse.has(id)) continue;
        for (const slot of [...slots.keys()].sort(bySlot)) plan[f].removedSlots.push({ frontend_id: id, slot });
      }
      for (const [id, cidrs] of live[f].ranges) {
        if (inUse.has(id)) continue;
        for (const cidr of [...cidrs].sort()) plan[f].rangeDeletes.push({ frontendId: id, cidr });
      }
    }
  }
  return plan;
}

function removed(
  plan: Plan,
  family: IpFamily,
  frontendId: number,
  protocol: number,
  liveSlots: ReadonlyMap<number, BackendValue> | undefined,
  previousKnown: ReadonlySet<string> | undefined,
  nowKnown: ReadonlySet<string>,
): void {
  const before = new Map<string, { address: string; port: number }>();
  for (const b of liveSlots?.values() ?? []) before.set(backendIdentity(b), b);
  for (const id of previousKnown ?? []) {
    const i = id.lastIndexOf(':');
    before.set(id, { address: id.slice(0, i), port: Number(id.slice(i + 1)) });
  }
  for (const [id, b] of [...before].sort()) {
    if (!nowKnown.has(id)) plan.removedBackends.push({ family, frontendId, address: b.address, port: b.port, protocol });
  }
}

/** Applies one family's part of a plan to that family's mirror. */
export function applyFamilyToLive(family: IpFamily, live: FamilyLive, plan: FamilyPlan): void {
  for (const k of plan.frontendDeletes) live.frontends.delete(frontendKeyString(family, k));
  for (const k of plan.removedSlots) deleteSlot(live, k);
  for (const [k, v] of plan.backendWrites) {
    let m = live.backends.get(k.frontend_id);
    if (!m) live.backends.set(k.frontend_id, (m = new Map()));
    m.set(k.slot, v);
  }
  for (const [k, v] of plan.frontendWrites) live.frontends.set(frontendKeyString(family, k), { key: k, value: v });
  for (const k of plan.backendDeletes) deleteSlot(live, k);
  for (const r of plan.rangeWrites) {
    let m = live.ranges.get(r.frontendId);
    if (!m) live.ranges.set(r.frontendId, (m = new Set()));
    m.add(r.cidr);
  }
  for (const r of plan.rangeDeletes) {
    const m = live.ranges.get(r.frontendId);
    m?.delete(r.cidr);
    if (m && m.size === 0) live.ranges.delete(r.frontendId);
  }
}

function deleteSlot(live: FamilyLive, k: BackendKey): void {
  const m = live.backends.get(k.frontend_id);
  m?.delete(k.slot);
  if (m && m.size === 0) live.backends.delete(k.frontend_id);
}

/** Applies a plan to a LiveState mirror (what the maps hold once every family's part is written). */
export function applyToLive(live: LiveState, plan: Plan): void {
  for (const f of FAMILIES) applyFamilyToLive(f, live[f], plan[f]);
}
