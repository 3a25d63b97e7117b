// model/host-policy/compile: sources' objects -> HostPolicyPlan for this node (types.ts): its host
// endpoints, their chains of flat rules with Calico's tiers compiled in (order, Pass jumps,
// end-of-tier deny, profiles), address sets and policy slots, ids kept stable across rebuilds.
// The dataplane writer (src/dataplane/host-policy-sync.ts) writes the plan; evaluate.ts walks it.

import type { V1Namespace, V1Node, V1Pod } from '@kubernetes/client-node';
import { cidrContains } from '../../bpf/ip.js';
import { autoHostEndpoint, buildUniverse, resolveAddresses, resolveNamedPort, type AddressUniverse } from './endpoints.js';
import { allocateIds, setKey } from './ids.js';
import { matches } from './selector.js';
import { CHAIN_KINDS, type ChainKind, type ChainPlan, type FailsafeEntry, type HostEndpointPlan, type HostPolicyPlan, type HostRule } from './types.js';
import {
  KNOWN_TIERS,
  PROFILE_DEFAULT_ALLOW,
  validateGlobalNetworkPolicy,
  validateHostEndpoint,
  type ValidEntityRule,
  type ValidHostEndpoint,
  type ValidPolicy,
  type ValidRule,
  type Validated,
} from './validate.js';

export interface HostPolicyInput {
  nodeName: string;
  nodes: Iterable<V1Node>;
  pods: Iterable<V1Pod>;
  namespaces: Iterable<V1Namespace>;
  /** projectcalico.org/v3 objects as the sources store them (checked here) */
  globalNetworkPolicies: Iterable<unknown>;
  hostEndpoints: Iterable<unknown>;
  failsafes: FailsafeEntry[];
  autoHostEndpoints: boolean;
  /** the last plan: its host endpoint ids, set ids and policy slots are kept */
  previous?: HostPolicyPlan;
}

// objects are replaced, not mutated, on change: check each one once
const policyCache = new WeakMap<object, Validated<ValidPolicy>>();
const hepCache = new WeakMap<object, Validated<ValidHostEndpoint>>();

function cached<T>(cache: WeakMap<object, Validated<T>>, obj: unknown, check: (o: unknown) => Validated<T>): Validated<T> {
  if (typeof obj !== 'object' || obj === null) return check(obj);
  let v = cache.get(obj);
  if (!v) {
    v = check(obj);
    cache.set(obj, v);
  }
  return v;
}

/** Which chain a policy's rules of one direction go to (Calico's per-HEP sets, felix/calc/event_sequencer.go). */
function chainsOf(p: ValidPolicy): Array<{ kind: ChainKind; rules: ValidRule[] }> {
  const out: Array<{ kind: ChainKind; rules: ValidRule[] }> = [];
  if (p.doNotTrack) {
    if (p.ingressType) out.push({ kind: 'untrackedIn', rules: p.ingress });
    if (p.egressType) out.push({ kind: 'untrackedOut', rules: p.egress });
  } else if (p.preDNAT) {
    if (p.ingressType) out.push({ kind: 'preDnatIn', rules: p.ingress });
  } else {
    if (p.ingressType) out.push({ kind: 'normalIn', rules: p.ingress });
    if (p.egressType) out.push({ kind: 'normalOut', rules: p.egress });
    if (p.applyOnForward && p.ingressType) out.push({ kind: 'forwardIn', rules: p.ingress });
    if (p.applyOnForward && p.egressType) out.push({ kind: 'forwardOut', rules: p.egress });
  }
  return out;
}

function tierOrder(tier: string): number {
  return KNOWN_TIERS.get(tier)?.order ?? Infinity;
}

/** A tier that took part and gave no verdict: Deny (default, unknown tiers) or Pass (kube-admin, kube-baseline). */
function tierDefault(tier: string): 'Deny' | 'Pass' {
  return KNOWN_TIERS.get(tier)?.defaultAction ?? 'Deny';
}

