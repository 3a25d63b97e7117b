// model/host-policy/ids: stable small ids for host endpoints, address sets and policy slots, so
// that a rebuild keeps what did not change and the map writer rewrites only differences.

/**
 * key -> id for every key in `keys`: a key the previous build had keeps its id, a new key takes
 * the lowest id (>= 1) no kept key holds. Deterministic for a given key order.
 */
export function allocateIds(keys: Iterable<string>, previous: ReadonlyMap<string, number> | undefined): Map<string, number> {
  const out = new Map<string, number>();
  const fresh: string[] = [];
  const used = new Set<number>();
  for (const k of keys) {
    if (out.has(k)) continue;
    const id = previous?.get(k);
    if (id !== undefined && !used.has(id)) {
      out.set(k, id);
      used.add(id);
    } else {
      out.set(k, 0);
      fresh.push(k);
    }
  }
  let next = 1;
  for (const k of fresh) {
    while (used.has(next)) next++;
    out.set(k, next);
    used.add(next);
  }
  return out;
}

/** The set key (its sorted CIDRs joined) of a set's contents. */
export function setKey(cidrs: readonly string[]): string {
  return cidrs.join(',');
}
