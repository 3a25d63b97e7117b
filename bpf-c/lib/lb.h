/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The load balancer: the frontend, backend and affinity maps, and the select stage of a
 * new flow to a frontend: whether it may start (mid-flow TCP, drop, reject) and which
 * backend it goes to, as a ct4_flow (the tuple before and after NAT). The hooks (from_pod,
 * from_host) decide the order of frontend lookups; flow.h runs the stages after it. */
#ifndef WEIR_LIB_LB_H
#define WEIR_LIB_LB_H

#include "compiler.h"
#include "conntrack.h"
#include "counters.h"
#include "csum.h"
#include "jhash.h"
#include "nat.h"
#include "parse.h"
#include "reject.h"
#include <weir/counters.h>
#include <weir/service.h>

#define NSEC_PER_SEC 1000000000ULL

/* Count new connections per backend in weir_lb_stats4 (1) or not at all (0): set by
 * userspace at load from `weir daemon --service-stats on|off`. */
const volatile __u8 lb_stats_enabled = 1;

/* M of the Maglev tables in weir_maglev4 (`weir daemon --maglev-table-size`, a prime). */
const volatile __u32 maglev_table_size = WEIR_MAGLEV_MAX_TABLE;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weir_frontend4_key);
	__type(value, struct weir_frontend4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_frontend4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct weir_backend4_key);
	__type(value, struct weir_backend4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_backend4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weir_affinity4_key);
	__type(value, struct weir_affinity4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_affinity4 SEC(".maps");

/* loadBalancerSourceRanges of every flagged frontend (service.h). An LPM trie must not be
 * preallocated. Looked up only for the first packet of a flow to a flagged frontend. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct weir_lb_src4_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_lb_src4 SEC(".maps");

/* Maglev tables of the frontends flagged WEIR_FRONTEND_MAGLEV (weir/service.h). A hash
 * without preallocation: only Maglev frontends cost memory (about 32 KiB each). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weir_maglev4_key);
	__type(value, struct weir_maglev4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_maglev4 SEC(".maps");

/* Bounded: a full map loses counts (LB_STATS_FULL), never packets. Preallocated, so an
 * insert costs no allocation on the packet path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct weir_lb_stats4_key);
	__type(value, struct weir_lb_stats4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_lb_stats4 SEC(".maps");

/* One new flow of frontend @frontend_id sent to @backend:@port. Returns 0, or
 * WEIR_REASON_LB_STATS_FULL when the map had no room (the caller counts it under its hook). */
static __always_inline enum weir_reason lb4_count_new_flow(__u32 frontend_id, __be32 backend,
							   __be16 port)
{
	struct weir_lb_stats4_key key = {
		.frontend_id = frontend_id, .backend = backend, .port = port};
	struct weir_lb_stats4 one = {.new_connections = 1}, *st;

	if (!lb_stats_enabled)
		return 0;
	st = bpf_map_lookup_elem(&weir_lb_stats4, &key);
	if (st) {
		st->new_connections += 1; /* this CPU's copy: no other writer */
		return 0;
	}
	/* a new key; another CPU may insert it first (EEXIST): then add to ours */
	if (bpf_map_update_elem(&weir_lb_stats4, &key, &one, BPF_NOEXIST) == 0)
		return 0;
	st = bpf_map_lookup_elem(&weir_lb_stats4, &key);
	if (st) {
		st->new_connections += 1;
		return 0;
	}
	return WEIR_REASON_LB_STATS_FULL;
}

/* Parsed packets the service path of family @l3_proto (ETH_P_IP, ETH_P_IPV6) handles: not a
 * fragment (later fragments carry no ports; until fragments are tracked, the whole datagram
 * is left alone), TCP, UDP, SCTP, or the family's ICMP (@parsed_icmp). SCTP ports are read
 * here: the shared parser stops at unknown L4s. Returns 0 to go on, or the reason to count
 * and pass the packet with. lb4_accept and lb6_accept (lb6.h) are this with their family. */
static __always_inline enum weir_reason lb_accept(struct __sk_buff *skb, struct packet *pkt,
						  enum weir_reason parsed, __u16 l3_proto,
						  enum weir_reason parsed_icmp)
{
	switch (parsed) {
	case WEIR_REASON_PARSED_TCP:
	case WEIR_REASON_PARSED_UDP:
	case WEIR_REASON_PARSED_OTHER_L4:
		break;
	case WEIR_REASON_PARSED_ICMP:
	case WEIR_REASON_PARSED_ICMPV6:
		if (parsed != parsed_icmp)
			return WEIR_REASON_PASS; /* the other family's */
		break;
	default:
		return parsed; /* not IP, a later fragment, malformed */
	}
	if (pkt->l3_proto != l3_proto)
		return WEIR_REASON_PASS;
	if (pkt->flags & PKT_F_FRAGMENT)
		return WEIR_REASON_FRAGMENT;
	if (parsed != WEIR_REASON_PARSED_OTHER_L4)
		return 0;
	if (pkt->l4_proto != IPPROTO_SCTP)
		return WEIR_REASON_PASS;
	return parse_sctp_ports(skb, pkt);
}

static __always_inline enum weir_reason lb4_accept(struct __sk_buff *skb, struct packet *pkt,
						   enum weir_reason parsed)
{
	return lb_accept(skb, pkt, parsed, ETH_P_IP, WEIR_REASON_PARSED_ICMP);
}

static __always_inline struct weir_frontend4 *lb4_lookup_frontend(const struct packet *pkt,
								  enum weir_frontend_scope scope)
{
	struct weir_frontend4_key key = {
		.address = pkt->daddr.v4,
		.port = pkt->l4_proto == IPPROTO_ICMP ? 0 : pkt->dport,
		.protocol = pkt->l4_proto,
		.scope = scope,
	};

	/* only an echo request can start an ICMP flow; errors go to icmp_error.h */
	if (pkt->l4_proto == IPPROTO_ICMP && pkt->icmp_type != ICMP_ECHO)
		return NULL;
	return bpf_map_lookup_elem(&weir_frontend4, &key);
}

/* The Maglev hash of a flow: client address and port, the frontend port and the protocol.
 * Never the destination address: a NodePort's address is each node's own, and a router may
 * send a load balancer IP's flow to any node; nothing else here differs between nodes, so
 * every node with the same table sends the flow to the same backend. */
static __always_inline __u32 lb4_maglev_hash(const struct packet *pkt)
{
	return weir_jhash_3words(pkt->saddr.v4, ((__u32)pkt->sport << 16) | pkt->dport,
				 pkt->l4_proto, 0);
}

/* The slot for a new flow of @pkt (NULL: a connect() of the socket LB, which is east-west
 * and stays random, as Cilium's): Maglev frontends look it up in their table, the others
 * (and a Maglev frontend whose table is not written yet, or names a slot beyond the count
 * during an update) draw a random one. */
/* The slot of a new flow among @backend_count: the Maglev table's entry for @hash when the
 * frontend has one (@flags WEIR_FRONTEND_MAGLEV, @hashed: the caller has a packet to hash),
 * else a random one. Family-neutral: weir_maglev4 holds the tables of both families' frontends
 * (ids are unique across families). */
static __always_inline __u32 lb_pick_slot(__u32 frontend_id, __u16 backend_count, __u16 flags,
					  int hashed, __u32 hash)
{
	struct weir_maglev4_key mkey = {.frontend_id = frontend_id};
	struct weir_maglev4 *table;
	__u32 i, slot;

	if (hashed && (flags & WEIR_FRONTEND_MAGLEV)) {
		table = bpf_map_lookup_elem(&weir_maglev4, &mkey);
		i = hash % maglev_table_size;
		if (table && i < WEIR_MAGLEV_MAX_TABLE) {
			slot = table->slots[i];
			if (slot < backend_count)
				return slot;
		}
	}
	return bpf_get_prandom_u32() % backend_count;
}

static __always_inline __u32 lb4_pick_slot(const struct weir_frontend4 *fe,
					   const struct packet *pkt)
{
	return lb_pick_slot(fe->id, fe->backend_count, fe->flags, pkt != NULL,
			    pkt ? lb4_maglev_hash(pkt) : 0);
}

static __always_inline int lb4_select_backend(const struct weir_frontend4 *fe, __be32 client,
					      const struct packet *pkt, __u64 now,
					      struct weir_backend4 *out)
{
	struct weir_affinity4_key akey = {.client = client, .frontend_id = fe->id};
	struct weir_backend4_key bkey = {.frontend_id = fe->id};
	struct weir_affinity4 *aff, fresh = {};
	struct weir_backend4 *be;

	if (fe->flags & WEIR_FRONTEND_AFFINITY) {
		aff = bpf_map_lookup_elem(&weir_affinity4, &akey);
		if (aff && now - aff->last_used_ns <= (__u64)fe->affinity_timeout * NSEC_PER_SEC) {
			aff->last_used_ns = now;
			out->address = aff->backend;
			out->port = aff->port;
			out->flags = 0;
			out->pad = 0;
			return 0;
		}
	}

	bkey.slot = lb4_pick_slot(fe, pkt);
	be = bpf_map_lookup_elem(&weir_backend4, &bkey);
	if (!be)
		return -1;
	*out = *be;

	if (fe->flags & WEIR_FRONTEND_AFFINITY) {
		fresh.backend = be->address;
		fresh.port = be->port;
		fresh.last_used_ns = now;
		bpf_map_update_elem(&weir_affinity4, &akey, &fresh, BPF_ANY);
	}
	return 0;
}

/* The family-neutral part of admitting a new flow to a frontend with @flags and
 * @backend_count (after loadBalancerSourceRanges): 0 to select a backend, else the reason,
 * with *verdict set for a drop or a pending reject. */
static __always_inline enum weir_reason lb_admit_flow(const struct packet *pkt, __u16 flags,
						      __u16 backend_count, int *verdict)
{
	/* Only a SYN starts a TCP flow. A later segment with no entry belongs to a connection
	 * weir did not see begin: one kube-proxy (or the kernel's NAT) set up before weir
	 * took over. Choosing a backend for it now would most likely pick another one and
	 * reset the connection; the kernel's conntrack still knows where it goes. */
	if (pkt->l4_proto == IPPROTO_TCP && !(pkt->tcp_flags & CT_TCP_SYN))
		return WEIR_REASON_MIDFLOW_NO_CONNTRACK;
	if (flags & WEIR_FRONTEND_DROP) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_NO_LOCAL_BACKEND_DROP;
	}
	if ((flags & WEIR_FRONTEND_REJECT) || backend_count == 0) {
		/* the hook builds the ICMP (flow4_reject, flow6_reject): the quote it copies would not fit
		 * flow4_new's stack frame next to the later stages' */
		*verdict = WEIR_TC_REJECT_PENDING;
		return WEIR_REASON_NO_BACKEND_REJECT;
	}
	return 0;
}

