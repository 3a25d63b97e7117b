/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Host endpoint policy (issue 17): the maps of include/weir/host_policy.h, declared here once
 * so every object that includes this pins the same maps, and the two decisions the host hooks
 * (xdp_prefilter, from_host, to_host) take on a packet:
 *
 *   host_failsafe(direction, pkt)      a failsafe port (or the reply of a failsafe flow)
 *   host_chain_walk(pkt, hep, kind)    one chain of the host endpoint, walked with bpf_loop:
 *                                      allow / deny / no match / no such chain, and the rule
 *
 * Both take a family-neutral view of the packet (struct host_pkt), so one walk serves IPv4
 * and IPv6, XDP and TC. The walk is a global function: verified once, however many hooks and
 * chains call it; bpf_loop has the verifier check the step once, where a for-loop over 16384
 * rules would be unrolled or walked state by state. */
#ifndef WEIR_LIB_HOST_POLICY_H
#define WEIR_LIB_HOST_POLICY_H

#include "compiler.h"
#include "parse.h"
#include <weir/host_policy.h>

#define WEIR_HEP_IFACES_MAX_ENTRIES 256
#define WEIR_HEP_CHAINS_MAX_ENTRIES 4096
/* two halves: the writer fills the half not in use, then points the chains at it */
#define WEIR_HOST_RULES_MAX_ENTRIES 16384
#define WEIR_HOST_SETS_MAX_ENTRIES 65536
#define WEIR_FAILSAFE_MAX_ENTRIES 256
#define WEIR_HOST_POLICY_NAMES_MAX_ENTRIES 4096

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_HEP_IFACES_MAX_ENTRIES);
	__type(key, struct weir_hep_iface_key);
	__type(value, struct weir_hep_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_hep_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_HEP_CHAINS_MAX_ENTRIES);
	__type(key, struct weir_hep_chain_key);
	__type(value, struct weir_hep_chain);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_hep_chains SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WEIR_HOST_RULES_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct weir_host_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_host_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_HOST_SETS_MAX_ENTRIES);
	__type(key, struct weir_host_set4_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_host_sets4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_HOST_SETS_MAX_ENTRIES);
	__type(key, struct weir_host_set6_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_host_sets6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_FAILSAFE_MAX_ENTRIES);
	__type(key, struct weir_failsafe4_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_failsafe4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_FAILSAFE_MAX_ENTRIES);
	__type(key, struct weir_failsafe6_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_failsafe6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_HOST_RULES_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct weir_host_rule_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_host_rule_stats SEC(".maps");

/* written by the daemon, read by the CLI: no program reads it, every object pins it */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_HOST_POLICY_NAMES_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct weir_host_policy_name);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_host_policy_names SEC(".maps");

/* CLI only (`weir policy`): no program reads it; declared here so it is pinned with the rest */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct weir_hep_info);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_hep_info SEC(".maps");

/* The packet as host policy sees it, either family. Addresses and ports network order. */
struct host_pkt {
	__u8 family; /* 4 or 6 */
	__u8 protocol;
	__be16 sport; /* TCP/UDP/SCTP ports; 0 for ICMP (a rule with ports never matches it) */
	__be16 dport;
	__u16 pad;
	__u32 len;	/* bytes, as the hook counts them */
	__u32 saddr[4]; /* IPv4: [0] */
	__u32 daddr[4];
};

/* The view of a parsed packet (parse.h). ICMP's identifier is not a port to host policy. */
static __always_inline void host_pkt_of(struct host_pkt *hp, const struct packet *pkt)
{
	__builtin_memset(hp, 0, sizeof(*hp));
	hp->family = pkt->l3_proto == ETH_P_IPV6 ? 6 : 4;
	hp->protocol = pkt->l4_proto;
	if (pkt->l4_proto == IPPROTO_TCP || pkt->l4_proto == IPPROTO_UDP ||
	    pkt->l4_proto == IPPROTO_SCTP) {
		hp->sport = pkt->sport;
		hp->dport = pkt->dport;
	}
	hp->len = pkt->len;
	if (hp->family == 6) {
		__builtin_memcpy(hp->saddr, pkt->saddr.v6, 16);
		__builtin_memcpy(hp->daddr, pkt->daddr.v6, 16);
	} else {
		hp->saddr[0] = pkt->saddr.v4;
		hp->daddr[0] = pkt->daddr.v4;
	}
}

