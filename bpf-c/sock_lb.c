/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connect-time load balancing (cgroup socket hooks) and destruction of UDP sockets
 * connected to removed backends (iter/udp), for both families.
 *
 * connect4/6 / sendmsg4/6 turn a frontend address into a backend address before the kernel
 * routes anything, so the flow needs no per-packet NAT and no conntrack entry. The
 * socket remembers the translation in weir_sock_rev4/6, from which getpeername4/6 and
 * recvmsg4/6 show the frontend again. Frontends the socket LB leaves alone fall through
 * to the per-packet path in from_pod/from_pod6 (same maps, same choice), sock_lb_serves:
 *   - no usable backend (REJECT / DROP / empty): from_pod answers or drops,
 *   - session affinity in a pod netns: affinity is per client address, which only the
 *     packet path knows (the host netns keys its affinity by 0.0.0.0 / ::),
 *   - loadBalancerSourceRanges: the source address is not chosen yet,
 *   - sockets outside the host netns in host-only mode.
 * A dual-stack AF_INET6 socket dialling ::ffff:a.b.c.d reaches an IPv4 service: it is looked
 * up in the IPv4 maps and answered v4-mapped (::ffff:backend), its reverse entry in
 * weir_sock_rev4 (Cilium's sock6_xlate_v4_in_v6). The kernel itself hands an unconnected
 * v4-mapped sendmsg() to the sendmsg4 hook, whose reply then comes through recvmsg6 mapped:
 * one reverse map per service family keeps both ways consistent.
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/lb.h"
#include "lib/lb6.h"
#include "lib/monitor.h"
#include "lib/btf_anchor.h"
#include <weir/service.h>

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
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct weir_sock_rev6_key);
	__type(value, struct weir_sock_rev6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_sock_rev6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct weir_sock_destroy4_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_sock_destroy4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct weir_sock_destroy6_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_sock_destroy6 SEC(".maps");

/* Whether the socket LB translates this socket's connects at all (host-only mode serves only
 * the host netns); *in_host_netns tells sock_lb_serves where the socket is. */
static __always_inline int sock_lb_in_scope(struct bpf_sock_addr *ctx, int *in_host_netns)
{
	*in_host_netns = host_netns_cookie && bpf_get_netns_cookie(ctx) == host_netns_cookie;
	return sock_lb_mode != WEIR_SOCK_LB_HOST_ONLY || *in_host_netns;
}

/* Whether the socket LB serves a frontend with @flags and @backend_count, either family; the
 * others go to the per-packet path (the list at the top of this file). */
static __always_inline int sock_lb_serves(__u16 flags, __u16 backend_count, int in_host_netns)
{
	if (backend_count == 0 || (flags & (WEIR_FRONTEND_REJECT | WEIR_FRONTEND_DROP)))
		return 0;
	if ((flags & WEIR_FRONTEND_AFFINITY) && !in_host_netns)
		return 0;
	return !(flags & WEIR_FRONTEND_SOURCE_RANGES);
}

/* The backend *@be for a connect()/sendmsg() to IPv4 frontend @addr:@port, its reverse entry
 * written under the socket's cookie. Returns 1 when the caller is to rewrite the address (in
 * its family's form), 0 to leave the socket alone (not a frontend the socket LB serves), -1
 * to leave it alone although it is one (counted: sock_lb_fallback). */
static __always_inline int sock4_pick(struct bpf_sock_addr *ctx, __be32 addr, __be16 port,
				      int in_host_netns, struct weir_backend4 *be)
{
	struct weir_frontend4_key key = {
		.address = addr,
		.port = port,
		.protocol = (__u8)ctx->protocol,
		.scope = WEIR_SCOPE_INTERNAL,
	};
	struct weir_sock_rev4_key rkey = {};
	struct weir_sock_rev4 rev = {.address = addr, .port = port};
	struct weir_frontend4 *fe;

	fe = bpf_map_lookup_elem(&weir_frontend4, &key);
	if (!fe || !sock_lb_serves(fe->flags, fe->backend_count, in_host_netns))
		return 0;
	if (lb4_select_backend(fe, 0, NULL, bpf_ktime_get_ns(), be))
		return -1;
	if (!be->port)
		be->port = port;

	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.address = be->address;
	rkey.port = be->port;
	if (bpf_map_update_elem(&weir_sock_rev4, &rkey, &rev, BPF_ANY))
		return -1; /* untranslated is still correct: from_pod NATs it */
	if (lb4_count_new_flow(fe->id, be->address, be->port))
		count(WEIR_HOOK_SOCK, WEIR_REASON_LB_STATS_FULL, 0);
	return 1;
}

/* Translate ctx->user_ip4:user_port when it is a frontend the socket LB serves.
 * Returns the reason to count. */
static __always_inline enum weir_reason sock4_translate(struct bpf_sock_addr *ctx)
{
	struct weir_backend4 be;
	int in_host_netns, picked;

	if (!sock_lb_in_scope(ctx, &in_host_netns))
		return WEIR_REASON_PASS;
	picked = sock4_pick(ctx, ctx->user_ip4, (__be16)ctx->user_port, in_host_netns, &be);
	if (picked <= 0)
		return picked ? WEIR_REASON_SOCK_LB_FALLBACK : WEIR_REASON_PASS;
	ctx->user_ip4 = be.address;
	ctx->user_port = (__u32)be.port;
	return WEIR_REASON_SOCK_LB_TRANSLATED;
}

/* The frontend behind backend @addr:@port of the socket with @cookie; NULL: not translated. */
static __always_inline struct weir_sock_rev4 *sock4_rev_of(__u64 cookie, __be32 addr, __be16 port)
{
	struct weir_sock_rev4_key rkey = {.cookie = cookie, .address = addr, .port = port};

	return bpf_map_lookup_elem(&weir_sock_rev4, &rkey);
}

/* Show the frontend instead of the backend this socket was sent to. */
static __always_inline enum weir_reason sock4_reverse(struct bpf_sock_addr *ctx)
{
	struct weir_sock_rev4 *rev;

	rev = sock4_rev_of(bpf_get_socket_cookie(ctx), ctx->user_ip4, (__be16)ctx->user_port);
	if (!rev)
		return WEIR_REASON_PASS;
	ctx->user_ip4 = rev->address;
	ctx->user_port = (__u32)rev->port;
	return WEIR_REASON_SOCK_LB_REVERSE;
}

/* ctx->user_ip6 as four words (the context allows only constant-index word accesses) */
static __always_inline void sock6_user_ip6(const struct bpf_sock_addr *ctx, __u32 *ip)
{
	ip[0] = ctx->user_ip6[0];
	ip[1] = ctx->user_ip6[1];
	ip[2] = ctx->user_ip6[2];
	ip[3] = ctx->user_ip6[3];
}

static __always_inline void sock6_set_user_ip6(struct bpf_sock_addr *ctx, const void *addr)
{
	const __u32 *ip = addr;

	ctx->user_ip6[0] = ip[0];
	ctx->user_ip6[1] = ip[1];
	ctx->user_ip6[2] = ip[2];
	ctx->user_ip6[3] = ip[3];
}

/* sock4_translate for an IPv6 frontend @ip (the socket's user_ip6). */
static __always_inline enum weir_reason sock6_translate6(struct bpf_sock_addr *ctx, const __u32 *ip,
							 int in_host_netns)
{
	__be16 port = (__be16)ctx->user_port;
	struct weir_sock_rev6_key rkey = {};
	struct weir_sock_rev6 rev = {.port = port};
	struct weir_frontend6 *fe;
	struct weir_backend6 be;
	__u32 client[4] = {}; /* the affinity key of the host netns, as 0.0.0.0 in IPv4 */

	fe = lb6_frontend_of(ip, port, (__u8)ctx->protocol, WEIR_SCOPE_INTERNAL);
	if (!fe || !sock_lb_serves(fe->flags, fe->backend_count, in_host_netns))
		return WEIR_REASON_PASS;
	if (lb6_select_backend(fe, client, NULL, bpf_ktime_get_ns(), &be))
		return WEIR_REASON_SOCK_LB_FALLBACK;
	if (!be.port)
		be.port = port;

	rkey.cookie = bpf_get_socket_cookie(ctx);
	ip6_copy(rkey.address, be.address);
	rkey.port = be.port;
	ip6_copy(rev.address, ip);
	if (bpf_map_update_elem(&weir_sock_rev6, &rkey, &rev, BPF_ANY))
		return WEIR_REASON_SOCK_LB_FALLBACK; /* from_pod6 NATs it */

	sock6_set_user_ip6(ctx, be.address);
	ctx->user_port = (__u32)be.port;
	if (lb6_count_new_flow(fe->id, be.address, be.port))
		count(WEIR_HOOK_SOCK, WEIR_REASON_LB_STATS_FULL, 0);
	return WEIR_REASON_SOCK_LB_TRANSLATED;
}

/* connect6 / sendmsg6: an IPv6 frontend, or an IPv4 one dialled v4-mapped (answered
 * ::ffff:backend, so the socket stays an IPv4 flow underneath). */
static __always_inline enum weir_reason sock6_translate(struct bpf_sock_addr *ctx)
{
	struct weir_backend4 be4;
	int in_host_netns, picked;
	__u32 ip[4];

	if (!sock_lb_in_scope(ctx, &in_host_netns))
		return WEIR_REASON_PASS;
	sock6_user_ip6(ctx, ip);
	if (!ip6_is_v4_mapped(ip))
		return sock6_translate6(ctx, ip, in_host_netns);
	picked = sock4_pick(ctx, ip[3], (__be16)ctx->user_port, in_host_netns, &be4);
	if (picked <= 0)
		return picked ? WEIR_REASON_SOCK_LB_FALLBACK : WEIR_REASON_PASS;
	ctx->user_ip6[3] = be4.address;
	ctx->user_port = (__u32)be4.port;
	return WEIR_REASON_SOCK_LB_TRANSLATED;
}

/* getpeername6 / recvmsg6: the frontend again, from weir_sock_rev6, or weir_sock_rev4 for a
 * v4-mapped peer. */
static __always_inline enum weir_reason sock6_reverse(struct bpf_sock_addr *ctx)
{
	struct weir_sock_rev6_key rkey = {.port = (__be16)ctx->user_port};
	struct weir_sock_rev4 *rev4;
	struct weir_sock_rev6 *rev6;
	__u32 ip[4];

	rkey.cookie = bpf_get_socket_cookie(ctx);
	sock6_user_ip6(ctx, ip);
	if (ip6_is_v4_mapped(ip)) {
		rev4 = sock4_rev_of(rkey.cookie, ip[3], rkey.port);
		if (!rev4)
			return WEIR_REASON_PASS;
		ctx->user_ip6[3] = rev4->address;
		ctx->user_port = (__u32)rev4->port;
		return WEIR_REASON_SOCK_LB_REVERSE;
	}
	ip6_copy(rkey.address, ip);
	rev6 = bpf_map_lookup_elem(&weir_sock_rev6, &rkey);
	if (!rev6)
		return WEIR_REASON_PASS;
	sock6_set_user_ip6(ctx, rev6->address);
	ctx->user_port = (__u32)rev6->port;
	return WEIR_REASON_SOCK_LB_REVERSE;
}

SEC("cgroup/connect4")
int weir_sock_connect4(struct bpf_sock_addr *ctx)
{
	/* the frontend, then the backend, for weir monitor (lib/monitor.h) */
	__u32 addrs[8] = {0, 0, bpf_htonl(0xffff), ctx->user_ip4, 0, 0, bpf_htonl(0xffff), 0};
	__be16 fe_port = (__be16)ctx->user_port;
	enum weir_reason reason = sock4_translate(ctx);

	count(WEIR_HOOK_SOCK, reason, 0);
	if (reason == WEIR_REASON_SOCK_LB_TRANSLATED) {
		addrs[7] = ctx->user_ip4;
		monitor_sock(ctx, 4, addrs, fe_port, (__be16)ctx->user_port);
	}
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

SEC("cgroup/connect6")
int weir_sock_connect6(struct bpf_sock_addr *ctx)
{
	__u32 addrs[8]; /* the frontend, then the backend, for weir monitor (lib/monitor.h) */
	__be16 fe_port = (__be16)ctx->user_port;
	enum weir_reason reason;

	sock6_user_ip6(ctx, addrs);
	reason = sock6_translate(ctx);
	count(WEIR_HOOK_SOCK, reason, 0);
	if (reason == WEIR_REASON_SOCK_LB_TRANSLATED) {
		sock6_user_ip6(ctx, addrs + 4);
		monitor_sock(ctx, 6, addrs, fe_port, (__be16)ctx->user_port);
	}
	return 1;
}

SEC("cgroup/sendmsg6")
int weir_sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	count(WEIR_HOOK_SOCK, sock6_translate(ctx), 0);
	return 1;
}

SEC("cgroup/recvmsg6")
int weir_sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	count(WEIR_HOOK_SOCK, sock6_reverse(ctx), 0);
	return 1;
}

