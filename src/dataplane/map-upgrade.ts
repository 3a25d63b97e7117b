// dataplane/map-upgrade: the pinned state an earlier run left, brought to this release's
// layouts (map-abi.ts says how, per map). Start runs it in steps around the daemon's own:
//   prepare (before the objects load: a pin whose layout differs is moved aside, a stale
//   pin removed, so libbpf creates the new map) -> load -> convert (first pass: entries of
//   the old maps into the new) -> [first sync, programs swapped on the pinned links] ->
//   finish (delta pass: entries the old programs created meanwhile; then the old pins go).
// A graceful stop runs handOff: the layouts an earlier release reads, written back
// (rollback). docs/upgrade.md.

import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BpfError, BpfLink, BpfMap, BpfObject, BpfProgram } from '../bpf/index.js';
import { MAP_ABI, MAP_TYPE, pinName, type MapAbi, type MapSpec, type OlderLayout } from './map-abi.js';
import { errText } from '../log.js';

/** A pinned map whose entries go into this release's map. */
interface Source {
  abi: MapAbi;
  /** the version of the source's layout */
  from: number;
  /** where it is pinned now (an older version's name, or the current name moved aside) */
  path: string;
  map: BpfMap;
  /** raw value conversion; undefined: entries are not copied */
  convert: ((v: Buffer) => Buffer | undefined) | undefined;
  entries: number;
  delta: number;
  dropped: number;
  /** source keys the first pass saw (latin1 strings of the key bytes) */
  seen: Set<string>;
}

export interface MigrationReport {
  map: string;
  from: number;
  to: number;
  /** entries converted in the first pass */
  entries: number;
  /** entries the old programs created between the first pass and the swap */
  delta: number;
  /** entries the new layout could not hold (or not copied: rebuild/drop) */
  dropped: number;
  how: string;
}

/** What prepare saw and did, for the daemon's log. */
export interface UpgradeNote {
  action: 'moved-aside' | 'stale-removed' | 'older-found' | 'error';
  map: string;
  pin: string;
  reason: string;
}

const SLOT0 = Buffer.alloc(4);

/** entries per batch syscall */
const BATCH = 4096;

/** The suffix of a pin moved aside while its entries migrate. */
export const ASIDE_SUFFIX = '__migrating';

function specOf(m: { type: string; keySize: number; valueSize: number; maxEntries: number; flags: number }): MapSpec {
  return { type: m.type as MapSpec['type'], keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, flags: m.flags };
}
const sameSpec = (a: MapSpec, b: MapSpec) =>
  a.type === b.type && a.keySize === b.keySize && a.valueSize === b.valueSize && a.maxEntries === b.maxEntries && a.flags === b.flags;
const specText = (s: MapSpec) => `${s.type} ${s.keySize}/${s.valueSize} x${s.maxEntries} flags=${s.flags}`;

/** Ids of the maps the programs on pinned links use: which pinned layout is live. */
export function attachedMapIds(pinDir: string): Set<number> {
  const ids = new Set<number>();
  const dir = join(pinDir, 'links');
  if (!existsSync(dir)) return ids;
  for (const name of readdirSync(dir)) {
    try {
      const link = BpfLink.openPinned(join(dir, name));
      const progId = link.info().progId;
      link.close();
      if (!progId) continue;
      const prog = BpfProgram.fromId(progId);
      for (const id of prog.info().mapIds) ids.add(id);
      prog.close();
    } catch {
      /* a defunct link or a program gone meanwhile: it uses nothing */
    }
  }
  return ids;
}

/** The pinned maps the objects declare (name -> spec, with the configured sizes), read without loading them. */
function declaredMaps(pinDir: string, objectPaths: readonly string[], maxEntries: Record<string, number>): Map<string, MapSpec> {
  const out = new Map<string, MapSpec>();
  for (const path of objectPaths) {
    const obj = BpfObject.open(path, { pinDir, maxEntries });
    try {
      for (const m of obj.mapDefs()) if (!m.internal && m.pinPath && !out.has(m.name)) out.set(m.name, specOf(m));
    } finally {
      obj.close();
    }
  }
  return out;
}

