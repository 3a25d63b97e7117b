// dataplane/explain: walk a hypothetical packet through the live service maps exactly as
// from_pod / from_host would (bpf-c/from_pod.c, from_host.c, lib/lb.h, lib/conntrack.h,
// lib/icmp_error.h), without writing anything: lookups only, no affinity refresh, no
// conntrack entry created or forgotten. What matched, which backends a new flow could get,
// what affinity or conntrack already decided, and what the hook does: the TC verdict, the
// counter reason and the rewrite. `weir explain` prints it; test/cli/explain.test.ts runs
// the shared fixture table (test/fixtures/service-cases.ts) through it and the real
// programs, so the two cannot drift.

import { enums, type TypedMap } from '../bpf/index.js';
import type { WeirAffinity4, WeirAffinity4Key, WeirBackend4, WeirBackend4Key } from '../bpf/index.js';
import type { WeirCt4, WeirCt4Key, WeirFrontend4, WeirFrontend4Key, WeirLbSrc4Key } from '../bpf/index.js';
import type { WeirMaglev4, WeirMaglev4Key } from '../bpf/index.js';
import { maglevFlowHash } from './maglev-hash.js';
import { cidrContains, unmapIp4, type IpFamily } from '../bpf/ip.js';
import { policyDecision, type PolicyDecision } from './policy-verdict.js';
import { PolicyNames, type PolicyReadMaps } from './policy-view.js';
import { explainHostEndpoint, type AfterNat, type HostExplainMaps, type HostExplanation } from './explain-host.js';
import type { HostPacket } from '../model/host-policy/types.js';

const FF = enums.weir_frontend_flags;
const BF = enums.weir_backend_flags;
const CF = enums.weir_ct_flags;
const SCOPE = enums.weir_frontend_scope;

const IPPROTO_TCP = 6;
const IPPROTO_SCTP = 132;

/** What differs between the families for the service path: the ICMP of the family (lib/lb.h, lb6.h, icmp_error.h, icmp6_error.h). */
interface FamilyRules {
  family: IpFamily;
  /** IPPROTO_ICMP or IPPROTO_ICMPV6 */
  icmp: number;
  /** the echo request type, the only ICMP message that starts a flow */
  echo: number;
  /** the error types translated back for NAT'd flows */
  errors: ReadonlySet<number>;
  /** the all-zero address (no tunnel node) */
  any: string;
}
const RULES: Record<IpFamily, FamilyRules> = {
  // destination unreachable, time exceeded, parameter problem
  4: { family: 4, icmp: 1, echo: 8, errors: new Set([3, 11, 12]), any: '0.0.0.0' },
  // destination unreachable, packet too big, time exceeded, parameter problem
  6: { family: 6, icmp: 58, echo: 128, errors: new Set([1, 2, 3, 4]), any: '::' },
};
/** TCP flag bits as in the header's byte 13 (lib/conntrack.h CT_TCP_*) */
export const TCP = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20 } as const;

/** One family's service maps as explain reads them: the codecs give both families' entries the same shape, addresses as text. */
export interface ServiceReadMaps {
  frontends: TypedMap<WeirFrontend4Key, WeirFrontend4>;
  backends: TypedMap<WeirBackend4Key, WeirBackend4>;
  affinity: TypedMap<WeirAffinity4Key, WeirAffinity4>;
  conntrack: TypedMap<WeirCt4Key, WeirCt4>;
  /** weir_lb_src4: loadBalancerSourceRanges per frontend id */
  sourceRanges: TypedMap<WeirLbSrc4Key, number>;
  /** weir_tunnel4/6: pod addresses on other nodes (forwarding through the tunnel); absent: not shown.
   *  weir_tunnel6 names a node of the IPv4 underlay v4-mapped: explain shows it as the IPv4 address. */
  tunnel?: TypedMap<{ prefixlen: number; address: string }, { node_ip: string; flags: number }>;
}

/** weir_maglev4 (both families' frontends, by id) and the M the programs index it with (their maglev_table_size knob). */
export interface MaglevReadMaps {
  tables: TypedMap<WeirMaglev4Key, WeirMaglev4>;
  /** absent: not known (the programs' .rodata not readable): a Maglev frontend's new flow may get any slot */
  tableSize?: number;
}

