/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The bounds-safe packet parser every program starts with.
 *
 * parse_packet() reads Ethernet, IPv4 (with options) or IPv6 (with extension headers),
 * then TCP, UDP, ICMP or ICMPv6, and fills a struct packet with offsets and the
 * 5-tuple. It never trusts a length field: every header is checked against both the
 * linear data (data_end, for the verifier) and the packet's real length (what the IP
 * header claims must fit in what arrived). The result is one weir_reason: PARSED_*
 * for a packet we understood, NOT_IP / FRAGMENT for packets with nothing to parse,
 * MALFORMED_* for packets that lie about their lengths. Callers pass malformed packets
 * on untouched, so a broken packet is the stack's business, never ours.
 *
 * Offsets are stored rather than pointers because any helper that rewrites the packet
 * (bpf_skb_store_bytes, bpf_l3_csum_replace, ...) invalidates packet pointers.
 */
#ifndef WEIR_LIB_PARSE_H
#define WEIR_LIB_PARSE_H

#include "compiler.h"
#include <weir/counters.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#define PKT_F_FRAGMENT 0x01	/* part of a fragmented datagram (first or later) */
#define PKT_F_IPV4_OPTIONS 0x02 /* IPv4 header longer than 20 bytes */
#define PKT_F_IPV6_EXTHDR 0x04	/* at least one IPv6 extension header was skipped */

/* How many IPv6 extension headers we walk before giving up (as malformed). */
#define PARSE_IPV6_MAX_EXTHDRS 6

struct packet {
	__u16 l3_proto; /* ETH_P_IP or ETH_P_IPV6 (host order); 0 when not IP */
	__u8 l4_proto;	/* IPPROTO_* of the transport header (after IPv6 ext headers) */
	__u8 flags;	/* PKT_F_* */
	__u16 l3_off;	/* offset of the IP header from the start of the packet */
	__u16 l4_off;	/* offset of the transport header; valid when l4_proto is parsed */
	__u32 len;	/* the packet's full length as the hook sees it (L2 included) */
	__u32 l3_len; /* IP datagram length as the header claims it (IPv4 tot_len, IPv6 40 + payload) */
	union {
		__be32 v4;
		__u32 v6[4];
	} saddr, daddr; /* network order; IPv4 uses v4 only */
	__be16 sport;	/* TCP/UDP source port; ICMP echo: identifier */
	__be16 dport;	/* TCP/UDP destination port; ICMP echo: identifier */
	__u8 tcp_flags; /* TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 ttl; /* IPv4 TTL or IPv6 hop limit */
};

static __always_inline enum weir_reason parse_l4(void *data, void *data_end, struct packet *pkt)
{
	__u32 avail = pkt->l3_off + pkt->l3_len; /* the transport header must end before this */
	void *l4 = data + pkt->l4_off;

	switch (pkt->l4_proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		__u32 doff;

		if ((void *)(th + 1) > data_end || pkt->l4_off + sizeof(*th) > avail)
			return WEIR_REASON_MALFORMED_L4;
		doff = th->doff * 4;
		if (doff < sizeof(*th) || pkt->l4_off + doff > avail)
			return WEIR_REASON_MALFORMED_L4;
		pkt->sport = th->source;
		pkt->dport = th->dest;
		pkt->tcp_flags = ((__u8 *)th)[13];
		return WEIR_REASON_PARSED_TCP;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;
		__u32 ulen;

		if ((void *)(uh + 1) > data_end || pkt->l4_off + sizeof(*uh) > avail)
			return WEIR_REASON_MALFORMED_L4;
		ulen = bpf_ntohs(uh->len);
		/* a fragmented datagram's UDP length covers all fragments */
		if (ulen < sizeof(*uh) ||
		    (!(pkt->flags & PKT_F_FRAGMENT) && pkt->l4_off + ulen > avail))
			return WEIR_REASON_MALFORMED_L4;
		pkt->sport = uh->source;
		pkt->dport = uh->dest;
		return WEIR_REASON_PARSED_UDP;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* type, code, checksum and the 4-byte rest-of-header every ICMP message has */
		__u8 *ih = l4;

		if ((void *)(ih + 8) > data_end || pkt->l4_off + 8 > avail)
			return WEIR_REASON_MALFORMED_L4;
		pkt->icmp_type = ih[0];
		pkt->icmp_code = ih[1];
		pkt->sport = *(__be16 *)(ih + 4); /* echo identifier; meaningless for errors */
		pkt->dport = pkt->sport;
		return pkt->l4_proto == IPPROTO_ICMP ? WEIR_REASON_PARSED_ICMP
						     : WEIR_REASON_PARSED_ICMPV6;
	}
	default:
		return WEIR_REASON_PARSED_OTHER_L4;
	}
}

static __always_inline enum weir_reason parse_ipv4(void *data, void *data_end, struct packet *pkt)
{
	struct iphdr *iph = data + pkt->l3_off;
	__u32 hlen, tot_len;
	__u16 frag;

	if ((void *)(iph + 1) > data_end)
		return WEIR_REASON_MALFORMED_IPV4_HDR;
	if (iph->version != 4 || iph->ihl < 5)
		return WEIR_REASON_MALFORMED_IPV4_HDR;
	hlen = iph->ihl * 4;
	if (data + pkt->l3_off + hlen > data_end)
		return WEIR_REASON_MALFORMED_IPV4_HDR;
	tot_len = bpf_ntohs(iph->tot_len);
	/* shorter than its own header, or claiming bytes that never arrived; trailing
	 * bytes (Ethernet padding of short frames) are fine */
	if (tot_len < hlen || pkt->l3_off + tot_len > pkt->len)
		return WEIR_REASON_MALFORMED_IPV4_LEN;

	pkt->l3_len = tot_len;
	pkt->l4_proto = iph->protocol;
	pkt->l4_off = pkt->l3_off + hlen;
	pkt->saddr.v4 = iph->saddr;
	pkt->daddr.v4 = iph->daddr;
	pkt->ttl = iph->ttl;
	if (hlen > sizeof(*iph))
		pkt->flags |= PKT_F_IPV4_OPTIONS;

	frag = bpf_ntohs(iph->frag_off);
	if (frag & 0x3fff) { /* MF set or a fragment offset */
		pkt->flags |= PKT_F_FRAGMENT;
		if (frag & 0x1fff)
			return WEIR_REASON_FRAGMENT;
	}
	return parse_l4(data, data_end, pkt);
}

