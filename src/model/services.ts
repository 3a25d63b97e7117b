// model/services: Services + EndpointSlices + node context → frontends with their backend sets
// (kube-proxy semantics, reference §5). Computed per Service so that a change to one Service or
// one of its slices recomputes only that Service; the ServiceState is assembled from them.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { categorize, collectEndpoints, LABEL_SERVICE_NAME, portKey, type Endpoint, type TopologyDecision } from './endpoints.js';
import type {
  Backend,
  Frontend,
  FrontendConflict,
  FrontendDiff,
  FrontendKind,
  LbAlgorithm,
  NodeContext,
  ServiceInfo,
  ServiceInputs,
  ServiceModel,
  ServiceState,
  SessionAffinity,
} from './service-types.js';
import { cidrContains, parseCidr, parseIp, type IpFamily, type ParsedCidr, type ParsedIp } from '../bpf/ip.js';
import { isProtocol, isValidPort } from './validate.js';

export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;

/** 'ns/name' of a namespaced object (namespace defaults to 'default'). */
export function objectKey(meta: { namespace?: string; name?: string } | undefined): string {
  return `${meta?.namespace || 'default'}/${meta?.name ?? ''}`;
}

/** Why a Service is not proxied, or null when it is. */
export function skipReason(svc: V1Service, proxyName: string | undefined): string | null {
  const spec = svc.spec;
  if (!spec) return 'no spec';
  if (spec.type === 'ExternalName') return 'ExternalName';
  const label = svc.metadata?.labels?.[LABEL_SERVICE_PROXY_NAME];
  if (label !== undefined && (proxyName === undefined || label !== proxyName)) return `service-proxy-name ${label}`;
  const primary = spec.clusterIPs?.[0] ?? spec.clusterIP;
  if (primary === undefined || primary === '' || primary === 'None') return 'headless';
  return null;
}

function frontendId(address: string, family: IpFamily, port: number, protocol: string): string {
  return family === 6 ? `[${address}]:${port}/${protocol}` : `${address}:${port}/${protocol}`;
}

function parseAll(values: readonly (string | undefined)[]): ParsedIp[] {
  const seen = new Set<string>();
  const out: ParsedIp[] = [];
  for (const v of values) {
    const ip = parseIp(v);
    if (ip && !seen.has(ip.address)) {
      seen.add(ip.address);
      out.push(ip);
    }
  }
  return out;
}

const nodeAddressCache = new WeakMap<readonly string[], ParsedIp[]>();
function nodeAddresses(node: NodeContext): ParsedIp[] {
  let p = nodeAddressCache.get(node.nodeAddresses);
  if (!p) {
    p = parseAll(node.nodeAddresses);
    nodeAddressCache.set(node.nodeAddresses, p);
  }
  return p;
}

/** loadBalancerSourceRanges parsed as kube-proxy does: whitespace trimmed, host bits masked;
 *  an entry that is no CIDR is left out (kube-proxy ignores it too) and reported. */
export function parseSourceRanges(list: readonly (string | undefined)[] | undefined): { ranges: ParsedCidr[]; invalid: string[] } {
  const ranges: ParsedCidr[] = [];
  const invalid: string[] = [];
  for (const r of list ?? []) {
    const c = parseCidr(r);
    if (c) ranges.push(c);
    else invalid.push(String(r));
  }
  return { ranges, invalid };
}

/**
 * The source ranges of one LoadBalancer frontend of `family`, as kube-proxy's firewall chain
 * (KUBE-FW, reference §1.6) builds them: only the ranges of that family; none of it, or a
 * zero-length prefix (0.0.0.0/0) among them, means no restriction (null). When a range holds
 * one of this node's addresses, the load balancer IPs themselves are admitted too: a node
 * that has the VIP as a local address talks to it with the VIP as source (kube-proxy's
 * allowFromNode).
 */