/**
 * lb4_admit - whether the first packet of a flow to frontend @fe starts a flow
 * @verdict: set to the TC verdict when the answer is no
 *
 * Returns 0 to go on to the backend choice, or the reason to count: a client outside a
 * load balancer IP's source ranges (dropped), a mid-stream TCP segment (passed), a Local
 * frontend without local endpoint (dropped), a frontend without endpoint (rejected: the
 * packet is turned into an ICMP port unreachable).
 */
static __always_inline enum weir_reason lb4_admit(struct __sk_buff *skb, const struct packet *pkt,
						  const struct weir_frontend4 *fe, int *verdict)
{
	struct weir_lb_src4_key src;

	/* loadBalancerSourceRanges first, as kube-proxy's firewall chain: a client outside them
	 * gets nothing from this frontend, not even a reject or a mid-flow pass to the kernel.
	 * Established flows never come here (conntrack), so a range removed later does not cut
	 * a connection it admitted, as with kube-proxy's conntrack. */
	if (fe->flags & WEIR_FRONTEND_SOURCE_RANGES) {
		src.prefixlen = 64;
		src.frontend_id = fe->id;
		src.address = pkt->saddr.v4;
		if (!bpf_map_lookup_elem(&weir_lb_src4, &src)) {
			*verdict = WEIR_TC_DROP;
			return WEIR_REASON_LB_SOURCE_DENIED;
		}
	}

	return lb_admit_flow(pkt, fe->flags, fe->backend_count, verdict);
}

