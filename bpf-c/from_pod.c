/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_from_pod: TC ingress on the host side of a workload (pod) interface, i.e. every
 * packet a pod sends. Service translation for pods whose socket calls the socket LB did
 * not translate, reverse NAT of replies from local backends, and (ct_track_all)
 * conntrack of every flow a pod starts:
 *
 *   parse -> source check: not the pod's own address: drop (spoofed_source; lib/pod_source.h)
 *   -> accept (lb4_accept: IPv4 TCP/UDP/ICMP/SCTP, no fragment)
 *   -> ICMP error about a NAT'd flow: translated back (icmp_error.h)
 *   -> conntrack (wire tuple)
 *        hit:  NAT as the entry says (DNAT / reverse NAT / none) -> forward
 *        miss: frontend {daddr, dport, proto, INTERNAL}
 *                -> admit (drop | reject back to the pod) -> select backend -> policy
 *                -> create conntrack -> DNAT -> forward                 (lib/flow.h)
 *              no frontend: ct_track_all -> policy -> create conntrack -> forward
 *
 * Forward passes to the stack, which routes it. Egress policy comes in the policy stage.
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/lb.h"
#include "lib/flow.h"
#include "lib/icmp_error.h"
#include "lib/monitor.h"
#include "lib/pod_source.h"
#include "lib/btf_anchor.h"

static __always_inline enum weir_reason from_pod4(struct __sk_buff *skb, struct packet *pkt,
						  int *verdict)
{
	struct weir_frontend4 *fe;
	struct weir_ct4 *ct;

	if (icmp4_is_error_packet(pkt))
		return icmp4_error_stage(skb, pkt, verdict);

	ct = ct4_lookup_flow(pkt);
	if (ct)
		return flow4_established(skb, pkt, ct, WEIR_HOOK_FROM_POD, verdict);

	fe = lb4_lookup_frontend(pkt, WEIR_SCOPE_INTERNAL);
	if (fe)
		return flow4_new_at_hook(skb, pkt, fe, FLOW4_ORIGIN(WEIR_HOOK_FROM_POD, 0),
					 verdict);
	if (ct_track_all)
		return flow4_track_new(skb, pkt, WEIR_HOOK_FROM_POD, verdict);
	return WEIR_REASON_PASS;
}

SEC("tc")
int weir_from_pod(struct __sk_buff *skb)
{
	int verdict = WEIR_TC_PASS;
	enum weir_reason reason;
	struct packet pkt;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	if (pkt.l3_proto == ETH_P_IPV6)
		return WEIR_TC_NEXT; /* the IPv6 program after this one (from_pod6.c) */
	if (pkt.l3_proto == ETH_P_IP && !pod_source4_ok(skb, &pkt, reason)) {
		reason = WEIR_REASON_SPOOFED_SOURCE;
		verdict = WEIR_TC_DROP;
	} else {
		reason = lb4_accept(skb, &pkt, reason);
		if (!reason)
			reason = from_pod4(skb, &pkt, &verdict);
	}
	count(WEIR_HOOK_FROM_POD, reason, pkt.len);
	monitor4(skb, &pkt, WEIR_HOOK_FROM_POD, reason);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