function sourceRangesFor(ranges: readonly ParsedCidr[], family: IpFamily, lbIPs: readonly ParsedIp[], nodeIPs: readonly ParsedIp[]): string[] | null {
  const mine = ranges.filter((r) => r.family === family);
  if (mine.length === 0 || mine.some((r) => r.prefix === 0)) return null;
  const out = new Set(mine.map((r) => `${r.address}/${r.prefix}`));
  const full = family === 4 ? 32 : 128;
  const cidrs = [...out];
  if (nodeIPs.some((n) => n.family === family && cidrs.some((c) => cidrContains(c, n.address))))
    for (const ip of lbIPs) if (ip.family === family) out.add(`${ip.address}/${full}`);
  return [...out].sort();
}

/** The per-service backend choice (docs/dataplane.md, Maglev); another value is ignored (null). */
export const ANNOTATION_LB_ALGORITHM = 'service.weir.dev/lb-algorithm';

function lbAlgorithmOf(svc: V1Service): LbAlgorithm | null {
  const v = svc.metadata?.annotations?.[ANNOTATION_LB_ALGORITHM];
  return v === 'maglev' || v === 'random' ? v : null;
}

function affinityOf(svc: V1Service): SessionAffinity | null {
  if (svc.spec?.sessionAffinity !== 'ClientIP') return null;
  const t = svc.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  return { timeoutSeconds: typeof t === 'number' && Number.isInteger(t) && t >= 1 ? t : DEFAULT_AFFINITY_TIMEOUT_SECONDS };
}

const EMPTY: Backend[] = [];

/** Backend sets of one service port in one family. */
interface FamilySelection {
  hasAny: boolean;
  /** For ClusterIP frontends (iTP). */
  internal: Backend[];
  /** For external clients of external frontends (eTP). */
  external: Backend[];
  cluster: Backend[];
  establishedInternal: Backend[];
  establishedExternal: Backend[];
  localCount: number;
  topology: TopologyDecision;
}

interface PolicyFlags {
  iTPLocal: boolean;
  eTPLocal: boolean;
  usesCluster: boolean;
  usesLocal: boolean;
}

function selectForFamily(eps: readonly Endpoint[], p: PolicyFlags, nodeName: string, zone: string): FamilySelection {
  const c = categorize(eps, p.usesCluster, p.usesLocal, nodeName, zone);
  const cluster = c.cluster ?? EMPTY;
  const local = c.local ?? EMPTY;
  const internal = p.iTPLocal ? local : cluster;
  const external = p.eTPLocal ? local : cluster;
  // Serving-terminating endpoints no scope picks for new flows: kept for established flows.
  let anyST = false;
  for (const { backend: b } of eps) if (b.serving && b.terminating) anyST = true;
  const notSelected = (selected: readonly Backend[][]): Backend[] => {
    if (!anyST) return EMPTY;
    const chosen = new Set<Backend>(selected.flat());
    const out: Backend[] = [];
    for (const { backend: b } of eps) if (b.serving && b.terminating && !chosen.has(b)) out.push(b);
    return out.length === 0 ? EMPTY : out;
  };
  return {
    hasAny: c.hasAny,
    internal,
    external,
    cluster,
    establishedInternal: notSelected([internal]),
    establishedExternal: notSelected(p.eTPLocal ? [local, cluster] : [cluster]),
    localCount: local.length,
    topology: c.topology,
  };
}

/**
 * The model of one Service, or null when it is not proxied (see skipReason). `slices` are the
 * slices labelled for this Service in its namespace; slices of other services are ignored.
 */