/** The IPv4 maps, the IPv6 ones and the policy maps. */
export interface ExplainMaps extends ServiceReadMaps {
  /** the Maglev tables; absent: a Maglev frontend's new flow may get any slot */
  maglev?: MaglevReadMaps;
  /** the IPv6 service maps (weir_frontend6, ...); absent: IPv6 packets are not explained */
  ipv6?: ServiceReadMaps;
  /** the NetworkPolicy maps; absent: no policy verdict */
  policy?: PolicyReadMaps;
  /** the host policy (Calico host endpoints) read back from its maps; absent: no host policy stage */
  host?: HostExplainMaps;
}

/** A flow's tuple (either family); ICMP echo carries its identifier in both ports (as the parser does). */
export interface Flow {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  protocol: number;
}

export interface ExplainQuery {
  src: string;
  dst: string;
  /** destination port; ICMP: the echo identifier */
  dport: number;
  protocol: number;
  /** source port of the flow, when asking about one already under way (ICMP: ignored, the identifier is dport) */
  sport?: number;
  /** the hook the packet meets first: a pod's interface, or a host interface (external client) */
  from: 'pod' | 'external';
  /** TCP flag bits (TCP.syn | TCP.ack ...); default a bare SYN, the first packet of a connection */
  tcpFlags?: number;
  /** ICMP message type; default echo request. An error type (3, 11, 12) needs `quote`. */
  icmpType?: number;
  /** ICMP errors: the tuple of the packet the error quotes, as it appears in the error */
  quote?: Flow;
  /** CLOCK_MONOTONIC now in ns (affinity freshness), default process.hrtime */
  nowNs?: bigint;
  /** external: the host interface it arrives on (host policy: its host endpoint); absent: any host interface */
  iface?: string;
}

export type Verdict =
  | 'established' // a conntrack entry rewrites it
  | 'dnat' // a new flow to one of `candidates`
  | 'reject' // no usable endpoint: ICMP port unreachable / connection refused at once
  | 'drop' // Local traffic policy with no local endpoint, a client outside loadBalancerSourceRanges, or a new flow weir cannot NAT
  | 'icmp-error' // an ICMP error about a NAT'd flow: quote and outer addresses translated back
  | 'pass'; // not ours (or not at this point of a connection): left alone

export type TcVerdict = 'pass' | 'drop' | 'redirect';

/** The tuple a packet leaves with. */
export interface Rewrite {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
}

/** What the hook does to the packet: one outcome when decided, one per slot when a new flow draws one at random. */
export interface Outcome {
  tc: TcVerdict;
  /** the weir_reason the hook counts the packet under (the counter and metric label) */
  reason: string;
  /** pass: the tuple it leaves with (unchanged when nothing is rewritten); absent for drop and reject */
  rewrite?: Rewrite;
  /** ICMP errors: the quoted packet's tuple after translation */
  quote?: Rewrite;
  /** new flows: the backend this outcome goes to */
  backend?: { slot?: number; address: string; port: number };
}

export interface Explanation {
  hook: 'from_pod' | 'from_host';
  verdict: Verdict;
  /** every outcome the hook can have for this packet, now */
  outcomes: Outcome[];
  /** when every outcome agrees: the TC verdict and counter reason */
  tc?: TcVerdict;
  reason?: string;
  /** when there is one outcome and it passes: the tuple the packet leaves with */
  rewrite?: Rewrite;
  /** the frontend entry that matched, and which scope */
  frontend?: {
    address: string;
    port: number;
    protocol: number;
    scope: 'internal' | 'external';
    id: number;
    backendCount: number;
    flags: number;
    affinityTimeout: number;
  };
  /** backends a new flow may get (the slots), with why each is there */
  candidates: Array<{ slot: number; address: string; port: number; local: boolean; terminating: boolean; tunnelTo?: string }>;
  /** a fresh affinity entry for this client decides the backend */
  affinity?: { backend: string; port: number; idleS: number; fresh: boolean };
  /** conntrack entries of this client to this frontend already in the map */
  flows: Array<{ sport: number; backend: string; backendPort: number; flags: number }>;
  /** NetworkPolicy: the policy stage's verdict for each new flow this packet may start (absent without the maps) */
  policy?: PolicyExplanation;
  /** host policy (external packets, where its maps are pinned): one walk per host endpoint the packet may arrive on */
  host?: HostExplanation[];
  notes: string[];
}

