/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The conntrack stage: the weir_ct4_v2 map, the lookup of a packet's flow by its wire
 * tuple (with the SYN-reopen and stale-reply rules), creation of a flow's entry pair,
 * and the per-packet refresh. NAT'd flows always get a pair; flows to no frontend get
 * one only under the ct_track_all knob. Layout and semantics of the entries:
 * include/weir/conntrack.h. */
#ifndef WEIR_LIB_CONNTRACK_H
#define WEIR_LIB_CONNTRACK_H

#include "compiler.h"
#include "csum.h"
#include "parse.h"
#include <weir/conntrack.h>
#include <weir/legacy.h>
#include <linux/icmpv6.h>

#ifndef WEIR_CT4_MAX_ENTRIES
#define WEIR_CT4_MAX_ENTRIES 262144
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT4_MAX_ENTRIES);
	__type(key, struct weir_ct4_key);
	__type(value, struct weir_ct4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ct4_v2 SEC(".maps");

/* Track every flow (1), not only NAT'd ones (0): a new flow to no frontend (TCP SYN, UDP,
 * ICMP echo request) gets an entry pair without rewrite, so its later packets and its
 * replies hit conntrack (policy needs the state of every connection). Set by userspace at
 * load; at 0 the verifier prunes the branch and pass-through costs what it did. */
const volatile __u8 ct_track_all = 0;

/* Rollback hand-off (docs/upgrade.md). A graceful stop writes the conntrack in the previous
 * release's layout (weir_ct4, struct weir_ct4_v1) for that release to adopt, and puts that
 * map in slot 0 here: until that release swaps the links, ct4_create also writes every new
 * NAT'd flow into it, so flows created after the copy survive the rollback too. The next
 * start of this release empties the slot. Empty: one array lookup per new flow, nothing else. */
/* the inner map template: libbpf creates it for a moment at each load, and the kernel does
 * not compare a hash map's max_entries with the real inner map's, so 1 entry is enough */
struct weir_ct4_v1_inner {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct weir_ct4_key);
	__type(value, struct weir_ct4_v1);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct weir_ct4_v1_inner);
} weir_ct4_handoff SEC(".maps");

/* The entry @ct (keyed @key) also into the hand-off map, in the v1 layout. */
static __always_inline void ct4_handoff_write(void *v1map, const struct weir_ct4_key *key,
					      const struct weir_ct4 *ct)
{
	struct weir_ct4_v1 old = {};

	old.nat_saddr = ct->nat_saddr;
	old.nat_daddr = ct->nat_daddr;
	old.nat_sport = ct->nat_sport;
	old.nat_dport = ct->nat_dport;
	old.flags = ct->flags & 0x3f; /* v1 knows bits 0..5 */
	old.tcp_flags_seen = ct->tcp_flags_seen;
	old.frontend_id = ct->frontend_id;
	old.created_ns = ct->created_ns;
	old.last_seen_ns = ct->last_seen_ns;
	old.packets = ct->packets;
	old.bytes = ct->bytes;
	bpf_map_update_elem(v1map, key, &old, BPF_ANY);
}

/* The tuple of the packet as it is on the wire. */
static __always_inline void ct4_key_of(const struct packet *pkt, struct weir_ct4_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->saddr = pkt->saddr.v4;
	key->daddr = pkt->daddr.v4;
	key->sport = pkt->sport;
	key->dport = pkt->dport;
	key->protocol = pkt->l4_proto;
}

static __always_inline struct weir_ct4 *ct4_lookup(const struct weir_ct4_key *key)
{
	return bpf_map_lookup_elem(&weir_ct4_v2, key);
}

/* TCP flag bits of struct packet's tcp_flags (the header's byte 13) */
#define CT_TCP_FIN 0x01
#define CT_TCP_SYN 0x02
#define CT_TCP_RST 0x04
#define CT_TCP_ACK 0x10

/* ---- Family-neutral rules: weir_ct4 and weir_ct6 (conntrack6.h) share these fields' names
 * and meaning but not their layout, so the rules take the fields. ---- */

/* A packet matched an entry: refresh what userspace GC ages by. Entries are shared between
 * CPUs, so counters use atomic adds; the timestamp and flags are last-writer-wins. */
