/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The tunnel to other nodes (weir/tunnel.h): which node a pod address lives on, which nodes
 * weir accepts tunnel packets from, and the VXLAN encapsulation itself, done here in BPF
 * (Calico's way) rather than through a collect_md VXLAN device (Cilium's): no device to
 * create, size and keep per node, and the whole cost is in the program, where the bench
 * measures it (docs/dataplane.md, "Forwarding to other nodes").
 *
 *   out: eth | IP | L4 ...   ->   eth | IP (20, DF) | UDP (8, to tunnel_port) | VXLAN (8,
 *        VNI WEIR_TUNNEL_VNI) | eth (weir's: mode, DSR backend) | IP | L4 ...  (+50 bytes)
 *
 * The outer source is the node's address on the route to the peer (FIB, BPF_FIB_LOOKUP_SRC),
 * the outer UDP source port a hash of the inner flow (RFC 7348: spreads flows over the
 * underlay's ECMP paths), the UDP checksum 0 (allowed for IPv4). A packet that no longer fits
 * the route's MTU once encapsulated gets ICMP fragmentation needed back (DF set; the MTU
 * that fits is the route's minus 50), or is dropped (DF clear); a GSO packet has its segment
 * size lowered by 50 by bpf_skb_adjust_room instead, and is segmented on the way out.
 */
#ifndef WEIR_LIB_TUNNEL_H
#define WEIR_LIB_TUNNEL_H

#include "compiler.h"
#include "counters.h"
#include "csum.h"
#include "parse.h"
#include <weir/counters.h>
#include <weir/tunnel.h>
#include <linux/udp.h>

/* the outer UDP destination port (--tunnel-port) */
const volatile __u16 tunnel_port = 4789;
/* --external-service-mode: enum weir_tunnel_mode of new flows (clients in weir_dsr_optout4
 * keep tunnel) */
const volatile __u8 external_service_mode = WEIR_TUNNEL_MODE_TUNNEL;

#define TUNNEL4_OVERHEAD 50	  /* outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 */
#define VXLAN_FLAG_VNI 0x08000000 /* the I flag: the VNI is valid */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct weir_node4_key);
	__type(value, struct weir_node4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_nodes4 SEC(".maps");

/* pod CIDRs of the other nodes, and /32s of endpoints outside them (an LPM trie must not be
 * preallocated) */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 131072);
	__type(key, struct weir_tunnel4_key);
	__type(value, struct weir_tunnel4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_tunnel4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct weir_dsr_optout4_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_dsr_optout4 SEC(".maps");

/* The return mode of a new tunneled flow from @client. */
static __always_inline __u8 tunnel4_mode_for(weir_ip4 client)
{
	struct weir_dsr_optout4_key k = {.prefixlen = 32, .address = client};

	if (external_service_mode != WEIR_TUNNEL_MODE_DSR)
		return WEIR_TUNNEL_MODE_TUNNEL;
	return bpf_map_lookup_elem(&weir_dsr_optout4, &k) ? WEIR_TUNNEL_MODE_TUNNEL
							  : WEIR_TUNNEL_MODE_DSR;
}

/* What a tunnel packet carries besides the packet (weir/tunnel.h, the inner Ethernet).
 * Decapsulation hands it on in skb->cb (tunnel4_meta_save/load), not on the hook's stack:
 * the hook's frame and flow4_new's together are at the 512-byte limit. */
struct tunnel4_meta {
	__be32 peer;	     /* decapsulation: the outer source, the ingress node */
	__be32 backend;	     /* DSR: the backend the ingress node chose */
	__be16 backend_port; /* DSR: its port */
	__u8 mode;	     /* enum weir_tunnel_mode */
	__u8 pad;
};

#define TUNNEL4_MAC_MARK 0x02574549 /* 02:57:45:49 ("WEI"), the inner destination MAC's head */
/* tunnel4_decap: weir's, from a peer or not, with an IPv6 packet inside: the hook hands it
 * to the IPv6 program after it (WEIR_TC_NEXT), whose tunnel6_decap owns IPv6 inners */
#define TUNNEL4_INNER_IPV6 -2

static __always_inline void tunnel4_meta_save(struct __sk_buff *skb, const struct tunnel4_meta *m)
{
	skb->cb[0] = m->peer;
	skb->cb[1] = m->backend;
	skb->cb[2] = ((__u32)m->backend_port << 16) | m->mode;
}

static __always_inline void tunnel4_meta_load(const struct __sk_buff *skb, struct tunnel4_meta *m)
{
	m->peer = skb->cb[0];
	m->backend = skb->cb[1];
	m->backend_port = skb->cb[2] >> 16;
	m->mode = skb->cb[2] & 0xff;
}

/* The node @addr lives on, or NULL when it is on this node or unknown. */
static __always_inline const struct weir_tunnel4 *tunnel4_node_of(weir_ip4 addr)
{
	struct weir_tunnel4_key k = {.prefixlen = 32, .address = addr};

	return bpf_map_lookup_elem(&weir_tunnel4, &k);
}

/* Whether @addr is a peer node's underlay address. */
static __always_inline int tunnel4_is_peer(weir_ip4 addr)
{
	struct weir_node4_key k = {.address = addr};
	struct weir_node4 *n = bpf_map_lookup_elem(&weir_nodes4, &k);

	return n && (n->flags & WEIR_NODE_PEER);
}

/* Whether @pkt (parsed, outer) may be a tunnel packet: UDP to the tunnel port. */
static __always_inline int tunnel4_candidate(const struct packet *pkt)
{
	return pkt->l4_proto == IPPROTO_UDP && pkt->dport == bpf_htons(tunnel_port);
}

/* VXLAN and weir's inner Ethernet header: the same under either outer header (tunnel6.h) */
struct tunnel_vxlan {
	__be32 flags;
	__be32 vni;
	struct ethhdr eth;
} __attribute__((packed, aligned(4)));
#define TUNNEL_VXLAN_LEN 22 /* without the padding of the aligned struct */

/* The inner Ethernet header carries the mode (and in IPv4 DSR the backend, tunnel4_encap);
 * @inner_proto: the ethertype of the packet it carries. */
static __always_inline void tunnel_vxlan_fill(struct tunnel_vxlan *vx, __u8 mode,
					      __be16 inner_proto)
{
	vx->flags = bpf_htonl(VXLAN_FLAG_VNI);
	vx->vni = bpf_htonl(WEIR_TUNNEL_VNI << 8);
	*(__be32 *)&vx->eth.h_dest[0] = bpf_htonl(TUNNEL4_MAC_MARK);
	vx->eth.h_dest[5] = mode;
	vx->eth.h_proto = inner_proto;
}

/* Whether @vx (the 8 bytes after the outer UDP header) is weir's: the I flag, weir's VNI. */
static __always_inline int tunnel_vxlan_is_weirs(const struct tunnel_vxlan *vx)
{
	return (vx->flags & bpf_htonl(VXLAN_FLAG_VNI)) &&
	       vx->vni == bpf_htonl(WEIR_TUNNEL_VNI << 8);
}

/* The mode the inner Ethernet header says (anything but weir's DSR mark is tunnel mode). */
static __always_inline __u8 tunnel_vxlan_mode(const struct tunnel_vxlan *vx)
{
	return *(__be32 *)&vx->eth.h_dest[0] == bpf_htonl(TUNNEL4_MAC_MARK) &&
			       vx->eth.h_dest[5] == WEIR_TUNNEL_MODE_DSR
		       ? WEIR_TUNNEL_MODE_DSR
		       : WEIR_TUNNEL_MODE_TUNNEL;
}

/* The outer UDP source port: a hash of the inner flow in 49152..65535 (RFC 7348: spreads
 * flows over the underlay's ECMP paths). */
static __always_inline __be16 tunnel_udp_sport(__u32 hash)
{
	return bpf_htons(0xc000 | (hash & 0x3fff));
}

/* The outer IPv4 and UDP headers, @outer_len bytes from the IP header on. */
static __always_inline void tunnel4_outer_fill(struct iphdr *ip, struct udphdr *udp, __be32 src,
					       __be32 dst, __u32 outer_len, __u32 hash)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = bpf_htons(outer_len);
	ip->frag_off =
		bpf_htons(0x4000); /* DF: fragmentation is the sender's, through frag needed */
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->saddr = src;
	ip->daddr = dst;
	ip->check = csum_fold32(bpf_csum_diff(NULL, 0, (__be32 *)ip, sizeof(*ip), 0));
	udp->source = tunnel_udp_sport(hash);
	udp->dest = bpf_htons(tunnel_port);
	udp->len = bpf_htons(outer_len - sizeof(struct iphdr));
}

struct tunnel4_hdr {
	struct iphdr ip;
	struct udphdr udp;
	struct tunnel_vxlan vx;
} __attribute__((packed, aligned(4)));

/* Where an encapsulated packet goes: found before the packet is rewritten, so that a packet
 * too big for it is sent back (frag needed) as its sender sent it. */
struct tunnel4_route {
	__be32 src;	     /* the outer source: this node's address toward the peer */
	__be32 dst;	     /* the peer node */
	__u32 ifindex;	     /* the underlay interface */
	__u32 mtu;	     /* TUNNEL_FRAG_NEEDED: the inner MTU that fits */
	__be32 nexthop;	     /* the next hop toward the peer (the peer, or a gateway) */
	__u8 dmac[ETH_ALEN]; /* its MAC, when the kernel has its neighbour (has_mac) */
	__u8 smac[ETH_ALEN];
	__u32 has_mac;
};

/**
 * tunnel4_route - the route to @node_ip for @pkt once encapsulated
 *
 * Returns 0 (@rt filled), WEIR_REASON_TUNNEL_FRAG_NEEDED (rt->mtu: the MTU that fits, DF
 * set), WEIR_REASON_TUNNEL_TOO_BIG (DF clear) or WEIR_REASON_TUNNEL_FAILED (no route).
 */
__weir_slow_path int tunnel4_route(struct __sk_buff *skb, const struct packet *pkt, __u32 node_ip,
				   struct tunnel4_route *rt)
{
	struct bpf_fib_lookup fib = {};
	__be16 frag_off;
	long rc;

	if (!skb || !pkt || !rt || !node_ip)
		return WEIR_REASON_TUNNEL_FAILED;
	fib.family = AF_INET;
	fib.ifindex = skb->ifindex;
	fib.l4_protocol = IPPROTO_UDP;
	fib.ipv4_dst = node_ip;
	/* a GSO packet is checked per segment by adjust_room (its segment size shrinks) */
	fib.tot_len = skb->gso_size ? 0 : pkt->l3_len + TUNNEL4_OVERHEAD;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SRC);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		if (bpf_skb_load_bytes(skb, pkt->l3_off + 6, &frag_off, sizeof(frag_off)))
			return WEIR_REASON_TUNNEL_FAILED;
		if (!(frag_off & bpf_htons(0x4000)) || fib.mtu_result < 68 + TUNNEL4_OVERHEAD)
			return WEIR_REASON_TUNNEL_TOO_BIG;
		rt->mtu = fib.mtu_result - TUNNEL4_OVERHEAD;
		return WEIR_REASON_TUNNEL_FRAG_NEEDED;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return WEIR_REASON_TUNNEL_FAILED;
	rt->src = fib.ipv4_src;
	rt->dst = node_ip;
	rt->ifindex = fib.ifindex;
	rt->nexthop = fib.ipv4_dst; /* the lookup leaves the next hop there */
	rt->has_mac = rc == BPF_FIB_LKUP_RET_SUCCESS;
	if (rt->has_mac) {
		__builtin_memcpy(rt->dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(rt->smac, fib.smac, ETH_ALEN);
	}
	return 0;
}

/* Out the underlay: with the neighbour's MAC from the FIB, a plain redirect; without it, the
 * neighbour subsystem resolves the next hop (no route lookup of its own either way: the
 * helper's own lookup allocates a route per packet). */
static __always_inline int tunnel4_send(struct __sk_buff *skb, const struct tunnel4_route *rt)
{
	struct bpf_redir_neigh nh = {};

	if (rt->has_mac) {
		if (bpf_skb_store_bytes(skb, 0, rt->dmac, 2 * ETH_ALEN, 0))
			return -1;
		return bpf_redirect(rt->ifindex, 0);
	}
	nh.nh_family = AF_INET;
	nh.ipv4_nh = rt->nexthop;
	return bpf_redirect_neigh(rt->ifindex, &nh, sizeof(nh), 0);
}

/**
 * tunnel4_encap - wraps the (translated) packet in VXLAN toward @rt and redirects it
 *
 * Returns the TC verdict (redirect), or -1 when the packet could not be encapsulated (the
 * caller drops it).
 */
__weir_slow_path int tunnel4_encap(struct __sk_buff *skb, const struct tunnel4_route *rt,
				   const struct tunnel4_meta *meta)
{
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
		      BPF_F_ADJ_ROOM_ENCAP_L2_ETH | BPF_F_ADJ_ROOM_ENCAP_L2(sizeof(struct ethhdr));
	struct tunnel4_hdr h = {};
	__u32 outer_len, hash;

	if (!skb || !rt || !meta || skb->len < sizeof(struct ethhdr))
		return -1;
	outer_len = skb->len - sizeof(struct ethhdr) + TUNNEL4_OVERHEAD;
	hash = bpf_get_hash_recalc(skb);
	tunnel4_outer_fill(&h.ip, &h.udp, rt->src, rt->dst, outer_len, hash);
	tunnel_vxlan_fill(&h.vx, meta->mode, bpf_htons(ETH_P_IP));
	*(__be32 *)&h.vx.eth.h_source[0] = meta->backend;
	*(__be16 *)&h.vx.eth.h_source[4] = meta->backend_port;
	if (bpf_skb_adjust_room(skb, TUNNEL4_OVERHEAD, BPF_ADJ_ROOM_MAC, flags))
		return -1;
	if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &h, TUNNEL4_OVERHEAD, 0))
		return -1;
	return tunnel4_send(skb, rt);
}

