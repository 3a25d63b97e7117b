// dataplane/map-census: how many entries each pinned map holds, for the metrics, counted in the
// background so that a scrape reads numbers and walks nothing (a walk of a full conntrack table
// per scrape took 0.5 s). Which maps: every map the loaded objects pin, under its full pin name
// (the kernel keeps 15 characters: weir_sock_destroy4 is `weir_sock_destr` there). Counts come
// from who knows them: the conntrack GC reports what its pass left (set); a map only weir writes
// (frontends, backends, ipcache, endpoints, policy: the writes the daemon counts) is recounted
// only after a write (written); every other map (the programs' own: affinity, socket maps,
// statistics) at each refresh. A count walks the map in BPF_MAP_LOOKUP_BATCH steps that copy
// nothing out of the addon, yielding to the event loop between steps.

import type { BpfMap, BpfObject } from '../bpf/index.js';

/** One map's row for the metrics. */
export interface CensusRow {
  /** the pin name */
  name: string;
  capacity: number;
  /** undefined until first counted */
  entries: number | undefined;
  /** when the count was taken (ms since the epoch) */
  countedAt: number | undefined;
}

/** Entries per count step: ~16k keys and values in kernel buffers, a few ms between yields. */
export const CENSUS_STEP = 16_384;

interface Tracked extends CensusRow {
  map: BpfMap;
  /** counted by someone else (the GC): never walked here once set */
  fed: boolean;
  /** written only by weir: recounted after a write */
  owned: boolean;
  dirty: boolean;
}

/** The maps every object pins, by pin name (the objects share them), internal maps left out. */
export function pinnedMaps(objects: Iterable<BpfObject>): Array<{ name: string; map: BpfMap }> {
  const out = new Map<string, BpfMap>();
  for (const o of objects) for (const d of o.mapDefs()) if (d.pinPath && !d.internal && !out.has(d.name)) out.set(d.name, o.map(d.name));
  return [...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, map]) => ({ name, map }));
}

export interface MapCensusOptions {
  step?: number;
  yieldFn?: () => Promise<void>;
  now?: () => number;
  onError?: (map: string, e: unknown) => void;
  /** a write schedules a refresh this much later (writes in between join it); default: none */
  refreshAfterWriteMs?: number;
}

export class MapCensus {
  private readonly maps = new Map<string, Tracked>();
  /** the kernel's (truncated) name of each map to its pin name, where that is unambiguous */
  private readonly byKernelName = new Map<string, string | null>();
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    maps: Iterable<{ name: string; map: BpfMap }>,
    private readonly opts: MapCensusOptions = {},
  ) {
    for (const { name, map } of maps) {
      const k = map.name;
      this.byKernelName.set(k, this.byKernelName.has(k) ? null : name);
      // arrays always hold max_entries, ring buffers nothing a count can see
      const fixed = map.type.includes('array') ? map.maxEntries : map.type === 'ringbuf' ? 0 : undefined;
      this.maps.set(name, {
        name,
        map,
        capacity: map.maxEntries,
        entries: fixed,
        countedAt: fixed === undefined ? undefined : this.now(),
        fed: fixed !== undefined,
        owned: false,
        dirty: false,
      });
    }
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** What the scrape reads: O(maps), no syscall. */
  rows(): CensusRow[] {
    return [...this.maps.values()].map(({ name, capacity, entries, countedAt }) => ({ name, capacity, entries, countedAt }));
  }

  /** A count made elsewhere (the conntrack GC pass); that map is not walked here any more. */
  set(name: string, entries: number): void {
    const t = this.maps.get(name);
    if (!t) return;
    t.fed = true;
    t.entries = entries;
    t.countedAt = this.now();
  }

  /** weir wrote or deleted entries of `name` (a pin name, or the kernel's name of the map, as the
   *  daemon's map write counter has it): it is recounted at the next refresh, and from now on
   *  only after writes. */
  written(name: string): void {
    const t = this.maps.get(name) ?? this.maps.get(this.byKernelName.get(name) ?? '');
    if (!t) return;
    t.owned = true;
    t.dirty = true;
    const ms = this.opts.refreshAfterWriteMs;
    if (ms !== undefined && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.refresh();
      }, ms);
      this.timer.unref();
    }
  }

  /** No more refreshes; one under way ends at its next step (the maps are about to close). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Recounts what may have changed: maps never counted, maps written since, maps the programs
   *  fill. A refresh asked for during one runs once more after it. */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    const pause = this.opts.yieldFn ?? (() => new Promise<void>((r) => setImmediate(r)));
    for (const t of this.maps.values()) {
      if (t.fed || (t.owned && !t.dirty && t.entries !== undefined)) continue;
      t.dirty = false; // a write during the count marks it again
      try {
        const steps = t.map.countSteps(this.opts.step ?? CENSUS_STEP);
        let r = steps.next();
        while (!r.done) {
          await pause();
          if (this.stopped) return;
          r = steps.next();
        }
        if (!t.fed) {
          t.entries = r.value;
          t.countedAt = this.now();
        }
      } catch (e) {
        this.opts.onError?.(t.name, e); // a map closed under us (stop): keep the last count
      }
    }
  }
}
