// sources/kube-resources: what the API source reads, per kind: the collection path, the RBAC
// resource and verbs (deploy/weir.yaml must grant exactly these), and the paged list call.

import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  NetworkingV1Api,
  Observable,
  ResponseContext,
  type ConfigurationOptions,
  type KubeConfig,
  type KubernetesObject,
  type ObservableMiddleware,
  type V1ListMeta,
} from '@kubernetes/client-node';
import { withDates } from './plain-object.js';
import { slimObject } from './slim.js';
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
  /**
   * Items per list page when the source is not given one (default 500, client-go's pager). Kinds
   * that are big as served list in pages of 100: a page's parsed JSON then dies young instead of
   * outliving a scavenge, and the heap (so the RSS) does not grow to hold pages already used
   * (bench/results/memory.md: 660 → 371 MiB RSS after listing 50,000 pods).
   */
  pageSize?: number;
  /**
   * A custom resource whose CRD may not be installed (Calico's, in a cluster without Calico): a
   * 404 on list is an empty kind, logged once and retried with backoff, never a failed sync.
   */
  mayBeAbsent?: boolean;
}

/** The model skips finished pods (their IPs may be reused); a pod that finishes leaves the watch
 *  as a DELETED event. Running, Pending and Unknown pods stay: Pending ones get their IP later. */
export const POD_FIELD_SELECTOR = 'status.phase!=Succeeded,status.phase!=Failed';

export const WATCHED_RESOURCES: readonly WatchedResource[] = [
  { kind: 'Service', group: '', resource: 'services', path: '/api/v1/services', verbs: ['list', 'watch'] },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', resource: 'endpointslices', path: '/apis/discovery.k8s.io/v1/endpointslices', verbs: ['list', 'watch'] },
  { kind: 'Pod', group: '', resource: 'pods', path: '/api/v1/pods', verbs: ['list', 'watch'], fieldSelector: POD_FIELD_SELECTOR, pageSize: 100 },
  { kind: 'Namespace', group: '', resource: 'namespaces', path: '/api/v1/namespaces', verbs: ['list', 'watch'] },
  { kind: 'Node', group: '', resource: 'nodes', path: '/api/v1/nodes', verbs: ['list', 'watch'], pageSize: 100 },
  {
    kind: 'NetworkPolicy',
    group: 'networking.k8s.io',
    resource: 'networkpolicies',
    path: '/apis/networking.k8s.io/v1/networkpolicies',
    verbs: ['list', 'watch'],
  },
  // Calico's host protection objects: read only; served by Calico's API server or its v3 CRDs (deploy/calico-crds.yaml)
  {
    kind: 'GlobalNetworkPolicy',
    group: 'projectcalico.org',
    resource: 'globalnetworkpolicies',
    path: '/apis/projectcalico.org/v3/globalnetworkpolicies',
    verbs: ['list', 'watch'],
    mayBeAbsent: true,
  },
  {
    kind: 'HostEndpoint',
    group: 'projectcalico.org',
    resource: 'hostendpoints',
    path: '/apis/projectcalico.org/v3/hostendpoints',
    verbs: ['list', 'watch'],
    mayBeAbsent: true,
  },
];

/** Other API access weir needs, each as narrow as RBAC allows (deploy/weir.yaml grants
 *  exactly WATCHED_RESOURCES plus these; test/unit/kube-deploy.test.ts checks it). */
export const API_ACCESS: ReadonlyArray<{ group: string; resource: string; verbs: string[]; resourceNames: string[]; why: string }> = [
  { group: 'apps', resource: 'daemonsets', verbs: ['get'], resourceNames: ['kube-proxy'], why: 'warn while a kube-proxy DaemonSet would undo the takeover' },
];

export interface ListPage {
  metadata?: V1ListMeta;
  items: KubernetesObject[];
}
export type ListCall = (params: { limit: number; _continue?: string }) => Promise<ListPage>;

