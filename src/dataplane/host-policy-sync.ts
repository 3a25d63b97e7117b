// dataplane/host-policy-sync: the compiled host policy (model/host-policy: HostPolicyPlan) written
// into the maps of include/weir/host_policy.h as differences to what they hold. Order, so no
// packet ever meets a half-written policy: policy names and set entries first (rules name them),
// failsafes, then the rules into the half of weir_host_rules not in use (double-buffered), then
// the chain entries (the switch), then the interface entries, and only then what is gone (old
// chains, interfaces, set entries, failsafes, names). A restart adopts the maps: an unchanged
// plan writes nothing.

import {
  type BpfMap,
  bytes,
  type Codec,
  codecFor,
  enums,
  typedMap,
  u8,
  u32,
  type TypedMap,
  type WeirFailsafe4Key,
  type WeirFailsafe6Key,
  type WeirHepChain,
  type WeirHepChainKey,
  type WeirHepIface,
  type WeirHepIfaceKey,
  type WeirHostPolicyName,
  type WeirHostRule,
  type WeirHostRuleStats,
  type WeirHostSet4Key,
} from '../bpf/index.js';
import { parseCidr } from '../bpf/ip.js';
import { errText } from '../log.js';
import { CHAIN_KINDS, type ChainKind, type HostEndpointPlan, type HostPolicyPlan, type HostRule } from '../model/host-policy/types.js';
import { cString, fromCString } from './policy-entries.js';

/** weir_host_rules max_entries (host_policy.h); each half holds one generation of rules */
export const HOST_RULES_ENTRIES = 16384;
export const HOST_POLICY_NAME_LEN = 320;
/** host_policy.h WEIR_HOST_SET_FIXED_BITS / WEIR_FAILSAFE_FIXED_BITS (defines: not in BTF) */
export const SET_FIXED_BITS = 32;
export const FAILSAFE_FIXED_BITS = 32;
// the ABI's values, read from BTF (abi.gen.ts): host_policy.h enum weir_host_rule_action, weir_host_rule_flags, weir_hep_iface_flags
const A = enums.weir_host_rule_action;
const F = enums.weir_host_rule_flags;
export const ACTION = { allow: A.WEIR_HOST_ALLOW, deny: A.WEIR_HOST_DENY, pass: A.WEIR_HOST_PASS } as const;
export const RULE_FLAGS = {
  protocol: F.WEIR_HOST_RULE_PROTOCOL,
  sports: F.WEIR_HOST_RULE_SPORTS,
  dports: F.WEIR_HOST_RULE_DPORTS,
  ipv4: F.WEIR_HOST_RULE_IPV4,
  ipv6: F.WEIR_HOST_RULE_IPV6,
  tierEnd: F.WEIR_HOST_RULE_TIER_END,
  profile: F.WEIR_HOST_RULE_PROFILE,
} as const;
export const HEP_XDP_ATTACHED = enums.weir_hep_iface_flags.WEIR_HEP_XDP_ATTACHED;
/** a failsafe entry's protocol -> IPPROTO_* */
export const PROTOCOLS = { tcp: 6, udp: 17, sctp: 132 } as const;

/** The host policy maps, typed (loader.ts hostPolicyMaps). The set and failsafe values are a __u8 flag. */
export interface HostPolicyMaps {
  ifaces: TypedMap<WeirHepIfaceKey, WeirHepIface>;
  chains: TypedMap<WeirHepChainKey, WeirHepChain>;
  rules: TypedMap<number, WeirHostRule>;
  /** one shape for both families (addresses as text) */
  sets4: TypedMap<WeirHostSet4Key, number>;
  sets6: TypedMap<WeirHostSet4Key, number>;
  failsafe4: TypedMap<WeirFailsafe4Key, number>;
  failsafe6: TypedMap<WeirFailsafe6Key, number>;
  names: TypedMap<number, WeirHostPolicyName>;
  /** per-CPU counts per rule index (absent: an object without it; nothing to clear) */
  stats?: TypedMap<number, WeirHostRuleStats>;
  /** host endpoint id -> its description for `weir policy` (CLI only; absent: an object without it) */
  info?: TypedMap<number, Buffer>;
}

