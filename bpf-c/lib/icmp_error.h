/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP errors about NAT'd flows (destination unreachable incl. fragmentation needed,
 * time exceeded, parameter problem): the quoted packet is one the flow sent, so it
 * carries the NAT'd tuple the other end never saw. We translate the quote back, and the
 * outer addresses where they are flow endpoints, so the error reaches the right socket.
 *
 * The quoted packet travels opposite to the error, so its tuple swapped is the tuple
 * a packet of the flow would have in the error's direction: exactly the key of the
 * conntrack entry for that direction. That entry's rewrite, mirrored onto the quote
 * (its source rewrite applies to the quote's destination and the other way round), is
 * the translation. No special cases for hairpin or the direction of the error.
 *
 * Checksums: the quote's IPv4 header checksum is updated, and the ICMP checksum for
 * every byte we change inside the ICMP message. The quote's transport checksum is left
 * alone, as Linux does not check it (the quote is usually truncated anyway).
 *
 * An error about a tracked-only flow (ct_track_all, nothing rewritten) needs no
 * translation and passes as it is. icmp4_error_stage() is the step from_pod and from_host
 * take for every ICMP error, before their conntrack stage.
 */
#ifndef WEIR_LIB_ICMP_ERROR_H
#define WEIR_LIB_ICMP_ERROR_H

#include "compiler.h"
#include "conntrack.h"
#include "csum.h"
#include "nat.h"
#include "parse.h"

static __always_inline int icmp4_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED ||
	       type == ICMP_PARAMETERPROB;
}

/* Rewrite a 4-byte address or a 2-byte port (@size; a port is passed widened, its value
 * in the low 16 bits) inside the ICMP message, keeping the ICMP checksum right (no
 * pseudo-header: a plain word change). */
static __always_inline int icmp4_quote_store(struct __sk_buff *skb, __u32 icmp_csum_off, __u32 off,
					     __be32 from, __be32 to, __u32 size)
{
	int err;

	__be16 to16 = (__be16)to;

	err = bpf_l4_csum_replace(skb, icmp_csum_off, from, to, size);
	if (err)
		return err;
	if (size == sizeof(to16))
		return bpf_skb_store_bytes(skb, off, &to16, sizeof(to16), 0);
	return bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0);
}

static __always_inline int icmp4_quote_addr(struct __sk_buff *skb, __u32 icmp_csum_off,
					    __u32 quote_off, __u32 addr_off, __be32 from, __be32 to)
{
	__sum16 before, after;
	int err;

	if (from == to)
		return 0;
	err = bpf_skb_load_bytes(skb, quote_off + IPV4_CSUM_OFF, &before, sizeof(before));
	if (err)
		return err;
	err = bpf_l3_csum_replace(skb, quote_off + IPV4_CSUM_OFF, from, to, sizeof(to));
	if (err)
		return err;
	err = bpf_skb_load_bytes(skb, quote_off + IPV4_CSUM_OFF, &after, sizeof(after));
	if (err)
		return err;
	/* the quote's header checksum is part of the ICMP message too */
	err = bpf_l4_csum_replace(skb, icmp_csum_off, before, after, sizeof(after));
	if (err)
		return err;
	return icmp4_quote_store(skb, icmp_csum_off, quote_off + addr_off, from, to, sizeof(to));
}

/**
 * icmp4_error_revnat - translate an ICMP error about a NAT'd flow
 * @pkt: an IPv4 ICMP packet; the caller checked icmp4_is_error(pkt->icmp_type)
 *
 * Returns 1 when translated, 0 when the quote belongs to no NAT'd flow (or is too short
 * to tell), or a negative errno when a rewrite failed half-way (drop it). A slow path:
 * a global function, verified once (compiler.h).
 */
