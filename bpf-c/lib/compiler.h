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

/* The slow paths of a hook (the first packet of a flow, an ICMP error) are global
 * functions: the verifier checks each once, on its own, with only its argument types
 * known, instead of once more inside every hook and every branch that reaches it. The
 * per-packet fast path (parse, conntrack hit, NAT) stays inlined. Global functions must
 * check their pointer arguments for NULL (the verifier does not know the caller passed
 * locals) and return a scalar. docs/dataplane.md "Stages" has the measurements behind
 * this choice; WEIR_SLOW_PATH_INLINE / _STATIC build the alternatives (bench/verifier.ts). */
#if defined(WEIR_SLOW_PATH_INLINE)
#define __weir_slow_path static __always_inline
#elif defined(WEIR_SLOW_PATH_STATIC)
#define __weir_slow_path static __attribute__((noinline))
#else
#define __weir_slow_path __attribute__((noinline))
#endif

/* An argument of a global function that nothing reads yet: clang then passes the callee
 * an undefined register, which the verifier rejects ("arg#0 expects pointer to ctx", "R3
 * is not a scalar"). An empty asm that takes the value keeps it a real argument, at no
 * cost. */
#define weir_keep_arg(x) asm volatile("" : : "r"(x))

/* Address families (bpf_fib_lookup, bpf_sock_addr.family): the libc headers that name them
 * do not build for the BPF target, so they are named once here. */
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* TC verdicts. TCX uses the same numbers (TCX_PASS == TC_ACT_OK, TCX_DROP == TC_ACT_SHOT),
 * and Debian's uapi headers predate TCX, so we name them once here. */
#define WEIR_TC_PASS 0
#define WEIR_TC_DROP 2
#define WEIR_TC_REDIRECT 7
/* TCX_NEXT (TC_ACT_UNSPEC): on to the next program of the interface's chain. The IPv4
 * programs hand IPv6 packets to the IPv6 ones attached after them (from_pod6, from_host6),
 * and those hand back anything else; past the chain's end the packet passes. */
#define WEIR_TC_NEXT -1
/* not a TC verdict: flow4_new left the first packet of a tunneled flow to its hook */
#define WEIR_TC_TUNNEL_FIRST 0x7fff
/* not a TC verdict: lb4_admit left the reject of a frontend with no endpoint to the hook
 * (flow4_reject), whose frame is small enough to hold the ICMP it builds */
#define WEIR_TC_REJECT_PENDING 0x7ffe

#endif
