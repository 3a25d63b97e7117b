// dataplane/host-policy-view: the host policy maps (include/weir/host_policy.h) read back for
// people: the HostPolicyPlan the daemon wrote, rebuilt from weir_hep_ifaces, weir_hep_chains,
// weir_host_rules, the set, failsafe and name maps (and weir_hep_info for what the maps do not
// need: endpoint names, labels), plus the per-rule counters. What `weir policy` prints and what
// `weir explain` walks with the model's evaluate() (one walk, not two).

import { readdirSync, readFileSync } from 'node:fs';
import type { BpfMap, TypedMap } from '../bpf/index.js';
import type { WeirFailsafe4Key, WeirHepChain, WeirHepChainKey, WeirHepIface, WeirHepIfaceKey, WeirHostPolicyName, WeirHostRule } from '../bpf/index.js';
import type { WeirHostSet4Key } from '../bpf/index.js';
import type { SetLookup } from '../model/host-policy/evaluate.js';
import {
  CHAIN_KINDS,
  type ChainKind,
  type ChainPlan,
  type FailsafeEntry,
  type HostEndpointPlan,
  type HostPolicyPlan,
  type HostRule,
} from '../model/host-policy/types.js';
import { fromCString } from './policy-maps.js';
import { ACTION, FAILSAFE_FIXED_BITS, HEP_XDP_ATTACHED, hostPolicyMaps, PROTOCOLS, RULE_FLAGS, SET_FIXED_BITS } from './host-policy-sync.js';

/** enum weir_host_rule_action value -> the model's action */
const ACTIONS = Object.fromEntries(Object.entries(ACTION).map(([name, value]) => [value, name])) as Record<number, HostRule['action']>;
const FAILSAFE_PROTOCOLS = Object.fromEntries(Object.entries(PROTOCOLS).map(([name, n]) => [n, name])) as Record<number, FailsafeEntry['protocol']>;

/** The host policy maps as the CLI reads them. The set and failsafe values are a flag (__u8 or __u32: whichever the object declares). */
export interface HostPolicyReadMaps {
  ifaces: TypedMap<WeirHepIfaceKey, WeirHepIface>;
  chains: TypedMap<WeirHepChainKey, WeirHepChain>;
  rules: TypedMap<number, WeirHostRule>;
  /** one shape for both families (addresses as text) */
  sets4: TypedMap<WeirHostSet4Key, number>;
  sets6?: TypedMap<WeirHostSet4Key, number>;
  failsafe4: TypedMap<WeirFailsafe4Key, number>;
  failsafe6?: TypedMap<WeirFailsafe4Key, number>;
  names: TypedMap<number, WeirHostPolicyName>;
  /** weir_host_rule_stats (per-CPU); absent: no counters shown */
  stats?: BpfMap;
  /** weir_hep_info: endpoint id -> JSON {name, auto, interfaces, expectedIPs, labels}; absent: endpoints named by id */
  info?: TypedMap<number, Buffer>;
}

/** The host policy maps by pin name, or undefined when the instance has none (a release or a daemon without host policy). */
export function hostPolicyReadMaps(open: (name: string) => BpfMap, has: (name: string) => boolean): HostPolicyReadMaps | undefined {
  if (!has('weir_hep_chains') || !has('weir_host_rules') || !has('weir_hep_ifaces')) return undefined;
  // the writer's typed views; the per-CPU stats raw (the CLI sums the CPUs itself)
  const { stats: _typed, ...maps } = hostPolicyMaps(open, has);
  return { ...maps, ...(has('weir_host_rule_stats') && { stats: open('weir_host_rule_stats') }) };
}

/** What weir_hep_info holds of an endpoint (the maps the programs read do not need it). */
export interface HepInfo {
  name: string;
  auto: boolean;
  interfaces: '*' | string[];
  expectedIPs: string[];
  labels: Record<string, string>;
}

function parseHepInfo(v: Buffer | undefined): (HepInfo & { labelsTruncated?: boolean }) | undefined {
  if (!v) return undefined;
  try {
    const j = JSON.parse(fromCString(v)) as Partial<HepInfo> & { labelsTruncated?: boolean };
    if (typeof j.name !== 'string') return undefined;
    return {
      name: j.name,
      auto: j.auto === true,
      interfaces: j.interfaces === '*' || Array.isArray(j.interfaces) ? j.interfaces : [],
      expectedIPs: Array.isArray(j.expectedIPs) ? j.expectedIPs : [],
      labels: j.labels && typeof j.labels === 'object' ? j.labels : {},
      ...(j.labelsTruncated ? { labelsTruncated: true } : {}),
    };
  } catch {
    return undefined;
  }
}

