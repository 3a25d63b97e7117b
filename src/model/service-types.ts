// model/service-types: the desired service dataplane state the model produces and the
// reconciler programs. Plain data only: every array is sorted, every id is a stable string,
// so two computations over the same inputs are deep-equal and diffs are cheap.

import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { IpFamily } from '../bpf/ip.js';
import type { Protocol } from './validate.js';

/** What the model needs to know about the node it runs on. */
export interface NodeContext {
  nodeName: string;
  /**
   * Addresses NodePorts are served on, after applying nodePortAddresses. Either family; an
   * address of one family only gets frontends backed by endpoints of that family.
   */
  nodeAddresses: readonly string[];
  /** This node's `topology.kubernetes.io/zone` label, for PreferSameZone hints. */
  zone?: string;
  /**
   * Our `service.kubernetes.io/service-proxy-name`. Services carrying that label are proxied only
   * when it equals this; unset means every labelled Service is left to another proxy.
   */
  proxyName?: string;
}

/** Read-only view of the objects the service model reads (the sources' Store satisfies it). */
export interface ServiceInputs {
  /** Services keyed 'ns/name'. */
  readonly services: ReadonlyMap<string, V1Service>;
  /** Node objects keyed by name (the store has them; this node's zone label is read from here). */
  readonly nodes?: ReadonlyMap<string, V1Node>;
  /** EndpointSlices whose `kubernetes.io/service-name` label names this Service ('ns/name'). */
  slicesForService(serviceKey: string): Iterable<V1EndpointSlice>;
}

export type FrontendKind = 'ClusterIP' | 'NodePort' | 'ExternalIP' | 'LoadBalancer';

export interface Backend {
  /** Canonical IP text (see src/bpf/ip.ts parseIp). */
  address: string;
  /** From the EndpointSlice port whose name matches the service port (never targetPort). */
  port: number;
  /** The endpoint's nodeName, '' when the slice does not say. */
  nodeName: string;
  /** nodeName equals NodeContext.nodeName. */
  isLocal: boolean;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** The endpoint's zone, '' when unset. */
  zone: string;
}

export interface SessionAffinity {
  /** sessionAffinityConfig.clientIP.timeoutSeconds, default 10800. */
  timeoutSeconds: number;
}

/**
 * One (address, port, protocol) the dataplane intercepts.
 *
 * Backend scopes:
 * - `backends`: new flows from the clients the service's traffic policy governs. ClusterIP
 *   frontends: every client (iTP decides Cluster vs Local). External frontends (NodePort,
 *   ExternalIP, LoadBalancer): clients outside the cluster (eTP decides).
 * - `inClusterBackends`: new flows to this frontend from pods and from the node itself. For
 *   external frontends with eTP=Local these are the Cluster-policy endpoints (kube-proxy's
 *   "pod traffic for external destinations" / "route LOCAL traffic" short-circuit, §1.7); in
 *   every other case the same array as `backends`.
 * - `establishedOnly`: serving-and-terminating endpoints of this family that neither scope selects
 *   for new flows. Existing connections to them keep working (conntrack), nothing new picks them.
 *
 * Verdict when a scope has no backend: `reject` true → answer at once (ICMP port unreachable /
 * TCP RST) for every client: the service port has no usable endpoint of this family anywhere.
 * `reject` false and the scope's list empty → drop silently (Local policy, no local endpoint).
 */
export interface Frontend {
  /** Stable key: "198.19.0.10:80/TCP", "[2001:2::a]:53/UDP". Unique within a ServiceState. */
  id: string;
  /** 'ns/name'. */
  serviceKey: string;
  /** The service port's name ('' for a single unnamed port). */
  portName: string;
  /** kube-proxy's ServicePortName plus protocol: 'ns/name:portName/TCP'. */
  servicePortKey: string;
  kind: FrontendKind;
  family: IpFamily;
  address: string;
  port: number;
  protocol: Protocol;
  backends: Backend[];
  inClusterBackends: Backend[];
  establishedOnly: Backend[];
  /** `backends` holds node-local endpoints only (iTP=Local for ClusterIP, eTP=Local otherwise). */
  localOnly: boolean;
  /** No usable endpoint anywhere (see the verdict note above). */
  reject: boolean;
  affinity: SessionAffinity | null;
  /**
   * LoadBalancer frontends: loadBalancerSourceRanges of this family as canonical CIDRs (plus
   * the LB IPs as /32 when a range holds a node address); other sources are dropped. null = no
   * restriction: every other kind, no range of this family, or a /0 among them (kube-proxy).
   */
  sourceRanges: string[] | null;
  /** The service's `service.weir.dev/lb-algorithm` annotation; null: the daemon's --lb-algorithm. */
  lbAlgorithm: LbAlgorithm | null;
}

/** How new flows pick a backend: a random slot, or the Maglev table (dataplane/maglev.ts). */
export type LbAlgorithm = 'random' | 'maglev';

export interface ServiceInfo {
  /** 'ns/name'. */
  key: string;
  namespace: string;
  name: string;
  type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  internalTrafficPolicy: 'Cluster' | 'Local';
  externalTrafficPolicy: 'Cluster' | 'Local';
  affinity: SessionAffinity | null;
  /** Set for type LoadBalancer with eTP=Local (kube-proxy serves /healthz on it); else null. */
  healthCheckNodePort: number | null;
  /** Node-local usable endpoints per servicePortKey (for the health-check node port). */
  localEndpoints: Record<string, number>;
  /**
   * The slices carry topology hints that the Cluster-policy set does not use, and why (first
   * port and family): `http/TCP IPv4: no endpoint hinted for zone zone-2`. null otherwise.
   */
  topologyFallback: string | null;
  /** loadBalancerSourceRanges entries that are no CIDR, left out as kube-proxy does ([] when none). */
  invalidSourceRanges: string[];
}

/** The model of one proxied Service: everything a change to it or its slices can touch. */
export interface ServiceModel {
  info: ServiceInfo;
  /** Sorted by id. May include ids another service also claims (see ServiceState.conflicts). */
  frontends: Frontend[];
}

export interface FrontendConflict {
  id: string;
  /** The service whose frontend is programmed. */
  winner: string;
  /** Services that also claim the id, not programmed for it. */
  losers: string[];
}

export interface ServiceState {
  /** Programmed frontends keyed by Frontend.id (full builds insert in sorted id order). */
  frontends: Map<string, Frontend>;
  /** Proxied services keyed 'ns/name'. */
  services: Map<string, ServiceModel>;
  /** Service keys claiming each frontend id, for conflict resolution on incremental updates. */
  claims: Map<string, string[]>;
}

/** What an incremental update changed, for the reconciler. */
export interface FrontendDiff {
  /** New or changed frontends (full value). */
  upserted: Frontend[];
  /** Ids no longer programmed. */
  removed: string[];
}
