/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The forward stage: where a packet goes once it is translated, decided once per flow and
 * kept in its conntrack entries, so established packets need no lookup to forward.
 *
 * A service flow that stays on this node (the kernel routes its backend to a workload
 * interface in weir_ifaces) is redirected interface to interface in both directions: the
 * forward direction to the backend's interface, the reply to the interface the client's
 * first packet came in on (a pod's, or the host interface an external client used), each
 * with bpf_redirect_neigh (the kernel's route and neighbour, TTL decremented as a router
 * does). Neither direction enters the host's IP stack, so the kernel's conntrack never sees
 * half of a flow whose other half weir rewrote: with iptables rules that drop ctstate
 * INVALID (kube-proxy's KUBE-FORWARD, many host firewalls) a reverse-NATed SYN-ACK that
 * the stack saw without its SYN was dropped. Everything else (a backend on another node,
 * tracked-only flows, a packet whose TTL runs out) passes to the stack, which routes it.
 *
 * The seam for the tunnel (issue 12): an entry with WEIR_CT_TUNNEL and a tunnel_node is
 * encapsulated toward that node and redirected to the underlay.
 */
#ifndef WEIR_LIB_FORWARD_H
#define WEIR_LIB_FORWARD_H

#include "compiler.h"
#include "conntrack.h"
#include "csum.h"
#include "ifaces.h"
#include "parse.h"
#include "tunnel.h"
#include <weir/forward.h>

/* The interface the kernel routes @dst to from @src (a forwarding lookup from the packet's
 * interface, for @protocol), or 0 when it does not. */
static __always_inline __u32 forward4_egress(struct __sk_buff *skb, __be32 src, __be32 dst,
					     __u8 protocol)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET;
	fib.ifindex = skb->ifindex;
	fib.l4_protocol = protocol;
	fib.ipv4_src = src;
	fib.ipv4_dst = dst;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return 0;
	return fib.ifindex;
}

/* forward4_plan - the first packet of a service flow, backend chosen, not yet rewritten
 * (@hook: where it entered; WEIR_HOOK_TUNNEL: decapsulated, the local redirect only):
 * - entered from a host interface (NodePort, externalIP, LoadBalancer IP), backend on
 *   another node (weir_tunnel4): through the tunnel to it, the replies back out the
 *   interface the client came in on;
 * - backend on this node: redirected interface to interface, both directions;
 * - from a pod, backend a pod on another node: redirected to the interface the node routes
 *   it to (the pod network reaches it, no tunnel needed), the replies (reverse NATed by
 *   from_host) straight to the client's interface. Both directions again, so the kernel's
 *   conntrack never sees half of it (kube-proxy's INVALID drop). A backend that is no pod of
 *   the cluster (an EndpointSlice to an outside address) keeps the stack, and its
 *   masquerading. */
static __always_inline void forward4_plan(struct __sk_buff *skb, struct ct4_flow *flow, __u32 hook)
{
	const struct weir_tunnel4 *remote;
	struct weir_iface *to;
	__u32 out;

	if (hook == WEIR_HOOK_FROM_HOST) {
		remote = tunnel4_node_of(flow->nat.daddr);
		if (remote && remote->node_ip) {
			flow->tunnel_node = remote->node_ip;
			flow->reply_ifindex = skb->ifindex;
			flow->extra_flags |= WEIR_CT_TUNNEL;
			if (tunnel4_mode_for(flow->orig.saddr) == WEIR_TUNNEL_MODE_DSR)
				flow->extra_flags |= WEIR_CT_DSR;
			return;
		}
	}

	out = forward4_egress(skb, flow->nat.saddr, flow->nat.daddr, flow->nat.protocol);
	if (!out)
		return;
	to = bpf_map_lookup_elem(&weir_ifaces, &out);
	if (!to || !(to->flags & WEIR_IFACE_WORKLOAD)) {
		if (hook != WEIR_HOOK_FROM_POD || !tunnel4_node_of(flow->nat.daddr))
			return;
	}
	flow->ifindex = out;
	flow->reply_ifindex = skb->ifindex;
}

/* Decrements the IPv4 TTL as a router does. Returns 0, or -1 when the packet must not be
 * forwarded here (TTL 1 or less: the stack answers time exceeded; or a failed rewrite). */
static __always_inline int forward4_dec_ttl(struct __sk_buff *skb, const struct packet *pkt)
{
	__u16 before, after;

	if (bpf_skb_load_bytes(skb, pkt->l3_off + 8, &before, sizeof(before)))
		return -1;
	if (*(__u8 *)&before <= 1)
		return -1;
	after = before;
	*(__u8 *)&after -= 1;
	if (bpf_l3_csum_replace(skb, pkt->l3_off + IPV4_CSUM_OFF, before, after, sizeof(after)))
		return -1;
	return bpf_skb_store_bytes(skb, pkt->l3_off + 8, &after, sizeof(after), 0) ? -1 : 0;
}

/* The end of forward4_redirect and forward6_redirect, after the FIB lookup of @fib (either
 * family) answered @rc: the MACs written and a plain redirect when the kernel has the
 * neighbour, else bpf_redirect_neigh with the next hop, else (no route) with none. */
static __always_inline int
forward_to_next_hop(struct __sk_buff *skb, const struct bpf_fib_lookup *fib, long rc, __u32 ifindex)
{
	struct bpf_redir_neigh nh = {};
	__u8 macs[2 * ETH_ALEN];

	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(macs, fib->dmac, ETH_ALEN);
		__builtin_memcpy(macs + ETH_ALEN, fib->smac, ETH_ALEN);
		if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0))
			return WEIR_TC_DROP;
		return bpf_redirect(fib->ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		nh.nh_family = fib->family;
		if (fib->family == AF_INET6)
			__builtin_memcpy(nh.ipv6_nh, fib->ipv6_dst, 16);
		else
			nh.ipv4_nh = fib->ipv4_dst;
		return bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
	}
	return bpf_redirect_neigh(ifindex, NULL, 0, 0);
}

