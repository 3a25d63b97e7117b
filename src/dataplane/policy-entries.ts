// dataplane/policy-entries: what this node's NetworkPolicy maps should hold for a built
// PolicyModel (src/model/policy): the ipcache and this node's endpoints of both families (the
// family is in each address: the writer picks the IPv4 or IPv6 map), one key set per local
// identity with port ranges as LPM blocks (family-neutral), and the policies that need a slot.
// Pure: PolicyWriter (policy-maps.ts) writes the difference.

import type { WeirIpcache4, WeirPolicy4, WeirPolicy4Key } from '../bpf/index.js';
import { IPPROTO, parseCidr, type IpFamily } from '../bpf/ip.js';
import { FIRST_CIDR_IDENTITY, IDENTITY_HOST, IDENTITY_WORLD } from '../model/policy/identities.js';
import type { IpcacheEntry } from '../model/policy/ipcache.js';
import type { AllowRule, DirectionPolicy, PolicyModel } from '../model/policy/policy-types.js';
import { portPrefixes } from '../model/policy/port-ranges.js';

export const POLICY_INGRESS = 0;
export const POLICY_EGRESS = 1;
/** identity + peer + direction: the bits every key matches exactly (WEIR_POLICY4_FIXED_BITS) */
export const POLICY_FIXED_BITS = 72;
export const EP_INGRESS_ISOLATED = 1;
export const EP_EGRESS_ISOLATED = 2;
export const SELECT_INGRESS = 1;
export const SELECT_EGRESS = 2;
export const POLICY_NAME_LEN = 320;
export const IDENTITY_KEY_LEN = 1024;
/** weir_policy_names / weir_policy_stats slots (WEIR_POLICY_SLOTS); slot 0 is "none" */
export const POLICY_SLOTS = 4096;

/** One weir_policy4 entry. */
export interface PolicyBlock {
  key: WeirPolicy4Key;
  value: WeirPolicy4;
}

/** A local endpoint's map value, its policy slots named (the writer resolves them). */
export interface DesiredEndpoint {
  identity: number;
  flags: number;
  ingressPolicy: string | null;
  egressPolicy: string | null;
}

export interface DesiredPolicyMaps {
  /** canonical `address/prefix` of either family -> identities (weir_ipcache4 or weir_ipcache6) */
  ipcache: Map<string, WeirIpcache4>;
  /** local pod address of either family -> endpoint (weir_endpoints4 or weir_endpoints6) */
  endpoints: Map<string, DesiredEndpoint>;
  /** local identity -> its two directions (shared objects: unchanged ones are skipped by reference) */
  policy: Map<number, { ingress: DirectionPolicy; egress: DirectionPolicy }>;
  /** identity -> its key (pods: the label key, CIDRs: the canonical prefix) */
  identities: Map<number, string>;
  /** the policies ('ns/name') that select this node's pods: slots are given to these */
  policies: string[];
}

/** The family of a canonical address or `address/prefix`. */
export function familyOf(address: string): IpFamily {
  return address.includes(':') ? 6 : 4;
}

