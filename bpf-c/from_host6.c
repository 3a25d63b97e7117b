/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_from_host6: TC ingress of a host interface for IPv6, the second program of its TCX
 * chain: weir_from_host hands it every IPv6 packet (WEIR_TC_NEXT) and it hands back anything
 * else. NodePorts on the node's IPv6 addresses, externalIPs and LoadBalancer IPs, ClusterIPs
 * routed to the node, replies of flows NAT'd here, as from_host's:
 *
 *   parse, accept (lb6_accept: IPv6 TCP/UDP/ICMPv6/SCTP, no fragment)
 *   -> neighbour discovery: passed untouched
 *   -> ICMPv6 error about a NAT'd flow: translated back (icmp6_error.h)
 *   -> conntrack (wire tuple, conntrack6.h)
 *        hit:  NAT as the entry says -> forward
 *        miss: frontend EXTERNAL scope (eTP: Local), then INTERNAL
 *                -> admit (drop | reject out the same interface: TCP RST, else ICMPv6 port
 *                   unreachable)
 *                -> select backend -> policy -> create conntrack (NODEPORT) -> DNAT, no SNAT
 *                -> forward
 *              no frontend: ct_track_all -> policy -> create conntrack -> forward
 *                                                                     (lib/flow6.h)
 *
 * No SNAT: the backend sees the client's IPv6 address. A local backend's replies are reverse
 * NATed by from_pod6 on its interface. A remote backend's flow goes through the tunnel
 * (tunnel6.h, flow6.h). Before all this, weir's tunnel packets with IPv6 inside, under either
 * outer header (from_host hands over the IPv4-outer ones): decapsulated, then the inner packet
 * as its entry says, or a new pair for it (flow6_tunnel_new).
 *
 * Host endpoint policy (issue 17; lib/host_ingress.h) as from_host's, on an interface a host
 * endpoint covers: UNTRACKED_IN before conntrack (neighbour discovery always passes), then for
 * the first packet of a flow failsafe, PREDNAT_IN, NORMAL_IN or FORWARD_IN (host6_stages).
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/flow6.h"
#include "lib/monitor.h"
#include "lib/host_ingress.h"
#include "lib/btf_anchor.h"

/* no host endpoint covers the interface (or host policy is done with the packet) */
#define HOST_NO_HEP 0xffffffffu

/* flow6_stages (flow6.h) with host policy between the conntrack miss and the frontend's NAT,
 * for the host endpoint @hep (HOST_NO_HEP: flow6_stages exactly) */
static __always_inline enum weir_reason
host6_stages(struct __sk_buff *skb, const struct packet *pkt, __u32 hep, int *verdict)
{
	__u32 origin = FLOW6_ORIGIN(WEIR_HOOK_FROM_HOST, WEIR_CT_NODEPORT);
	struct weir_frontend6 *fe;
	struct weir_ct6 *ct;

	if (icmp6_is_nd(pkt))
		return WEIR_REASON_PASS;
	if (icmp6_is_error_packet(pkt))
		return icmp6_error_stage(skb, pkt, verdict);

	ct = ct6_lookup_flow(pkt);
	if (ct)
		return flow6_established(skb, pkt, ct, WEIR_HOOK_FROM_HOST, verdict);

	fe = lb6_lookup_frontend(pkt, WEIR_SCOPE_EXTERNAL);
	if (!fe)
		fe = lb6_lookup_frontend(pkt, WEIR_SCOPE_INTERNAL);
	if (hep != HOST_NO_HEP && ct_starts_flow(pkt)) {
		enum weir_reason denied = host_new_flow_in(skb, pkt, hep, fe != NULL);

		if (denied) {
			*verdict = WEIR_TC_DROP;
			return denied;
		}
	}
	if (fe)
		return flow6_new_at_hook(skb, pkt, fe, origin, verdict);
	if (ct_track_all)
		return flow6_track_new(skb, pkt, WEIR_HOOK_FROM_HOST, verdict);
	return WEIR_REASON_PASS;
}

/* The host endpoint covering the interface, its untracked verdict taken, as from_host4_hep */
static __always_inline __u32 from_host6_hep(struct __sk_buff *skb, struct packet *pkt,
					    enum weir_reason *reason, int *verdict)
{
	struct weir_hep_iface *iface = host_hep_of(skb->ifindex);

	if (!iface || icmp6_is_nd(pkt))
		return HOST_NO_HEP;
	switch (host_untracked_in(skb, pkt, iface->hep)) {
	case HOST_DENY:
		*verdict = WEIR_TC_DROP;
		*reason = WEIR_REASON_HOST_UNTRACKED_DENIED;
		return HOST_NO_HEP;
	case HOST_ALLOW:
		/* never tracked, unless NAT needs the entry: a frontend's packet goes on */
		if (!lb6_lookup_frontend(pkt, WEIR_SCOPE_EXTERNAL) &&
		    !lb6_lookup_frontend(pkt, WEIR_SCOPE_INTERNAL))
			*reason = WEIR_REASON_HOST_UNTRACKED_ALLOWED;
		return HOST_NO_HEP;
	default:
		return iface->hep;
	}
}

/* A tunnel packet (tunnel6_candidate): -1 when it is not weir's (handled as any packet), else
 * the reason to count, *verdict set, as from_host's from_tunnel4. */
static __always_inline int from_tunnel6(struct __sk_buff *skb, struct packet *pkt, int *verdict)
{
	struct weir_ct6 *ct;
	int reason;

	reason = tunnel6_decap(skb, pkt);
	if (reason) {
		if (reason > 0)
			*verdict = WEIR_TC_DROP;
		return reason;
	}
	ct = ct6_lookup_flow(pkt);
	if (ct)
		return flow6_established(skb, pkt, ct, WEIR_HOOK_FROM_HOST, verdict);
	return flow6_tunnel_new(skb, pkt, verdict);
}

SEC("tc")
int weir_from_host6(struct __sk_buff *skb)
{
	int verdict = WEIR_TC_PASS;
	enum weir_reason reason;
	struct packet pkt;
	int tunnel;
	__u32 hep;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	if (tunnel6_candidate(&pkt, reason)) {
		tunnel = from_tunnel6(skb, &pkt, &verdict);
		if (tunnel >= 0) {
			tunnel6_too_big_at_hook(skb, &pkt, &verdict);
			count(WEIR_HOOK_FROM_HOST, tunnel, pkt.len);
			monitor6(skb, &pkt, WEIR_HOOK_FROM_HOST, tunnel);
			return verdict;
		}
	}
	if (pkt.l3_proto != ETH_P_IPV6)
		return WEIR_TC_NEXT;
	reason = lb6_accept(skb, &pkt, reason);
	hep = reason ? HOST_NO_HEP : from_host6_hep(skb, &pkt, &reason, &verdict);
	if (!reason)
		reason = host6_stages(skb, &pkt, hep, &verdict);
	tunnel6_too_big_at_hook(skb, &pkt, &verdict); /* a packet too big for the tunnel */
	count(WEIR_HOOK_FROM_HOST, reason, pkt.len);
	monitor6(skb, &pkt, WEIR_HOOK_FROM_HOST, reason);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
