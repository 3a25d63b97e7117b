/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ABI: `weir monitor`'s maps. The programs write one struct weir_event per packet verdict
 * the monitor asked for into the ring buffer weir_events, while the lease in
 * weir_monitor_cfg runs; userspace (src/dataplane/monitor.ts) decodes them through BTF.
 *
 * One event layout for every kind: what kind an event is (drop, reject, NAT, policy) follows
 * from its reason (weir/counters.h), so the kernel side knows nothing of kinds and filters
 * on one 64-bit reason mask. Addresses are 16 bytes for both families (IPv4 v4-mapped,
 * ::ffff:a.b.c.d), byte order as in service.h.
 */
#ifndef WEIR_ABI_MONITOR_H
#define WEIR_ABI_MONITOR_H

#include <linux/types.h>
#include <weir/service.h>

/* weir_monitor_cfg.flags */
enum weir_monitor_cfg_flags {
	WEIR_MONITOR_DISABLED = 1 << 0, /* the daemon runs with --monitor off: never emit */
};

/* The one entry of weir_monitor_cfg (array, key 0). All zero: nobody monitors, and the
 * programs pay one array lookup and one compare per packet. */
struct weir_monitor_cfg {
	__u64 until_ns;	 /* lease: emit while bpf_ktime_get_ns() < until_ns; 0: off */
	__u64 reasons;	 /* bit r set: emit the packets whose verdict is weir_reason r */
	__u32 sample;	 /* emit 1 in @sample of the matching packets (random); 0 and 1: all */
	__u32 flags;	 /* enum weir_monitor_cfg_flags */
	__u32 owner_pid; /* the weir monitor process holding the lease (userspace only) */
	__u32 pad;
};

/* Per CPU, key 0 of weir_monitor_stats: what the programs emitted and what they could not
 * (the ring buffer was full: the reader is too slow). */
struct weir_monitor_stats {
	__u64 emitted;
	__u64 lost;
};

/* weir_event.flags */
enum weir_event_flags {
	WEIR_EVENT_NAT = 1 << 0,  /* nat_daddr/nat_dport: the backend the flow was sent to */
	WEIR_EVENT_SNAT = 1 << 1, /* nat_saddr/nat_sport: the source it was rewritten to */
};

/* One event in weir_events: the packet as the hook saw it (before any rewrite). */
struct weir_event {
	__u64 time_ns;	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u8 hook;	/* enum weir_hook */
	__u8 reason;	/* enum weir_reason: the packet's verdict */
	__u8 family;	/* 4 or 6 */
	__u8 protocol;	/* IPPROTO_* */
	__u32 ifindex;	/* the interface the hook runs on */
	__u32 len;	/* skb->len as the hook saw it */
	__u16 flags;	/* enum weir_event_flags */
	__u8 tcp_flags; /* TCP flags byte of the packet */
	__u8 icmp_type; /* ICMP/ICMPv6 type (0 for other protocols) */
	weir_ip6 saddr;
	weir_ip6 daddr;
	__be16 sport; /* TCP/UDP/SCTP ports; ICMP echo: the identifier */
	__be16 dport;
	__be16 nat_sport;
	__be16 nat_dport;
	weir_ip6 nat_saddr;
	weir_ip6 nat_daddr;
};

#endif
