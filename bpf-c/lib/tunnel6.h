/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The tunnel for IPv6 flows (weir/tunnel.h, issue 14): tunnel.h's VXLAN (same port, VNI,
 * outer UDP source port hash, mode in the inner Ethernet header) carrying an IPv6 packet over
 * either underlay, the one the node's address in weir_tunnel6 names:
 *
 *   IPv4 underlay (node ::ffff:a.b.c.d):
 *     eth | IP (20, DF) | UDP (8) | VXLAN (8) | eth (weir's, type IPv6) | IPv6 | L4   (+50)
 *   IPv6 underlay:
 *     eth | IPv6 (40)   | UDP (8) | VXLAN (8) | eth (weir's, type IPv6) | IPv6 | L4   (+70)
 *   DSR, either underlay: the inner packet also carries the backend the ingress node chose
 *     in a Destination Options header (weir_tunnel_dsr6_opt, +24): 18 bytes do not fit the
 *     inner source MAC, where IPv4's DSR backend goes
 *
 * Outer UDP checksum: 0 over IPv6 too. RFC 6935 allows a zero UDP checksum over IPv6 for
 * tunnel protocols and RFC 6936 says when: both ends are configured for it (weir is, at both
 * ends: the receiving node decapsulates in TC before its stack and never hands the datagram
 * to a UDP socket, which is what would drop it), and the payload carries its own checksum
 * (the inner TCP/UDP/ICMPv6 checksum is mandatory in IPv6 and checked by the backend's
 * stack). A corrupted outer header is caught anyway: another source fails the peer check
 * (tunnel_denied), another VNI or port is not weir's and the stack drops a zero-checksum
 * IPv6 datagram. And a computed checksum would not survive GSO: bpf_skb_adjust_room marks
 * the packet SKB_GSO_UDP_TUNNEL, never ..._CSUM, so segmentation would keep one packet's sum
 * for every segment. The cost: a middlebox on the underlay that drops zero-checksum IPv6 UDP
 * (RFC 6936 asks them not to) needs the IPv4 underlay (--tunnel-underlay ipv4).
 *
 * MTU: the route to the peer is looked up with the encapsulated length before anything is
 * rewritten; a packet that does not fit gets ICMPv6 Packet Too Big back to its client with
 * the MTU that fits (the route's minus the overhead, at least 1280: below that the packet is
 * dropped, tunnel_too_big), counted tunnel_frag_needed as IPv4's frag needed. A GSO packet
 * has its segment size lowered by bpf_skb_adjust_room instead.
 *
 * Decapsulation: a tunnel packet whose inner packet is IPv6 is from_host6's, whatever its
 * outer header: from_host hands the IPv4-outer ones over untouched (tunnel4_decap says
 * TUNNEL4_INNER_IPV6, the hook returns WEIR_TC_NEXT), so that one program owns the IPv6
 * path. The peer check is the outer family's: weir_nodes4 for an IPv4 outer source,
 * weir_nodes6 for an IPv6 one.
 */
#ifndef WEIR_LIB_TUNNEL6_H
#define WEIR_LIB_TUNNEL6_H

#include "compiler.h"
#include "counters.h"
#include "ip6.h"
#include "parse.h"
#include "reject6.h"
#include "tunnel.h"
#include <weir/counters.h>
#include <weir/tunnel.h>

#ifndef AF_INET6
#define AF_INET6 10
#endif
/* the kernel has them since 6.6; Debian's uapi headers may not */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV6
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#define TUNNEL6_OVERHEAD 70 /* outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14 */
#define TUNNEL6_DSR_OPT_LEN 24
#define TUNNEL6_MIN_MTU 1280 /* IPv6's minimum link MTU (RFC 8200) */
#define IPV6_PAYLOAD_LEN_OFF 4
#define IPV6_NEXTHDR_OFF 6

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct weir_node6_key);
	__type(value, struct weir_node6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_nodes6 SEC(".maps");

/* IPv6 pod CIDRs of the other nodes, and /128s of endpoints outside them */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 131072);
	__type(key, struct weir_tunnel6_key);
	__type(value, struct weir_tunnel6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_tunnel6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct weir_dsr_optout6_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_dsr_optout6 SEC(".maps");

/* The return mode of a new tunneled flow from IPv6 @client. */
static __always_inline __u8 tunnel6_mode_for(const void *client)
{
	struct weir_dsr_optout6_key k = {.prefixlen = 128};

	if (external_service_mode != WEIR_TUNNEL_MODE_DSR)
		return WEIR_TUNNEL_MODE_TUNNEL;
	ip6_copy(k.address, client);
	return bpf_map_lookup_elem(&weir_dsr_optout6, &k) ? WEIR_TUNNEL_MODE_TUNNEL
							  : WEIR_TUNNEL_MODE_DSR;
}

/* The node IPv6 @addr lives on, or NULL when it is on this node or unknown. */
static __always_inline const struct weir_tunnel6 *tunnel6_node_of(const void *addr)
{
	struct weir_tunnel6_key k = {.prefixlen = 128};

	ip6_copy(k.address, addr);
	return bpf_map_lookup_elem(&weir_tunnel6, &k);
}

/* Whether IPv6 @addr is a peer node's underlay address. */
static __always_inline int tunnel6_is_peer(const void *addr)
{
	struct weir_node6_key k;
	struct weir_node6 *n;

	ip6_copy(k.address, addr);
	n = bpf_map_lookup_elem(&weir_nodes6, &k);
	return n && (n->flags & WEIR_NODE_PEER);
}

/* What an IPv6 tunnel packet carries besides the packet, as tunnel4_meta; handed on in
 * skb->cb (20 bytes: one address, the port and the mode). In tunnel mode the address is the
 * peer node (the outer source, v4-mapped for an IPv4 outer header), where the replies go; in
 * DSR mode the backend, and the replies go to the client directly. */
struct tunnel6_meta {
	__u32 addr[4];
	__be16 backend_port; /* DSR: the backend's port */
	__u8 mode;	     /* enum weir_tunnel_mode */
	__u8 pad;
};

static __always_inline void tunnel6_meta_save(struct __sk_buff *skb, const struct tunnel6_meta *m)
{
	skb->cb[0] = m->addr[0];
	skb->cb[1] = m->addr[1];
	skb->cb[2] = m->addr[2];
	skb->cb[3] = m->addr[3];
	skb->cb[4] = ((__u32)m->backend_port << 16) | m->mode;
}

static __always_inline void tunnel6_meta_load(const struct __sk_buff *skb, struct tunnel6_meta *m)
{
	m->addr[0] = skb->cb[0];
	m->addr[1] = skb->cb[1];
	m->addr[2] = skb->cb[2];
	m->addr[3] = skb->cb[3];
	m->backend_port = skb->cb[4] >> 16;
	m->mode = skb->cb[4] & 0xff;
	m->pad = 0;
}

/* Where an encapsulated IPv6 packet goes, as tunnel4_route, over either underlay. */
struct tunnel6_route {
	__u32 src[4];	  /* the outer source: this node's address toward the peer (IPv4: src[3]) */
	__u32 dst[4];	  /* the peer node (IPv4: dst[3]) */
	__u32 nexthop[4]; /* the next hop toward it (IPv4: nexthop[3]) */
	__u32 ifindex;	  /* the underlay interface */
	__u32 mtu;	  /* TUNNEL_FRAG_NEEDED: the inner MTU that fits */
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
	__u16 family;  /* of the outer header: AF_INET or AF_INET6 */
	__u16 has_mac; /* dmac/smac are the neighbour's and ours */
	__u32 dsr_opt; /* TUNNEL6_DSR_OPT_LEN when the DSR option goes in, else 0 */
};

/* A send's working state, per CPU: the route and what the tunnel carries would not fit the
 * BPF stack on top of the hook's and the flow stage's frames (as weir_ct6_scratch). Never
 * pinned: per object. */
struct tunnel6_scratch {
	struct tunnel6_route rt;
	struct tunnel6_meta meta;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tunnel6_scratch);
} weir_tunnel6_scratch SEC(".maps");

static __always_inline struct tunnel6_scratch *tunnel6_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&weir_tunnel6_scratch, &zero);
}

