/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Reject for IPv6, as reject.h's for IPv4: a packet to a frontend with no usable endpoint
 * becomes, in place, the ICMPv6 destination unreachable / port unreachable (type 1, code 4)
 * the frontend would have sent, back out the interface it came in on; a TCP SYN the RST its
 * closed port would have sent. Linux fails a connect() with ECONNREFUSED on either.
 *
 *   in:  eth | IPv6 (40 + ext) | L4 ...                      client -> frontend
 *   out: eth (MACs swapped) | IPv6 (40) | ICMPv6 1/4 (8) | IPv6 (40 + ext) | 8 bytes of L4
 *                                                            frontend -> client
 *
 * Unlike ICMPv4's, the ICMPv6 checksum covers a pseudo-header (RFC 4443 2.3), so it is
 * summed over the new header's addresses, the length and the next header too.
 *
 * A TCP SYN is answered with the frontend's RST instead (reject6_tcp_reset): a SYN from a
 * pod on this node is turned around in the softirq its own transmit runs, so the answer
 * reaches the client while connect() still holds the socket. Linux keeps an ICMPv6 error
 * then as a soft error (TcpExtLockDroppedIcmps): IPv6 clients without IPV6_RECVERR (curl,
 * node) failed only at the SYN's retransmit, ~1 s (measured in test/lab/service6-tc.test.ts;
 * IPv4 clients fail at once). A RST waits in the socket's backlog and fails the connect as it
 * returns.
 *
 * Both keep the original's checksum state. A local pod's packet is CHECKSUM_PARTIAL, the
 * pending checksum's start on its transport header: in the RST that is the RST's own header,
 * in the ICMPv6 error the quoted one, which a path without tx offload completes on the way;
 * the ICMPv6 sum is taken with the value that completion writes (reject.h's IPv4 error has
 * no such allowance).
 */
#ifndef WEIR_LIB_REJECT6_H
#define WEIR_LIB_REJECT6_H

#include "compiler.h"
#include "csum.h"
#include "conntrack.h"
#include "parse.h"
#include "reject.h"
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

/* Fills @ip as the reply to @pkt (from its destination back to its source) carrying @len
 * bytes of @nexthdr, and returns the sum of its pseudo-header (RFC 8200 8.1), which the
 * reply's transport checksum starts from. */
static __always_inline __u32 reject6_reply_ip(struct ipv6hdr *ip, const struct packet *pkt,
					      __u32 len, __u8 nexthdr)
{
	struct reject6_pseudo_tail tail = {.len = bpf_htonl(len), .nexthdr = bpf_htonl(nexthdr)};
	__u32 sum;

	ip->version = 6;
	ip->payload_len = bpf_htons(len);
	ip->nexthdr = nexthdr;
	ip->hop_limit = REJECT6_HOP_LIMIT;
	__builtin_memcpy(&ip->saddr, pkt->daddr.v6, 16);
	__builtin_memcpy(&ip->daddr, pkt->saddr.v6, 16);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip->saddr, 32, 0);
	return bpf_csum_diff(NULL, 0, (__be32 *)&tail, sizeof(tail), sum);
}

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
	int csum_off = l4_csum_off(pkt->l4_proto);
	__u32 quoted = 8, l4_quoted;
	__u8 l4head[8], partial = 0;
	__sum16 done;
	struct reject6_hdr hdr = {};
	__u32 sum;
	int err;

	if (hlen < 40 || hlen > REJECT6_HDR_MAX || (hlen & 3) || l4_avail < 8)
		return -1;
	/* The IPv6 header(s) and 8 bytes of transport header, as reject4 quotes. A
	 * CHECKSUM_PARTIAL skb (a local pod's) refuses a trim that cuts off its pending
	 * transport checksum: trying to cut right before it tells the two apart (the 8 bytes are
	 * put back if it was not pending). A pending TCP checksum sits past 8 bytes, so TCP then
	 * quotes its 20-byte header. */
	if (bpf_skb_load_bytes(skb, pkt->l4_off, l4head, sizeof(l4head)))
		return -1;
	if (csum_off >= 0 && bpf_skb_change_tail(skb, pkt->l4_off + csum_off, 0))
		partial = 1;
	if (partial && pkt->l4_proto == IPPROTO_TCP) {
		if (l4_avail < 20)
			return -1;
		quoted = 20;
	}
	err = bpf_skb_change_tail(skb, pkt->l4_off + quoted, 0);
	if (err)
		return err;
	if (!partial &&
	    bpf_skb_store_bytes(skb, pkt->l4_off, l4head, sizeof(l4head), BPF_F_RECOMPUTE_CSUM))
		return -1;
	l4_quoted = quoted;
	quoted += hlen;
	if (quoted > REJECT6_QUOTE_MAX) /* for the verifier: hlen was bounded above */
		return -1;
	err = bpf_skb_load_bytes(skb, pkt->l3_off, quote, quoted);
	if (err)
		return err;
	/* Still pending, the checksum starts at the quoted transport header and ends with the
	 * packet: a path without offload completes it there, the receiver of a partial skb
	 * trusts it. Sum the ICMPv6 message with the value that completion writes. */
	if (partial && csum_off >= 0 && hlen + csum_off + 2 <= REJECT6_QUOTE_MAX) {
		done = csum_fold32(bpf_csum_diff(NULL, 0, (__be32 *)(quote + hlen), l4_quoted, 0));
		if (!done)
			done = 0xffff;
		__builtin_memcpy(quote + hlen + csum_off, &done, sizeof(done));
	}

	err = bpf_skb_adjust_room(skb, sizeof(hdr), BPF_ADJ_ROOM_MAC, 0);
	if (err)
		return err;

	sum = reject6_reply_ip(&hdr.ip, pkt, sizeof(hdr.icmp) + quoted, IPPROTO_ICMPV6);
	hdr.icmp.type = type;
	hdr.icmp.code = code;
	hdr.icmp.rest = rest;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&hdr.icmp, sizeof(hdr.icmp), sum);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)quote, quoted, sum);
	hdr.icmp.checksum = csum_fold32(sum);
	err = bpf_skb_store_bytes(skb, pkt->l3_off, &hdr, sizeof(hdr), BPF_F_RECOMPUTE_CSUM);
	if (err)
		return err;

	return reject_send_back(skb);
}

