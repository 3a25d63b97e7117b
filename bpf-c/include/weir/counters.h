/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ABI: the per-CPU counters every program bumps. Userspace reads the enum names
 * below from BTF and turns them into metric labels and CLI columns, so a name here
 * is a public name: `WEIR_REASON_SERVICE_NAT` becomes reason="service_nat".
 *
 * Values are append-only. The counters map is pinned and survives upgrades; a
 * renumbered reason would make old counts show up under a new name.
 */
#ifndef WEIR_ABI_COUNTERS_H
#define WEIR_ABI_COUNTERS_H

#include <linux/types.h>

/* Where the packet (or socket call) was seen. */
enum weir_hook {
	WEIR_HOOK_PROBE = 0,	 /* the counting probe (probe.c), attached anywhere */
	WEIR_HOOK_FROM_POD = 1,	 /* TC ingress on a workload interface, host side */
	WEIR_HOOK_TO_POD = 2,	 /* TC egress on a workload interface */
	WEIR_HOOK_FROM_HOST = 3, /* TC ingress on a host interface */
	WEIR_HOOK_TO_HOST = 4,	 /* TC egress on a host interface */
	WEIR_HOOK_TUNNEL = 5,	 /* TC on the VXLAN device */
	WEIR_HOOK_SOCK = 6,	 /* cgroup socket hooks */
	WEIR_HOOK_XDP = 7,	 /* XDP prefilter */
	WEIR_HOOK_PROBE_ALT = 8, /* a second probe slot, for side-by-side probe versions */
	WEIR_HOOK__MAX = 16,	 /* slots reserved per reason; not a hook */
};

/* Why a program did what it did with a packet: exactly one reason per packet per hook
 * (except LB_STATS_FULL, an event counted next to the packet's reason). */
