/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The tunnel's maps (weir/tunnel.h): which node a pod address lives on, and which nodes
 * weir accepts tunnel packets from. */
#ifndef WEIR_LIB_TUNNEL_H
#define WEIR_LIB_TUNNEL_H

#include "compiler.h"
#include <weir/tunnel.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct weir_node4_key);
	__type(value, struct weir_node4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_nodes4 SEC(".maps");

/* pod CIDRs of the other nodes, and /32s of endpoints outside them (an LPM trie must not be
 * preallocated) */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 131072);
	__type(key, struct weir_tunnel4_key);
	__type(value, struct weir_tunnel4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_tunnel4 SEC(".maps");

/* The node @addr lives on, or NULL when it is on this node or unknown. */
static __always_inline const struct weir_tunnel4 *tunnel4_node_of(weir_ip4 addr)
{
	struct weir_tunnel4_key k = {.prefixlen = 32, .address = addr};

	return bpf_map_lookup_elem(&weir_tunnel4, &k);
}

/* Whether @addr is a peer node's underlay address. */
static __always_inline int tunnel4_is_peer(weir_ip4 addr)
{
	struct weir_node4_key k = {.address = addr};
	struct weir_node4 *n = bpf_map_lookup_elem(&weir_nodes4, &k);

	return n && (n->flags & WEIR_NODE_PEER);
}

#endif
