/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ABI: anti-spoofing (issue 16). Which addresses each workload interface may send from: a pod
 * that sends with a source that is not its own is dropped where it enters the node (from_pod,
 * from_pod6: WEIR_REASON_SPOOFED_SOURCE), otherwise policy by source, the services' client
 * affinity and the other nodes' trust in this node's addresses would mean nothing.
 *
 *   weir_pod_addrs4 (HASH) pod IPv4 address -> the host-side interface it lives behind
 *   weir_pod_addrs6 (HASH) the same for IPv6 (a dual-stack pod has an entry in both)
 *
 * Written by the daemon from the host routes the CNI plugin installs (`podIP dev vethX`,
 * dataplane/interfaces.ts), the very routes weir finds workload interfaces by: the entries
 * exist before from_pod is attached to the interface, need no API server, and bind an address
 * to one interface (weir_endpoints4 says an address is some local pod's, not which one: a pod
 * could send as its neighbour). One hash lookup of the source per packet, then an ifindex
 * compare. Byte order as in service.h. */
#ifndef WEIR_ABI_POD_SOURCE_H
#define WEIR_ABI_POD_SOURCE_H

#include <linux/types.h>
#include <weir/service.h>

struct weir_pod_addr4_key {
	weir_ip4 address;
};

struct weir_pod_addr6_key {
	weir_ip6 address;
};

/* the value of both maps */
struct weir_pod_addr {
	__u32 ifindex; /* the pod's host-side interface: the only one it may send this address from */
};

#endif