export function computeService(svc: V1Service, slices: Iterable<V1EndpointSlice>, node: NodeContext): ServiceModel | null {
  if (skipReason(svc, node.proxyName) !== null) return null;
  const spec = svc.spec!;
  const key = objectKey(svc.metadata);
  const namespace = svc.metadata?.namespace || 'default';
  const name = svc.metadata?.name ?? '';
  const type = spec.type === 'NodePort' || spec.type === 'LoadBalancer' ? spec.type : 'ClusterIP';
  const iTPLocal = spec.internalTrafficPolicy === 'Local';
  const eTPLocalRequested = spec.externalTrafficPolicy === 'Local';
  const affinity = affinityOf(svc);
  const lbAlgorithm = lbAlgorithmOf(svc);
  const zone = node.zone ?? '';

  const mine = [...slices].filter((s) => (s.metadata?.namespace || 'default') === namespace && s.metadata?.labels?.[LABEL_SERVICE_NAME] === name);
  const endpoints = collectEndpoints(mine, node.nodeName);

  const clusterIPs = parseAll(spec.clusterIPs && spec.clusterIPs.length > 0 ? spec.clusterIPs : [spec.clusterIP]);
  const externalIPs = parseAll(spec.externalIPs ?? []);
  const lbIPs = parseAll((svc.status?.loadBalancer?.ingress ?? []).filter((i) => i && i.ipMode !== 'Proxy').map((i) => i.ip));
  const nodeIPs = type === 'ClusterIP' ? [] : nodeAddresses(node);
  const { ranges, invalid: invalidSourceRanges } = parseSourceRanges(spec.loadBalancerSourceRanges);

  const frontends: Frontend[] = [];
  const localEndpoints: Record<string, number> = {};
  let topologyFallback: string | null = null;
  for (const sp of spec.ports ?? []) {
    if (!sp || !isValidPort(sp.port)) continue;
    const protocol = sp.protocol ?? 'TCP';
    if (!isProtocol(protocol)) continue;
    const portName = sp.name ?? '';
    const servicePortKey = `${key}:${portName}/${protocol}`;
    const nodePort = type !== 'ClusterIP' && isValidPort(sp.nodePort) ? sp.nodePort : 0;
    const externallyAccessible = nodePort !== 0 || externalIPs.length > 0 || lbIPs.length > 0;
    const eTPLocal = eTPLocalRequested && externallyAccessible;
    const usesCluster = !iTPLocal || externallyAccessible;
    const usesLocal = iTPLocal || eTPLocal;
    const byFamily = endpoints.get(portKey(portName, protocol));
    let localCount = 0;

    const sets: Record<IpFamily, FamilySelection | null> = { 4: null, 6: null };
    const setFor = (f: IpFamily): FamilySelection =>
      (sets[f] ??= selectForFamily(byFamily?.[f] ?? [], { iTPLocal, eTPLocal, usesCluster, usesLocal }, node.nodeName, zone));

    const add = (kind: FrontendKind, ip: ParsedIp, port: number): void => {
      const s = setFor(ip.family);
      const internalKind = kind === 'ClusterIP';
      const backends = s.hasAny ? (internalKind ? s.internal : s.external) : EMPTY;
      const inClusterBackends = s.hasAny ? (internalKind ? s.internal : eTPLocal ? s.cluster : s.external) : EMPTY;
      const lbRanges = kind === 'LoadBalancer' ? sourceRangesFor(ranges, ip.family, lbIPs, nodeIPs) : null;
      frontends.push({
        id: frontendId(ip.address, ip.family, port, protocol),
        serviceKey: key,
        portName,
        servicePortKey,
        kind,
        family: ip.family,
        address: ip.address,
        port,
        protocol,
        backends,
        inClusterBackends,
        establishedOnly: internalKind ? s.establishedInternal : s.establishedExternal,
        localOnly: internalKind ? iTPLocal : eTPLocal,
        reject: !s.hasAny,
        affinity,
        sourceRanges: lbRanges,
        lbAlgorithm,
      });
    };
    for (const ip of clusterIPs) add('ClusterIP', ip, sp.port);
    for (const ip of externalIPs) add('ExternalIP', ip, sp.port);
    for (const ip of lbIPs) add('LoadBalancer', ip, sp.port);
    if (nodePort !== 0) for (const ip of nodeIPs) add('NodePort', ip, nodePort);
    if (usesLocal) {
      for (const ip of clusterIPs) setFor(ip.family);
      for (const f of [4, 6] as const) localCount += sets[f]?.localCount ?? 0;
      localEndpoints[servicePortKey] = localCount;
    }
    for (const f of [4, 6] as const) {
      const ignored = sets[f]?.topology.ignored;
      if (ignored && topologyFallback === null) topologyFallback = `${portName || '-'}/${protocol} IPv${f}: ${ignored}`;
    }
  }
  frontends.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  const hc = spec.healthCheckNodePort;
  const info: ServiceInfo = {
    key,
    namespace,
    name,
    type,
    internalTrafficPolicy: iTPLocal ? 'Local' : 'Cluster',
    externalTrafficPolicy: eTPLocalRequested ? 'Local' : 'Cluster',
    affinity,
    healthCheckNodePort: type === 'LoadBalancer' && eTPLocalRequested && isValidPort(hc) ? hc : null,
    localEndpoints,
    topologyFallback,
    invalidSourceRanges,
  };
  return { info, frontends };
}

