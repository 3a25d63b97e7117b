/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_from_pod6: TC ingress on the host side of a workload (pod) interface for IPv6, the
 * second program of the interface's TCX chain: weir_from_pod hands it every IPv6 packet
 * (WEIR_TC_NEXT) and it hands back anything else. The IPv6 service path, as from_pod's:
 *
 *   parse, accept (lb6_accept: IPv6 TCP/UDP/ICMPv6/SCTP, no fragment)
 *   -> policy (lib/policy.h: IPv6 fails closed for isolated pods)
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/conntrack6.h"
#include "lib/lb6.h"
#include "lib/policy.h"
#include "lib/btf_anchor.h"

SEC("tc")
int weir_from_pod6(struct __sk_buff *skb)
{
	enum weir_reason reason;
	struct packet pkt;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	if (pkt.l3_proto != ETH_P_IPV6)
		return WEIR_TC_NEXT;
	reason = lb6_accept(skb, &pkt, reason);
	if (!reason)
		return policy6_stage(&pkt, WEIR_HOOK_FROM_POD);
	count(WEIR_HOOK_FROM_POD, reason, pkt.len);
	return WEIR_TC_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