/* The bytes encapsulation adds in front of the inner IPv6 packet toward @rt. */
static __always_inline __u32 tunnel6_overhead(const struct tunnel6_route *rt)
{
	return (rt->family == AF_INET ? TUNNEL4_OVERHEAD : TUNNEL6_OVERHEAD) + rt->dsr_opt;
}

/**
 * tunnel6_route - the route to @node (weir_tunnel6.node_ip / weir_ct6.tunnel_node: IPv6 or
 * v4-mapped) for @pkt once encapsulated, @dsr: with the DSR option
 *
 * Returns 0 (@rt filled), WEIR_REASON_TUNNEL_FRAG_NEEDED (rt->mtu: the MTU that fits),
 * WEIR_REASON_TUNNEL_TOO_BIG (not even 1280 bytes fit) or WEIR_REASON_TUNNEL_FAILED.
 */
__weir_slow_path int tunnel6_route(struct __sk_buff *skb, const struct packet *pkt,
				   const weir_ip6 *node_ip, __u32 dsr, struct tunnel6_route *rt)
{
	struct bpf_fib_lookup fib = {};
	const __u32 *node;
	__u32 overhead;
	long rc;

	/* a weir_ip6 pointer, not a __u32 one: the verifier sizes a global function's memory
	 * arguments by their type */
	if (!skb || !pkt || !node_ip || !rt)
		return WEIR_REASON_TUNNEL_FAILED;
	node = (const __u32 *)*node_ip;
	if (ip6_is_zero(node))
		return WEIR_REASON_TUNNEL_FAILED;
	rt->dsr_opt = dsr ? TUNNEL6_DSR_OPT_LEN : 0;
	if (ip6_is_v4_mapped(node) /* a node reached over IPv4 */) {
		rt->family = AF_INET;
		fib.family = AF_INET;
		fib.ipv4_dst = node[3];
	} else {
		rt->family = AF_INET6;
		fib.family = AF_INET6;
		ip6_copy(fib.ipv6_dst, node);
	}
	overhead = tunnel6_overhead(rt);
	fib.ifindex = skb->ifindex;
	fib.l4_protocol = IPPROTO_UDP;
	/* a GSO packet is checked per segment by adjust_room (its segment size shrinks) */
	fib.tot_len = skb->gso_size ? 0 : pkt->l3_len + overhead;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SRC);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		if (fib.mtu_result < TUNNEL6_MIN_MTU + overhead)
			return WEIR_REASON_TUNNEL_TOO_BIG;
		rt->mtu = fib.mtu_result - overhead;
		return WEIR_REASON_TUNNEL_FRAG_NEEDED;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return WEIR_REASON_TUNNEL_FAILED;
	ip6_copy(rt->dst, node);
	if (rt->family == AF_INET) {
		__builtin_memset(rt->src, 0, 12);
		__builtin_memset(rt->nexthop, 0, 12);
		rt->src[3] = fib.ipv4_src;
		rt->nexthop[3] = fib.ipv4_dst; /* the lookup leaves the next hop there */
	} else {
		ip6_copy(rt->src, fib.ipv6_src);
		ip6_copy(rt->nexthop, fib.ipv6_dst);
	}
	rt->ifindex = fib.ifindex;
	rt->has_mac = rc == BPF_FIB_LKUP_RET_SUCCESS;
	if (rt->has_mac) {
		__builtin_memcpy(rt->dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(rt->smac, fib.smac, ETH_ALEN);
	}
	return 0;
}

