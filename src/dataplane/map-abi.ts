// dataplane/map-abi: the table of every pinned map's layout version, what start does when
// the pinned layout differs from the one this release's objects declare, and the layouts of
// earlier releases this one converts from (upgrade) and writes back (rollback). Read by
// map-upgrade.ts; docs/upgrade.md explains the rules. A new map, a layout change or a
// configurable size is one row (or one `older` entry) here.
//
// Pin names carry the layout version: version 1 is the bare base name (`weir_ct4`, as
// release 2e42a8d pinned it, before versions existed), version N >= 2 is `<base>_v<N>`
// (`weir_ct4_v2`), as Cilium's `_v2` maps. So `ls <pinDir>` tells which layouts are there.

import { layouts, type StructLayout, type WeirCt4, type WeirCt4V1 } from '../bpf/index.js';

/**
 * What start does with a pinned map whose layout (type, key/value size, max_entries,
 * flags) differs from what this release declares, or with an older version's pin:
 * - convert: entries are converted (older version) or copied (same version, other size)
 *   into the new map, so established flows keep their NAT;
 * - rebuild: nothing is copied; the reconciler writes the desired state into the new map;
 * - copy: entries are copied when key and value sizes match, else dropped (soft state);
 * - drop: nothing is copied (counters, scratch maps).
 */
export type OnLayoutChange = 'convert' | 'rebuild' | 'copy' | 'drop';

/** enum bpf_map_type values this table uses */
export const MAP_TYPE = { hash: 1, array: 2, percpu_hash: 5, percpu_array: 6, lru_hash: 9, lpm_trie: 11, ringbuf: 27 } as const;

