/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ABI: NetworkPolicy (issue 13). The daemon compiles the cluster's NetworkPolicies, Pods and
 * Namespaces (src/model/policy) into four maps; the programs decide each new flow once, from
 * them, and cache the verdict in conntrack (weir_ct4.policy):
 *
 *   weir_ipcache4   (LPM)  every address weir knows -> its security identity: every pod of the
 *                          cluster (/32), the nodes, every ipBlock prefix (cidr and except)
 *   weir_ipcache6   (LPM)  the same for IPv6 addresses (/128, IPv6 ipBlock prefixes)
 *   weir_endpoints4 (HASH) each pod on this node, by address -> its identity and which
 *                          directions some policy isolates
 *   weir_endpoints6 (HASH) the same by IPv6 address (a dual-stack pod has an entry in both)
 *   weir_policy4    (LPM)  per local identity and direction: the peers, protocols and ports
 *                          allowed (identity and peer exact, then protocol, then a port prefix)
 *   weir_policy_names (HASH) a policy's slot -> "namespace/name", for the CLI and metrics
 *   weir_identities (HASH) identity -> its key (labels, named ports; or the CIDR), so a
 *                          restart keeps every id and `weir identities` can name them
 *   weir_policy_selects (HASH) {local identity, policy slot} -> directions (CLI only)
 *
 * A flow is allowed when the source endpoint's egress (if isolated) and the destination
 * endpoint's ingress (if isolated) both have a key for the other side: its identity, the
 * identity of the longest ipBlock prefix holding its address, or WEIR_IDENTITY_ANY. Traffic
 * between a pod and its own node (WEIR_IDENTITY_HOST) is always allowed (Kubernetes: kubelet
 * probes). Identities and policy keys are family-neutral: an IPv6 flow is the IPv4 decision
 * after its addresses are looked up in the IPv6 maps, against the same weir_policy4 keys. Byte
 * order as in service.h.
 */
#ifndef WEIR_ABI_POLICY_H
#define WEIR_ABI_POLICY_H

#include <linux/types.h>
#include <weir/service.h>

/* reserved identities (src/model/policy/identities.ts) */
enum weir_identity {
	WEIR_IDENTITY_ANY = 0,		    /* in a policy key: every peer */
	WEIR_IDENTITY_HOST = 1,		    /* an address of this node */
	WEIR_IDENTITY_REMOTE_NODE = 2,	    /* an address of another node */
	WEIR_IDENTITY_WORLD = 3,	    /* no ipcache entry */
	WEIR_IDENTITY_FIRST_POD = 256,	    /* pods: [256, 2^24) */
	WEIR_IDENTITY_FIRST_CIDR = 1 << 24, /* ipBlock prefixes: [2^24, 2^25) */
};

/* weir_ipcache4 (LPM trie): an address prefix -> identities */
struct weir_ipcache4_key {
	__u32 prefixlen;
	weir_ip4 address;
};

struct weir_ipcache4 {
	__u32 identity;	     /* the identity policy keys name for this address */
	__u32 cidr_identity; /* the longest ipBlock prefix holding it; WEIR_IDENTITY_WORLD: none */
};

/* weir_ipcache4_hosts (HASH): the /32 entries of weir_ipcache4 again (pods, node addresses),
 * looked up first: one hash lookup instead of a walk down the trie for the common peer. A pure
 * accelerator: weir_ipcache4 stays complete, and the CLI reads it. */
struct weir_ipcache4_host_key {
	weir_ip4 address;
};

/* weir_ipcache6 (LPM trie): an IPv6 address prefix -> identities */
struct weir_ipcache6_key {
	__u32 prefixlen;
	weir_ip6 address;
};

struct weir_ipcache6 {
	__u32 identity;	     /* as weir_ipcache4 */
	__u32 cidr_identity; /* as weir_ipcache4 */
};