export class MapUpgrade {
  readonly notes: UpgradeNote[] = [];
  private readonly sources: Source[] = [];
  /** older pins that are not live (a hand-off copy a restart did not need): removed in finish */
  private readonly staleOlder: string[] = [];
  private finished = false;

  private constructor(
    readonly pinDir: string,
    private readonly abi: readonly MapAbi[],
  ) {}

  /**
   * Before the objects load: decides, per map of the table the objects declare, which
   * pinned state is current and clears the way for libbpf. An older version's pin is the
   * source when the attached programs use it (or when no current pin exists); a current
   * pin next to a live older one is stale (a rollback ran since) and is removed. A current
   * pin whose layout differs is moved aside (`<name>__migrating`) and becomes the source.
   * `maxEntries`: the sizes the load sets (--ct-map-size, ...): another size is a resize.
   */
  static prepare(pinDir: string, objectPaths: readonly string[], abi: readonly MapAbi[] = MAP_ABI, maxEntries: Record<string, number> = {}): MapUpgrade {
    const up = new MapUpgrade(pinDir, abi);
    const declared = declaredMaps(pinDir, objectPaths, maxEntries);
    let live: Set<number> | undefined;
    const liveIds = () => (live ??= attachedMapIds(pinDir));
    for (const row of abi) {
      const name = pinName(row.base, row.version);
      const want = declared.get(name);
      if (!want) continue;
      try {
        up.prepareRow(row, name, want, liveIds);
      } catch (e) {
        // a pin that is not what its name says (not a map, unreadable): libbpf decides at
        // load (adopts it or fails with its own message); nothing of this row is migrated
        up.notes.push({ action: 'error', map: row.base, pin: name, reason: errText(e) });
      }
    }
    return up;
  }

  /** One row of the table: see prepare. Throws on a pin it cannot read. */
  private prepareRow(row: MapAbi, name: string, want: MapSpec, liveIds: () => Set<number>): void {
    const pinDir = this.pinDir;
    const curPath = join(pinDir, name);
    // an earlier start that stopped mid-migration left these: they are still sources
    const asides = readdirSync(pinDir).filter((n) => n.startsWith(name + ASIDE_SUFFIX));
    for (const n of asides) this.addSource(row, row.version, join(pinDir, n), undefined);
    let aside = curPath + ASIDE_SUFFIX;
    for (let n = 1; existsSync(aside); n++) aside = `${curPath}${ASIDE_SUFFIX}${n}`;
    const olders = row.older.filter((o) => existsSync(join(pinDir, pinName(row.base, o.version)))).sort((a, b) => b.version - a.version);
    let liveOlder: OlderLayout | undefined;
    for (const o of olders) {
      const path = join(pinDir, pinName(row.base, o.version));
      const m = BpfMap.openPinned(path);
      const used = liveIds().has(m.id);
      m.close();
      if (used || (!liveOlder && !existsSync(curPath) && o === olders[0])) liveOlder ??= o;
    }
    for (const o of olders) {
      const path = join(pinDir, pinName(row.base, o.version));
      if (o === liveOlder) {
        this.addSource(row, o.version, path, o);
        this.notes.push({ action: 'older-found', map: row.base, pin: pinName(row.base, o.version), reason: `layout v${o.version} (${o.release}) is current` });
      } else {
        this.staleOlder.push(path);
        const reason = `v${row.version} is current; removed after the swap`;
        this.notes.push({ action: 'stale-removed', map: row.base, pin: pinName(row.base, o.version), reason });
      }
    }
    if (!existsSync(curPath)) return;
    if (liveOlder) {
      unlinkSync(curPath);
      this.notes.push({ action: 'stale-removed', map: row.base, pin: name, reason: `the attached programs use v${liveOlder.version}` });
      return;
    }
    const m = BpfMap.openPinned(curPath);
    const have = specOf(m.info());
    m.close();
    if (sameSpec(have, want)) return;
    // the same map pinned at the aside name, then unpinned here (bpffs names take no '.')
    const moving = BpfMap.openPinned(curPath);
    moving.pin(aside);
    moving.close();
    unlinkSync(curPath);
    this.notes.push({ action: 'moved-aside', map: row.base, pin: name, reason: `pinned ${specText(have)}, declared ${specText(want)}` });
    this.addSource(row, row.version, aside, undefined);
  }

