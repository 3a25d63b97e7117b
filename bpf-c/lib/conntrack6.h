/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Conntrack for IPv6 (issue 14): weir_ct6, the same entry pairs, flags, states and timeouts as
 * weir_ct4_v2 (conntrack.h) with 16-byte addresses: the lookup of a packet's flow by its wire
 * tuple (with conntrack.h's SYN-reopen and stale-reply rules, which are family-neutral and
 * written once there), creation of a flow's pair, the per-packet refresh. Userspace GC ages
 * both families alike. No rollback hand-off: weir_ct6 has had one layout. */
#ifndef WEIR_LIB_CONNTRACK6_H
#define WEIR_LIB_CONNTRACK6_H

#include "compiler.h"
#include "conntrack.h"
#include "ip6.h"
#include "parse.h"
#include <weir/conntrack.h>

/* as weir_ct4_v2: two entries per flow */
#ifndef WEIR_CT6_MAX_ENTRIES
#define WEIR_CT6_MAX_ENTRIES WEIR_CT4_MAX_ENTRIES
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT6_MAX_ENTRIES);
	__type(key, struct weir_ct6_key);
	__type(value, struct weir_ct6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ct6 SEC(".maps");

/* The tuple of the packet as it is on the wire. */
static __always_inline void ct6_key_of(const struct packet *pkt, struct weir_ct6_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	__builtin_memcpy(key->saddr, pkt->saddr.v6, 16);
	__builtin_memcpy(key->daddr, pkt->daddr.v6, 16);
	key->sport = pkt->sport;
	key->dport = pkt->dport;
	key->protocol = pkt->l4_proto;
}

/* The key of the reply to the tuple {@saddr:@sport -> @daddr:@dport}. */
static __always_inline void ct6_reply_key(struct weir_ct6_key *key, const void *saddr,
					  const void *daddr, __be16 sport, __be16 dport,
					  __u8 protocol)
{
	__builtin_memset(key, 0, sizeof(*key));
	__builtin_memcpy(key->saddr, daddr, 16);
	__builtin_memcpy(key->daddr, saddr, 16);
	key->sport = dport;
	key->dport = sport;
	key->protocol = protocol;
}

static __always_inline struct weir_ct6 *ct6_lookup(const struct weir_ct6_key *key)
{
	return bpf_map_lookup_elem(&weir_ct6, key);
}

static __always_inline void ct6_refresh(struct weir_ct6 *ct, const struct packet *pkt, __u64 now)
{
	ct_refresh(&ct->flags, &ct->tcp_flags_seen, &ct->last_seen_ns, &ct->packets, &ct->bytes,
		   pkt, now);
}

static __always_inline int ct6_is_tracked_only(const struct weir_ct6 *ct)
{
	return ct_flags_tracked_only(ct->flags);
}

/* The stale reply entry rule of ct4_reply_is_stale: a SYN-ACK meeting a reply entry whose
 * connection (it or its forward partner, keyed @fkey, filled in) closed, or whose partner is
 * gone. */
static __always_inline int ct6_reply_is_stale(const struct weir_ct6 *ct, const struct packet *pkt,
					      struct weir_ct6_key *fkey)
{
	struct weir_ct6 *fwd;

	if (!ct_syn_ack_on_reply(ct->flags, pkt))
		return 0;
	ct6_reply_key(fkey, ct->nat_saddr, ct->nat_daddr, ct->nat_sport, ct->nat_dport,
		      IPPROTO_TCP);
	if (ct_tcp_closed(ct->tcp_flags_seen))
		return 1;
	fwd = bpf_map_lookup_elem(&weir_ct6, fkey);
	return !fwd || ct_tcp_closed(fwd->tcp_flags_seen);
}

/**
 * ct6_lookup_flow - the conntrack stage: the live entry of @pkt's flow, or NULL, as
 * ct4_lookup_flow: a SYN reusing a closed connection's ports and a SYN-ACK meeting a stale
 * reply entry delete their pair and start afresh (NULL).
 */
static __always_inline struct weir_ct6 *ct6_lookup_flow(const struct packet *pkt)
{
	struct weir_ct6_key key; /* one key buffer (the hook's stack is short): the packet's,
				  * then the partner's, then the packet's again */
	struct weir_ct6 *ct;

	ct6_key_of(pkt, &key);
	ct = ct6_lookup(&key);
	if (!ct)
		return NULL;
	if (ct_syn_reopens(ct->flags, ct->tcp_flags_seen, pkt)) {
		/* a new connection on old ports: forget the pair, balance it afresh */
		ct6_reply_key(&key, ct->nat_saddr, ct->nat_daddr, ct->nat_sport, ct->nat_dport,
			      pkt->l4_proto);
	} else if (!ct6_reply_is_stale(ct, pkt, &key)) {
		return ct;
	} /* else the answer to a connection that is not this entry's: leave it alone */
	bpf_map_delete_elem(&weir_ct6, &key);
	ct6_key_of(pkt, &key);
	bpf_map_delete_elem(&weir_ct6, &key);
	return NULL;
}

/* What a new IPv6 flow becomes, as struct ct4_flow. */
struct ct6_flow {
	struct weir_ct6_key orig; /* client -> frontend, as on the wire */
	struct weir_ct6_key nat;  /* after the rewrite; = orig if tracked only */
	__u32 frontend_id;	  /* 0 for a flow to no frontend */
	__u16 nat_flags;	  /* WEIR_CT_DNAT for a service flow, 0 tracked only */
	__u16 extra_flags;	  /* WEIR_CT_HAIRPIN, WEIR_CT_NODEPORT */
	__u32 ifindex;		  /* forward direction: redirect to this interface; 0: the stack */
	__u32 reply_ifindex;	  /* reply direction: the same, toward the client */
	__u8 policy;		  /* the policy stage's verdict (enum weir_ct_policy) */
	__u8 pad[3];
	/* forward / reply direction: encapsulate toward this node (tunnel6.h: IPv6 or
	 * v4-mapped); all zero: none */
	__u32 tunnel_node[4];
	__u32 reply_tunnel_node[4];
};

/* A new flow's working state, per CPU: flow6_new's and ct6_create's frames sit on top of the
 * hook's, and with 16-byte addresses the flow and an entry would not fit the 512-byte BPF
 * stack next to it (as policy.h's weir_policy_scratch). Never pinned: per object. */
struct ct6_scratch {
	struct ct6_flow flow;
	struct weir_ct6 entry;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct6_scratch);
} weir_ct6_scratch SEC(".maps");