struct reject6_rst {
	struct ipv6hdr ip;
	struct tcphdr th;
};

/**
 * reject6_tcp_reset - turns a TCP SYN (no ACK, no extension header) into the RST|ACK the
 * frontend's closed port would send, in place, back out the interface it came in on. Linux
 * takes a RST in SYN_SENT through the socket's backlog when connect() still holds the socket
 * and fails the connect with ECONNREFUSED as it lets go, where an ICMPv6 error would only be
 * a soft error until the SYN's retransmit (the first limit above).
 *
 * The segment keeps the SYN's checksum state, its start and offset still on this TCP header:
 * a CHECKSUM_PARTIAL SYN (a local pod's: its 40 bytes cannot be cut to 8 then) gets the
 * pseudo-header sum to complete, any other the full checksum.
 *
 * Returns the redirect verdict, 1 when the packet is not such a SYN (the caller sends the
 * ICMPv6 error instead), or a negative errno (drop).
 */
static __always_inline int reject6_tcp_reset(struct __sk_buff *skb, const struct packet *pkt)
{
	struct reject6_rst hdr = {};
	__u32 l4 = pkt->l4_off, seq, sum;
	__u8 doff_byte, partial = 0;
	int err;

	if (pkt->l4_proto != IPPROTO_TCP || l4 != pkt->l3_off + sizeof(struct ipv6hdr) ||
	    (pkt->tcp_flags & (CT_TCP_SYN | CT_TCP_ACK | CT_TCP_RST)) != CT_TCP_SYN)
		return 1;
	if (bpf_skb_load_bytes(skb, l4 + 4, &seq, sizeof(seq)) ||
	    bpf_skb_load_bytes(skb, l4 + 12, &doff_byte, 1))
		return 1;
	/* what the RST acknowledges: the SYN and any data it carried (TCP Fast Open) */
	seq = bpf_ntohl(seq) + 1 + (pkt->l3_len - sizeof(struct ipv6hdr) - (doff_byte >> 4) * 4);

	if (bpf_skb_change_tail(skb, l4 + 8, 0)) /* refused: a pending checksum past byte 8 */
		partial = 1;
	err = bpf_skb_change_tail(skb, l4 + sizeof(hdr.th), 0);
	if (err)
		return err;

	sum = reject6_reply_ip(&hdr.ip, pkt, sizeof(hdr.th), IPPROTO_TCP);
	hdr.th.source = pkt->dport;
	hdr.th.dest = pkt->sport;
	hdr.th.ack_seq = bpf_htonl(seq);
	hdr.th.doff = sizeof(hdr.th) / 4;
	hdr.th.rst = 1;
	hdr.th.ack = 1;
	if (partial) {
		hdr.th.check = ~csum_fold32(sum); /* the pseudo-header's part, as Linux leaves it */
	} else {
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&hdr.th, sizeof(hdr.th), sum);
		hdr.th.check = csum_fold32(sum);
	}
	err = bpf_skb_store_bytes(skb, pkt->l3_off, &hdr, sizeof(hdr), BPF_F_RECOMPUTE_CSUM);
	if (err)
		return err;

	return reject_send_back(skb);
}

/* The frontend has no usable endpoint: a TCP SYN is reset (reject6_tcp_reset), anything
 * else gets ICMPv6 port unreachable. */
static __always_inline int reject6_port_unreachable(struct __sk_buff *skb, const struct packet *pkt)
{
	int ret = reject6_tcp_reset(skb, pkt);

	if (ret != 1)
		return ret;
	return reject6_icmp(skb, pkt, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0);
}

#endif