/**
 * Typed views of the host policy maps (by pin name through `m`). The set and failsafe maps'
 * values are a flag: __u8 or __u32, whichever the object declares.
 */
export function hostPolicyMaps(m: (name: string) => BpfMap, has: (name: string) => boolean = () => true): HostPolicyMaps {
  const flagCodec = (name: string) => (m(name).valueSize === 1 ? u8 : u32);
  const flag = <K>(name: string, key: Codec<K>): TypedMap<K, number> => typedMap(m(name), key, flagCodec(name));
  return {
    ifaces: typedMap(m('weir_hep_ifaces'), codecFor('weir_hep_iface_key'), codecFor('weir_hep_iface')),
    chains: typedMap(m('weir_hep_chains'), codecFor('weir_hep_chain_key'), codecFor('weir_hep_chain')),
    rules: typedMap(m('weir_host_rules'), u32, codecFor('weir_host_rule')),
    sets4: flag('weir_host_sets4', codecFor('weir_host_set4_key')),
    sets6: flag('weir_host_sets6', codecFor('weir_host_set6_key')),
    failsafe4: flag('weir_failsafe4', codecFor('weir_failsafe4_key')),
    failsafe6: flag('weir_failsafe6', codecFor('weir_failsafe6_key')),
    names: typedMap(m('weir_host_policy_names'), u32, codecFor('weir_host_policy_name')),
    ...(has('weir_host_rule_stats') && { stats: typedMap(m('weir_host_rule_stats'), u32, codecFor('weir_host_rule_stats')) }),
    ...(has('weir_hep_info') && { info: typedMap(m('weir_hep_info'), u32, bytes(HEP_INFO_LEN)) }),
  };
}

/** weir_hep_info's value: struct weir_hep_info { char text[WEIR_HEP_INFO_LEN]; } */
export const HEP_INFO_LEN = 1024;

/**
 * The weir_hep_info value of `e` (for the writer): its JSON, NUL-terminated in HEP_INFO_LEN
 * bytes. Labels that do not fit are left out and the text says so (`labelsTruncated`).
 */
export function hepInfoValue(e: Pick<HostEndpointPlan, 'name' | 'auto' | 'interfaces' | 'expectedIPs' | 'labels'>): Buffer {
  const base = { name: e.name, auto: e.auto, interfaces: e.interfaces, expectedIPs: e.expectedIPs };
  let text = JSON.stringify({ ...base, labels: e.labels });
  if (Buffer.byteLength(text) >= HEP_INFO_LEN) text = JSON.stringify({ ...base, labels: {}, labelsTruncated: true });
  const out = Buffer.alloc(HEP_INFO_LEN);
  Buffer.from(text).copy(out, 0, 0, HEP_INFO_LEN - 1);
  return out;
}

/** Why an entry was not written (weir_host_policy_errors_total{reason}). */
export type HostPolicyErrorReason = 'rules_full' | 'map_full' | 'bad_entry' | 'write_failed';

export interface HostPolicyFailure {
  reason: HostPolicyErrorReason;
  map: string;
  key: string;
  error: string;
}

export interface HostPolicyWriteResult {
  writes: number;
  errors: number;
  /** the half of weir_host_rules the chains point into (0 or 1) */
  half: number;
  rules: number;
  chains: number;
  ifaces: number;
  ms: number;
}

/** A host interface as the daemon knows it (interfaces.ts, the 'host' class). */
export interface HostIface {
  ifname: string;
  ifindex: number;
}

/**
 * weir_hep_ifaces as it should be: each host interface -> the endpoint covering it. A
 * HostEndpoint naming the interface beats a `*` one; among `*` ones an explicit HostEndpoint
 * beats the automatic one, then the lower id. XDP-attached interfaces carry the flag.
 */
export function hepIfaces(plan: Pick<HostPolicyPlan, 'endpoints'>, hosts: readonly HostIface[], xdpAttached: ReadonlySet<number>): Map<number, WeirHepIface> {
  const rank = (e: HostPolicyPlan['endpoints'][number]) => (e.interfaces === '*' ? (e.auto ? 2 : 1) : 0);
  const ordered = [...plan.endpoints].sort((a, b) => rank(a) - rank(b) || a.id - b.id);
  const out = new Map<number, WeirHepIface>();
  for (const h of hosts) {
    const e = ordered.find((x) => x.interfaces === '*' || x.interfaces.includes(h.ifname));
    if (e) out.set(h.ifindex, { hep: e.id, flags: xdpAttached.has(h.ifindex) ? HEP_XDP_ATTACHED : 0 });
  }
  return out;
}