// Which service wins a frontend id claimed twice: ClusterIPs are allocated uniquely by the API
// server, so a clash involves a user-chosen externalIP/LB IP; the ClusterIP owner keeps it.
const KIND_RANK: Record<FrontendKind, number> = { ClusterIP: 0, ExternalIP: 1, LoadBalancer: 2, NodePort: 3 };

function winnerOf(id: string, claimants: readonly string[], services: ReadonlyMap<string, ServiceModel>): Frontend | undefined {
  let best: Frontend | undefined;
  for (const k of claimants) {
    const f = services.get(k)?.frontends.find((x) => x.id === id);
    if (!f) continue;
    if (!best || KIND_RANK[f.kind] < KIND_RANK[best.kind] || (KIND_RANK[f.kind] === KIND_RANK[best.kind] && f.serviceKey < best.serviceKey)) {
      best = f;
    }
  }
  return best;
}

/** Compute the whole state from scratch. */
export function buildServiceState(inputs: ServiceInputs, node: NodeContext): ServiceState {
  const services = new Map<string, ServiceModel>();
  const claims = new Map<string, string[]>();
  const all: Frontend[] = [];
  for (const [key, svc] of inputs.services) {
    const m = computeService(svc, inputs.slicesForService(key), node);
    if (!m) continue;
    services.set(key, m);
    for (const f of m.frontends) {
      const c = claims.get(f.id);
      if (c) c.push(key);
      else claims.set(f.id, [key]);
      all.push(f);
    }
  }
  all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const frontends = new Map<string, Frontend>();
  for (const f of all) {
    if (frontends.has(f.id)) continue;
    const c = claims.get(f.id)!;
    frontends.set(f.id, c.length === 1 ? f : winnerOf(f.id, c, services)!);
  }
  return { frontends, services, claims };
}

