// dataplane/map-sizes: the BPF map sizes an operator sets (`weir daemon --ct-map-size` and
// the others): which pinned maps each setting sizes (both families alike), its default, and
// its bounds. The loader sets them with bpf_map__set_max_entries before load; a size given
// other than the pinned map's is a resize, migrated at start (map-upgrade.ts). The defaults,
// sized for 50,000 services x 10 endpoints, 1,000,000 conntrack entries and 100,000 pods
// (docs/configuration.md has the arithmetic, docs/operations.md the memory), are for
// new maps and maps weir sized: a map pinned at the objects' own (compiled) size, made by a
// release before sizes were settings, keeps it unless a size is given, so an upgrade from that
// release resizes nothing and a rollback to it finds maps it can adopt.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { abiMaps, BpfMap } from '../bpf/index.js';

/** A map size setting: `--<name>-map-size`, sizing `maps` (pin names). */
export interface MapSizeSetting {
  maps: readonly string[];
  default: number;
  /** what one entry is, for the flag's help */
  entry: string;
}

export const MAP_SIZE_SETTINGS = {
  // LRU, preallocated: 144 B (IPv4) / 200 B (IPv6) of kernel memory per entry whether used or
  // not, measured (bpftool memlock): 144 + 200 MiB at this default. Flows per node, not
  // services: 1,000,000 entries (500,000 flows, both directions) -> 2^20. kube-proxy's floor
  // (32768 per core, 131072 at least) fits a small node: --ct-map-size 262144 saves 258 MiB.
  ct: { maps: ['weir_ct4_v2', 'weir_ct6'], default: 1_048_576, entry: 'one per direction of a tracked flow' },
  // hash, not preallocated: an unused entry costs nothing. 50,000 ClusterIP frontends
  // (services x ports, ~1 port each) + NodePort/LoadBalancer ones (per node address, plus
  // an external-scope entry under externalTrafficPolicy: Local) ~ 80,000 -> 131,072.
  frontend: { maps: ['weir_frontend4', 'weir_frontend6'], default: 131_072, entry: 'one per service address, port, protocol and scope' },
  // hash, not preallocated: {frontend id, slot} per endpoint of each frontend: the
  // ClusterIP ones 50,000 x 10 = 500,000, the NodePort/LoadBalancer ones up to ~300,000
  // more -> 1,048,576 (2^20).
  backend: { maps: ['weir_backend4', 'weir_backend6'], default: 1_048_576, entry: "one per endpoint of each frontend (a frontend's slots)" },
  // LPM trie + hash, not preallocated: every pod address of the cluster (policy peers):
  // 50,000 services x 10 endpoints = up to 500,000 pods -> 524,288.
  ipcache: {
    maps: ['weir_ipcache4', 'weir_ipcache4_hosts', 'weir_ipcache6', 'weir_ipcache6_hosts'],
    default: 524_288,
    entry: 'one per pod or node address of the cluster (NetworkPolicy peers)',
  },
  // LPM trie + hash, not preallocated: policy rules of this node's pods x peers x ports;
  // not driven by the number of services (the compiled size).
  policy: { maps: ['weir_policy4', 'weir_policy_selects'], default: 524_288, entry: 'one per NetworkPolicy rule, peer identity and port range' },
  // LRU, preallocated: clients of sessionAffinity: ClientIP services (the compiled size).
  affinity: { maps: ['weir_affinity4', 'weir_affinity6'], default: 65_536, entry: 'one per client of each ClientIP-affinity frontend' },
} as const satisfies Record<string, MapSizeSetting>;

export type MapSizeName = keyof typeof MAP_SIZE_SETTINGS;
export type MapSizes = Record<MapSizeName, number>;

export const MAP_SIZE_NAMES = Object.keys(MAP_SIZE_SETTINGS) as MapSizeName[];

/** Bounds of every size: below 256 an LRU map's per-CPU free lists starve; above 2^26 a
 *  preallocated conntrack map alone would take ~10 GB. */
export const MAP_SIZE_MIN = 256;
export const MAP_SIZE_MAX = 1 << 26;

export function defaultMapSizes(): MapSizes {
  return Object.fromEntries(MAP_SIZE_NAMES.map((n) => [n, MAP_SIZE_SETTINGS[n].default])) as MapSizes;
}

/** `--<name>-map-size`: an integer in MAP_SIZE_MIN..MAP_SIZE_MAX. */
export function parseMapSize(name: MapSizeName, text: string): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < MAP_SIZE_MIN || n > MAP_SIZE_MAX)
    throw new Error(
      `bad --${name}-map-size ${JSON.stringify(text)}: entries, an integer in ${MAP_SIZE_MIN}..${MAP_SIZE_MAX} (default ${MAP_SIZE_SETTINGS[name].default})`,
    );
  return n;
}

/** max_entries by pin name: every map of each setting given. */
export function maxEntriesByMap(sizes: Partial<MapSizes>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of MAP_SIZE_NAMES) {
    const n = sizes[name];
    if (n !== undefined) for (const m of MAP_SIZE_SETTINGS[name].maps) out[m] = n;
  }
  return out;
}

/** A pinned map's max_entries, or undefined when nothing (readable) is pinned there. */
function pinnedMaxEntries(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const m = BpfMap.openPinned(path);
    try {
      return m.maxEntries;
    } finally {
      m.close();
    }
  } catch {
    return undefined; // not a map: the upgrade step reports it
  }
}

/**
 * The loader's max_entries by pin name: the sizes `given` (a flag, env or file: a pinned map of
 * another size is resized); for the others the default, except that a map pinned at the
 * objects' compiled size (an earlier release's) keeps it.
 */
export function resolveMaxEntries(pinDir: string, given: Partial<MapSizes>): Record<string, number> {
  const out = maxEntriesByMap(given);
  for (const name of MAP_SIZE_NAMES) {
    if (given[name] !== undefined) continue;
    for (const m of MAP_SIZE_SETTINGS[name].maps) {
      const compiled = (abiMaps as Record<string, { maxEntries: number } | undefined>)[m]?.maxEntries;
      const pinned = pinnedMaxEntries(join(pinDir, m));
      out[m] = pinned !== undefined && pinned === compiled ? pinned : MAP_SIZE_SETTINGS[name].default;
    }
  }
  return out;
}
