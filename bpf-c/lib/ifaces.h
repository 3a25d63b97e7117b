/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The forward stage's map of both families (forward.h, forward6.h): the interfaces weir
 * attaches to (weir/forward.h), written by the daemon. */
#ifndef WEIR_LIB_IFACES_H
#define WEIR_LIB_IFACES_H

#include "compiler.h"
#include <weir/forward.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct weir_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ifaces SEC(".maps");

#endif
