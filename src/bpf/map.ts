// src/bpf: BpfMap, one BPF map as raw bytes: element ops, iteration, batch ops for bulk
// sync, per-CPU values, pinning. typedMap() (typed-map.ts) puts codecs on top. Sizes are
// checked by the addon against the map's own info before any syscall.

import { Btf, type TypeLayout } from './btf.js';
import { bpfError, BpfError, native } from './errors.js';
import { addon, type RawMap, type RawMapInfo } from './native.js';

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST, by name or number. */
export type UpdateFlags = 'any' | 'noexist' | 'exist' | number;

const FLAG_VALUES = { any: 0, noexist: 1, exist: 2 } as const;
function flagValue(f: UpdateFlags): number {
  return typeof f === 'number' ? f : FLAG_VALUES[f];
}

export type MapInfo = RawMapInfo;

const NO_BATCH = new Set(['ENOTSUPP', 'EOPNOTSUPP']);

/** A batch lookup refused because the map type has none (LPM tries; older kernels answer
 *  EINVAL): the caller walks key by key instead. */
export function noBatchLookup(e: unknown): boolean {
  return e instanceof BpfError && (NO_BATCH.has(e.code) || e.code === 'EINVAL');
}
let possibleCpus: number | undefined;

export class BpfMap {
  private cached: MapInfo | undefined;
  private pinnedAt: string | undefined;

  /** @internal use BpfObject.map(), BpfMap.openPinned() or BpfMap.fromId() */
  constructor(
    readonly raw: RawMap,
    private readonly btfSource?: () => Btf,
  ) {}

  static openPinned(path: string): BpfMap {
    const m = new BpfMap(native(() => addon.Map.openPinned(path)));
    m.pinnedAt = path;
    return m;
  }

  static fromId(id: number): BpfMap {
    return new BpfMap(native(() => addon.Map.fromId(id)));
  }

  /** A new map outside any object (bpf_map_create); typeId is enum bpf_map_type. */
  static create(spec: { typeId: number; keySize: number; valueSize: number; maxEntries: number; flags?: number; name: string }): BpfMap {
    return new BpfMap(native(() => addon.Map.create(spec.typeId, spec.keySize, spec.valueSize, spec.maxEntries, spec.flags ?? 0, spec.name)));
  }

  /** libbpf_num_possible_cpus(): how many values a per-CPU map holds per key. */
  static possibleCpus(): number {
    return (possibleCpus ??= native(() => addon.numPossibleCpus()));
  }

  /** Values per key: possible CPUs for a per-CPU map, else 1. */
  cpuCount(): number {
    return this.perCpu ? BpfMap.possibleCpus() : 1;
  }

  /** Kernel info, read once (it does not change for the map's life). */
  info(): MapInfo {
    return (this.cached ??= native(() => this.raw.info()));
  }
  get name(): string {
    return this.info().name;
  }
  /** 'hash', 'array', 'percpu_array', 'lru_hash', 'lpm_trie', ... */
  get type(): string {
    return this.info().type;
  }
  get keySize(): number {
    return this.info().keySize;
  }
  get valueSize(): number {
    return this.info().valueSize;
  }
  get maxEntries(): number {
    return this.info().maxEntries;
  }
  get flags(): number {
    return this.info().flags;
  }
  get id(): number {
    return this.info().id;
  }
  get perCpu(): boolean {
    return this.info().perCpu;
  }
  get fd(): number {
    return native(() => this.raw.fd);
  }

  /** The value bytes, or undefined. Per-CPU maps: all CPUs' values, 8-byte aligned each. */
  lookup(key: Buffer): Buffer | undefined {
    return native(() => this.raw.lookup(key)) ?? undefined;
  }

  update(key: Buffer, value: Buffer, flags: UpdateFlags = 'any'): void {
    native(() => this.raw.update(key, value, flagValue(flags)));
  }

  /** True when the key existed. */
  delete(key: Buffer): boolean {
    return native(() => this.raw.delete(key));
  }

  /** Keys by BPF_MAP_GET_NEXT_KEY, one syscall each. A key deleted meanwhile may restart a hash walk. */
  *keys(): Generator<Buffer> {
    let k = native(() => this.raw.nextKey(null));
    while (k) {
      yield k;
      const prev: Buffer = k;
      k = native(() => this.raw.nextKey(prev));
    }
  }

