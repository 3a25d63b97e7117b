// In-memory stand-ins for the typed service maps (the TypedMap calls the reconciler and the
// backend clean-up make), keyed by JSON of the key, counting every write and delete.

import type { WeirAffinity4, WeirAffinity4Key, WeirCt4, WeirCt4Key, WeirLbSrc4Key } from '../../src/bpf/index.js';
import type { ServiceMaps } from '../../src/dataplane/loader.js';

export class FakeMap<K, V> {
  readonly data = new Map<string, [K, V]>();
  ops = 0;
  failOn?: (k: K) => boolean;
  *entries(): Generator<[K, V]> {
    yield* [...this.data.values()].map(([k, v]) => [k, v] as [K, V]);
  }
  /** no batch dump: callers take entries() */
  dumpPacked(): null {
    return null;
  }
  *keys(): Generator<K> {
    for (const [k] of this.data.values()) yield k;
  }
  /** TypedMap.chunks: the entries `size` at a time, read lazily (entries deleted meanwhile are not seen). */
  *chunks(size = 4096): Generator<{ entries: Array<[K, V]>; walked: number }> {
    const keys = [...this.data.keys()];
    for (let i = 0; i < keys.length; i += size) {
      const c = keys.slice(i, i + size).flatMap((s) => (this.data.has(s) ? [this.data.get(s)!] : []));
      if (c.length) yield { entries: c.map(([k, v]) => [k, v] as [K, V]), walked: c.length };
    }
  }
  get(k: K): V | undefined {
    return this.data.get(JSON.stringify(k))?.[1];
  }
  set(k: K, v: V): void {
    if (this.failOn?.(k)) throw new Error('E2BIG: map full');
    this.ops++;
    this.data.set(JSON.stringify(k), [k, v]);
  }
  delete(k: K): boolean {
    this.ops++;
    return this.data.delete(JSON.stringify(k));
  }
  setMany(es: Iterable<readonly [K, V]>): number {
    const list = [...es];
    if (this.failOn && list.some(([k]) => this.failOn!(k))) throw new Error('E2BIG: batch failed');
    for (const [k, v] of list) this.set(k, v);
    return list.length;
  }
  deleteMany(ks: Iterable<K>): number {
    return [...ks].filter((k) => this.delete(k)).length;
  }
}

/** One family's service maps, in memory (the *4 and *6 maps have one shape each). */
function familyFakes() {
  return {
    frontends: new FakeMap(),
    backends: new FakeMap(),
    affinity: new FakeMap<WeirAffinity4Key, WeirAffinity4>(),
    conntrack: new FakeMap<WeirCt4Key, WeirCt4>(),
    sockDestroy: new FakeMap(),
    sourceRanges: new FakeMap<WeirLbSrc4Key, number>(),
  };
}

/** The IPv4 maps only (objects of a release before the IPv6 maps). */
export function fakeMaps() {
  const m = familyFakes();
  return { fake: m, maps: m as unknown as ServiceMaps };
}

/** Both families: `fake` the IPv4 maps, `fake6` the IPv6 ones (maps.ipv6). */
export function fakeDualStackMaps() {
  const m = familyFakes();
  const v6 = familyFakes();
  return { fake: m, fake6: v6, maps: { ...m, ipv6: v6 } as unknown as ServiceMaps };
}