function byOrderThenName(a: { order: number; name: string }, b: { order: number; name: string }): number {
  if (a.order !== b.order) return a.order < b.order ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** A flat rule before ids are allocated: sets by content key, the policy by "tier/name". */
interface DraftRule extends Omit<HostRule, 'srcSet' | 'srcNotSet' | 'dstSet' | 'dstNotSet' | 'policy'> {
  srcSet?: string;
  srcNotSet?: string;
  dstSet?: string;
  dstNotSet?: string;
  policy?: string;
}

class SetBuilder {
  /** set key -> its CIDRs */
  readonly sets = new Map<string, string[]>();
  private readonly resolved = new Map<string, string[]>();
  constructor(private readonly universe: AddressUniverse) {}

  private add(cidrs: string[]): string {
    const sorted = [...new Set(cidrs)].sort();
    const key = setKey(sorted);
    if (!this.sets.has(key)) this.sets.set(key, sorted);
    return key;
  }

  private addresses(e: { selector?: ValidEntityRule['selector']; namespaceSelector?: ValidEntityRule['namespaceSelector'] }): string[] {
    const k = `${e.selector?.text ?? '\u0001'}\u0000${e.namespaceSelector?.text ?? '\u0001'}`;
    let ips = this.resolved.get(k);
    if (!ips) {
      ips = resolveAddresses(this.universe, e.selector, e.namespaceSelector);
      this.resolved.set(k, ips);
    }
    return ips;
  }

  /** The set a packet address must be in (nets ∧ selector ∧ namespaceSelector), undefined = no criterion. */
  positive(e: ValidEntityRule): string | undefined {
    if (e.selector || e.namespaceSelector) {
      let ips = this.addresses(e);
      if (e.nets.length > 0) ips = ips.filter((ip) => e.nets.some((n) => cidrContains(n, ip)));
      return this.add(ips.map(hostCidr));
    }
    return e.nets.length > 0 ? this.add(e.nets) : undefined;
  }

  /**
   * A named port of one side: per (protocol, port) the endpoints picked by the side's selector
   * (every endpoint without one) that name it so, inside its nets: one set each.
   */
  namedPort(e: ValidEntityRule, name: string): Array<{ protocol: number; port: number; set: string }> {
    const out: Array<{ protocol: number; port: number; set: string }> = [];
    for (const [k, ips] of resolveNamedPort(this.universe, e.selector, e.namespaceSelector, name)) {
      const [protocol, port] = k.split('/').map(Number) as [number, number];
      const inside = e.nets.length > 0 ? ips.filter((ip) => e.nets.some((n) => cidrContains(n, ip))) : ips;
      if (inside.length > 0) out.push({ protocol, port, set: this.add(inside.map(hostCidr)) });
    }
    return out.sort((a, b) => a.protocol - b.protocol || a.port - b.port);
  }

  /** The set a packet address must not be in (notNets ∨ notSelector), undefined = no criterion. */
  negative(e: ValidEntityRule): string | undefined {
    const cidrs = [...e.notNets];
    if (e.notSelector) cidrs.push(...this.addresses({ selector: e.notSelector }).map(hostCidr));
    return cidrs.length > 0 ? this.add(cidrs) : undefined;
  }
}

function hostCidr(ip: string): string {
  return ip.includes(':') ? `${ip}/128` : `${ip}/32`;
}

/** One way a side's ports can match: a range (any port when absent); a named port also fixes the protocol and the side's set. */
interface PortOption {
  range?: readonly [number, number];
  protocol?: number;
  set?: string;
}

function portOptions(e: ValidEntityRule, protocol: number | undefined, sets: SetBuilder): PortOption[] {
  if (e.ports.length === 0 && e.namedPorts.length === 0) return [{}];
  const out: PortOption[] = e.ports.map((p) => ({ range: [p.lo, p.hi] as const }));
  for (const name of e.namedPorts)
    for (const np of sets.namedPort(e, name))
      if (protocol === undefined || protocol === np.protocol) out.push({ range: [np.port, np.port], protocol: np.protocol, set: np.set });
  return out; // empty when every port was named and none resolved: the rule matches nothing
}

/** One Calico rule -> flat rules, one per (source port option, destination port option). */
function flatten(r: ValidRule, policy: string, sets: SetBuilder): DraftRule[] {
  const base: DraftRule = { action: r.action === 'Allow' ? 'allow' : r.action === 'Deny' ? 'deny' : 'pass', policy, rule: r.index };
  if (r.family !== undefined) base.family = r.family;
  const srcSet = sets.positive(r.source);
  const srcNotSet = sets.negative(r.source);
  const dstSet = sets.positive(r.destination);
  const dstNotSet = sets.negative(r.destination);
  if (srcNotSet !== undefined) base.srcNotSet = srcNotSet;
  if (dstNotSet !== undefined) base.dstNotSet = dstNotSet;
  const out: DraftRule[] = [];
  for (const s of portOptions(r.source, r.protocol, sets))
    for (const d of portOptions(r.destination, r.protocol, sets)) {
      if (s.protocol !== undefined && d.protocol !== undefined && s.protocol !== d.protocol) continue;
      const f: DraftRule = { ...base };
      const protocol = r.protocol ?? s.protocol ?? d.protocol;
      if (protocol !== undefined) f.protocol = protocol;
      if (s.range) f.sports = s.range;
      if (d.range) f.dports = d.range;
      // a named port's set already holds only endpoints inside the side's selector and nets
      const src = s.set ?? srcSet;
      const dst = d.set ?? dstSet;
      if (src !== undefined) f.srcSet = src;
      if (dst !== undefined) f.dstSet = dst;
      out.push(f);
    }
  return out;
}

/**
 * One chain's rules, appended to `rules` (absolute indexes): tiers by order then name, in each
 * tier its policies by order then name; a Pass jumps past the tier; a tier whose default is
 * Deny ends in a deny in normal and forward chains (untracked and preDNAT tiers default to Pass).
 */
function buildChain(
  kind: ChainKind,
  applied: Array<{ policy: ValidPolicy; rules: ValidRule[] }>,
  hep: ValidHostEndpoint,
  rules: DraftRule[],
  sets: SetBuilder,
): void {
  const tiers = new Map<string, Array<{ policy: ValidPolicy; rules: ValidRule[] }>>();
  for (const a of applied) {
    const t = tiers.get(a.policy.tier);
    if (t) t.push(a);
    else tiers.set(a.policy.tier, [a]);
  }
  const tierNames = [...tiers.keys()].sort((a, b) => byOrderThenName({ order: tierOrder(a), name: a }, { order: tierOrder(b), name: b }));
  const verdictChain = kind === 'normalIn' || kind === 'normalOut' || kind === 'forwardIn' || kind === 'forwardOut';
  for (const tier of tierNames) {
    const start = rules.length;
    const members = tiers.get(tier)!.sort((a, b) => byOrderThenName(a.policy, b.policy));
    for (const m of members) for (const r of m.rules) rules.push(...flatten(r, `${tier}/${m.policy.name}`, sets));
    if (verdictChain && tierDefault(tier) === 'Deny') rules.push({ action: 'deny', rule: 0, compiled: 'tierEnd' });
    for (let i = start; i < rules.length; i++) if (rules[i]!.action === 'pass') rules[i]!.jump = rules.length;
  }
  if (kind === 'normalIn' || kind === 'normalOut') {
    // profiles run when no tier took part or the last one passed; only the default-allow profile is known (no Profile objects)
    rules.push({ action: hep.profiles.includes(PROFILE_DEFAULT_ALLOW) ? 'allow' : 'deny', rule: 0, compiled: 'profile' });
  } else if (kind === 'forwardIn' || kind === 'forwardOut') {
    // forward chains have no profiles: an applyOnForward policy applied and nothing allowed
    rules.push({ action: 'deny', rule: 0, compiled: 'profile' });
  }
}

/** Compile the host policy of `input.nodeName`. Never throws on bad objects: they go to plan.errors. */
export function compileHostPolicy(input: HostPolicyInput): HostPolicyPlan {
  const errors: HostPolicyPlan['errors'] = [];
  const policies: ValidPolicy[] = [];
  for (const obj of input.globalNetworkPolicies) {
    const v = cached(policyCache, obj, validateGlobalNetworkPolicy);
    if (v.ok) policies.push(v.value);
    else errors.push({ kind: 'GlobalNetworkPolicy', name: v.name, message: v.errors.join('; ') });
  }
  const allHeps: ValidHostEndpoint[] = [];
  for (const obj of input.hostEndpoints) {
    const v = cached(hepCache, obj, validateHostEndpoint);
    if (v.ok) allHeps.push(v.value);
    else errors.push({ kind: 'HostEndpoint', name: v.name, message: v.errors.join('; ') });
  }
  const autoHeps: ValidHostEndpoint[] = [];
  if (input.autoHostEndpoints) {
    for (const n of input.nodes) {
      const h = autoHostEndpoint(n);
      if (h) autoHeps.push(h);
    }
    // this node has its automatic endpoint even before (or without) its Node object: no labels
    // and no addresses then, but `all()` policies and the failsafes still apply to it
    if (!autoHeps.some((h) => h.node === input.nodeName)) {
      const h = autoHostEndpoint({ metadata: { name: input.nodeName } });
      if (h) autoHeps.push(h);
    }
  }
  const universe = buildUniverse(input.pods, input.namespaces, [...allHeps, ...autoHeps]);
  const sets = new SetBuilder(universe);

  const local: ValidHostEndpoint[] = [];
  const localNames = new Set<string>();
  for (const h of [...autoHeps, ...allHeps]) {
    if (h.node !== input.nodeName) continue;
    // ids follow names: a second endpoint of one name (an explicit `<node>-auto-hep`, or one object from two sources) is refused
    if (localNames.has(h.name)) errors.push({ kind: 'HostEndpoint', name: h.name, message: 'another host endpoint of this node has this name' });
    else {
      localNames.add(h.name);
      local.push(h);
    }
  }
  const autoNames = new Set(autoHeps.map((h) => h.name));
  const prevHeps = new Map((input.previous?.endpoints ?? []).map((e) => [e.name, e.id]));
  const hepIds = allocateIds(
    local.map((h) => h.name),
    prevHeps,
  );
  local.sort((a, b) => hepIds.get(a.name)! - hepIds.get(b.name)!);

  const drafts: DraftRule[] = [];
  const chains: ChainPlan[] = [];
  const endpoints: HostEndpointPlan[] = [];
  const hepPolicies: Array<Array<{ chain: ChainKind; key: string }>> = [];
  for (const hep of local) {
    const id = hepIds.get(hep.name)!;
    const perChain = new Map<ChainKind, Array<{ policy: ValidPolicy; rules: ValidRule[] }>>();
    for (const p of policies) {
      if (!matches(p.selector, hep.labels, true)) continue;
      for (const c of chainsOf(p)) {
        const list = perChain.get(c.kind);
        if (list) list.push({ policy: p, rules: c.rules });
        else perChain.set(c.kind, [{ policy: p, rules: c.rules }]);
      }
    }
    const listed: Array<{ chain: ChainKind; key: string }> = [];
    for (const kind of CHAIN_KINDS) {
      const applied = perChain.get(kind) ?? [];
      if (applied.length === 0 && kind !== 'normalIn' && kind !== 'normalOut') continue;
      const first = drafts.length;
      buildChain(kind, applied, hep, drafts, sets);
      chains.push({ hep: id, kind, first, count: drafts.length - first });
      const order = [...applied].sort(
        (a, b) =>
          byOrderThenName({ order: tierOrder(a.policy.tier), name: a.policy.tier }, { order: tierOrder(b.policy.tier), name: b.policy.tier }) ||
          byOrderThenName(a.policy, b.policy),
      );
      for (const a of order) listed.push({ chain: kind, key: `${a.policy.tier}/${a.policy.name}` });
    }
    hepPolicies.push(listed);
    endpoints.push({
      id,
      name: hep.name,
      auto: autoNames.has(hep.name),
      interfaces: hep.interfaceName === '*' ? '*' : hep.interfaceName === '' ? [] : [hep.interfaceName],
      expectedIPs: hep.expectedIPs,
      labels: hep.labels,
      profiles: hep.profiles,
      policies: [],
    });
  }

  // ids: kept from the previous plan where the content (set) or name (policy) is the same
  const setKeys: string[] = [];
  const policyKeys: string[] = [];
  for (const d of drafts) {
    for (const k of [d.srcSet, d.srcNotSet, d.dstSet, d.dstNotSet]) if (k !== undefined) setKeys.push(k);
    if (d.policy !== undefined) policyKeys.push(d.policy);
  }
  for (const l of hepPolicies) for (const p of l) policyKeys.push(p.key);
  const prevSets = new Map<string, number>();
  for (const [id, cidrs] of input.previous?.sets ?? []) prevSets.set(setKey(cidrs), id);
  const prevSlots = new Map<string, number>();
  for (const [slot, name] of input.previous?.policyNames ?? []) prevSlots.set(name, slot);
  const setIds = allocateIds(setKeys, prevSets);
  const slots = allocateIds(policyKeys, prevSlots);

  const rules: HostRule[] = drafts.map((d) => {
    const r: HostRule = { action: d.action, policy: d.policy === undefined ? 0 : slots.get(d.policy)!, rule: d.rule };
    if (d.protocol !== undefined) r.protocol = d.protocol;
    if (d.sports) r.sports = d.sports;
    if (d.dports) r.dports = d.dports;
    if (d.family !== undefined) r.family = d.family;
    if (d.srcSet !== undefined) r.srcSet = setIds.get(d.srcSet)!;
    if (d.srcNotSet !== undefined) r.srcNotSet = setIds.get(d.srcNotSet)!;
    if (d.dstSet !== undefined) r.dstSet = setIds.get(d.dstSet)!;
    if (d.dstNotSet !== undefined) r.dstNotSet = setIds.get(d.dstNotSet)!;
    if (d.jump !== undefined) r.jump = d.jump;
    if (d.compiled) r.compiled = d.compiled;
    return r;
  });
  endpoints.forEach((e, i) => {
    e.policies = hepPolicies[i]!.map((p) => ({ chain: p.chain, slot: slots.get(p.key)!, name: p.key }));
  });
  const planSets = new Map<number, string[]>();
  for (const [key, id] of setIds) planSets.set(id, sets.sets.get(key)!);
  const policyNames = new Map<number, string>();
  for (const [name, slot] of slots) policyNames.set(slot, name);
  return { endpoints, chains, rules, sets: planSets, policyNames, failsafes: input.failsafes, errors };
}