/** One plan rule as struct weir_host_rule, its jump relative to the half starting at `base`. */
export function encodeHostRule(r: HostRule, base: number): WeirHostRule {
  let flags = 0;
  if (r.protocol !== undefined) flags |= RULE_FLAGS.protocol;
  if (r.sports) flags |= RULE_FLAGS.sports;
  if (r.dports) flags |= RULE_FLAGS.dports;
  if (r.family === 4) flags |= RULE_FLAGS.ipv4;
  if (r.family === 6) flags |= RULE_FLAGS.ipv6;
  if (r.compiled === 'tierEnd') flags |= RULE_FLAGS.tierEnd;
  if (r.compiled === 'profile') flags |= RULE_FLAGS.profile;
  return {
    action: ACTION[r.action],
    protocol: r.protocol ?? 0,
    flags,
    jump: r.action === 'pass' ? base + (r.jump ?? 0) : 0,
    sport_min: r.sports?.[0] ?? 0,
    sport_max: r.sports?.[1] ?? 0,
    dport_min: r.dports?.[0] ?? 0,
    dport_max: r.dports?.[1] ?? 0,
    src_set: r.srcSet ?? 0,
    src_not_set: r.srcNotSet ?? 0,
    dst_set: r.dstSet ?? 0,
    dst_not_set: r.dstNotSet ?? 0,
    policy: r.policy,
    rule: r.rule,
  };
}

/** A rule's identity independent of the half it sits in (a PASS jump made relative). */
function ruleText(r: WeirHostRule, base: number): string {
  const jump = r.action === ACTION.pass ? r.jump - base : 0;
  return [
    r.action,
    r.protocol,
    r.flags,
    jump,
    r.sport_min,
    r.sport_max,
    r.dport_min,
    r.dport_max,
    r.src_set,
    r.src_not_set,
    r.dst_set,
    r.dst_not_set,
    r.policy,
    r.rule,
  ].join(',');
}

const chainText = (hep: number, kind: number) => `${hep}/${kind}`;
const kindNumber = (k: ChainKind) => CHAIN_KINDS.indexOf(k);

interface SetEntry {
  family: 4 | 6;
  key: WeirHostSet4Key;
}
interface FailsafeKey {
  family: 4 | 6;
  key: WeirFailsafe4Key;
}

const setText = (family: number, k: WeirHostSet4Key) => `${family}|${k.set}|${k.address}/${k.prefixlen - SET_FIXED_BITS}`;
const failsafeText = (family: number, k: WeirFailsafe4Key) =>
  `${family}|${k.direction}|${k.protocol}|${k.port}|${k.address}/${k.prefixlen - FAILSAFE_FIXED_BITS}`;

function failureReason(e: unknown): HostPolicyErrorReason {
  const code = (e as { code?: unknown })?.code;
  return code === 'E2BIG' || code === 'ENOSPC' || code === 'ENOMEM' || /E2BIG|full/.test(errText(e)) ? 'map_full' : 'write_failed';
}

/**
 * Writes HostPolicyPlans into the maps as differences to what they hold (read back by adopt():
 * after a restart an unchanged plan costs no write, and enforcement never pauses).
 */
export class HostPolicyWriter {
  readonly stats = { applies: 0, writes: 0, errors: 0 };
  private adopted = false;
  private readonly half: number;
  /** the half the chains point into, and the rules there (relative text), by index in the half */
  private active = 0;
  private rules: string[] = [];
  /** `${hep}/${kind}` -> chain relative to the active half */
  private chains = new Map<string, { first: number; count: number }>();
  private ifaces = new Map<number, WeirHepIface>();
  private sets = new Map<string, SetEntry>();
  private failsafes = new Map<string, FailsafeKey>();
  private names = new Map<number, string>();
  /** host endpoint id -> the weir_hep_info text written */
  private infos = new Map<number, string>();
  private failures: HostPolicyFailure[] = [];

