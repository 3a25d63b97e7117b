// A reference evaluator for host endpoint policy written from Calico's documentation
// (/work/shared/reference/calico-host-policy.md §2-§5), sharing no code with
// src/model/host-policy/compile.ts or evaluate.ts (only the selector parser, tested on its own):
// it walks the policy objects themselves for one host endpoint, chain and packet.

import { cidrContains } from '../../src/bpf/ip.js';
import { matches, parseSelector } from '../../src/model/host-policy/selector.js';
import type { ChainKind, HostPacket } from '../../src/model/host-policy/types.js';

export interface RefEndpoint {
  labels: Record<string, string>;
  /** undefined = a host endpoint (not namespaced) */
  namespaceLabels?: Record<string, string>;
  ips: string[];
}

interface Entity {
  nets?: string[];
  notNets?: string[];
  selector?: string;
  notSelector?: string;
  namespaceSelector?: string;
  ports?: Array<number | string>;
}
interface Rule {
  action: 'Allow' | 'Deny' | 'Pass';
  protocol?: string;
  source?: Entity;
  destination?: Entity;
}
interface Spec {
  tier?: string;
  order?: number;
  selector?: string;
  types?: string[];
  ingress?: Rule[];
  egress?: Rule[];
  applyOnForward?: boolean;
  preDNAT?: boolean;
  doNotTrack?: boolean;
}
export interface RefPolicy {
  metadata: { name: string };
  spec: Spec;
}

const TIER_ORDER: Record<string, number> = { 'kube-admin': 1000, default: 1_000_000, 'kube-baseline': 10_000_000 };
const TIER_PASS = new Set(['kube-admin', 'kube-baseline']);
const PROTO: Record<string, number> = { TCP: 6, UDP: 17 };

function sel(text: string): ReturnType<typeof parseSelector> & { ok: true } {
  const r = parseSelector(text);
  if (!r.ok) throw new Error(r.error);
  return r;
}

function portIn(ports: Array<number | string> | undefined, port: number): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if (typeof p === 'number') return p === port;
    const [lo, hi] = p.split(':').map(Number) as [number, number];
    return port >= lo && port <= (hi ?? lo);
  });
}

function selected(endpoints: RefEndpoint[], ip: string, selector: string | undefined, nsSelector: string | undefined): boolean {
  return endpoints.some((e) => {
    if (!e.ips.includes(ip)) return false;
    if (selector !== undefined && !matches(sel(selector).selector, e.labels, e.namespaceLabels === undefined)) return false;
    if (nsSelector !== undefined) {
      if (e.namespaceLabels === undefined) return matches(sel(nsSelector).selector, {}, true) && sel(nsSelector).selector.usesGlobal;
      return matches(sel(nsSelector).selector, e.namespaceLabels, false);
    }
    return true;
  });
}

function entityMatches(e: Entity | undefined, ip: string, port: number, endpoints: RefEndpoint[]): boolean {
  if (!e) return true;
  if (e.nets && e.nets.length > 0 && !e.nets.some((n) => cidrContains(n, ip))) return false;
  if (e.notNets && e.notNets.some((n) => cidrContains(n, ip))) return false;
  if ((e.selector !== undefined || e.namespaceSelector !== undefined) && !selected(endpoints, ip, e.selector, e.namespaceSelector)) return false;
  if (e.notSelector !== undefined && selected(endpoints, ip, e.notSelector, undefined)) return false;
  return portIn(e.ports, port);
}

function ruleMatches(r: Rule, p: HostPacket, endpoints: RefEndpoint[]): boolean {
  if (r.protocol !== undefined && PROTO[r.protocol] !== p.protocol) return false;
  const nets = [...(r.source?.nets ?? []), ...(r.source?.notNets ?? []), ...(r.destination?.nets ?? []), ...(r.destination?.notNets ?? [])];
  if (nets.length > 0 && nets[0]!.includes(':') !== (p.family === 6)) return false;
  return entityMatches(r.source, p.saddr, p.sport, endpoints) && entityMatches(r.destination, p.daddr, p.dport, endpoints);
}

function types(s: Spec): { ingress: boolean; egress: boolean } {
  if (s.types && s.types.length > 0) return { ingress: s.types.includes('Ingress'), egress: s.types.includes('Egress') };
  const i = (s.ingress ?? []).length > 0;
  const e = (s.egress ?? []).length > 0;
  return { ingress: i || !e, egress: e };
}

function appliesTo(s: Spec, chain: ChainKind): boolean {
  const t = types(s);
  const normal = !s.doNotTrack && !s.preDNAT;
  switch (chain) {
    case 'untrackedIn':
      return !!s.doNotTrack && t.ingress;
    case 'untrackedOut':
      return !!s.doNotTrack && t.egress;
    case 'preDnatIn':
      return !!s.preDNAT && t.ingress;
    case 'normalIn':
      return normal && t.ingress;
    case 'normalOut':
      return normal && t.egress;
    case 'forwardIn':
      return normal && !!s.applyOnForward && t.ingress;
    case 'forwardOut':
      return normal && !!s.applyOnForward && t.egress;
  }
}

/** The verdict Calico's documentation gives (nomatch: no verdict, or no chain at all). */
export function referenceVerdict(
  policies: RefPolicy[],
  hepLabels: Record<string, string>,
  defaultAllowProfile: boolean,
  chain: ChainKind,
  packet: HostPacket,
  endpoints: RefEndpoint[],
): 'allow' | 'deny' | 'nomatch' {
  const applying = policies.filter((p) => matches(sel(p.spec.selector ?? '').selector, hepLabels, true) && appliesTo(p.spec, chain));
  const verdictChain = chain.startsWith('normal') || chain.startsWith('forward');
  const ending = (): 'allow' | 'deny' | 'nomatch' => {
    if (chain.startsWith('normal')) return defaultAllowProfile ? 'allow' : 'deny';
    return chain.startsWith('forward') ? 'deny' : 'nomatch';
  };
  if (applying.length === 0) return chain.startsWith('normal') ? ending() : 'nomatch';
  const tierOf = (p: RefPolicy) => p.spec.tier || 'default';
  const tiers = [...new Set(applying.map(tierOf))].sort((a, b) => {
    const oa = TIER_ORDER[a] ?? Infinity;
    const ob = TIER_ORDER[b] ?? Infinity;
    return oa !== ob ? (oa < ob ? -1 : 1) : a < b ? -1 : a > b ? 1 : 0;
  });
  for (const tier of tiers) {
    const inTier = applying
      .filter((p) => tierOf(p) === tier)
      .sort((a, b) => {
        const oa = a.spec.order ?? Infinity;
        const ob = b.spec.order ?? Infinity;
        if (oa !== ob) return oa < ob ? -1 : 1;
        return a.metadata.name < b.metadata.name ? -1 : 1;
      });
    let passed = false;
    outer: for (const p of inTier) {
      const rules = chain.endsWith('In') ? (p.spec.ingress ?? []) : (p.spec.egress ?? []);
      for (const r of rules) {
        if (!ruleMatches(r, packet, endpoints)) continue;
        if (r.action === 'Allow') return 'allow';
        if (r.action === 'Deny') return 'deny';
        passed = true;
        break outer;
      }
    }
    if (!passed && verdictChain && !TIER_PASS.has(tier)) return 'deny';
  }
  return ending();
}
