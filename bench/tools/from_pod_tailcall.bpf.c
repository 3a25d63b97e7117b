/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bench only: weir_from_pod with the new-flow path behind a tail call instead of a global
 * function, the way Calico (CALI_JUMP_TO) and Cilium (tail_call_internal) split their
 * programs, so bench/pipeline.ts can measure what that choice would cost: the parsed
 * packet and the frontend go through a per-CPU scratch map (a tail call keeps only the
 * skb), and the new-flow program counts and returns the verdict itself. Built with
 * WEIR_SLOW_PATH_INLINE (every stage inlined into the program that runs it); never loaded
 * by weir. The production hook is bpf-c/from_pod.c. */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/lb.h"
#include "lib/flow.h"
#include "lib/icmp_error.h"
#include "lib/btf_anchor.h"

struct flow4_scratch {
	struct packet pkt;
	struct weir_frontend4 fe;
	__u32 origin;
	__u32 has_fe;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow4_scratch);
} weir_scratch4 SEC(".maps");

SEC("tc")
int weir_from_pod_new_flow(struct __sk_buff *skb)
{
	struct flow4_scratch *s;
	int verdict = WEIR_TC_PASS;
	__u32 zero = 0;
	int reason;

	s = bpf_map_lookup_elem(&weir_scratch4, &zero);
	if (!s)
		return WEIR_TC_PASS;
	reason = flow4_new_at_hook(skb, &s->pkt, s->has_fe ? &s->fe : NULL, s->origin, &verdict);
	count(WEIR_HOOK_FROM_POD, reason, s->pkt.len);
	return verdict;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32)); /* sizes, not BTF types: a PROG_ARRAY takes no BTF key */
	__array(values, int(void *));
} weir_jump4 SEC(".maps") = {
	.values = { [0] = (void *)&weir_from_pod_new_flow },
};

static __always_inline enum weir_reason from_pod4(struct __sk_buff *skb, struct packet *pkt, int *verdict)
{
	struct flow4_scratch *s;
	struct weir_frontend4 *fe;
	struct weir_ct4 *ct;
	__u32 zero = 0;

	if (icmp4_is_error_packet(pkt))
		return icmp4_error_stage(skb, pkt, verdict);

	ct = ct4_lookup_flow(pkt);
	if (ct)
		return flow4_established(skb, pkt, ct, WEIR_HOOK_FROM_POD, verdict);

	fe = lb4_lookup_frontend(pkt, WEIR_SCOPE_INTERNAL);
	if (fe || ct_track_all) {
		s = bpf_map_lookup_elem(&weir_scratch4, &zero);
		if (!s)
			return WEIR_REASON_PASS;
		s->pkt = *pkt;
		s->has_fe = !!fe;
		if (fe)
			s->fe = *fe;
		s->origin = FLOW4_ORIGIN(WEIR_HOOK_FROM_POD, 0);
		bpf_tail_call(skb, &weir_jump4, 0);
		/* only when the program array is empty */
	}
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