/**
 * forward4_redirect - a later packet of a flow with an interface to go to: the FIB's next
 * hop toward the (translated) destination out of @ifindex and, when the kernel has that
 * neighbour, a plain redirect with the MACs written; else bpf_redirect_neigh with the next
 * hop. Either way the helper makes no route lookup of its own: bpf_redirect_neigh without a
 * next hop allocates a route per packet. A global function, so that its lookup's frame is
 * its own (the hook's and flow4_new's together are at the stack limit); first packets keep
 * bpf_redirect_neigh(ifindex, NULL) for that reason.
 */
__weir_slow_path int forward4_redirect(struct __sk_buff *skb, __u32 l3_off, __u32 ifindex)
{
	struct bpf_fib_lookup fib = {};
	struct iphdr ip;
	long rc;

	if (!skb || !ifindex || bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)))
		return WEIR_TC_PASS;
	fib.family = AF_INET;
	fib.ifindex = ifindex;
	fib.l4_protocol = ip.protocol;
	fib.ipv4_src = ip.saddr;
	fib.ipv4_dst = ip.daddr;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	return forward_to_next_hop(skb, &fib, rc, ifindex);
}

/* A later packet of a flow that does not cross the tunnel, already translated. */
static __always_inline int forward4_established(struct __sk_buff *skb, const struct packet *pkt,
						__u32 ifindex)
{
	if (!ifindex || forward4_dec_ttl(skb, pkt))
		return WEIR_TC_PASS;
	return forward4_redirect(skb, pkt->l3_off, ifindex);
}

/* Returns the TC verdict for @pkt, already translated, of a flow that does not cross the
 * tunnel (those go through flow4_tunnel_out). */
static __always_inline int forward4(struct __sk_buff *skb, const struct packet *pkt, __u32 ifindex)
{
	if (!ifindex || forward4_dec_ttl(skb, pkt))
		return WEIR_TC_PASS;
	return bpf_redirect_neigh(ifindex, NULL, 0, 0);
}

#endif
