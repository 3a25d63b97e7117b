/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_from_pod6: TC ingress on the host side of a workload (pod) interface for IPv6, the
 * second program of the interface's TCX chain: weir_from_pod hands it every IPv6 packet
 * (WEIR_TC_NEXT) and it hands back anything else. The IPv6 service path, as from_pod's:
 *
 *   parse -> source check: not the pod's own address: drop (spoofed_source; lib/pod_source.h)
 *   -> accept (lb6_accept: IPv6 TCP/UDP/ICMPv6/SCTP, no fragment)
 *   -> neighbour discovery: passed untouched
 *   -> ICMPv6 error about a NAT'd flow: translated back (icmp6_error.h)
 *   -> conntrack (wire tuple, conntrack6.h)
 *        hit:  NAT as the entry says (DNAT / reverse NAT / none) -> forward
 *        miss: frontend {daddr, dport, proto, INTERNAL}
 *                -> admit (drop | reject back to the pod: TCP RST, else ICMPv6 port unreachable)
 *                -> select backend
 *                -> policy -> create conntrack -> DNAT (+ SNAT for hairpin) -> forward
 *              no frontend: ct_track_all -> policy -> create conntrack -> forward
 *                                                                     (lib/flow6.h)
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/flow6.h"
#include "lib/monitor.h"
#include "lib/pod_source.h"
#include "lib/btf_anchor.h"

SEC("tc")
int weir_from_pod6(struct __sk_buff *skb)
{
	int verdict = WEIR_TC_PASS;
	enum weir_reason reason;
	struct packet pkt;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	if (pkt.l3_proto != ETH_P_IPV6)
		return WEIR_TC_NEXT;
	if (!pod_source6_ok(skb, &pkt, reason)) {
		reason = WEIR_REASON_SPOOFED_SOURCE;
		verdict = WEIR_TC_DROP;
	} else {
		reason = lb6_accept(skb, &pkt, reason);
		if (!reason)
			reason = flow6_stages(skb, &pkt, FLOW6_ORIGIN(WEIR_HOOK_FROM_POD, 0), 0,
					      &verdict);
		tunnel6_too_big_at_hook(skb, &pkt, &verdict); /* a reply too big for the tunnel */
	}
	count(WEIR_HOOK_FROM_POD, reason, pkt.len);
	monitor6(skb, &pkt, WEIR_HOOK_FROM_POD, reason);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