  constructor(
    private readonly maps: HostPolicyMaps,
    /** weir_host_rules max_entries (tests give a small one) */
    capacity = HOST_RULES_ENTRIES,
  ) {
    this.half = Math.floor(capacity / 2);
  }

  /** Reads the pinned maps (the state a restart starts from). */
  adopt(): { chains: number; rules: number; ifaces: number } {
    this.chains.clear();
    this.ifaces.clear();
    this.sets.clear();
    this.failsafes.clear();
    this.names.clear();
    const raw: Array<[WeirHepChainKey, WeirHepChain]> = [...this.maps.chains.entries()];
    // the half in use: where the chains point (every chain in one half once a switch completed)
    this.active = raw.some(([, v]) => v.first >= this.half) ? 1 : 0;
    const base = this.active * this.half;
    let end = 0;
    for (const [k, v] of raw) {
      this.chains.set(chainText(k.hep, k.kind), { first: v.first - base, count: v.count });
      end = Math.max(end, v.first - base + v.count);
    }
    this.rules = [];
    for (let i = 0; i < Math.min(end, this.half); i++) {
      const r = this.maps.rules.get(base + i);
      this.rules.push(r ? ruleText(r, base) : '');
    }
    for (const [k, v] of this.maps.ifaces.entries()) this.ifaces.set(k.ifindex, v);
    for (const [family, m] of [
      [4, this.maps.sets4],
      [6, this.maps.sets6],
    ] as const)
      for (const k of m.keys()) this.sets.set(setText(family, k), { family, key: k });
    for (const [family, m] of [
      [4, this.maps.failsafe4],
      [6, this.maps.failsafe6],
    ] as const)
      for (const k of m.keys()) this.failsafes.set(failsafeText(family, k), { family, key: k });
    for (const [slot, v] of this.maps.names.entries()) this.names.set(slot, fromCString(v.name));
    this.infos.clear();
    for (const [id, v] of this.maps.info?.entries() ?? []) this.infos.set(id, fromCString(v));
    this.adopted = true;
    return { chains: this.chains.size, rules: this.rules.length, ifaces: this.ifaces.size };
  }

  takeFailures(): HostPolicyFailure[] {
    const f = this.failures;
    this.failures = [];
    return f;
  }

  /**
   * What the adopted maps say about ids, as a plan for the compiler's `previous` after a restart:
   * set ids with their CIDRs and policy slots with their names (the rest empty), so that an
   * unchanged cluster compiles to the same ids and writes nothing.
   */
  adoptedPlan(): HostPolicyPlan {
    const sets = new Map<number, string[]>();
    for (const e of this.sets.values()) {
      const list = sets.get(e.key.set) ?? [];
      list.push(`${e.key.address}/${e.key.prefixlen - SET_FIXED_BITS}`);
      sets.set(e.key.set, list);
    }
    for (const l of sets.values()) l.sort();
    return { endpoints: [], chains: [], rules: [], sets, policyNames: new Map(this.names), failsafes: [], errors: [] };
  }

  /** Slot -> "tier/name", as written. */
  policyNames(): Map<number, string> {
    return new Map(this.names);
  }

  private fail(reason: HostPolicyErrorReason, map: string, key: string, error: string): void {
    this.stats.errors++;
    this.failures.push({ reason, map, key, error });
  }

  private op(map: string, key: string, f: () => void): boolean {
    try {
      f();
      this.stats.writes++;
      return true;
    } catch (e) {
      this.fail(failureReason(e), map, key, errText(e));
      return false;
    }
  }

