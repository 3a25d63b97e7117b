// sources/types: the normalized events every source emits (manifests directory, Kubernetes API
// informers) and the store applies. One shape for both, so nothing downstream knows the origin.

import type { V1EndpointSlice, V1Namespace, V1NetworkPolicy, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import type { GlobalNetworkPolicy, HostEndpoint } from '../model/host-policy/types.js';

/** A Calico object as the sources hand it on: the model's type, with the metadata every stored
 *  object may carry (the key reads namespace; the API source keeps creationTimestamp). */
export type Served<T extends { metadata: object }> = T & { metadata: { namespace?: string; creationTimestamp?: Date } };

/** The Kubernetes object type for each kind weir watches. */
export interface KindMap {
  Service: V1Service;
  EndpointSlice: V1EndpointSlice;
  Pod: V1Pod;
  Namespace: V1Namespace;
  Node: V1Node;
  NetworkPolicy: V1NetworkPolicy;
  /** projectcalico.org/v3 (host protection): served by Calico's API server or its v3 CRDs, may be absent */
  GlobalNetworkPolicy: Served<GlobalNetworkPolicy>;
  HostEndpoint: Served<HostEndpoint>;
}

export type ObjectKind = keyof KindMap;

export const OBJECT_KINDS: readonly ObjectKind[] = [
  'Service',
  'EndpointSlice',
  'Pod',
  'Namespace',
  'Node',
  'NetworkPolicy',
  'GlobalNetworkPolicy',
  'HostEndpoint',
];

/** Kinds without a namespace: their key is just the name. */
export const CLUSTER_SCOPED: ReadonlySet<ObjectKind> = new Set<ObjectKind>(['Namespace', 'Node', 'GlobalNetworkPolicy', 'HostEndpoint']);

/** Calico's kinds (host protection): their CRDs may not be installed, so a cluster may not serve them. */
export const CALICO_KINDS: readonly ObjectKind[] = ['GlobalNetworkPolicy', 'HostEndpoint'];

/** The apiVersion each kind is served under (filled in when a manifest omits it). */
export const API_VERSIONS: Readonly<Record<ObjectKind, string>> = {
  Service: 'v1',
  EndpointSlice: 'discovery.k8s.io/v1',
  Pod: 'v1',
  Namespace: 'v1',
  Node: 'v1',
  NetworkPolicy: 'networking.k8s.io/v1',
  GlobalNetworkPolicy: 'projectcalico.org/v3',
  HostEndpoint: 'projectcalico.org/v3',
};

export function isObjectKind(k: unknown): k is ObjectKind {
  return typeof k === 'string' && Object.prototype.hasOwnProperty.call(API_VERSIONS, k);
}

/** An object was created or changed (upsert) or went away (delete: object is its last state). */
export type ObjectEvent<K extends ObjectKind = ObjectKind> = {
  [P in K]: {
    type: 'upsert' | 'delete';
    kind: P;
    /** 'ns/name' for namespaced kinds (namespace defaults to 'default'), 'name' otherwise. */
    key: string;
    object: KindMap[P];
    /** File path for the manifests source, 'api' for the API source. */
    origin: string;
    /** ms since the epoch when the source saw the change (programming-latency metrics). */
    observedAt: number;
  };
}[K];

/** The source has emitted its complete initial state; later events are changes. */
export interface SyncedEvent {
  type: 'synced';
  origin: string;
  observedAt: number;
}

export type SourceEvent = ObjectEvent | SyncedEvent;

export type SourceSink = (event: SourceEvent) => void;

/** A source: start() emits the initial list then 'synced', then changes until stop(). */
export interface Source {
  start(sink: SourceSink): Promise<void>;
  stop(): Promise<void>;
}

/** Store key of an object of a kind. */
export function keyOf(kind: ObjectKind, meta: { namespace?: string; name?: string } | undefined): string {
  const name = meta?.name ?? '';
  return CLUSTER_SCOPED.has(kind) ? name : `${meta?.namespace || 'default'}/${name}`;
}