__weir_slow_path int icmp4_error_revnat(struct __sk_buff *skb, const struct packet *pkt)
{
	__u32 icmp_csum_off, quote_off, end;
	struct weir_ct4_key key = {};
	struct nat4_target outer;
	struct weir_ct4 *ct;
	struct iphdr ip;
	__u32 quote_l4;
	__be32 new_saddr, new_daddr;
	__be16 new_sport, new_dport;
	__be16 ports[4]; /* first 8 bytes of the quoted transport header */
	int err;

	if (!pkt) /* a global function's pointer argument may be NULL, for all the verifier knows */
		return 0;
	icmp_csum_off = pkt->l4_off + 2;
	quote_off = pkt->l4_off + 8;
	end = pkt->l3_off + pkt->l3_len;
	if (quote_off + sizeof(ip) > end || bpf_skb_load_bytes(skb, quote_off, &ip, sizeof(ip)))
		return 0;
	if (ip.version != 4 || ip.ihl < 5)
		return 0;
	quote_l4 = quote_off + ip.ihl * 4;
	if (quote_l4 + sizeof(ports) > end ||
	    bpf_skb_load_bytes(skb, quote_l4, ports, sizeof(ports)))
		return 0;

	key.saddr = ip.daddr;
	key.daddr = ip.saddr;
	key.protocol = ip.protocol;
	switch (ip.protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		key.sport = ports[1];
		key.dport = ports[0];
		break;
	case IPPROTO_ICMP: /* a quoted echo: identifier in both port slots */
		if (((__u8 *)ports)[0] != ICMP_ECHO && ((__u8 *)ports)[0] != ICMP_ECHOREPLY)
			return 0;
		key.sport = ports[2];
		key.dport = ports[2];
		break;
	default:
		return 0;
	}
	ct = ct4_lookup(&key);
	if (!ct || ct4_is_tracked_only(ct))
		return 0;

	/* the entry rewrites key (src, dst) -> (nat src, nat dst); the quote is the mirror */
	new_daddr = ip.daddr;
	new_dport = key.sport;
	new_saddr = ip.saddr;
	new_sport = key.dport;
	if (ct->flags & WEIR_CT_SNAT) {
		new_daddr = ct->nat_saddr;
		new_dport = ct->nat_sport;
	}
	if (ct->flags & WEIR_CT_DNAT) {
		new_saddr = ct->nat_daddr;
		new_sport = ct->nat_dport;
	}

	/* outer addresses that are the flow's endpoints follow the quote */
	outer.saddr = pkt->saddr.v4 == ip.daddr ? new_daddr : pkt->saddr.v4;
	outer.daddr = pkt->daddr.v4 == ip.saddr ? new_saddr : pkt->daddr.v4;
	outer.sport = pkt->sport;
	outer.dport = pkt->dport;

	err = icmp4_quote_addr(skb, icmp_csum_off, quote_off, IPV4_SADDR_OFF, ip.saddr, new_saddr);
	if (err)
		return err;
	err = icmp4_quote_addr(skb, icmp_csum_off, quote_off, IPV4_DADDR_OFF, ip.daddr, new_daddr);
	if (err)
		return err;
	if (ip.protocol != IPPROTO_ICMP) {
		if (new_sport != key.dport) {
			err = icmp4_quote_store(skb, icmp_csum_off, quote_l4, key.dport, new_sport,
						sizeof(new_sport));
			if (err)
				return err;
		}
		if (new_dport != key.sport) {
			err = icmp4_quote_store(skb, icmp_csum_off, quote_l4 + 2, key.sport,
						new_dport, sizeof(new_dport));
			if (err)
				return err;
		}
	}
	err = nat4_rewrite(skb, pkt, &outer); /* ICMP: IPv4 header checksum only */
	if (err)
		return err;
	return 1;
}

static __always_inline int icmp4_is_error_packet(const struct packet *pkt)
{
	return pkt->l4_proto == IPPROTO_ICMP && icmp4_is_error(pkt->icmp_type);
}

/* The ICMP-error stage of from_pod and from_host: translate an error about a NAT'd flow
 * back (or pass it), and say why. */
static __always_inline enum weir_reason icmp4_error_stage(struct __sk_buff *skb,
							  const struct packet *pkt, int *verdict)
{
	int ret = icmp4_error_revnat(skb, pkt);

	if (ret < 0) {
		*verdict = WEIR_TC_DROP;
		return WEIR_REASON_NAT_FAILED;
	}
	return ret ? WEIR_REASON_ICMP_ERROR_REVNAT : WEIR_REASON_PASS;
}

#endif
