// model/policy/port-ranges: a port range as the fewest (port, prefix length) pairs, so a policy key
// with a port range fits an LPM trie keyed on (identity, protocol, port/prefix) the way Cilium
// (1.16+) stores ranges: one lookup per new flow whatever the number of ranges.

/** One aligned block of ports: the `prefixLen` high bits of the 16-bit port equal those of `port`. */
export interface PortPrefix {
  port: number;
  prefixLen: number;
}

/** [port, endPort] (0 ≤ port ≤ endPort ≤ 65535) as the minimal list of aligned blocks, ascending. */
export function portPrefixes(port: number, endPort: number): PortPrefix[] {
  const out: PortPrefix[] = [];
  let lo = port;
  while (lo <= endPort) {
    // the largest aligned block starting at lo that stays inside the range
    let size = 1;
    while (size < 65536 && lo % (size * 2) === 0 && lo + size * 2 - 1 <= endPort) size *= 2;
    out.push({ port: lo, prefixLen: 16 - Math.log2(size) });
    lo += size;
  }
  return out;
}
