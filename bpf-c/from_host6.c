/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_from_host6: TC ingress of a host interface for IPv6, the second program of its
 * TCX chain: weir_from_host hands it every IPv6 packet (WEIR_TC_NEXT) and it hands back
 * anything else. NodePorts on the node's IPv6 addresses and the rest of from_host's path:
 *
 *   parse -> weir's tunnel packet with IPv6 inside (either outer family): decapsulated
 *            (tunnel6.h), then the inner packet
 *   accept (lb6_accept: IPv6 TCP/UDP/ICMPv6/SCTP, no fragment)
 *   -> policy (lib/policy.h: IPv6 fails closed for isolated pods)
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/conntrack6.h"
#include "lib/lb6.h"
#include "lib/policy.h"
#include "lib/tunnel6.h"
#include "lib/btf_anchor.h"

SEC("tc")
int weir_from_host6(struct __sk_buff *skb)
{
	enum weir_reason reason;
	struct packet pkt;
	int tunnel;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	/* weir's tunnel packets with IPv6 inside, under either outer header (from_host hands
	 * over the IPv4 ones: tunnel4_decap's TUNNEL4_INNER_IPV6) */
	if (tunnel6_candidate(&pkt, reason)) {
		tunnel = tunnel6_decap(skb, &pkt);
		if (tunnel > 0) {
			count(WEIR_HOOK_FROM_HOST, tunnel, pkt.len);
			return WEIR_TC_DROP;
		}
		if (tunnel == 0)
			return policy6_stage(&pkt, WEIR_HOOK_FROM_HOST);
	}
	if (pkt.l3_proto != ETH_P_IPV6)
		return WEIR_TC_NEXT;
	reason = lb6_accept(skb, &pkt, reason);
	if (!reason)
		return policy6_stage(&pkt, WEIR_HOOK_FROM_HOST);
	count(WEIR_HOOK_FROM_HOST, reason, pkt.len);
	return WEIR_TC_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
