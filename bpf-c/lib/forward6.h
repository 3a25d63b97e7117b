/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The forward stage for IPv6, as forward.h's for IPv4: a service flow that stays on this node
 * (the kernel routes its backend to a workload interface in weir_ifaces) is redirected
 * interface to interface in both directions, past the host's IP stack (and its conntrack,
 * which would see half a flow: ip6tables' ctstate INVALID drops), the hop limit decremented
 * as a router does. Everything else (a backend elsewhere, tracked-only flows, a hop limit
 * running out) passes to the stack, which routes it; a NodePort/externalIP/LoadBalancer flow to
 * a backend on another node goes through the tunnel (tunnel6.h). A pod's flow to a backend
 * on another node takes the stack's route. */
#ifndef WEIR_LIB_FORWARD6_H
#define WEIR_LIB_FORWARD6_H

#include "compiler.h"
#include "conntrack6.h"
#include "forward.h"
#include "ifaces.h"
#include "parse.h"
#include "tunnel6.h"
#include <weir/forward.h>

#define IPV6_HOP_LIMIT_OFF 7

/* The interface the kernel routes @dst to from @src (a forwarding lookup from the packet's
 * interface, for @protocol), or 0 when it does not. */
static __always_inline __u32 forward6_egress(struct __sk_buff *skb, const void *src,
					     const void *dst, __u8 protocol)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET6;
	fib.ifindex = skb->ifindex;
	fib.l4_protocol = protocol;
	__builtin_memcpy(fib.ipv6_src, src, 16);
	__builtin_memcpy(fib.ipv6_dst, dst, 16);
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return 0;
	return fib.ifindex;
}

/* The tunnel part of forward6_plan: 1 when @flow's backend is on another node (the flow then
 * crosses the tunnel to it, the replies back out the interface the client came in on), else 0. */
static __always_inline int forward6_plan_tunnel(struct __sk_buff *skb, struct ct6_flow *flow)
{
	const struct weir_tunnel6 *remote;

	remote = tunnel6_node_of(flow->nat.daddr);
	if (!remote || ip6_is_zero(remote->node_ip))
		return 0;
	ip6_copy(flow->tunnel_node, remote->node_ip);
	flow->reply_ifindex = skb->ifindex;
	flow->extra_flags |= WEIR_CT_TUNNEL;
	if (tunnel6_mode_for(flow->orig.saddr) == WEIR_TUNNEL_MODE_DSR)
		flow->extra_flags |= WEIR_CT_DSR;
	return 1;
}

/**
 * forward6_plan - the first packet of a service flow, backend chosen, not yet rewritten
 * (@hook: where it entered; WEIR_HOOK_TUNNEL: decapsulated, the local redirect only), as
 * forward4_plan: from a host interface to a backend on another node (weir_tunnel6), through
 * the tunnel to it; a backend on a workload interface of this node gets both directions
 * redirected (the reply to the interface the client's packet came in on). A global function:
 * its lookups' frame is its own, not flow6_new's (whose callees, policy's included, share what
 * is left of the 512-byte stack). Returns 0.
 */
__weir_slow_path int forward6_plan(struct __sk_buff *skb, struct ct6_flow *flow, __u32 hook)
{
	struct weir_iface *to;
	__u32 out;

	if (!skb || !flow)
		return 0;
	if (hook == WEIR_HOOK_FROM_HOST && forward6_plan_tunnel(skb, flow))
		return 0;
	out = forward6_egress(skb, flow->nat.saddr, flow->nat.daddr, flow->nat.protocol);
	if (!out)
		return 0;
	to = bpf_map_lookup_elem(&weir_ifaces, &out);
	if (!to || !(to->flags & WEIR_IFACE_WORKLOAD))
		return 0;
	flow->ifindex = out;
	flow->reply_ifindex = skb->ifindex;
	return 0;
}

/* Decrements the hop limit as a router does (IPv6 has no header checksum). Returns 0, or -1
 * when the packet must not be forwarded here (hop limit 1 or less: the stack answers time
 * exceeded; or a failed rewrite). */
static __always_inline int forward6_dec_hop_limit(struct __sk_buff *skb, const struct packet *pkt)
{
	__u8 hops = pkt->ttl;

	if (hops <= 1)
		return -1;
	hops -= 1;
	return bpf_skb_store_bytes(skb, pkt->l3_off + IPV6_HOP_LIMIT_OFF, &hops, 1, 0) ? -1 : 0;
}

/**
 * forward6_redirect - a later packet of a flow with an interface to go to, as
 * forward4_redirect: the FIB's next hop toward the (translated) destination out of @ifindex,
 * a plain redirect with the MACs written when the kernel has the neighbour, else
 * bpf_redirect_neigh with the next hop. A global function: its lookup's frame is its own.
 */
__weir_slow_path int forward6_redirect(struct __sk_buff *skb, __u32 l3_off, __u32 ifindex)
{
	struct bpf_fib_lookup fib = {};
	struct ipv6hdr ip;
	long rc;

	if (!skb || !ifindex || bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)))
		return WEIR_TC_PASS;
	fib.family = AF_INET6;
	fib.ifindex = ifindex;
	fib.l4_protocol = ip.nexthdr;
	__builtin_memcpy(fib.ipv6_src, &ip.saddr, 16);
	__builtin_memcpy(fib.ipv6_dst, &ip.daddr, 16);
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	return forward_to_next_hop(skb, &fib, rc, ifindex);
}

/* A later packet of a flow, already translated: its entry's interface, else the stack. */
static __always_inline int forward6_established(struct __sk_buff *skb, const struct packet *pkt,
						__u32 ifindex)
{
	if (!ifindex || forward6_dec_hop_limit(skb, pkt))
		return WEIR_TC_PASS;
	return forward6_redirect(skb, pkt->l3_off, ifindex);
}

/* The first packet of a flow, already translated (bpf_redirect_neigh finds the route: the
 * frames of flow6_new and a FIB lookup together would not fit the stack). */
static __always_inline int forward6(struct __sk_buff *skb, const struct packet *pkt, __u32 ifindex)
{
	if (!ifindex || forward6_dec_hop_limit(skb, pkt))
		return WEIR_TC_PASS;
	return bpf_redirect_neigh(ifindex, NULL, 0, 0);
}

#endif
