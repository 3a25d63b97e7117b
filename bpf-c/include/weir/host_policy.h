/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ABI: host endpoint policy (issue 17): Calico's projectcalico.org/v3 GlobalNetworkPolicy and
 * HostEndpoint, compiled by the daemon (src/model/host-policy) into ordered rule chains that
 * the programs walk once per new flow:
 *
 *   weir_hep_ifaces   (HASH)  host interface ifindex -> the host endpoint covering it (an
 *                             explicit HostEndpoint naming it, else the node's automatic one)
 *   weir_hep_chains   (HASH)  {host endpoint, chain kind} -> where its rules are in
 *                             weir_host_rules (absent: no policy of that kind applies)
 *   weir_host_rules   (ARRAY) the rules of every chain, in evaluation order: tiers, policies by
 *                             order, rules in order, each tier's end-of-tier deny and the
 *                             profile (allow) at the end of normal chains all compiled in
 *   weir_host_sets4   (LPM)   {set, prefix}: the addresses a rule's nets / selector /
 *                             namespaceSelector name (a selector resolves to the addresses of
 *                             the pods and host endpoints it matches, cluster-wide)
 *   weir_host_sets6   (LPM)   the same for IPv6
 *   weir_failsafe4    (LPM)   {direction, protocol, port, prefix}: failsafe ports, always
 *                             allowed before any host policy (Felix FailsafeInboundHostPorts /
 *                             FailsafeOutboundHostPorts; the prefix is the entry's optional CIDR)
 *   weir_failsafe6    (LPM)   the same for IPv6 CIDRs
 *   weir_host_rule_stats (PERCPU_ARRAY) per rule index: packets and bytes that rule decided
 *   weir_host_policy_names (HASH) policy slot -> "tier/name" (CLI, monitor, explain)
 *   weir_hep_info     (HASH)  host endpoint id -> JSON {name, auto, interfaces, expectedIPs,
 *                             labels} (CLI only, like weir_policy_selects: `weir policy` names
 *                             the endpoints; src/dataplane/host-policy-view.ts hepInfoValue)
 *
 * Chains of one host endpoint (Calico's per-HEP sets, felix/calc/event_sequencer.go):
 *   UNTRACKED_IN   doNotTrack ingress: XDP (TC when XDP is unavailable), before conntrack; an
 *                  allowed packet is never tracked; no match: on to the next chains
 *   UNTRACKED_OUT  doNotTrack egress of host-sent packets (host_out)
 *   PREDNAT_IN     preDNAT ingress on the original destination, before service NAT; Deny drops,
 *                  Allow skips NORMAL_IN/FORWARD_IN (pod policy still applies); no match: on
 *   NORMAL_IN      ingress to the host itself (failsafes first); ends in the profile or a deny
 *   NORMAL_OUT     egress from the host itself (host_out; failsafes first)
 *   FORWARD_IN     ingress of forwarded traffic (applyOnForward policies); no such policy:
 *                  absent chain = allow
 *   FORWARD_OUT    egress of forwarded traffic (applyOnForward policies)
 *
 * A rule matches when every criterion it has holds (Calico: criteria AND). A chain is walked
 * from `first` for at most `count` steps; PASS jumps to the rule index in `jump` (the next
 * tier's first rule, or the chain's end). Falling off the end of a chain is "no match"
 * (untracked and preDNAT: continue; the compiler ends the other chains with an explicit rule).
 * Byte order as in service.h: addresses and ports network order.
 */
#ifndef WEIR_ABI_HOST_POLICY_H
#define WEIR_ABI_HOST_POLICY_H

#include <linux/types.h>
#include <weir/service.h>

enum weir_hep_chain_kind {
	WEIR_CHAIN_UNTRACKED_IN = 0,
	WEIR_CHAIN_UNTRACKED_OUT = 1,
	WEIR_CHAIN_PREDNAT_IN = 2,
	WEIR_CHAIN_NORMAL_IN = 3,
	WEIR_CHAIN_NORMAL_OUT = 4,
	WEIR_CHAIN_FORWARD_IN = 5,
	WEIR_CHAIN_FORWARD_OUT = 6,
	WEIR_CHAIN__MAX = 7,
};

/* weir_hep_ifaces (HASH): ifindex of a host interface -> its host endpoint */
struct weir_hep_iface_key {
	__u32 ifindex;
};

enum weir_hep_iface_flags {
	WEIR_HEP_XDP_ATTACHED = 1 << 0, /* the XDP prefilter runs on this interface: TC does not
	                                 * walk UNTRACKED_IN again for packets XDP marked */
};

struct weir_hep_iface {
	__u32 hep;   /* host endpoint id (the daemon's; weir_hep_chains keys) */
	__u32 flags; /* enum weir_hep_iface_flags */
};

/* weir_hep_chains (HASH) */
struct weir_hep_chain_key {
	__u32 hep;
	__u32 kind; /* enum weir_hep_chain_kind */
};

struct weir_hep_chain {
	__u32 first; /* index in weir_host_rules of the chain's first rule */
	__u32 count; /* rules in the chain; the walk stops at first + count */
};

enum weir_host_rule_action {
	WEIR_HOST_ALLOW = 0,
	WEIR_HOST_DENY = 1,
	WEIR_HOST_PASS = 2, /* go on at rule `jump` (the next tier) */
};

enum weir_host_rule_flags {
	WEIR_HOST_RULE_PROTOCOL = 1 << 0, /* `protocol` must equal the packet's */
	WEIR_HOST_RULE_SPORTS = 1 << 1,	  /* sport_min <= source port <= sport_max */
	WEIR_HOST_RULE_DPORTS = 1 << 2,	  /* dport_min <= destination port <= dport_max */
	WEIR_HOST_RULE_IPV4 = 1 << 3,	  /* the rule has IPv4 nets: never matches IPv6 */
	WEIR_HOST_RULE_IPV6 = 1 << 4,	  /* the rule has IPv6 nets: never matches IPv4 */
	WEIR_HOST_RULE_TIER_END = 1 << 5, /* compiled end-of-tier deny (explain names it so) */
	WEIR_HOST_RULE_PROFILE = 1 << 6,  /* compiled profile allow/deny at a chain's end */
};

/* weir_host_rules (ARRAY): one flat rule. Sets are ids in weir_host_sets4/6; 0 = no such
 * criterion. A set criterion holds when the address is in the set; a not-set criterion
 * when it is not. */
struct weir_host_rule {
	__u8 action;		    /* enum weir_host_rule_action */
	__u8 protocol;		    /* IPPROTO_* when WEIR_HOST_RULE_PROTOCOL */
	__u16 flags;		    /* enum weir_host_rule_flags */
	__u32 jump;		    /* WEIR_HOST_PASS: the rule index to go on at */
	__u16 sport_min, sport_max; /* host order, inclusive */
	__u16 dport_min, dport_max; /* host order, inclusive */
	__u32 src_set, src_not_set; /* source address in / not in */
	__u32 dst_set, dst_not_set; /* destination address in / not in */
	__u32 policy;		    /* weir_host_policy_names slot (0: compiled rule, no policy) */
	__u32 rule;		    /* index in the policy's ingress or egress list */
};

/* weir_host_sets4 (LPM): 32 fixed bits (the set), then the address prefix */
struct weir_host_set4_key {
	__u32 prefixlen;
	__u32 set;
	weir_ip4 address;
};

struct weir_host_set6_key {
	__u32 prefixlen;
	__u32 set;
	weir_ip6 address;
};

#define WEIR_HOST_SET_FIXED_BITS 32

/* weir_failsafe4 (LPM): 32 fixed bits (direction, protocol, port), then the CIDR (the peer:
 * the source for inbound, the destination for outbound; 0.0.0.0/0 when the entry has none) */
enum weir_failsafe_direction {
	WEIR_FAILSAFE_IN = 0,
	WEIR_FAILSAFE_OUT = 1,
};

struct weir_failsafe4_key {
	__u32 prefixlen;
	__u8 direction; /* enum weir_failsafe_direction */
	__u8 protocol;	/* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	__be16 port;	/* the host's port (inbound: destination; outbound: destination) */
	weir_ip4 address;
};

struct weir_failsafe6_key {
	__u32 prefixlen;
	__u8 direction;
	__u8 protocol;
	__be16 port;
	weir_ip6 address;
};

#define WEIR_FAILSAFE_FIXED_BITS 32

/* weir_host_rule_stats (PERCPU_ARRAY, one slot per weir_host_rules index) */
struct weir_host_rule_stats {
	__u64 packets;
	__u64 bytes;
};

/* weir_host_policy_names (HASH): slot -> "tier/name" (NUL-terminated) */
#define WEIR_HOST_POLICY_NAME_LEN 320
struct weir_host_policy_name {
	char name[WEIR_HOST_POLICY_NAME_LEN];
};

/* weir_hep_info (HASH, CLI only): host endpoint id -> its description as JSON text
 * (NUL-terminated; labels left out, with "labelsTruncated":true, when they do not fit) */
#define WEIR_HEP_INFO_LEN 1024
struct weir_hep_info {
	char text[WEIR_HEP_INFO_LEN];
};

/* What the XDP prefilter tells TC (bpf_xdp_adjust_meta; read from skb->data_meta): set on
 * every packet XDP let through, so TC neither walks UNTRACKED_IN again nor tracks a packet
 * an untracked rule allowed. */
#define WEIR_XDP_META_MAGIC 0x77656972 /* "weir" */
enum weir_xdp_verdict {
	WEIR_XDP_NO_MATCH = 0,	      /* no untracked rule decided: on to conntrack and policy */
	WEIR_XDP_UNTRACKED_ALLOW = 1, /* an untracked Allow: pass, never tracked */
	WEIR_XDP_FAILSAFE = 2,	      /* a failsafe port: untracked policy skipped */
};

struct weir_xdp_meta {
	__u32 magic;   /* WEIR_XDP_META_MAGIC */
	__u32 verdict; /* enum weir_xdp_verdict */
};

#endif
