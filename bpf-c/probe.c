/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The counting probe: parse, count, pass. Attach it anywhere (TC ingress or egress,
 * a cgroup's connect4) to see what crosses that point; it never changes a packet.
 * It is also the smallest complete weir object, the one the foundation tests load.
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/btf_anchor.h"

/* Which counter row this copy of the probe fills. Two loads of the same object with
 * different values tell apart which program handled a packet (the atomic-replace test). */
const volatile enum weir_hook probe_hook = WEIR_HOOK_PROBE;

/* The last connect() the cgroup probe saw, for tests and `weir` debugging. */
struct probe_connect {
	__be32 daddr; /* destination as the caller asked for it */
	__be16 dport;
	__u16 pad;
	__u64 cookie; /* socket cookie */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct probe_connect);
} weir_probe_last_connect SEC(".maps");

SEC("tc")
int weir_probe(struct __sk_buff *skb)
{
	struct packet pkt;
	enum weir_reason reason;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	count(probe_hook, reason, skb->len);
	return WEIR_TC_PASS;
}

/* The same probe at XDP: the earliest point a packet is seen, and the only hook whose
 * test runs accept frames shorter than an Ethernet header. */
SEC("xdp")
int weir_probe_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct packet pkt;
	enum weir_reason reason;

	reason = parse_packet(data, data_end, (__u32)(data_end - data), &pkt);
	count(probe_hook, reason, (__u32)(data_end - data));
	return XDP_PASS;
}

SEC("cgroup/connect4")
int weir_probe_connect4(struct bpf_sock_addr *ctx)
{
	struct probe_connect *last;
	__u32 zero = 0;

	count(probe_hook, WEIR_REASON_SOCK_CONNECT4, 0);
	last = bpf_map_lookup_elem(&weir_probe_last_connect, &zero);
	if (last) {
		last->daddr = ctx->user_ip4;
		last->dport = (__be16)ctx->user_port;
		last->cookie = bpf_get_socket_cookie(ctx);
	}
	return 1; /* allow: the probe only watches */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
