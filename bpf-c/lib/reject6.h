/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Reject for IPv6, as reject.h's for IPv4: a packet to a frontend with no usable endpoint
 * becomes, in place, the ICMPv6 destination unreachable / port unreachable (type 1, code 4)
 * the frontend would have sent, back out the interface it came in on. Linux fails a connect()
 * with ECONNREFUSED on it (TCP too: icmpv6_err_convert), so clients fail at once.
 *
 *   in:  eth | IPv6 (40 + ext) | L4 ...                      client -> frontend
 *   out: eth (MACs swapped) | IPv6 (40) | ICMPv6 1/4 (8) | IPv6 (40 + ext) | 8 bytes of L4
 *                                                            frontend -> client
 *
 * Unlike ICMPv4's, the ICMPv6 checksum covers a pseudo-header (RFC 4443 2.3), so it is
 * summed over the new header's addresses, the length and the next header too.
 */
#ifndef WEIR_LIB_REJECT6_H
#define WEIR_LIB_REJECT6_H

#include "compiler.h"
#include "csum.h"
#include "parse.h"
#include <linux/icmpv6.h>

#define REJECT6_HDR_MAX (40 + 64)		 /* IPv6 header + extension headers we quote */
#define REJECT6_QUOTE_MAX (REJECT6_HDR_MAX + 20) /* + a full TCP header */
#define REJECT6_HOP_LIMIT 64

struct reject6_hdr {
	struct ipv6hdr ip;
	struct icmp4_hdr icmp; /* the ICMPv6 header has the same 8 bytes */
};

/* The IPv6 pseudo-header's last 8 bytes (RFC 8200 8.1): upper-layer length, next header. */
struct reject6_pseudo_tail {
	__be32 len;
	__be32 nexthdr;
};

/* Turns @pkt into ICMPv6 @type/@code (the 4 bytes after the checksum: @rest, network order)
 * from its destination back to its source, out the interface it came in on. Returns the
 * redirect verdict, or a negative errno when the packet could not be turned around (the
 * caller drops it). */
static __always_inline int reject6_icmp(struct __sk_buff *skb, const struct packet *pkt, __u8 type,
					__u8 code, __be32 rest)
{
	__u8 quote[REJECT6_QUOTE_MAX] __attribute__((aligned(4)));
	__u32 hlen = pkt->l4_off - pkt->l3_off;
	__u32 l4_avail = pkt->l3_len - hlen;
	__u32 quoted = 8;
	struct reject6_pseudo_tail tail = {};
	struct reject6_hdr hdr = {};
	struct ethhdr eth;
	__u8 mac[ETH_ALEN];
	__u32 sum;
	int err;

	if (hlen < 40 || hlen > REJECT6_HDR_MAX || (hlen & 3) || l4_avail < 8)
		return -1;
	/* the IPv6 header(s) and 8 bytes of transport header, as reject4 quotes; a
	 * CHECKSUM_PARTIAL skb refuses a trim that cuts off its pending TCP checksum, so TCP
	 * falls back to quoting the 20-byte TCP header */
	err = bpf_skb_change_tail(skb, pkt->l3_off + hlen + quoted, 0);
	if (err) {
		if (pkt->l4_proto != IPPROTO_TCP || l4_avail < 20)
			return err;
		quoted = 20;
		err = bpf_skb_change_tail(skb, pkt->l3_off + hlen + quoted, 0);
		if (err)
			return err;
	}
	quoted += hlen;
	if (quoted > REJECT6_QUOTE_MAX) /* for the verifier: hlen was bounded above */
		return -1;
	err = bpf_skb_load_bytes(skb, pkt->l3_off, quote, quoted);
	if (err)
		return err;

	err = bpf_skb_adjust_room(skb, sizeof(hdr), BPF_ADJ_ROOM_MAC, 0);
	if (err)
		return err;

	hdr.ip.version = 6;
	hdr.ip.payload_len = bpf_htons(sizeof(hdr.icmp) + quoted);
	hdr.ip.nexthdr = IPPROTO_ICMPV6;
	hdr.ip.hop_limit = REJECT6_HOP_LIMIT;
	__builtin_memcpy(&hdr.ip.saddr, pkt->daddr.v6, 16);
	__builtin_memcpy(&hdr.ip.daddr, pkt->saddr.v6, 16);
	hdr.icmp.type = type;
	hdr.icmp.code = code;
	hdr.icmp.rest = rest;
	tail.len = bpf_htonl(sizeof(hdr.icmp) + quoted);
	tail.nexthdr = bpf_htonl(IPPROTO_ICMPV6);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&hdr.ip.saddr, 32, 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&tail, sizeof(tail), sum);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&hdr.icmp, sizeof(hdr.icmp), sum);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)quote, quoted, sum);
	hdr.icmp.checksum = csum_fold32(sum);
	err = bpf_skb_store_bytes(skb, pkt->l3_off, &hdr, sizeof(hdr), BPF_F_RECOMPUTE_CSUM);
	if (err)
		return err;

	err = bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth));
	if (err)
		return err;
	__builtin_memcpy(mac, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, mac, ETH_ALEN);
	err = bpf_skb_store_bytes(skb, 0, &eth, 2 * ETH_ALEN, BPF_F_RECOMPUTE_CSUM);
	if (err)
		return err;

	return bpf_redirect(skb->ifindex, 0);
}

/* The frontend has no usable endpoint: port unreachable. */
static __always_inline int reject6_port_unreachable(struct __sk_buff *skb, const struct packet *pkt)
{
	return reject6_icmp(skb, pkt, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0);
}

#endif