/**
 * The paged list of a kind, its items plain objects as the manifests source stores them
 * (plain-object.ts). `slim`: each page's items are cut down (slim.ts) right after the page is
 * parsed: a page of 500 pods as served is tens of MB once parsed. The items do not go through
 * the library's typing (client-node's ObjectSerializer: ~40 µs per EndpointSlice of 10
 * endpoints, and NetworkPolicy's `from` renamed `_from`) nor back through it as text: the
 * middleware hands the library the page without its items and keeps them. A ListCall is used
 * one page at a time (the pagers await each page).
 */
export function listCall(kc: KubeConfig, kind: ObjectKind, opts: { fieldSelector?: string; slim?: boolean } = {}): ListCall {
  const kept: { items: unknown[] | undefined } = { items: undefined };
  const typed = typedListCall(kc, kind, { middleware: [keepItems(kind, kept, opts.slim ?? false)], middlewareMergeStrategy: 'append' });
  const call: TypedList = async (p) => {
    kept.items = undefined;
    const page = await typed(p);
    const items = kept.items as unknown[] | undefined;
    kept.items = undefined;
    if (items !== undefined) page.items = items.map((o) => withDates(o) as KubernetesObject);
    return page;
  };
  const fieldSelector = opts.fieldSelector;
  return fieldSelector === undefined ? call : (p) => call({ ...p, fieldSelector });
}

/** A response middleware: a 200 list page's items (slim when `slim`) kept in `kept`; the library
 *  gets the page without them. Anything else passes as it came. */
function keepItems(kind: ObjectKind, kept: { items: unknown[] | undefined }, slim: boolean): ObservableMiddleware {
  const cut = async (rsp: ResponseContext): Promise<ResponseContext> => {
    if (rsp.httpStatusCode !== 200) return rsp;
    const page = JSON.parse(await rsp.body.text()) as { items?: unknown };
    if (Array.isArray(page.items)) {
      kept.items = slim ? page.items.map((o: unknown) => slimObject(kind, o as never)) : page.items;
      page.items = [];
    }
    const text = JSON.stringify(page);
    return new ResponseContext(200, rsp.headers, { text: () => Promise.resolve(text), binary: () => Promise.resolve(Buffer.from(text)), stream: () => null });
  };
  return { pre: (ctx) => new Observable(Promise.resolve(ctx)), post: (rsp) => new Observable(cut(rsp)) };
}

type TypedList = (params: { limit: number; _continue?: string; fieldSelector?: string }) => Promise<ListPage>;

function typedListCall(kc: KubeConfig, kind: ObjectKind, o: ConfigurationOptions | undefined): TypedList {
  switch (kind) {
    case 'Service': {
      const api = kc.makeApiClient(CoreV1Api);
      return (p) => api.listServiceForAllNamespaces(p, o);
    }
    case 'EndpointSlice': {
      const api = kc.makeApiClient(DiscoveryV1Api);
      return (p) => api.listEndpointSliceForAllNamespaces(p, o);
    }
    case 'Pod': {
      const api = kc.makeApiClient(CoreV1Api);
      return (p) => api.listPodForAllNamespaces(p, o);
    }
    case 'Namespace': {
      const api = kc.makeApiClient(CoreV1Api);
      return (p) => api.listNamespace(p, o);
    }
    case 'Node': {
      const api = kc.makeApiClient(CoreV1Api);
      return (p) => api.listNode(p, o);
    }
    case 'NetworkPolicy': {
      const api = kc.makeApiClient(NetworkingV1Api);
      return (p) => api.listNetworkPolicyForAllNamespaces(p, o);
    }
    case 'GlobalNetworkPolicy':
    case 'HostEndpoint': {
      // custom resources: the library has no type for them, the page is what the server sent
      const api = kc.makeApiClient(CustomObjectsApi);
      const plural = kind === 'HostEndpoint' ? 'hostendpoints' : 'globalnetworkpolicies';
      return async (p) => {
        // untyped: the page's metadata is as served, `continue` not the typed lists' `_continue`
        const page = (await api.listClusterCustomObject({ group: 'projectcalico.org', version: 'v3', plural, ...p }, o)) as {
          metadata?: V1ListMeta & { continue?: string };
          items: KubernetesObject[];
        };
        const { continue: cont, ...metadata } = page.metadata ?? {};
        return { ...page, metadata: { ...metadata, ...(cont ? { _continue: cont } : {}) } };
      };
    }
  }
}
