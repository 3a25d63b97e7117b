// dataplane/dsr-optout: weir_dsr_optout4, the clients that keep tunnel mode under
// --external-service-mode dsr (--dsr-optout-cidrs). Static configuration: written once at
// start, replacing what an earlier run pinned, so a changed flag takes effect at restart.

import type { TypedMap, WeirDsrOptout4Key } from '../bpf/index.js';
import { parseCidr } from '../bpf/ip.js';
import { type Logger, errText } from '../log.js';

/** Makes the map hold exactly the IPv4 prefixes of `cidrs` (IPv6 ones are skipped: no IPv6 tunnel yet). */
export function syncDsrOptout(map: TypedMap<WeirDsrOptout4Key, number>, cidrs: readonly string[], log: Logger): { written: number; skipped: string[] } {
  const want = new Map<string, WeirDsrOptout4Key>();
  const skipped: string[] = [];
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (!p || p.family !== 4) {
      skipped.push(c);
      continue;
    }
    want.set(`${p.address}/${p.prefix}`, { prefixlen: p.prefix, address: p.address });
  }
  let written = 0;
  try {
    for (const k of [...map.keys()]) {
      if (want.delete(`${k.address}/${k.prefixlen}`)) continue;
      map.delete(k);
      written++;
    }
    for (const k of want.values()) {
      map.set(k, 1);
      written++;
    }
  } catch (e) {
    log.warn('dsr optout write failed', { error: errText(e) });
  }
  if (skipped.length > 0) log.warn('dsr optout cidrs skipped', { cidrs: skipped.join(','), why: 'IPv4 tunnel only' });
  return { written, skipped };
}