/** What the policy stage (bpf-c/lib/policy.h) does with the packet. */
export interface PolicyExplanation {
  /**
   * decides: the packet starts a flow and the stage decides it (one decision per destination it
   * may get: the packet's own, or each backend); cached: conntrack has the flow, its verdict was
   * kept when it started; none: the stage does not see the packet (an ICMP error, a reject, a
   * mid-stream segment to a frontend)
   */
  stage: 'decides' | 'cached' | 'none';
  decisions: Array<PolicyDecision & { backend?: { slot?: number; address: string; port: number } }>;
}

const unchanged = (p: Flow): Rewrite => ({ saddr: p.src, daddr: p.dst, sport: p.sport, dport: p.dport });
const closed = (ct: WeirCt4) => (ct.tcp_flags_seen & (TCP.fin | TCP.rst)) !== 0;
const synOnly = (flags: number) => (flags & (TCP.syn | TCP.ack)) === TCP.syn;
const synAck = (flags: number) => (flags & (TCP.syn | TCP.ack)) === (TCP.syn | TCP.ack);

/** The packet as the parser sees it: ICMP echo identifier in both ports. */
function wireFlow(q: ExplainQuery, r: FamilyRules): Flow {
  const sport = q.protocol === r.icmp ? q.dport : (q.sport ?? 0);
  return { src: q.src, dst: q.dst, sport, dport: q.dport, protocol: q.protocol };
}

const keyOf = (f: Flow): WeirCt4Key => ({ saddr: f.src, daddr: f.dst, sport: f.sport, dport: f.dport, protocol: f.protocol });

/** nat4_target_of_ct + nat4_rewrite: ICMP keeps its identifier, other protocols take the entry's ports. */
function rewriteOf(p: Flow, ct: WeirCt4, r: FamilyRules): Rewrite {
  const to = unchanged(p);
  if (ct.flags & CF.WEIR_CT_SNAT) [to.saddr, to.sport] = [ct.nat_saddr, ct.nat_sport];
  if (ct.flags & CF.WEIR_CT_DNAT) [to.daddr, to.dport] = [ct.nat_daddr, ct.nat_dport];
  if (p.protocol === r.icmp) [to.sport, to.dport] = [p.sport, p.dport];
  return to;
}

function finish(out: Explanation): Explanation {
  const [first] = out.outcomes;
  if (first && out.outcomes.every((o) => o.tc === first.tc && o.reason === first.reason)) {
    out.tc = first.tc;
    out.reason = first.reason;
  }
  if (out.outcomes.length === 1 && first?.rewrite) out.rewrite = first.rewrite;
  return out;
}

/** The family of an address as text (an IPv6 address has a colon). */
const familyOf = (address: string): IpFamily => (address.includes(':') ? 6 : 4);

export function explain(maps: ExplainMaps, q: ExplainQuery): Explanation {
  const r = RULES[familyOf(q.dst)];
  const family = r.family === 6 ? maps.ipv6 : maps;
  if (!family) {
    const out: Explanation = { hook: q.from === 'pod' ? 'from_pod' : 'from_host', verdict: 'pass', outcomes: [], candidates: [], flows: [], notes: [] };
    out.notes.push('no IPv6 service maps are pinned (a release without IPv6): weir leaves the packet alone');
    out.outcomes.push({ tc: 'pass', reason: 'pass', rewrite: unchanged(wireFlow(q, r)) });
    return finish(out);
  }
  let out = explainService(family, maps.maglev, q, r);
  if (maps.host && q.from === 'external') out = withHostPolicy(maps.host, q, out, r);
  return maps.policy ? withPolicy(maps.policy, q, out, r) : out;
}

/**
 * Host policy (from_host, xdp_prefilter) before pod policy: the walk of each host endpoint the
 * packet may arrive on; with one endpoint its drop becomes the hook's (before NAT: every
 * outcome; after: the outcomes to the denied destinations).
 */
