/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connect-time load balancing (cgroup socket hooks) and destruction of UDP sockets
 * connected to removed backends (iter/udp).
 *
 * connect4 / sendmsg4 turn a frontend address into a backend address before the kernel
 * routes anything, so the flow needs no per-packet NAT and no conntrack entry. The
 * socket remembers the translation in weir_sock_rev4, from which getpeername4 and
 * recvmsg4 show the frontend again. Frontends the socket LB leaves alone fall through
 * to the per-packet path in from_pod (same maps, same choice):
 *   - no usable backend (REJECT / DROP / empty): from_pod answers or drops,
 *   - session affinity in a pod netns: affinity is per client address, which only the
 *     packet path knows (the host netns keys its affinity by 0.0.0.0),
 *   - sockets outside the host netns in host-only mode.
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/lb.h"
#include "lib/btf_anchor.h"
#include <weir/service.h>

#define AF_INET 2

/* Which sockets the socket LB translates (enum weir_sock_lb_mode), and the host
 * network namespace's cookie for WEIR_SOCK_LB_HOST_ONLY; set by userspace at load. */
const volatile enum weir_sock_lb_mode sock_lb_mode = WEIR_SOCK_LB_ALL_NETNS;
const volatile __u64 host_netns_cookie = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct weir_sock_rev4_key);
	__type(value, struct weir_sock_rev4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_sock_rev4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct weir_sock_destroy4_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_sock_destroy4 SEC(".maps");

/* Translate ctx->user_ip4:user_port when it is a frontend the socket LB serves.
 * Returns the reason to count. */
static __always_inline enum weir_reason sock4_translate(struct bpf_sock_addr *ctx)
{
	struct weir_frontend4_key key = {
		.address = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
		.protocol = (__u8)ctx->protocol,
		.scope = WEIR_SCOPE_INTERNAL,
	};
	struct weir_sock_rev4_key rkey = {};
	struct weir_sock_rev4 rev = {};
	struct weir_frontend4 *fe;
	struct weir_backend4 be;
	int in_host_netns;

	in_host_netns = host_netns_cookie && bpf_get_netns_cookie(ctx) == host_netns_cookie;
	if (sock_lb_mode == WEIR_SOCK_LB_HOST_ONLY && !in_host_netns)
		return WEIR_REASON_PASS;

	fe = bpf_map_lookup_elem(&weir_frontend4, &key);
	if (!fe || fe->backend_count == 0 ||
	    (fe->flags & (WEIR_FRONTEND_REJECT | WEIR_FRONTEND_DROP)))
		return WEIR_REASON_PASS;
	if ((fe->flags & WEIR_FRONTEND_AFFINITY) && !in_host_netns)
		return WEIR_REASON_PASS;
	/* the source address is not chosen yet: the per-packet path checks the ranges */
	if (fe->flags & WEIR_FRONTEND_SOURCE_RANGES)
		return WEIR_REASON_PASS;
	if (lb4_select_backend(fe, 0, NULL, bpf_ktime_get_ns(), &be))
		return WEIR_REASON_PASS;
	if (!be.port)
		be.port = key.port;

	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.address = be.address;
	rkey.port = be.port;
	rev.address = key.address;
	rev.port = key.port;
	if (bpf_map_update_elem(&weir_sock_rev4, &rkey, &rev, BPF_ANY))
		return WEIR_REASON_PASS; /* untranslated is still correct: from_pod NATs it */

	ctx->user_ip4 = be.address;
	ctx->user_port = (__u32)be.port;
	if (lb4_count_new_flow(fe->id, be.address, be.port))
		count(WEIR_HOOK_SOCK, WEIR_REASON_LB_STATS_FULL, 0);
	return WEIR_REASON_SOCK_LB_TRANSLATED;
}

/* Show the frontend instead of the backend this socket was sent to. */
static __always_inline enum weir_reason sock4_reverse(struct bpf_sock_addr *ctx)
{
	struct weir_sock_rev4_key rkey = {
		.cookie = bpf_get_socket_cookie(ctx),
		.address = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
	};
	struct weir_sock_rev4 *rev;

	rev = bpf_map_lookup_elem(&weir_sock_rev4, &rkey);
	if (!rev)
		return WEIR_REASON_PASS;
	ctx->user_ip4 = rev->address;
	ctx->user_port = (__u32)rev->port;
	return WEIR_REASON_SOCK_LB_REVERSE;
}

SEC("cgroup/connect4")
int weir_sock_connect4(struct bpf_sock_addr *ctx)
{
	count(WEIR_HOOK_SOCK, sock4_translate(ctx), 0);
	return 1;
}

SEC("cgroup/sendmsg4")
int weir_sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	count(WEIR_HOOK_SOCK, sock4_translate(ctx), 0);
	return 1;
}

SEC("cgroup/recvmsg4")
int weir_sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	count(WEIR_HOOK_SOCK, sock4_reverse(ctx), 0);
	return 1;
}

SEC("cgroup/getpeername4")
int weir_sock_getpeername4(struct bpf_sock_addr *ctx)
{
	count(WEIR_HOOK_SOCK, sock4_reverse(ctx), 0);
	return 1;
}

/* The kernel types the UDP iterator hands us. No vmlinux.h: these minimal mirrors name
 * only the fields we read, and CO-RE (preserve_access_index) relocates every access
 * against the running kernel's BTF, so their layout here does not matter. */
struct bpf_iter_meta;

struct sock_common {
	__be32 skc_daddr;
	__be16 skc_dport;
	unsigned short skc_family;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct udp_sock {
	struct inet_sock inet;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} __attribute__((preserve_access_index));

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/* Run per network namespace (the iterator walks the namespace it is created in):
 * destroys connected UDP sockets whose peer userspace listed in weir_sock_destroy4, so
 * the application sees an error and re-resolves instead of sending into the void. */
SEC("iter/udp")
int weir_sock_destroy(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp_sk = ctx->udp_sk;
	struct weir_sock_destroy4_key key = {};
	struct sock_common *skc;

	if (!udp_sk)
		return 0;
	skc = &udp_sk->inet.sk.__sk_common;
	if (skc->skc_family != AF_INET)
		return 0;
	key.address = skc->skc_daddr;
	key.port = skc->skc_dport;
	if (!bpf_map_lookup_elem(&weir_sock_destroy4, &key))
		return 0;
	if (bpf_sock_destroy(skc) == 0)
		count(WEIR_HOOK_SOCK, WEIR_REASON_SOCK_DESTROYED, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
