/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The stages after the conntrack lookup, shared by from_pod and from_host: a packet of a
 * known flow (NAT as its entry says, forward) and the first packet of a new one (select a
 * backend, policy, create conntrack, NAT, forward). The hooks differ only in the frontend
 * scopes they look up, their hook id and the conntrack flag they give a service flow.
 *
 *   established:  conntrack hit -> NAT (nat.h) -> forward (forward.h)
 *   new flow:     frontend -> admit, select backend (lb.h) -> policy (policy.h)
 *                   -> plan the forward (forward.h) -> create conntrack (conntrack.h)
 *                   -> NAT -> forward                                          flow4_new
 *                 no frontend, ct_track_all -> policy -> create conntrack, no rewrite
 *                   -> forward                                             flow4_track_new
 */
#ifndef WEIR_LIB_FLOW_H
#define WEIR_LIB_FLOW_H

#include "compiler.h"
#include "conntrack.h"
#include "counters.h"
#include "forward.h"
#include "lb.h"
#include "nat.h"
#include "parse.h"
#include "policy.h"
#include "reject.h"
#include "tunnel.h"
#include <weir/counters.h>

/* The established reason of a packet that hit @ct. */
static __always_inline enum weir_reason flow4_established_reason(const struct weir_ct4 *ct)
{
	if (ct4_is_tracked_only(ct))
		return WEIR_REASON_CT_TRACKED;
	return (ct->flags & WEIR_CT_REPLY) ? WEIR_REASON_REVERSE_NAT : WEIR_REASON_NAT_ESTABLISHED;
}

/* Sends @pkt (not yet rewritten) through the tunnel toward @node_ip after rewriting it to
 * @to (NULL: no rewrite), carrying @meta: the route first, so that a packet too big for the
 * tunnel goes back to its sender as it was sent (frag needed), then NAT, then encapsulation.
 * Returns 0, or the reason the packet did not go (with *verdict set). */
static __always_inline enum weir_reason flow4_tunnel_send(struct __sk_buff *skb,
							  const struct packet *pkt, __u32 node_ip,
							  const struct nat4_target *to,
							  const struct tunnel4_meta *meta,
							  __u32 hook, int *verdict)
{
	struct tunnel4_route rt = {};
	int reason, ret;

	reason = tunnel4_route(skb, pkt, node_ip, &rt);
	if (reason == WEIR_REASON_TUNNEL_FRAG_NEEDED) {
		ret = reject4_frag_needed(skb, pkt, rt.mtu);
		*verdict = ret < 0 ? WEIR_TC_DROP : ret;
		return WEIR_REASON_TUNNEL_FRAG_NEEDED;
	}
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}
	if (to && nat4_rewrite(skb, pkt, to)) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_NAT_FAILED;
	}
	ret = tunnel4_encap(skb, &rt, meta);
	if (ret < 0) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_TUNNEL_FAILED;
	}
	count(hook, WEIR_REASON_TUNNEL_ENCAP, pkt->len);
	*verdict = ret;
	return 0;
}

/**
 * flow4_tunnel_out - a later packet of a flow whose this direction crosses the tunnel
 * (ct->tunnel_node): the ingress node's client -> backend packets, the backend's node's
 * replies (tunnel mode). In DSR mode the ingress node sends the packet unmodified and names
 * the backend in the tunnel header; the backend's node DNATs. A slow path only in the sense
 * of a global function (verified once).
 */
__weir_slow_path int flow4_tunnel_out(struct __sk_buff *skb, const struct packet *pkt,
				      const struct weir_ct4 *ct, __u32 hook, int *verdict)
{
	struct tunnel4_meta meta = {};
	struct nat4_target to;
	int reason, rewrite;

	if (!skb || !pkt || !ct || !verdict)
		return WEIR_REASON_PASS;
	rewrite = !ct4_is_tracked_only(ct);
	if ((ct->flags & (WEIR_CT_DSR | WEIR_CT_REPLY)) == WEIR_CT_DSR) {
		meta.mode = WEIR_TUNNEL_MODE_DSR;
		meta.backend = ct->nat_daddr;
		meta.backend_port = ct->nat_dport;
		rewrite = 0;
	}
	if (rewrite)
		nat4_target_of_ct(pkt, ct, &to);
	reason = flow4_tunnel_send(skb, pkt, ct->tunnel_node, rewrite ? &to : NULL, &meta, hook,
				   verdict);
	return reason ? reason : flow4_established_reason(ct);
}

/* The first packet of a flow flow4_new sent into the tunnel (*verdict
 * WEIR_TC_TUNNEL_FIRST): its entry is written; it goes as a later packet would. */