SEC("cgroup/getpeername6")
int weir_sock_getpeername6(struct bpf_sock_addr *ctx)
{
	count(WEIR_HOOK_SOCK, sock6_reverse(ctx), 0);
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
	struct in6_addr skc_v6_daddr; /* uapi's in6_addr (linux/in6.h), the kernel's layout */
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

/* Whether the peer of a connected UDP socket of family @family is listed (a removed backend):
 * weir_sock_destroy4 for IPv4 peers, v4-mapped ones of AF_INET6 sockets included, else
 * weir_sock_destroy6. */
static __always_inline int sock_peer_listed(struct sock_common *skc, unsigned short family)
{
	struct weir_sock_destroy6_key key6 = {.port = skc->skc_dport};
	struct weir_sock_destroy4_key key4 = {.port = key6.port};
	__u32 ip[4];

	if (family == AF_INET) {
		key4.address = skc->skc_daddr;
		return bpf_map_lookup_elem(&weir_sock_destroy4, &key4) != NULL;
	}
	if (family != AF_INET6)
		return 0;
	ip[0] = skc->skc_v6_daddr.in6_u.u6_addr32[0];
	ip[1] = skc->skc_v6_daddr.in6_u.u6_addr32[1];
	ip[2] = skc->skc_v6_daddr.in6_u.u6_addr32[2];
	ip[3] = skc->skc_v6_daddr.in6_u.u6_addr32[3];
	if (ip6_is_v4_mapped(ip)) {
		key4.address = ip[3];
		return bpf_map_lookup_elem(&weir_sock_destroy4, &key4) != NULL;
	}
	ip6_copy(key6.address, ip);
	return bpf_map_lookup_elem(&weir_sock_destroy6, &key6) != NULL;
}

/* Run per network namespace (the iterator walks the namespace it is created in; UDP sockets
 * of both families are in the one table it walks): destroys connected UDP sockets whose peer
 * userspace listed in weir_sock_destroy4/6, so the application sees an error and re-resolves
 * instead of sending into the void. */
SEC("iter/udp")
int weir_sock_destroy(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp_sk = ctx->udp_sk;
	struct sock_common *skc;

	if (!udp_sk)
		return 0;
	skc = &udp_sk->inet.sk.__sk_common;
	if (!sock_peer_listed(skc, skc->skc_family))
		return 0;
	if (bpf_sock_destroy(skc) == 0)
		count(WEIR_HOOK_SOCK, WEIR_REASON_SOCK_DESTROYED, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