/* The host endpoint covering interface @ifindex, or NULL: no host policy there at all. */
static __always_inline struct weir_hep_iface *host_hep_of(__u32 ifindex)
{
	struct weir_hep_iface_key key = {.ifindex = ifindex};

	return bpf_map_lookup_elem(&weir_hep_ifaces, &key);
}

/* Does host endpoint @hep have a chain of @kind? The hooks ask before the failsafe lookups: an
 * endpoint with no untracked policy (the common case) pays one hash lookup per packet. */
static __always_inline int host_has_chain(__u32 hep, __u32 kind)
{
	struct weir_hep_chain_key key = {.hep = hep, .kind = kind};

	return bpf_map_lookup_elem(&weir_hep_chains, &key) != NULL;
}

/* What a walk decided: HOST_VERDICT(r) one of these, HOST_RULE(r) the deciding rule's index. */
enum host_verdict {
	HOST_NO_MATCH = 0, /* the chain ended: no rule decided */
	HOST_ALLOW = 1,
	HOST_DENY = 2,
	HOST_NO_CHAIN = 3, /* the endpoint has no such chain (no policy of that kind applies) */
};
#define HOST_VERDICT(r) ((__u32)(r)&0xff)
#define HOST_RULE(r) ((__u32)(r) >> 8)

struct host_walk {
	struct host_pkt pkt;
	__u32 next; /* the rule to look at */
	__u32 end;  /* the chain's end: first + count */
	__u32 verdict;
	__u32 rule;
};

/* Is @addr (@family) in address set @set? */
static __always_inline int host_in_set(__u32 set, __u8 family, const __u32 *addr)
{
	if (family == 6) {
		struct weir_host_set6_key k = {.prefixlen = WEIR_HOST_SET_FIXED_BITS + 128,
					       .set = set};

		__builtin_memcpy(k.address, addr, 16);
		return bpf_map_lookup_elem(&weir_host_sets6, &k) != NULL;
	} else {
		struct weir_host_set4_key k = {
			.prefixlen = WEIR_HOST_SET_FIXED_BITS + 32, .set = set, .address = addr[0]};

		return bpf_map_lookup_elem(&weir_host_sets4, &k) != NULL;
	}
}

/* Every criterion of @r holds for @p (Calico: criteria AND). */
static __always_inline int host_rule_matches(const struct weir_host_rule *r,
					     const struct host_pkt *p)
{
	__u16 flags = r->flags;
	__u16 port;

	if ((flags & WEIR_HOST_RULE_IPV4) && p->family != 4)
		return 0;
	if ((flags & WEIR_HOST_RULE_IPV6) && p->family != 6)
		return 0;
	if ((flags & WEIR_HOST_RULE_PROTOCOL) && r->protocol != p->protocol)
		return 0;
	if (flags & WEIR_HOST_RULE_SPORTS) {
		port = bpf_ntohs(p->sport);
		if (!p->sport || port < r->sport_min || port > r->sport_max)
			return 0;
	}
	if (flags & WEIR_HOST_RULE_DPORTS) {
		port = bpf_ntohs(p->dport);
		if (!p->dport || port < r->dport_min || port > r->dport_max)
			return 0;
	}
	if (r->src_set && !host_in_set(r->src_set, p->family, p->saddr))
		return 0;
	if (r->src_not_set && host_in_set(r->src_not_set, p->family, p->saddr))
		return 0;
	if (r->dst_set && !host_in_set(r->dst_set, p->family, p->daddr))
		return 0;
	if (r->dst_not_set && host_in_set(r->dst_not_set, p->family, p->daddr))
		return 0;
	return 1;
}

