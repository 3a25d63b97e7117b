// Shared dataplane for the service tests (service-cases, service6-cases, service-sock,
// lb-stats, the CLI tests): from_pod, from_host, their IPv6 programs from_pod6 and from_host6,
// and to_pod loaded into one private bpffs (their maps shared by pin name, as in production),
// seen through src/bpf's typed maps, packets run through BPF_PROG_TEST_RUN, counters read as
// {hook: {reason: packets}}. A service or conntrack entry goes to its family's maps by its
// address (addService, conntrackOf).

import { join } from 'node:path';
import { BpfObject, codecFor, enums, typedMap, u8, type ConstValue, type TypedMap } from '../../src/bpf/index.js';
import type { WeirAffinity4, WeirAffinity4Key, WeirBackend4, WeirBackend4Key, WeirCt4, WeirCt4Key } from '../../src/bpf/index.js';
import type { WeirFrontend4, WeirFrontend4Key, WeirLbSrc4Key } from '../../src/bpf/index.js';
import type {
  WeirAffinity6,
  WeirAffinity6Key,
  WeirBackend6,
  WeirBackend6Key,
  WeirCt6,
  WeirCt6Key,
  WeirLbSrc6Key,
  WeirFrontend6,
  WeirFrontend6Key,
} from '../../src/bpf/index.js';
import { sourceRangeKey } from '../../src/dataplane/reconcile.js';
import { MAGLEV_DEFAULT_TABLE_SIZE } from '../../src/dataplane/maglev.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import type { ExplainMaps } from '../../src/dataplane/explain.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';

export const OBJ_DIR = join(process.cwd(), 'build', 'bpf');

export const IPPROTO = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 } as const;
export const TC = { pass: 0, drop: 2, redirect: 7 } as const;

/** flag names as the tests write them: WEIR_CT_HAIRPIN is ctFlag.hairpin */
function lowerNames(e: Record<string, number>, prefix: string): Record<string, number> {
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k.slice(prefix.length).toLowerCase(), v]));
}
export const ctFlag = lowerNames(enums.weir_ct_flags, 'WEIR_CT_');
export const frontendFlag = lowerNames(enums.weir_frontend_flags, 'WEIR_FRONTEND_');

const PROGRAMS = {
  fromPod: ['from_pod', 'weir_from_pod'],
  fromHost: ['from_host', 'weir_from_host'],
  toPod: ['to_pod', 'weir_to_pod'],
  fromPod6: ['from_pod6', 'weir_from_pod6'],
  fromHost6: ['from_host6', 'weir_from_host6'],
} as const;
export type ProgramKey = keyof typeof PROGRAMS;

export interface ServiceDataplane extends ExplainMaps {
  bpffs: PrivateBpffs;
  objects: Record<ProgramKey, BpfObject>;
  frontends: TypedMap<WeirFrontend4Key, WeirFrontend4>;
  backends: TypedMap<WeirBackend4Key, WeirBackend4>;
  affinity: TypedMap<WeirAffinity4Key, WeirAffinity4>;
  conntrack: TypedMap<WeirCt4Key, WeirCt4>;
  sourceRanges: TypedMap<WeirLbSrc4Key, number>;
  /** the IPv6 maps (lib/lb6.h, lib/conntrack6.h), which weir explain reads as well */
  ipv6: {
    frontends: TypedMap<WeirFrontend6Key, WeirFrontend6>;
    backends: TypedMap<WeirBackend6Key, WeirBackend6>;
    affinity: TypedMap<WeirAffinity6Key, WeirAffinity6>;
    conntrack: TypedMap<WeirCt6Key, WeirCt6>;
    sourceRanges: TypedMap<WeirLbSrc6Key, number>;
  };
  run(prog: ProgramKey, data: Buffer): { retval: number; data: Buffer };
  /** counters summed over CPUs, as {hook: {reason: packets}} for non-zero slots only */
  counters(): Record<string, Record<string, number>>;
  resetCounters(): void;
  /** empty every service map (frontends, backends, affinity, conntrack; weir_lb_stats6 and weir_maglev4 too) and the counters */
  reset(): void;
  close(): Promise<void>;
}

function clear<K, V>(m: TypedMap<K, V>): void {
  m.deleteMany([...m.keys()]);
}