/**
 * tunnel4_decap - @pkt is a UDP packet to the tunnel port (tunnel4_candidate): when it is
 * weir's (VXLAN with weir's VNI) from a peer node, strips the outer headers and parses the
 * inner packet into @pkt
  * What the packet carries (the peer node: the outer source; the mode; the DSR backend) is
 * saved in skb->cb for flow4_tunnel_new (tunnel4_meta_load).
 *
 * Returns -1 when the packet is not weir's (left as it is), TUNNEL4_INNER_IPV6 when it is
 * weir's with an IPv6 packet inside (left as it is, for from_host6), 0 when @pkt is now the
 * inner packet, or the reason to drop it (TUNNEL_DENIED, TUNNEL_FAILED, an inner parse
 * reason).
 */
__weir_slow_path int tunnel4_decap(struct __sk_buff *skb, struct packet *pkt)
{
	struct tunnel4_meta meta = {};
	struct tunnel_vxlan vx;
	enum weir_reason reason;

	if (!skb || !pkt)
		return -1;
	if (pkt->l3_len < TUNNEL4_OVERHEAD - sizeof(struct ethhdr) + 20 + sizeof(struct ethhdr) ||
	    bpf_skb_load_bytes(skb, pkt->l4_off + sizeof(struct udphdr), &vx, TUNNEL_VXLAN_LEN))
		return -1;
	if (!tunnel_vxlan_is_weirs(&vx))
		return -1;
	/* an IPv6 packet inside: from_host6's (tunnel6_decap), checked there */
	if (vx.eth.h_proto == bpf_htons(ETH_P_IPV6))
		return TUNNEL4_INNER_IPV6;
	if (!tunnel4_is_peer(pkt->saddr.v4))
		return WEIR_REASON_TUNNEL_DENIED;
	if (pkt->l4_off != pkt->l3_off + sizeof(struct iphdr)) /* weir never sends IP options */
		return WEIR_REASON_TUNNEL_FAILED;
	meta.peer = pkt->saddr.v4;
	meta.mode = tunnel_vxlan_mode(&vx);
	if (meta.mode == WEIR_TUNNEL_MODE_DSR) {
		meta.backend = *(__be32 *)&vx.eth.h_source[0];
		meta.backend_port = *(__be16 *)&vx.eth.h_source[4];
	}
	tunnel4_meta_save(skb, &meta);
	count(WEIR_HOOK_FROM_HOST, WEIR_REASON_TUNNEL_DECAP, pkt->len);
	if (bpf_skb_adjust_room(skb, -TUNNEL4_OVERHEAD, BPF_ADJ_ROOM_MAC, 0))
		return WEIR_REASON_TUNNEL_FAILED;
	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, pkt);
	if (reason != WEIR_REASON_PARSED_TCP && reason != WEIR_REASON_PARSED_UDP &&
	    reason != WEIR_REASON_PARSED_ICMP && reason != WEIR_REASON_PARSED_OTHER_L4)
		return reason == WEIR_REASON_PASS ? WEIR_REASON_TUNNEL_FAILED : reason;
	if (pkt->l3_proto != ETH_P_IP || (pkt->flags & PKT_F_FRAGMENT))
		return WEIR_REASON_TUNNEL_FAILED;
	/* as lb4_accept for the outer packet: without them conntrack and policy see port 0 */
	if (reason == WEIR_REASON_PARSED_OTHER_L4 && pkt->l4_proto == IPPROTO_SCTP)
		return parse_sctp_ports(skb, pkt);
	return 0;
}

#endif
