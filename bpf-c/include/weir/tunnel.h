/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Forwarding to other nodes (issue 12): the nodes weir exchanges tunnel packets with, and
 * which node each pod address lives on. Written by the daemon from the cluster's Node
 * objects (InternalIP, spec.podCIDRs) and EndpointSlices (nodeName).
 *
 * A new flow to a NodePort, externalIP or LoadBalancer IP whose chosen backend is on another
 * node is DNATed here and encapsulated in VXLAN (outer UDP to --tunnel-port, VNI
 * WEIR_TUNNEL_VNI) to that node's address from weir_tunnel4; the node decapsulates it in
 * from_host only when the outer source is in weir_nodes4.
 *
 * IPv6 flows (issue 14) have maps of their own: weir_tunnel6 says which node an IPv6 pod
 * address lives on and which underlay reaches it (an IPv6 address, or an IPv4 one written
 * v4-mapped, ::ffff:a.b.c.d), weir_nodes6 the peers' IPv6 underlay addresses (a tunnel packet
 * with an IPv4 outer header is checked against weir_nodes4, whatever it carries). */
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

/* weir_dsr_optout6 (LPM trie): IPv6 client prefixes that keep tunnel mode (--dsr-optout-cidrs) */
struct weir_dsr_optout6_key {
	__u32 prefixlen;
	weir_ip6 address;
};

/* weir_nodes6 (HASH): a node's IPv6 underlay (InternalIP) address -> what it is */
struct weir_node6_key {
	weir_ip6 address;
};

struct weir_node6 {
	__u32 flags; /* enum weir_node_flags */
};

/* weir_tunnel6 (LPM trie): an IPv6 pod address (prefix) on another node -> that node */
struct weir_tunnel6_key {
	__u32 prefixlen; /* of address, for the LPM trie */
	weir_ip6 address;
};

struct weir_tunnel6 {
	/* the node's underlay address, the outer destination: IPv6 (outer IPv6 header) or
	 * v4-mapped ::ffff:a.b.c.d (outer IPv4 header), as weir_ct6.tunnel_node */
	weir_ip6 node_ip;
	__u32 flags; /* enum weir_tunnel_flags */
};

/* The DSR backend of an IPv6 flow: 18 bytes do not fit the inner Ethernet source MAC, so the
 * ingress node puts them in an IPv6 Destination Options header of the inner packet (as
 * Cilium's IPv6 DSR does), one option of this type, which the backend's node removes:
 * 24 bytes on the wire (lib/tunnel6.h). Type 0x1e: RFC 4727's experimental type; its top
 * bits 00 say "skip if unknown", its third bit 0 "does not change en route". */
#define WEIR_TUNNEL_DSR6_OPT 0x1e

struct weir_tunnel_dsr6_opt {
	__u8 nexthdr;	  /* the header after this one (the inner packet's transport) */
	__u8 hdrlen;	  /* 2: (2 + 1) * 8 = 24 bytes */
	__u8 opt_type;	  /* WEIR_TUNNEL_DSR6_OPT */
	__u8 opt_len;	  /* 18 */
	weir_ip6 backend; /* the backend the ingress node chose */
	__be16 port;	  /* its port */
	__u8 pad[2];	  /* PadN: type 1, length 0 */
};

#endif