static __always_inline void ct_refresh(__u16 *flags, __u8 *tcp_flags_seen, __u64 *last_seen_ns,
				       __u64 *packets, __u64 *bytes, const struct packet *pkt,
				       __u64 now)
{
	*last_seen_ns = now;
	if (pkt->l4_proto == IPPROTO_TCP && (*tcp_flags_seen | pkt->tcp_flags) != *tcp_flags_seen)
		*tcp_flags_seen |= pkt->tcp_flags;
	if (!(*flags & WEIR_CT_SEEN))
		*flags |= WEIR_CT_SEEN;
	__sync_fetch_and_add(packets, 1);
	__sync_fetch_and_add(bytes, pkt->len);
}

/* An entry whose TCP connection has seen FIN or RST: closed, or closing. */
static __always_inline int ct_tcp_closed(__u8 tcp_flags_seen)
{
	return tcp_flags_seen & (CT_TCP_FIN | CT_TCP_RST);
}

/* A SYN (without ACK) meeting the forward entry (@flags, @tcp_flags_seen) of a connection that
 * already closed is a new connection that reuses the ports, as Linux's conntrack treats a SYN
 * in TIME_WAIT/CLOSE. It must be load-balanced afresh: following the old entry would send it
 * to the old backend, which may be terminating or gone (and then the SYN is lost). */
static __always_inline int ct_syn_reopens(__u16 flags, __u8 tcp_flags_seen,
					  const struct packet *pkt)
{
	return pkt->l4_proto == IPPROTO_TCP &&
	       (pkt->tcp_flags & (CT_TCP_SYN | CT_TCP_ACK)) == CT_TCP_SYN &&
	       !(flags & WEIR_CT_REPLY) && ct_tcp_closed(tcp_flags_seen);
}

/* A SYN-ACK meeting a reply entry (@flags): what ct4_reply_is_stale and ct6_reply_is_stale
 * look into further. */
static __always_inline int ct_syn_ack_on_reply(__u16 flags, const struct packet *pkt)
{
	return pkt->l4_proto == IPPROTO_TCP && (flags & WEIR_CT_REPLY) &&
	       (pkt->tcp_flags & (CT_TCP_SYN | CT_TCP_ACK)) == (CT_TCP_SYN | CT_TCP_ACK);
}

/* An entry that rewrites nothing: a tracked flow (ct_track_all), not a NAT'd one. */
static __always_inline int ct_flags_tracked_only(__u16 flags)
{
	return !(flags & (WEIR_CT_SNAT | WEIR_CT_DNAT));
}

/* Packets that may start a tracked flow: a TCP SYN, any UDP datagram or SCTP packet, an
 * ICMP or ICMPv6 echo request. Anything else without an entry (a mid-stream segment, an echo
 * reply) belongs to a flow that began before tracking did: without policy it passes
 * untracked, under policy it is decided like a first packet (flow4_track_new,
 * flow6_track_new). SCTP is taken as UDP is (its first packet seen, normally the INIT,
 * starts the pair). */
static __always_inline int ct_starts_flow(const struct packet *pkt)
{
	switch (pkt->l4_proto) {
	case IPPROTO_TCP:
		return (pkt->tcp_flags & (CT_TCP_SYN | CT_TCP_ACK)) == CT_TCP_SYN;
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		return 1;
	case IPPROTO_ICMP:
		return pkt->icmp_type == ICMP_ECHO;
	case IPPROTO_ICMPV6:
		return pkt->icmp_type == ICMPV6_ECHO_REQUEST;
	default:
		return 0;
	}
}

/* The flags of a new flow's two entries, from @nat_flags (WEIR_CT_DNAT for a service flow, 0
 * tracked only), @snat (the source is rewritten too: hairpin) and @extra (HAIRPIN, NODEPORT,
 * TUNNEL, DSR). The reverse entry undoes the forward one: its source rewrite is the forward
 * DNAT's reverse, its destination rewrite the forward SNAT's. */
static __always_inline __u16 ct_forward_flags(__u16 nat_flags, int snat, __u16 extra)
{
	return nat_flags | (snat ? WEIR_CT_SNAT : 0) | extra;
}

static __always_inline __u16 ct_reverse_flags(__u16 nat_flags, int snat, __u16 extra)
{
	return WEIR_CT_REPLY | ((nat_flags & WEIR_CT_DNAT) ? WEIR_CT_SNAT : 0) |
	       (snat ? WEIR_CT_DNAT : 0) | extra;
}

