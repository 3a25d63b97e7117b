/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ABI: the conntrack map (weir_ct4_v2, layout version 2).
 *
 * Version 2 (this release) can track every flow, not only NAT'd ones: an entry with
 * neither SNAT nor DNAT set is a tracked flow that is not rewritten (policy needs the
 * state of every connection; the ct_track_all knob decides whether plain flows get one).
 * It also carries what forwarded flows need: the peer node of a tunnelled flow, the
 * interface of its local end, and the policy verdict cached for the flow. Version 1
 * (release 2e42a8d, pinned as `weir_ct4`) is `struct weir_ct4_v1` in weir/legacy.h;
 * userspace converts between the two on upgrade and rollback (docs/operations.md).
 *
 * One entry per direction, keyed by the tuple as it is on the wire in that direction,
 * so a single lookup serves both: the original direction finds the entry keyed by the
 * client's tuple (client -> frontend), the reply direction the entry keyed by the
 * backend's reply tuple (backend -> client). Each value says what to rewrite: the
 * source (SNAT bit: saddr/sport := nat_saddr/nat_sport), the destination (DNAT bit:
 * daddr/dport := nat_daddr/nat_dport), or both (hairpin). An ICMP error carrying a
 * packet of the flow finds the same entries with the embedded tuple swapped.
 *
 * The dataplane only refreshes last_seen_ns, tcp_flags_seen and the counters; userspace
 * GC ages the two entries of a flow together (TCP: SYN only 60 s, established 6 h,
 * closing 10 s; UDP 60 s; ICMP 10 s). Byte order as in service.h.
 */
#ifndef WEIR_ABI_CONNTRACK_H
#define WEIR_ABI_CONNTRACK_H

#include <linux/types.h>
#include <weir/service.h>

struct weir_ct4_key {
	weir_ip4 saddr;
	weir_ip4 daddr;
	__be16 sport;  /* TCP/UDP/SCTP source port; ICMP echo: the identifier */
	__be16 dport;  /* TCP/UDP/SCTP destination port; ICMP echo: the identifier */
	__u8 protocol; /* IPPROTO_* */
	__u8 pad[3];
};

/* weir_ct4.flags */
enum weir_ct_flags {
	WEIR_CT_SNAT = 1 << 0,	   /* rewrite the source to nat_saddr/nat_sport */
	WEIR_CT_DNAT = 1 << 1,	   /* rewrite the destination to nat_daddr/nat_dport */
	WEIR_CT_REPLY = 1 << 2,	   /* this entry is the reply direction (backend -> client) */
	WEIR_CT_HAIRPIN = 1 << 3,  /* client and backend are the same address */
	WEIR_CT_NODEPORT = 1 << 4, /* created by from_host (NodePort / external / LB frontend) */
	WEIR_CT_SEEN = 1 << 5,	   /* a packet matched this entry after it was created */
	/* version 2 */
	WEIR_CT_TUNNEL = 1 << 6, /* the flow crosses the tunnel to or from tunnel_node */
	WEIR_CT_DSR = 1 << 7,	 /* the backend's node answers the client directly (DSR) */
};

/* weir_ct4.policy: the verdict the policy stage cached for the flow, so established
 * packets pay no policy lookup. 0: not checked (no policy applies, or policy is off). */
enum weir_ct_policy {
	WEIR_CT_POLICY_EGRESS_ALLOWED = 1 << 0,	 /* the sending pod's egress policy allowed it */
	WEIR_CT_POLICY_INGRESS_ALLOWED = 1 << 1, /* the receiving pod's ingress policy allowed it */
};

struct weir_ct4 {
	weir_ip4 nat_saddr;
	weir_ip4 nat_daddr;
	__be16 nat_sport;
	__be16 nat_dport;
	__u16 flags;	      /* enum weir_ct_flags */
	__u8 tcp_flags_seen;  /* OR of the TCP flags of every packet in this direction */
	__u8 policy;	      /* enum weir_ct_policy */
	__u32 frontend_id;    /* weir_frontend4.id of the service that created the flow; 0: none */
	weir_ip4 tunnel_node; /* the peer node's address for WEIR_CT_TUNNEL flows; 0: none */
	__u32 ifindex; /* interface of the flow's local end (redirect target); 0: the stack routes */
	__u32 pad;
	__u64 created_ns;   /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 last_seen_ns; /* bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC to the tick (1-4 ms) */
	__u64 packets;	    /* this direction, since creation */
	__u64 bytes;
};

/* weir_ct6 (issue 14): the IPv6 conntrack, the same entries and flags as weir_ct4_v2 with
 * 16-byte addresses. tunnel_node is the peer node's underlay address, IPv6 or, over an IPv4
 * underlay, v4-mapped (::ffff:a.b.c.d); all zero: none. */
struct weir_ct6_key {
	weir_ip6 saddr;
	weir_ip6 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 pad[3];
};

struct weir_ct6 {
	weir_ip6 nat_saddr;
	weir_ip6 nat_daddr;
	__be16 nat_sport;
	__be16 nat_dport;
	__u16 flags;	     /* enum weir_ct_flags */
	__u8 tcp_flags_seen; /* OR of the TCP flags of every packet in this direction */
	__u8 policy;	     /* enum weir_ct_policy */
	__u32 frontend_id;   /* weir_frontend6.id of the service that created the flow; 0: none */
	__u32 ifindex;	     /* interface of the flow's local end (redirect target); 0: the stack */
	weir_ip6 tunnel_node;
	__u64 created_ns;
	__u64 last_seen_ns;
	__u64 packets;
	__u64 bytes;
};

#endif
