// model/policy/build-cache: what one buildPolicyModel run hands to the next so that a change
// recomputes only what it touches: compiled policies by object (store objects are replaced, never
// mutated, on change), a version per peer that moves when the identities it selects change, and
// each identity's computed directions with the fingerprint of everything they were computed from.

import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import type { CompiledPolicy, Peer, PolicyIssue } from './rules.js';
import type { DirectionPolicy, PodInfo } from './policy-types.js';

export interface BuildCache {
  /** A pod object's parsed view, valid while its namespace's labels (nsKey) are unchanged. */
  pods: WeakMap<V1Pod, { nsKey: string; bad: string[]; info: PodInfo }>;
  compiled: WeakMap<V1NetworkPolicy, { policy: CompiledPolicy | null; issues: PolicyIssue[]; serial: number }>;
  peers: WeakMap<Peer, { ids: number[]; version: number }>;
  directions: Map<number, { fingerprint: string; ingress: DirectionPolicy; egress: DirectionPolicy }>;
  /** What each peer selected, and under which identity set / prefix set versions (reused while both hold). */
  selections: WeakMap<Peer, { ids: number[]; setVersion: number; prefixVersion: number }>;
  /** Moves whenever the set of pod identities (id → key) changes: named egress ports depend on all of them. */
  identitySetVersion: number;
  identityKeys: Map<number, string>;
  /** Moves whenever the set of ipBlock prefixes (text → id) changes. */
  prefixVersion: number;
  prefixIds: Map<string, number>;
  builds: number;
  nextSerial: number;
}

export function newBuildCache(): BuildCache {
  return {
    pods: new WeakMap(),
    compiled: new WeakMap(),
    peers: new WeakMap(),
    selections: new WeakMap(),
    directions: new Map(),
    identitySetVersion: 0,
    identityKeys: new Map(),
    prefixVersion: 0,
    prefixIds: new Map(),
    builds: 0,
    nextSerial: 1,
  };
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The peer's version after this build's selection `ids` (bumped when they differ from last build's). */
export function peerVersion(cache: BuildCache, peer: Peer, ids: number[]): number {
  const prev = cache.peers.get(peer);
  if (prev && sameIds(prev.ids, ids)) return prev.version;
  const version = (prev?.version ?? 0) + 1;
  cache.peers.set(peer, { ids, version });
  return version;
}

/**
 * Whether a compiled policy has a named port on an egress rule (resolved on each destination
 * identity), and towards what: every pod (`toAll`: the result depends on the whole identity
 * set), or an ipBlock (`toIpBlock`: it depends on pod addresses). Towards pod peers it depends
 * only on what the peer selects (its version) and those identities' named ports, which are
 * part of the identity and so never change under an id.
 */
export function namedEgress(pol: CompiledPolicy): { any: boolean; toAll: boolean; toIpBlock: boolean } {
  let any = false;
  let toAll = false;
  let toIpBlock = false;
  for (const r of pol.egressRules) {
    if (r.ports === 'all' || !r.ports.some((p) => p.kind === 'named')) continue;
    any = true;
    if (r.peers === 'all') toAll = true;
    else if (r.peers.some((p) => p.kind === 'ipBlock')) toIpBlock = true;
  }
  return { any, toAll, toIpBlock };
}

/** Whether two maps hold the same entries. */
export function sameMap<K, V>(a: ReadonlyMap<K, V>, b: ReadonlyMap<K, V>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