/* A packet matched @ct: refresh it (ct_refresh). */
static __always_inline void ct4_refresh(struct weir_ct4 *ct, const struct packet *pkt, __u64 now)
{
	ct_refresh(&ct->flags, &ct->tcp_flags_seen, &ct->last_seen_ns, &ct->packets, &ct->bytes,
		   pkt, now);
}

/* A SYN reusing the ports of a closed connection (ct_syn_reopens). */
static __always_inline int ct4_syn_reopens(const struct weir_ct4 *ct, const struct packet *pkt)
{
	return ct_syn_reopens(ct->flags, ct->tcp_flags_seen, pkt);
}

/* Delete a flow's pair: the forward entry @key/@ct and the reverse entry it implies. */
static __always_inline void ct4_forget(const struct weir_ct4_key *key, const struct weir_ct4 *ct)
{
	struct weir_ct4_key rkey = {};

	rkey.saddr = ct->nat_daddr;
	rkey.daddr = ct->nat_saddr;
	rkey.sport = ct->nat_dport;
	rkey.dport = ct->nat_sport;
	rkey.protocol = key->protocol;
	bpf_map_delete_elem(&weir_ct4_v2, &rkey);
	bpf_map_delete_elem(&weir_ct4_v2, key);
}

/* A SYN-ACK meeting a reply entry of a connection that already closed is the answer to a
 * new connection reusing the ports, one that did not go through the forward entry: a
 * socket the connect-time LB sent straight to the backend, with the source port an old
 * per-packet-NAT'd flow to the same backend had. Translating it with the stale entry
 * would make it come from the frontend, which the client's socket does not expect (the
 * connect then hangs). Stale: the reply entry or its forward partner has seen FIN or
 * RST, or the partner is gone. */
static __always_inline int ct4_reply_is_stale(const struct weir_ct4 *ct, const struct packet *pkt,
					      struct weir_ct4_key *fkey)
{
	struct weir_ct4 *fwd;

	if (!ct_syn_ack_on_reply(ct->flags, pkt))
		return 0;
	__builtin_memset(fkey, 0, sizeof(*fkey));
	fkey->saddr = ct->nat_daddr;
	fkey->daddr = ct->nat_saddr;
	fkey->sport = ct->nat_dport;
	fkey->dport = ct->nat_sport;
	fkey->protocol = IPPROTO_TCP;
	if (ct_tcp_closed(ct->tcp_flags_seen))
		return 1;
	fwd = bpf_map_lookup_elem(&weir_ct4_v2, fkey);
	return !fwd || ct_tcp_closed(fwd->tcp_flags_seen);
}

/**
 * ct4_lookup_flow - the conntrack stage: the live entry of @pkt's flow, or NULL
 *
 * NULL means a new flow, also for a SYN reusing a closed connection's ports and for a
 * SYN-ACK that answers a connection the stale reply entry is not about: their entries are
 * deleted here, so the new flow is balanced (or passed) afresh.
 */
static __always_inline struct weir_ct4 *ct4_lookup_flow(const struct packet *pkt)
{
	struct weir_ct4_key key, fkey;
	struct weir_ct4 *ct;

	ct4_key_of(pkt, &key);
	ct = ct4_lookup(&key);
	if (!ct)
		return NULL;
	if (ct4_syn_reopens(ct, pkt)) {
		ct4_forget(&key, ct); /* a new connection on old ports: balance it afresh */
		return NULL;
	}
	if (ct4_reply_is_stale(ct, pkt, &fkey)) {
		/* the answer to a connection that is not this entry's: leave it alone */
		bpf_map_delete_elem(&weir_ct4_v2, &fkey);
		bpf_map_delete_elem(&weir_ct4_v2, &key);
		return NULL;
	}
	return ct;
}

/* An entry that rewrites nothing: a tracked flow (ct_track_all), not a NAT'd one. */
static __always_inline int ct4_is_tracked_only(const struct weir_ct4 *ct)
{
	return ct_flags_tracked_only(ct->flags);
}

/* What a new flow becomes: the client's tuple (as it arrived) and the tuple after NAT. */
struct ct4_flow {
	struct weir_ct4_key orig; /* client -> frontend, as on the wire */
	struct weir_ct4_key
		nat; /* after the rewrite: (client or frontend) -> backend; = orig if tracked only */
	__u32 frontend_id; /* 0 for a flow to no frontend */
	__u16 nat_flags; /* WEIR_CT_DNAT for a service flow (SNAT follows from the tuples), 0 tracked only */
	__u16 extra_flags; /* WEIR_CT_HAIRPIN, WEIR_CT_NODEPORT */
	__u8 policy; /* the policy stage's verdict, cached in both entries (enum weir_ct_policy) */
	__u32 tunnel_node; /* forward direction: encapsulate toward this node (tunnel.h); 0: none */
	__u32 reply_tunnel_node; /* reply direction: the same */
	__u32 ifindex; /* forward direction: redirect to this interface (forward.h); 0: the stack */
	__u32 reply_ifindex; /* reply direction: the same, toward the client */
};

