// dataplane/policy-view: the NetworkPolicy maps (include/weir/policy.h) read back for people:
// policy slots -> names, identity ids -> what they stand for (decoded from the keys the daemon
// wrote into weir_identities), weir_policy4 keys -> peer, protocol and port range. What
// `weir ipcache|identities|policy` print and `weir explain`'s policy verdict names things with.

import type { TypedMap, WeirEndpoint4, WeirEndpoint4Key, WeirIdentityKey, WeirIpcache4, WeirIpcache4Key } from '../bpf/index.js';
import type { WeirPolicy4, WeirPolicy4Key, WeirPolicyName, WeirPolicySelect, WeirPolicySelectKey } from '../bpf/index.js';
import { protocolName } from '../bpf/ip.js';
import { FIRST_CIDR_IDENTITY, FIRST_POD_IDENTITY, identityName, RESERVED_IDENTITY_NAMES, type PodIdentityLabels } from '../model/policy/identities.js';
import { fromCString, POLICY_EGRESS, POLICY_FIXED_BITS, type AddressMaps } from './policy-maps.js';

/** The policy maps the views read (loader.ts policyMaps gives them; selects is CLI-only and may be absent). */
export interface PolicyReadMaps {
  ipcache: TypedMap<WeirIpcache4Key, WeirIpcache4>;
  endpoints: TypedMap<WeirEndpoint4Key, WeirEndpoint4>;
  /** IPv6's ipcache and endpoints (absent on the pins of a release without IPv6 policy) */
  ipv6?: AddressMaps;
  policy: TypedMap<WeirPolicy4Key, WeirPolicy4>;
  names: TypedMap<number, WeirPolicyName>;
  identities: TypedMap<number, WeirIdentityKey>;
  selects?: TypedMap<WeirPolicySelectKey, WeirPolicySelect>;
}

export type IdentityKind = 'reserved' | 'pod' | 'cidr' | 'unknown';

/** One identity as `weir identities` shows it. */
export interface IdentityInfo {
  identity: number;
  kind: IdentityKind;
  /** host, remote-node, world; `cidr:<prefix>`; `<namespace>:{k=v,...}`; `unknown:<id>` */
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  namespaceLabels?: Record<string, string>;
  /** `name/PROTOCOL` -> port */
  namedPorts?: Record<string, number>;
  cidr?: string;
  /** pod or CIDR ids whose key in weir_identities could not be decoded: the raw text */
  key?: string;
}

/**
 * Identity ids -> names and decoded keys; policy slots -> names. read() takes every entry (the
 * listings name most of them); lazy() looks each up when first asked (explain names a few, and
 * weir_identities holds up to 65,536 keys of 1 KiB).
 */
export class PolicyNames {
  readonly pods = new Map<number, PodIdentityLabels>();
  readonly cidrs = new Map<number, string>();
  /** ids whose key did not decode, with the raw key */
  readonly undecoded = new Map<number, string>();
  readonly policies = new Map<number, string>();
  private readonly asked = new Set<number>();
  private readonly askedSlots = new Set<number>();

  private constructor(private readonly maps?: Pick<PolicyReadMaps, 'names' | 'identities'>) {}

  static read(maps: Pick<PolicyReadMaps, 'names' | 'identities'>): PolicyNames {
    const n = new PolicyNames();
    for (const [slot, v] of maps.names.entries()) n.policies.set(slot, fromCString(v.name));
    for (const [id, v] of maps.identities.entries()) n.addIdentity(id, fromCString(v.key));
    return n;
  }

  static lazy(maps: Pick<PolicyReadMaps, 'names' | 'identities'>): PolicyNames {
    return new PolicyNames(maps);
  }

  /** lazy(): the key of `id`, read once */
  private load(id: number): void {
    if (!this.maps || this.asked.has(id) || RESERVED_IDENTITY_NAMES[id] !== undefined) return;
    this.asked.add(id);
    const v = this.maps.identities.get(id);
    if (v) this.addIdentity(id, fromCString(v.key));
  }

  addIdentity(id: number, key: string): void {
    if (id >= FIRST_CIDR_IDENTITY) this.cidrs.set(id, key);
    else {
      const labels = id >= FIRST_POD_IDENTITY ? parsePodIdentityKey(key) : null;
      if (labels) this.pods.set(id, labels);
      else this.undecoded.set(id, key);
    }
  }

  identity(id: number): string {
    this.load(id);
    return identityName(id, this.pods, this.cidrs);
  }

  /** `ns/name` of a slot; slot 0 (none) and unknown slots as `slot:<n>`. */
  policy(slot: number): string {
    if (this.maps && !this.askedSlots.has(slot)) {
      this.askedSlots.add(slot);
      const v = this.maps.names.get(slot);
      if (v) this.policies.set(slot, fromCString(v.name));
    }
    return this.policies.get(slot) ?? `slot:${slot}`;
  }

