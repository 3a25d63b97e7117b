/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_from_pod: TC ingress on the host side of a workload (pod) interface, i.e. every
 * packet a pod sends. Service translation for pods whose socket calls the socket LB did
 * not translate, and reverse NAT of replies from local backends:
 *
 *   parse -> conntrack (wire tuple)  hit: rewrite as the entry says (DNAT / reverse NAT)
 *                                    miss: frontend {daddr, dport, proto, INTERNAL}
 *                                          -> drop | reject (ICMP back to the pod) | DNAT
 *         -> ICMP errors about NAT'd flows: translated back (icmp_error.h)
 *
 * Everything else passes to the stack, which routes it. Egress policy comes later.
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/lb.h"
#include "lib/icmp_error.h"
#include "lib/btf_anchor.h"

static __always_inline enum weir_reason from_pod4(struct __sk_buff *skb, struct packet *pkt,
						   int *verdict)
{
	struct weir_frontend4 *fe;
	struct weir_ct4_key key, fkey;
	struct weir_ct4 *ct;
	int ret;

	if (pkt->l4_proto == IPPROTO_ICMP && icmp4_is_error(pkt->icmp_type)) {
		ret = icmp4_error_revnat(skb, pkt);
		if (ret < 0)
			*verdict = WEIR_TC_DROP;
		return ret < 0 ? WEIR_REASON_NAT_FAILED
			       : ret ? WEIR_REASON_ICMP_ERROR_REVNAT : WEIR_REASON_PASS;
	}

	ct4_key_of(pkt, &key);
	ct = ct4_lookup(&key);
	if (ct) {
		if (ct4_syn_reopens(ct, pkt)) {
			ct4_forget(&key, ct); /* a new connection on old ports: balance it afresh */
		} else if (ct4_reply_is_stale(ct, pkt, &fkey)) {
			/* the answer to a connection that is not this entry's: leave it alone */
			bpf_map_delete_elem(&weir_ct4_v2, &fkey);
			bpf_map_delete_elem(&weir_ct4_v2, &key);
		} else {
			return lb4_established(skb, pkt, ct, verdict);
		}
	}

	fe = lb4_lookup_frontend(pkt, WEIR_SCOPE_INTERNAL);
	if (fe)
		return lb4_new_flow(skb, pkt, WEIR_HOOK_FROM_POD, fe, 0, verdict);
	return WEIR_REASON_PASS;
}

SEC("tc")
int weir_from_pod(struct __sk_buff *skb)
{
	int verdict = WEIR_TC_PASS;
	enum weir_reason reason;
	struct packet pkt;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	reason = lb4_accept(skb, &pkt, reason);
	if (!reason)
		reason = from_pod4(skb, &pkt, &verdict);
	count(WEIR_HOOK_FROM_POD, reason, pkt.len);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
