// bench/peers: NetworkPolicies compiled the way kube-router's iptables/ipset controller shapes
// them (pkg/controllers/netpol: one chain per policy, one chain per local pod, address sets per
// rule), as a neutral plan that policy-iptables.ts writes as ipset + iptables-restore input and
// policy-nftables.ts as one nft -f transaction. Pods are matched with weir's own compiled
// selectors (src/model/policy/rules.ts): what the bench measures is the peers' programming and
// per-packet cost, not a second selector implementation. A packet is allowed when each local
// pod chain it passes (the source's for egress, the destination's for ingress) sees a policy
// rule set the allow mark; established packets are accepted first.

import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { selectorMatches } from '../../src/model/policy/selectors.js';
import type { CompiledPolicy, CompiledRule, PortMatch } from '../../src/model/policy/rules.js';
import { hashPrefix } from './hash.js';

/** An address set: pod IPs (hash:ip), or CIDRs with excepted prefixes (hash:net with nomatch). */
export interface AddressSet {
  name: string;
  kind: 'ip' | 'net';
  members: string[];
  /** net sets: prefixes inside a member that do not match */
  nomatch: string[];
}

export interface PlanRule {
  /** null: any address */
  src: string | null;
  dst: string | null;
  /** null: any protocol */
  proto: 'tcp' | 'udp' | 'sctp' | null;
  ports: [number, number] | null;
}

export interface PlanPolicy {
  key: string;
  chain: string;
  rules: PlanRule[];
}

export interface PlanPod {
  key: string;
  ip: string;
  chain: string;
  /** chains of the policies that isolate it, or 'open' when none does for that direction */
  ingress: string[] | 'open';
  egress: string[] | 'open';
}

export interface PolicyPlan {
  sets: Map<string, AddressSet>;
  policies: PlanPolicy[];
  /** local pods, in pod order */
  pods: PlanPod[];
}

interface PodView {
  key: string;
  namespace: string;
  ip: string;
  node: string;
  labels: Record<string, string>;
  named: Map<string, { port: number; proto: string }>;
}

const h = (s: string) => hashPrefix(s, 16);

function podView(p: V1Pod): PodView | null {
  const ip = p.status?.podIP;
  if (!ip || !p.metadata?.name || !p.metadata.namespace) return null;
  const named = new Map<string, { port: number; proto: string }>();
  for (const c of p.spec?.containers ?? [])
    for (const cp of c.ports ?? []) if (cp.name) named.set(cp.name, { port: cp.containerPort, proto: cp.protocol ?? 'TCP' });
  return {
    key: `${p.metadata.namespace}/${p.metadata.name}`,
    namespace: p.metadata.namespace,
    ip,
    node: p.spec?.nodeName ?? '',
    labels: p.metadata.labels ?? {},
    named,
  };
}