function withHostPolicy(m: HostExplainMaps, q: ExplainQuery, out: Explanation, r: FamilyRules): Explanation {
  const p = wireFlow(q, r);
  const packet: HostPacket = { family: r.family, protocol: p.protocol, saddr: p.src, daddr: p.dst, sport: p.sport, dport: p.dport };
  const nat: AfterNat = {
    established: out.verdict === 'established',
    newFlow: q.protocol !== IPPROTO_TCP || synOnly(q.tcpFlags ?? TCP.syn),
    frontend: out.frontend !== undefined,
    destinations: out.outcomes.flatMap((o) => (o.rewrite && o.tc === 'pass' ? [{ daddr: o.rewrite.daddr, dport: o.rewrite.dport }] : [])),
  };
  if (nat.destinations.length === 0) nat.destinations.push({ daddr: p.dst, dport: p.dport });
  out.host = m.heps.map((hep) => explainHostEndpoint(m, hep, packet, nat));
  if (m.heps.length === 0) out.notes.push('no host interface has a host endpoint (weir_hep_ifaces is empty): host policy does not apply');
  if (out.host.length !== 1) {
    if (out.host.length > 1) out.notes.push('host endpoints differ per interface: --iface picks the one the packet arrives on');
    return out;
  }
  const h = out.host[0]!;
  if (h.verdict === 'drop' && h.beforeNat !== false) {
    out.verdict = 'drop';
    out.outcomes = [{ tc: 'drop', reason: h.reason! }];
    out.notes = out.notes.filter((n) => !n.endsWith(': weir leaves the packet alone'));
    out.notes.push(h.droppedIn === 'xdp' ? 'dropped by the XDP prefilter, before any TC program' : 'dropped by host policy in from_host');
  } else if (h.deniedDestinations) {
    out.outcomes = out.outcomes.map((o) =>
      o.rewrite && h.deniedDestinations!.includes(o.rewrite.daddr) ? { tc: 'drop', reason: h.reason!, ...(o.backend ? { backend: o.backend } : {}) } : o,
    );
    if (out.outcomes.every((o) => o.tc === 'drop')) out.verdict = 'drop';
  }
  delete out.tc;
  delete out.reason;
  delete out.rewrite;
  return finish(out);
}

/** The new flows' policy verdicts, a denied one becoming the program's drop (policy4_new_flow). */
function withPolicy(maps: PolicyReadMaps, q: ExplainQuery, out: Explanation, r: FamilyRules): Explanation {
  const names = PolicyNames.lazy(maps);
  const policy: PolicyExplanation = { stage: 'none', decisions: [] };
  out.policy = policy;
  if (out.verdict === 'established') {
    policy.stage = 'cached';
    return out;
  }
  // neighbour discovery (ICMPv6 133-137) always passes: without it not even the pod's own node is reachable (lib/policy.h)
  if (r.family === 6 && q.protocol === r.icmp && (q.icmpType ?? r.echo) >= 133 && (q.icmpType ?? r.echo) <= 137) {
    out.notes.push('neighbour discovery: policy never drops it (a pod must reach its node)');
    return out;
  }
  const p = wireFlow(q, r);
  for (const [i, o] of out.outcomes.entries()) {
    let d: PolicyExplanation['decisions'][number];
    if (o.backend && o.rewrite && (o.reason === 'service_nat' || o.reason === 'hairpin')) {
      // flow4_new: the client as it arrived, the backend chosen and its port
      d = { backend: o.backend, ...policyDecision(maps, names, p.src, o.backend.address, p.protocol, o.rewrite.dport) };
    } else if (!out.frontend && o.reason === 'pass') {
      // flow4_track_new (ct_track_all, which policy implies): the packet as it is; under policy
      // a packet without an entry is decided whether or not it starts a flow (a mid-stream
      // segment of a flow weir never saw start, SCTP)
      d = policyDecision(maps, names, p.src, p.dst, p.protocol, p.dport);
    } else continue;
    policy.stage = 'decides';
    policy.decisions.push(d);
    if (!out.frontend)
      out.notes = out.notes.map((n) => n.replace(/: weir leaves the packet alone$/, ': no translation; the flow is tracked and the policy stage decides it'));
    if (d.verdict === 'denied') out.outcomes[i] = { tc: 'drop', reason: d.reason!, ...(o.backend ? { backend: o.backend } : {}) };
  }
  if (policy.decisions.length > 0 && policy.decisions.every((d) => d.verdict === 'denied')) out.verdict = 'drop';
  delete out.tc;
  delete out.reason;
  delete out.rewrite;
  return finish(out);
}