/**
 * flow4_reject - the hook's half of a reject lb4_admit decided (*verdict
 * WEIR_TC_REJECT_PENDING): turns the packet into ICMP port unreachable back out the
 * interface it came in on. A global function: its frame holds the quote.
 */
__weir_slow_path int flow4_reject(struct __sk_buff *skb, const struct packet *pkt, int *verdict)
{
	int ret;

	if (!skb || !pkt || !verdict)
		return WEIR_REASON_PASS;
	ret = reject4_port_unreachable(skb, pkt);
	if (ret < 0) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_REJECT_FAILED;
	}
	*verdict = ret;
	return WEIR_REASON_NO_BACKEND_REJECT;
}

/**
 * lb4_select - the select stage: a backend for the new flow of @pkt to @fe
 * @ct_flags: the calling hook's conntrack flags (WEIR_CT_NODEPORT from from_host)
 * @flow: filled in: the tuple before and after DNAT (and SNAT for hairpin), flags
 *
 * Returns 0, or the reason to drop the packet with.
 */
static __always_inline enum weir_reason lb4_select(const struct packet *pkt,
						   const struct weir_frontend4 *fe, __u64 now,
						   __u16 ct_flags, struct ct4_flow *flow)
{
	struct weir_backend4 be;

	if (lb4_select_backend(fe, pkt->saddr.v4, pkt, now, &be))
		return WEIR_REASON_BACKEND_MISSING;

	ct4_key_of(pkt, &flow->orig);
	flow->nat = flow->orig;
	flow->nat.daddr = be.address;
	flow->nat.dport = be.port ? be.port : pkt->dport;
	if (pkt->l4_proto == IPPROTO_ICMP)
		flow->nat.dport = pkt->dport; /* echo identifier stays */
	if (pkt->l4_proto == IPPROTO_SCTP && flow->nat.dport != pkt->dport)
		return WEIR_REASON_SCTP_PORT_REWRITE;
	/* hairpin: a client reaching itself. Without SNAT its reply would stay inside the
	 * pod; with the frontend as source it comes back through from_pod for reverse NAT. */
	if (be.address == pkt->saddr.v4) {
		flow->nat.saddr = pkt->daddr.v4;
		ct_flags |= WEIR_CT_HAIRPIN;
	}
	flow->nat_flags = WEIR_CT_DNAT;
	flow->extra_flags = ct_flags;
	flow->frontend_id = fe->id;
	flow->policy = 0;
	flow->tunnel_node = 0; /* issue 12: a remote backend's node, for the forward stage */
	flow->ifindex = 0;
	flow->reply_ifindex = 0;
	flow->reply_tunnel_node = 0;
	return 0;
}

#endif
