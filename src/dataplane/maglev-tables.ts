// dataplane/maglev-tables: after each applied plan (reconcile.ts), the weir_maglev4 entries of
// the frontends flagged WEIR_FRONTEND_MAGLEV, of both families (an IPv6 frontend's table is
// under its id too: ids are unique across families): a table (maglev.ts) over the backends in
// their slots, rewritten only when a frontend's slots changed, deleted when a frontend loses
// the flag or goes. Written after the slots and the count: lib/lb.h falls back to a random
// slot while a table is missing or names a slot at or beyond the count.

import { enums, type TypedMap, type WeirMaglev4, type WeirMaglev4Key } from '../bpf/index.js';
import { type Logger, errText } from '../log.js';
import { backendIdentity } from './frontend-entries.js';
import type { FamilyLive } from './frontend-plan.js';
import { maglevTable } from './maglev.js';

const MAGLEV = enums.weir_frontend_flags.WEIR_FRONTEND_MAGLEV;

export interface MaglevTablesStats {
  /** tables written, all-time */
  writes: number;
  /** tables deleted, all-time */
  deletes: number;
  /** failed writes or deletes (each logged; retried at the next sync) */
  errors: number;
}

export class MaglevTables {
  readonly stats: MaglevTablesStats = { writes: 0, deletes: 0, errors: 0 };
  /** frontend id -> the slot identities its table was built from ('' = unknown: found in the map) */
  private readonly written = new Map<number, string>();

  constructor(
    private readonly map: TypedMap<WeirMaglev4Key, WeirMaglev4>,
    readonly tableSize: number,
    private readonly log: Logger,
  ) {}

  /** Takes what the map holds: tables of a previous run are rebuilt (or deleted) at the next update. */
  adopt(): number {
    this.written.clear();
    for (const k of this.map.keys()) this.written.set(k.frontend_id, '');
    return this.written.size;
  }

  /**
   * Brings the tables in line with `lives` (the mirror of every family with maps, as the
   * maps now hold them) for the frontend ids in `ids` (undefined: every id). Returns the map
   * operations made.
   */
  update(lives: readonly FamilyLive[], ids?: ReadonlySet<number>): number {
    const want = new Map<number, string[]>();
    for (const live of lives)
      for (const { value } of live.frontends.values()) {
        if (ids && !ids.has(value.id)) continue;
        if (!(value.flags & MAGLEV) || value.backend_count === 0) continue;
        const slots = live.backends.get(value.id);
        const identities: string[] = [];
        for (let s = 0; s < value.backend_count; s++) {
          const b = slots?.get(s);
          identities.push(b ? backendIdentity(b) : `missing:${s}`);
        }
        want.set(value.id, identities);
      }
    let ops = 0;
    for (const [id, identities] of want) {
      const signature = identities.join(',');
      const before = this.written.get(id);
      if (before === signature) continue;
      const slots = Array.from(maglevTable(identities, this.tableSize));
      // adopted (a restart): a table that is already right is kept, so a restart writes nothing
      if (before === '' && sameTable(this.map.get({ frontend_id: id })?.slots, slots)) {
        this.written.set(id, signature);
        continue;
      }
      ops++;
      try {
        this.map.set({ frontend_id: id }, { slots, pad: 0 });
        this.written.set(id, signature);
        this.stats.writes++;
      } catch (e) {
        this.stats.errors++;
        this.written.delete(id);
        this.log.warn('maglev table write failed', { frontend_id: id, error: errText(e) });
      }
    }
    for (const id of [...this.written.keys()]) {
      if (want.has(id) || (ids && !ids.has(id))) continue;
      ops++;
      try {
        this.map.delete({ frontend_id: id });
        this.written.delete(id);
        this.stats.deletes++;
      } catch (e) {
        this.stats.errors++;
        this.log.warn('maglev table delete failed', { frontend_id: id, error: errText(e) });
      }
    }
    return ops;
  }
}

/** `have` (the map's value, padded to its array length with zeros) holds `want`. */
function sameTable(have: readonly number[] | undefined, want: readonly number[]): boolean {
  if (!have || have.length < want.length) return false;
  for (let i = 0; i < want.length; i++) if (have[i] !== want[i]) return false;
  return true;
}