  info(id: number): IdentityInfo {
    const name = this.identity(id);
    if (RESERVED_IDENTITY_NAMES[id] !== undefined) return { identity: id, kind: 'reserved', name };
    const cidr = this.cidrs.get(id);
    if (cidr !== undefined) return { identity: id, kind: 'cidr', name, cidr };
    const p = this.pods.get(id);
    if (p)
      return {
        identity: id,
        kind: 'pod',
        name,
        namespace: p.namespace,
        labels: { ...p.labels },
        namespaceLabels: { ...p.namespaceLabels },
        namedPorts: { ...p.namedPorts },
      };
    const key = this.undecoded.get(id);
    return { identity: id, kind: 'unknown', name, ...(key !== undefined ? { key } : {}) };
  }
}

function isPairs<V>(v: unknown, value: (x: unknown) => x is V): v is Array<[string, V]> {
  return Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && value(p[1]));
}
const isString = (x: unknown): x is string => typeof x === 'string';
const isPort = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

/** podIdentityKey() (model/policy/identities.ts) back to its labels; null when the text is no such key. */
export function parsePodIdentityKey(key: string): PodIdentityLabels | null {
  let v: unknown;
  try {
    v = JSON.parse(key);
  } catch {
    return null;
  }
  if (!Array.isArray(v) || v.length !== 4 || typeof v[0] !== 'string') return null;
  const [namespace, labels, namespaceLabels, namedPorts] = v as [string, unknown, unknown, unknown];
  if (!isPairs(labels, isString) || !isPairs(namespaceLabels, isString) || !isPairs(namedPorts, isPort)) return null;
  return { namespace, labels: Object.fromEntries(labels), namespaceLabels: Object.fromEntries(namespaceLabels), namedPorts: Object.fromEntries(namedPorts) };
}

/** What a weir_policy4 key matches besides identity and direction. */
export interface KeyMatch {
  direction: 'ingress' | 'egress';
  /** 'any' (prefix ends before the protocol) or the protocol's name */
  protocol: string;
  port: number;
  endPort: number;
}

/** The protocol and port range of a weir_policy4 key, from its prefix length. */
export function keyMatch(k: WeirPolicy4Key): KeyMatch {
  const direction = k.direction === POLICY_EGRESS ? 'egress' : 'ingress';
  if (k.prefixlen <= POLICY_FIXED_BITS) return { direction, protocol: 'any', port: 0, endPort: 65535 };
  const bits = Math.min(16, Math.max(0, k.prefixlen - POLICY_FIXED_BITS - 8));
  const size = 2 ** (16 - bits);
  const port = bits === 0 ? 0 : k.port - (k.port % size);
  return { direction, protocol: protocolName(k.protocol), port, endPort: port + size - 1 };
}

/** `80`, `8080-8095`, or `any`. */
export function portsText(port: number, endPort: number): string {
  if (port === 0 && endPort === 65535) return 'any';
  return port === endPort ? String(port) : `${port}-${endPort}`;
}

/** `ingress[0]`: a rule as it is written in the policy's spec. */
export function ruleText(direction: 'ingress' | 'egress', rule: number): string {
  return `${direction}[${rule}]`;
}

/** Entries of weir_policy4 merged back into ranges: one per peer, protocol and rule (policy slot, rule index). */
export interface KeyRange extends KeyMatch {
  identity: number;
  peer: number;
  /** the policy's slot (weir_policy_names) */
  slot: number;
  rule: number;
}

/** Adjacent port blocks of one identity, direction, peer, protocol and rule as one range; sorted by peer, protocol, port. */
export function keyRanges(entries: Iterable<readonly [WeirPolicy4Key, WeirPolicy4]>): KeyRange[] {
  const blocks = [...entries]
    .map(([k, v]) => ({
      ...keyMatch(k),
      identity: k.identity,
      peer: k.peer,
      slot: v.policy,
      rule: v.rule,
      proto: k.prefixlen > POLICY_FIXED_BITS ? k.protocol : 0,
    }))
    .sort(
      (a, b) =>
        a.identity - b.identity ||
        a.direction.localeCompare(b.direction) ||
        a.peer - b.peer ||
        a.proto - b.proto ||
        a.port - b.port ||
        a.slot - b.slot ||
        a.rule - b.rule,
    );
  const out: KeyRange[] = [];
  let last: KeyRange | undefined;
  for (const { proto: _proto, ...b } of blocks) {
    if (
      last &&
      last.identity === b.identity &&
      last.direction === b.direction &&
      last.peer === b.peer &&
      last.protocol === b.protocol &&
      last.slot === b.slot &&
      last.rule === b.rule &&
      last.endPort + 1 === b.port
    ) {
      last.endPort = b.endPort;
      continue;
    }
    out.push((last = { ...b }));
  }
  return out;
}
