/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Conntrack for IPv6 (issue 14): weir_ct6, the same entry pairs, flags, states and timeouts as
 * weir_ct4_v2 (conntrack.h) with 16-byte addresses. Userspace GC ages both families alike. */
#ifndef WEIR_LIB_CONNTRACK6_H
#define WEIR_LIB_CONNTRACK6_H

#include "compiler.h"
#include "conntrack.h"
#include <weir/conntrack.h>

/* as weir_ct4_v2: two entries per flow */
#ifndef WEIR_CT6_MAX_ENTRIES
#define WEIR_CT6_MAX_ENTRIES WEIR_CT4_MAX_ENTRIES
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WEIR_CT6_MAX_ENTRIES);
	__type(key, struct weir_ct6_key);
	__type(value, struct weir_ct6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ct6 SEC(".maps");

#endif
