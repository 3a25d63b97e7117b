// src/bpf: TypedMap, a BpfMap seen through key and value codecs: the view the reconciler,
// metrics and CLI use. Per-CPU maps read per CPU (getPerCpu) or summed (sumPerCpu).
// It sits above map.ts (a map knows nothing of codecs): typedMap(map, keyCodec, valueCodec).

import type { Codec } from './codec.js';
import { bpfError } from './errors.js';
import { noBatchLookup, type BpfMap, type UpdateFlags } from './map.js';

/** A typed view of `map`; throws EINVAL when the codecs' sizes are not the map's. */
export function typedMap<K, V>(map: BpfMap, keyCodec: Codec<K>, valueCodec: Codec<V>): TypedMap<K, V> {
  return new TypedMap(map, keyCodec, valueCodec);
}

/** A batch dump: entry i's key and value decoded when asked for. */
export interface PackedEntries<K, V> {
  count: number;
  key(i: number): K;
  value(i: number): V;
}

export class TypedMap<K, V> {
  constructor(
    readonly map: BpfMap,
    readonly keyCodec: Codec<K>,
    readonly valueCodec: Codec<V>,
  ) {
    if (keyCodec.size !== map.keySize || valueCodec.size !== map.valueSize)
      throw bpfError(
        'EINVAL',
        22,
        `type map ${map.name}`,
        `codecs are ${keyCodec.size}/${valueCodec.size} bytes, map key/value are ${map.keySize}/${map.valueSize}`,
      );
  }

  private notPerCpu(op: string): void {
    if (this.map.perCpu) throw bpfError('EINVAL', 22, `${op} ${this.map.name}`, 'per-CPU map: use getPerCpu/sumPerCpu/setPerCpu');
  }

  get(key: K): V | undefined {
    this.notPerCpu('get from');
    const v = this.map.lookup(this.keyCodec.encode(key));
    return v && this.valueCodec.decode(v);
  }

  /** Per-CPU maps write the value on every CPU. */
  set(key: K, value: V, flags: UpdateFlags = 'any'): void {
    const v = this.valueCodec.encode(value);
    if (this.map.perCpu) this.map.updatePerCpu(this.keyCodec.encode(key), Array(this.cpus()).fill(v), flags);
    else this.map.update(this.keyCodec.encode(key), v, flags);
  }

  delete(key: K): boolean {
    return this.map.delete(this.keyCodec.encode(key));
  }

  *keys(): Generator<K> {
    for (const k of this.map.keys()) yield this.keyCodec.decode(k);
  }

  *entries(): Generator<[K, V]> {
    this.notPerCpu('read entries of');
    for (const [k, v] of this.map.entries()) yield [this.keyCodec.decode(k), this.valueCodec.decode(v)];
  }

  /** entries() in chunks of about `size` (BpfMap.chunks): a walk that holds one chunk at a time.
   *  `keep` looks at the raw bytes first: what it refuses is walked but never decoded. */
  *chunks(size = 4096, keep?: (key: Buffer, value: Buffer) => boolean): Generator<{ entries: Array<[K, V]>; walked: number }> {
    this.notPerCpu('read entries of');
    for (const c of this.map.chunks(size)) {
      const entries: Array<[K, V]> = [];
      for (const [k, v] of c) if (!keep || keep(k, v)) entries.push([this.keyCodec.decode(k), this.valueCodec.decode(v)]);
      yield { entries, walked: c.length };
    }
  }

  /**
   * The whole map in one batch dump, decoded entry by entry on demand (no Buffer per entry:
   * what adopting 600,000 backends at start needs); null where the map has no batch lookup.
   */
  dumpPacked(): PackedEntries<K, V> | null {
    this.notPerCpu('read entries of');
    let dump: { keys: Buffer; values: Buffer; count: number };
    try {
      dump = this.map.lookupBatchPacked();
    } catch (e) {
      if (noBatchLookup(e)) return null;
      throw e;
    }
    const ks = this.keyCodec.size;
    const vs = dump.count ? dump.values.length / dump.count : 0;
    return {
      count: dump.count,
      key: (i) => this.keyCodec.decodeAt(dump.keys, i * ks),
      value: (i) => this.valueCodec.decodeAt(dump.values, i * vs),
    };
  }

  /** Per-CPU maps: every entry with one value per CPU. */
  *entriesPerCpu(): Generator<[K, V[]]> {
    for (const [k, v] of this.map.entries()) yield [this.keyCodec.decode(k), this.map.splitPerCpu(v).map((b) => this.valueCodec.decode(b))];
  }

  /** Writes entries in one batch; returns how many were written. */
  setMany(entries: Iterable<readonly [K, V]>, flags: UpdateFlags = 'any'): number {
    if (this.map.perCpu) {
      const keys: Buffer[] = [];
      const values: Buffer[] = [];
      for (const [k, v] of entries) {
        keys.push(this.keyCodec.encode(k));
        values.push(this.map.joinPerCpu(Array(this.cpus()).fill(this.valueCodec.encode(v))));
      }
      return this.map.updateBatch(keys, values, flags);
    }
    // encoded straight into two buffers: no Buffer per entry (110,000 entries at 10k services)
    const list = Array.isArray(entries) ? (entries as ReadonlyArray<readonly [K, V]>) : [...entries];
    const ks = this.keyCodec.size;
    const vs = this.valueCodec.size;
    const keys = Buffer.alloc(list.length * ks);
    const values = Buffer.alloc(list.length * vs);
    list.forEach(([k, v], i) => {
      this.keyCodec.encodeInto(k, keys, i * ks);
      this.valueCodec.encodeInto(v, values, i * vs);
    });
    return this.map.updateBatchPacked(keys, values, list.length, flags);
  }

  /** Deletes keys in one batch; returns how many existed. */
  deleteMany(keys: Iterable<K>): number {
    return this.map.deleteBatch([...keys].map((k) => this.keyCodec.encode(k)));
  }

  count(): number {
    return this.map.count();
  }

  getPerCpu(key: K): V[] | undefined {
    return this.map.lookupPerCpu(this.keyCodec.encode(key))?.map((b) => this.valueCodec.decode(b));
  }

  setPerCpu(key: K, values: V[], flags: UpdateFlags = 'any'): void {
    this.map.updatePerCpu(
      this.keyCodec.encode(key),
      values.map((v) => this.valueCodec.encode(v)),
      flags,
    );
  }

  /** The per-CPU values added up, field by field (numbers and bigints; others from CPU 0). */
  sumPerCpu(key: K): V | undefined {
    const all = this.getPerCpu(key);
    return all && all.reduce((a, b) => sum(a, b) as V);
  }

  private cpus(): number {
    return this.map.cpuCount();
  }
}

function sum(a: unknown, b: unknown): unknown {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a + b;
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a && b && typeof a === 'object' && !Buffer.isBuffer(a) && !Array.isArray(a)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(a)) out[k] = sum(v, (b as Record<string, unknown>)[k]);
    return out;
  }
  return a;
}
