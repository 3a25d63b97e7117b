// model/policy/network-policy: NetworkPolicies + Pods + Namespaces (+ Nodes) → what the BPF policy
// maps hold: identities, the ipcache, and per endpoint (pod) its isolation per direction and the
// set of allow keys (peer identity, protocol, port range). Pure; rules.ts compiles each policy,
// identities.ts numbers label sets, ipcache.ts holds addresses, endpoint-keys.ts turns one
// identity's policies into keys, build-cache.ts lets the next build redo only what changed,
// verdict.ts answers questions, diff.ts lists the map writes between two models.
//
// Keys are designed so one label change touches few endpoints:
// - a key names a peer IDENTITY (a class of pods with equal labels, namespace labels and named
//   ports), never a pod or an address. Scaling a workload up or down, or a pod restarting with a
//   new IP, changes only ipcache entries: no endpoint's keys move.
// - a pod relabelled into an identity that already exists (and whose old identity still has
//   members) changes only its ipcache entry and its own endpoint's keys (the policies selecting it).
// - only when a label change creates or empties an identity do the endpoints whose rules select
//   it gain or lose keys: one key per (endpoint, rule) that selects it, nothing else.
// - a namespace relabel changes the identities of that namespace's pods (their namespace labels
//   are part of them), which is what namespaceSelectors need.
// - ipBlocks become CIDR identities (ipcache.ts), so adding a pod never touches CIDR keys either.
// - ids are adopted from `previous` (or `previousModel`), so recomputation after a restart or an
//   unrelated change yields the same numbers and diff() is empty.
// - endpoints of one identity share one key list (their keys are equal by construction), so a
//   writer may share one policy map per identity and diff() compares each list once.

import type { V1Pod } from '@kubernetes/client-node';
import { parseIp } from '../../bpf/ip.js';
import {
  allocateIds,
  FIRST_CIDR_IDENTITY,
  FIRST_POD_IDENTITY,
  IDENTITY_HOST,
  IDENTITY_REMOTE_NODE,
  LABEL_NAMESPACE_NAME,
  LAST_CIDR_IDENTITY,
  LAST_POD_IDENTITY,
  podIdentityKey,
  type PodIdentityLabels,
} from './identities.js';
import { PrefixIndex, type IpcacheEntry } from './ipcache.js';
import { compilePolicy, type CompiledPolicy, type Peer, type PolicyIssue } from './rules.js';
import { selectorMatches } from './selectors.js';
import { addRules, emptyDirection, normalizeKeys } from './endpoint-keys.js';
import type { DirectionPolicy, Endpoint, PodInfo, PodIssue, PolicyInputs, PolicyModel } from './policy-types.js';
import { namedEgress, newBuildCache, peerVersion, sameMap } from './build-cache.js';

export { allowed, verdict, type Party, type Verdict } from './verdict.js';
export { diffPolicyModels } from './diff.js';
export { normalizeKeys } from './endpoint-keys.js';
export type * from './policy-types.js';

function podKey(p: V1Pod): string {
  return `${p.metadata?.namespace || 'default'}/${p.metadata?.name ?? ''}`;
}

function labelsOf(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof v !== 'object' || v === null) return out;
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
  return out;
}

/** `name/PROTOCOL` → containerPort over the pod's containers and init (sidecar) containers; the first wins. */
function namedPortsOf(p: V1Pod): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of [...(p.spec?.containers ?? []), ...(p.spec?.initContainers ?? [])]) {
    for (const port of Array.isArray(c?.ports) ? c.ports : []) {
      const name = port?.name;
      const proto = port?.protocol ?? 'TCP';
      if (typeof name !== 'string' || name === '' || typeof port.containerPort !== 'number') continue;
      const k = `${name}/${proto}`;
      if (!(k in out)) out[k] = port.containerPort;
    }
  }
  return out;
}

