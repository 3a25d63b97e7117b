/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Address and port rewrites of IPv4 packets with incremental checksum updates: the
 * IPv4 header checksum, and the TCP/UDP checksum's pseudo-header and port words.
 * SCTP's CRC32c covers its ports but no addresses, so SCTP may only change address
 * (lb.h refuses port changes before we get here). ICMP echo keeps its identifier. */
#ifndef WEIR_LIB_NAT_H
#define WEIR_LIB_NAT_H

#include "compiler.h"
#include "csum.h"
#include "parse.h"
#include <weir/conntrack.h>

/* The tuple a packet should leave with. */
struct nat4_target {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
};

static __always_inline int nat4_rewrite_addr(struct __sk_buff *skb, const struct packet *pkt,
					     __u32 addr_off, __be32 from, __be32 to)
{
	int csum_off = l4_csum_off(pkt->l4_proto);
	int err;

	if (csum_off >= 0) {
		err = bpf_l4_csum_replace(skb, pkt->l4_off + csum_off, from, to,
					  BPF_F_PSEUDO_HDR | l4_csum_flags(pkt->l4_proto) |
						  sizeof(to));
		if (err)
			return err;
	}
	err = bpf_l3_csum_replace(skb, pkt->l3_off + IPV4_CSUM_OFF, from, to, sizeof(to));
	if (err)
		return err;
	return bpf_skb_store_bytes(skb, pkt->l3_off + addr_off, &to, sizeof(to), 0);
}

/* @port_off: 0 for the source port, 2 for the destination port (TCP, UDP and SCTP agree).
 * Family-neutral (no pseudo-header part): nat6.h uses it too. */
static __always_inline int nat_rewrite_port(struct __sk_buff *skb, const struct packet *pkt,
					    __u32 port_off, __be16 from, __be16 to)
{
	int csum_off = l4_csum_off(pkt->l4_proto);
	int err;

	if (csum_off >= 0) {
		err = bpf_l4_csum_replace(skb, pkt->l4_off + csum_off, from, to,
					  l4_csum_flags(pkt->l4_proto) | sizeof(to));
		if (err)
			return err;
	}
	return bpf_skb_store_bytes(skb, pkt->l4_off + port_off, &to, sizeof(to), 0);
}

static __always_inline int l4_has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/* The ports of @pkt to @sport/@dport where they differ (a protocol with ports only): the
 * family-neutral end of nat4_rewrite and nat6_rewrite. Returns 0 or a helper's negative errno. */
static __always_inline int nat_rewrite_ports(struct __sk_buff *skb, const struct packet *pkt,
					     __be16 sport, __be16 dport)
{
	int err;

	if (!l4_has_ports(pkt->l4_proto))
		return 0;
	if (sport != pkt->sport) {
		err = nat_rewrite_port(skb, pkt, 0, pkt->sport, sport);
		if (err)
			return err;
	}
	if (dport != pkt->dport) {
		err = nat_rewrite_port(skb, pkt, 2, pkt->dport, dport);
		if (err)
			return err;
	}
	return 0;
}

/* Rewrite @pkt (parsed from @skb) to leave with @to. Fields that do not change are not
 * touched. Returns 0 or a helper's negative errno (the packet may be half-written then:
 * the caller drops it). */
static __always_inline int nat4_rewrite(struct __sk_buff *skb, const struct packet *pkt,
					const struct nat4_target *to)
{
	int err;

	if (to->saddr != pkt->saddr.v4) {
		err = nat4_rewrite_addr(skb, pkt, IPV4_SADDR_OFF, pkt->saddr.v4, to->saddr);
		if (err)
			return err;
	}
	if (to->daddr != pkt->daddr.v4) {
		err = nat4_rewrite_addr(skb, pkt, IPV4_DADDR_OFF, pkt->daddr.v4, to->daddr);
		if (err)
			return err;
	}
	return nat_rewrite_ports(skb, pkt, to->sport, to->dport);
}

/* The target a conntrack entry turns this packet into. */
static __always_inline void nat4_target_of_ct(const struct packet *pkt, const struct weir_ct4 *ct,
					      struct nat4_target *to)
{
	to->saddr = pkt->saddr.v4;
	to->sport = pkt->sport;
	to->daddr = pkt->daddr.v4;
	to->dport = pkt->dport;
	if (ct->flags & WEIR_CT_SNAT) {
		to->saddr = ct->nat_saddr;
		to->sport = ct->nat_sport;
	}
	if (ct->flags & WEIR_CT_DNAT) {
		to->daddr = ct->nat_daddr;
		to->dport = ct->nat_dport;
	}
}

#endif
