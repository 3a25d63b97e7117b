// model/policy/verdict: answer "may SRC open a connection to DST on PROTO/PORT?" from a built
// PolicyModel, the way the BPF programs will: ipcache lookups give identities, the egress keys of
// the source endpoint and the ingress keys of the destination endpoint must both allow. Used by
// the tests and by `weir explain`; replies of an allowed connection are the conntrack's business.

import { IPPROTO, parseIp } from '../../bpf/ip.js';
import { IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD } from './identities.js';
import { lookupIpcache } from './ipcache.js';
import type { DirectionPolicy, Endpoint, PolicyKey, PolicyModel } from './policy-types.js';

/** A side of a connection: a pod by 'ns/name', an address, or a node by name (kubelet, host-network pods). */
export type Party = { pod: string } | { ip: string } | { node: string };

type Resolved = { kind: 'endpoint'; ep: Endpoint; ip: string | null } | { kind: 'node'; node: string; ip: string | null } | { kind: 'address'; ip: string };

export interface Verdict {
  allowed: boolean;
  /** 'node-local', 'not-isolated', 'allowed', 'egress-denied', 'ingress-denied', 'unknown-party'. */
  reason: string;
  /** The policies that isolate the denying side (for "default deny by NAME"). */
  deniedBy?: string[];
  /** The key that allowed each isolated side. */
  egressKey?: PolicyKey;
  ingressKey?: PolicyKey;
  /** The policy and rule index (spec.egress[i] / spec.ingress[i]) behind each allowing key. */
  egressRule?: { policy: string; rule: number };
  ingressRule?: { policy: string; rule: number };
}

function resolve(model: PolicyModel, p: Party): Resolved | null {
  if ('pod' in p) {
    const ep = model.endpoints.get(p.pod);
    if (ep) return { kind: 'endpoint', ep, ip: null };
    const node = model.hostNetworkPods.get(p.pod);
    return node !== undefined ? { kind: 'node', node, ip: null } : null;
  }
  if ('node' in p) return { kind: 'node', node: p.node, ip: null };
  const ip = parseIp(p.ip)?.address;
  if (!ip) return null;
  const owner = model.endpointByIp.get(ip);
  if (owner !== undefined) return { kind: 'endpoint', ep: model.endpoints.get(owner)!, ip };
  for (const [node, addrs] of model.nodeAddresses) if (addrs.includes(ip)) return { kind: 'node', node, ip };
  return { kind: 'address', ip };
}

function familyOf(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

/** The address a side uses, in the family of the other side when it is fixed. */
function addressOf(model: PolicyModel, r: Resolved, family: 4 | 6 | null): string | null {
  if (r.ip) return r.ip;
  const list = r.kind === 'endpoint' ? r.ep.ips : r.kind === 'node' ? (model.nodeAddresses.get(r.node) ?? []) : [];
  return list.find((a) => family === null || familyOf(a) === family) ?? list[0] ?? null;
}

/** The identities a policy key may name for `peer`, as seen by `self` (host vs remote node depends on where self runs). */
function identitiesOf(model: PolicyModel, peer: Resolved, self: Endpoint, family: 4 | 6 | null): number[] {
  const ip = addressOf(model, peer, family);
  const cidrId = ip ? (lookupIpcache(model.ipcache, ip)?.cidrIdentity ?? IDENTITY_WORLD) : IDENTITY_WORLD;
  if (peer.kind === 'endpoint') return [peer.ep.identity, cidrId];
  if (peer.kind === 'node') return [peer.node === self.node ? IDENTITY_HOST : IDENTITY_REMOTE_NODE, cidrId];
  const e = lookupIpcache(model.ipcache, peer.ip);
  return e ? [e.identity, e.cidrIdentity] : [IDENTITY_WORLD];
}

function protoNumber(p: string | number): number {
  if (typeof p === 'number') return p;
  return (IPPROTO as Record<string, number>)[p.toUpperCase()] ?? -1;
}

/** The first key of `dir` that admits one of `ids` on proto/port, or null. */
export function matchKey(dir: DirectionPolicy, ids: readonly number[], proto: number, port: number): PolicyKey | null {
  for (const k of dir.keys) {
    if (k.peer !== 0 && !ids.includes(k.peer)) continue;
    if (k.protocol !== 0 && k.protocol !== proto) continue;
    if (port < k.port || port > k.endPort) continue;
    return k;
  }
  return null;
}

/** The first rule of `dir` that admits a peer with one of `ids` on proto/port (what `weir explain` names). */
export function matchRule(dir: DirectionPolicy, ids: readonly number[], proto: number, port: number): { policy: string; rule: number } | null {
  for (const r of dir.rules) {
    if (r.peer.kind !== 'any' && !r.peer.identities.some((id) => ids.includes(id))) continue;
    if (r.protocol !== 'any' && (IPPROTO as Record<string, number>)[r.protocol] !== proto) continue;
    if (port < r.port || port > r.endPort) continue;
    return { policy: r.policy, rule: r.rule };
  }
  return null;
}

/** The policy verdict of a new connection from src to dst on protocol (name or number) and destination port. */
export function verdict(model: PolicyModel, src: Party, dst: Party, protocol: string | number, port: number): Verdict {
  const s = resolve(model, src);
  const d = resolve(model, dst);
  if (!s || !d) return { allowed: false, reason: 'unknown-party' };
  // Kubernetes: a pod and its own node always talk (kubelet probes), whatever the policies say.
  if (s.kind === 'node' && d.kind === 'endpoint' && s.node === d.ep.node) return { allowed: true, reason: 'node-local' };
  if (d.kind === 'node' && s.kind === 'endpoint' && d.node === s.ep.node) return { allowed: true, reason: 'node-local' };
  const proto = protoNumber(protocol);
  const family = s.ip ? familyOf(s.ip) : d.ip ? familyOf(d.ip) : null;
  const out: Verdict = { allowed: true, reason: 'not-isolated' };
  if (s.kind === 'endpoint' && s.ep.egress.isolated) {
    const ids = identitiesOf(model, d, s.ep, family);
    const k = matchKey(s.ep.egress, ids, proto, port);
    if (!k) return { allowed: false, reason: 'egress-denied', deniedBy: s.ep.egress.policies };
    out.egressKey = k;
    out.egressRule = matchRule(s.ep.egress, ids, proto, port) ?? undefined;
    out.reason = 'allowed';
  }
  if (d.kind === 'endpoint' && d.ep.ingress.isolated) {
    const ids = identitiesOf(model, s, d.ep, family);
    const k = matchKey(d.ep.ingress, ids, proto, port);
    if (!k) return { allowed: false, reason: 'ingress-denied', deniedBy: d.ep.ingress.policies };
    out.ingressKey = k;
    out.ingressRule = matchRule(d.ep.ingress, ids, proto, port) ?? undefined;
    out.reason = 'allowed';
  }
  return out;
}

export function allowed(model: PolicyModel, src: Party, dst: Party, protocol: string | number, port: number): boolean {
  return verdict(model, src, dst, protocol, port).allowed;
}
