/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The IPv6 stages after the conntrack lookup, shared by from_pod6 and from_host6, as flow.h's
 * for IPv4: a packet of a known flow (NAT as its entry says, forward) and the first packet of
 * a new one (select a backend, policy, create conntrack, NAT, forward).
 *
 *   established:  conntrack hit -> NAT (nat6.h) -> forward (forward6.h)
 *   new flow:     frontend -> admit, select backend (lb6.h) -> policy (policy.h)
 *                   -> plan the forward (forward6.h) -> create conntrack (conntrack6.h)
 *                   -> NAT -> forward                                          flow6_new
 *                 no endpoint: TCP RST / ICMPv6 port unreachable (reject6.h)  flow6_reject
 *                 no frontend, ct_track_all -> policy -> create conntrack, no rewrite
 *                   -> forward                                             flow6_track_new
 *   across nodes (tunnel6.h), as flow.h's: a direction with a tunnel node in its entry is
 *   encapsulated toward it (flow6_tunnel_out); the first packet of a flow another node sent
 *   through the tunnel gets its pair on the backend's node (flow6_tunnel_new)
 */
#ifndef WEIR_LIB_FLOW6_H
#define WEIR_LIB_FLOW6_H

#include "compiler.h"
#include "conntrack6.h"
#include "counters.h"
#include "forward6.h"
#include "icmp6_error.h"
#include "ip6.h"
#include "lb6.h"
#include "nat6.h"
#include "parse.h"
#include "policy.h"
#include "reject6.h"
#include <weir/counters.h>

/* The established reason of a packet that hit @ct. */
static __always_inline enum weir_reason flow6_established_reason(const struct weir_ct6 *ct)
{
	if (ct6_is_tracked_only(ct))
		return WEIR_REASON_CT_TRACKED;
	return (ct->flags & WEIR_CT_REPLY) ? WEIR_REASON_REVERSE_NAT : WEIR_REASON_NAT_ESTABLISHED;
}

/**
 * flow6_tunnel_out - a later packet of a flow whose this direction crosses the tunnel
 * (ct->tunnel_node), as flow4_tunnel_out: the ingress node's client -> backend packets, the
 * backend's node's replies (tunnel mode). In DSR mode the ingress node sends the packet
 * unmodified and names the backend (tunnel6.h's Destination Options header); the backend's
 * node DNATs. The route first (Packet Too Big as the client sent it), then NAT, then the
 * encapsulation. A global function: its frame and the tunnel's are not the hook's.
 */
__weir_slow_path int flow6_tunnel_out(struct __sk_buff *skb, const struct packet *pkt,
				      const struct weir_ct6 *ct, __u32 hook, int *verdict)
{
	struct tunnel6_scratch *s = tunnel6_scratch();
	struct nat6_target to;
	int reason, rewrite;

	if (!skb || !pkt || !ct || !verdict || !s)
		return WEIR_REASON_PASS;
	__builtin_memset(&s->meta, 0, sizeof(s->meta));
	rewrite = !ct6_is_tracked_only(ct);
	if ((ct->flags & (WEIR_CT_DSR | WEIR_CT_REPLY)) == WEIR_CT_DSR) {
		s->meta.mode = WEIR_TUNNEL_MODE_DSR;
		ip6_copy(s->meta.addr, ct->nat_daddr);
		s->meta.backend_port = ct->nat_dport;
		rewrite = 0;
	}
	reason = tunnel6_send_prepare(skb, pkt, &ct->tunnel_node, s->meta.mode, &s->rt, verdict);
	if (reason)
		return reason;
	if (rewrite) {
		nat6_target_of_ct(pkt, ct, &to);
		if (nat6_rewrite(skb, pkt, &to)) {
			*verdict = WEIR_TC_DROP;
			return WEIR_REASON_NAT_FAILED;
		}
	}
	reason = tunnel6_send_finish(skb, pkt, &s->rt, &s->meta, hook, verdict);
	return reason ? reason : flow6_established_reason(ct);
}

/* A later packet of a known flow (either direction): refresh its entry, apply its rewrite,
 * forward. Tracked-only flows are refreshed and passed as they are. */
static __always_inline enum weir_reason flow6_established(struct __sk_buff *skb,
							  const struct packet *pkt,
							  struct weir_ct6 *ct, __u32 hook,
							  int *verdict)
{
	struct nat6_target to;

	/* the coarse clock, as flow4_established */
	ct6_refresh(ct, pkt, bpf_ktime_get_coarse_ns());
	if (!ip6_is_zero(ct->tunnel_node))
		return flow6_tunnel_out(skb, pkt, ct, hook, verdict);
	if (ct6_is_tracked_only(ct)) {
		*verdict = forward6_established(skb, pkt, ct->ifindex);
		return WEIR_REASON_CT_TRACKED;
	}
	nat6_target_of_ct(pkt, ct, &to);
	if (nat6_rewrite(skb, pkt, &to)) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_NAT_FAILED;
	}
	*verdict = forward6_established(skb, pkt, ct->ifindex);
	if ((ct->flags & (WEIR_CT_DSR | WEIR_CT_REPLY)) == (WEIR_CT_DSR | WEIR_CT_REPLY))
		count(hook, WEIR_REASON_DSR_REPLY, pkt->len);
	return flow6_established_reason(ct);
}

