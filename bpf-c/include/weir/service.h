/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ABI: the service (load-balancing) maps: frontends, backends, session affinity, and the
 * socket-LB reverse and destroy maps. Userspace writes them from Services and
 * EndpointSlices; from_pod, from_host and sock_lb read them. Codecs for every struct
 * here are generated from BTF, so field names are public names.
 *
 * Byte order: addresses are `weir_ip4` and ports `__be16`, both network order as on
 * the wire (the codecs decode them as dotted quads and port numbers). Everything else
 * is host order. Explicit pad fields keep the layouts hole-free: map keys are compared
 * as bytes, and a hole with garbage in it would make two equal keys differ.
 *
 * IPv6 has the same shapes with a 16-byte address (`weir_frontend6_key`, ...), in maps of its
 * own (as Cilium's LB6_* maps): an IPv4 entry does not pay for IPv6's address size. Frontend
 * ids come from one allocator for both families, so the maps keyed by id alone
 * (weir_maglev4: slots, no address) serve both.
 */
#ifndef WEIR_ABI_SERVICE_H
#define WEIR_ABI_SERVICE_H

#include <linux/types.h>

/* An IPv4 address in network order. A typedef of its own so the codecs can tell an
 * address from any other __be32. */
typedef __be32 weir_ip4;
/* An IPv6 address in network order (the codecs show it as IPv6 text). */
typedef __u8 weir_ip6[16];

/* Which clients a frontend entry serves. Every frontend has an INTERNAL entry (all
 * endpoints, or the node-local ones under internalTrafficPolicy: Local); frontends with
 * externalTrafficPolicy: Local get a second, EXTERNAL entry holding only node-local
 * endpoints, which from_host tries first. */
enum weir_frontend_scope {
	WEIR_SCOPE_INTERNAL = 0,
	WEIR_SCOPE_EXTERNAL = 1,
};

/* weir_frontend4.flags */
enum weir_frontend_flags {
	WEIR_FRONTEND_NODEPORT = 1 << 0,     /* a node address + nodePort */
	WEIR_FRONTEND_EXTERNAL_IP = 1 << 1,  /* spec.externalIPs */
	WEIR_FRONTEND_LOADBALANCER = 1 << 2, /* status.loadBalancer.ingress[].ip */
	WEIR_FRONTEND_AFFINITY = 1 << 3,     /* sessionAffinity: ClientIP (timeout in the value) */
	WEIR_FRONTEND_REJECT = 1 << 4,	     /* no usable endpoint: answer ICMP port unreachable */
	WEIR_FRONTEND_DROP = 1 << 5,   /* Local policy, no local endpoint: drop (as kube-proxy) */
	WEIR_FRONTEND_MAGLEV = 1 << 6, /* new flows take the slot weir_maglev4 gives their hash */
	WEIR_FRONTEND_SOURCE_RANGES =
		1 << 7, /* loadBalancerSourceRanges: new flows only from weir_lb_src4's prefixes */
};

/* weir_backend4.flags */
enum weir_backend_flags {
	WEIR_BACKEND_LOCAL = 1 << 0, /* the endpoint runs on this node */
	WEIR_BACKEND_TERMINATING =
		1 << 1, /* serving but terminating (only in slots as a fallback set) */
};

/* weir_frontend4: {address, port, protocol, scope} -> what to do with a new flow. */
struct weir_frontend4_key {
	weir_ip4 address; /* ClusterIP, external/LB IP, or a node address for NodePorts */
	__be16 port;	  /* service port or nodePort; 0 for an ICMP echo frontend */
	__u8 protocol;	  /* IPPROTO_TCP, _UDP, _SCTP, or _ICMP (echo, identifier kept) */
	__u8 scope;	  /* enum weir_frontend_scope */
};

struct weir_frontend4 {
	__u32 id;	     /* frontend id: weir_backend4_key.frontend_id, affinity, conntrack */
	__u16 backend_count; /* slots 0..count-1 of weir_backend4 are eligible for new flows */
	__u16 flags;	     /* enum weir_frontend_flags */
	__u32 affinity_timeout; /* seconds (sessionAffinityConfig.clientIP.timeoutSeconds) */
	__u32 pad;
};

/* weir_backend4: {frontend id, slot} -> one endpoint. Userspace grows a set slots first,
 * count last, and shrinks it count first, so a reader never meets a hole. */
struct weir_backend4_key {
	__u32 frontend_id;
	__u32 slot;
};

struct weir_backend4 {
	weir_ip4 address;
	__be16 port; /* target port; 0 keeps the frontend port (ICMP echo frontends) */
	__u8 flags;  /* enum weir_backend_flags */
	__u8 pad;
};

/* weir_lb_src4 (LPM trie): the client prefixes a WEIR_FRONTEND_SOURCE_RANGES frontend admits
 * (loadBalancerSourceRanges). The frontend id leads the key, inside the prefix, so one trie
 * serves every frontend: prefixlen = 32 (the id, matched whole) + the CIDR's length. The id
 * is host order: only its whole 32 bits are ever matched. Value: a u8, unused (1). */
struct weir_lb_src4_key {
	__u32 prefixlen; /* 32 + CIDR prefix length (the LPM trie's own field) */
	__u32 frontend_id;
	weir_ip4 address; /* the CIDR's network address */
};

/* weir_maglev4: {frontend id} -> the frontend's Maglev lookup table: entry i is the backend
 * slot (weir_backend4_key.slot) for flows whose hash % M is i, M the maglev_table_size knob
 * (a prime <= WEIR_MAGLEV_MAX_TABLE; entries at or above M are unused). Slots are u16 as
 * backend_count is. Only frontends flagged WEIR_FRONTEND_MAGLEV have an entry. */
#define WEIR_MAGLEV_MAX_TABLE 16381

struct weir_maglev4_key {
	__u32 frontend_id;
};

struct weir_maglev4 {
	__u16 slots[WEIR_MAGLEV_MAX_TABLE];
	__u16 pad; /* to a multiple of 4 bytes */
};

/* weir_affinity4 (LRU): the backend a client was last sent to, per frontend. */
struct weir_affinity4_key {
	weir_ip4 client; /* client address; 0.0.0.0 for connect()s in the host netns (socket LB) */
	__u32 frontend_id;
};

struct weir_affinity4 {
	weir_ip4 backend;
	__be16 port;
	__u16 pad;
	__u64 last_used_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last new flow */
};

/* weir_sock_rev4 (LRU): what getpeername() and recvmsg() turn a backend back into, per
 * socket: {socket cookie, backend, port} -> {frontend, port}. */
struct weir_sock_rev4_key {
	__u64 cookie;	  /* bpf_get_socket_cookie() */
	weir_ip4 address; /* backend address */
	__be16 port;	  /* backend port */
	__u16 pad;
};

struct weir_sock_rev4 {
	weir_ip4 address; /* frontend address */
	__be16 port;	  /* frontend port */
	__u16 pad;
};

/* weir_sock_destroy4: peers whose connected UDP sockets the iter/udp program destroys
 * (a removed backend). Value: a u8, unused (1). */
struct weir_sock_destroy4_key {
	weir_ip4 address;
	__be16 port;
	__u16 pad;
};

/* weir_lb_stats4 (PERCPU_HASH): new connections per {frontend, backend}, the
 * `ipvsadm --stats` view. Keyed by the backend's address and port, not its slot: slots are
 * renumbered when a backend set changes, an address is what an operator asks about. A
 * flow counts once, when it picks its backend (from_pod / from_host first packet, or a
 * translated connect()/sendmsg()). Userspace deletes the entries of removed frontends
 * (frontend ids are reused). Off entirely with the lb_stats_enabled .rodata knob. */
struct weir_lb_stats4_key {
	__u32 frontend_id;
	weir_ip4 backend; /* backend address */
	__be16 port;	  /* backend port as translated to (the frontend port for port 0) */
	__u16 pad;
};

struct weir_lb_stats4 {
	__u64 new_connections; /* flows (TCP connections, UDP/ICMP/SCTP flows) sent to this backend */
};

/* Socket-LB mode (the sock_lb_mode .rodata knob). */
enum weir_sock_lb_mode {
	WEIR_SOCK_LB_ALL_NETNS = 0, /* every network namespace in the cgroup */
	WEIR_SOCK_LB_HOST_ONLY = 1, /* only the host netns; pods use the per-packet TC path */
};

/* ---- IPv6: the same maps with 16-byte addresses (issue 14) ----
 * weir_frontend6: {address, port, protocol, scope} -> struct weir_frontend6 (fields as
 * weir_frontend4). weir_backend6: {frontend id, slot} -> one IPv6 endpoint. The Maglev table
 * of an IPv6 frontend is in weir_maglev4 under its id (ids are unique across families). */
struct weir_frontend6_key {
	weir_ip6 address; /* ClusterIP, external/LB IP, or a node address for NodePorts */
	__be16 port;	  /* service port or nodePort; 0 for an ICMPv6 echo frontend */
	__u8 protocol;	  /* IPPROTO_TCP, _UDP, _SCTP, or _ICMPV6 (echo) */
	__u8 scope;	  /* enum weir_frontend_scope */
};

struct weir_frontend6 {
	__u32 id;
	__u16 backend_count;
	__u16 flags; /* enum weir_frontend_flags */
	__u32 affinity_timeout;
	__u32 pad;
};

struct weir_backend6_key {
	__u32 frontend_id;
	__u32 slot;
};

struct weir_backend6 {
	weir_ip6 address;
	__be16 port; /* target port; 0 keeps the frontend port (ICMPv6 echo frontends) */
	__u8 flags;  /* enum weir_backend_flags */
	__u8 pad;
};

/* weir_lb_src6 (LPM trie): as weir_lb_src4; prefixlen = 32 (the id) + the CIDR's length */
struct weir_lb_src6_key {
	__u32 prefixlen;
	__u32 frontend_id;
	weir_ip6 address;
};

/* weir_affinity6 (LRU) */
struct weir_affinity6_key {
	weir_ip6 client; /* :: for connect()s in the host netns (socket LB) */
	__u32 frontend_id;
};

struct weir_affinity6 {
	weir_ip6 backend;
	__be16 port;
	__u16 pad;
	__u32 pad2;
	__u64 last_used_ns;
};

/* weir_sock_rev6 (LRU): {socket cookie, backend, port} -> {frontend, port} for IPv6 sockets
 * (an IPv4 service dialled through a v4-mapped address is in weir_sock_rev4) */
struct weir_sock_rev6_key {
	__u64 cookie;
	weir_ip6 address; /* backend address */
	__be16 port;	  /* backend port */
	__u16 pad;
	__u32 pad2;
};

struct weir_sock_rev6 {
	weir_ip6 address; /* frontend address */
	__be16 port;	  /* frontend port */
	__u16 pad;
};

/* weir_sock_destroy6: IPv6 peers whose connected UDP sockets are destroyed (removed backends) */
struct weir_sock_destroy6_key {
	weir_ip6 address;
	__be16 port;
	__u16 pad;
};

/* weir_lb_stats6 (PERCPU_HASH): as weir_lb_stats4 */
struct weir_lb_stats6_key {
	__u32 frontend_id;
	weir_ip6 backend;
	__be16 port;
	__u16 pad;
};

struct weir_lb_stats6 {
	__u64 new_connections;
};

#endif
