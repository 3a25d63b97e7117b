/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared compiler glue for every weir BPF object. */
#ifndef WEIR_LIB_COMPILER_H
#define WEIR_LIB_COMPILER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* TC verdicts. TCX uses the same numbers (TCX_PASS == TC_ACT_OK, TCX_DROP == TC_ACT_SHOT),
 * and Debian's uapi headers predate TCX, so we name them once here. */
#define WEIR_TC_PASS 0
#define WEIR_TC_DROP 2
#define WEIR_TC_REDIRECT 7

#endif
