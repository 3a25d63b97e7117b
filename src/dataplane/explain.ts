// dataplane/explain: walk a hypothetical packet through the live service maps exactly as
// from_pod / from_host would (bpf-c/from_pod.c, from_host.c, lib/lb.h), without writing
// anything: lookups only, no affinity refresh, no conntrack entry. What matched, which
// backends a new flow could get and why, what affinity or conntrack already decided, and
// the verdict. `weir explain` prints it; tests compare it with what real packets get.

import { enums, type TypedMap, type WeirAffinity4, type WeirAffinity4Key, type WeirBackend4, type WeirBackend4Key, type WeirCt4, type WeirCt4Key, type WeirFrontend4, type WeirFrontend4Key } from '../bpf/index.js';

const FF = enums.weir_frontend_flags;
const BF = enums.weir_backend_flags;
const CF = enums.weir_ct_flags;
const SCOPE = enums.weir_frontend_scope;

export interface ExplainMaps {
  frontends: TypedMap<WeirFrontend4Key, WeirFrontend4>;
  backends: TypedMap<WeirBackend4Key, WeirBackend4>;
  affinity: TypedMap<WeirAffinity4Key, WeirAffinity4>;
  conntrack: TypedMap<WeirCt4Key, WeirCt4>;
}

export interface ExplainQuery {
  src: string;
  dst: string;
  dport: number;
  protocol: number;
  /** source port of the flow, when asking about one already under way */
  sport?: number;
  /** the hook the packet meets first: a pod's interface, or a host interface (external client) */
  from: 'pod' | 'external';
  /** CLOCK_MONOTONIC now in ns (affinity freshness), default process.hrtime */
  nowNs?: bigint;
}

export type Verdict =
  | 'established' // a conntrack entry rewrites it
  | 'dnat' // a new flow to one of `candidates`
  | 'reject' // no usable endpoint: ICMP port unreachable / connection refused at once
  | 'drop' // Local traffic policy with no local endpoint
  | 'pass'; // not a frontend: left alone

export interface Explanation {
  hook: 'from_pod' | 'from_host';
  verdict: Verdict;
  /** the frontend entry that matched, and which scope */
  frontend?: { address: string; port: number; protocol: number; scope: 'internal' | 'external'; id: number; backendCount: number; flags: number; affinityTimeout: number };
  /** backends a new flow may get (the slots), with why each is there */
  candidates: Array<{ slot: number; address: string; port: number; local: boolean; terminating: boolean }>;
  /** a fresh affinity entry for this client decides the backend */
  affinity?: { backend: string; port: number; idleS: number; fresh: boolean };
  /** conntrack entries of this client to this frontend already in the map */
  flows: Array<{ sport: number; backend: string; backendPort: number; flags: number }>;
  /** when verdict is established: what the entry rewrites the destination to */
  rewrite?: { daddr: string; dport: number; saddr: string; sport: number };
  notes: string[];
}

