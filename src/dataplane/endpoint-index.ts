// dataplane/endpoint-index: every EndpointSlice's endpoint addresses by address and by node,
// kept up to date slice by slice (node-map-sync.ts feeds it store changes), so the node maps'
// planner (node-maps.ts) reads only the endpoints of other nodes and a slice change costs that
// slice's endpoints, not a walk of the cluster's.

import type { IpFamily } from '../bpf/ip.js';
import type { EndpointLocation } from './node-maps.js';

/** The family of a canonical address text (sliceLocations gives only valid ones). */
export const addressFamily = (address: string): IpFamily => (address.includes(':') ? 6 : 4);

/**
 * Where each endpoint address runs: a pod is in as many slices as services select it, so each
 * address counts the slices per nodeName; it is placed on the first non-empty name in string
 * order (a slice without nodeName does not contradict one with it), '' when no slice names one.
 * Addresses with two names are kept in `conflicts`; the addresses whose placement changed
 * gather in a dirty set the planner takes.
 */
export class EndpointIndex {
  /** slice key -> its locations */
  private readonly slices = new Map<string, readonly EndpointLocation[]>();
  /** address -> nodeName -> how many slice entries say so */
  private readonly names = new Map<string, Map<string, number>>();
  /** address -> the node it is placed on */
  private readonly placed = new Map<string, string>();
  /** per family: node name -> the addresses placed on it */
  private readonly byNode: Record<IpFamily, Map<string, Set<string>>> = { 4: new Map(), 6: new Map() };
  /** addresses two slices place on different (non-empty) nodes */
  readonly conflicts = new Set<string>();
  private dirty = new Set<string>();

  /** One index of a list of locations (the planner's pure form; the key is only their order). */
  static of(locations: Iterable<EndpointLocation>): EndpointIndex {
    const index = new EndpointIndex();
    index.setSlice('', [...locations]);
    index.dirty.clear();
    return index;
  }

  /** A slice's locations now ([] when it is gone). True when some address is placed differently. */
  setSlice(key: string, now: readonly EndpointLocation[]): boolean {
    const before = this.slices.get(key) ?? [];
    if (sameLocations(before, now)) return false;
    if (now.length === 0) this.slices.delete(key);
    else this.slices.set(key, now);
    const touched = new Set<string>();
    for (const l of before) {
      const names = this.names.get(l.address);
      const n = names?.get(l.nodeName);
      if (!names || n === undefined) continue;
      if (n > 1) names.set(l.nodeName, n - 1);
      else names.delete(l.nodeName);
      touched.add(l.address);
    }
    for (const l of now) {
      let names = this.names.get(l.address);
      if (!names) this.names.set(l.address, (names = new Map()));
      names.set(l.nodeName, (names.get(l.nodeName) ?? 0) + 1);
      touched.add(l.address);
    }
    let changed = false;
    for (const address of touched) if (this.place(address)) changed = true;
    return changed;
  }

  /** The node an address is placed on ('' for none named), undefined when no slice has it. */
  placedOn(address: string): string | undefined {
    return this.placed.get(address);
  }

  /** The distinct non-empty node names the slices give an address, sorted. */
  namesOf(address: string): string[] {
    return [...(this.names.get(address)?.keys() ?? [])].filter((n) => n !== '').sort(cmp);
  }

  /** node name -> the addresses of `family` placed on it ('' for those no slice names a node of). */
  nodes(family: IpFamily): ReadonlyMap<string, ReadonlySet<string>> {
    return this.byNode[family];
  }

  /** The addresses placed differently since the last call. */
  takeDirty(): Set<string> {
    const d = this.dirty;
    this.dirty = new Set();
    return d;
  }

  get size(): number {
    return this.placed.size;
  }

  private place(address: string): boolean {
    const names = this.names.get(address);
    let now: string | undefined;
    let named = 0;
    if (names && names.size > 0) {
      now = '';
      for (const n of names.keys())
        if (n !== '') {
          named++;
          if (now === '' || n < now) now = n;
        }
    } else this.names.delete(address);
    // a conflict that appears or goes is a change too (the planner says it), with nothing to write
    const conflicted = this.conflicts.has(address);
    if (named > 1) this.conflicts.add(address);
    else this.conflicts.delete(address);
    const was = this.placed.get(address);
    if (was === now) return conflicted !== named > 1;
    const byNode = this.byNode[addressFamily(address)];
    if (was !== undefined) {
      const set = byNode.get(was)!;
      set.delete(address);
      if (set.size === 0) byNode.delete(was);
      this.placed.delete(address);
    }
    if (now !== undefined) {
      let set = byNode.get(now);
      if (!set) byNode.set(now, (set = new Set()));
      set.add(address);
      this.placed.set(address, now);
    }
    this.dirty.add(address);
    return true;
  }
}

function sameLocations(a: readonly EndpointLocation[], b: readonly EndpointLocation[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.address !== b[i]!.address || a[i]!.nodeName !== b[i]!.nodeName) return false;
  return true;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
