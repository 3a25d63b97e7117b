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

/* How a flow sent through the tunnel returns (--external-service-mode), carried in the
 * inner Ethernet header of every tunnel packet: its destination MAC is
 * 02:57:45:49:00:<mode> and, in DSR mode, its source MAC the backend the ingress node chose
 * (address, then port). The inner MACs mean nothing past the decapsulation, so this costs no
 * byte on the wire. */
enum weir_tunnel_mode {
	/* the ingress node DNATs; replies come back through the tunnel and it reverse NATs them */
	WEIR_TUNNEL_MODE_TUNNEL = 0,
	/* the packet goes unmodified; the backend's node DNATs to the backend named in the inner
	 * header and answers the client itself, from the frontend's address and port */
	WEIR_TUNNEL_MODE_DSR = 1,
};

/* weir_dsr_optout4 (LPM trie): client prefixes that keep tunnel mode (--dsr-optout-cidrs) */
struct weir_dsr_optout4_key {
	__u32 prefixlen;
	weir_ip4 address;
};

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
