/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bench: a stand-in for weir's XDP prefilter (bpf-c/xdp_prefilter.c, program
 * weir_xdp_prefilter) for bench/xdp-drop.ts while the real object is not built:
 * the same ABI maps (include/weir/host_policy.h, written by the bench as the
 * daemon writes them) and the same lookups per packet: the interface's host
 * endpoint, the inbound failsafe LPM, the UNTRACKED_IN chain, then a bpf_loop
 * walk of its rules (array lookup, protocol and port, a source-set LPM lookup),
 * the deciding rule's per-CPU stats. IPv4 UDP/TCP only, no metadata, no
 * weir_counters: what is left out costs less than what is kept. */
#include <linux/types.h>
#include <linux/bpf.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <weir/host_policy.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct weir_hep_iface_key);
	__type(value, struct weir_hep_iface);
} weir_hep_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct weir_hep_chain_key);
	__type(value, struct weir_hep_chain);
} weir_hep_chains SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct weir_host_rule);
} weir_host_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct weir_host_set4_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} weir_host_sets4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__type(key, struct weir_failsafe4_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} weir_failsafe4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct weir_host_rule_stats);
} weir_host_rule_stats SEC(".maps");

struct walk {
	__u32 first, saddr, proto, dport, rule;
	int verdict; /* -1: no match yet */
};

static __always_inline int in_set(__u32 set, __u32 addr)
{
	struct weir_host_set4_key k = {
		.prefixlen = WEIR_HOST_SET_FIXED_BITS + 32, .set = set, .address = addr};

	return bpf_map_lookup_elem(&weir_host_sets4, &k) != NULL;
}

static long step(__u64 i, void *data)
{
	struct walk *w = data;
	__u32 idx = w->first + (__u32)i;
	struct weir_host_rule *r = bpf_map_lookup_elem(&weir_host_rules, &idx);

	if (!r)
		return 1;
	if ((r->flags & WEIR_HOST_RULE_PROTOCOL) && r->protocol != w->proto)
		return 0;
	if ((r->flags & WEIR_HOST_RULE_DPORTS) &&
	    (w->dport < r->dport_min || w->dport > r->dport_max))
		return 0;
	if (r->src_set && !in_set(r->src_set, w->saddr))
		return 0;
	if (r->src_not_set && in_set(r->src_not_set, w->saddr))
		return 0;
	w->verdict = r->action;
	w->rule = idx;
	return 1;
}

SEC("xdp")
int weir_xdp_prefilter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *l4 = (void *)(ip + 1); /* TCP's ports sit at the same offsets */
	struct weir_hep_iface_key ik = {.ifindex = ctx->ingress_ifindex};
	struct weir_failsafe4_key fk = {.prefixlen = WEIR_FAILSAFE_FIXED_BITS + 32,
					.direction = WEIR_FAILSAFE_IN};
	struct weir_hep_chain_key ck = {.kind = WEIR_CHAIN_UNTRACKED_IN};
	struct weir_host_rule_stats *st;
	struct weir_hep_iface *iface;
	struct weir_hep_chain *chain;
	struct walk w = {.verdict = -1};

	if ((void *)(l4 + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return XDP_PASS;
	if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	iface = bpf_map_lookup_elem(&weir_hep_ifaces, &ik);
	if (!iface)
		return XDP_PASS;
	fk.protocol = ip->protocol;
	fk.port = l4->dest;
	fk.address = ip->saddr;
	if (bpf_map_lookup_elem(&weir_failsafe4, &fk))
		return XDP_PASS;
	ck.hep = iface->hep;
	chain = bpf_map_lookup_elem(&weir_hep_chains, &ck);
	if (!chain)
		return XDP_PASS;
	w.first = chain->first;
	w.saddr = ip->saddr;
	w.proto = ip->protocol;
	w.dport = bpf_ntohs(l4->dest);
	bpf_loop(chain->count, step, &w, 0);
	if (w.verdict < 0)
		return XDP_PASS;
	st = bpf_map_lookup_elem(&weir_host_rule_stats, &w.rule);
	if (st) {
		st->packets++;
		st->bytes += ctx->data_end - ctx->data;
	}
	return w.verdict == WEIR_HOST_DENY ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
