// dataplane/explain-host: the host policy part of `weir explain` for a packet arriving at the
// node from a host interface, in the programs' order (xdp_prefilter.c, from_host.c): failsafe,
// the untracked chain (XDP), conntrack, preDNAT on the original destination, service NAT (from
// explain.ts), then the normal chain (to the host) or the forward chain (to a pod or elsewhere).
// Every chain is walked by the model's evaluate() over the plan read back from the maps, with
// set membership looked up in the pinned LPM maps as the programs do: one walk, not two.

import { evaluate, failsafeMatch, type SetLookup } from '../model/host-policy/evaluate.js';
import type { ChainKind, HostPacket } from '../model/host-policy/types.js';
import type { MapPlan } from './host-policy-view.js';

/** What explain needs of the host policy maps. */
export interface HostExplainMaps {
  plan: MapPlan;
  inSet: SetLookup;
  /** is the address one of this node's (then NORMAL_IN judges it, else FORWARD_IN) */
  isHost: (address: string) => boolean;
  /** the host endpoints to walk: the one of --iface, else every one an interface maps to */
  heps: number[];
}

/** A rule that decided or passed, as explain names it. */
export interface HostRuleRef {
  index: number;
  action: 'allow' | 'deny' | 'pass';
  /** "tier/name"; absent for a compiled rule */
  policy?: string;
  /** `ingress[0]` */
  rule?: string;
  compiled?: 'tierEnd' | 'profile';
}

export type HostStage = 'failsafe' | 'untracked' | 'conntrack' | 'preDnat' | 'normal' | 'forward';

export interface HostStep {
  stage: HostStage;
  chain?: ChainKind;
  /** allow / deny: the stage decided; nomatch: no rule decided, on to the next stage; skipped: the stage does not see it */
  result: 'allow' | 'deny' | 'nomatch' | 'skipped';
  /** the deciding rule */
  rule?: HostRuleRef;
  /** Pass rules that matched on the way */
  passed?: HostRuleRef[];
  /** forward / normal: the destination it judged (after service NAT) */
  dst?: string;
  text: string;
}

export interface HostExplanation {
  endpoint: { id: number; name: string };
  /** the interfaces of this endpoint (weir_hep_ifaces), `name(xdp)` when the XDP prefilter runs there */
  interfaces: string[];
  steps: HostStep[];
  verdict: 'allow' | 'drop';
  /** where a drop happens: xdp (the prefilter) or tc (from_host: TC fallback or a later chain) */
  droppedIn?: 'xdp' | 'tc';
  /** the counter reason of the host policy stage that decided (host_failsafe, host_policy_denied, ...) */
  reason?: string;
  /** drop: true when the drop is before service NAT (every outcome), false when per destination */
  beforeNat?: boolean;
  /** per destination after NAT (the packet's own, or each backend): the reason it is dropped under */
  deniedDestinations?: string[];
}

/** The destinations the packet may have after service NAT, and whether a conntrack entry decides it. */
export interface AfterNat {
  established: boolean;
  /** TCP: a bare SYN (only that starts a flow host policy judges) */
  newFlow: boolean;
  frontend: boolean;
  destinations: Array<{ daddr: string; dport: number }>;
}

function ref(plan: MapPlan, chain: ChainKind, index: number): HostRuleRef {
  const r = plan.rules[index];
  if (!r) return { index, action: 'deny' };
  const dir = chain.endsWith('In') ? 'ingress' : 'egress';
  return {
    index,
    action: r.action,
    ...(r.policy !== 0 ? { policy: plan.policyNames.get(r.policy) ?? `slot:${r.policy}`, rule: `${dir}[${r.rule}]` } : {}),
    ...(r.compiled ? { compiled: r.compiled } : {}),
  };
}

function refText(r: HostRuleRef): string {
  if (r.compiled === 'tierEnd') return `rule #${r.index} (end-of-tier deny${r.policy ? ` after ${r.policy}` : ''})`;
  if (r.compiled === 'profile') return `rule #${r.index} (the endpoint's profile: ${r.action})`;
  return `rule #${r.index} ${r.policy ?? '(compiled)'} ${r.rule ?? ''}`.trimEnd();
}

/** Walks `chain`; returns the step (decided, or nomatch) with the rules named. */
function walk(
  m: HostExplainMaps,
  hep: number,
  stage: HostStage,
  chain: ChainKind,
  p: HostPacket,
): { step: HostStep; verdict: 'allow' | 'deny' | 'nomatch'; present: boolean } {
  const present = m.plan.chains.some((c) => c.hep === hep && c.kind === chain);
  const v = evaluate(m.plan, hep, chain, p, m.inSet);
  const passed = v.trail.filter((i) => i !== v.ruleIndex).map((i) => ref(m.plan, chain, i));
  const step: HostStep = { stage, chain, result: v.verdict, ...(passed.length ? { passed } : {}), text: '' };
  if (v.ruleIndex !== undefined) step.rule = ref(m.plan, chain, v.ruleIndex);
  return { step, verdict: v.verdict, present };
}

/**
 * The host policy verdict of `p` (as it arrived) on host endpoint `hep`, given what service NAT
 * does with it (`nat`). Mirrors from_host's order; see the file header.
 */
