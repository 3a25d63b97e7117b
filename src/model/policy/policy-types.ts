// model/policy/policy-types: the shapes of the policy model: what buildPolicyModel takes and what
// the BPF writer, diff and verdict read. Types only.

import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import type { NodeInfo } from '../nodes.js';
import type { Protocol } from '../validate.js';
import type { BuildCache } from './build-cache.js';
import type { PodIdentityLabels } from './identities.js';
import type { IpcacheEntry } from './ipcache.js';
import type { CompiledPolicy, PolicyIssue } from './rules.js';

export interface PolicyInputs {
  policies: Iterable<V1NetworkPolicy>;
  pods: Iterable<V1Pod>;
  namespaces: Iterable<V1Namespace>;
  /** For the ipcache: node InternalIPs get the remote-node identity (host for `localNode`). */
  nodes?: Iterable<NodeInfo>;
  localNode?: string;
  /** Ids to keep (identity key / canonical CIDR → id): the previous model's, or read back from the maps. */
  previous?: { podIdentities?: ReadonlyMap<string, number>; cidrIdentities?: ReadonlyMap<string, number> };
  /**
   * The model this build replaces: its ids are adopted (unless `previous` is given) and its cache
   * reused, so a change recomputes only the identities it touches. The result equals a build from
   * scratch with the same ids.
   */
  previousModel?: PolicyModel;
}

/** One allow entry of a policy map: traffic with this peer, protocol (0 = any) and port in [port, endPort]. */
export interface PolicyKey {
  /** Peer identity; IDENTITY_ANY (0) matches every peer. */
  peer: number;
  /** IP protocol number (6, 17, 132), 0 = every protocol. */
  protocol: number;
  port: number;
  endPort: number;
}

/** A rule as it applies to one endpoint, with the port resolved (named ports per destination pod). */
export interface AllowRule {
  policy: string;
  /** Index in spec.ingress / spec.egress. */
  rule: number;
  peer: { kind: 'any' } | { kind: 'pods'; identities: number[] } | { kind: 'cidr'; cidr: string; except: string[]; identities: number[] };
  protocol: Protocol | 'any';
  port: number;
  endPort: number;
}

export interface DirectionPolicy {
  /** Some policy selects the pod for this direction: only what `keys` allow passes. */
  isolated: boolean;
  /** 'ns/name' of the policies that isolate the pod for this direction, sorted. */
  policies: string[];
  rules: AllowRule[];
  /** Sorted, de-duplicated, ranges of one (peer, protocol) merged. */
  keys: PolicyKey[];
}

/** Endpoints of one identity share their DirectionPolicy objects (their keys are equal by construction): treat them as read-only. */
export interface Endpoint {
  pod: string;
  namespace: string;
  node: string;
  ips: string[];
  identity: number;
  ingress: DirectionPolicy;
  egress: DirectionPolicy;
}

export type PodIssueReason = 'bad_ip' | 'duplicate_ip' | 'identity_exhausted';
export interface PodIssue {
  pod: string;
  reason: PodIssueReason;
  detail: string;
}

export interface PolicyModel {
  endpoints: Map<string, Endpoint>;
  /** Pod IP → pod key (the first pod by key when two claim one IP). */
  endpointByIp: Map<string, string>;
  /** Identity key → id and id → labels, for pods. */
  podIdentityIds: Map<string, number>;
  podIdentities: Map<number, PodIdentityLabels>;
  /** Canonical CIDR → id and back, for ipBlock prefixes. */
  cidrIdentityIds: Map<string, number>;
  cidrIdentities: Map<number, string>;
  /** Canonical `address/prefix` → entry. */
  ipcache: Map<string, IpcacheEntry>;
  /** Node name → its addresses, for verdicts involving nodes. */
  nodeAddresses: Map<string, string[]>;
  /** Host-network pods ('ns/name' → node name): no endpoints, their traffic is their node's. */
  hostNetworkPods: Map<string, string>;
  policies: Map<string, CompiledPolicy>;
  policyIssues: PolicyIssue[];
  podIssues: PodIssue[];
  /** For the next build (inputs.previousModel); not map content. */
  cache: BuildCache;
}

export interface PodInfo {
  key: string;
  namespace: string;
  node: string;
  ips: string[];
  identity: PodIdentityLabels;
  identityKey: string;
}
