// sources/slim: what weir keeps of each object the API source watches. An object is cut down to
// these fields as it arrives (every list page item and every watch event), before the informer's
// cache and the store keep it: Pods, Namespaces and Nodes are watched cluster-wide, and a pod as
// the API serves it (managedFields, annotations, container specs, status conditions) is mostly
// bulk weir never reads. Cilium does the same with its slim copies of the Kubernetes types
// (pkg/k8s/slim). The tables list exactly what the code reads; test/unit/slim.test.ts checks that
// the model gives the same answers for the whole and the slim objects, so a new read of a field
// that is not kept fails there.

import { LABEL_ZONE } from '../model/nodes.js';
import { ANNOTATION_LB_ALGORITHM } from '../model/services.js';
import type { KindMap, ObjectKind } from './types.js';

/**
 * A field table: `true` keeps the value whole; an object keeps only the fields it names, each by
 * its own table; `[table]` keeps an array, each element by the table. A value whose type does not
 * fit its table (a string where an object belongs) is kept as it is: the model reports it.
 */
export type Keep = true | { readonly [field: string]: Keep } | readonly [Keep];

const TYPE = { apiVersion: true, kind: true } as const;
/** The key, and the resourceVersion the informer resumes its watch from and compares on a relist.
 *  creationTimestamp is read by nothing but test/k8s/kube-source.test.ts (list and watch objects
 *  are both deserialized: dates as Date); one Date per object is cheap. */
const META = { name: true, namespace: true, resourceVersion: true, creationTimestamp: true } as const;
/** A container's name (required by the type) and its ports: named ports are part of a pod's identity. */
const CONTAINER: Keep = { name: true, ports: [{ name: true, containerPort: true, protocol: true }] };

/** Per kind, the fields weir reads (and so keeps); the reader is named on each line. */
export const KEPT_FIELDS: { readonly [K in ObjectKind]: Keep } = {
  Pod: {
    ...TYPE,
    // model/policy/network-policy.ts: identity labels, the node, host-network, finished, addresses, named ports
    metadata: { ...META, labels: true },
    spec: { nodeName: true, hostNetwork: true, containers: [CONTAINER], initContainers: [CONTAINER] },
    status: { phase: true, podIP: true, podIPs: [{ ip: true }] },
  },
  // model/policy/network-policy.ts: namespaceSelector labels
  Namespace: { ...TYPE, metadata: { ...META, labels: true } },
  Node: {
    ...TYPE,
    // model/nodes.ts: zone, InternalIPs, pod CIDRs, the autoscaler's taint (effect: required by the type);
    // metrics/proxy-health.ts: deletionTimestamp and the same taint (kube-proxy's nodeEligible)
    metadata: { ...META, labels: { [LABEL_ZONE]: true }, deletionTimestamp: true },
    spec: { podCIDR: true, podCIDRs: true, taints: [{ key: true, effect: true }] },
    status: { addresses: [{ type: true, address: true }] },
  },
  Service: {
    ...TYPE,
    // model/services.ts: service-proxy-name, headless labels; weir's lb-algorithm annotation (not
    // kubectl's last-applied-configuration, which repeats the whole object)
    metadata: { ...META, labels: true, annotations: { [ANNOTATION_LB_ALGORITHM]: true } },
    spec: true,
    status: true,
  },
  EndpointSlice: {
    ...TYPE,
    // model/endpoints.ts: the service-name and headless labels, each endpoint but its targetRef
    metadata: { ...META, labels: true },
    addressType: true,
    endpoints: [{ addresses: true, conditions: true, nodeName: true, zone: true, hints: true }],
    ports: true,
  },
  // model/policy/rules.ts: the whole spec
  NetworkPolicy: { ...TYPE, metadata: META, spec: true },
  // model/host-policy/compile.ts: the whole spec; a HostEndpoint's labels are what policies select
  GlobalNetworkPolicy: { ...TYPE, metadata: { ...META, labels: true }, spec: true },
  HostEndpoint: { ...TYPE, metadata: { ...META, labels: true }, spec: true },
};

/** `v` cut down to `keep`. */
export function keepFields(keep: Keep, v: unknown): unknown {
  if (keep === true || v === null || typeof v !== 'object') return v;
  if (isArrayTable(keep)) return Array.isArray(v) ? v.map((x: unknown) => keepFields(keep[0], x)) : v;
  if (Array.isArray(v)) return v;
  const out: Record<string, unknown> = {};
  for (const field of Object.keys(keep)) {
    const x = (v as Record<string, unknown>)[field];
    if (x !== undefined) out[field] = keepFields(keep[field]!, x);
  }
  return out;
}

function isArrayTable(k: Exclude<Keep, true>): k is readonly [Keep] {
  return Array.isArray(k);
}

/**
 * Parts that are equal across many objects, shared: the pods of one workload have the same labels
 * and the same containers' ports, so they hold one copy of each (as Cilium interns its label
 * sets). A copy is dropped from the table once no object holds it. Nothing in weir changes a
 * stored object (the store replaces objects), so sharing is safe.
 */
const SHARED_PARTS: { readonly [K in ObjectKind]?: readonly (readonly string[])[] } = {
  Pod: [
    ['metadata', 'labels'],
    ['spec', 'containers'],
    ['spec', 'initContainers'],
  ],
};

const shared = new Map<string, WeakRef<object>>();
const forget = new FinalizationRegistry<string>((key) => {
  if (shared.get(key)?.deref() === undefined) shared.delete(key);
});

function intern(v: object): object {
  const key = JSON.stringify(v);
  const hit = shared.get(key)?.deref();
  if (hit !== undefined) return hit;
  shared.set(key, new WeakRef(v));
  forget.register(v, key);
  return v;
}

/** `o` with its SHARED_PARTS replaced by the shared copy of an equal value (in place; returns `o`). */
export function shareEqualParts<K extends ObjectKind>(kind: K, o: KindMap[K]): KindMap[K] {
  for (const path of SHARED_PARTS[kind] ?? []) {
    let parent = o as unknown as Record<string, unknown> | undefined;
    for (const field of path.slice(0, -1)) parent = parent?.[field] as Record<string, unknown> | undefined;
    const last = path[path.length - 1]!;
    const v = parent?.[last];
    if (typeof v === 'object' && v !== null) parent![last] = intern(v);
  }
  return o;
}

/** The slim copy of an object of a kind: only KEPT_FIELDS[kind]. */
export function slimObject<K extends ObjectKind>(kind: K, o: KindMap[K]): KindMap[K] {
  return keepFields(KEPT_FIELDS[kind], o) as KindMap[K];
}