  /** `plan` into the maps; `ifaces` is weir_hep_ifaces as it should be (hepIfaces()). */
  apply(plan: HostPolicyPlan, ifaces: ReadonlyMap<number, WeirHepIface>): HostPolicyWriteResult {
    const t0 = performance.now();
    if (!this.adopted) this.adopt();
    this.stats.applies++;
    const before = { writes: this.stats.writes, errors: this.stats.errors };

    // 1. policy names (rules carry the slots; the CLI names them)
    for (const [slot, name] of plan.policyNames) {
      if (this.names.get(slot) === name) continue;
      const b = cString(name, HOST_POLICY_NAME_LEN);
      if (!b) this.fail('bad_entry', 'weir_host_policy_names', String(slot), `name longer than ${HOST_POLICY_NAME_LEN - 1} bytes: ${name.slice(0, 60)}...`);
      else if (this.op('weir_host_policy_names', name, () => this.maps.names.set(slot, { name: b }))) this.names.set(slot, name);
    }

    // 2. set entries before the rules that name them
    const wantSets = new Map<string, SetEntry>();
    for (const [set, cidrs] of plan.sets)
      for (const cidr of cidrs) {
        const c = parseCidr(cidr.includes('/') ? cidr : `${cidr}/${cidr.includes(':') ? 128 : 32}`);
        if (!c || set < 1) {
          this.fail('bad_entry', 'weir_host_sets', `${set}:${cidr}`, 'not an address or CIDR');
          continue;
        }
        const key = { prefixlen: SET_FIXED_BITS + c.prefix, set, address: c.address };
        wantSets.set(setText(c.family, key), { family: c.family, key });
      }
    for (const [t, e] of wantSets) {
      if (this.sets.has(t)) continue;
      const m = e.family === 4 ? this.maps.sets4 : this.maps.sets6;
      if (this.op(`weir_host_sets${e.family}`, t, () => m.set(e.key, 1))) this.sets.set(t, e);
    }

    // 3. failsafes: added now, removed at the end (never a moment without one still wanted)
    const wantFailsafes = new Map<string, FailsafeKey>();
    for (const f of plan.failsafes) {
      const nets = f.net ? [f.net] : ['0.0.0.0/0', '::/0'];
      for (const net of nets) {
        const c = parseCidr(net.includes('/') ? net : `${net}/${net.includes(':') ? 128 : 32}`);
        const protocol = PROTOCOLS[f.protocol];
        if (!c || !protocol || !Number.isInteger(f.port) || f.port < 0 || f.port > 65535) {
          this.fail('bad_entry', 'weir_failsafe', `${f.direction}:${f.protocol}:${net}:${f.port}`, 'bad failsafe entry');
          continue;
        }
        const key = { prefixlen: FAILSAFE_FIXED_BITS + c.prefix, direction: f.direction === 'in' ? 0 : 1, protocol, port: f.port, address: c.address };
        wantFailsafes.set(failsafeText(c.family, key), { family: c.family, key });
      }
    }
    for (const [t, e] of wantFailsafes) {
      if (this.failsafes.has(t)) continue;
      const m = e.family === 4 ? this.maps.failsafe4 : this.maps.failsafe6;
      if (this.op(`weir_failsafe${e.family}`, t, () => m.set(e.key, 1))) this.failsafes.set(t, e);
    }

    // 4. rules and chains: unchanged -> nothing; else the new generation into the other half, then the switch
    const wantChains = new Map(plan.chains.map((c) => [chainText(c.hep, kindNumber(c.kind)), { first: c.first, count: c.count }]));
    const end = plan.chains.reduce((n, c) => Math.max(n, c.first + c.count), 0);
    const wantRules = plan.rules.slice(0, end).map((r) => ruleText(encodeHostRule(r, 0), 0));
    const same =
      wantRules.length === this.rules.length &&
      wantRules.every((t, i) => t === this.rules[i]) &&
      wantChains.size === this.chains.size &&
      [...wantChains].every(([t, c]) => this.chains.get(t)?.first === c.first && this.chains.get(t)?.count === c.count);
    let switched = same;
    if (!same) {
      if (end > this.half) {
        // keep the generation in force rather than cut chains short: enforcement stays as it was
        this.fail('rules_full', 'weir_host_rules', `${end} rules`, `the plan needs ${end} rules, a half of weir_host_rules holds ${this.half}`);
      } else switched = this.switchTo(plan, wantChains, wantRules, end);
    }

    // 5. interfaces (their endpoints' chains are in place)
    for (const [ifindex, v] of ifaces) {
      const h = this.ifaces.get(ifindex);
      if (h && h.hep === v.hep && h.flags === v.flags) continue;
      if (this.op('weir_hep_ifaces', String(ifindex), () => this.maps.ifaces.set({ ifindex }, v))) this.ifaces.set(ifindex, v);
    }

    // the endpoints' descriptions (CLI only: no program reads them)
    const infos = this.maps.info;
    if (infos) {
      const want = new Map(plan.endpoints.map((e) => [e.id, hepInfoValue(e)]));
      for (const [id, v] of want) {
        const text = fromCString(v);
        if (this.infos.get(id) !== text && this.op('weir_hep_info', String(id), () => infos.set(id, v))) this.infos.set(id, text);
      }
      for (const id of [...this.infos.keys()]) if (!want.has(id) && this.op('weir_hep_info', String(id), () => infos.delete(id))) this.infos.delete(id);
    }

    // 6. what is gone: interfaces, then (once the rules naming them are out of use) set entries and names
    for (const ifindex of [...this.ifaces.keys()])
      if (!ifaces.has(ifindex) && this.op('weir_hep_ifaces', String(ifindex), () => this.maps.ifaces.delete({ ifindex }))) this.ifaces.delete(ifindex);
    for (const [t, e] of [...this.failsafes])
      if (!wantFailsafes.has(t)) {
        const m = e.family === 4 ? this.maps.failsafe4 : this.maps.failsafe6;
        if (this.op(`weir_failsafe${e.family}`, t, () => m.delete(e.key))) this.failsafes.delete(t);
      }
    if (switched) {
      for (const [t, e] of [...this.sets])
        if (!wantSets.has(t)) {
          const m = e.family === 4 ? this.maps.sets4 : this.maps.sets6;
          if (this.op(`weir_host_sets${e.family}`, t, () => m.delete(e.key))) this.sets.delete(t);
        }
      for (const slot of [...this.names.keys()])
        if (!plan.policyNames.has(slot) && this.op('weir_host_policy_names', String(slot), () => this.maps.names.delete(slot))) this.names.delete(slot);
    }

    return {
      writes: this.stats.writes - before.writes,
      errors: this.stats.errors - before.errors,
      half: this.active,
      rules: this.rules.length,
      chains: this.chains.size,
      ifaces: this.ifaces.size,
      ms: performance.now() - t0,
    };
  }