static __always_inline struct ct6_scratch *ct6_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&weir_ct6_scratch, &zero);
}

/* The flow of a packet to no frontend: tracked, not rewritten. */
static __always_inline void ct6_flow_untranslated(const struct packet *pkt, struct ct6_flow *flow)
{
	__builtin_memset(flow, 0, sizeof(*flow));
	ct6_key_of(pkt, &flow->orig);
	flow->nat = flow->orig;
}

/**
 * ct6_create - write both entries of a new flow, as ct4_create: the reverse entry (keyed by
 * the reply of the NAT'd tuple) first, then the forward one (keyed by the original tuple).
 * A global function whose one entry buffer for both is the per-CPU scratch: the frames of
 * the hook, flow6_new and this together must fit the 512-byte stack.
 *
 * Returns 0, or a negative errno.
 */
__weir_slow_path int ct6_create(const struct ct6_flow *flow, const struct packet *pkt, __u64 now)
{
	struct ct6_scratch *scratch = ct6_scratch();
	struct weir_ct6_key rkey;
	struct weir_ct6 *e;
	int snat, err;

	if (!flow || !pkt || !scratch)
		return -1;
	e = &scratch->entry;
	__builtin_memset(e, 0, sizeof(*e));

	snat = !ip6_equal(flow->nat.saddr, flow->orig.saddr) || flow->nat.sport != flow->orig.sport;

	ct6_reply_key(&rkey, flow->nat.saddr, flow->nat.daddr, flow->nat.sport, flow->nat.dport,
		      flow->orig.protocol);
	e->flags = ct_reverse_flags(flow->nat_flags, snat, flow->extra_flags);
	__builtin_memcpy(e->nat_saddr, flow->orig.daddr, 16);
	__builtin_memcpy(e->nat_daddr, flow->orig.saddr, 16);
	e->nat_sport = flow->orig.dport;
	e->nat_dport = flow->orig.sport;
	e->frontend_id = flow->frontend_id;
	e->policy = flow->policy;
	e->ifindex = flow->reply_ifindex;
	__builtin_memcpy(e->tunnel_node, flow->reply_tunnel_node, 16);
	e->created_ns = now;
	e->last_seen_ns = now;
	/* reverse first: a forward entry without its reverse would NAT packets whose replies
	 * then go untranslated */
	err = bpf_map_update_elem(&weir_ct6, &rkey, e, BPF_ANY);
	if (err)
		return err;

	e->flags = ct_forward_flags(flow->nat_flags, snat, flow->extra_flags);
	__builtin_memcpy(e->nat_saddr, flow->nat.saddr, 16);
	__builtin_memcpy(e->nat_daddr, flow->nat.daddr, 16);
	e->nat_sport = flow->nat.sport;
	e->nat_dport = flow->nat.dport;
	e->ifindex = flow->ifindex;
	__builtin_memcpy(e->tunnel_node, flow->tunnel_node, 16);
	e->packets = 1;
	e->bytes = pkt->len;
	if (pkt->l4_proto == IPPROTO_TCP)
		e->tcp_flags_seen = pkt->tcp_flags;
	err = bpf_map_update_elem(&weir_ct6, &flow->orig, e, BPF_ANY);
	if (err)
		bpf_map_delete_elem(&weir_ct6, &rkey);
	return err;
}

#endif