/** A weir_host_rules entry back to the model's rule. */
export function decodeRule(r: WeirHostRule): HostRule {
  const out: HostRule = { action: ACTIONS[r.action] ?? 'deny', policy: r.policy, rule: r.rule };
  if (r.flags & RULE_FLAGS.protocol) out.protocol = r.protocol;
  if (r.flags & RULE_FLAGS.sports) out.sports = [r.sport_min, r.sport_max];
  if (r.flags & RULE_FLAGS.dports) out.dports = [r.dport_min, r.dport_max];
  if (r.flags & RULE_FLAGS.ipv4) out.family = 4;
  else if (r.flags & RULE_FLAGS.ipv6) out.family = 6;
  if (r.src_set) out.srcSet = r.src_set;
  if (r.src_not_set) out.srcNotSet = r.src_not_set;
  if (r.dst_set) out.dstSet = r.dst_set;
  if (r.dst_not_set) out.dstNotSet = r.dst_not_set;
  if (out.action === 'pass') out.jump = r.jump;
  if (r.flags & RULE_FLAGS.tierEnd) out.compiled = 'tierEnd';
  else if (r.flags & RULE_FLAGS.profile) out.compiled = 'profile';
  return out;
}

/** ifindex -> interface name in this network namespace (/sys/class/net), for the interfaces weir_hep_ifaces names. */
export function interfaceNames(): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const n of readdirSync('/sys/class/net')) {
      try {
        out.set(Number(readFileSync(`/sys/class/net/${n}/ifindex`, 'utf8').trim()), n);
      } catch {
        /* gone meanwhile */
      }
    }
  } catch {
    /* no sysfs: ifindexes only */
  }
  return out;
}

/** An interface weir_hep_ifaces maps to an endpoint. */
export interface HepInterface {
  ifindex: number;
  /** the name in this netns; absent when no interface has that index here */
  name?: string;
  /** the XDP prefilter runs on it (WEIR_HEP_XDP_ATTACHED) */
  xdp: boolean;
}

/** The plan rebuilt from the maps, with what only the maps know: per-endpoint interfaces, and info where weir_hep_info has it. */
export interface MapPlan extends HostPolicyPlan {
  interfaces: Map<number, HepInterface[]>;
  /** endpoint id -> the ifindexes it covers (weir_hep_ifaces) */
  hepOfIfindex: Map<number, number>;
}

