/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv6 addresses as the IPv6 stages handle them: struct packet's saddr.v6 / daddr.v6 and the
 * maps' weir_ip6, which are the same 16 bytes. */
#ifndef WEIR_LIB_IP6_H
#define WEIR_LIB_IP6_H

#include "compiler.h"

static __always_inline void ip6_copy(void *dst, const void *src)
{
	__builtin_memcpy(dst, src, 16);
}

static __always_inline int ip6_equal(const void *a, const void *b)
{
	const __u32 *x = a, *y = b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

static __always_inline int ip6_is_zero(const void *a)
{
	const __u32 *x = a;

	return (x[0] | x[1] | x[2] | x[3]) == 0;
}

/* ::ffff:a.b.c.d (RFC 4291 2.5.5.2): an IPv4 address in IPv6 form, as a dual-stack socket dials
 * an IPv4 service (sock_lb.c) or weir_ct6.tunnel_node names an IPv4 underlay node */
static __always_inline int ip6_is_v4_mapped(const void *a)
{
	const __u32 *x = a;

	return x[0] == 0 && x[1] == 0 && x[2] == bpf_htonl(0xffff);
}

#endif