  /** Every entry: one batch dump where the map type supports it, else key by key. */
  *entries(): Generator<[Buffer, Buffer]> {
    let dump: Array<[Buffer, Buffer]> | undefined;
    try {
      dump = this.lookupBatch();
    } catch (e) {
      if (!noBatchLookup(e)) throw e;
    }
    if (dump) return yield* dump;
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) yield [k, v];
    }
  }

  /** The whole map through BPF_MAP_LOOKUP_BATCH (throws ENOTSUPP for LPM tries and others). */
  lookupBatch(chunk = 4096): Array<[Buffer, Buffer]> {
    const r = this.lookupBatchPacked(chunk);
    const ks = this.keySize;
    const vs = r.count ? r.values.length / r.count : 0;
    const out: Array<[Buffer, Buffer]> = [];
    for (let i = 0; i < r.count; i++) out.push([r.keys.subarray(i * ks, (i + 1) * ks), r.values.subarray(i * vs, (i + 1) * vs)]);
    return out;
  }

  /**
   * The map in chunks of about `size` entries (more when one hash bucket holds more), one
   * BPF_MAP_LOOKUP_BATCH step each, so a walk of any map holds one chunk at a time; the caller
   * may delete entries between chunks (and yield to the event loop: the walk resumes from a
   * bucket index). Maps without batch ops (LPM tries) are walked key by key in chunks of the
   * same size; a key deleted under that walk may restart it (BPF_MAP_GET_NEXT_KEY).
   */
  *chunks(size = 4096): Generator<Array<[Buffer, Buffer]>> {
    let token: Buffer | null = null;
    let first = true;
    const ks = this.keySize;
    while (first || token) {
      let r: ReturnType<RawMap['lookupBatchChunk']>;
      try {
        r = native(() => this.raw.lookupBatchChunk(token, size, true));
      } catch (e) {
        if (first && noBatchLookup(e)) return yield* this.keyChunks(size);
        throw e;
      }
      first = false;
      token = r.token;
      const vs = r.count ? r.values!.length / r.count : 0;
      const out: Array<[Buffer, Buffer]> = [];
      for (let i = 0; i < r.count; i++) out.push([r.keys!.subarray(i * ks, (i + 1) * ks), r.values!.subarray(i * vs, (i + 1) * vs)]);
      if (out.length) yield out;
    }
  }

  /** Entries counted in steps of about `size` (nothing copied out of the addon), for a
   *  caller that yields between steps; each step returns the running total. Arrays: max_entries. */
  *countSteps(size = 16384): Generator<number, number> {
    if (this.type.includes('array')) return this.maxEntries;
    if (this.type === 'ringbuf') return 0;
    let token: Buffer | null = null;
    let first = true;
    let n = 0;
    while (first || token) {
      let r: ReturnType<RawMap['lookupBatchChunk']>;
      try {
        r = native(() => this.raw.lookupBatchChunk(token, size, false));
      } catch (e) {
        if (!(first && noBatchLookup(e))) throw e;
        for (const chunk of this.keyChunks(size, false)) yield (n += chunk.length);
        return n;
      }
      first = false;
      token = r.token;
      yield (n += r.count);
    }
    return n;
  }

  /** keys() in chunks of `size`, with their values (withValues) or without. */
  private *keyChunks(size: number, withValues = true): Generator<Array<[Buffer, Buffer]>> {
    let out: Array<[Buffer, Buffer]> = [];
    const none = Buffer.alloc(0);
    for (const k of this.keys()) {
      const v = withValues ? this.lookup(k) : none;
      if (v) out.push([k, v]);
      if (out.length >= size) {
        yield out;
        out = [];
      }
    }
    if (out.length) yield out;
  }

  /** lookupBatch as the kernel gives it: `count` keys and values laid end to end in two
   *  buffers (a dump of 600,000 entries without a Buffer per entry). */
  lookupBatchPacked(chunk = 4096): { keys: Buffer; values: Buffer; count: number } {
    return native(() => this.raw.lookupBatch(chunk));
  }

  /** Writes many entries in one syscall (element ops where the map has no batch op). */
  updateBatch(keys: Buffer[], values: Buffer[], flags: UpdateFlags = 'any'): number {
    if (keys.length !== values.length) throw bpfError('EINVAL', 22, `batch update ${this.name}`, `${keys.length} keys but ${values.length} values`);
    if (!keys.length) return 0;
    return this.updateBatchPacked(Buffer.concat(keys), Buffer.concat(values), keys.length, flags);
  }

  /** updateBatch on `count` keys and values laid end to end in two buffers. */
  updateBatchPacked(keys: Buffer, values: Buffer, count: number, flags: UpdateFlags = 'any'): number {
    if (!count) return 0;
    const ks = keys.length / count;
    const vs = values.length / count;
    if (!Number.isInteger(ks) || !Number.isInteger(vs))
      throw bpfError(
        'EINVAL',
        22,
        `batch update ${this.name}`,
        `${keys.length} key bytes and ${values.length} value bytes do not divide into ${count} entries`,
      );
    try {
      return native(() => this.raw.updateBatch(keys, values, count, flagValue(flags)));
    } catch (e) {
      if (!(e instanceof BpfError) || !NO_BATCH.has(e.code)) throw e;
    }
    for (let i = 0; i < count; i++) this.update(keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs), flags);
    return count;
  }

  /** Deletes many keys in one syscall; returns how many existed. Missing keys are skipped. */
  deleteBatch(keys: Buffer[]): number {
    if (!keys.length) return 0;
    try {
      return native(() => this.raw.deleteBatch(Buffer.concat(keys), keys.length));
    } catch (e) {
      if (!(e instanceof BpfError) || !NO_BATCH.has(e.code)) throw e;
    }
    return keys.filter((k) => this.delete(k)).length;
  }

  /** Entries in the map: max_entries for arrays, else a native key walk (O(n) syscalls); 0 for
   *  a ring buffer, which has no keys (its records are consumed: RingBuffer, ringbuf.ts). */
  count(): number {
    if (this.type === 'ringbuf') return 0;
    return native(() => this.raw.count());
  }

  /** Per-CPU maps: one value per possible CPU, or undefined. */
  lookupPerCpu(key: Buffer): Buffer[] | undefined {
    const all = this.lookup(key);
    return all && this.splitPerCpu(all);
  }

  /** Per-CPU maps: writes one value per possible CPU. */
  updatePerCpu(key: Buffer, values: Buffer[], flags: UpdateFlags = 'any'): void {
    this.update(key, this.joinPerCpu(values), flags);
  }

  /** @internal a per-CPU value buffer as one Buffer per CPU */
  splitPerCpu(all: Buffer): Buffer[] {
    const stride = (this.valueSize + 7) & ~7;
    return Array.from({ length: all.length / stride }, (_, i) => all.subarray(i * stride, i * stride + this.valueSize));
  }

  /** @internal one Buffer per CPU as the per-CPU buffer the kernel wants */
  joinPerCpu(values: Buffer[]): Buffer {
    const ncpu = BpfMap.possibleCpus();
    const stride = (this.valueSize + 7) & ~7;
    if (values.length !== ncpu) throw bpfError('EINVAL', 22, `update ${this.name}`, `${values.length} per-CPU values for ${ncpu} possible CPUs`);
    const out = Buffer.alloc(ncpu * stride);
    values.forEach((v, i) => v.copy(out, i * stride, 0, this.valueSize));
    return out;
  }

  /** The BTF describing this map: its object's, or the kernel's copy by id. */
  btf(): Btf {
    if (this.btfSource) return this.btfSource();
    const id = this.info().btfId;
    if (!id) throw bpfError('ENOENT', 2, `read BTF of map ${this.name}`, 'the map was created without BTF');
    return Btf.fromKernelId(id);
  }

  /** Key and value types from BTF (for a per-CPU map, the type of one CPU's value). */
  layouts(): { key: TypeLayout; value: TypeLayout } {
    const btf = this.btf();
    const i = this.info();
    return { key: btf.type(i.btfKeyTypeId), value: btf.type(i.btfValueTypeId) };
  }

  pin(path: string): void {
    native(() => this.raw.pin(path));
    this.pinnedAt = path;
  }

  /** Removes the pin this handle made or was opened from; the map lives while anything holds it. */
  unpin(): void {
    if (this.pinnedAt === undefined) throw new Error(`map ${this.name}: not pinned by this handle`);
    native(() => addon.unpin(this.pinnedAt!));
    this.pinnedAt = undefined;
  }

  close(): void {
    this.raw.close();
  }
}