function explainService(maps: ServiceReadMaps, maglev: MaglevReadMaps | undefined, q: ExplainQuery, r: FamilyRules): Explanation {
  const hook = q.from === 'pod' ? 'from_pod' : 'from_host';
  const out: Explanation = { hook, verdict: 'pass', outcomes: [], candidates: [], flows: [], notes: [] };
  const p = wireFlow(q, r);
  const tcpFlags = q.protocol === IPPROTO_TCP ? (q.tcpFlags ?? TCP.syn) : 0;
  const icmpType = q.protocol === r.icmp ? (q.icmpType ?? r.echo) : -1;

  // 0. an ICMP error about a NAT'd flow is translated back, whatever else matches
  if (r.errors.has(icmpType)) return finish(explainIcmpError(maps, p, q.quote, out, r));

  // 1. conntrack on the wire tuple, with the two rules that set an entry aside
  const ct = maps.conntrack.get(keyOf(p));
  if (ct) {
    const isTcp = p.protocol === IPPROTO_TCP;
    if (isTcp && synOnly(tcpFlags) && !(ct.flags & CF.WEIR_CT_REPLY) && closed(ct)) {
      out.notes.push('conntrack has a closed flow (FIN/RST seen) on these ports and this is a new SYN: weir forgets the old pair and balances the SYN afresh');
    } else if (isTcp && synAck(tcpFlags) && ct.flags & CF.WEIR_CT_REPLY && replyIsStale(maps, ct)) {
      out.notes.push(
        'a SYN-ACK meets the reply entry of a closed flow: it answers a new connection that did not go through it (connect-time LB); ' +
          'weir deletes the stale pair and leaves the packet alone',
      );
    } else {
      const reply = (ct.flags & CF.WEIR_CT_REPLY) !== 0;
      out.verdict = 'established';
      out.outcomes.push({ tc: ct.ifindex ? 'redirect' : 'pass', reason: reply ? 'reverse_nat' : 'nat_established', rewrite: rewriteOf(p, ct, r) });
      const direction = reply ? 'reply direction' : 'original direction';
      out.notes.push(`conntrack has this flow (${direction}): the packet is rewritten as the entry says, whatever the frontend says now`);
      if (ct.tunnel_node !== r.any) {
        const dsr = (ct.flags & CF.WEIR_CT_DSR) !== 0;
        const node = unmapIp4(ct.tunnel_node) ?? ct.tunnel_node; // weir_ct6 over the IPv4 underlay: v4-mapped
        out.notes.push(
          reply
            ? `the flow came through the tunnel from node ${node}: this reply goes back into it (VXLAN), and that node answers the client`
            : `the flow's backend is on node ${node}: the packet is ${dsr ? 'sent unmodified (DSR: that node DNATs and answers the client itself)' : 'DNATed here'} and encapsulated in VXLAN to it`,
        );
      } else if (ct.ifindex)
        out.notes.push(
          `the flow stays on this node: the packet is redirected to ifindex ${ct.ifindex} (bpf_redirect_neigh, TTL decremented), past the host stack and netfilter`,
        );
    }
  }

  // 2. the frontend: from_host tries the external (Local policy) scope first; ICMP only for echo requests, port 0
  const scopes = hook === 'from_host' ? [SCOPE.WEIR_SCOPE_EXTERNAL, SCOPE.WEIR_SCOPE_INTERNAL] : [SCOPE.WEIR_SCOPE_INTERNAL];
  const fePort = p.protocol === r.icmp ? 0 : p.dport;
  let fe: WeirFrontend4 | undefined;
  let scope: number = SCOPE.WEIR_SCOPE_INTERNAL;
  if (p.protocol !== r.icmp || icmpType === r.echo) {
    for (const s of scopes) {
      fe = maps.frontends.get({ address: p.dst, port: fePort, protocol: p.protocol, scope: s });
      if (fe) {
        scope = s;
        break;
      }
    }
  }
  if (!fe) {
    if (out.verdict !== 'established') {
      const why = p.protocol === r.icmp && icmpType !== r.echo ? ' (only echo requests start ICMP flows)' : '';
      out.notes.push(`${p.dst}:${fePort} is not a frontend on this node${why}: weir leaves the packet alone`);
      out.outcomes.push({ tc: 'pass', reason: 'pass', rewrite: unchanged(p) });
    }
    return finish(out);
  }
  out.frontend = {
    address: p.dst,
    port: fePort,
    protocol: p.protocol,
    scope: scope === SCOPE.WEIR_SCOPE_EXTERNAL ? 'external' : 'internal',
    id: fe.id,
    backendCount: fe.backend_count,
    flags: fe.flags,
    affinityTimeout: fe.affinity_timeout,
  };
  if (scope === SCOPE.WEIR_SCOPE_EXTERNAL) out.notes.push("externalTrafficPolicy Local: only this node's endpoints, the client address is kept");

  const slots: Array<WeirBackend4 | undefined> = [];
  for (let slot = 0; slot < fe.backend_count; slot++) {
    const b = maps.backends.get({ frontend_id: fe.id, slot });
    slots.push(b);
    if (!b) out.notes.push(`slot ${slot} below the count has no backend entry: a new flow landing there is dropped (backend_missing)`);
    else {
      const [local, terminating] = [(b.flags & BF.WEIR_BACKEND_LOCAL) !== 0, (b.flags & BF.WEIR_BACKEND_TERMINATING) !== 0];
      // from_host sends a flow to a backend on another node through the tunnel (lib/forward.h)
      const remote = hook === 'from_host' ? maps.tunnel?.get({ prefixlen: r.family === 6 ? 128 : 32, address: b.address }) : undefined;
      const tunnelTo = remote ? (unmapIp4(remote.node_ip) ?? remote.node_ip) : undefined;
      out.candidates.push({ slot, address: b.address, port: b.port, local, terminating, ...(tunnelTo ? { tunnelTo } : {}) });
    }
  }
  if (out.candidates.some((c) => c.address === p.src))
    out.notes.push(`${p.src} is itself a backend: if it picks itself (hairpin) the source becomes ${p.dst} so the reply comes back through weir`);

  // flows of this client to this frontend already tracked (the original direction)
  for (const [k, v] of maps.conntrack.entries()) {
    if (k.saddr === p.src && k.daddr === p.dst && k.dport === p.dport && k.protocol === p.protocol && !(v.flags & CF.WEIR_CT_REPLY))
      out.flows.push({ sport: k.sport, backend: v.nat_daddr, backendPort: v.nat_dport, flags: v.flags });
  }
  out.flows.sort((a, b) => a.sport - b.sport);

  if (out.verdict === 'established') return finish(out);
  newFlow(maps, maglev, q, p, tcpFlags, fe, slots, out, r);
  return finish(out);
}

