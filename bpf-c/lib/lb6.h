/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The load balancer for IPv6 (issue 14): the IPv6 frontend, backend, affinity, source-range
 * and lb-stats maps, and the lookups of a new flow to an IPv6 frontend. The same stages as
 * lb.h's IPv4 ones (Cilium's lb4_/lb6_ pairs); the family-neutral parts (accept, the Maglev
 * or random slot, the admit rules after source ranges) are lb.h's, shared. */
#ifndef WEIR_LIB_LB6_H
#define WEIR_LIB_LB6_H

#include "compiler.h"
#include "counters.h"
#include "ip6.h"
#include "jhash.h"
#include "lb.h"
#include "parse.h"
#include <weir/counters.h>
#include <linux/icmpv6.h>
#include <weir/service.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weir_frontend6_key);
	__type(value, struct weir_frontend6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_frontend6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct weir_backend6_key);
	__type(value, struct weir_backend6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_backend6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weir_affinity6_key);
	__type(value, struct weir_affinity6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_affinity6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct weir_lb_src6_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_lb_src6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weir_lb_stats6_key);
	__type(value, struct weir_lb_stats6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_lb_stats6 SEC(".maps");

/* Counts a new flow of frontend @frontend_id to @backend:@port (weir_lb_stats6), as
 * lb4_count_new_flow. */
static __always_inline enum weir_reason lb6_count_new_flow(__u32 frontend_id, const void *backend,
							   __be16 port)
{
	struct weir_lb_stats6_key key = {.frontend_id = frontend_id, .port = port};
	struct weir_lb_stats6 one = {.new_connections = 1}, *st;

	if (!lb_stats_enabled)
		return 0;
	ip6_copy(key.backend, backend);
	st = bpf_map_lookup_elem(&weir_lb_stats6, &key);
	if (st) {
		st->new_connections += 1;
		return 0;
	}
	if (bpf_map_update_elem(&weir_lb_stats6, &key, &one, BPF_NOEXIST) == 0)
		return 0;
	st = bpf_map_lookup_elem(&weir_lb_stats6, &key);
	if (st) {
		st->new_connections += 1;
		return 0;
	}
	return WEIR_REASON_LB_STATS_FULL;
}

static __always_inline enum weir_reason lb6_accept(struct __sk_buff *skb, struct packet *pkt,
						   enum weir_reason parsed)
{
	return lb_accept(skb, pkt, parsed, ETH_P_IPV6, WEIR_REASON_PARSED_ICMPV6);
}

/* The frontend {@addr, @port, @protocol, @scope}; NULL: none. */
static __always_inline struct weir_frontend6 *lb6_frontend_of(const void *addr, __be16 port,
							      __u8 protocol, __u8 scope)
{
	struct weir_frontend6_key key = {.port = port, .protocol = protocol, .scope = scope};

	ip6_copy(key.address, addr);
	return bpf_map_lookup_elem(&weir_frontend6, &key);
}

/* The frontend the first packet @pkt of a flow is addressed to, in @scope; NULL: none. Only
 * an ICMPv6 echo request can start an ICMPv6 flow (errors go to icmp6_error.h). */
static __always_inline struct weir_frontend6 *lb6_lookup_frontend(const struct packet *pkt,
								  enum weir_frontend_scope scope)
{
	if (pkt->l4_proto == IPPROTO_ICMPV6) {
		if (pkt->icmp_type != ICMPV6_ECHO_REQUEST)
			return NULL;
		return lb6_frontend_of(pkt->daddr.v6, 0, IPPROTO_ICMPV6, scope);
	}
	return lb6_frontend_of(pkt->daddr.v6, pkt->dport, pkt->l4_proto, scope);
}

static __always_inline __u32 lb6_maglev_hash(const struct packet *pkt)
{
	const __u32 *s = pkt->saddr.v6;

	return weir_jhash_3words(s[0] ^ s[1], s[2] ^ s[3], ((__u32)pkt->sport << 16) | pkt->dport,
				 pkt->l4_proto);
}

/**
 * lb6_select_backend - the backend of a new flow from @client to @fe, as lb4_select_backend:
 * the client's affinity entry while it is fresh, else the Maglev or random slot
 * @pkt: the packet, for the Maglev hash; NULL (socket LB): a random slot
 *
 * Returns 0 with *out filled, or -1 when the slot has no backend.
 */
static __always_inline int lb6_select_backend(const struct weir_frontend6 *fe, const void *client,
					      const struct packet *pkt, __u64 now,
					      struct weir_backend6 *out)
{
	struct weir_affinity6_key akey = {.frontend_id = fe->id};
	struct weir_backend6_key bkey = {.frontend_id = fe->id};
	struct weir_affinity6 *aff, fresh = {};
	struct weir_backend6 *be;

	ip6_copy(akey.client, client);
	if (fe->flags & WEIR_FRONTEND_AFFINITY) {
		aff = bpf_map_lookup_elem(&weir_affinity6, &akey);
		if (aff && now - aff->last_used_ns <= (__u64)fe->affinity_timeout * NSEC_PER_SEC) {
			aff->last_used_ns = now;
			ip6_copy(out->address, aff->backend);
			out->port = aff->port;
			out->flags = 0;
			out->pad = 0;
			return 0;
		}
	}

	bkey.slot = lb_pick_slot(fe->id, fe->backend_count, fe->flags, pkt != NULL,
				 pkt ? lb6_maglev_hash(pkt) : 0);
	be = bpf_map_lookup_elem(&weir_backend6, &bkey);
	if (!be)
		return -1;
	*out = *be;

	if (fe->flags & WEIR_FRONTEND_AFFINITY) {
		ip6_copy(fresh.backend, be->address);
		fresh.port = be->port;
		fresh.last_used_ns = now;
		bpf_map_update_elem(&weir_affinity6, &akey, &fresh, BPF_ANY);
	}
	return 0;
}

/**
 * lb6_admit - whether the first packet of a flow to IPv6 frontend @fe starts a flow, as
 * lb4_admit: loadBalancerSourceRanges (weir_lb_src6), then lb_admit_flow.
 */
static __always_inline enum weir_reason lb6_admit(const struct packet *pkt,
						  const struct weir_frontend6 *fe, int *verdict)
{
	struct weir_lb_src6_key src = {};

	if (fe->flags & WEIR_FRONTEND_SOURCE_RANGES) {
		src.prefixlen = 32 + 128;
		src.frontend_id = fe->id;
		ip6_copy(src.address, pkt->saddr.v6);
		if (!bpf_map_lookup_elem(&weir_lb_src6, &src)) {
			*verdict = WEIR_TC_DROP;
			return WEIR_REASON_LB_SOURCE_DENIED;
		}
	}
	return lb_admit_flow(pkt, fe->flags, fe->backend_count, verdict);
}

#endif
