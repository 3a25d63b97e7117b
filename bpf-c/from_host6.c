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
 * NATed by from_pod6 on its interface. No tunnel yet (IPv6 across nodes is a later step).
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/flow6.h"
#include "lib/btf_anchor.h"

SEC("tc")
int weir_from_host6(struct __sk_buff *skb)
{
	int verdict = WEIR_TC_PASS;
	enum weir_reason reason;
	struct packet pkt;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	if (pkt.l3_proto != ETH_P_IPV6)
		return WEIR_TC_NEXT;
	reason = lb6_accept(skb, &pkt, reason);
	if (!reason)
		reason =
			flow6_stages(skb, &pkt, FLOW6_ORIGIN(WEIR_HOOK_FROM_HOST, WEIR_CT_NODEPORT),
				     1, &verdict);
	count(WEIR_HOOK_FROM_HOST, reason, pkt.len);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