/** lb4_new_flow: the first packet of a flow to frontend @fe. */
function newFlow(
  maps: ServiceReadMaps,
  maglev: MaglevReadMaps | undefined,
  q: ExplainQuery,
  p: Flow,
  tcpFlags: number,
  fe: WeirFrontend4,
  slots: Array<WeirBackend4 | undefined>,
  out: Explanation,
  r: FamilyRules,
): void {
  if (fe.flags & FF.WEIR_FRONTEND_SOURCE_RANGES) {
    // the prefixes of this frontend, matched here by hand (the programs ask the LPM trie)
    const ranges = [...maps.sourceRanges.keys()].filter((k) => k.frontend_id === fe.id).map((k) => `${k.address}/${k.prefixlen - 32}`);
    const hit = ranges.filter((c) => cidrContains(c, p.src)).sort((a, b) => Number(b.split('/')[1]) - Number(a.split('/')[1]))[0];
    if (!hit) {
      out.verdict = 'drop';
      out.notes.push(`loadBalancerSourceRanges (${ranges.sort().join(', ') || 'none'}) do not hold ${p.src}: dropped, as kube-proxy's firewall chain does`);
      out.outcomes.push({ tc: 'drop', reason: 'lb_source_denied' });
      return;
    }
    out.notes.push(`loadBalancerSourceRanges: ${p.src} is in ${hit}`);
  }
  if (p.protocol === IPPROTO_TCP && !(tcpFlags & TCP.syn)) {
    out.notes.push(
      'a TCP segment without SYN and without conntrack: a connection weir did not see begin (set up before weir took over); ' +
        'left to the kernel, not balanced',
    );
    out.outcomes.push({ tc: 'pass', reason: 'midflow_no_conntrack', rewrite: unchanged(p) });
    return;
  }
  if (fe.flags & FF.WEIR_FRONTEND_DROP) {
    out.verdict = 'drop';
    out.notes.push('Local traffic policy and no endpoint on this node: dropped, as kube-proxy does');
    out.outcomes.push({ tc: 'drop', reason: 'no_local_backend_drop' });
    return;
  }
  if (fe.flags & FF.WEIR_FRONTEND_REJECT || fe.backend_count === 0) {
    out.verdict = 'reject';
    out.notes.push(
      r.family === 6 && p.protocol === IPPROTO_TCP
        ? 'no usable endpoint: the SYN is answered at once with a TCP RST from the frontend (connection refused), sent back out the interface it came in on ' +
            '(an ICMPv6 error would reach a connecting IPv6 socket as a soft error, refused only after the SYN retransmit, ~1 s)'
        : 'no usable endpoint: answered at once with ICMP port unreachable (TCP: connection refused), sent back out the interface it came in on',
    );
    out.outcomes.push({ tc: 'redirect', reason: 'no_backend_reject' });
    return;
  }
  out.verdict = 'dnat';
  const tunneled = out.candidates.filter((c) => c.tunnelTo);
  if (tunneled.length > 0)
    out.notes.push(
      `${tunneled.length} of the backends run on other nodes (${[...new Set(tunneled.map((c) => c.tunnelTo))].join(', ')}): a flow that picks one is DNATed and carried there in VXLAN (or sent unmodified under --external-service-mode dsr); the backend sees the client's address`,
    );
  out.notes.push(
    'a new flow whose backend the kernel routes to a pod interface of this node is redirected there, and its replies back to the client, past the host stack (shown as pass here: the route is looked up when the packet comes)',
  );
  let picks: Array<{ slot?: number; be: WeirBackend4 | undefined }> = slots.map((be, slot) => ({ slot, be }));
  if (fe.flags & FF.WEIR_FRONTEND_AFFINITY) {
    const a = maps.affinity.get({ client: p.src, frontend_id: fe.id });
    if (a) {
      const idleNs = (q.nowNs ?? process.hrtime.bigint()) - a.last_used_ns;
      const fresh = idleNs <= BigInt(fe.affinity_timeout) * 1_000_000_000n;
      out.affinity = { backend: a.backend, port: a.port, idleS: Number(idleNs / 1_000_000n) / 1000, fresh };
      if (fresh) {
        const used = `used ${out.affinity.idleS.toFixed(1)} s ago, timeout ${fe.affinity_timeout} s`;
        out.notes.push(`ClientIP affinity: new flows from ${p.src} go to ${a.backend}:${a.port} (${used})`);
        picks = [{ be: { address: a.backend, port: a.port, flags: 0 } }];
      } else out.notes.push('ClientIP affinity entry expired: a new flow picks a random slot and pins it again');
    } else out.notes.push(`ClientIP affinity: no entry for ${p.src} yet; the first flow's pick is pinned for ${fe.affinity_timeout} s`);
  }
  // affinity wins first (lb4_select_backend); then lb_pick_slot: the Maglev table's entry for the flow hash
  const isMaglev = (fe.flags & FF.WEIR_FRONTEND_MAGLEV) !== 0;
  if (picks.length > 1 && isMaglev) {
    const slot = maglevSlot(maglev, q, p, fe, out, r);
    if (slot !== undefined) picks = [{ slot, be: slots[slot] }];
  }
  if (picks.length > 1)
    out.notes.push(
      `a new flow picks one of ${fe.backend_count} slots uniformly at random; ` +
        'terminating endpoints are not in the slots (their established flows continue through conntrack)',
    );
  if (q.from === 'pod' && !(fe.flags & FF.WEIR_FRONTEND_AFFINITY))
    out.notes.push(
      isMaglev
        ? 'a pod socket under the connect-time LB draws a random slot in connect() instead (no packet to hash), with no per-packet NAT'
        : 'a pod socket under the connect-time LB gets the same choice in connect(), with no per-packet NAT',
    );
  for (const { slot, be } of picks) out.outcomes.push(natTo(p, slot, be, r));
}