  private addSource(abi: MapAbi, from: number, path: string, older: OlderLayout | undefined): void {
    const map = BpfMap.openPinned(path);
    let convert: Source['convert'];
    if (older) convert = abi.onChange === 'convert' || abi.onChange === 'copy' ? older.up : undefined;
    // same layout version, another size (`weir daemon --frontend-map-size` ...): the entries are
    // copied for rebuilt maps too, so frontend ids (which conntrack, affinity, lb-stats and the
    // Maglev tables key on) survive a resize; the first sync repairs the rest. Sizes are
    // checked at copy
    else if (abi.onChange !== 'drop') convert = (v) => v;
    this.sources.push({ abi, from, path, map, convert, entries: 0, delta: 0, dropped: 0, seen: new Set() });
  }

  /** True when there is nothing to migrate or clean up (a plain restart). */
  get idle(): boolean {
    return this.sources.length === 0 && this.staleOlder.length === 0;
  }

  /** First pass, right after load: the sources' entries into the new maps. */
  convert(mapOf: (name: string) => BpfMap): void {
    for (const s of this.sources) s.entries += this.copy(s, mapOf(pinName(s.abi.base, s.abi.version)), false);
  }

  /**
   * After the programs were swapped on every pinned link: a second pass for what the old
   * programs created meanwhile (keys already present are skipped), then the old pins go.
   */
  finish(mapOf: (name: string) => BpfMap): MigrationReport[] {
    if (this.finished) return [];
    this.finished = true;
    const reports: MigrationReport[] = [];
    for (const s of this.sources) {
      s.delta += this.copy(s, mapOf(pinName(s.abi.base, s.abi.version)), true);
      s.map.close();
      s.seen.clear();
      unlinkQuiet(s.path);
      const how = !s.convert ? 'not copied' : s.abi.onChange === 'rebuild' ? 'copy (resize)' : s.abi.onChange;
      reports.push({ map: s.abi.base, from: s.from, to: s.abi.version, entries: s.entries, delta: s.delta, dropped: s.dropped, how });
    }
    for (const p of this.staleOlder) unlinkQuiet(p);
    // a hand-off of an earlier stop may still make the programs mirror new flows into an
    // older layout: this release is current now (clearing an empty slot is a no-op)
    for (const name of new Set(this.abi.flatMap((r) => r.older.flatMap((o) => (o.mirror ? [o.mirror] : []))))) {
      try {
        mapOf(name).delete(SLOT0);
      } catch {
        /* the objects do not declare it */
      }
    }
    return reports;
  }