/* The packet does not fit the tunnel: ICMPv6 Packet Too Big with @mtu back to its sender,
 * as it sent it (reject6.h builds it). Returns the verdict, or negative (drop). A global
 * function: the quote is on its own frame, not on the hook's. */
__weir_slow_path int tunnel6_packet_too_big(struct __sk_buff *skb, const struct packet *pkt,
					    __u32 mtu)
{
	if (!skb || !pkt)
		return -1;
	return reject6_icmp(skb, pkt, ICMPV6_PKT_TOOBIG, 0, bpf_htonl(mtu));
}

/* DSR: the backend the ingress node chose, as a Destination Options header right after the
 * inner IPv6 header (its L4 checksum does not change: the pseudo-header's length is the
 * upper layer's). Returns 0 or -1. */
static __always_inline int tunnel6_dsr_opt_push(struct __sk_buff *skb, const struct packet *pkt,
						const struct tunnel6_meta *meta)
{
	struct weir_tunnel_dsr6_opt opt = {
		.hdrlen = TUNNEL6_DSR_OPT_LEN / 8 - 1,
		.opt_type = WEIR_TUNNEL_DSR6_OPT,
		.opt_len = 18,
		.pad = {1, 0},
	};
	__be16 plen;
	__u8 nh;

	if (bpf_skb_load_bytes(skb, pkt->l3_off + IPV6_PAYLOAD_LEN_OFF, &plen, sizeof(plen)) ||
	    bpf_skb_load_bytes(skb, pkt->l3_off + IPV6_NEXTHDR_OFF, &nh, sizeof(nh)))
		return -1;
	opt.nexthdr = nh;
	ip6_copy(opt.backend, meta->addr);
	opt.port = meta->backend_port;
	if (bpf_skb_adjust_room(skb, TUNNEL6_DSR_OPT_LEN, BPF_ADJ_ROOM_NET, 0))
		return -1;
	plen = bpf_htons(bpf_ntohs(plen) + TUNNEL6_DSR_OPT_LEN);
	nh = IPPROTO_DSTOPTS;
	if (bpf_skb_store_bytes(skb, pkt->l3_off + IPV6_PAYLOAD_LEN_OFF, &plen, sizeof(plen), 0) ||
	    bpf_skb_store_bytes(skb, pkt->l3_off + IPV6_NEXTHDR_OFF, &nh, sizeof(nh), 0) ||
	    bpf_skb_store_bytes(skb, pkt->l3_off + sizeof(struct ipv6hdr), &opt,
				TUNNEL6_DSR_OPT_LEN, 0))
		return -1;
	return 0;
}

