/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_to_pod: TC egress of a workload interface, i.e. every packet a pod receives.
 * Replies of NAT'd flows were already reverse NATed where they entered the node
 * (from_pod of the backend's interface, or from_host), and every flow was tracked there
 * (ct_track_all), so this hook needs no NAT and no conntrack writes of its own:
 *
 *   today:      count -> pass
 *   with policy: parse -> conntrack (the entry written where the flow entered)
 *                  hit: cached ingress verdict (weir_ct4.policy) -> pass | drop
 *                  miss (a flow tracking did not see start) -> policy -> pass | drop
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/btf_anchor.h"

SEC("tc")
int weir_to_pod(struct __sk_buff *skb)
{
	count(WEIR_HOOK_TO_POD, WEIR_REASON_PASS, skb->len);
	return WEIR_TC_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