export function explainHostEndpoint(m: HostExplainMaps, hep: number, p: HostPacket, nat: AfterNat): HostExplanation {
  const e = m.plan.endpoints.find((x) => x.id === hep);
  const ifs = m.plan.interfaces.get(hep) ?? [];
  const xdp = ifs.some((i) => i.xdp);
  const out: HostExplanation = {
    endpoint: { id: hep, name: e?.name ?? `hep:${hep}` },
    interfaces: ifs.map((i) => `${i.name ?? `if${i.ifindex}`}${i.xdp ? '(xdp)' : ''}`),
    steps: [],
    verdict: 'allow',
  };
  const decide = (verdict: 'allow' | 'drop', reason: string, where?: 'xdp' | 'tc') => {
    out.verdict = verdict;
    out.reason = reason;
    if (where) out.droppedIn = where;
    return out;
  };
  // 1. failsafe (XDP checks it first, from_host again): host policy is skipped for the flow
  const fs = failsafeMatch(m.plan, 'in', p);
  if (fs) {
    out.steps.push({
      stage: 'failsafe',
      result: 'allow',
      text: `failsafe in ${fs.protocol}:${fs.net ? `${fs.net}:` : ''}${fs.port}: no host policy judges it (untracked, preDNAT, normal, forward)`,
    });
    return decide('allow', 'host_failsafe');
  }
  out.steps.push({ stage: 'failsafe', result: 'nomatch', text: 'no failsafe port' });
  // 2. untracked ingress: XDP (TC when XDP is not attached), before conntrack
  const u = walk(m, hep, 'untracked', 'untrackedIn', p);
  const where = xdp ? 'xdp' : 'tc';
  if (u.verdict === 'deny') {
    u.step.text = `${refText(u.step.rule!)}: deny, dropped in ${where === 'xdp' ? 'XDP' : 'TC (no XDP on the interface)'}`;
    out.steps.push(u.step);
    out.beforeNat = true;
    return decide('drop', 'host_untracked_denied', where);
  }
  if (u.verdict === 'allow') {
    u.step.text = `${refText(u.step.rule!)}: allow, passes untracked (no conntrack entry${nat.frontend ? '; a service frontend is still NATed, which tracks it' : ''}); no other host policy judges it`;
    out.steps.push(u.step);
    return decide('allow', 'host_untracked_allowed');
  }
  u.step.text = u.present ? 'no untracked rule decides: on to conntrack' : 'no doNotTrack policy applies';
  out.steps.push(u.step);
  // 3. conntrack: only a new flow is judged by host policy
  if (nat.established) {
    out.steps.push({ stage: 'conntrack', result: 'skipped', text: 'conntrack has the flow: host policy judged it when it started' });
    return out;
  }
  if (!nat.newFlow) {
    out.steps.push({
      stage: 'conntrack',
      result: 'skipped',
      text: "no conntrack entry, but TCP without a bare SYN starts no flow: not judged by host policy (a reply to the host's own connection)",
    });
    return out;
  }
  out.steps.push({ stage: 'conntrack', result: 'nomatch', text: 'no conntrack entry: a new flow' });
  // 4. preDNAT on the original destination
  const pre = walk(m, hep, 'preDnat', 'preDnatIn', p);
  if (pre.verdict === 'deny') {
    pre.step.text = `${refText(pre.step.rule!)}: deny, dropped before service NAT`;
    out.steps.push(pre.step);
    out.beforeNat = true;
    return decide('drop', 'host_prednat_denied', 'tc');
  }
  if (pre.verdict === 'allow') {
    pre.step.text = `${refText(pre.step.rule!)}: allow, the normal and forward chains are skipped (pod policy still applies)`;
    out.steps.push(pre.step);
    return decide('allow', 'host_policy_allowed');
  }
  pre.step.text = pre.present ? 'no preDNAT rule decides: on to service NAT' : 'no preDNAT policy applies';
  out.steps.push(pre.step);
  // 5. after service NAT: to this host (normal) or forwarded (forward), per destination
  const denied: string[] = [];
  let reason: string | undefined;
  for (const d of nat.destinations) {
    const q: HostPacket = { ...p, daddr: d.daddr, dport: d.dport };
    const local = m.isHost(d.daddr);
    const stage = local ? 'normal' : 'forward';
    const w = walk(m, hep, stage, local ? 'normalIn' : 'forwardIn', q);
    w.step.dst = d.daddr;
    const to = `${d.daddr}:${d.dport}${local ? ' (this host)' : ' (forwarded)'}`;
    if (w.verdict === 'deny') {
      w.step.text = `${to}: ${refText(w.step.rule!)}: deny`;
      denied.push(d.daddr);
      reason = local ? 'host_policy_denied' : 'host_forward_denied';
    } else if (w.verdict === 'allow') {
      w.step.text = `${to}: ${refText(w.step.rule!)}: allow`;
      reason ??= 'host_policy_allowed';
    } else {
      w.step.result = 'allow';
      w.step.text = `${to}: ${w.present ? 'no rule decides' : local ? 'no host policy chain' : 'no applyOnForward policy'}: allowed`;
    }
    out.steps.push(w.step);
  }
  if (denied.length > 0) {
    out.deniedDestinations = denied;
    out.beforeNat = false;
    if (denied.length === nat.destinations.length) return decide('drop', reason!, 'tc');
    out.reason = reason!;
    return out;
  }
  if (reason) out.reason = reason;
  return out;
}