/**
 * lb6_select - the select stage, as lb4_select: a backend for the new flow of @pkt to @fe
 * @ct_flags: the calling hook's conntrack flags (WEIR_CT_NODEPORT from from_host6)
 * @flow: filled in: the tuple before and after DNAT (and SNAT for hairpin), flags
 *
 * Returns 0, or the reason to drop the packet with. A global function: the affinity and
 * backend copies with 16-byte addresses stay out of flow6_new's frame, whose callees
 * (policy's included) share what is left of the 512-byte stack.
 */
__weir_slow_path int lb6_select(const struct packet *pkt, const struct weir_frontend6 *fe,
				__u64 now, __u32 ct_flags, struct ct6_flow *flow)
{
	struct weir_backend6 be;

	if (!pkt || !fe || !flow)
		return WEIR_REASON_BACKEND_MISSING;
	if (lb6_select_backend(fe, pkt->saddr.v6, pkt, now, &be))
		return WEIR_REASON_BACKEND_MISSING;

	ct6_key_of(pkt, &flow->orig);
	flow->nat = flow->orig;
	ip6_copy(flow->nat.daddr, be.address);
	flow->nat.dport = be.port ? be.port : pkt->dport;
	if (pkt->l4_proto == IPPROTO_ICMPV6)
		flow->nat.dport = pkt->dport; /* echo identifier stays */
	if (pkt->l4_proto == IPPROTO_SCTP && flow->nat.dport != pkt->dport)
		return WEIR_REASON_SCTP_PORT_REWRITE;
	/* hairpin: a client reaching itself; with the frontend as source its reply comes back
	 * through from_pod6 for reverse NAT */
	if (ip6_equal(be.address, pkt->saddr.v6)) {
		ip6_copy(flow->nat.saddr, pkt->daddr.v6);
		ct_flags |= WEIR_CT_HAIRPIN;
	}
	flow->nat_flags = WEIR_CT_DNAT;
	flow->extra_flags = ct_flags;
	flow->frontend_id = fe->id;
	flow->policy = 0;
	flow->ifindex = 0;
	flow->reply_ifindex = 0;
	return 0;
}

/* The calling hook and the conntrack flags it gives a service flow's pair, as one argument of
 * flow6_new (as FLOW4_ORIGIN: a BPF call takes at most five). */
#define FLOW6_ORIGIN(hook, ct_flags) ((__u32)(hook) | ((__u32)(ct_flags) << 16))

/**
 * flow6_new - the first packet of a flow to IPv6 frontend @fe
 * @origin: FLOW6_ORIGIN(the calling hook, the conntrack flags for the flow's pair:
 *          WEIR_CT_NODEPORT from from_host6)
 * @verdict: set to the TC verdict (WEIR_TC_REJECT_PENDING: the hook rejects, flow6_reject;
 *           WEIR_TC_TUNNEL_FIRST: the hook sends it through the tunnel, flow6_tunnel_first)
 *
 * Returns the reason to count. A slow path: a global function, verified once (compiler.h).
 */
