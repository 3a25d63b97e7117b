// cli/host-endpoints: the host endpoints section of `weir policy` (Calico GlobalNetworkPolicy on
// the node's own interfaces): each endpoint, the interfaces it covers, and per chain the policies
// that apply in evaluation order with their compiled rules and per-rule counters, read from the
// host policy maps (dataplane/host-policy-view.ts). The JSON shape is documented in docs/cli.md.

import { protocolName } from '../bpf/ip.js';
import { CHAIN_KINDS, type ChainKind, type FailsafeEntry, type HostRule } from '../model/host-policy/types.js';
import {
  CHAIN_DIRECTION,
  chainPolicySlots,
  planFromMaps,
  ruleStats,
  type HepInterface,
  type HostPolicyReadMaps,
  type MapPlan,
} from '../dataplane/host-policy-view.js';
import { table } from './output.js';

/** A set criterion as shown: its id and how many CIDRs it holds (the CIDRs: HostPolicyView.sets, once per set). */
export interface SetRef {
  set: number;
  size: number;
}

/** One compiled rule of a chain (weir_host_rules), with its counters. */
export interface HostRuleRow {
  /** index in weir_host_rules (and weir_host_rule_stats) */
  index: number;
  action: HostRule['action'];
  /** 'any' or the protocol's name */
  protocol: string;
  /** `80`, `8000-8080`; absent: any */
  sports?: string;
  dports?: string;
  family?: 4 | 6;
  src?: SetRef;
  srcNot?: SetRef;
  dst?: SetRef;
  dstNot?: SetRef;
  /** pass: the rule index the walk goes on at */
  jump?: number;
  /** "tier/name"; absent for compiled rules */
  policy?: string;
  /** `ingress[0]`: the rule's place in the policy */
  rule?: string;
  /** tierEnd: the end-of-tier deny; profile: the endpoint's profile at the chain's end */
  compiled?: 'tierEnd' | 'profile';
  packets: number;
  bytes: number;
}

export interface HostChainView {
  chain: ChainKind;
  first: number;
  count: number;
  /** the policies whose rules are in the chain, in evaluation order ("tier/name") */
  policies: string[];
  rules: HostRuleRow[];
}

export interface HostEndpointView {
  id: number;
  name: string;
  /** the node's automatic endpoint (`<node>-auto-hep`) or an explicit HostEndpoint */
  auto: boolean;
  /** what the endpoint names: '*' or interface names */
  interfaceName: '*' | string[];
  /** the interfaces weir_hep_ifaces maps to it (ifindex, name here, XDP prefilter attached) */
  interfaces: HepInterface[];
  expectedIPs: string[];
  labels: Record<string, string>;
  chains: HostChainView[];
}

export interface HostPolicyView {
  hostEndpoints: HostEndpointView[];
  /** the address sets the rules name, by id (a selector's set may hold thousands of addresses: listed once here) */
  sets: Array<{ set: number; cidrs: string[] }>;
  failsafes: FailsafeEntry[];
}

const range = (r: readonly [number, number] | undefined) => (r === undefined ? undefined : r[0] === r[1] ? String(r[0]) : `${r[0]}-${r[1]}`);

function ruleRow(plan: MapPlan, maps: HostPolicyReadMaps, kind: ChainKind, index: number): HostRuleRow {
  const r = plan.rules[index];
  const s = ruleStats(maps, index);
  const counters = { packets: Number(s.packets), bytes: Number(s.bytes) };
  if (!r) return { index, action: 'deny', protocol: 'any', policy: '(no rule in weir_host_rules)', ...counters };
  const set = (id: number | undefined): SetRef | undefined => (id === undefined ? undefined : { set: id, size: plan.sets.get(id)?.length ?? 0 });
  const row: HostRuleRow = { index, action: r.action, protocol: r.protocol === undefined ? 'any' : protocolName(r.protocol), ...counters };
  const opt = <K extends keyof HostRuleRow>(k: K, v: HostRuleRow[K] | undefined) => {
    if (v !== undefined) row[k] = v;
  };
  opt('sports', range(r.sports));
  opt('dports', range(r.dports));
  opt('family', r.family);
  opt('src', set(r.srcSet));
  opt('srcNot', set(r.srcNotSet));
  opt('dst', set(r.dstSet));
  opt('dstNot', set(r.dstNotSet));
  opt('jump', r.jump);
  if (r.policy !== 0) {
    row.policy = plan.policyNames.get(r.policy) ?? `slot:${r.policy}`;
    row.rule = `${CHAIN_DIRECTION[kind]}[${r.rule}]`;
  }
  opt('compiled', r.compiled);
  // key order as documented, counters last
  const { packets, bytes, ...rest } = row;
  return { ...rest, packets, bytes };
}