/**
 * lb_pick_slot for a Maglev frontend: the slot the table gives the flow's hash, or undefined
 * (with a note) where the program draws a random slot or explain cannot know the hash.
 */
function maglevSlot(maglev: MaglevReadMaps | undefined, q: ExplainQuery, p: Flow, fe: WeirFrontend4, out: Explanation, r: FamilyRules): number | undefined {
  const any = 'a new flow may get any slot';
  if (p.protocol !== r.icmp && q.sport === undefined) {
    out.notes.push(`Maglev: the slot follows the hash of the client's address and ports; give --sport to see the one this flow gets (without: ${any})`);
    return undefined;
  }
  if (!maglev) {
    out.notes.push(`Maglev: the tables (weir_maglev4) are not pinned: ${any}`);
    return undefined;
  }
  if (maglev.tableSize === undefined) {
    out.notes.push(`Maglev: the table size the programs use (maglev_table_size) is not readable: ${any}`);
    return undefined;
  }
  const table = maglev.tables.get({ frontend_id: fe.id });
  if (!table) {
    out.notes.push('Maglev: no table for this frontend yet (the reconciler writes it after the slots): a new flow draws a random slot');
    return undefined;
  }
  const hash = maglevFlowHash(p.src, p.sport, p.dport, p.protocol);
  const i = hash % maglev.tableSize;
  const slot = table.slots[i];
  if (slot === undefined || slot >= fe.backend_count) {
    out.notes.push(`Maglev: entry ${i} of the table names slot ${slot ?? '-'}, beyond the ${fe.backend_count} slots (an update under way): a random slot`);
    return undefined;
  }
  out.notes.push(`Maglev: flow hash ${hash}, entry ${i} of ${maglev.tableSize}: slot ${slot}; every node with this table sends the flow there`);
  return slot;
}