struct tunnel6_hdr {
	struct ipv6hdr ip;
	struct udphdr udp;
	struct tunnel_vxlan vx;
} __attribute__((packed, aligned(4)));

/* Out the underlay, as tunnel4_send, with the next hop of either family. */
static __always_inline int tunnel6_send(struct __sk_buff *skb, const struct tunnel6_route *rt)
{
	struct bpf_redir_neigh nh = {};

	if (rt->has_mac) {
		if (bpf_skb_store_bytes(skb, 0, rt->dmac, 2 * ETH_ALEN, 0))
			return -1;
		return bpf_redirect(rt->ifindex, 0);
	}
	if (rt->family == AF_INET) {
		nh.nh_family = AF_INET;
		nh.ipv4_nh = rt->nexthop[3];
	} else {
		nh.nh_family = AF_INET6;
		ip6_copy(nh.ipv6_nh, rt->nexthop);
	}
	return bpf_redirect_neigh(rt->ifindex, &nh, sizeof(nh), 0);
}

/**
 * tunnel6_encap - wraps the IPv6 packet @pkt (translated; in DSR mode as the client sent it)
 * in VXLAN toward @rt (tunnel6_route) and redirects it; in DSR mode (@meta->mode) the
 * backend in @meta goes into the inner packet first
 *
 * Returns the TC verdict (redirect), or -1 when the packet could not be encapsulated (the
 * caller drops it).
 */
