// dataplane/maglev: the Maglev lookup table of one frontend (Eisenbud et al., NSDI 2016, §3.4)
// from its backends' identities; the reconciler writes it into weir_maglev4 and lib/lb.h
// indexes it with a flow hash. Pure: no kernel, no clock, nothing node-specific, so every
// node with the same endpoint set builds the same table.

import { createHash } from 'node:crypto';

/** The default and the largest table size (Cilium's default M; weir_maglev4's array length). */
export const MAGLEV_DEFAULT_TABLE_SIZE = 16381;
/** Cilium's lower bound for M. */
export const MAGLEV_MIN_TABLE_SIZE = 251;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** Why `m` is not a usable table size, or null. */
export function tableSizeProblem(m: number, max = MAGLEV_DEFAULT_TABLE_SIZE): string | null {
  if (!Number.isInteger(m) || m < MAGLEV_MIN_TABLE_SIZE || m > max) return `must be an integer in ${MAGLEV_MIN_TABLE_SIZE}..${max}`;
  if (!isPrime(m)) return 'must be a prime';
  return null;
}

/** offset and skip of one backend: two independent hashes of its identity (address:port). */
function permutation(identity: string, m: number): { offset: number; skip: number } {
  const h = createHash('sha256').update(identity).digest();
  return { offset: h.readUInt32BE(0) % m, skip: (h.readUInt32BE(4) % (m - 1)) + 1 };
}

/**
 * The table of size `m` (a prime) for `identities` (unique `address:port` strings): entry i
 * is an index into `identities`. Backends take turns (in identity order, not input order, so
 * the slot order of the maps does not matter) claiming their next preferred free entry, so
 * each gets m/n entries, give or take one; an empty list gives an empty table.
 */
export function maglevTable(identities: readonly string[], m: number): Uint16Array {
  const n = identities.length;
  const table = new Uint16Array(n === 0 ? 0 : m);
  if (n === 0) return table;
  const order = identities.map((id, index) => ({ id, index, ...permutation(id, m) })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const next = new Array<number>(n).fill(0);
  const filled = new Uint8Array(m);
  let count = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      const b = order[i]!;
      let c = (b.offset + next[i]! * b.skip) % m;
      while (filled[c]) {
        next[i]!++;
        c = (b.offset + next[i]! * b.skip) % m;
      }
      filled[c] = 1;
      table[c] = b.index;
      next[i]!++;
      if (++count === m) return table;
    }
  }
}