  /** Rules into the half not in use, then every chain entry pointed there, then old chains deleted. */
  private switchTo(plan: HostPolicyPlan, wantChains: Map<string, { first: number; count: number }>, wantRules: string[], end: number): boolean {
    const next = 1 - this.active;
    const base = next * this.half;
    const batch = plan.rules.slice(0, end).map((r, i) => [base + i, encodeHostRule(r, base)] as const);
    // the half's counts are two generations old: zeroed while no chain points there (per-rule counters start at 0)
    const stats = this.maps.stats;
    if (stats && batch.length) {
      const zero = { packets: 0n, bytes: 0n };
      try {
        stats.setMany(batch.map(([i]) => [i, zero] as const));
      } catch (e) {
        this.fail(failureReason(e), 'weir_host_rule_stats', `${base}..${base + end - 1}`, errText(e));
      }
    }
    let ok = true;
    try {
      if (batch.length) this.maps.rules.setMany(batch);
      this.stats.writes += batch.length;
    } catch {
      for (const [i, r] of batch) ok = this.op('weir_host_rules', String(i), () => this.maps.rules.set(i, r)) && ok;
    }
    // a rule missing from the new half: the switch would point chains at garbage; stay on the old one
    if (!ok) return false;
    this.active = next;
    this.rules = wantRules;
    const previous = this.chains;
    this.chains = new Map();
    for (const [t, c] of wantChains) {
      const [hep, kind] = t.split('/').map(Number) as [number, number];
      if (this.op('weir_hep_chains', t, () => this.maps.chains.set({ hep, kind }, { first: base + c.first, count: c.count }))) this.chains.set(t, c);
    }
    for (const t of previous.keys()) {
      if (wantChains.has(t)) continue;
      const [hep, kind] = t.split('/').map(Number) as [number, number];
      // not deleted: it still points at the old half, which the next switch overwrites; keep it known so it is retried
      if (!this.op('weir_hep_chains', t, () => this.maps.chains.delete({ hep, kind }))) this.chains.set(t, previous.get(t)!);
    }
    return true;
  }
}