export function explain(maps: ExplainMaps, q: ExplainQuery): Explanation {
  const hook = q.from === 'pod' ? 'from_pod' : 'from_host';
  const out: Explanation = { hook, verdict: 'pass', candidates: [], flows: [], notes: [] };
  const now = q.nowNs ?? process.hrtime.bigint();

  // 1. conntrack on the wire tuple
  if (q.sport !== undefined) {
    const ct = maps.conntrack.get({ saddr: q.src, daddr: q.dst, sport: q.sport, dport: q.dport, protocol: q.protocol });
    if (ct) {
      out.verdict = 'established';
      out.rewrite = {
        daddr: ct.flags & CF.WEIR_CT_DNAT ? ct.nat_daddr : q.dst,
        dport: ct.flags & CF.WEIR_CT_DNAT ? ct.nat_dport : q.dport,
        saddr: ct.flags & CF.WEIR_CT_SNAT ? ct.nat_saddr : q.src,
        sport: ct.flags & CF.WEIR_CT_SNAT ? ct.nat_sport : q.sport,
      };
      out.notes.push(`conntrack has this flow: the packet is rewritten as the entry says, whatever the frontend says now`);
    }
  }

  // 2. the frontend: from_host tries the external (Local policy) scope first
  const scopes = hook === 'from_host' ? [SCOPE.WEIR_SCOPE_EXTERNAL, SCOPE.WEIR_SCOPE_INTERNAL] : [SCOPE.WEIR_SCOPE_INTERNAL];
  let fe: WeirFrontend4 | undefined;
  let scope: number = SCOPE.WEIR_SCOPE_INTERNAL;
  for (const s of scopes) {
    fe = maps.frontends.get({ address: q.dst, port: q.dport, protocol: q.protocol, scope: s });
    if (fe) {
      scope = s;
      break;
    }
  }
  if (!fe) {
    if (out.verdict !== 'established') out.notes.push(`${q.dst}:${q.dport} is not a frontend on this node: weir leaves the packet alone`);
    return out;
  }
  out.frontend = {
    address: q.dst,
    port: q.dport,
    protocol: q.protocol,
    scope: scope === SCOPE.WEIR_SCOPE_EXTERNAL ? 'external' : 'internal',
    id: fe.id,
    backendCount: fe.backend_count,
    flags: fe.flags,
    affinityTimeout: fe.affinity_timeout,
  };
  if (scope === SCOPE.WEIR_SCOPE_EXTERNAL) out.notes.push('externalTrafficPolicy Local: only this node\'s endpoints, the client address is kept');

  for (let slot = 0; slot < fe.backend_count; slot++) {
    const b = maps.backends.get({ frontend_id: fe.id, slot });
    if (!b) {
      out.notes.push(`slot ${slot} below the count has no backend entry: a new flow landing there is dropped (backend_missing)`);
      continue;
    }
    out.candidates.push({ slot, address: b.address, port: b.port, local: (b.flags & BF.WEIR_BACKEND_LOCAL) !== 0, terminating: (b.flags & BF.WEIR_BACKEND_TERMINATING) !== 0 });
  }

  if (out.candidates.some((c) => c.address === q.src)) out.notes.push(`${q.src} is itself a backend: if it picks itself (hairpin) the source becomes ${q.dst} so the reply comes back through weir`);

  // flows of this client to this frontend already tracked (the original direction)
  for (const [k, v] of maps.conntrack.entries()) {
    if (k.saddr === q.src && k.daddr === q.dst && k.dport === q.dport && k.protocol === q.protocol && !(v.flags & CF.WEIR_CT_REPLY))
      out.flows.push({ sport: k.sport, backend: v.nat_daddr, backendPort: v.nat_dport, flags: v.flags });
  }
  out.flows.sort((a, b) => a.sport - b.sport);

  if (out.verdict === 'established') return out;

  if (fe.flags & FF.WEIR_FRONTEND_DROP) {
    out.verdict = 'drop';
    out.notes.push('Local traffic policy and no endpoint on this node: dropped, as kube-proxy does');
    return out;
  }
  if (fe.flags & FF.WEIR_FRONTEND_REJECT || fe.backend_count === 0) {
    out.verdict = 'reject';
    out.notes.push('no usable endpoint: answered at once with ICMP port unreachable (TCP: connection refused)');
    return out;
  }
  out.verdict = 'dnat';
  if (fe.flags & FF.WEIR_FRONTEND_AFFINITY) {
    const a = maps.affinity.get({ client: q.src, frontend_id: fe.id });
    if (a) {
      const idleNs = now - a.last_used_ns;
      const fresh = idleNs <= BigInt(fe.affinity_timeout) * 1_000_000_000n;
      out.affinity = { backend: a.backend, port: a.port, idleS: Number(idleNs / 1_000_000n) / 1000, fresh };
      if (fresh) out.notes.push(`ClientIP affinity: new flows from ${q.src} go to ${a.backend}:${a.port} (used ${out.affinity.idleS.toFixed(1)} s ago, timeout ${fe.affinity_timeout} s)`);
      else out.notes.push(`ClientIP affinity entry expired: a new flow picks a random slot and pins it again`);
    } else out.notes.push(`ClientIP affinity: no entry for ${q.src} yet; the first flow's random pick is pinned for ${fe.affinity_timeout} s`);
  }
  if (!out.affinity?.fresh) out.notes.push(`a new flow picks one of ${fe.backend_count} slots uniformly at random; terminating endpoints are not in the slots (their established flows continue through conntrack)`);
  if (q.from === 'pod' && !(fe.flags & FF.WEIR_FRONTEND_AFFINITY))
    out.notes.push('a pod socket under the connect-time LB gets the same choice in connect(), with no per-packet NAT');
  return out;
}
