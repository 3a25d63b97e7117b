// model/endpoints: EndpointSlices → endpoints per service port and family, and the choice of
// which endpoints new flows may use (a port of kube-proxy's pkg/proxy/topology.go
// CategorizeEndpoints, plus endpointslicecache.go's joining and de-duplication).

import type { V1EndpointSlice } from '@kubernetes/client-node';
import type { Backend } from './service-types.js';
import { canonicalIp, type IpFamily } from '../bpf/ip.js';
import { isProtocol } from './validate.js';

export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';

/** An endpoint with the topology hints that only selection needs. */
export interface Endpoint {
  backend: Backend;
  zoneHints: readonly string[];
  nodeHints: readonly string[];
}

/** `${portName}/${protocol}`: how slice ports are joined to service ports (name, never targetPort). */
export function portKey(name: string, protocol: string): string {
  return `${name}/${protocol}`;
}

/** Endpoints of one service port, per family, de-duplicated and sorted by address then port. */
export type EndpointsByPort = Map<string, { 4: Endpoint[]; 6: Endpoint[] }>;

const NO_HINTS: readonly string[] = [];

function usability(b: Backend): number {
  return b.ready ? 2 : b.serving && b.terminating ? 1 : 0;
}

/**
 * Prefer, for the same address:port seen in two slices: the local copy (as kube-proxy does),
 * then the more usable one, then the first by slice name. kube-proxy's own pick among non-local
 * duplicates depends on map iteration order; this makes it deterministic.
 */
function better(a: Endpoint, b: Endpoint): boolean {
  if (a.backend.isLocal !== b.backend.isLocal) return a.backend.isLocal;
  return usability(a.backend) > usability(b.backend);
}

function sliceName(s: V1EndpointSlice): string {
  return s.metadata?.name ?? '';
}

/**
 * Collect the endpoints of a service's slices. Skips slices labelled headless, FQDN slices,
 * slice ports without a number, and addresses that do not parse or do not match the slice's
 * family. Only the first address of an endpoint is used (the API says they are fungible).
 * A slice port without a name matches the unnamed service port ('' — hand-written manifests
 * omit it; kube-proxy would ignore a nil name).
 */
export function collectEndpoints(slices: Iterable<V1EndpointSlice>, nodeName: string): EndpointsByPort {
  const sorted = [...slices].sort((a, b) => (sliceName(a) < sliceName(b) ? -1 : sliceName(a) > sliceName(b) ? 1 : 0));
  const byPort = new Map<string, { 4: Endpoint[]; 6: Endpoint[] }>();
  for (const slice of sorted) {
    if (slice.metadata?.labels?.[LABEL_HEADLESS] !== undefined) continue;
    const family: IpFamily | 0 = slice.addressType === 'IPv4' ? 4 : slice.addressType === 'IPv6' ? 6 : 0;
    if (family === 0) continue;
    const ports = Array.isArray(slice.ports) ? slice.ports : [];
    const endpoints = Array.isArray(slice.endpoints) ? slice.endpoints : [];
    // Parse each endpoint once per slice, not once per port.
    const parsed: { address: string; ep: (typeof endpoints)[number] }[] = [];
    for (const ep of endpoints) {
      const address = canonicalIp(ep?.addresses?.[0], family);
      if (address !== null) parsed.push({ address, ep });
    }
    for (const p of ports) {
      const num = p?.port;
      if (typeof num !== 'number' || !Number.isInteger(num) || num < 1 || num > 65535) continue;
      const proto = p.protocol ?? 'TCP';
      if (!isProtocol(proto)) continue;
      const key = portKey(p.name ?? '', proto);
      let entry = byPort.get(key);
      if (!entry) {
        entry = { 4: [], 6: [] };
        byPort.set(key, entry);
      }
      const set = entry[family];
      for (const { address, ep } of parsed) {
        const c = ep.conditions;
        const ready = c?.ready ?? true;
        const nodeName_ = ep.nodeName ?? '';
        const b: Backend = {
          address,
          port: num,
          nodeName: nodeName_,
          isLocal: nodeName_ !== '' && nodeName_ === nodeName,
          ready,
          serving: c?.serving ?? ready,
          terminating: c?.terminating ?? false,
          zone: ep.zone ?? '',
        };
        const cand: Endpoint = {
          backend: b,
          zoneHints: ep.hints?.forZones ? ep.hints.forZones.map((z) => z.name) : NO_HINTS,
          nodeHints: ep.hints?.forNodes ? ep.hints.forNodes.map((n) => n.name) : NO_HINTS,
        };
        set.push(cand);
      }
    }
  }
  const out: EndpointsByPort = new Map();
  for (const [key, e] of byPort) out.set(key, { 4: sortUnique(e[4]), 6: sortUnique(e[6]) });
  return out;
}

/** Sort by address and port (stable: slice-name order kept among equals), keep the best duplicate. */
function sortUnique(eps: Endpoint[]): Endpoint[] {
  if (eps.length < 2) return eps;
  eps.sort((a, b) => compareBackends(a.backend, b.backend));
  let w = 0;
  for (let r = 1; r < eps.length; r++) {
    const cur = eps[r]!;
    const kept = eps[w]!;
    if (compareBackends(kept.backend, cur.backend) === 0) {
      if (better(cur, kept)) eps[w] = cur;
    } else {
      eps[++w] = cur;
    }
  }
  eps.length = w + 1;
  return eps;
}