export function hostPolicyView(maps: HostPolicyReadMaps, plan: MapPlan = planFromMaps(maps)): HostPolicyView {
  const named = new Set<number>();
  for (const c of plan.chains)
    for (let i = c.first; i < c.first + c.count; i++) {
      const r = plan.rules[i];
      for (const id of [r?.srcSet, r?.srcNotSet, r?.dstSet, r?.dstNotSet]) if (id !== undefined) named.add(id);
    }
  return {
    hostEndpoints: plan.endpoints.map((e) => ({
      id: e.id,
      name: e.name,
      auto: e.auto,
      interfaceName: e.interfaces,
      interfaces: plan.interfaces.get(e.id) ?? [],
      expectedIPs: e.expectedIPs,
      labels: e.labels,
      chains: plan.chains
        .filter((c) => c.hep === e.id)
        .map((c) => ({
          chain: c.kind,
          first: c.first,
          count: c.count,
          policies: chainPolicySlots(c, plan.rules).map((s) => plan.policyNames.get(s) ?? `slot:${s}`),
          rules: Array.from({ length: c.count }, (_, i) => ruleRow(plan, maps, c.kind, c.first + i)),
        })),
    })),
    sets: [...named].sort((a, b) => a - b).map((id) => ({ set: id, cidrs: plan.sets.get(id) ?? [] })),
    failsafes: plan.failsafes,
  };
}

/** `tcp dport 22 src in {198.18.0.0/16}`: what a rule matches, in one cell (a set by its first three CIDRs). */
export function matchText(r: HostRuleRow, sets: ReadonlyMap<number, string[]>): string {
  const cidrs = (s: SetRef) => {
    const l = sets.get(s.set) ?? [];
    return `{${l.slice(0, 3).join(',')}${l.length > 3 ? `,+${l.length - 3}` : ''}}`;
  };
  const parts: string[] = [];
  if (r.protocol !== 'any') parts.push(r.protocol);
  if (r.family) parts.push(`ipv${r.family}`);
  if (r.sports) parts.push(`sport ${r.sports}`);
  if (r.dports) parts.push(`dport ${r.dports}`);
  if (r.src) parts.push(`src in ${cidrs(r.src)}`);
  if (r.srcNot) parts.push(`src not in ${cidrs(r.srcNot)}`);
  if (r.dst) parts.push(`dst in ${cidrs(r.dst)}`);
  if (r.dstNot) parts.push(`dst not in ${cidrs(r.dstNot)}`);
  return parts.join(' ') || 'any';
}

const CHAIN_TITLES: Record<ChainKind, string> = {
  untrackedIn: 'untracked ingress (XDP, before conntrack)',
  untrackedOut: 'untracked egress',
  preDnatIn: 'preDNAT ingress (before service NAT)',
  normalIn: 'ingress to the host',
  normalOut: 'egress from the host',
  forwardIn: 'forward ingress (applyOnForward)',
  forwardOut: 'forward egress (applyOnForward)',
};

function actionText(r: HostRuleRow): string {
  if (r.action === 'pass') return `pass -> ${r.jump}`;
  return r.compiled === 'tierEnd' ? `${r.action} (end of tier)` : r.compiled === 'profile' ? `${r.action} (profile)` : r.action;
}

export function hostPolicyText(v: HostPolicyView): string {
  const out: string[] = [];
  const sets = new Map(v.sets.map((x) => [x.set, x.cidrs]));
  const pairs = (o: Record<string, string>) =>
    Object.entries(o)
      .map(([k, x]) => `${k}=${x}`)
      .join(',');
  out.push(
    table(
      v.hostEndpoints.map((e) => ({
        'host endpoint': e.name,
        id: e.id,
        kind: e.auto ? 'auto' : 'explicit',
        interfaceName: e.interfaceName === '*' ? '*' : e.interfaceName.join(','),
        attached: e.interfaces.map((i) => `${i.name ?? `if${i.ifindex}`}${i.xdp ? '(xdp)' : ''}`).join(',') || '-',
        labels: pairs(e.labels) || '-',
      })),
      ['host endpoint', 'id', 'kind', 'interfaceName', 'attached', 'labels'],
    ),
  );
  for (const e of v.hostEndpoints) {
    const chains = [...e.chains].sort((a, b) => CHAIN_KINDS.indexOf(a.chain) - CHAIN_KINDS.indexOf(b.chain));
    out.push('', `host endpoint ${e.name}:`);
    if (chains.length === 0) out.push('  (no chains: no host policy applies)');
    for (const c of chains) {
      out.push(`  ${c.chain}: ${CHAIN_TITLES[c.chain]}; policies: ${c.policies.join(', ') || '-'}`);
      out.push(
        table(
          c.rules.map((r) => ({
            '#': r.index,
            action: actionText(r),
            match: matchText(r, sets),
            policy: r.policy ?? '-',
            rule: r.rule ?? '-',
            packets: r.packets,
            bytes: r.bytes,
          })),
          ['#', 'action', 'match', 'policy', 'rule', 'packets', 'bytes'],
        )
          .split('\n')
          .map((l) => `    ${l}`)
          .join('\n'),
      );
    }
  }
  if (v.failsafes.length > 0)
    out.push(
      '',
      `failsafe ports (always allowed, before host policy): ${v.failsafes.map((f) => `${f.direction} ${f.protocol}:${f.net ? `${f.net}:` : ''}${f.port}`).join(', ')}`,
    );
  return out.join('\n');
}
