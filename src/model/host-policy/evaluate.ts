// model/host-policy/evaluate: the BPF chain walk (bpf-c/lib/host_policy.h) in TypeScript over a
// HostPolicyPlan: which rule decides a packet on one chain of one host endpoint, and whether a
// failsafe covers it. What `weir explain` prints and what the BPF tests compare against.

import { cidrContains } from '../../bpf/ip.js';
import type { ChainKind, FailsafeEntry, HostPacket, HostPolicyPlan, HostRule } from './types.js';

export interface HostVerdict {
  verdict: 'allow' | 'deny' | 'nomatch';
  /** the rule that decided (absolute index in plan.rules) */
  ruleIndex?: number;
  /** every rule that matched, in walk order (the Pass rules, then the deciding one) */
  trail: number[];
}

/** Is `address` in set `set`? Defaults to CIDR containment over plan.sets; the BPF tests pass a map lookup. */
export type SetLookup = (set: number, address: string) => boolean;

function planLookup(plan: HostPolicyPlan): SetLookup {
  return (set, address) => (plan.sets.get(set) ?? []).some((c) => cidrContains(c, address));
}

const PORT_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 132]);

export function ruleMatches(rule: HostRule, packet: HostPacket, inSet: SetLookup): boolean {
  if (rule.protocol !== undefined && rule.protocol !== packet.protocol) return false;
  if (rule.family !== undefined && rule.family !== packet.family) return false;
  if (rule.sports || rule.dports) {
    if (!PORT_PROTOCOLS.has(packet.protocol)) return false;
    if (rule.sports && (packet.sport < rule.sports[0] || packet.sport > rule.sports[1])) return false;
    if (rule.dports && (packet.dport < rule.dports[0] || packet.dport > rule.dports[1])) return false;
  }
  if (rule.srcSet !== undefined && !inSet(rule.srcSet, packet.saddr)) return false;
  if (rule.srcNotSet !== undefined && inSet(rule.srcNotSet, packet.saddr)) return false;
  if (rule.dstSet !== undefined && !inSet(rule.dstSet, packet.daddr)) return false;
  if (rule.dstNotSet !== undefined && inSet(rule.dstNotSet, packet.daddr)) return false;
  return true;
}

/**
 * Walk chain `chain` of host endpoint `hep` for `packet`: the first matching Allow/Deny decides,
 * a matching Pass goes on at its jump; no chain, or falling off its end, is 'nomatch' (the
 * compiler ends normal and forward chains with an explicit verdict, so only untracked and
 * preDNAT chains fall off).
 */
export function evaluate(plan: HostPolicyPlan, hep: number, chain: ChainKind, packet: HostPacket, inSet: SetLookup = planLookup(plan)): HostVerdict {
  const trail: number[] = [];
  const c = plan.chains.find((x) => x.hep === hep && x.kind === chain);
  if (!c) return { verdict: 'nomatch', trail };
  const end = c.first + c.count;
  let i = c.first;
  // bounded like the BPF loop: a jump only goes forward, so at most `count` steps
  for (let steps = 0; i < end && steps < c.count; steps++) {
    const r = plan.rules[i]!;
    if (!ruleMatches(r, packet, inSet)) {
      i++;
      continue;
    }
    trail.push(i);
    if (r.action === 'pass') {
      i = r.jump !== undefined && r.jump > i ? r.jump : end;
      continue;
    }
    return { verdict: r.action, ruleIndex: i, trail };
  }
  return { verdict: 'nomatch', trail };
}

/**
 * The failsafe entry that lets `packet` through, if any: same protocol, the destination port is
 * the entry's port, and the peer (inbound: source, outbound: destination) is in its CIDR.
 */
export function failsafeMatch(plan: HostPolicyPlan, direction: 'in' | 'out', packet: HostPacket): FailsafeEntry | undefined {
  const peer = direction === 'in' ? packet.saddr : packet.daddr;
  return plan.failsafes.find((f) => {
    if (f.direction !== direction || f.port !== packet.dport) return false;
    const proto = f.protocol === 'tcp' ? 6 : f.protocol === 'udp' ? 17 : 132;
    if (proto !== packet.protocol) return false;
    return f.net === undefined || cidrContains(f.net, peer);
  });
}
