/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Checksum glue: where each transport keeps its checksum, which helper flags it needs,
 * and one's-complement arithmetic for headers we build ourselves (reject.h).
 *
 * Rewrites go through bpf_l3_csum_replace / bpf_l4_csum_replace so they are right for
 * every skb checksum state: with CHECKSUM_PARTIAL (packets from a local pod usually
 * are) BPF_F_PSEUDO_HDR updates only the pseudo-header part the NIC or stack completes.
 */
#ifndef WEIR_LIB_CSUM_H
#define WEIR_LIB_CSUM_H

#include "compiler.h"
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

/* ICMPv4 header and the types we use: <linux/icmp.h> drags in libc headers a BPF target
 * cannot build, so the few definitions needed live here. */
struct icmp4_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* echo: identifier + sequence; errors: unused or next-hop MTU */
};

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3 /* code of ICMP_DEST_UNREACH */
#define ICMP_FRAG_NEEDED 4  /* code of ICMP_DEST_UNREACH: next-hop MTU in the low 16 bits of rest */
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

#define IPV4_CSUM_OFF __builtin_offsetof(struct iphdr, check)
#define IPV4_SADDR_OFF __builtin_offsetof(struct iphdr, saddr)
#define IPV4_DADDR_OFF __builtin_offsetof(struct iphdr, daddr)

/* Offset of the checksum inside the transport header, or -1 when a rewrite of the
 * IP addresses or ports does not touch it (SCTP: CRC32c over the SCTP packet only;
 * ICMP: no pseudo-header, and we never rewrite the echo identifier). ICMPv6's covers the
 * IPv6 pseudo-header, as TCP's and UDP's do. */
static __always_inline int l4_csum_off(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	case IPPROTO_ICMPV6:
		return 2;
	default:
		return -1;
	}
}

/* A UDP checksum of 0 means "none" and must stay 0; a computed 0 is sent as 0xffff. */
static __always_inline __u64 l4_csum_flags(__u8 proto)
{
	return proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Fold a 32-bit one's-complement sum (bpf_csum_diff's result) to the 16-bit value to
 * store in a checksum field. */
static __always_inline __sum16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__sum16)~sum;
}

#endif
