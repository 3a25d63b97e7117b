/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Reject: turn a packet to a frontend with no usable endpoint into the ICMP port
 * unreachable the frontend would have sent, in place, and send it back out the
 * interface it came in on. Linux fails a connect() with ECONNREFUSED on it (TCP too),
 * as it does for kube-proxy's REJECT rule, so clients fail in microseconds.
 *
 *   in:  eth | IP (ihl) | L4 ...                    client -> frontend
 *   out: eth (MACs swapped) | IP (20) | ICMP 3/3 (8) | IP (ihl) | first 8 bytes of L4
 *                                                   frontend -> client
 */
#ifndef WEIR_LIB_REJECT_H
#define WEIR_LIB_REJECT_H

#include "compiler.h"
#include "csum.h"
#include "parse.h"

#define REJECT_QUOTE_MAX (60 + 20) /* largest IPv4 header + a full TCP header */
#define REJECT_ICMP_TTL 64

struct reject4_hdr {
	struct iphdr ip;
	struct icmp4_hdr icmp;
};

/* Sends the packet, turned into the answer in place, back out the interface it came in on,
 * its Ethernet addresses swapped: the last step of every reject (reject4, reject6). Returns
 * the redirect verdict, or a negative errno. */
static __always_inline int reject_send_back(struct __sk_buff *skb)
{
	struct ethhdr eth;
	__u8 mac[ETH_ALEN];
	int err;

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

/* Turns @pkt into ICMP destination unreachable @code (the 4 bytes after the checksum:
 * @rest, network order) from its destination back to its source, out the interface it came
 * in on. Returns the redirect verdict, or a negative errno when the packet could not be
 * turned around (the caller drops it). */
static __always_inline int reject4_unreachable(struct __sk_buff *skb, const struct packet *pkt,
					       __u8 code, __be32 rest)
{
	__u8 quote[REJECT_QUOTE_MAX] __attribute__((aligned(4)));
	__u32 ihl = pkt->l4_off - pkt->l3_off;
	__u32 l4_avail = pkt->l3_len - ihl;
	__u32 quoted = 8;
	struct reject4_hdr hdr = {};
	__u32 sum;
	int err;

	if (ihl < 20 || ihl > 60 || l4_avail < 8)
		return -1;
	/* Keep the IP header and 8 bytes of transport header (RFC 792). A CHECKSUM_PARTIAL
	 * skb refuses a trim that cuts off its pending transport checksum (TCP's sits at
	 * offset 16), so TCP falls back to quoting the 20-byte TCP header. */
	err = bpf_skb_change_tail(skb, pkt->l3_off + ihl + quoted, 0);
	if (err) {
		if (pkt->l4_proto != IPPROTO_TCP || l4_avail < 20)
			return err;
		quoted = 20;
		err = bpf_skb_change_tail(skb, pkt->l3_off + ihl + quoted, 0);
		if (err)
			return err;
	}
	quoted += ihl;
	if (quoted > REJECT_QUOTE_MAX) /* for the verifier: ihl <= 60 was checked above */
		return -1;
	err = bpf_skb_load_bytes(skb, pkt->l3_off, quote, quoted);
	if (err)
		return err;

	err = bpf_skb_adjust_room(skb, sizeof(hdr), BPF_ADJ_ROOM_MAC, 0);
	if (err)
		return err;

	hdr.ip.version = 4;
	hdr.ip.ihl = 5;
	hdr.ip.tot_len = bpf_htons(sizeof(hdr) + quoted);
	hdr.ip.ttl = REJECT_ICMP_TTL;
	hdr.ip.protocol = IPPROTO_ICMP;
	hdr.ip.saddr = pkt->daddr.v4;
	hdr.ip.daddr = pkt->saddr.v4;
	hdr.ip.check = csum_fold32(bpf_csum_diff(NULL, 0, (__be32 *)&hdr.ip, sizeof(hdr.ip), 0));
	hdr.icmp.type = ICMP_DEST_UNREACH;
	hdr.icmp.code = code;
	hdr.icmp.rest = rest;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&hdr.icmp, sizeof(hdr.icmp), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)quote, quoted, sum);
	hdr.icmp.checksum = csum_fold32(sum);
	err = bpf_skb_store_bytes(skb, pkt->l3_off, &hdr, sizeof(hdr), BPF_F_RECOMPUTE_CSUM);
	if (err)
		return err;

	return reject_send_back(skb);
}

/* The frontend has no usable endpoint: port unreachable (the caller drops on error: the
 * packet was headed for a service that cannot answer anyway). */
static __always_inline int reject4_port_unreachable(struct __sk_buff *skb, const struct packet *pkt)
{
	return reject4_unreachable(skb, pkt, ICMP_PORT_UNREACH, 0);
}

/* The packet does not fit the next hop with DF set: fragmentation needed, with the MTU
 * that fits (RFC 1191: the next-hop MTU in the low 16 bits). */
static __always_inline int reject4_frag_needed(struct __sk_buff *skb, const struct packet *pkt,
					       __u32 mtu)
{
	return reject4_unreachable(skb, pkt, ICMP_FRAG_NEEDED, bpf_htonl(mtu & 0xffff));
}

#endif