enum weir_reason {
	WEIR_REASON_PASS = 0, /* not ours: handed on untouched */
	/* what the parser found (the probe counts these) */
	WEIR_REASON_PARSED_TCP = 1,
	WEIR_REASON_PARSED_UDP = 2,
	WEIR_REASON_PARSED_ICMP = 3,
	WEIR_REASON_PARSED_ICMPV6 = 4,
	WEIR_REASON_PARSED_OTHER_L4 = 5, /* IP with an L4 we do not parse (SCTP, GRE, ...) */
	WEIR_REASON_NOT_IP = 6,		 /* ARP, LLDP, ...: not IPv4 or IPv6 */
	WEIR_REASON_FRAGMENT = 7,	 /* a non-first IP fragment: no L4 header to read */
	/* malformed packets: passed on untouched, never parsed further */
	WEIR_REASON_MALFORMED_ETH = 8,	     /* shorter than an Ethernet header */
	WEIR_REASON_MALFORMED_IPV4_HDR = 9,  /* truncated header, version != 4 or IHL < 5 */
	WEIR_REASON_MALFORMED_IPV4_LEN = 10, /* total length below the header or past the packet */
	WEIR_REASON_MALFORMED_IPV6 =
		11, /* truncated header or extension header, bad payload length */
	WEIR_REASON_MALFORMED_L4 =
		12, /* truncated TCP/UDP/ICMP header, TCP data offset out of range */
	/* socket hooks */
	WEIR_REASON_SOCK_CONNECT4 = 13, /* a connect() the probe saw */
	/* services (from_pod, from_host, sock_lb) */
	WEIR_REASON_SERVICE_NAT =
		14, /* first packet of a flow to a frontend: backend chosen, DNAT'd */
	WEIR_REASON_NAT_ESTABLISHED = 15, /* a later packet of a NAT'd flow, original direction */
	WEIR_REASON_REVERSE_NAT =
		16, /* a reply of a NAT'd flow: source turned back into the frontend */
	WEIR_REASON_NO_BACKEND_REJECT =
		17, /* frontend with no usable endpoint: ICMP port unreachable sent */
	WEIR_REASON_NO_LOCAL_BACKEND_DROP =
		18,			    /* Local traffic policy, no local endpoint: dropped */
	WEIR_REASON_CT_CREATE_FAILED = 19,  /* conntrack entries could not be written: dropped */
	WEIR_REASON_ICMP_ERROR_REVNAT = 20, /* an ICMP error about a NAT'd flow, translated back */
	WEIR_REASON_HAIRPIN =
		21, /* first packet of a flow whose backend is its client: DNAT + SNAT */
	WEIR_REASON_SCTP_PORT_REWRITE =
		22, /* SCTP frontend port != backend port (no CRC32c in BPF): dropped */
	WEIR_REASON_SOCK_LB_TRANSLATED =
		23, /* connect()/sendmsg() to a frontend sent to a backend */
	WEIR_REASON_SOCK_LB_REVERSE =
		24, /* recvmsg()/getpeername() showed the frontend instead of the backend */
	WEIR_REASON_SOCK_DESTROYED =
		25, /* a UDP socket connected to a removed backend was destroyed */
	WEIR_REASON_BACKEND_MISSING =
		26, /* a frontend slot with no backend entry (userspace bug): dropped */
	WEIR_REASON_REJECT_FAILED = 27, /* the ICMP port unreachable could not be built: dropped */
	WEIR_REASON_NAT_FAILED = 28,	/* a packet rewrite helper failed: dropped */
	WEIR_REASON_MIDFLOW_NO_CONNTRACK =
		29, /* a TCP packet without SYN to a frontend, no conntrack entry:
	                                    * a connection weir never saw start (kube-proxy's, before the
	                                    * takeover): passed to the kernel's conntrack, not re-balanced */
	WEIR_REASON_LB_STATS_FULL =
		30, /* not a packet verdict: a new flow weir_lb_stats4 had no room to
	                                    * count (counted in addition to the packet's own reason; the
	                                    * packet is forwarded as usual) */
	/* conntrack of every flow (the ct_track_all knob; policy needs it) */
	WEIR_REASON_CT_TRACKED_NEW =
		31,		     /* first packet of a flow to no frontend: an entry pair without
	                                    * rewrite created, passed untouched */
	WEIR_REASON_CT_TRACKED = 32, /* a later packet of a tracked flow (either direction): entry
	                                    * refreshed, passed untouched */
	WEIR_REASON_CT_TRACK_FAILED =
		33, /* a flow to no frontend could not be tracked (map update failed):
	                                    * passed untracked, as if ct_track_all were off */
	WEIR_REASON_LB_SOURCE_DENIED =
		34, /* first packet of a flow to a load balancer IP from a client outside the
	                                    * service's loadBalancerSourceRanges: dropped */
	/* forwarding to other nodes (issue 12; lib/tunnel.h) */
	WEIR_REASON_TUNNEL_ENCAP =
		35, /* not a packet verdict: a packet encapsulated in VXLAN toward another
	                                    * node (counted in addition to the packet's own reason) */
	WEIR_REASON_TUNNEL_DECAP =
		36, /* not a packet verdict: a VXLAN packet from a peer node, decapsulated
	                                    * (the inner packet is then counted under its own reason) */
	WEIR_REASON_TUNNEL_FRAG_NEEDED =
		37, /* too big once encapsulated, DF set: ICMP fragmentation needed (with
	                                    * the MTU that fits) sent back to its sender; IPv6:
	                                    * ICMPv6 Packet Too Big (lib/tunnel6.h) */
	WEIR_REASON_TUNNEL_FAILED = 38, /* encapsulation or decapsulation failed (no route
	                                    * to the node, a helper error): dropped */
	WEIR_REASON_TUNNEL_DENIED =
		39, /* a packet to the tunnel port with weir's VNI from an address that is not
	                                    * a peer node (weir_nodes4, weir_nodes6): dropped */
	WEIR_REASON_TUNNEL_TOO_BIG = 40, /* too big once encapsulated, DF clear (IPv6: not even
	                                    * 1280 bytes would fit): dropped */
	WEIR_REASON_DSR_REPLY = 41,	 /* not a packet verdict: a reply of a DSR flow leaving the
	                                    * backend's node for the client directly (counted in
	                                    * addition to reverse_nat) */
	/* NetworkPolicy (issue 13; lib/policy.h) */
	WEIR_REASON_POLICY_EGRESS_DENIED = 42, /* first packet of a flow the sending pod's egress
	                                    * policy does not allow: dropped */
	WEIR_REASON_POLICY_INGRESS_DENIED =
		43, /* first packet of a flow the receiving pod's ingress
	                                    * policy does not allow: dropped */
	WEIR_REASON_POLICY_EGRESS_ALLOWED =
		44, /* not a packet verdict: a new flow an isolated pod's
	                                    * egress policy allowed (counted next to its reason) */
	WEIR_REASON_POLICY_INGRESS_ALLOWED = 45, /* not a packet verdict: the same for ingress */
	/* anti-spoofing (issue 16; lib/pod_source.h) */
	WEIR_REASON_SPOOFED_SOURCE = 46, /* a packet from a pod whose source address is not one of
	                                    * its own (weir_pod_addrs4, weir_pod_addrs6): dropped */
	/* socket LB fallback (sock_lb.c) */
	WEIR_REASON_SOCK_LB_FALLBACK = 47, /* not a packet verdict: a connect()/sendmsg() to a
	                                    * frontend the socket LB serves that it could not
	                                    * translate (no backend in the picked slot, or the
	                                    * reverse entry not written); the per-packet path NATs
	                                    * it instead */
	/* host endpoint policy (issue 17; include/weir/host_policy.h, lib/host_policy.h) */
	WEIR_REASON_HOST_UNTRACKED_DENIED = 48, /* a doNotTrack Deny rule: dropped (XDP, or TC when
	                                         * XDP is unavailable) */
	WEIR_REASON_HOST_UNTRACKED_ALLOWED =
		49,			      /* a doNotTrack Allow rule: passed, never tracked */
	WEIR_REASON_HOST_PREDNAT_DENIED = 50, /* a preDNAT Deny (or tier end): dropped before
	                                         * service NAT */
	WEIR_REASON_HOST_POLICY_DENIED = 51,  /* the host endpoint's policy (to or from the host
	                                      * itself) denied a new flow: dropped */
	WEIR_REASON_HOST_FORWARD_DENIED = 52, /* applyOnForward policy denied a forwarded flow */
	WEIR_REASON_HOST_FAILSAFE = 53,	      /* not a packet verdict: a new flow to or from a
	                                       * failsafe port, host policy skipped */
	WEIR_REASON_HOST_POLICY_ALLOWED = 54, /* not a packet verdict: a new flow a host endpoint's
	                                       * policy allowed (counted next to its reason) */
	WEIR_REASON__MAX = 64,		      /* slots reserved per hook; not a reason */
};

/* One counter slot, per CPU. Index in weir_counters: hook * WEIR_REASON__MAX + reason. */
struct weir_counter {
	__u64 packets;
	__u64 bytes; /* skb->len as the hook saw it (L2 included on TC); 0 for socket hooks */
};

#define WEIR_COUNTER_SLOTS (WEIR_HOOK__MAX * WEIR_REASON__MAX)

#endif
