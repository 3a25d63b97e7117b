/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMPv6 errors about NAT'd flows (destination unreachable, packet too big, time exceeded,
 * parameter problem), as icmp_error.h does for IPv4: the quoted packet is one the flow sent,
 * with the NAT'd tuple the other end never saw. Its tuple swapped is the key of the flow's
 * conntrack entry for the error's direction; that entry's rewrite, mirrored onto the quote,
 * is the translation, and the outer addresses that are flow endpoints follow. Packet Too Big
 * matters most: without it translated, path MTU discovery through a service breaks (the
 * client's socket never learns the smaller MTU and its large segments vanish).
 *
 * Checksums: the ICMPv6 checksum covers the pseudo-header (outer addresses: nat6_rewrite with
 * BPF_F_PSEUDO_HDR) and the whole message (quote bytes: plain word changes). The quote has
 * no IPv6 header checksum; its transport checksum is left alone, as in IPv4 (Linux does not
 * check it). A quote with extension headers is not looked into (passed as it is).
 */
#ifndef WEIR_LIB_ICMP6_ERROR_H
#define WEIR_LIB_ICMP6_ERROR_H

#include "compiler.h"
#include "conntrack6.h"
#include "csum.h"
#include "ip6.h"
#include "nat6.h"
#include "parse.h"
#include <linux/icmpv6.h>

static __always_inline int icmp6_is_error_packet(const struct packet *pkt)
{
	return pkt->l4_proto == IPPROTO_ICMPV6 && pkt->icmp_type >= ICMPV6_DEST_UNREACH &&
	       pkt->icmp_type <= ICMPV6_PARAMPROB;
}

/* Neighbour discovery (router/neighbour solicitation and advertisement, redirect): never
 * a service's business, always passed as it is. */
static __always_inline int icmp6_is_nd(const struct packet *pkt)
{
	return pkt->l4_proto == IPPROTO_ICMPV6 && pkt->icmp_type >= 133 && pkt->icmp_type <= 137;
}

/* The 16-byte address at @off inside the ICMPv6 message from @from to @to, the ICMPv6
 * checksum at @csum_off with it (a plain change of message bytes). */
static __always_inline int icmp6_quote_addr(struct __sk_buff *skb, __u32 csum_off, __u32 off,
					    const __u32 *from, const __u32 *to)
{
	__s64 diff;
	int err;

	if (ip6_equal(from, to))
		return 0;
	diff = bpf_csum_diff((__be32 *)from, 16, (__be32 *)to, 16, 0);
	if (diff < 0)
		return (int)diff;
	err = bpf_l4_csum_replace(skb, csum_off, 0, (__u32)diff, 0);
	if (err)
		return err;
	return bpf_skb_store_bytes(skb, off, to, 16, 0);
}

static __always_inline int icmp6_quote_port(struct __sk_buff *skb, __u32 csum_off, __u32 off,
					    __be16 from, __be16 to)
{
	int err;

	if (from == to)
		return 0;
	err = bpf_l4_csum_replace(skb, csum_off, from, to, sizeof(to));
	if (err)
		return err;
	return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
}

/* The quote's IPv6 header: only what the translation needs. */
struct icmp6_quote {
	__u32 saddr[4];
	__u32 daddr[4];
	__be16 ports[4]; /* first 8 bytes of the quoted transport header */
	__u8 nexthdr;
};

/**
 * icmp6_error_revnat - translate an ICMPv6 error about a NAT'd flow
 * @pkt: an ICMPv6 error (icmp6_is_error_packet)
 *
 * Returns 1 when translated, 0 when the quote belongs to no NAT'd flow (or is too short to
 * tell), or a negative errno when a rewrite failed half-way (drop it). A slow path: a
 * global function, verified once (compiler.h).
 */
__weir_slow_path int icmp6_error_revnat(struct __sk_buff *skb, const struct packet *pkt)
{
	__u32 csum_off, quote_off, quote_l4, end;
	struct weir_ct6_key key = {};
	struct nat6_target outer, in;
	struct icmp6_quote q;
	struct weir_ct6 *ct;
	__be16 new_sport, new_dport;
	int err;

	if (!pkt) /* a global function's pointer argument may be NULL, for all the verifier knows */
		return 0;
	csum_off = pkt->l4_off + 2;
	quote_off = pkt->l4_off + 8;
	quote_l4 = quote_off + 40;
	end = pkt->l3_off + pkt->l3_len;
	if (quote_l4 + sizeof(q.ports) > end ||
	    bpf_skb_load_bytes(skb, quote_off + 6, &q.nexthdr, 1) ||
	    bpf_skb_load_bytes(skb, quote_off + IPV6_SADDR_OFF, q.saddr, 16) ||
	    bpf_skb_load_bytes(skb, quote_off + IPV6_DADDR_OFF, q.daddr, 16) ||
	    bpf_skb_load_bytes(skb, quote_l4, q.ports, sizeof(q.ports)))
		return 0;

	__builtin_memcpy(key.saddr, q.daddr, 16);
	__builtin_memcpy(key.daddr, q.saddr, 16);
	key.protocol = q.nexthdr;
	switch (q.nexthdr) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		key.sport = q.ports[1];
		key.dport = q.ports[0];
		break;
	case IPPROTO_ICMPV6: /* a quoted echo: identifier in both port slots */
		if (((__u8 *)q.ports)[0] != ICMPV6_ECHO_REQUEST &&
		    ((__u8 *)q.ports)[0] != ICMPV6_ECHO_REPLY)
			return 0;
		key.sport = q.ports[2];
		key.dport = q.ports[2];
		break;
	default:
		return 0;
	}
	ct = ct6_lookup(&key);
	if (!ct || ct6_is_tracked_only(ct))
		return 0;

	/* the entry rewrites key (src, dst) -> (nat src, nat dst); the quote is the mirror */
	in.daddr = q.daddr;
	in.saddr = q.saddr;
	new_dport = key.sport;
	new_sport = key.dport;
	if (ct->flags & WEIR_CT_SNAT) {
		in.daddr = (const __u32 *)ct->nat_saddr;
		new_dport = ct->nat_sport;
	}
	if (ct->flags & WEIR_CT_DNAT) {
		in.saddr = (const __u32 *)ct->nat_daddr;
		new_sport = ct->nat_dport;
	}

	/* outer addresses that are the flow's endpoints follow the quote */
	outer.saddr = ip6_equal(pkt->saddr.v6, q.daddr) ? in.daddr : pkt->saddr.v6;
	outer.daddr = ip6_equal(pkt->daddr.v6, q.saddr) ? in.saddr : pkt->daddr.v6;
	outer.sport = pkt->sport;
	outer.dport = pkt->dport;

	err = icmp6_quote_addr(skb, csum_off, quote_off + IPV6_SADDR_OFF, q.saddr, in.saddr);
	if (err)
		return err;
	err = icmp6_quote_addr(skb, csum_off, quote_off + IPV6_DADDR_OFF, q.daddr, in.daddr);
	if (err)
		return err;
	if (q.nexthdr != IPPROTO_ICMPV6) {
		err = icmp6_quote_port(skb, csum_off, quote_l4, key.dport, new_sport);
		if (err)
			return err;
		err = icmp6_quote_port(skb, csum_off, quote_l4 + 2, key.sport, new_dport);
		if (err)
			return err;
	}
	err = nat6_rewrite(skb, pkt, &outer); /* ICMPv6: its checksum's pseudo-header */
	if (err)
		return err;
	return 1;
}

/* The ICMPv6-error stage of from_pod6 and from_host6: translate an error about a NAT'd flow
 * back (or pass it), and say why. */
static __always_inline enum weir_reason icmp6_error_stage(struct __sk_buff *skb,
							  const struct packet *pkt, int *verdict)
{
	int ret = icmp6_error_revnat(skb, pkt);

	if (ret < 0) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_NAT_FAILED;
	}
	return ret ? WEIR_REASON_ICMP_ERROR_REVNAT : WEIR_REASON_PASS;
}

#endif
