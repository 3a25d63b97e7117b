/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_to_pod: TC egress of a workload interface, i.e. every packet a pod receives.
 * Counts and passes for now; ingress policy lands here. Replies of NAT'd flows were
 * already reverse NATed where they entered the node (from_pod of the backend's
 * interface, or from_host). */
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