/** The host prefix length of a family: /32, /128. */
export function hostPrefix(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/** The map value of each model ipcache entry (entries are reused between builds while unchanged). */
const ipcacheValues = new WeakMap<IpcacheEntry, WeirIpcache4>();

/**
 * What this node's maps should hold for `model`. `hostAddresses`: every address of this node
 * (not only its InternalIP: the gateway addresses of its pod interfaces too), so that a pod's
 * traffic to any of them is node-local and always allowed.
 */
export function desiredPolicyMaps(model: PolicyModel, localNode: string, hostAddresses: Iterable<string> = []): DesiredPolicyMaps {
  const out: DesiredPolicyMaps = { ipcache: new Map(), endpoints: new Map(), policy: new Map(), identities: new Map(), policies: [] };
  for (const [cidr, e] of model.ipcache) {
    let v = ipcacheValues.get(e);
    if (!v) ipcacheValues.set(e, (v = { identity: e.identity, cidr_identity: e.cidrIdentity }));
    out.ipcache.set(cidr, v);
  }
  for (const a of hostAddresses) {
    const p = parseCidr(`${a}/${hostPrefix(familyOf(a))}`);
    if (!p) continue;
    const key = `${p.address}/${p.prefix}`;
    const have = out.ipcache.get(key);
    // a pod's own address wins (host-network pods have none); the node's InternalIP is already HOST
    if (have && have.identity !== IDENTITY_HOST && have.identity < FIRST_CIDR_IDENTITY) continue;
    const cidrIdentity = have?.cidr_identity ?? cidrIdentityOf(model, p.address, p.prefix);
    out.ipcache.set(key, { identity: IDENTITY_HOST, cidr_identity: cidrIdentity });
  }
  for (const ep of model.endpoints.values()) {
    if (ep.node !== localNode) continue;
    const flags = (ep.ingress.isolated ? EP_INGRESS_ISOLATED : 0) | (ep.egress.isolated ? EP_EGRESS_ISOLATED : 0);
    const value: DesiredEndpoint = {
      identity: ep.identity,
      flags,
      ingressPolicy: ep.ingress.policies[0] ?? null,
      egressPolicy: ep.egress.policies[0] ?? null,
    };
    // every address of the pod, either family: one identity, one key set
    for (const ip of ep.ips) out.endpoints.set(ip, value);
    if (ep.ips.length > 0 && !out.policy.has(ep.identity)) out.policy.set(ep.identity, { ingress: ep.ingress, egress: ep.egress });
  }
  // slots only for the policies this node's keys and endpoints name: bounded by what selects
  // its pods, not by the cluster's policy count
  const named = new Set<string>();
  for (const { ingress, egress } of out.policy.values())
    for (const d of [ingress, egress]) {
      for (const p of d.policies) named.add(p);
      for (const r of d.rules) named.add(r.policy);
    }
  out.policies = [...named].sort();
  for (const [key, id] of model.podIdentityIds) out.identities.set(id, key);
  for (const [cidr, id] of model.cidrIdentityIds) out.identities.set(id, cidr);
  return out;
}

/** The identity of the longest ipBlock prefix holding `address` (a /`full` host) in the model's ipcache. */
function cidrIdentityOf(model: PolicyModel, address: string, full: number): number {
  for (let len = full; len >= 0; len--) {
    const net = parseCidr(`${address}/${len}`);
    const e = net ? model.ipcache.get(`${net.address}/${len}`) : undefined;
    if (e && e.source.kind === 'cidr') return e.identity;
  }
  return IDENTITY_WORLD;
}

const PROTO_OF: Readonly<Record<string, number>> = { TCP: IPPROTO.TCP, UDP: IPPROTO.UDP, SCTP: IPPROTO.SCTP };

export function blockText(k: WeirPolicy4Key): string {
  return `${k.identity}/${k.direction}/${k.peer}/${k.protocol}/${k.port}/${k.prefixlen}`;
}

/** Rules of a direction by `${peer}/${protocol}` (0 = any), in rule order: which rule a key came from. */
function ruleIndex(dir: DirectionPolicy): Map<string, AllowRule[]> {
  const idx = new Map<string, AllowRule[]>();
  for (const r of dir.rules) {
    const proto = r.protocol === 'any' ? 0 : (PROTO_OF[r.protocol] ?? -1);
    for (const peer of r.peer.kind === 'any' ? [0] : r.peer.identities) {
      const t = `${peer}/${proto}`;
      let l = idx.get(t);
      if (!l) idx.set(t, (l = []));
      l.push(r);
    }
  }
  return idx;
}

/**
 * The weir_policy4 entries of one local identity's direction: each key's port range as aligned
 * blocks (an LPM prefix of the port), "every protocol" as a key that ends before the protocol.
 * Each entry names a rule that allows it (policy slot, rule index) for the CLI and the counts.
 */
export function directionBlocks(identity: number, direction: number, dir: DirectionPolicy, slotOf: (policy: string) => number): Map<string, PolicyBlock> {
  const out = new Map<string, PolicyBlock>();
  if (!dir.isolated) return out;
  const idx = ruleIndex(dir);
  const put = (peer: number, protocol: number, port: number, prefixlen: number, rule: AllowRule | undefined): void => {
    const key: WeirPolicy4Key = { prefixlen, identity, peer, direction, protocol, port };
    out.set(blockText(key), { key, value: { policy: rule ? slotOf(rule.policy) : 0, rule: rule?.rule ?? 0 } });
  };
  for (const k of dir.keys) {
    const rules = idx.get(`${k.peer}/${k.protocol}`) ?? [];
    if (k.protocol === 0 && k.port === 0 && k.endPort === 65535) {
      put(k.peer, 0, 0, POLICY_FIXED_BITS, rules[0]);
      continue;
    }
    // "every protocol" on a port range does not occur (a rule without ports has no protocol);
    // should it, it stands for the three protocols policy ports exist for
    const protos = k.protocol === 0 ? [IPPROTO.TCP, IPPROTO.UDP, IPPROTO.SCTP] : [k.protocol];
    for (const proto of protos)
      for (const b of portPrefixes(k.port, k.endPort)) {
        const rule = rules.find((r) => r.port <= b.port && b.port <= r.endPort) ?? rules[0];
        put(k.peer, proto, b.port, POLICY_FIXED_BITS + 8 + b.prefixLen, rule);
      }
  }
  return out;
}

/** A NUL-terminated string in a fixed-size buffer; null when it does not fit (never cut silently). */
export function cString(text: string, size: number): Buffer | null {
  const b = Buffer.from(text, 'utf8');
  if (b.length >= size) return null;
  const out = Buffer.alloc(size);
  b.copy(out);
  return out;
}

/** The text of a NUL-terminated buffer. */
export function fromCString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}