/* The flow of a packet to no frontend: tracked, not rewritten. */
static __always_inline void ct4_flow_untranslated(const struct packet *pkt, struct ct4_flow *flow)
{
	__builtin_memset(flow, 0, sizeof(*flow));
	ct4_key_of(pkt, &flow->orig);
	flow->nat = flow->orig;
}

/**
 * ct4_create - write both entries of a new flow
 *
 * forward: keyed by the original tuple, rewrites it into the NAT'd tuple;
 * reverse: keyed by the reply of the NAT'd tuple (backend -> nat source), rewrites it
 * into the reply of the original (frontend -> client). Which of source and destination
 * each rewrites follows from which fields differ, so hairpin (both) needs no special case.
 * A tracked-only flow (nat_flags 0, nat == orig) gets the same pair with no rewrite bit:
 * its nat_* fields are its own tuple, so GC and ct4_forget find the partner the same way.
 *
 * Returns 0, or the map update's negative errno.
 */
static __always_inline int ct4_create(const struct ct4_flow *flow, const struct packet *pkt,
				      __u64 now)
{
	struct weir_ct4_key rkey = {};
	struct weir_ct4 fwd = {}, rev = {};
	__u16 snat = 0;
	int err;

	if (flow->nat.saddr != flow->orig.saddr || flow->nat.sport != flow->orig.sport)
		snat = 1;

	fwd.flags = ct_forward_flags(flow->nat_flags, snat, flow->extra_flags);
	fwd.nat_saddr = flow->nat.saddr;
	fwd.nat_sport = flow->nat.sport;
	fwd.nat_daddr = flow->nat.daddr;
	fwd.nat_dport = flow->nat.dport;
	fwd.frontend_id = flow->frontend_id;
	fwd.policy = flow->policy;
	fwd.tunnel_node = flow->tunnel_node;
	fwd.ifindex = flow->ifindex;
	fwd.created_ns = now;
	fwd.last_seen_ns = now;
	fwd.packets = 1;
	fwd.bytes = pkt->len;
	if (pkt->l4_proto == IPPROTO_TCP)
		fwd.tcp_flags_seen = pkt->tcp_flags;

	rkey.saddr = flow->nat.daddr;
	rkey.daddr = flow->nat.saddr;
	rkey.sport = flow->nat.dport;
	rkey.dport = flow->nat.sport;
	rkey.protocol = flow->orig.protocol;

	rev.flags = ct_reverse_flags(flow->nat_flags, snat, flow->extra_flags);
	rev.nat_saddr = flow->orig.daddr;
	rev.nat_sport = flow->orig.dport;
	rev.nat_daddr = flow->orig.saddr;
	rev.nat_dport = flow->orig.sport;
	rev.frontend_id = flow->frontend_id;
	rev.policy = flow->policy;
	rev.tunnel_node = flow->reply_tunnel_node;
	rev.ifindex = flow->reply_ifindex;
	rev.created_ns = now;
	rev.last_seen_ns = now;

	/* reverse first: a forward entry without its reverse would NAT packets whose
	 * replies then go untranslated */
	err = bpf_map_update_elem(&weir_ct4_v2, &rkey, &rev, BPF_ANY);
	if (err)
		return err;
	err = bpf_map_update_elem(&weir_ct4_v2, &flow->orig, &fwd, BPF_ANY);
	if (err) {
		bpf_map_delete_elem(&weir_ct4_v2, &rkey);
		return err;
	}
	/* a rollback hand-off is pending: the previous release's layout too (NAT'd flows only:
	 * v1 has no tracked-only entries, it would take them for an identity NAT) */
	if (flow->nat_flags) {
		__u32 zero = 0;
		void *v1map = bpf_map_lookup_elem(&weir_ct4_handoff, &zero);

		if (v1map) {
			ct4_handoff_write(v1map, &rkey, &rev);
			ct4_handoff_write(v1map, &flow->orig, &fwd);
		}
	}
	return 0;
}

#endif