/** Frontend ids claimed by more than one service, and who got them. Sorted by id. */
export function listConflicts(state: ServiceState): FrontendConflict[] {
  const out: FrontendConflict[] = [];
  for (const [id, c] of state.claims) {
    if (c.length < 2) continue;
    const winner = state.frontends.get(id)?.serviceKey ?? '';
    out.push({ id, winner, losers: c.filter((k) => k !== winner).sort() });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** Frontends in sorted id order (the reconciler's deterministic walk). */
export function sortedFrontends(state: ServiceState): Frontend[] {
  return [...state.frontends.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function backendsEqual(a: readonly Backend[], b: readonly Backend[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (
      x.address !== y.address ||
      x.port !== y.port ||
      x.nodeName !== y.nodeName ||
      x.isLocal !== y.isLocal ||
      x.ready !== y.ready ||
      x.serving !== y.serving ||
      x.terminating !== y.terminating ||
      x.zone !== y.zone
    ) {
      return false;
    }
  }
  return true;
}

/** Deep equality of two frontends (what the reconciler would have to rewrite). */
export function frontendEquals(a: Frontend, b: Frontend): boolean {
  return (
    a.id === b.id &&
    a.serviceKey === b.serviceKey &&
    a.portName === b.portName &&
    a.servicePortKey === b.servicePortKey &&
    a.kind === b.kind &&
    a.localOnly === b.localOnly &&
    a.reject === b.reject &&
    a.affinity?.timeoutSeconds === b.affinity?.timeoutSeconds &&
    a.lbAlgorithm === b.lbAlgorithm &&
    (a.sourceRanges === null) === (b.sourceRanges === null) &&
    (a.sourceRanges ?? []).join(',') === (b.sourceRanges ?? []).join(',') &&
    backendsEqual(a.backends, b.backends) &&
    backendsEqual(a.inClusterBackends, b.inClusterBackends) &&
    backendsEqual(a.establishedOnly, b.establishedOnly)
  );
}

/**
 * Recompute only the given services (keys 'ns/name', present or deleted) and update `state` in
 * place (it is the caller's cache: plain data, no I/O). Returns the frontends that changed.
 * A change to the node context (name, addresses, zone, proxyName) needs buildServiceState.
 */
export function updateServiceState(state: ServiceState, inputs: ServiceInputs, node: NodeContext, changedServiceKeys: Iterable<string>): FrontendDiff {
  const touched = new Set<string>();
  for (const key of new Set(changedServiceKeys)) {
    const old = state.services.get(key);
    const svc = inputs.services.get(key);
    const next = svc ? computeService(svc, inputs.slicesForService(key), node) : null;
    if (old) {
      for (const f of old.frontends) {
        touched.add(f.id);
        const c = state.claims.get(f.id);
        if (!c) continue;
        const rest = c.filter((k) => k !== key);
        if (rest.length === 0) state.claims.delete(f.id);
        else state.claims.set(f.id, rest);
      }
    }
    if (next) {
      state.services.set(key, next);
      for (const f of next.frontends) {
        touched.add(f.id);
        const c = state.claims.get(f.id);
        if (c) c.push(key);
        else state.claims.set(f.id, [key]);
      }
    } else {
      state.services.delete(key);
    }
  }
  const diff: FrontendDiff = { upserted: [], removed: [] };
  for (const id of [...touched].sort()) {
    const prev = state.frontends.get(id);
    const c = state.claims.get(id);
    const now = c ? winnerOf(id, c, state.services) : undefined;
    if (!now) {
      if (prev) {
        state.frontends.delete(id);
        diff.removed.push(id);
      }
    } else if (!prev || !frontendEquals(prev, now)) {
      state.frontends.set(id, now);
      diff.upserted.push(now);
    } else if (prev !== now) {
      state.frontends.set(id, now);
    }
  }
  return diff;
}

/** Compare two states frontend by frontend (e.g. after a full rebuild on a node change). */
export function diffServiceStates(prev: ServiceState, next: ServiceState): FrontendDiff {
  const diff: FrontendDiff = { upserted: [], removed: [] };
  for (const [id, f] of next.frontends) {
    const p = prev.frontends.get(id);
    if (!p || !frontendEquals(p, f)) diff.upserted.push(f);
  }
  for (const id of prev.frontends.keys()) if (!next.frontends.has(id)) diff.removed.push(id);
  diff.upserted.sort((a, b) => (a.id < b.id ? -1 : 1));
  diff.removed.sort();
  return diff;
}

/**
 * Service keys a change to an object can affect: a Service itself, or the Service(s) an
 * EndpointSlice is (or was) labelled for. Pass the previous and current object.
 */
export function affectedServiceKeys(
  kind: string,
  previous: { metadata?: { namespace?: string; name?: string; labels?: Record<string, string> } } | undefined,
  current: { metadata?: { namespace?: string; name?: string; labels?: Record<string, string> } } | undefined,
): string[] {
  const keys = new Set<string>();
  for (const o of [previous, current]) {
    if (!o) continue;
    if (kind === 'Service') keys.add(objectKey(o.metadata));
    else if (kind === 'EndpointSlice') {
      const svc = o.metadata?.labels?.[LABEL_SERVICE_NAME];
      if (svc) keys.add(`${o.metadata?.namespace || 'default'}/${svc}`);
    }
  }
  return [...keys];
}