static __always_inline enum weir_reason parse_ipv6(void *data, void *data_end, struct packet *pkt)
{
	struct ipv6hdr *ip6h = data + pkt->l3_off;
	__u32 off;
	__u8 nexthdr;

	if ((void *)(ip6h + 1) > data_end || ip6h->version != 6)
		return WEIR_REASON_MALFORMED_IPV6;
	pkt->l3_len = sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len);
	if (pkt->l3_off + pkt->l3_len > pkt->len)
		return WEIR_REASON_MALFORMED_IPV6;
	__builtin_memcpy(pkt->saddr.v6, &ip6h->saddr, 16);
	__builtin_memcpy(pkt->daddr.v6, &ip6h->daddr, 16);
	pkt->ttl = ip6h->hop_limit;

	nexthdr = ip6h->nexthdr;
	off = pkt->l3_off + sizeof(*ip6h);
#pragma unroll
	for (int i = 0; i < PARSE_IPV6_MAX_EXTHDRS; i++) {
		__u8 *eh;

		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
		    nexthdr != IPPROTO_DSTOPTS && nexthdr != IPPROTO_FRAGMENT &&
		    nexthdr != IPPROTO_AH)
			break;
		if (off > 0xffff)
			return WEIR_REASON_MALFORMED_IPV6;
		eh = data + off;
		if ((void *)(eh + 8) > data_end || off + 8 > pkt->l3_off + pkt->l3_len)
			return WEIR_REASON_MALFORMED_IPV6;
		pkt->flags |= PKT_F_IPV6_EXTHDR;
		if (nexthdr == IPPROTO_FRAGMENT) {
			__u16 frag = bpf_ntohs(*(__be16 *)(eh + 2));

			pkt->flags |= PKT_F_FRAGMENT;
			nexthdr = eh[0];
			off += 8;
			if (frag & 0xfff8) { /* non-zero fragment offset */
				pkt->l4_proto = nexthdr;
				pkt->l4_off = off;
				return WEIR_REASON_FRAGMENT;
			}
			continue;
		}
		/* AH counts its length in 4-byte units (minus 2), the others in 8-byte units (minus 1) */
		off += nexthdr == IPPROTO_AH ? ((__u32)eh[1] + 2) * 4 : ((__u32)eh[1] + 1) * 8;
		nexthdr = eh[0];
	}
	if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	    nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT || nexthdr == IPPROTO_AH)
		return WEIR_REASON_MALFORMED_IPV6; /* deeper chain than we walk */
	/* the last extension header may claim more bytes than the datagram has */
	if (off > 0xffff || off > pkt->l3_off + pkt->l3_len)
		return WEIR_REASON_MALFORMED_IPV6;
	pkt->l4_proto = nexthdr;
	pkt->l4_off = off;
	return parse_l4(data, data_end, pkt);
}

/**
 * parse_packet - classify a packet starting with an Ethernet header
 * @data, @data_end: the linear packet data
 * @len: the packet's full length (skb->len on TC, data_end - data on XDP)
 * @pkt: filled in; zeroed first
 *
 * Returns the weir_reason describing the packet (see the file comment).
 */
static __always_inline enum weir_reason parse_packet(void *data, void *data_end, __u32 len,
						     struct packet *pkt)
{
	struct ethhdr *eth = data;

	__builtin_memset(pkt, 0, sizeof(*pkt));
	pkt->len = len;
	if ((void *)(eth + 1) > data_end)
		return WEIR_REASON_MALFORMED_ETH;
	pkt->l3_off = sizeof(*eth);
	switch (bpf_ntohs(eth->h_proto)) {
	case ETH_P_IP:
		pkt->l3_proto = ETH_P_IP;
		return parse_ipv4(data, data_end, pkt);
	case ETH_P_IPV6:
		pkt->l3_proto = ETH_P_IPV6;
		return parse_ipv6(data, data_end, pkt);
	default:
		return WEIR_REASON_NOT_IP;
	}
}

/**
 * parse_sctp_ports - the ports of SCTP packet @pkt, read from @skb: parse_packet stops at
 * SCTP's common header (ports, verification tag, checksum: 12 bytes), which the service
 * path and a packet decapsulated from the tunnel both need (NetworkPolicy names SCTP ports)
 *
 * Returns 0, or WEIR_REASON_MALFORMED_L4 when the header does not fit the datagram.
 */
static __always_inline enum weir_reason parse_sctp_ports(struct __sk_buff *skb, struct packet *pkt)
{
	__be16 ports[2];

	if (pkt->l4_off + 12 > pkt->l3_off + pkt->l3_len ||
	    bpf_skb_load_bytes(skb, pkt->l4_off, ports, sizeof(ports)))
		return WEIR_REASON_MALFORMED_L4;
	pkt->sport = ports[0];
	pkt->dport = ports[1];
	return 0;
}

#endif
