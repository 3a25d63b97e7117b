// dataplane/dsr-optout: weir_dsr_optout4 and weir_dsr_optout6, the clients that keep tunnel
// mode under --external-service-mode dsr (--dsr-optout-cidrs), each prefix in its family's
// map. Static configuration: written once at start, replacing what an earlier run pinned, so a
// changed flag takes effect at restart.

import type { TypedMap } from '../bpf/index.js';
import { parseCidr, type IpFamily } from '../bpf/ip.js';
import { type Logger, errText } from '../log.js';

/** weir_dsr_optout4 / weir_dsr_optout6 by family (the same key shape once decoded). */
export type DsrOptoutMaps = Partial<Record<IpFamily, TypedMap<{ prefixlen: number; address: string }, number>>>;

/** Makes each family's map hold exactly the prefixes of `cidrs` of that family (those of a family without a map are skipped). */
export function syncDsrOptout(maps: DsrOptoutMaps, cidrs: readonly string[], log: Logger): { written: number; skipped: string[] } {
  const want: Record<IpFamily, Map<string, { prefixlen: number; address: string }>> = { 4: new Map(), 6: new Map() };
  const skipped: string[] = [];
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (!p || !maps[p.family]) {
      skipped.push(c);
      continue;
    }
    want[p.family].set(`${p.address}/${p.prefix}`, { prefixlen: p.prefix, address: p.address });
  }
  let written = 0;
  for (const family of [4, 6] as const) {
    const map = maps[family];
    if (!map) continue;
    try {
      for (const k of [...map.keys()]) {
        if (want[family].delete(`${k.address}/${k.prefixlen}`)) continue;
        map.delete(k);
        written++;
      }
      for (const k of want[family].values()) {
        map.set(k, 1);
        written++;
      }
    } catch (e) {
      log.warn('dsr optout write failed', { map: `weir_dsr_optout${family}`, error: errText(e) });
    }
  }
  if (skipped.length > 0) log.warn('dsr optout cidrs skipped', { cidrs: skipped.join(','), why: 'no map of their family pinned' });
  return { written, skipped };
}