/** The rest of lb4_new_flow for one backend choice. */
function natTo(p: Flow, slot: number | undefined, be: WeirBackend4 | undefined, r: FamilyRules): Outcome {
  if (!be) return { tc: 'drop', reason: 'backend_missing' };
  const backend = { ...(slot !== undefined ? { slot } : {}), address: be.address, port: be.port };
  const dport = p.protocol === r.icmp || !be.port ? p.dport : be.port;
  if (p.protocol === IPPROTO_SCTP && dport !== p.dport) return { tc: 'drop', reason: 'sctp_port_rewrite', backend }; // SCTP's CRC covers the ports
  const hairpin = be.address === p.src;
  const rewrite = { saddr: hairpin ? p.dst : p.src, daddr: be.address, sport: p.sport, dport };
  return { tc: 'pass', reason: hairpin ? 'hairpin' : 'service_nat', rewrite, backend };
}

/** ct4_reply_is_stale: the reply entry or its forward partner saw FIN/RST, or the partner is gone. */
function replyIsStale(maps: ServiceReadMaps, ct: WeirCt4): boolean {
  if (closed(ct)) return true;
  const fwd = maps.conntrack.get({ saddr: ct.nat_daddr, daddr: ct.nat_saddr, sport: ct.nat_dport, dport: ct.nat_sport, protocol: IPPROTO_TCP });
  return !fwd || closed(fwd);
}

/** icmp4_error_revnat: the quote's tuple swapped is the key of the entry for the error's direction. */
function explainIcmpError(maps: ServiceReadMaps, p: Flow, quote: Flow | undefined, out: Explanation, r: FamilyRules): Explanation {
  const pass = () => out.outcomes.push({ tc: 'pass', reason: 'pass', rewrite: unchanged(p) });
  if (!quote) {
    out.notes.push('an ICMP error: which flow it is about is in the quoted packet (give --quote); without one weir translates nothing');
    pass();
    return out;
  }
  const icmpQuote = quote.protocol === r.icmp;
  const key: WeirCt4Key = { saddr: quote.dst, daddr: quote.src, sport: quote.dport, dport: quote.sport, protocol: quote.protocol };
  const ct = [6, 17, 132, r.icmp].includes(quote.protocol) ? maps.conntrack.get(key) : undefined;
  if (!ct) {
    out.notes.push('an ICMP error about a flow weir did not NAT: left alone');
    pass();
    return out;
  }
  const q: Rewrite = { saddr: quote.src, daddr: quote.dst, sport: quote.sport, dport: quote.dport };
  if (ct.flags & CF.WEIR_CT_SNAT) [q.daddr, q.dport] = [ct.nat_saddr, icmpQuote ? q.dport : ct.nat_sport];
  if (ct.flags & CF.WEIR_CT_DNAT) [q.saddr, q.sport] = [ct.nat_daddr, icmpQuote ? q.sport : ct.nat_dport];
  const rewrite = { ...unchanged(p), saddr: p.src === quote.dst ? q.daddr : p.src, daddr: p.dst === quote.src ? q.saddr : p.dst };
  out.verdict = 'icmp-error';
  out.notes.push("an ICMP error about a NAT'd flow: the quote is translated back (and outer addresses that are flow endpoints): it reaches the right socket");
  out.outcomes.push({ tc: 'pass', reason: 'icmp_error_revnat', rewrite, quote: q });
  return out;
}
