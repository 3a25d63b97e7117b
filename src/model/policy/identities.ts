// model/policy/identities: security identities, the Cilium way. Pods → one small integer per
// distinct (namespace, pod labels, namespace labels, named ports); CIDR prefixes of ipBlocks → one
// id each in their own range; reserved ids for the node and the world. The allocator keeps ids
// stable across recomputation: what the BPF maps key policy on.

import type { Labels } from './selectors.js';

/** This node (kubelet probes, host-network pods on it): always allowed to and from its pods. */
export const IDENTITY_HOST = 1;
/** Another node of the cluster (its InternalIPs). */
export const IDENTITY_REMOTE_NODE = 2;
/** An address that is no pod, no node and in no ipBlock prefix. */
export const IDENTITY_WORLD = 3;
/** The wildcard peer in a policy key ("from/to anywhere"); never an identity of an address. */
export const IDENTITY_ANY = 0;

/** Pod identities: [FIRST_POD_IDENTITY, LAST_POD_IDENTITY] (Cilium's cluster-local range starts at 256 too). */
export const FIRST_POD_IDENTITY = 256;
export const LAST_POD_IDENTITY = 0xffffff;
/** CIDR identities live above the pod range (Cilium's local-scope bit 1<<24), so they never collide. */
export const FIRST_CIDR_IDENTITY = 0x1000000;
export const LAST_CIDR_IDENTITY = 0x1ffffff;

export const RESERVED_IDENTITY_NAMES: Readonly<Record<number, string>> = {
  [IDENTITY_ANY]: 'any',
  [IDENTITY_HOST]: 'host',
  [IDENTITY_REMOTE_NODE]: 'remote-node',
  [IDENTITY_WORLD]: 'world',
};

/** The immutable label the API server puts on every namespace (and the only one we can trust exists). */
export const LABEL_NAMESPACE_NAME = 'kubernetes.io/metadata.name';

/** What a pod identity stands for: everything a NetworkPolicy can see of a peer pod. */
export interface PodIdentityLabels {
  namespace: string;
  labels: Labels;
  namespaceLabels: Labels;
  /**
   * `name/PROTOCOL` → port of the pod's containers. Part of the identity because an egress rule's
   * named port resolves on the destination pod: with it in the identity, one (identity, port)
   * key is exact for every pod sharing the identity (pods of one workload share their ports too).
   */
  namedPorts: Readonly<Record<string, number>>;
}

function sortedEntries<V>(o: Readonly<Record<string, V>>): [string, V][] {
  return Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The canonical key of an identity: equal label sets give equal keys, whatever the insertion order. */
export function podIdentityKey(id: PodIdentityLabels): string {
  return JSON.stringify([id.namespace, sortedEntries(id.labels), sortedEntries(id.namespaceLabels), sortedEntries(id.namedPorts)]);
}

/** Why an id could not be given (the range is full): the caller fails closed for that key. */
export interface AllocationIssue {
  key: string;
  reason: 'range_exhausted' | 'previous_out_of_range' | 'previous_duplicate';
}

/**
 * Give each key an id in [first, last]. A key that had an id in `previous` keeps it (a restart
 * adopts the ids read back from the maps; an unrelated change renumbers nothing); new keys, in
 * sorted order, take the lowest free ids, so released ids are reused lowest-first. A previous id
 * out of range or claimed twice is dropped (reported) and the key is treated as new.
 */
export function allocateIds(
  keys: Iterable<string>,
  previous: ReadonlyMap<string, number>,
  first: number,
  last: number,
): { ids: Map<string, number>; issues: AllocationIssue[] } {
  const ids = new Map<string, number>();
  const used = new Set<number>();
  const issues: AllocationIssue[] = [];
  const fresh: string[] = [];
  for (const key of new Set(keys)) {
    const id = previous.get(key);
    if (id === undefined) fresh.push(key);
    else if (!Number.isInteger(id) || id < first || id > last) {
      issues.push({ key, reason: 'previous_out_of_range' });
      fresh.push(key);
    } else if (used.has(id)) {
      issues.push({ key, reason: 'previous_duplicate' });
      fresh.push(key);
    } else {
      ids.set(key, id);
      used.add(id);
    }
  }
  fresh.sort();
  let next = first;
  for (const key of fresh) {
    while (next <= last && used.has(next)) next++;
    if (next > last) {
      issues.push({ key, reason: 'range_exhausted' });
      continue;
    }
    ids.set(key, next);
    used.add(next);
  }
  return { ids, issues };
}

/** A readable name of any identity for `weir identities` and explain. */
export function identityName(id: number, pods: ReadonlyMap<number, PodIdentityLabels>, cidrs: ReadonlyMap<number, string>): string {
  const reserved = RESERVED_IDENTITY_NAMES[id];
  if (reserved !== undefined) return reserved;
  const cidr = cidrs.get(id);
  if (cidr !== undefined) return `cidr:${cidr}`;
  const p = pods.get(id);
  if (!p) return `unknown:${id}`;
  const labels = sortedEntries(p.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `${p.namespace}:{${labels}}`;
}