/** The plan for `localNode` from the store's objects and the compiled policies. */
export function policyPlan(policies: Iterable<CompiledPolicy>, pods: Iterable<V1Pod>, namespaces: Iterable<V1Namespace>, localNode: string): PolicyPlan {
  const nsLabels = new Map<string, Record<string, string>>();
  for (const n of namespaces) if (n.metadata?.name) nsLabels.set(n.metadata.name, n.metadata.labels ?? {});
  const all = [...pods].map(podView).filter((p): p is PodView => p !== null);
  const byNs = new Map<string, PodView[]>();
  for (const p of all) byNs.set(p.namespace, [...(byNs.get(p.namespace) ?? []), p]);
  const local = all.filter((p) => p.node === localNode);

  const sets = new Map<string, AddressSet>();
  const addSet = (s: AddressSet) => (sets.set(s.name, s), s.name);
  const ingressOf = new Map<string, string[]>();
  const egressOf = new Map<string, string[]>();
  const plans: PlanPolicy[] = [];

  const peerPods = (pol: CompiledPolicy, rule: CompiledRule): PodView[] => {
    if (rule.peers === 'all') return [];
    const out = new Set<PodView>();
    for (const peer of rule.peers) {
      if (peer.kind !== 'pods') continue;
      for (const [ns, nsPods] of byNs) {
        if (peer.namespace !== null ? ns !== peer.namespace : !selectorMatches(peer.namespaceSelector, nsLabels.get(ns) ?? {})) continue;
        for (const p of nsPods) if (selectorMatches(peer.podSelector, p.labels)) out.add(p);
      }
    }
    void pol;
    return [...out];
  };

  for (const pol of [...policies].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    const targets = (byNs.get(pol.namespace) ?? []).filter((p) => p.node === localNode && selectorMatches(pol.podSelector, p.labels));
    if (!targets.length) continue;
    const chain = `KUBE-NWPLCY-${h(pol.key)}`;
    const plan: PlanPolicy = { key: pol.key, chain, rules: [] };
    for (const [dir, isolates, rules] of [
      ['ingress', pol.ingress, pol.ingressRules],
      ['egress', pol.egress, pol.egressRules],
    ] as const) {
      if (!isolates) continue;
      for (const t of targets) {
        const m = dir === 'ingress' ? ingressOf : egressOf;
        m.set(t.key, [...(m.get(t.key) ?? []), chain]);
      }
      const base = `${pol.key}/${dir}`;
      const targetSet = addSet({ name: `KUBE-DST-${h(`${base}/targets`)}`, kind: 'ip', members: targets.map((p) => p.ip), nomatch: [] });
      for (const rule of rules) {
        const rb = `${base}/${rule.index}`;
        const pods = peerPods(pol, rule);
        const peerSets: (string | null)[] = [];
        if (rule.peers === 'all') peerSets.push(null);
        else {
          if (pods.length || rule.peers.some((p) => p.kind === 'pods'))
            peerSets.push(addSet({ name: `KUBE-SRC-${h(`${rb}/pods`)}`, kind: 'ip', members: pods.map((p) => p.ip), nomatch: [] }));
          const blocks = rule.peers.filter((p) => p.kind === 'ipBlock');
          if (blocks.length)
            peerSets.push(
              addSet({
                name: `KUBE-SRC-${h(`${rb}/cidrs`)}`,
                kind: 'net',
                members: blocks.map((b) => `${b.cidr.address}/${b.cidr.prefix}`),
                nomatch: blocks.flatMap((b) => b.except.map((e) => `${e.address}/${e.prefix}`)),
              }),
            );
        }
        const ports: (PortMatch | null)[] = rule.ports === 'all' ? [null] : rule.ports;
        for (const port of ports) {
          const proto = port ? (port.protocol.toLowerCase() as PlanRule['proto']) : null;
          if (port?.kind === 'named') {
            // resolved on the destination: the targets (ingress) or the peers (egress), one set per number
            const holders = dir === 'ingress' ? targets : pods;
            const byNumber = new Map<number, PodView[]>();
            for (const p of holders) {
              const np = p.named.get(port.name);
              if (np && np.proto === port.protocol) byNumber.set(np.port, [...(byNumber.get(np.port) ?? []), p]);
            }
            for (const [num, ps] of byNumber) {
              const s = addSet({ name: `KUBE-DST-${h(`${rb}/${port.name}/${num}`)}`, kind: 'ip', members: ps.map((p) => p.ip), nomatch: [] });
              if (dir === 'ingress') for (const src of peerSets) plan.rules.push({ src, dst: s, proto, ports: [num, num] });
              else plan.rules.push({ src: targetSet, dst: s, proto, ports: [num, num] });
            }
            continue;
          }
          const range: [number, number] | null =
            port && port.kind === 'range' && !(port.port === 0 && port.endPort === 65535) ? [port.port, port.endPort] : null;
          for (const peer of peerSets)
            plan.rules.push(dir === 'ingress' ? { src: peer, dst: targetSet, proto, ports: range } : { src: targetSet, dst: peer, proto, ports: range });
        }
      }
    }
    plans.push(plan);
  }
  const podPlans: PlanPod[] = local.map((p) => ({
    key: p.key,
    ip: p.ip,
    chain: `KUBE-POD-FW-${h(p.key)}`,
    ingress: ingressOf.get(p.key) ?? 'open',
    egress: egressOf.get(p.key) ?? 'open',
  }));
  return { sets, policies: plans, pods: podPlans };
}

/** Counts for the report. */
export function planCounts(p: PolicyPlan): { sets: number; members: number; policyChains: number; podChains: number; rules: number } {
  let members = 0;
  for (const s of p.sets.values()) members += s.members.length + s.nomatch.length;
  return { sets: p.sets.size, members, policyChains: p.policies.length, podChains: p.pods.length, rules: p.policies.reduce((a, x) => a + x.rules.length, 0) };
}
