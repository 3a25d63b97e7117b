// model/host-policy/types: Calico's projectcalico.org/v3 GlobalNetworkPolicy and HostEndpoint as
// weir reads them (the subset host protection needs), and the compiled plan the daemon writes to
// the host policy maps (bpf-c/include/weir/host_policy.h). The contract between the model
// (compile.ts), the dataplane writer (src/dataplane/host-policy-sync.ts), the CLI and the tests.

/** A Calico rule action. Log is not supported (rejected with a clear error). */
export type CalicoAction = 'Allow' | 'Deny' | 'Pass';

/** source / destination of a rule (Calico EntityRule) */
export interface CalicoEntityRule {
  nets?: string[];
  notNets?: string[];
  /** Calico selector expression over the labels of pods and host endpoints */
  selector?: string;
  notSelector?: string;
  /** Calico selector over namespace labels: limits `selector` to pods of those namespaces */
  namespaceSelector?: string;
  /** numbers, "lo:hi" ranges (inclusive) or named ports */
  ports?: Array<number | string>;
}

export interface CalicoRule {
  action: CalicoAction;
  /** TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite, or 1-255 */
  protocol?: string | number;
  source?: CalicoEntityRule;
  destination?: CalicoEntityRule;
}

export interface GlobalNetworkPolicySpec {
  tier?: string;
  order?: number;
  /** Calico selector; empty or absent = all() */
  selector?: string;
  types?: Array<'Ingress' | 'Egress'>;
  ingress?: CalicoRule[];
  egress?: CalicoRule[];
  applyOnForward?: boolean;
  preDNAT?: boolean;
  doNotTrack?: boolean;
}

export interface GlobalNetworkPolicy {
  apiVersion?: string;
  kind?: 'GlobalNetworkPolicy';
  metadata: { name: string; labels?: Record<string, string>; resourceVersion?: string };
  spec: GlobalNetworkPolicySpec;
}

export interface HostEndpointSpec {
  node: string;
  /** an interface name, '*' (every host interface), or empty (then expectedIPs pick it) */
  interfaceName?: string;
  expectedIPs?: string[];
  profiles?: string[];
  ports?: Array<{ name: string; protocol: string; port: number }>;
}

export interface HostEndpoint {
  apiVersion?: string;
  kind?: 'HostEndpoint';
  metadata: { name: string; labels?: Record<string, string>; resourceVersion?: string };
  spec: HostEndpointSpec;
}

/** One failsafe entry (Felix ProtoPort): `tcp:22`, or with a CIDR `tcp:198.18.0.0/15:22`. */
export interface FailsafeEntry {
  direction: 'in' | 'out';
  protocol: 'tcp' | 'udp' | 'sctp';
  port: number;
  /** inbound: the source; outbound: the destination; absent = any */
  net?: string;
}

/** The chains of one host endpoint (host_policy.h enum weir_hep_chain_kind, same order). */
export const CHAIN_KINDS = ['untrackedIn', 'untrackedOut', 'preDnatIn', 'normalIn', 'normalOut', 'forwardIn', 'forwardOut'] as const;
export type ChainKind = (typeof CHAIN_KINDS)[number];

/** One flat rule (struct weir_host_rule). Ranges are inclusive, host order. */
export interface HostRule {
  action: 'allow' | 'deny' | 'pass';
  /** IPPROTO_* number; absent = any */
  protocol?: number;
  sports?: readonly [number, number];
  dports?: readonly [number, number];
  /** the rule has nets of this family only: it never matches the other */
  family?: 4 | 6;
  /** set ids in plan.sets; absent = no such criterion */
  srcSet?: number;
  srcNotSet?: number;
  dstSet?: number;
  dstNotSet?: number;
  /** pass: the absolute rule index to go on at */
  jump?: number;
  /** plan.policyNames slot; 0 = a compiled rule */
  policy: number;
  /** index in the policy's ingress/egress list (compiled rules: 0) */
  rule: number;
  /** a compiled rule: the end-of-tier deny, or a chain-ending profile verdict */
  compiled?: 'tierEnd' | 'profile';
}

export interface HostEndpointPlan {
  /** the id in weir_hep_ifaces / weir_hep_chains (stable while the endpoint exists) */
  id: number;
  /** metadata.name (`<node>-auto-hep` for the automatic one) */
  name: string;
  auto: boolean;
  /** '*' = every host interface; else the names it covers */
  interfaces: '*' | string[];
  expectedIPs: string[];
  labels: Record<string, string>;
  profiles: string[];
  /** the policies that apply to it, per chain, in evaluation order */
  policies: Array<{ chain: ChainKind; slot: number; name: string }>;
}

export interface ChainPlan {
  hep: number;
  kind: ChainKind;
  /** absolute index of the first rule in plan.rules */
  first: number;
  count: number;
}

export interface HostPolicyPlan {
  /** only this node's host endpoints */
  endpoints: HostEndpointPlan[];
  chains: ChainPlan[];
  rules: HostRule[];
  /** set id (>= 1) -> CIDRs (both families, /32 and /128 for single addresses) */
  sets: Map<number, string[]>;
  /** slot (>= 1) -> "tier/name" */
  policyNames: Map<number, string>;
  failsafes: FailsafeEntry[];
  /** objects that could not be used, each named with why (logged and counted by the daemon) */
  errors: Array<{ kind: 'GlobalNetworkPolicy' | 'HostEndpoint'; name: string; message: string }>;
}

/** A packet as the evaluator (evaluate.ts) and `weir explain` see it. */
export interface HostPacket {
  family: 4 | 6;
  protocol: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
}