static __always_inline enum weir_reason flow4_tunnel_first(struct __sk_buff *skb,
							   const struct packet *pkt,
							   enum weir_reason reason, __u32 hook,
							   int *verdict)
{
	struct weir_ct4 *ct = ct4_lookup_flow(pkt);
	int sent;

	if (!ct || !ct->tunnel_node) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_CT_CREATE_FAILED;
	}
	sent = flow4_tunnel_out(skb, pkt, ct, hook, verdict);
	return sent == WEIR_REASON_NAT_ESTABLISHED ? reason : sent;
}

/* A later packet of a known flow (either direction): refresh its entry, apply its
 * rewrite, forward. Tracked-only flows are refreshed and passed as they are. */
static __always_inline enum weir_reason flow4_established(struct __sk_buff *skb,
							  const struct packet *pkt,
							  struct weir_ct4 *ct, __u32 hook,
							  int *verdict)
{
	struct nat4_target to;

	/* the coarse clock: the same CLOCK_MONOTONIC to the tick, which is all the GC's
	 * second-scale timeouts need, for a fraction of bpf_ktime_get_ns()'s cost (a
	 * clocksource read, ~30 ns of an established packet's ~125 ns here; docs/bench.md) */
	ct4_refresh(ct, pkt, bpf_ktime_get_coarse_ns());
	if (ct->tunnel_node)
		return flow4_tunnel_out(skb, pkt, ct, hook, verdict);
	if (ct4_is_tracked_only(ct)) {
		*verdict = forward4_established(skb, pkt, ct->ifindex);
		return WEIR_REASON_CT_TRACKED;
	}
	nat4_target_of_ct(pkt, ct, &to);
	if (nat4_rewrite(skb, pkt, &to)) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_NAT_FAILED;
	}
	*verdict = forward4_established(skb, pkt, ct->ifindex);
	if ((ct->flags & (WEIR_CT_DSR | WEIR_CT_REPLY)) == (WEIR_CT_DSR | WEIR_CT_REPLY))
		count(hook, WEIR_REASON_DSR_REPLY, pkt->len);
	return flow4_established_reason(ct);
}

/* The calling hook (enum weir_hook) and the conntrack flags it gives a service flow's pair,
 * as one argument of flow4_new: a BPF call takes at most five. */
#define FLOW4_ORIGIN(hook, ct_flags) ((__u32)(hook) | ((__u32)(ct_flags) << 16))

/**
 * flow4_new - the first packet of a flow to frontend @fe
 * @origin: FLOW4_ORIGIN(the calling hook, under which a full weir_lb_stats4 is counted,
 *          and the conntrack flags for the flow's pair: WEIR_CT_NODEPORT from from_host)
 * @verdict: set to the TC verdict
 *
 * Returns the reason to count. A slow path: a global function, verified once (compiler.h).
 */
__weir_slow_path int flow4_new(struct __sk_buff *skb, const struct packet *pkt,
			       const struct weir_frontend4 *fe, __u32 origin, int *verdict)
{
	__u32 hook = origin & 0xffff;
	struct ct4_flow flow;
	struct nat4_target to;
	enum weir_reason reason;
	__u64 now;

	if (!pkt || !fe ||
	    !verdict) /* a global function's pointer arguments may be NULL, for all the verifier knows */
		return WEIR_REASON_PASS;

	/* admit, select */
	reason = lb4_admit(skb, pkt, fe, verdict);
	if (reason)
		return reason;
	now = bpf_ktime_get_ns();
	reason = lb4_select(pkt, fe, now, origin >> 16, &flow);
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}

	/* policy */
	reason = policy4_new_flow(pkt, hook, &flow);
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}

	/* where both directions go: kept in the entries */
	forward4_plan(skb, &flow, hook);

	/* create conntrack */
	if (ct4_create(&flow, pkt, now)) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_CT_CREATE_FAILED;
	}

	/* NAT, forward */
	to.saddr = flow.nat.saddr;
	to.daddr = flow.nat.daddr;
	to.sport = flow.nat.sport;
	to.dport = flow.nat.dport;
	if (flow.tunnel_node) {
		/* the hook sends it through the tunnel as a later packet of the flow (from_host:
		 * flow4_tunnel_first): the tunnel's frames on top of this one would not fit the
		 * 512-byte BPF stack */
		*verdict = WEIR_TC_TUNNEL_FIRST;
	} else {
		if (nat4_rewrite(skb, pkt, &to)) {
			*verdict = WEIR_TC_DROP;
			return WEIR_REASON_NAT_FAILED;
		}
		*verdict = forward4(skb, pkt, flow.ifindex);
	}
	if (lb4_count_new_flow(fe->id, to.daddr, to.dport))
		count(hook, WEIR_REASON_LB_STATS_FULL, 0);
	return (flow.extra_flags & WEIR_CT_HAIRPIN) ? WEIR_REASON_HAIRPIN : WEIR_REASON_SERVICE_NAT;
}