__weir_slow_path int tunnel6_encap(struct __sk_buff *skb, const struct packet *pkt,
				   const struct tunnel6_route *rt, const struct tunnel6_meta *meta)
{
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
		      BPF_F_ADJ_ROOM_ENCAP_L2(sizeof(struct ethhdr));
	union {
		struct tunnel4_hdr v4;
		struct tunnel6_hdr v6;
	} h = {};
	__be16 outer_proto;
	__u32 outer_len, hash, outer_hlen;

	if (!skb || !pkt || !rt || !meta || skb->len < sizeof(struct ethhdr))
		return -1;
	if (meta->mode == WEIR_TUNNEL_MODE_DSR && tunnel6_dsr_opt_push(skb, pkt, meta))
		return -1;
	hash = bpf_get_hash_recalc(skb);
	if (rt->family == AF_INET) {
		outer_hlen = TUNNEL4_OVERHEAD;
		/* from the outer IP header on: the packet's IPv6 datagram and all the headers */
		outer_len = skb->len - sizeof(struct ethhdr) + TUNNEL4_OVERHEAD;
		tunnel4_outer_fill(&h.v4.ip, &h.v4.udp, rt->src[3], rt->dst[3], outer_len, hash);
		tunnel_vxlan_fill(&h.v4.vx, meta->mode, bpf_htons(ETH_P_IPV6));
		flags |= BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
		outer_proto = bpf_htons(ETH_P_IP);
	} else {
		outer_hlen = TUNNEL6_OVERHEAD;
		outer_len = skb->len - sizeof(struct ethhdr) + TUNNEL6_OVERHEAD;
		h.v6.ip.version = 6;
		/* the flow label from the inner flow's hash: ECMP on the outer header alone (RFC 6438) */
		h.v6.ip.flow_lbl[0] = (hash >> 16) & 0x0f;
		h.v6.ip.flow_lbl[1] = hash >> 8;
		h.v6.ip.flow_lbl[2] = hash;
		h.v6.ip.payload_len = bpf_htons(outer_len - sizeof(struct ipv6hdr));
		h.v6.ip.nexthdr = IPPROTO_UDP;
		h.v6.ip.hop_limit = 64;
		ip6_copy(&h.v6.ip.saddr, rt->src);
		ip6_copy(&h.v6.ip.daddr, rt->dst);
		h.v6.udp.source = tunnel_udp_sport(hash);
		h.v6.udp.dest = bpf_htons(tunnel_port);
		h.v6.udp.len = h.v6.ip.payload_len;
		/* check 0: see the file comment (RFC 6935/6936) */
		tunnel_vxlan_fill(&h.v6.vx, meta->mode, bpf_htons(ETH_P_IPV6));
		flags |= BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
		outer_proto = bpf_htons(ETH_P_IPV6);
	}
	if (bpf_skb_adjust_room(skb, outer_hlen, BPF_ADJ_ROOM_MAC, flags))
		return -1;
	if (outer_hlen == TUNNEL4_OVERHEAD) {
		if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &h, TUNNEL4_OVERHEAD, 0))
			return -1;
	} else if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &h, TUNNEL6_OVERHEAD, 0)) {
		return -1;
	}
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &outer_proto,
				sizeof(outer_proto), 0))
		return -1;
	return tunnel6_send(skb, rt);
}

/* DSR: the option the ingress node put after the inner IPv6 header, read into @meta and
 * removed, so the packet is again as the client sent it. Returns 0, or the reason to drop. */
static __always_inline int tunnel6_dsr_opt_pop(struct __sk_buff *skb, const struct packet *pkt,
					       struct tunnel6_meta *meta)
{
	struct weir_tunnel_dsr6_opt opt;
	__be16 plen;
	__u8 nh;

	if (bpf_skb_load_bytes(skb, pkt->l3_off + IPV6_NEXTHDR_OFF, &nh, sizeof(nh)) ||
	    nh != IPPROTO_DSTOPTS ||
	    bpf_skb_load_bytes(skb, pkt->l3_off + sizeof(struct ipv6hdr), &opt, sizeof(opt)) ||
	    opt.hdrlen != TUNNEL6_DSR_OPT_LEN / 8 - 1 || opt.opt_type != WEIR_TUNNEL_DSR6_OPT ||
	    opt.opt_len != 18)
		return WEIR_REASON_TUNNEL_FAILED;
	ip6_copy(meta->addr, opt.backend);
	meta->backend_port = opt.port;
	plen = bpf_htons(pkt->l3_len - sizeof(struct ipv6hdr) - TUNNEL6_DSR_OPT_LEN);
	nh = opt.nexthdr;
	if (bpf_skb_adjust_room(skb, -TUNNEL6_DSR_OPT_LEN, BPF_ADJ_ROOM_NET, 0) ||
	    bpf_skb_store_bytes(skb, pkt->l3_off + IPV6_PAYLOAD_LEN_OFF, &plen, sizeof(plen), 0) ||
	    bpf_skb_store_bytes(skb, pkt->l3_off + IPV6_NEXTHDR_OFF, &nh, sizeof(nh), 0))
		return WEIR_REASON_TUNNEL_FAILED;
	return 0;
}

