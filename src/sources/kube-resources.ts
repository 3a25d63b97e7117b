// sources/kube-resources: what the API source reads, per kind: the collection path, the RBAC
// resource and verbs (deploy/weir.yaml must grant exactly these), the typed list call and the
// serializer type for watch objects.

import { CoreV1Api, DiscoveryV1Api, NetworkingV1Api, type KubeConfig, type KubernetesObject, type V1ListMeta } from '@kubernetes/client-node';
import type { ObjectKind } from './types.js';

/** What the source reads from the API, per kind: the RBAC rules in deploy/ must equal this. */
export interface WatchedResource {
  kind: ObjectKind;
  /** API group ('' = core) */
  group: string;
  /** plural resource name as RBAC and URLs spell it */
  resource: string;
  /** cluster-wide collection path the informer lists and watches */
  path: string;
  verbs: readonly ('list' | 'watch')[];
  /** Asked of the server on list and watch: what weir would drop anyway is not sent. */
  fieldSelector?: string;
}

/** The model skips finished pods (their IPs may be reused); a pod that finishes leaves the watch
 *  as a DELETED event. Running, Pending and Unknown pods stay: Pending ones get their IP later. */
export const POD_FIELD_SELECTOR = 'status.phase!=Succeeded,status.phase!=Failed';

export const WATCHED_RESOURCES: readonly WatchedResource[] = [
  { kind: 'Service', group: '', resource: 'services', path: '/api/v1/services', verbs: ['list', 'watch'] },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', resource: 'endpointslices', path: '/apis/discovery.k8s.io/v1/endpointslices', verbs: ['list', 'watch'] },
  { kind: 'Pod', group: '', resource: 'pods', path: '/api/v1/pods', verbs: ['list', 'watch'], fieldSelector: POD_FIELD_SELECTOR },
  { kind: 'Namespace', group: '', resource: 'namespaces', path: '/api/v1/namespaces', verbs: ['list', 'watch'] },
  { kind: 'Node', group: '', resource: 'nodes', path: '/api/v1/nodes', verbs: ['list', 'watch'] },
  {
    kind: 'NetworkPolicy',
    group: 'networking.k8s.io',
    resource: 'networkpolicies',
    path: '/apis/networking.k8s.io/v1/networkpolicies',
    verbs: ['list', 'watch'],
  },
];

/** Other API access weir needs, each as narrow as RBAC allows (deploy/weir.yaml grants
 *  exactly WATCHED_RESOURCES plus these; test/unit/kube-deploy.test.ts checks it). */
export const API_ACCESS: ReadonlyArray<{ group: string; resource: string; verbs: string[]; resourceNames: string[]; why: string }> = [
  { group: 'apps', resource: 'daemonsets', verbs: ['get'], resourceNames: ['kube-proxy'], why: 'warn while a kube-proxy DaemonSet would undo the takeover' },
];

export const SERIALIZER_TYPE: Record<ObjectKind, string> = {
  Service: 'V1Service',
  EndpointSlice: 'V1EndpointSlice',
  Pod: 'V1Pod',
  Namespace: 'V1Namespace',
  Node: 'V1Node',
  NetworkPolicy: 'V1NetworkPolicy',
};

export interface ListPage {
  metadata?: V1ListMeta;
  items: KubernetesObject[];
}
export type ListCall = (params: { limit: number; _continue?: string }) => Promise<ListPage>;

export function listCall(kc: KubeConfig, kind: ObjectKind, fieldSelector?: string): ListCall {
  const call = typedListCall(kc, kind);
  return fieldSelector === undefined ? call : (p) => call({ ...p, fieldSelector });
}

function typedListCall(kc: KubeConfig, kind: ObjectKind): (params: { limit: number; _continue?: string; fieldSelector?: string }) => Promise<ListPage> {
  switch (kind) {
    case 'Service': {
      const api = kc.makeApiClient(CoreV1Api);
      return (p) => api.listServiceForAllNamespaces(p);
    }
    case 'EndpointSlice': {
      const api = kc.makeApiClient(DiscoveryV1Api);
      return (p) => api.listEndpointSliceForAllNamespaces(p);
    }
    case 'Pod': {
      const api = kc.makeApiClient(CoreV1Api);
      return (p) => api.listPodForAllNamespaces(p);
    }
    case 'Namespace': {
      const api = kc.makeApiClient(CoreV1Api);
      return (p) => api.listNamespace(p);
    }
    case 'Node': {
      const api = kc.makeApiClient(CoreV1Api);
      return (p) => api.listNode(p);
    }
    case 'NetworkPolicy': {
      const api = kc.makeApiClient(NetworkingV1Api);
      return (p) => api.listNetworkPolicyForAllNamespaces(p);
    }
  }
}