function podIps(p: V1Pod): { ips: string[]; bad: string[] } {
  const raw = Array.isArray(p.status?.podIPs) && p.status.podIPs.length > 0 ? p.status.podIPs.map((x) => x?.ip) : [p.status?.podIP];
  const ips: string[] = [];
  const bad: string[] = [];
  for (const r of raw) {
    if (r === undefined || r === null || r === '') continue;
    const ip = parseIp(r);
    if (!ip) bad.push(String(r));
    else if (!ips.includes(ip.address)) ips.push(ip.address);
  }
  return { ips, bad };
}

/** Build the whole model. Never throws; what is skipped is in policyIssues / podIssues. */
export function buildPolicyModel(inputs: PolicyInputs): PolicyModel {
  const podIssues: PodIssue[] = [];
  const policyIssues: PolicyIssue[] = [];

  const nsLabels = new Map<string, Record<string, string>>();
  for (const ns of inputs.namespaces) {
    const name = ns?.metadata?.name;
    if (typeof name === 'string' && name !== '') nsLabels.set(name, labelsOf(ns.metadata?.labels));
  }
  const nsViews = new Map<string, { labels: Record<string, string>; key: string }>();
  const namespaceView = (ns: string): { labels: Record<string, string>; key: string } => {
    let v = nsViews.get(ns);
    if (!v) {
      const labels = { ...(nsLabels.get(ns) ?? {}), [LABEL_NAMESPACE_NAME]: ns };
      nsViews.set(ns, (v = { labels, key: JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) }));
    }
    return v;
  };
  const cache = inputs.previousModel?.cache ?? newBuildCache();
  const lastIpcache = inputs.previousModel?.ipcache;
  const lastEndpoints = inputs.previousModel?.endpoints;
  cache.builds++;

  // Pods: every pod with an address that is not host-network and not finished (its IP may be reused).
  const pods: PodInfo[] = [];
  const hostNetworkPods = new Map<string, string>();
  for (const p of inputs.pods) {
    if (!p?.metadata?.name) continue;
    if (p.spec?.hostNetwork === true) {
      // not an endpoint: its traffic is its node's (verdict resolves it to the node)
      hostNetworkPods.set(podKey(p), p.spec.nodeName ?? '');
      continue;
    }
    if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    const namespace = p.metadata.namespace || 'default';
    const ns = namespaceView(namespace);
    // a pod object seen by the last build (store objects are replaced on change) under the same namespace labels
    const seen = cache.pods.get(p);
    if (seen && seen.nsKey === ns.key) {
      for (const b of seen.bad) podIssues.push({ pod: seen.info.key, reason: 'bad_ip', detail: `pod IP ${JSON.stringify(b)}` });
      if (seen.info.ips.length > 0) pods.push(seen.info);
      continue;
    }
    const key = podKey(p);
    const { ips, bad } = podIps(p);
    for (const b of bad) podIssues.push({ pod: key, reason: 'bad_ip', detail: `pod IP ${JSON.stringify(b)}` });
    const identity: PodIdentityLabels = { namespace, labels: labelsOf(p.metadata.labels), namespaceLabels: ns.labels, namedPorts: namedPortsOf(p) };
    const info: PodInfo = { key, namespace, node: p.spec?.nodeName ?? '', ips, identity, identityKey: podIdentityKey(identity) };
    cache.pods.set(p, { nsKey: ns.key, bad, info });
    if (ips.length > 0) pods.push(info);
  }
  pods.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

  const podAlloc = allocateIds(
    pods.map((p) => p.identityKey),
    inputs.previous?.podIdentities ?? inputs.previousModel?.podIdentityIds ?? new Map(),
    FIRST_POD_IDENTITY,
    LAST_POD_IDENTITY,
  );
  const podIdentities = new Map<number, PodIdentityLabels>();
  for (const p of pods) {
    const id = podAlloc.ids.get(p.identityKey);
    if (id !== undefined) podIdentities.set(id, p.identity);
  }
  for (const i of podAlloc.issues)
    if (i.reason === 'range_exhausted') podIssues.push({ pod: i.key, reason: 'identity_exhausted', detail: 'no free pod identity' });

  // Policies, and every ipBlock prefix they name.
  const serials = new Map<CompiledPolicy, number>();
  const policies = new Map<string, CompiledPolicy>();
  for (const np of inputs.policies) {
    let c = cache.compiled.get(np);
    if (!c) cache.compiled.set(np, (c = { ...compilePolicy(np), serial: cache.nextSerial++ }));
    const { policy, issues } = c;
    if (policy) serials.set(policy, c.serial);
    policyIssues.push(...issues);
    if (policy && !policies.has(policy.key)) policies.set(policy.key, policy);
  }
  const prefixTexts = new Set<string>();
  for (const pol of policies.values())
    for (const r of [...pol.ingressRules, ...pol.egressRules])
      if (r.peers !== 'all')
        for (const peer of r.peers) if (peer.kind === 'ipBlock') for (const c of [peer.cidr, ...peer.except]) prefixTexts.add(`${c.address}/${c.prefix}`);
  const cidrAlloc = allocateIds(
    prefixTexts,
    inputs.previous?.cidrIdentities ?? inputs.previousModel?.cidrIdentityIds ?? new Map(),
    FIRST_CIDR_IDENTITY,
    LAST_CIDR_IDENTITY,
  );
  const prefixIndex = new PrefixIndex();
  const cidrIdentities = new Map<number, string>();
  const ipcache = new Map<string, IpcacheEntry>();
  for (const [text, id] of [...cidrAlloc.ids].sort(([, a], [, b]) => a - b)) {
    const [address, len] = text.split('/') as [string, string];
    const parsed = { family: address.includes(':') ? (6 as const) : (4 as const), address, prefix: Number(len) };
    prefixIndex.add(parsed, id);
    cidrIdentities.set(id, text);
    ipcache.set(text, { cidr: text, family: parsed.family, prefix: parsed.prefix, identity: id, cidrIdentity: id, source: { kind: 'cidr' } });
  }

  // Nodes, then pods, into the ipcache (a pod's /32 replaces an equal ipBlock prefix: its cidrIdentity keeps the prefix's id).
  const nodeAddresses = new Map<string, string[]>();
  for (const n of inputs.nodes ?? []) {
    const addrs = [n.internalIP[4], n.internalIP[6]].filter((a): a is string => a !== null);
    nodeAddresses.set(n.name, addrs);
    for (const a of addrs) {
      const family = a.includes(':') ? 6 : 4;
      const prefix = family === 4 ? 32 : 128;
      const identity = n.name === inputs.localNode ? IDENTITY_HOST : IDENTITY_REMOTE_NODE;
      ipcache.set(`${a}/${prefix}`, {
        cidr: `${a}/${prefix}`,
        family,
        prefix,
        identity,
        cidrIdentity: prefixIndex.longest(a),
        source: { kind: 'node', node: n.name },
      });
    }
  }
  const endpointByIp = new Map<string, string>();
  const podsById = new Map<number, PodInfo[]>();
  for (const p of pods) {
    const id = podAlloc.ids.get(p.identityKey);
    if (id === undefined) continue;
    let members = podsById.get(id);
    if (!members) podsById.set(id, (members = []));
    members.push(p);
    for (const ip of p.ips) {
      const owner = endpointByIp.get(ip);
      if (owner !== undefined) {
        podIssues.push({ pod: p.key, reason: 'duplicate_ip', detail: `${ip} is also ${owner}'s; ${owner} keeps it` });
        continue;
      }
      endpointByIp.set(ip, p.key);
      const family = ip.includes(':') ? 6 : 4;
      const prefix = family === 4 ? 32 : 128;
      const cidr = `${ip}/${prefix}`;
      const cidrIdentity = prefixIndex.longest(ip);
      // the last build's entry when it is the same: fewer objects per build (GC was a quarter of a relabel)
      const prev = lastIpcache?.get(cidr);
      if (prev && prev.identity === id && prev.cidrIdentity === cidrIdentity && prev.source.kind === 'pod' && prev.source.pod === p.key)
        ipcache.set(cidr, prev);
      else ipcache.set(cidr, { cidr, family, prefix, identity: id, cidrIdentity, source: { kind: 'pod', pod: p.key } });
    }
  }

  // Peer → identities, computed once per (policy, rule, peer), reused by every endpoint the policy selects.
  // Identity and prefix sets against the previous build: selections are reused while both hold,
  // and a pod peer's selection is patched with the added/removed identities after one change.
  const identityKeys = new Map<number, string>();
  for (const [key, id] of podAlloc.ids) identityKeys.set(id, key);
  const prevKeys = cache.identityKeys;
  const prevSetVersion = cache.identitySetVersion;
  const addedIds: number[] = [];
  const removedIds = new Set<number>();
  for (const [id, key] of identityKeys) if (prevKeys.get(id) !== key) addedIds.push(id);
  for (const [id, key] of prevKeys) if (identityKeys.get(id) !== key) removedIds.add(id);
  /** ids that stand for another key than in the last build (released and given again) */
  const reusedIds = new Set(addedIds.filter((id) => prevKeys.has(id)));
  if (addedIds.length > 0 || removedIds.size > 0) cache.identitySetVersion++;
  cache.identityKeys = identityKeys;
  if (!sameMap(cidrAlloc.ids, cache.prefixIds)) cache.prefixVersion++;
  cache.prefixIds = cidrAlloc.ids;
  const podPeerMatches = (peer: Peer & { kind: 'pods' }, l: PodIdentityLabels): boolean =>
    (peer.namespace === null || l.namespace === peer.namespace) &&
    selectorMatches(peer.namespaceSelector, l.namespaceLabels) &&
    selectorMatches(peer.podSelector, l.labels);
  const idsOf = (peer: Peer): number[] => {
    const st = cache.selections.get(peer);
    if (st && st.setVersion === cache.identitySetVersion && st.prefixVersion === cache.prefixVersion) return st.ids;
    let ids: number[];
    if (peer.kind === 'ipBlock') ids = st && st.prefixVersion === cache.prefixVersion ? st.ids : prefixIndex.select(peer);
    else if (st && st.setVersion === cache.identitySetVersion) ids = st.ids;
    else if (st && st.setVersion === prevSetVersion) {
      ids = st.ids.filter((id) => !removedIds.has(id));
      for (const id of addedIds) if (podPeerMatches(peer, podIdentities.get(id)!)) ids.push(id);
      ids.sort((a, b) => a - b);
    } else {
      ids = [];
      for (const [id, l] of podIdentities) if (podPeerMatches(peer, l)) ids.push(id);
      ids.sort((a, b) => a - b);
    }
    cache.selections.set(peer, { ids, setVersion: cache.identitySetVersion, prefixVersion: cache.prefixVersion });
    return ids;
  };
  // For a named port towards an ipBlock (egress): the pod identities all of whose pods lie in the block.
  const podIdsInBlock = (peer: Peer & { kind: 'ipBlock' }): number[] => {
    const cidrIds = new Set(idsOf(peer));
    const out: number[] = [];
    for (const [id, members] of podsById) if (members.every((m) => m.ips.every((ip) => cidrIds.has(prefixIndex.longest(ip))))) out.push(id);
    return out;
  };

  // Everything an endpoint's keys depend on is in its identity (namespace, labels, named ports), so
  // they are computed once per identity and shared (read-only) by every endpoint that has it.
  const policiesByNs = new Map<string, CompiledPolicy[]>();
  for (const pol of [...policies.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    let l = policiesByNs.get(pol.namespace);
    if (!l) policiesByNs.set(pol.namespace, (l = []));
    l.push(pol);
  }
  // A policy's part of a fingerprint, once per build (not once per identity it selects): its
  // serial and what each of its peers selects now
  const stamps = new Map<CompiledPolicy, string>();
  const egressSelectsAny = (pol: CompiledPolicy, ids: ReadonlySet<number>): boolean =>
    pol.egressRules.some((r) => r.peers !== 'all' && r.peers.some((peer) => peer.kind === 'pods' && idsOf(peer).some((id) => ids.has(id))));
  const stampOf = (pol: CompiledPolicy): string => {
    let s = stamps.get(pol);
    if (s !== undefined) return s;
    s = `|${serials.get(pol)}`;
    const named = pol.egress ? namedEgress(pol) : { any: false, toAll: false, toIpBlock: false };
    // a named egress port resolves on each destination identity's ports: every identity for
    // `to: all`; for pod peers the selected ids, whose version does not move when an id is
    // released and given to another key in one build, so such a reuse among them counts too
    if (named.toAll || (named.any && reusedIds.size > 0 && egressSelectsAny(pol, reusedIds))) s += `n${cache.identitySetVersion}`;
    if (named.toIpBlock) s += `b${cache.builds}`; // depends on pod addresses: never reused
    for (const r of [...(pol.ingress ? pol.ingressRules : []), ...(pol.egress ? pol.egressRules : [])])
      if (r.peers !== 'all') for (const peer of r.peers) s += `,${peerVersion(cache, peer, idsOf(peer))}`;
    stamps.set(pol, s);
    return s;
  };
  const directions = new Map<number, { fingerprint: string; ingress: DirectionPolicy; egress: DirectionPolicy }>();
  for (const [id, l] of podIdentities) {
    const selecting = (policiesByNs.get(l.namespace) ?? []).filter((pol) => selectorMatches(pol.podSelector, l.labels));
    // everything the directions are computed from: the identity, the policies, what each of their peers selects
    let fingerprint = identityKeys.get(id)!;
    for (const pol of selecting) fingerprint += stampOf(pol);
    const cached = cache.directions.get(id);
    if (cached && cached.fingerprint === fingerprint) {
      directions.set(id, cached);
      continue;
    }
    const ingress = emptyDirection();
    const egress = emptyDirection();
    for (const pol of selecting) {
      if (pol.ingress) addRules(ingress, pol, pol.ingressRules, 'ingress', l.namedPorts, idsOf, podIdentities, podIdsInBlock);
      if (pol.egress) addRules(egress, pol, pol.egressRules, 'egress', l.namedPorts, idsOf, podIdentities, podIdsInBlock);
    }
    ingress.keys = normalizeKeys(ingress.keys);
    egress.keys = normalizeKeys(egress.keys);
    directions.set(id, { fingerprint, ingress, egress });
  }
  cache.directions = directions;
  const endpoints = new Map<string, Endpoint>();
  for (const p of pods) {
    const identity = podAlloc.ids.get(p.identityKey);
    if (identity === undefined) continue; // no identity: not programmed, the writer fails closed for it
    const d = directions.get(identity)!;
    const prev = lastEndpoints?.get(p.key);
    if (prev && prev.identity === identity && prev.ips === p.ips && prev.node === p.node && prev.ingress === d.ingress && prev.egress === d.egress)
      endpoints.set(p.key, prev);
    else endpoints.set(p.key, { pod: p.key, namespace: p.namespace, node: p.node, ips: p.ips, identity, ingress: d.ingress, egress: d.egress });
  }

  return {
    endpoints,
    endpointByIp,
    podIdentityIds: podAlloc.ids,
    podIdentities,
    cidrIdentityIds: cidrAlloc.ids,
    cidrIdentities,
    ipcache,
    nodeAddresses,
    hostNetworkPods,
    policies,
    policyIssues,
    podIssues,
    cache,
  };
}