/* The inner packet in @pkt, parsed after a decapsulation: 0, or the reason to drop it. */
static __always_inline int tunnel6_parse_inner(struct __sk_buff *skb, struct packet *pkt)
{
	enum weir_reason reason;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, pkt);
	if (reason != WEIR_REASON_PARSED_TCP && reason != WEIR_REASON_PARSED_UDP &&
	    reason != WEIR_REASON_PARSED_ICMPV6 && reason != WEIR_REASON_PARSED_OTHER_L4)
		return reason == WEIR_REASON_PASS ? WEIR_REASON_TUNNEL_FAILED : reason;
	if (pkt->l3_proto != ETH_P_IPV6 || (pkt->flags & PKT_F_FRAGMENT))
		return WEIR_REASON_TUNNEL_FAILED;
	return 0;
}

/* Whether @pkt (parsed, outer, either family) may be a tunnel packet: UDP to the tunnel port,
 * not a fragment. */
static __always_inline int tunnel6_candidate(const struct packet *pkt, enum weir_reason parsed)
{
	return parsed == WEIR_REASON_PARSED_UDP && !(pkt->flags & PKT_F_FRAGMENT) &&
	       tunnel4_candidate(pkt);
}

/**
 * tunnel6_decap - @pkt is a UDP packet to the tunnel port (tunnel6_candidate) with an IPv4
 * or IPv6 outer header: when it is weir's (VXLAN with weir's VNI) from a peer node and
 * carries IPv6, strips the outer headers (and in DSR mode the option naming the backend) and
 * parses the inner packet into @pkt. What it carried is saved in skb->cb (tunnel6_meta_load).
 *
 * Returns -1 when the packet is not weir's (left as it is), 0 when @pkt is now the inner
 * packet, or the reason to drop it (TUNNEL_DENIED, TUNNEL_FAILED, an inner parse reason).
 */
__weir_slow_path int tunnel6_decap(struct __sk_buff *skb, struct packet *pkt)
{
	struct tunnel6_meta meta = {};
	struct tunnel_vxlan vx;
	__be16 inner_proto = bpf_htons(ETH_P_IPV6);
	__u32 overhead;
	__u64 flags = 0;
	int v4, reason;

	if (!skb || !pkt)
		return -1;
	v4 = pkt->l3_proto == ETH_P_IP;
	overhead = v4 ? TUNNEL4_OVERHEAD : TUNNEL6_OVERHEAD;
	if (pkt->l3_len < overhead - sizeof(struct ethhdr) + sizeof(struct ethhdr) + 40 ||
	    bpf_skb_load_bytes(skb, pkt->l4_off + sizeof(struct udphdr), &vx, TUNNEL_VXLAN_LEN))
		return -1;
	if (!tunnel_vxlan_is_weirs(&vx))
		return -1;
	if (v4) {
		if (!tunnel4_is_peer(pkt->saddr.v4))
			return WEIR_REASON_TUNNEL_DENIED;
		/* weir never sends IP options or IPv6 extension headers outside */
		if (pkt->l4_off != pkt->l3_off + sizeof(struct iphdr))
			return WEIR_REASON_TUNNEL_FAILED;
		meta.addr[2] = bpf_htonl(0xffff);
		meta.addr[3] = pkt->saddr.v4;
		flags = BPF_F_ADJ_ROOM_DECAP_L3_IPV6;
	} else {
		if (!tunnel6_is_peer(pkt->saddr.v6))
			return WEIR_REASON_TUNNEL_DENIED;
		if (pkt->l4_off != pkt->l3_off + sizeof(struct ipv6hdr))
			return WEIR_REASON_TUNNEL_FAILED;
		ip6_copy(meta.addr, pkt->saddr.v6);
	}
	if (vx.eth.h_proto != inner_proto)
		return WEIR_REASON_TUNNEL_FAILED; /* IPv4 in IPv6: weir never sends it */
	meta.mode = tunnel_vxlan_mode(&vx);
	count(WEIR_HOOK_FROM_HOST, WEIR_REASON_TUNNEL_DECAP, pkt->len);
	if (bpf_skb_adjust_room(skb, -(__s32)overhead, BPF_ADJ_ROOM_MAC, flags))
		return WEIR_REASON_TUNNEL_FAILED;
	/* the outer Ethernet header stays: it now says what follows */
	if (v4 && bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &inner_proto,
				      sizeof(inner_proto), 0))
		return WEIR_REASON_TUNNEL_FAILED;
	reason = tunnel6_parse_inner(skb, pkt);
	if (reason)
		return reason;
	if (meta.mode == WEIR_TUNNEL_MODE_DSR) {
		reason = tunnel6_dsr_opt_pop(skb, pkt, &meta);
		if (reason)
			return reason;
		reason = tunnel6_parse_inner(skb, pkt);
		if (reason)
			return reason;
	}
	tunnel6_meta_save(skb, &meta);
	/* as lb6_accept for the outer packet: without them conntrack and policy see port 0 */
	if (pkt->l4_proto == IPPROTO_SCTP)
		return parse_sctp_ports(skb, pkt);
	return 0;
}

