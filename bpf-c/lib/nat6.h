/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Address and port rewrites of IPv6 packets, as nat.h's for IPv4. IPv6 has no header
 * checksum: only the transport checksum changes, and TCP's, UDP's and ICMPv6's all cover the
 * pseudo-header (RFC 8200 8.1), so an address rewrite is one bpf_csum_diff over the 16 bytes
 * fed to bpf_l4_csum_replace with BPF_F_PSEUDO_HDR (right for every skb checksum state, as in
 * nat.h). A UDP checksum may not be 0 in IPv6: a computed 0 goes out as 0xffff
 * (BPF_F_MARK_MANGLED_0). SCTP's CRC32c covers no addresses. An ICMPv6 echo keeps its
 * identifier, as an IPv4 echo does. */
#ifndef WEIR_LIB_NAT6_H
#define WEIR_LIB_NAT6_H

#include "compiler.h"
#include "csum.h"
#include "ip6.h"
#include "nat.h"
#include "parse.h"
#include <weir/conntrack.h>

#define IPV6_SADDR_OFF 8
#define IPV6_DADDR_OFF 24

/* The tuple a packet should leave with. The addresses point at 16 bytes that outlive the
 * rewrite (the parsed packet, a conntrack entry, a flow on the stack): no copies on the
 * 512-byte stack. */
struct nat6_target {
	const __u32 *saddr;
	const __u32 *daddr;
	__be16 sport;
	__be16 dport;
};

/* The 16-byte address at @addr_off of the IPv6 header from @from to @to, the transport
 * checksum (pseudo-header) with it. */
static __always_inline int nat6_rewrite_addr(struct __sk_buff *skb, const struct packet *pkt,
					     __u32 addr_off, const __u32 *from, const __u32 *to)
{
	int csum_off = l4_csum_off(pkt->l4_proto);
	__s64 diff;
	int err;

	if (csum_off >= 0) {
		diff = bpf_csum_diff((__be32 *)from, 16, (__be32 *)to, 16, 0);
		if (diff < 0)
			return (int)diff;
		/* size 0: @to is a checksum difference, not a field value */
		err = bpf_l4_csum_replace(skb, pkt->l4_off + csum_off, 0, (__u32)diff,
					  BPF_F_PSEUDO_HDR | l4_csum_flags(pkt->l4_proto));
		if (err)
			return err;
	}
	return bpf_skb_store_bytes(skb, pkt->l3_off + addr_off, to, 16, 0);
}

/* Rewrite @pkt (parsed from @skb) to leave with @to; fields that do not change are not
 * touched. Returns 0 or a helper's negative errno (the caller drops the packet). */
static __always_inline int nat6_rewrite(struct __sk_buff *skb, const struct packet *pkt,
					const struct nat6_target *to)
{
	int err;

	if (!ip6_equal(to->saddr, pkt->saddr.v6)) {
		err = nat6_rewrite_addr(skb, pkt, IPV6_SADDR_OFF, pkt->saddr.v6, to->saddr);
		if (err)
			return err;
	}
	if (!ip6_equal(to->daddr, pkt->daddr.v6)) {
		err = nat6_rewrite_addr(skb, pkt, IPV6_DADDR_OFF, pkt->daddr.v6, to->daddr);
		if (err)
			return err;
	}
	return nat_rewrite_ports(skb, pkt, to->sport, to->dport);
}

/* The target conntrack entry @ct turns this packet into. */
static __always_inline void nat6_target_of_ct(const struct packet *pkt, const struct weir_ct6 *ct,
					      struct nat6_target *to)
{
	to->saddr = pkt->saddr.v6;
	to->sport = pkt->sport;
	to->daddr = pkt->daddr.v6;
	to->dport = pkt->dport;
	if (ct->flags & WEIR_CT_SNAT) {
		to->saddr = (const __u32 *)ct->nat_saddr;
		to->sport = ct->nat_sport;
	}
	if (ct->flags & WEIR_CT_DNAT) {
		to->daddr = (const __u32 *)ct->nat_daddr;
		to->dport = ct->nat_dport;
	}
}

#endif