/* weir_ipcache6_hosts (HASH): the /128 entries of weir_ipcache6 again, looked up first (as
 * weir_ipcache4_hosts) */
struct weir_ipcache6_host_key {
	weir_ip6 address;
};

enum weir_endpoint_flags {
	WEIR_EP_INGRESS_ISOLATED = 1 << 0, /* a policy selects the pod for ingress */
	WEIR_EP_EGRESS_ISOLATED = 1 << 1,  /* a policy selects the pod for egress */
};

/* weir_endpoints4 (HASH): a pod address on this node -> the pod as policy sees it */
struct weir_endpoint4_key {
	weir_ip4 address;
};

struct weir_endpoint4 {
	__u32 identity;
	__u32 flags;	      /* enum weir_endpoint_flags */
	__u32 ingress_policy; /* slot of the first policy isolating it for ingress (deny counts) */
	__u32 egress_policy;  /* the same for egress */
};

/* weir_endpoints6 (HASH): a pod's IPv6 address on this node -> the pod as policy sees it (the
 * same identity as its IPv4 address's entry) */
struct weir_endpoint6_key {
	weir_ip6 address;
};

struct weir_endpoint6 {
	__u32 identity;
	__u32 flags;	      /* enum weir_endpoint_flags */
	__u32 ingress_policy; /* as weir_endpoint4 */
	__u32 egress_policy;
};

enum weir_policy_direction {
	WEIR_POLICY_INGRESS = 0,
	WEIR_POLICY_EGRESS = 1,
};

/* weir_policy4 (LPM trie). The first 72 bits (identity, peer, direction) always match; a
 * key for every protocol and port stops there (prefixlen 72), one for a protocol adds 8
 * bits and then a prefix of the port (prefixlen 80 + 0..16): a port range is a few aligned
 * blocks. */
struct weir_policy4_key {
	__u32 prefixlen;
	__u32 identity; /* the local endpoint's identity */
	__u32 peer;	/* the other side's identity, or WEIR_IDENTITY_ANY */
	__u8 direction; /* enum weir_policy_direction */
	__u8 protocol;	/* IPPROTO_*; the key's prefix ends before it for "every protocol" */
	__be16 port;	/* destination port */
};

#define WEIR_POLICY4_FIXED_BITS 72

struct weir_policy4 {
	__u32 policy; /* slot of the policy (weir_policy_names) of a rule that allows it */
	__u32 rule;   /* the rule's index in spec.ingress / spec.egress */
};

/* weir_policy_names (HASH): slot -> "namespace/name" (NUL-terminated) */
#define WEIR_POLICY_NAME_LEN 320
struct weir_policy_name {
	char name[WEIR_POLICY_NAME_LEN];
};

/* weir_identities (HASH): identity -> its key as the daemon builds it (NUL-terminated, cut
 * at the end: a cut key is not adopted after a restart, the identity gets a new id) */
#define WEIR_IDENTITY_KEY_LEN 1024
struct weir_identity_key {
	char key[WEIR_IDENTITY_KEY_LEN];
};

/* weir_policy_selects (HASH): which policies select each local identity, for the CLI only
 * (`weir policy`): the programs never read it */
struct weir_policy_select_key {
	__u32 identity;
	__u32 policy; /* slot */
};

enum weir_policy_select_flags {
	WEIR_SELECT_INGRESS = 1 << 0, /* the policy isolates the identity for ingress */
	WEIR_SELECT_EGRESS = 1 << 1,  /* ... for egress */
};

struct weir_policy_select {
	__u32 flags; /* enum weir_policy_select_flags */
};

/* weir_policy_stats (PERCPU_ARRAY, policy_stats_enabled): per policy slot, the new flows
 * one of its rules allowed and the ones it denied by default (the first isolating policy) */
struct weir_policy_stats {
	__u64 ingress_allowed;
	__u64 ingress_denied;
	__u64 egress_allowed;
	__u64 egress_denied;
};

#endif