/* not a TC verdict: the packet is too big for the tunnel, and the hook answers it
 * (tunnel6_too_big_at_hook, with the MTU in the scratch's route): Packet Too Big's quote on top
 * of the flow stages' frames would not fit the BPF stack */
#define WEIR_TC_TOO_BIG_PENDING 0x7ffd

/**
 * tunnel6_send_prepare - the first half of sending @pkt (not yet rewritten) into the tunnel
 * toward @node: the route into @rt (the scratch's). A packet too big for it is left to the hook
 * (*verdict WEIR_TC_TOO_BIG_PENDING), to be answered as the client sent it. The caller then
 * NATs (tunnel mode) and calls tunnel6_send_finish.
 * Returns 0, or the reason the packet did not go (with *verdict set).
 */
static __always_inline enum weir_reason tunnel6_send_prepare(struct __sk_buff *skb,
							     const struct packet *pkt,
							     const weir_ip6 *node, __u8 mode,
							     struct tunnel6_route *rt, int *verdict)
{
	int reason;

	reason = tunnel6_route(skb, pkt, node, mode == WEIR_TUNNEL_MODE_DSR, rt);
	if (reason == WEIR_REASON_TUNNEL_FRAG_NEEDED) {
		*verdict = WEIR_TC_TOO_BIG_PENDING;
		return WEIR_REASON_TUNNEL_FRAG_NEEDED;
	}
	if (reason) {
		*verdict = WEIR_TC_DROP;
		return reason;
	}
	return 0;
}

/* The hook's half of a packet too big for the tunnel (*verdict WEIR_TC_TOO_BIG_PENDING): ICMPv6
 * Packet Too Big back to its sender, with the MTU tunnel6_route left in the scratch. */
static __always_inline void tunnel6_too_big_at_hook(struct __sk_buff *skb, const struct packet *pkt,
						    int *verdict)
{
	struct tunnel6_scratch *s;
	int ret = -1;

	if (*verdict != WEIR_TC_TOO_BIG_PENDING)
		return;
	s = tunnel6_scratch();
	if (s)
		ret = tunnel6_packet_too_big(skb, pkt, s->rt.mtu);
	*verdict = ret < 0 ? WEIR_TC_DROP : ret;
}

/* The second half: encapsulate, count, redirect. Returns 0 or the reason to drop. */
static __always_inline enum weir_reason
tunnel6_send_finish(struct __sk_buff *skb, const struct packet *pkt, const struct tunnel6_route *rt,
		    const struct tunnel6_meta *meta, __u32 hook, int *verdict)
{
	int ret = tunnel6_encap(skb, pkt, rt, meta);

	if (ret < 0) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_TUNNEL_FAILED;
	}
	count(hook, WEIR_REASON_TUNNEL_ENCAP, pkt->len);
	*verdict = ret;
	return 0;
}

#endif