  /**
   * First pass (`delta` false): every source entry, in batches, into the map this load
   * created (empty); the keys are remembered. Delta pass: only source keys the first pass
   * did not see (a key-set check costs ~1.4 s at 200k entries on the lab machine, a lookup
   * per key twice that), written unless the new programs created the key since the swap.
   * Returns how many entries were written.
   */
  private copy(s: Source, target: BpfMap, delta: boolean): number {
    if (!s.convert) return 0;
    if (s.from === s.abi.version && (s.map.keySize !== target.keySize || s.map.valueSize !== target.valueSize || s.map.perCpu || target.perCpu)) return 0;
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (const [k, v] of s.map.entries()) {
      const id = k.toString('latin1');
      if (delta ? s.seen.has(id) : (s.seen.add(id), false)) continue;
      const out = s.convert(v);
      if (!out) {
        s.dropped++;
        continue;
      }
      keys.push(k);
      values.push(out);
    }
    if (!delta) {
      let n = 0;
      for (let i = 0; i < keys.length; i += BATCH) n += this.put(s, target, keys.slice(i, i + BATCH), values.slice(i, i + BATCH));
      return n;
    }
    let n = 0;
    keys.forEach((k, i) => {
      try {
        target.update(k, values[i]!, 'noexist');
        n++;
      } catch (e) {
        if (!(e instanceof BpfError && e.code === 'EEXIST')) throw e;
      }
    });
    return n;
  }

  /**
   * One batch into `target`; where the batch call fails (a resize below the live entries of a
   * hash map: E2BIG part way), entry by entry, those the map refuses counted dropped.
   */
  private put(s: Source, target: BpfMap, keys: Buffer[], values: Buffer[]): number {
    try {
      target.updateBatch(keys, values, 'any');
      return keys.length;
    } catch (e) {
      if (!(e instanceof BpfError)) throw e;
    }
    let n = 0;
    keys.forEach((k, i) => {
      try {
        target.update(k, values[i]!, 'any');
        n++;
      } catch (e) {
        if (!(e instanceof BpfError)) throw e;
        s.dropped++;
      }
    });
    return n;
  }

  /** Closes the sources without migrating further (a failed start). */
  close(): void {
    if (this.finished) return;
    this.finished = true;
    for (const s of this.sources) s.map.close();
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* gone already */
  }
}

export interface HandOffReport {
  map: string;
  from: number;
  to: number;
  entries: number;
  /** entries the older layout cannot hold (not NAT'd) */
  skipped: number;
  ms: number;
}

/**
 * Graceful stop: for every map whose earlier layout is marked `rollback`, that layout is
 * written next to the current one (`weir_ct4` beside `weir_ct4_v2`), holding every entry it
 * can represent, so the earlier release adopts it when it starts here.
 */
export function handOff(pinDir: string, mapOf: (name: string) => BpfMap, abi: readonly MapAbi[] = MAP_ABI): HandOffReport[] {
  const out: HandOffReport[] = [];
  for (const row of abi) {
    for (const o of row.older) {
      if (!o.rollback) continue;
      const t0 = performance.now();
      const src = mapOf(pinName(row.base, row.version));
      const name = pinName(row.base, o.version);
      const { type, ...sizes } = o.spec;
      const dst = BpfMap.create({ typeId: MAP_TYPE[type], ...sizes, name });
      // from here on the programs write every new flow into dst too (lib/conntrack.h), until
      // the earlier release swaps the links: no flow falls between this copy and the swap
      if (o.mirror) {
        const fd = Buffer.alloc(4);
        fd.writeUInt32LE(dst.fd);
        mapOf(o.mirror).update(SLOT0, fd, 'any');
      }
      let skipped = 0;
      const keys: Buffer[] = [];
      const values: Buffer[] = [];
      try {
        for (const [k, v] of src.entries()) {
          const w = o.down(v);
          if (!w) {
            skipped++;
            continue;
          }
          keys.push(k);
          values.push(w);
        }
        for (let i = 0; i < keys.length; i += BATCH) dst.updateBatch(keys.slice(i, i + BATCH), values.slice(i, i + BATCH), 'any');
        // pinned only once full: the earlier release never adopts a half-filled map
        unlinkQuiet(join(pinDir, name));
        dst.pin(join(pinDir, name));
      } finally {
        dst.close();
      }
      out.push({ map: row.base, from: row.version, to: o.version, entries: keys.length, skipped, ms: Math.round(performance.now() - t0) });
    }
  }
  return out;
}