export function compareBackends(a: Backend, b: Backend): number {
  if (a.address !== b.address) return a.address < b.address ? -1 : 1;
  return a.port - b.port;
}

export type TopologyMode = '' | 'PreferSameNode' | 'PreferSameZone';

/** The mode, and when slices carry hints that are not used, why (kube-proxy logs the same cases). */
export interface TopologyDecision {
  mode: TopologyMode;
  ignored: string | null;
}

/**
 * kube-proxy's topologyModeFromHints: PreferSameNode if every ready endpoint has a node hint and
 * one is for this node; else PreferSameZone if every ready endpoint has a zone hint and one is
 * for this node's zone; else none. Hints are used whenever the slices carry them: since
 * ServiceTrafficDistribution went GA kube-proxy no longer reads `trafficDistribution` or the
 * `topology-mode` annotation itself; the EndpointSlice controller writes hints only for services
 * that ask (PreferClose / PreferSameZone, topology-mode Auto), and hand-written slices say it
 * themselves. A node without a zone label gets no zone filtering.
 */
export function topologyDecision(eps: readonly Endpoint[], nodeName: string, zone: string): TopologyDecision {
  let anyReady = false;
  let allNode = true;
  let anyNodeHint = false;
  let forNode = false;
  let allZone = true;
  let anyZoneHint = false;
  let forZone = false;
  for (const e of eps) {
    if (!e.backend.ready) continue;
    anyReady = true;
    if (e.nodeHints.length === 0) allNode = false;
    else {
      anyNodeHint = true;
      if (e.nodeHints.includes(nodeName)) forNode = true;
    }
    if (e.zoneHints.length === 0) allZone = false;
    else {
      anyZoneHint = true;
      if (zone !== '' && e.zoneHints.includes(zone)) forZone = true;
    }
  }
  if (!anyReady || (!anyNodeHint && !anyZoneHint)) return { mode: '', ignored: null };
  if (allNode && forNode) return { mode: 'PreferSameNode', ignored: null };
  if (allZone && forZone) return { mode: 'PreferSameZone', ignored: null };
  if (!anyZoneHint) return { mode: '', ignored: allNode ? `no endpoint hinted for node ${nodeName}` : 'a ready endpoint has no node hint' };
  if (!allZone) return { mode: '', ignored: 'a ready endpoint has no zone hint' };
  if (zone === '') return { mode: '', ignored: 'node has no topology.kubernetes.io/zone label' };
  return { mode: '', ignored: `no endpoint hinted for zone ${zone}` };
}

/** The mode alone (see topologyDecision). */
export function topologyMode(eps: readonly Endpoint[], nodeName: string, zone: string): TopologyMode {
  return topologyDecision(eps, nodeName, zone).mode;
}

export interface Categorized {
  /** Cluster-policy endpoints; null when the service port never uses Cluster policy. */
  cluster: Backend[] | null;
  /** Local-policy endpoints; null when the service port never uses Local policy. */
  local: Backend[] | null;
  /** Some usable (ready, or serving-terminating) endpoint exists anywhere. */
  hasAny: boolean;
  /** The topology applied to `cluster` (only computed when the Cluster set is used). */
  topology: TopologyDecision;
}

/**
 * CategorizeEndpoints. `usesCluster` = iTP is Cluster or the port is externally accessible;
 * `usesLocal` = iTP is Local or (eTP is Local and externally accessible).
 */
export function categorize(eps: readonly Endpoint[], usesCluster: boolean, usesLocal: boolean, nodeName: string, zone: string): Categorized {
  let cluster: Backend[] | null = null;
  let local: Backend[] | null = null;
  let hasAny = false;
  let topology: TopologyDecision = { mode: '', ignored: null };
  if (usesCluster) {
    topology = topologyDecision(eps, nodeName, zone);
    const mode = topology.mode;
    cluster = [];
    for (const e of eps) {
      if (!e.backend.ready) continue;
      if (mode === 'PreferSameNode' && !e.nodeHints.includes(nodeName)) continue;
      if (mode === 'PreferSameZone' && !e.zoneHints.includes(zone)) continue;
      cluster.push(e.backend);
    }
    // No ready endpoint anywhere (topology already fell back): use serving-terminating ones,
    // ignoring topology, so in-flight rollouts do not blackhole.
    if (cluster.length === 0) for (const e of eps) if (e.backend.serving && e.backend.terminating) cluster.push(e.backend);
    hasAny = cluster.length > 0;
  }
  if (usesLocal) {
    let localReady = false;
    let localST = false;
    for (const { backend: b } of eps) {
      if (b.ready) {
        hasAny = true;
        if (b.isLocal) localReady = true;
      } else if (b.serving && b.terminating) {
        hasAny = true;
        if (b.isLocal) localST = true;
      }
    }
    local = [];
    if (localReady) {
      for (const { backend: b } of eps) if (b.isLocal && b.ready) local.push(b);
    } else if (localST) {
      for (const { backend: b } of eps) if (b.isLocal && b.serving && b.terminating) local.push(b);
    }
  }
  return { cluster, local, hasAny, topology };
}
