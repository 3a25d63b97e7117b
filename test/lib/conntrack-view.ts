// A test's view of weir's conntrack, read from the pinned maps of a node: the family of the
// address picks the map (weir_ct4_v2 or weir_ct6), as the dataplane does.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, codecFor, enums } from '../../src/bpf/index.js';

/** pin name and codecs of each family's conntrack map */
const CT = {
  4: { pin: 'weir_ct4_v2', key: 'weir_ct4_key', value: 'weir_ct4' },
  6: { pin: 'weir_ct6', key: 'weir_ct6_key', value: 'weir_ct6' },
} as const;

/**
 * NAT'd conntrack entries with `addr` on either side of the key. Tracked-only entries (which
 * conntrack of every flow also gives the socket LB's already-translated flows) do not count.
 */
export function natEntriesWith(pinDir: string, addr: string): number {
  const ct = CT[addr.includes(':') ? 6 : 4];
  const path = join(pinDir, ct.pin);
  if (!existsSync(path)) throw new Error(`no ${ct.pin} pinned in ${pinDir}: this weir has no conntrack for ${addr}'s family`);
  const m = BpfMap.openPinned(path);
  try {
    const kc = codecFor(ct.key);
    const vc = codecFor(ct.value);
    const nat = enums.weir_ct_flags.WEIR_CT_DNAT | enums.weir_ct_flags.WEIR_CT_SNAT;
    let n = 0;
    for (const [k, v] of m.entries()) {
      const key = kc.decode(k) as { saddr: string; daddr: string };
      if ((key.saddr === addr || key.daddr === addr) && ((vc.decode(v) as { flags: number }).flags & nat) !== 0) n++;
    }
    return n;
  } finally {
    m.close();
  }
}
