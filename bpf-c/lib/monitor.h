/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* `weir monitor`'s emitter: each hook calls monitor4()/monitor6() next to its final count(),
 * with the packet's verdict. While a monitor holds the lease in weir_monitor_cfg and asked
 * for that reason, one struct weir_event (weir/monitor.h) goes into the ring buffer
 * weir_events; otherwise the call costs one array lookup and one compare.
 *
 * The emitters are BPF-to-BPF calls (static, noinline): the hook's inlined fast path does
 * not grow, and their frame is not added to the hook's slow-path chain (flow4_new ->
 * policy4_check), whose 512-byte stack is nearly full. Static rather than global, so an
 * object that does not call one does not carry it (from_pod6 also has lib/conntrack.h). The event is built in the reserved
 * ring buffer memory, never on the stack. A new NAT flow's backend comes from the conntrack
 * entry the flow stage just wrote (one lookup, only for NAT reasons while monitoring), so
 * the flow stages carry nothing extra. Include after lib/conntrack.h (monitor4) or
 * lib/conntrack6.h (monitor6).
 */
#ifndef WEIR_LIB_MONITOR_H
#define WEIR_LIB_MONITOR_H

#include "compiler.h"
#include "parse.h"
#include <weir/counters.h>
#include <weir/monitor.h>

/* 1 MiB: about 10,000 events of 104 bytes (96 + the ring's 8-byte header), a tenth of a
 * second of a 100k-drops/s flood, or minutes of ordinary drops, between two reads of the
 * CLI (every 100 ms). Full: events are lost and counted (weir_monitor_stats.lost). */
#define WEIR_EVENTS_BYTES (1 << 20)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, WEIR_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_monitor_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_monitor_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_monitor_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_monitor_stats SEC(".maps");

/* The reasons whose events carry the flow's NAT (from its conntrack entry). */
static __always_inline int monitor_nat_reason(__u32 reason)
{
	return reason == WEIR_REASON_SERVICE_NAT || reason == WEIR_REASON_HAIRPIN ||
	       reason == WEIR_REASON_NAT_ESTABLISHED;
}

/* Whether @reason is to be emitted now (lease running, reason asked for, sampled in). */
static __always_inline int monitor_wanted(__u32 reason)
{
	struct weir_monitor_cfg *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&weir_monitor_cfg, &zero);
	if (!cfg || !cfg->until_ns) /* nobody monitors: the cost of it all */
		return 0;
	if ((cfg->flags & WEIR_MONITOR_DISABLED) || reason >= 64 || !(cfg->reasons >> reason & 1))
		return 0;
	if (bpf_ktime_get_ns() >= cfg->until_ns) /* the monitor went away: lease lapsed */
		return 0;
	if (cfg->sample > 1 && bpf_get_prandom_u32() % cfg->sample)
		return 0;
	return 1;
}

static __always_inline struct weir_event *monitor_reserve(void)
{
	struct weir_monitor_stats *st;
	struct weir_event *e;
	__u32 zero = 0;

	e = bpf_ringbuf_reserve(&weir_events, sizeof(*e), 0);
	st = bpf_map_lookup_elem(&weir_monitor_stats, &zero);
	if (st) { /* per-CPU slot: plain adds suffice */
		if (e)
			st->emitted += 1;
		else
			st->lost += 1;
	}
	if (e)
		__builtin_memset(e, 0, sizeof(*e));
	return e;
}

static __always_inline void monitor_fill(struct weir_event *e, struct __sk_buff *skb,
					 const struct packet *pkt, __u32 hook, __u32 reason)
{
	e->time_ns = bpf_ktime_get_ns();
	e->hook = hook;
	e->reason = reason;
	e->protocol = pkt->l4_proto;
	e->ifindex = skb->ifindex;
	e->len = pkt->len;
	e->tcp_flags = pkt->tcp_flags;
	e->icmp_type = pkt->icmp_type;
	e->sport = pkt->sport;
	e->dport = pkt->dport;
}

/* an IPv4 address as v4-mapped IPv6 (::ffff:a.b.c.d) */
static __always_inline void monitor_ip4(weir_ip6 out, __be32 a)
{
	__u32 *w = (__u32 *)out;

	w[2] = bpf_htonl(0xffff);
	w[3] = a;
}