/** @consts .rodata knobs set before load in from_pod and from_host (e.g. lb_stats_enabled) */
export function loadServiceDataplane(consts: Record<string, ConstValue> = {}): ServiceDataplane {
  const bpffs = mountPrivateBpffs('service');
  const objects = {} as ServiceDataplane['objects'];
  try {
    for (const [key, [file]] of Object.entries(PROGRAMS) as [ProgramKey, readonly [string, string]][])
      objects[key] = BpfObject.load(join(OBJ_DIR, `${file}.o`), { pinDir: bpffs.path, consts: file === 'to_pod' ? {} : consts });
  } catch (e) {
    for (const o of Object.values(objects)) o.close();
    void bpffs.cleanup();
    throw e;
  }
  const map = objects.fromPod.map.bind(objects.fromPod);
  const map6 = objects.fromPod6.map.bind(objects.fromPod6);
  const counterMap = map('weir_counters');
  const dp: ServiceDataplane = {
    bpffs,
    objects,
    frontends: typedMap(map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4')),
    backends: typedMap(map('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4')),
    affinity: typedMap(map('weir_affinity4'), codecFor('weir_affinity4_key'), codecFor('weir_affinity4')),
    conntrack: typedMap(map('weir_ct4_v2'), codecFor('weir_ct4_key'), codecFor('weir_ct4')),
    sourceRanges: typedMap(map('weir_lb_src4'), codecFor('weir_lb_src4_key'), u8),
    // both families' tables, indexed by the programs with their maglev_table_size knob
    maglev: {
      tables: typedMap(map('weir_maglev4'), codecFor('weir_maglev4_key'), codecFor('weir_maglev4')),
      tableSize: Number(consts['maglev_table_size'] ?? MAGLEV_DEFAULT_TABLE_SIZE),
    },
    ipv6: {
      frontends: typedMap(map6('weir_frontend6'), codecFor('weir_frontend6_key'), codecFor('weir_frontend6')),
      backends: typedMap(map6('weir_backend6'), codecFor('weir_backend6_key'), codecFor('weir_backend6')),
      affinity: typedMap(map6('weir_affinity6'), codecFor('weir_affinity6_key'), codecFor('weir_affinity6')),
      conntrack: typedMap(map6('weir_ct6'), codecFor('weir_ct6_key'), codecFor('weir_ct6')),
      sourceRanges: typedMap(map6('weir_lb_src6'), codecFor('weir_lb_src6_key'), u8),
    },
    run(prog, data) {
      const r = objects[prog].program(PROGRAMS[prog][1]).testRun({ data, dataSizeOut: data.length + 256 });
      return { retval: r.retval, data: r.data };
    },
    counters: () => counterTotals(readCounters(counterMap)),
    resetCounters: () => resetCounters(counterMap),
    reset() {
      clear(dp.frontends);
      clear(dp.backends);
      clear(dp.affinity);
      clear(dp.conntrack);
      for (const m of [dp.ipv6.frontends, dp.ipv6.backends, dp.ipv6.affinity, dp.ipv6.conntrack]) clear(m as TypedMap<unknown, unknown>);
      // weir_lb_stats6 (per CPU: no typed map) and the Maglev tables start empty per case too
      for (const m of [map6('weir_lb_stats6'), map('weir_maglev4')]) {
        const keys = m.lookupBatch().map(([k]) => k);
        if (keys.length) m.deleteBatch(keys);
      }
      // an LPM trie has no batch delete
      for (const k of [...dp.sourceRanges.keys()]) dp.sourceRanges.delete(k);
      for (const k of [...dp.ipv6.sourceRanges.keys()]) dp.ipv6.sourceRanges.delete(k);
      dp.resetCounters();
    },
    async close() {
      for (const o of Object.values(objects)) o.close();
      await bpffs.cleanup();
    },
  };
  return dp;
}

export interface ServiceSpec {
  id: number;
  address: string;
  port: number;
  protocol?: number;
  scope?: 'internal' | 'external';
  /** frontend flag names: nodeport, reject, drop, affinity, ... */
  flags?: string[];
  affinityTimeout?: number;
  /** loadBalancerSourceRanges (CIDRs) in weir_lb_src4 under this id; set the source_ranges flag to enforce them */
  sourceRanges?: string[];
  /** the slots, in order; `missing` leaves a slot below the count unwritten (a reconciler bug) */
  backends: { address: string; port: number; missing?: boolean }[];
}

/** An IPv6 address (text), as the codecs write them. */
export const isIPv6 = (address: string): boolean => address.includes(':');

/** Program one frontend and its backend slots, as the reconciler would (slots, then count), in the maps of its address's family. */
export function addService(dp: ServiceDataplane, s: ServiceSpec): void {
  if (isIPv6(s.address)) return addService6(dp, s);
  s.backends.forEach((b, slot) => {
    if (b.missing) dp.backends.delete({ frontend_id: s.id, slot });
    else dp.backends.set({ frontend_id: s.id, slot }, { address: b.address, port: b.port, flags: 0 });
  });
  for (const cidr of s.sourceRanges ?? []) dp.sourceRanges.set(sourceRangeKey(s.id, cidr)!, 1);
  dp.frontends.set(
    { address: s.address, port: s.port, protocol: s.protocol ?? IPPROTO.tcp, scope: s.scope === 'external' ? 1 : 0 },
    { id: s.id, backend_count: s.backends.length, flags: flagBits(s), affinity_timeout: s.affinityTimeout ?? 0 },
  );
}

function flagBits(s: ServiceSpec): number {
  return (s.flags ?? []).reduce((bits, f) => {
    const bit = frontendFlag[f];
    if (bit === undefined) throw new Error(`unknown frontend flag ${f}`);
    return bits | bit;
  }, 0);
}

/** addService for an IPv6 frontend (weir_frontend6, weir_backend6). Source ranges are IPv4-only here. */
function addService6(dp: ServiceDataplane, s: ServiceSpec): void {
  if (s.sourceRanges?.length) throw new Error('addService: IPv6 source ranges are not written by the fixture');
  s.backends.forEach((b, slot) => {
    if (b.missing) dp.ipv6.backends.delete({ frontend_id: s.id, slot });
    else dp.ipv6.backends.set({ frontend_id: s.id, slot }, { address: b.address, port: b.port, flags: 0 });
  });
  dp.ipv6.frontends.set(
    { address: s.address, port: s.port, protocol: s.protocol ?? IPPROTO.tcp, scope: s.scope === 'external' ? 1 : 0 },
    { id: s.id, backend_count: s.backends.length, flags: flagBits(s), affinity_timeout: s.affinityTimeout ?? 0 },
  );
}
