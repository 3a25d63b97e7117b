/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bob Jenkins' lookup3 final mix as the kernel's jhash_3words (include/linux/jhash.h): the
 * Maglev flow hash in lb.h and lb6.h. `weir explain` computes the same hash in TypeScript
 * (src/dataplane/maglev-hash.ts) to name a flow's slot: a change here is a change there. */
#ifndef WEIR_LIB_JHASH_H
#define WEIR_LIB_JHASH_H

#include <linux/types.h>

#define WEIR_JHASH_INITVAL 0xdeadbeef

static __always_inline __u32 weir_rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

static __always_inline __u32 weir_jhash_3words(__u32 a, __u32 b, __u32 c, __u32 initval)
{
	a += WEIR_JHASH_INITVAL + (3 << 2) + initval;
	b += WEIR_JHASH_INITVAL + (3 << 2) + initval;
	c += WEIR_JHASH_INITVAL + (3 << 2) + initval;
	c ^= b;
	c -= weir_rol32(b, 14);
	a ^= c;
	a -= weir_rol32(c, 11);
	b ^= a;
	b -= weir_rol32(a, 25);
	c ^= b;
	c -= weir_rol32(b, 16);
	a ^= c;
	a -= weir_rol32(c, 4);
	b ^= a;
	b -= weir_rol32(a, 14);
	c ^= b;
	c -= weir_rol32(b, 24);
	return c;
}

#endif