__weir_slow_path int flow6_new(struct __sk_buff *skb, const struct packet *pkt,
			       const struct weir_frontend6 *fe, __u32 origin, int *verdict)
{
	__u32 hook = origin & 0xffff;
	struct nat6_target to;
	struct ct6_scratch *scratch = ct6_scratch();
	struct ct6_flow *flow;
	enum weir_reason reason;
	__u64 now;

	/* a global function's pointers may be NULL, for all the verifier knows */
	if (!pkt || !fe || !verdict || !scratch)
		return WEIR_REASON_PASS;
	flow = &scratch->flow;

	/* admit, select */
	reason = lb6_admit(pkt, fe, verdict);
	if (reason)
		return reason;
	now = bpf_ktime_get_ns();
	reason = lb6_select(pkt, fe, now, origin >> 16, flow);
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}

	/* policy, against the backend chosen */
	reason = policy6_new_flow(pkt, hook, (const __u32 *)flow->nat.daddr, flow->nat.dport,
				  &flow->policy);
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}

	/* where both directions go: kept in the entries (the scratch holds the last flow's) */
	__builtin_memset(flow->tunnel_node, 0, sizeof(flow->tunnel_node));
	__builtin_memset(flow->reply_tunnel_node, 0, sizeof(flow->reply_tunnel_node));
	forward6_plan(skb, flow, hook);

	/* create conntrack */
	if (ct6_create(flow, pkt, now)) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_CT_CREATE_FAILED;
	}

	/* NAT, forward */
	if (!ip6_is_zero(flow->tunnel_node)) {
		/* the hook sends it through the tunnel as a later packet of the flow
		 * (flow6_tunnel_first): the tunnel's frames on top of this one would not fit */
		*verdict = WEIR_TC_TUNNEL_FIRST;
	} else {
		to.saddr = (const __u32 *)flow->nat.saddr;
		to.daddr = (const __u32 *)flow->nat.daddr;
		to.sport = flow->nat.sport;
		to.dport = flow->nat.dport;
		if (nat6_rewrite(skb, pkt, &to)) {
			*verdict = WEIR_TC_DROP;
			return WEIR_REASON_NAT_FAILED;
		}
		*verdict = forward6(skb, pkt, flow->ifindex);
	}
	if (lb6_count_new_flow(fe->id, flow->nat.daddr, flow->nat.dport))
		count(hook, WEIR_REASON_LB_STATS_FULL, 0);
	return (flow->extra_flags & WEIR_CT_HAIRPIN) ? WEIR_REASON_HAIRPIN
						     : WEIR_REASON_SERVICE_NAT;
}

/**
 * flow6_track_new - the first packet of a flow to no frontend, under ct_track_all, as
 * flow4_track_new: policy, then an entry pair that rewrites nothing. A packet that does not
 * start a flow passes untracked without policy, and is decided like a first packet under it.
 * A slow path, as flow6_new.
 */
__weir_slow_path int flow6_track_new(struct __sk_buff *skb, const struct packet *pkt, __u32 hook,
				     int *verdict)
{
	struct ct6_scratch *scratch = ct6_scratch();
	struct ct6_flow *flow;
	enum weir_reason reason;

	weir_keep_arg(hook); /* policy6_new_flow may not read it */
	if (!pkt || !verdict || !ct_track_all || !scratch)
		return WEIR_REASON_PASS;
	flow = &scratch->flow;
	if (!policy_enabled && !ct_starts_flow(pkt))
		return WEIR_REASON_PASS;
	ct6_flow_untranslated(pkt, flow);
	reason = policy6_new_flow(pkt, hook, pkt->daddr.v6, pkt->dport, &flow->policy);
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}
	if (ct6_create(flow, pkt, bpf_ktime_get_ns()))
		return WEIR_REASON_CT_TRACK_FAILED; /* nothing to translate: pass it untracked */
	*verdict = forward6(skb, pkt, flow->ifindex);
	return WEIR_REASON_CT_TRACKED_NEW;
}

/**
 * flow6_reject - the hook's half of a reject lb6_admit decided (*verdict
 * WEIR_TC_REJECT_PENDING): turns the packet into a TCP RST or an ICMPv6 port unreachable
 * back out the interface it came in on. A global function: its frame holds the quote.
 */
__weir_slow_path int flow6_reject(struct __sk_buff *skb, const struct packet *pkt, int *verdict)
{
	int ret;

	if (!skb || !pkt || !verdict)
		return WEIR_REASON_PASS;
	ret = reject6_port_unreachable(skb, pkt);
	if (ret < 0) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_REJECT_FAILED;
	}
	*verdict = ret;
	return WEIR_REASON_NO_BACKEND_REJECT;
}

/* The first packet of a flow flow6_new sent into the tunnel (*verdict WEIR_TC_TUNNEL_FIRST):
 * its entry is written; it goes as a later packet would. A global function: the lookup's key
 * is not on the hook's frame. */
__weir_slow_path int flow6_tunnel_first(struct __sk_buff *skb, const struct packet *pkt,
					__u32 reason, __u32 hook, int *verdict)
{
	struct weir_ct6 *ct;
	int sent;

	if (!skb || !pkt || !verdict)
		return WEIR_REASON_PASS;
	ct = ct6_lookup_flow(pkt);
	if (!ct || ip6_is_zero(ct->tunnel_node)) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_CT_CREATE_FAILED;
	}
	sent = flow6_tunnel_out(skb, pkt, ct, hook, verdict);
	return sent == WEIR_REASON_NAT_ESTABLISHED ? reason : sent;
}

/**
 * flow6_tunnel_new - the first packet this node sees of a flow another node sent through the
 * tunnel (decapsulated; what it carried in skb->cb, tunnel6_decap), as flow4_tunnel_new: any
 * packet starts one, so that the replies find their way whatever this node missed.
 *   tunnel mode: the packet is already translated; an entry pair that rewrites nothing, whose
 *     reply direction goes back through the tunnel to the ingress node (the peer)
 *   DSR: the packet is as the client sent it; a NAT'd pair to the backend the ingress node
 *     named, whose replies leave this node for the client from the frontend's address
 */
