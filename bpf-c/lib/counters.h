/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The counters map and the one function that bumps it. */
#ifndef WEIR_LIB_COUNTERS_H
#define WEIR_LIB_COUNTERS_H

#include "compiler.h"
#include <weir/counters.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct weir_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_counters SEC(".maps");

/* Bumps the slot *@slot (hook * WEIR_REASON__MAX + reason). The key is a pointer so that a
 * caller short of stack can keep it in a map value (the policy stage's scratch). */
static __always_inline void count_slot(const __u32 *slot, __u32 bytes)
{
	struct weir_counter *c;

	if (*slot >= WEIR_COUNTER_SLOTS)
		return;
	c = bpf_map_lookup_elem(&weir_counters, slot);
	if (!c)
		return;
	/* per-CPU slot, and TC/XDP/socket hooks do not preempt themselves: plain adds suffice */
	c->packets += 1;
	c->bytes += bytes;
}

static __always_inline void count(enum weir_hook hook, enum weir_reason reason, __u32 bytes)
{
	__u32 slot = (__u32)hook * WEIR_REASON__MAX + (__u32)reason;

	count_slot(&slot, bytes);
}

#endif
