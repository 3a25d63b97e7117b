/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Forwarding to other nodes (issue 12): the nodes weir exchanges tunnel packets with, and
 * which node each pod address lives on. Written by the daemon from the cluster's Node
 * objects (InternalIP, spec.podCIDRs) and EndpointSlices (nodeName).
 *
 * A new flow to a NodePort, externalIP or LoadBalancer IP whose chosen backend is on another
 * node is DNATed here and encapsulated in VXLAN (outer UDP to --tunnel-port, VNI
 * WEIR_TUNNEL_VNI) to that node's address from weir_tunnel4; the node decapsulates it in
 * from_host only when the outer source is in weir_nodes4. */
#ifndef WEIR_TUNNEL_H
#define WEIR_TUNNEL_H

#include <linux/types.h>
#include <weir/service.h>

/* weir's own VXLAN network identifier ("WEI"): a packet to the tunnel port with another VNI
 * is not weir's and passes to the stack */
#define WEIR_TUNNEL_VNI 0x574549

enum weir_node_flags {
	WEIR_NODE_PEER = 1 << 0, /* another node of the cluster: its tunnel packets are accepted */
};

/* weir_nodes4 (HASH): a node's underlay (InternalIP) IPv4 address -> what it is */
struct weir_node4_key {
	weir_ip4 address;
};

struct weir_node4 {
	__u32 flags; /* enum weir_node_flags */
};

enum weir_tunnel_flags {
	WEIR_TUNNEL_POD_CIDR = 1 << 0, /* the node's spec.podCIDRs */
	WEIR_TUNNEL_ENDPOINT = 1 << 1, /* one endpoint (/32) whose nodeName says where it runs */
};

/* weir_tunnel4 (LPM trie): a pod address (prefix) on another node -> that node */
struct weir_tunnel4_key {
	__u32 prefixlen; /* of address, for the LPM trie */
	weir_ip4 address;
};

struct weir_tunnel4 {
	weir_ip4 node_ip; /* the node's underlay address: the outer destination */
	__u32 flags;	  /* enum weir_tunnel_flags */
};

#endif
