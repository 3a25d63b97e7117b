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
}

export const WATCHED_RESOURCES: readonly WatchedResource[] = [
  { kind: 'Service', group: '', resource: 'services', path: '/api/v1/services', verbs: ['list', 'watch'] },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', resource: 'endpointslices', path: '/apis/discovery.k8s.io/v1/endpointslices', verbs: ['list', 'watch'] },
  { kind: 'Pod', group: '', resource: 'pods', path: '/api/v1/pods', verbs: ['list', 'watch'] },
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

export function listCall(kc: KubeConfig, kind: ObjectKind): ListCall {
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