/* One step of the walk (bpf_loop callback): 0 = go on, 1 = stop. */
static long host_walk_step(__u64 i, void *data)
{
	struct host_walk *w = data;
	struct weir_host_rule *r;
	__u32 idx = w->next;

	if (idx >= w->end)
		return 1;
	r = bpf_map_lookup_elem(&weir_host_rules, &idx);
	if (!r)
		return 1;
	w->next = idx + 1;
	if (!host_rule_matches(r, &w->pkt))
		return 0;
	if (r->action == WEIR_HOST_PASS) {
		/* on at the next tier; a jump backwards would loop: end the chain instead */
		w->next = r->jump > idx ? r->jump : w->end;
		return 0;
	}
	w->verdict = r->action == WEIR_HOST_ALLOW ? HOST_ALLOW : HOST_DENY;
	w->rule = idx;
	return 1;
}

/**
 * host_chain_walk - chain @kind of host endpoint @hep against packet @pkt
 *
 * Bumps the deciding rule's packets and bytes in weir_host_rule_stats.
 * Returns HOST_VERDICT/HOST_RULE of the result (enum host_verdict). A global function.
 */
__weir_slow_path int host_chain_walk(const struct host_pkt *pkt, __u32 hep, __u32 kind)
{
	struct weir_hep_chain_key key = {.hep = hep, .kind = kind};
	struct weir_host_rule_stats *st;
	struct weir_hep_chain *chain;
	struct host_walk w = {};
	__u32 count;

	if (!pkt)
		return HOST_NO_MATCH;
	chain = bpf_map_lookup_elem(&weir_hep_chains, &key);
	if (!chain)
		return HOST_NO_CHAIN;
	__builtin_memcpy(&w.pkt, pkt, sizeof(w.pkt));
	w.next = chain->first;
	count = chain->count;
	if (count > WEIR_HOST_RULES_MAX_ENTRIES)
		count = WEIR_HOST_RULES_MAX_ENTRIES;
	w.end = chain->first + count;
	w.verdict = HOST_NO_MATCH;
	bpf_loop(count, host_walk_step, &w, 0);
	if (w.verdict == HOST_NO_MATCH)
		return HOST_NO_MATCH;
	st = bpf_map_lookup_elem(&weir_host_rule_stats, &w.rule);
	if (st) {
		/* per-CPU slot: plain adds suffice */
		st->packets += 1;
		st->bytes += pkt->len;
	}
	return (int)(w.verdict | (w.rule << 8));
}

/* A failsafe entry for @direction, @protocol, @port and the peer @addr? */
static __always_inline int host_failsafe_hit(__u8 family, __u8 direction, __u8 protocol,
					     __be16 port, const __u32 *addr)
{
	if (family == 6) {
		struct weir_failsafe6_key k = {.prefixlen = WEIR_FAILSAFE_FIXED_BITS + 128,
					       .direction = direction,
					       .protocol = protocol,
					       .port = port};

		__builtin_memcpy(k.address, addr, 16);
		return bpf_map_lookup_elem(&weir_failsafe6, &k) != NULL;
	} else {
		struct weir_failsafe4_key k = {.prefixlen = WEIR_FAILSAFE_FIXED_BITS + 32,
					       .direction = direction,
					       .protocol = protocol,
					       .port = port,
					       .address = addr[0]};

		return bpf_map_lookup_elem(&weir_failsafe4, &k) != NULL;
	}
}

/**
 * host_failsafe - is @p to or from a failsafe port, in @direction (enum weir_failsafe_direction)?
 *
 * Inbound (@p arrives): an inbound entry for its destination port (the peer: its source), or
 * the reply of an outbound failsafe flow: an outbound entry for its SOURCE port (the peer: its
 * source, the outbound flow's destination). Outbound (@p leaves): an outbound entry for its
 * destination port, or the reply of an inbound failsafe flow (an inbound entry for its source
 * port). As Felix's raw chains: failsafe traffic passes even untracked.
 */
static __always_inline int host_failsafe(__u8 direction, const struct host_pkt *p)
{
	const __u32 *peer = direction == WEIR_FAILSAFE_IN ? p->saddr : p->daddr;
	__u8 reply = direction == WEIR_FAILSAFE_IN ? WEIR_FAILSAFE_OUT : WEIR_FAILSAFE_IN;

	if (!p->dport)
		return 0; /* no ports: not TCP, UDP or SCTP */
	return host_failsafe_hit(p->family, direction, p->protocol, p->dport, peer) ||
	       host_failsafe_hit(p->family, reply, p->protocol, p->sport, peer);
}

#endif