/**
 * flow4_track_new - the first packet of a flow to no frontend, under ct_track_all: policy,
 * then an entry pair that rewrites nothing, so its later packets and replies hit conntrack
 *
 * A packet without an entry that does not start a flow (a mid-stream TCP segment, an echo
 * reply, SCTP) belongs to a flow tracking did not see start: without policy it passes
 * untracked. Under policy it is decided like a first packet and, when allowed, tracked from
 * there on: a connection the policy denies gets no packet through, whether its entry was
 * flushed, evicted, or it began before weir ran.
 * @hook: the calling hook (enum weir_hook)
 * @verdict: set to the TC verdict
 *
 * Returns the reason to count. A slow path, as flow4_new.
 */
__weir_slow_path int flow4_track_new(struct __sk_buff *skb, const struct packet *pkt, __u32 hook,
				     int *verdict)
{
	struct ct4_flow flow;
	enum weir_reason reason;

	if (!pkt || !verdict || !ct_track_all)
		return WEIR_REASON_PASS;
	if (!policy_enabled && !ct_starts_flow(pkt))
		return WEIR_REASON_PASS;
	ct4_flow_untranslated(pkt, &flow);
	reason = policy4_new_flow(pkt, hook, &flow);
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}
	if (ct4_create(&flow, pkt, bpf_ktime_get_ns()))
		return WEIR_REASON_CT_TRACK_FAILED; /* nothing to translate: pass it untracked */
	*verdict = forward4(skb, pkt, flow.ifindex);
	return WEIR_REASON_CT_TRACKED_NEW;
}

/**
  * flow4_tunnel_new - the first packet this node sees of a flow another node sent through
 * the tunnel (decapsulated; what it carried in skb->cb, tunnel4_decap), then the packet on
 * to its backend. Any packet starts one (a SYN
 * or not): the reply must find its way whatever this node missed (its weir restarted, the
 * entry was evicted).
 *   tunnel mode: the packet is already translated; an entry pair that rewrites nothing,
 *     whose reply direction goes back through the tunnel to the ingress node
 *   DSR: the packet is as the client sent it; a NAT'd pair to the backend the ingress node
 *     named, whose replies leave this node for the client from the frontend's address
 */
__weir_slow_path int flow4_tunnel_new(struct __sk_buff *skb, const struct packet *pkt, int *verdict)
{
	struct tunnel4_meta m, *meta = &m;
	enum weir_reason reason;
	struct nat4_target to;
	struct ct4_flow flow;

	if (!skb || !pkt || !verdict)
		return WEIR_REASON_PASS;
	tunnel4_meta_load(skb, meta);
	ct4_flow_untranslated(pkt, &flow);
	flow.extra_flags = WEIR_CT_TUNNEL;
	if (meta->mode == WEIR_TUNNEL_MODE_DSR) {
		flow.nat.daddr = meta->backend;
		flow.nat.dport = meta->backend_port;
		flow.nat_flags = WEIR_CT_DNAT;
		flow.extra_flags |= WEIR_CT_DSR;
	} else {
		flow.reply_tunnel_node = meta->peer;
	}
	/* the ingress policy of the backend, against the client's own address */
	reason = policy4_new_flow(pkt, WEIR_HOOK_FROM_HOST, &flow);
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}
	forward4_plan(skb, &flow, WEIR_HOOK_TUNNEL); /* the local redirect only */
	/* DSR: the replies go to the client from here; tunnel: back through the tunnel */
	flow.reply_ifindex = flow.nat_flags ? forward4_egress(skb, flow.orig.daddr, flow.orig.saddr,
							      flow.orig.protocol)
					    : 0;
	if (ct4_create(&flow, pkt, bpf_ktime_get_ns())) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_CT_CREATE_FAILED;
	}
	if (flow.nat_flags) {
		to.saddr = flow.nat.saddr;
		to.daddr = flow.nat.daddr;
		to.sport = flow.nat.sport;
		to.dport = flow.nat.dport;
		if (nat4_rewrite(skb, pkt, &to)) {
			*verdict = WEIR_TC_DROP;
			return WEIR_REASON_NAT_FAILED;
		}
	}
	*verdict = forward4(skb, pkt, flow.ifindex);
	return flow.nat_flags ? WEIR_REASON_SERVICE_NAT : WEIR_REASON_CT_TRACKED_NEW;
}

/* flow4_new as the hooks call it: the steps it leaves to the hook's own frame (the tunnel's
 * first packet, a reject) are taken here, in the caller, where the stack has room. */
static __always_inline enum weir_reason flow4_new_at_hook(struct __sk_buff *skb,
							  const struct packet *pkt,
							  const struct weir_frontend4 *fe,
							  __u32 origin, int *verdict)
{
	enum weir_reason reason = flow4_new(skb, pkt, fe, origin, verdict);

	if (*verdict == WEIR_TC_TUNNEL_FIRST)
		return flow4_tunnel_first(skb, pkt, reason, origin & 0xffff, verdict);
	if (*verdict == WEIR_TC_REJECT_PENDING)
		return flow4_reject(skb, pkt, verdict);
	return reason;
}

#endif