__weir_slow_path int flow6_tunnel_new(struct __sk_buff *skb, const struct packet *pkt, int *verdict)
{
	struct ct6_scratch *scratch = ct6_scratch();
	struct tunnel6_meta meta;
	struct nat6_target to;
	struct ct6_flow *flow;
	enum weir_reason reason;

	if (!skb || !pkt || !verdict || !scratch)
		return WEIR_REASON_PASS;
	flow = &scratch->flow;
	tunnel6_meta_load(skb, &meta);
	ct6_flow_untranslated(pkt, flow);
	flow->extra_flags = WEIR_CT_TUNNEL;
	if (meta.mode == WEIR_TUNNEL_MODE_DSR) {
		ip6_copy(flow->nat.daddr, meta.addr);
		flow->nat.dport = meta.backend_port;
		flow->nat_flags = WEIR_CT_DNAT;
		flow->extra_flags |= WEIR_CT_DSR;
	} else {
		ip6_copy(flow->reply_tunnel_node, meta.addr);
	}
	/* the ingress policy of the backend, against the client's own address */
	reason = policy6_new_flow(pkt, WEIR_HOOK_FROM_HOST, (const __u32 *)flow->nat.daddr,
				  flow->nat.dport, &flow->policy);
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}
	forward6_plan(skb, flow, WEIR_HOOK_TUNNEL); /* the local redirect only */
	/* DSR: the replies go to the client from here; tunnel: back through the tunnel */
	flow->reply_ifindex = flow->nat_flags
				      ? forward6_egress(skb, flow->orig.daddr, flow->orig.saddr,
							flow->orig.protocol)
				      : 0;
	if (ct6_create(flow, pkt, bpf_ktime_get_ns())) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_CT_CREATE_FAILED;
	}
	if (flow->nat_flags) {
		to.saddr = (const __u32 *)flow->nat.saddr;
		to.daddr = (const __u32 *)flow->nat.daddr;
		to.sport = flow->nat.sport;
		to.dport = flow->nat.dport;
		if (nat6_rewrite(skb, pkt, &to)) {
			*verdict = WEIR_TC_DROP;
			return WEIR_REASON_NAT_FAILED;
		}
	}
	*verdict = forward6(skb, pkt, flow->ifindex);
	return flow->nat_flags ? WEIR_REASON_SERVICE_NAT : WEIR_REASON_CT_TRACKED_NEW;
}

/* flow6_new as the hooks call it: the steps it leaves to the hook's frame (the tunnel's first
 * packet, a reject) are taken here. */
static __always_inline enum weir_reason flow6_new_at_hook(struct __sk_buff *skb,
							  const struct packet *pkt,
							  const struct weir_frontend6 *fe,
							  __u32 origin, int *verdict)
{
	enum weir_reason reason = flow6_new(skb, pkt, fe, origin, verdict);

	if (*verdict == WEIR_TC_TUNNEL_FIRST)
		return flow6_tunnel_first(skb, pkt, reason, origin & 0xffff, verdict);
	if (*verdict == WEIR_TC_REJECT_PENDING)
		return flow6_reject(skb, pkt, verdict);
	return reason;
}

/* The IPv6 path of a hook after parse and accept, the same for from_pod6 and from_host6 but
 * for the frontend scopes (@external: EXTERNAL first, then INTERNAL) and the flags @origin:
 *   neighbour discovery: passed untouched
 *   ICMPv6 error about a NAT'd flow: translated back (icmp6_error.h)
 *   conntrack hit: flow6_established
 *   frontend: flow6_new;  none: ct_track_all ? flow6_track_new : pass */
static __always_inline enum weir_reason flow6_stages(struct __sk_buff *skb,
						     const struct packet *pkt, __u32 origin,
						     int external, int *verdict)
{
	struct weir_frontend6 *fe = NULL;
	struct weir_ct6 *ct;

	if (icmp6_is_nd(pkt))
		return WEIR_REASON_PASS;
	if (icmp6_is_error_packet(pkt))
		return icmp6_error_stage(skb, pkt, verdict);

	ct = ct6_lookup_flow(pkt);
	if (ct)
		return flow6_established(skb, pkt, ct, origin & 0xffff, verdict);

	if (external)
		fe = lb6_lookup_frontend(pkt, WEIR_SCOPE_EXTERNAL);
	if (!fe)
		fe = lb6_lookup_frontend(pkt, WEIR_SCOPE_INTERNAL);
	if (fe)
		return flow6_new_at_hook(skb, pkt, fe, origin, verdict);
	if (ct_track_all)
		return flow6_track_new(skb, pkt, origin & 0xffff, verdict);
	return WEIR_REASON_PASS;
}

#endif
