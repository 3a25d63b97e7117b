/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Host endpoint policy at TC ingress of a host interface (from_host): the two places the
 * hook asks it, both global functions so that their frames (the packet view, the walk) are
 * gone before the flow stages, which need the whole BPF stack, run:
 *
 *   host_untracked_in   every packet, before conntrack: what XDP left in the metadata, or
 *                       (no metadata: XDP off, TC fallback) failsafe, then UNTRACKED_IN
 *   host_new_flow_in    the first packet of a flow (conntrack miss that starts one), before
 *                       service NAT: failsafe, PREDNAT_IN on the original destination, then
 *                       NORMAL_IN (to this host) or FORWARD_IN (through it)
 *
 * Family-neutral: from_host and from_host6 both call them. */
#ifndef WEIR_LIB_HOST_INGRESS_H
#define WEIR_LIB_HOST_INGRESS_H

#include "compiler.h"
#include "counters.h"
#include "parse.h"
#include "policy.h"
#include "host_policy.h"

/* XDP's enum weir_xdp_verdict from the metadata in front of the packet, or -1: none there. */
static __always_inline int host_xdp_meta(struct __sk_buff *skb)
{
	struct weir_xdp_meta *meta = (void *)(long)skb->data_meta;

	if ((void *)(meta + 1) > (void *)(long)skb->data)
		return -1;
	if (meta->magic != WEIR_XDP_META_MAGIC)
		return -1;
	return meta->verdict;
}

/**
 * host_untracked_in - host endpoint @hep's untracked ingress verdict on @pkt
 *
 * Returns HOST_ALLOW (pass untracked), HOST_DENY (drop, the rule's stats bumped) or
 * HOST_NO_MATCH (on to conntrack and the rest: no rule decided, a failsafe port, or XDP
 * already walked the chain). A global function.
 */
__weir_slow_path int host_untracked_in(struct __sk_buff *skb, const struct packet *pkt, __u32 hep)
{
	struct host_pkt hp;
	int r;

	if (!skb || !pkt)
		return HOST_NO_MATCH;
	switch (host_xdp_meta(skb)) {
	case WEIR_XDP_UNTRACKED_ALLOW:
		return HOST_ALLOW;
	case -1:
		break;
	default:
		return HOST_NO_MATCH; /* XDP walked it: no match, or failsafe */
	}
	if (!host_has_chain(hep, WEIR_CHAIN_UNTRACKED_IN))
		return HOST_NO_MATCH;
	host_pkt_of(&hp, pkt);
	if (host_failsafe(WEIR_FAILSAFE_IN, &hp))
		return HOST_NO_MATCH;
	r = host_chain_walk(&hp, hep, WEIR_CHAIN_UNTRACKED_IN);
	return HOST_VERDICT(r) == HOST_NO_CHAIN ? HOST_NO_MATCH : HOST_VERDICT(r);
}

/* Is @hp's destination this host? The ipcache says so for the node's addresses (identity
 * host) and names pods and other nodes; an address it does not know is asked of the FIB: a
 * route that forwards it (success) means through, anything else (local, broadcast, no
 * route) is the host's to take or refuse. */
static __always_inline int host_dest_local(struct __sk_buff *skb, const struct host_pkt *hp)
{
	struct weir_ipcache4_host_key k4 = {.address = hp->daddr[0]};
	struct weir_ipcache6_host_key k6;
	struct bpf_fib_lookup fib = {};
	struct weir_ipcache4 *info;
	long rc;

	if (hp->family == 6) {
		__builtin_memcpy(k6.address, hp->daddr, 16);
		info = bpf_map_lookup_elem(&weir_ipcache6_hosts, &k6);
	} else {
		info = bpf_map_lookup_elem(&weir_ipcache4_hosts, &k4);
	}
	if (info && info->identity != WEIR_IDENTITY_WORLD)
		return info->identity == WEIR_IDENTITY_HOST;
	fib.ifindex = skb->ifindex;
	fib.l4_protocol = hp->protocol;
	fib.sport = hp->sport;
	fib.dport = hp->dport;
	if (hp->family == 6) {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, hp->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, hp->daddr, 16);
	} else {
		fib.family = AF_INET;
		fib.ipv4_src = hp->saddr[0];
		fib.ipv4_dst = hp->daddr[0];
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	return rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_FRAG_NEEDED &&
	       rc != BPF_FIB_LKUP_RET_NO_NEIGH;
}

/**
 * host_new_flow_in - host endpoint @hep's verdict on the first packet of a flow, @frontend
 * when it is to a service frontend (NAT'd on to a backend: forwarded)
 *
 * Counts host_failsafe / host_policy_allowed (not packet verdicts) itself.
 * Returns 0 (on to service NAT and pod policy) or the reason to drop the packet with. A global
 * function.
 */
__weir_slow_path int host_new_flow_in(struct __sk_buff *skb, const struct packet *pkt, __u32 hep,
				      __u32 frontend)
{
	struct host_pkt hp;
	int forwarded, r;

	if (!skb || !pkt)
		return 0;
	host_pkt_of(&hp, pkt);
	if (host_failsafe(WEIR_FAILSAFE_IN, &hp)) {
		count(WEIR_HOOK_FROM_HOST, WEIR_REASON_HOST_FAILSAFE, hp.len);
		return 0;
	}
	/* preDNAT: the original destination, before service NAT; an allow skips the rest */
	r = host_chain_walk(&hp, hep, WEIR_CHAIN_PREDNAT_IN);
	if (HOST_VERDICT(r) == HOST_DENY)
		return WEIR_REASON_HOST_PREDNAT_DENIED;
	if (HOST_VERDICT(r) == HOST_ALLOW) {
		count(WEIR_HOOK_FROM_HOST, WEIR_REASON_HOST_POLICY_ALLOWED, hp.len);
		return 0;
	}
	/* a frontend's flow goes on to its backend (a pod, or another node): forwarded. Judged
	 * here, before NAT, on the packet as it arrived: the backend is picked later */
	forwarded = frontend || !host_dest_local(skb, &hp);
	r = host_chain_walk(&hp, hep, forwarded ? WEIR_CHAIN_FORWARD_IN : WEIR_CHAIN_NORMAL_IN);
	if (HOST_VERDICT(r) == HOST_DENY)
		return forwarded ? WEIR_REASON_HOST_FORWARD_DENIED : WEIR_REASON_HOST_POLICY_DENIED;
	if (HOST_VERDICT(r) == HOST_ALLOW)
		count(WEIR_HOOK_FROM_HOST, WEIR_REASON_HOST_POLICY_ALLOWED, hp.len);
	/* no chain (FORWARD_IN: no applyOnForward policy) or no match: allowed */
	return 0;
}

#endif