/** A map as a release creates it: what that release's libbpf accepts as a reusable pin. */
export interface MapSpec {
  type: keyof typeof MAP_TYPE;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

/** A layout of an earlier release this one still knows. */
export interface OlderLayout {
  version: number;
  /** the release that pinned it (docs and logs) */
  release: string;
  spec: MapSpec;
  /** an entry of that layout in this release's layout; undefined: not representable */
  up(value: Buffer): Buffer | undefined;
  /** an entry of this release's layout in that layout; undefined: that release cannot hold it */
  down(value: Buffer): Buffer | undefined;
  /** a graceful stop writes this layout back, so that release can adopt the state (rollback) */
  rollback: boolean;
  /** a pinned array of maps whose slot 0 makes the programs also write new entries in this
   *  layout (lib/conntrack.h): set by the hand-off, emptied by the next start */
  mirror?: string;
}

export interface MapAbi {
  /** the map's name without version: `weir_ct4` */
  base: string;
  /** this release's layout version (1: not versioned yet) */
  version: number;
  onChange: OnLayoutChange;
  older: readonly OlderLayout[];
}

/** The pin name of a layout version: the base for 1, `<base>_v<N>` from 2 on. */
export function pinName(base: string, version: number): string {
  return version === 1 ? base : `${base}_v${version}`;
}

/** The base and version a pin name says, e.g. `weir_ct4_v2` -> {weir_ct4, 2}. */
export function parsePinName(name: string): { base: string; version: number } {
  const m = /^(.*)_v(\d+)$/.exec(name);
  return m && Number(m[2]) >= 2 ? { base: m[1]!, version: Number(m[2]) } : { base: name, version: 1 };
}

// conntrack v1 (2e42a8d, weir/legacy.h) <-> v2 (weir/conntrack.h). v1 holds NAT'd flows
// only: a v2 entry without SNAT or DNAT (a tracked, not rewritten flow) has no v1 form, and
// the v2-only fields (policy verdict, tunnel peer, ifindex, TUNNEL/DSR flags) are lost.
const CT_V1_FLAGS = 0x3f;
const CT_NAT = 0x3; // WEIR_CT_SNAT | WEIR_CT_DNAT

export function ctV1ToV2(v: WeirCt4V1): WeirCt4 {
  return {
    nat_saddr: v.nat_saddr,
    nat_daddr: v.nat_daddr,
    nat_sport: v.nat_sport,
    nat_dport: v.nat_dport,
    flags: v.flags & CT_V1_FLAGS,
    tcp_flags_seen: v.tcp_flags_seen,
    policy: 0,
    frontend_id: v.frontend_id,
    tunnel_node: '0.0.0.0',
    ifindex: 0,
    created_ns: v.created_ns,
    last_seen_ns: v.last_seen_ns,
    packets: v.packets,
    bytes: v.bytes,
  };
}

export function ctV2ToV1(v: WeirCt4): WeirCt4V1 | undefined {
  if (!(v.flags & CT_NAT)) return undefined;
  return {
    nat_saddr: v.nat_saddr,
    nat_daddr: v.nat_daddr,
    nat_sport: v.nat_sport,
    nat_dport: v.nat_dport,
    flags: v.flags & CT_V1_FLAGS,
    tcp_flags_seen: v.tcp_flags_seen,
    frontend_id: v.frontend_id,
    created_ns: v.created_ns,
    last_seen_ns: v.last_seen_ns,
    packets: v.packets,
    bytes: v.bytes,
  };
}

/**
 * A raw converter between two layouts of one struct: members of the same name and size are
 * copied, the others start zeroed. Offsets come from BTF (abi.gen.ts), so no offset is
 * written by hand; about 20x faster than decoding and encoding through the codecs (a full
 * conntrack map is 262,144 entries, converted while traffic waits for nothing but still).
 */
export function fieldCopier(from: StructLayout, to: StructLayout): (src: Buffer) => Buffer {
  const moves: [number, number, number][] = [];
  for (const m of to.members) {
    const f = from.members.find((x) => x.name === m.name && x.size === m.size && !m.name.startsWith('pad'));
    if (f) moves.push([f.offset, m.offset, m.size]);
  }
  return (src) => {
    const out = Buffer.allocUnsafe(to.size).fill(0); // from the shared pool: no allocation per entry
    for (const [fo, to, n] of moves) src.copy(out, to, fo, fo + n);
    return out;
  };
}

const ctFlagsAt = (l: StructLayout) => l.members.find((m) => m.name === 'flags')!.offset;
const ctUp = fieldCopier(layouts.weir_ct4_v1, layouts.weir_ct4);
const ctDown = fieldCopier(layouts.weir_ct4, layouts.weir_ct4_v1);

const ctV1: OlderLayout = {
  version: 1,
  release: '2e42a8d',
  spec: { type: 'lru_hash', keySize: 16, valueSize: 56, maxEntries: 262144, flags: 0 },
  up: (b) => {
    const out = ctUp(b);
    const at = ctFlagsAt(layouts.weir_ct4);
    out.writeUInt16LE(out.readUInt16LE(at) & CT_V1_FLAGS, at);
    return out;
  },
  down: (b) => {
    if (!(b.readUInt16LE(ctFlagsAt(layouts.weir_ct4)) & CT_NAT)) return undefined;
    const out = ctDown(b);
    const at = ctFlagsAt(layouts.weir_ct4_v1);
    out.writeUInt16LE(out.readUInt16LE(at) & CT_V1_FLAGS, at);
    return out;
  },
  rollback: true,
  mirror: 'weir_ct4_handoff',
};

/** Every map weir pins, with its layout version. */
export const MAP_ABI: readonly MapAbi[] = [
  { base: 'weir_ct4', version: 2, onChange: 'convert', older: [ctV1] },
  { base: 'weir_frontend4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_backend4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_affinity4', version: 1, onChange: 'copy', older: [] },
  { base: 'weir_sock_rev4', version: 1, onChange: 'copy', older: [] },
  { base: 'weir_sock_destroy4', version: 1, onChange: 'drop', older: [] },
  { base: 'weir_counters', version: 1, onChange: 'drop', older: [] },
  { base: 'weir_lb_stats4', version: 1, onChange: 'drop', older: [] },
  { base: 'weir_lb_src4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_maglev4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_ct4_handoff', version: 1, onChange: 'drop', older: [] },
  { base: 'weir_ifaces', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_nodes4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_tunnel4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_dsr_optout4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_ipcache4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_endpoints4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_policy4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_policy_names', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_identities', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_policy_stats', version: 1, onChange: 'drop', older: [] },
  { base: 'weir_policy_selects', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_endpoints6', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_ipcache4_hosts', version: 1, onChange: 'rebuild', older: [] },
  // IPv6 (issue 14)
  { base: 'weir_ipcache6', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_ipcache6_hosts', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_ct6', version: 1, onChange: 'copy', older: [] },
  { base: 'weir_frontend6', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_backend6', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_affinity6', version: 1, onChange: 'copy', older: [] },
  { base: 'weir_lb_src6', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_lb_stats6', version: 1, onChange: 'drop', older: [] },
  { base: 'weir_sock_rev6', version: 1, onChange: 'copy', older: [] },
  { base: 'weir_sock_destroy6', version: 1, onChange: 'drop', older: [] },
  { base: 'weir_nodes6', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_tunnel6', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_dsr_optout6', version: 1, onChange: 'rebuild', older: [] },
  // anti-spoofing (issue 16): rebuilt from the node's routes
  { base: 'weir_pod_addrs4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_pod_addrs6', version: 1, onChange: 'rebuild', older: [] },
  // weir monitor (issue 15; docs/monitor.md): events in flight and the lease are not worth keeping
  { base: 'weir_events', version: 1, onChange: 'drop', older: [] },
  { base: 'weir_monitor_cfg', version: 1, onChange: 'drop', older: [] },
  { base: 'weir_monitor_stats', version: 1, onChange: 'drop', older: [] },
  // host endpoint policy (issue 17; include/weir/host_policy.h): rebuilt from the plan; per-rule stats start over
  { base: 'weir_hep_ifaces', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_hep_chains', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_host_rules', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_host_sets4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_host_sets6', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_failsafe4', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_failsafe6', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_host_policy_names', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_hep_info', version: 1, onChange: 'rebuild', older: [] },
  { base: 'weir_host_rule_stats', version: 1, onChange: 'drop', older: [] },
];
