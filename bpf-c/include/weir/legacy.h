/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ABI: map layouts of earlier releases, kept only so that userspace can convert their
 * entries on upgrade and write them back on rollback. No program uses them. Each struct
 * is the layout exactly as that release pinned it; never edit one.
 *
 * weir_ct4_v1: conntrack as release 2e42a8d pinned it, `weir_ct4` (LRU hash, key
 * struct weir_ct4_key, 262,144 entries). NAT'd flows only; every entry has SNAT or DNAT.
 */
#ifndef WEIR_ABI_LEGACY_H
#define WEIR_ABI_LEGACY_H

#include <linux/types.h>
#include <weir/service.h>

struct weir_ct4_v1 {
	weir_ip4 nat_saddr;
	weir_ip4 nat_daddr;
	__be16 nat_sport;
	__be16 nat_dport;
	__u16 flags; /* enum weir_ct_flags, bits 0..5 only */
	__u8 tcp_flags_seen;
	__u8 pad;
	__u32 frontend_id;
	__u32 pad2;
	__u64 created_ns;
	__u64 last_seen_ns;
	__u64 packets;
	__u64 bytes;
};

#endif