/**
 * monitor_sock - the event of a connect() the socket LB translated (sock_lb.c): @addrs holds
 * the frontend the socket asked for, then the backend it now goes to (4 words each, IPv4
 * v4-mapped), @ports the frontend's port and the backend's (network order). The caller reads
 * the context (clang would otherwise merge the user_ip4 and user_ip6 reads into one offset
 * load, which the verifier refuses on a context pointer). No source: the socket is not bound
 * before connect() (the event's source is the unspecified address). connect() only: a
 * sendmsg() is a datagram, not a flow.
 */
static __attribute__((noinline)) int monitor_sock(struct bpf_sock_addr *ctx, __u32 family,
						  const __u32 *addrs, __be16 fe_port,
						  __be16 be_port)
{
	struct weir_event *e;

	if (!monitor_wanted(WEIR_REASON_SOCK_LB_TRANSLATED))
		return 0;
	e = monitor_reserve();
	if (!e)
		return 1;
	e->time_ns = bpf_ktime_get_ns();
	e->hook = WEIR_HOOK_SOCK;
	e->reason = WEIR_REASON_SOCK_LB_TRANSLATED;
	e->family = family;
	e->protocol = ctx->protocol;
	e->flags = WEIR_EVENT_NAT;
	if (family == 4)
		monitor_ip4(e->saddr, 0); /* 0.0.0.0, not :: */
	__builtin_memcpy(e->daddr, addrs, 16);
	__builtin_memcpy(e->nat_daddr, addrs + 4, 16);
	e->dport = fe_port;
	e->nat_dport = be_port;
	bpf_ringbuf_submit(e, 0);
	return 1;
}

#ifdef WEIR_LIB_CONNTRACK_H
/**
 * monitor4 - the event of an IPv4 packet whose verdict at @hook is @reason, if a monitor
 * asked for it. Returns 1 when one was emitted (or lost to a full ring), else 0.
 */
static __attribute__((noinline)) int monitor4(struct __sk_buff *skb, const struct packet *pkt,
					      __u32 hook, __u32 reason)
{
	struct weir_ct4_key key;
	struct weir_event *e;
	struct weir_ct4 *ct;

	if (!monitor_wanted(reason))
		return 0;
	e = monitor_reserve();
	if (!e)
		return 1;
	monitor_fill(e, skb, pkt, hook, reason);
	e->family = 4;
	monitor_ip4(e->saddr, pkt->saddr.v4);
	monitor_ip4(e->daddr, pkt->daddr.v4);
	if (monitor_nat_reason(reason)) {
		ct4_key_of(pkt, &key);
		ct = bpf_map_lookup_elem(&weir_ct4_v2, &key);
		if (ct && (ct->flags & WEIR_CT_DNAT)) {
			e->flags |= WEIR_EVENT_NAT;
			monitor_ip4(e->nat_daddr, ct->nat_daddr);
			e->nat_dport = ct->nat_dport;
		}
		if (ct && (ct->flags & WEIR_CT_SNAT)) {
			e->flags |= WEIR_EVENT_SNAT;
			monitor_ip4(e->nat_saddr, ct->nat_saddr);
			e->nat_sport = ct->nat_sport;
		}
	}
	bpf_ringbuf_submit(e, 0);
	return 1;
}
#endif

#ifdef WEIR_LIB_CONNTRACK6_H
/* monitor6 - monitor4 for an IPv6 packet. */
static __attribute__((noinline)) int monitor6(struct __sk_buff *skb, const struct packet *pkt,
					      __u32 hook, __u32 reason)
{
	struct weir_ct6_key key;
	struct weir_event *e;
	struct weir_ct6 *ct;

	if (!monitor_wanted(reason))
		return 0;
	e = monitor_reserve();
	if (!e)
		return 1;
	monitor_fill(e, skb, pkt, hook, reason);
	e->family = 6;
	__builtin_memcpy(e->saddr, pkt->saddr.v6, 16);
	__builtin_memcpy(e->daddr, pkt->daddr.v6, 16);
	if (monitor_nat_reason(reason)) {
		ct6_key_of(pkt, &key);
		ct = bpf_map_lookup_elem(&weir_ct6, &key);
		if (ct && (ct->flags & WEIR_CT_DNAT)) {
			e->flags |= WEIR_EVENT_NAT;
			__builtin_memcpy(e->nat_daddr, ct->nat_daddr, 16);
			e->nat_dport = ct->nat_dport;
		}
		if (ct && (ct->flags & WEIR_CT_SNAT)) {
			e->flags |= WEIR_EVENT_SNAT;
			__builtin_memcpy(e->nat_saddr, ct->nat_saddr, 16);
			e->nat_sport = ct->nat_sport;
		}
	}
	bpf_ringbuf_submit(e, 0);
	return 1;
}
#endif

#endif
