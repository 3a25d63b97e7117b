// Fixtures for the host policy model tests: Nodes, Pods, Namespaces, GlobalNetworkPolicies and
// HostEndpoints as the sources store them, and a compile with Felix's default failsafes.

import type { V1Namespace, V1Node, V1Pod } from '@kubernetes/client-node';
import { compileHostPolicy, type HostPolicyInput } from '../../src/model/host-policy/compile.js';
import { DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND, parseFailsafes } from '../../src/model/host-policy/failsafe.js';
import type { HostPacket, HostPolicyPlan } from '../../src/model/host-policy/types.js';

export function node(name: string, ip: string, labels: Record<string, string> = {}): V1Node {
  return { metadata: { name, labels }, status: { addresses: [{ type: 'InternalIP', address: ip }] } };
}

export function pod(ns: string, name: string, ip: string, labels: Record<string, string> = {}, nodeName = 'n1'): V1Pod {
  return { metadata: { namespace: ns, name, labels }, spec: { nodeName, containers: [] }, status: { phase: 'Running', podIPs: [{ ip }] } };
}

export function namespace(name: string, labels: Record<string, string> = {}): V1Namespace {
  return { metadata: { name, labels } };
}

export function gnp(name: string, spec: Record<string, unknown>): unknown {
  return { apiVersion: 'projectcalico.org/v3', kind: 'GlobalNetworkPolicy', metadata: { name }, spec };
}

export function hep(name: string, spec: Record<string, unknown>, labels: Record<string, string> = {}): unknown {
  return { apiVersion: 'projectcalico.org/v3', kind: 'HostEndpoint', metadata: { name, labels }, spec };
}

export const FAILSAFES = [...parseFailsafes(DEFAULT_FAILSAFE_INBOUND, 'in').entries, ...parseFailsafes(DEFAULT_FAILSAFE_OUTBOUND, 'out').entries];

export function compile(over: Partial<HostPolicyInput>): HostPolicyPlan {
  return compileHostPolicy({
    nodeName: 'n1',
    nodes: [],
    pods: [],
    namespaces: [],
    globalNetworkPolicies: [],
    hostEndpoints: [],
    failsafes: FAILSAFES,
    autoHostEndpoints: true,
    ...over,
  });
}

export function tcp(saddr: string, daddr: string, dport: number, sport = 40000): HostPacket {
  return { family: saddr.includes(':') ? 6 : 4, protocol: 6, saddr, daddr, sport, dport };
}

/** The plan's rules of one chain, as short strings: `allow tcp d22 src#1 [default/p#0]`, `deny tierEnd`, `pass ->7`. */
export function chainText(plan: HostPolicyPlan, hepName: string, kind: string): string[] | undefined {
  const e = plan.endpoints.find((x) => x.name === hepName);
  const c = e && plan.chains.find((x) => x.hep === e.id && x.kind === kind);
  if (!c) return undefined;
  return plan.rules.slice(c.first, c.first + c.count).map((r) => {
    const parts: string[] = [r.action];
    if (r.compiled) parts.push(r.compiled);
    if (r.protocol !== undefined) parts.push(`p${r.protocol}`);
    if (r.sports) parts.push(`s${r.sports[0]}-${r.sports[1]}`);
    if (r.dports) parts.push(`d${r.dports[0]}-${r.dports[1]}`);
    if (r.family) parts.push(`v${r.family}`);
    if (r.srcSet) parts.push(`src[${plan.sets.get(r.srcSet)!.join(' ')}]`);
    if (r.srcNotSet) parts.push(`!src[${plan.sets.get(r.srcNotSet)!.join(' ')}]`);
    if (r.dstSet) parts.push(`dst[${plan.sets.get(r.dstSet)!.join(' ')}]`);
    if (r.dstNotSet) parts.push(`!dst[${plan.sets.get(r.dstNotSet)!.join(' ')}]`);
    if (r.jump !== undefined) parts.push(`->${r.jump - c.first}`);
    if (r.policy) parts.push(`${plan.policyNames.get(r.policy)}#${r.rule}`);
    return parts.join(' ');
  });
}