/** Reads the host policy maps back into a HostPolicyPlan (only the rules chains point at). */
export function planFromMaps(maps: HostPolicyReadMaps, ifnames: Map<number, string> = interfaceNames()): MapPlan {
  const interfaces = new Map<number, HepInterface[]>();
  const hepOfIfindex = new Map<number, number>();
  const heps = new Set<number>();
  for (const [k, v] of maps.ifaces.entries()) {
    heps.add(v.hep);
    hepOfIfindex.set(k.ifindex, v.hep);
    const name = ifnames.get(k.ifindex);
    const l = interfaces.get(v.hep) ?? [];
    l.push({ ifindex: k.ifindex, ...(name !== undefined ? { name } : {}), xdp: (v.flags & HEP_XDP_ATTACHED) !== 0 });
    interfaces.set(v.hep, l);
  }
  for (const l of interfaces.values()) l.sort((a, b) => a.ifindex - b.ifindex);
  const chains: ChainPlan[] = [];
  for (const [k, v] of maps.chains.entries()) {
    const kind = CHAIN_KINDS[k.kind];
    if (kind === undefined) continue;
    heps.add(k.hep);
    chains.push({ hep: k.hep, kind, first: v.first, count: v.count });
  }
  chains.sort((a, b) => a.hep - b.hep || CHAIN_KINDS.indexOf(a.kind) - CHAIN_KINDS.indexOf(b.kind));
  const rules: HostRule[] = [];
  for (const c of chains)
    for (let i = c.first; i < c.first + c.count; i++) {
      if (rules[i]) continue;
      const r = maps.rules.get(i);
      if (r) rules[i] = decodeRule(r);
    }
  const sets = new Map<number, string[]>();
  for (const m of [maps.sets4, maps.sets6])
    for (const [k] of m?.entries() ?? []) {
      const l = sets.get(k.set) ?? [];
      l.push(`${k.address}/${k.prefixlen - SET_FIXED_BITS}`);
      sets.set(k.set, l);
    }
  const policyNames = new Map<number, string>();
  for (const [slot, v] of maps.names.entries()) policyNames.set(slot, fromCString(v.name));
  const failsafes: FailsafeEntry[] = [];
  const seen = new Set<string>();
  for (const m of [maps.failsafe4, maps.failsafe6])
    for (const [k] of m?.entries() ?? []) {
      const bits = k.prefixlen - FAILSAFE_FIXED_BITS;
      const f: FailsafeEntry = {
        direction: k.direction === 1 ? 'out' : 'in',
        protocol: FAILSAFE_PROTOCOLS[k.protocol] ?? 'tcp',
        port: k.port,
        ...(bits > 0 ? { net: `${k.address}/${bits}` } : {}),
      };
      const t = `${f.direction}/${f.protocol}/${f.port}/${f.net ?? ''}`;
      if (seen.has(t)) continue;
      seen.add(t);
      failsafes.push(f);
    }
  failsafes.sort((a, b) => a.direction.localeCompare(b.direction) || a.protocol.localeCompare(b.protocol) || a.port - b.port);
  const endpoints: HostEndpointPlan[] = [...heps]
    .sort((a, b) => a - b)
    .map((id) => {
      const info = parseHepInfo(maps.info?.get(id));
      const policies: HostEndpointPlan['policies'] = [];
      for (const c of chains.filter((x) => x.hep === id))
        for (const slot of chainPolicySlots(c, rules)) policies.push({ chain: c.kind, slot, name: policyNames.get(slot) ?? `slot:${slot}` });
      return {
        id,
        name: info?.name ?? `hep:${id}`,
        auto: info?.auto ?? false,
        interfaces: info?.interfaces ?? (interfaces.get(id) ?? []).map((i) => i.name ?? `if${i.ifindex}`),
        expectedIPs: info?.expectedIPs ?? [],
        labels: info?.labels ?? {},
        profiles: [],
        policies,
      };
    });
  return { endpoints, chains, rules, sets, policyNames, failsafes, errors: [], interfaces, hepOfIfindex };
}

/** The policy slots a chain's rules come from, in evaluation order (each once). */
export function chainPolicySlots(c: ChainPlan, rules: readonly HostRule[]): number[] {
  const out: number[] = [];
  for (let i = c.first; i < c.first + c.count; i++) {
    const slot = rules[i]?.policy ?? 0;
    if (slot !== 0 && !out.includes(slot)) out.push(slot);
  }
  return out;
}

/** Set membership as the programs test it: a longest-prefix lookup in weir_host_sets4/6. */
export function mapSetLookup(maps: HostPolicyReadMaps): SetLookup {
  return (set, address) => {
    const m = address.includes(':') ? maps.sets6 : maps.sets4;
    if (!m) return false;
    return m.get({ prefixlen: SET_FIXED_BITS + (address.includes(':') ? 128 : 32), set, address }) !== undefined;
  };
}

/** weir_host_rule_stats of `index`, summed over CPUs (zero when the map or the slot is absent). */
export function ruleStats(maps: HostPolicyReadMaps, index: number): { packets: bigint; bytes: bigint } {
  let packets = 0n;
  let bytes = 0n;
  const key = Buffer.alloc(4);
  key.writeUInt32LE(index);
  for (const cpu of maps.stats?.lookupPerCpu(key) ?? []) {
    packets += cpu.readBigUInt64LE(0);
    bytes += cpu.readBigUInt64LE(8);
  }
  return { packets, bytes };
}

/** The chains whose rules judge packets arriving at the host (ingress) and those it sends or forwards (egress). */
export const CHAIN_DIRECTION: Record<ChainKind, 'ingress' | 'egress'> = {
  untrackedIn: 'ingress',
  untrackedOut: 'egress',
  preDnatIn: 'ingress',
  normalIn: 'ingress',
  normalOut: 'egress',
  forwardIn: 'ingress',
  forwardOut: 'egress',
};
