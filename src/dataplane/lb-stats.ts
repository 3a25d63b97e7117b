// dataplane/lb-stats: the per-CPU weir_lb_stats4 / weir_lb_stats6 maps (new connections per
// frontend and backend, the `ipvsadm --stats` view) read as rows, summed over CPUs; the bounded series
// set the metrics export; and the deletion of frontend ids the reconciler released, which the
// clean-up stage runs (backend-cleanup.ts: ids are reused, so a new frontend must not inherit
// an old one's counts).

import { codecFor } from '../bpf/codec.js';
import type { IpFamily } from '../bpf/ip.js';
import type { BpfMap } from '../bpf/map.js';
import { addressPort } from './frontend-entries.js';

export interface LbStatsRow {
  family: IpFamily;
  frontendId: number;
  backend: string;
  port: number;
  newConnections: bigint;
}

/** The family of an lb-stats map and its key codec: the keys differ only in the backend's
 *  address size, so the key size tells which map this is. */
function keyCodec(map: BpfMap) {
  for (const family of [4, 6] as const) {
    const codec = codecFor(family === 4 ? 'weir_lb_stats4_key' : 'weir_lb_stats6_key');
    if (codec.size === map.keySize) return { family, codec };
  }
  throw new Error(`${map.name}: key of ${map.keySize} bytes is neither weir_lb_stats4_key nor weir_lb_stats6_key`);
}

/** Every entry with a non-zero count, summed over CPUs (either family's map). */
export function readLbStats(map: BpfMap): LbStatsRow[] {
  const { family, codec } = keyCodec(map);
  const rows: LbStatsRow[] = [];
  for (const [key, value] of map.lookupBatch()) {
    let n = 0n;
    for (const cpu of map.splitPerCpu(value)) n += cpu.readBigUInt64LE(0);
    if (n === 0n) continue;
    const k = codec.decode(key);
    rows.push({ family, frontendId: k.frontend_id, backend: k.backend, port: k.port, newConnections: n });
  }
  return rows;
}

/** Deletes the entries of these frontend ids; returns how many. */
export function deleteLbStatsOf(map: BpfMap, frontendIds: Iterable<number>): number {
  const ids = new Set(frontendIds);
  if (ids.size === 0) return 0;
  const { codec } = keyCodec(map);
  const keys = map
    .lookupBatch()
    .map(([k]) => k)
    .filter((k) => ids.has(codec.decode(k).frontend_id));
  return keys.length ? map.deleteBatch(keys) : 0;
}

export interface LbSeries {
  service: string;
  frontend: string;
  backend: string;
  value: number;
}

/**
 * At most `cap` series: the `cap - 1` largest counts keep their own {service, frontend,
 * backend} labels, all others are summed into one series labelled "other" throughout, so
 * the export is bounded whatever the cluster size and the sum over series is still every
 * new connection. Rows of a frontend id the daemon does not know (removed, not yet cleaned
 * up) are labelled service "unknown".
 */
export function boundedLbSeries(
  rows: readonly LbStatsRow[],
  describe: (frontendId: number) => { service: string; frontend: string } | undefined,
  cap: number,
): LbSeries[] {
  const byLabels = new Map<string, LbSeries>();
  for (const r of rows) {
    const d = describe(r.frontendId) ?? { service: 'unknown', frontend: `id:${r.frontendId}` };
    const s = { service: d.service, frontend: d.frontend, backend: addressPort(r.family, r.backend, r.port), value: Number(r.newConnections) };
    const k = `${s.service}|${s.frontend}|${s.backend}`;
    const prev = byLabels.get(k);
    if (prev) prev.value += s.value;
    else byLabels.set(k, s);
  }
  const sorted = [...byLabels.values()].sort(
    (a, b) => b.value - a.value || a.service.localeCompare(b.service) || a.frontend.localeCompare(b.frontend) || a.backend.localeCompare(b.backend),
  );
  if (sorted.length <= cap) return sorted;
  const kept = sorted.slice(0, Math.max(0, cap - 1));
  const rest = sorted.slice(kept.length).reduce((n, s) => n + s.value, 0);
  return [...kept, { service: 'other', frontend: 'other', backend: 'other', value: rest }];
}
