/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The policy stage: whether a new flow may start, decided once per flow, after the
 * backend is chosen (so egress is judged against the real destination) and before
 * conntrack is written (so a denied flow leaves no state). Its verdict is cached in both
 * conntrack entries (weir_ct4.policy, weir_ct6.policy): established packets and replies hit
 * conntrack and never come here, which is why policy needs conntrack for every flow
 * (ct_track_all).
 *
 * Every new flow is decided where it first meets weir on this node: from_pod(6) for what a
 * local pod sends (its egress, and the ingress of the destination when that is a local pod
 * too), from_host(6) and the tunnel for what arrives from elsewhere (the ingress of a local
 * destination, against the client's own address: weir never SNATs it). Both families are one
 * decision (policy_check): only the address -> identity lookups are per family, the policy
 * keys are per identity. Maps and semantics: include/weir/policy.h. */
#ifndef WEIR_LIB_POLICY_H
#define WEIR_LIB_POLICY_H

#include "compiler.h"
#include "conntrack.h"
#include "counters.h"
#include "parse.h"
#include <weir/conntrack.h>
#include <weir/counters.h>
#include <weir/policy.h>

#ifndef WEIR_IPCACHE4_MAX_ENTRIES
#define WEIR_IPCACHE4_MAX_ENTRIES 262144
#endif
#ifndef WEIR_IPCACHE6_MAX_ENTRIES
#define WEIR_IPCACHE6_MAX_ENTRIES 262144
#endif
#ifndef WEIR_ENDPOINTS4_MAX_ENTRIES
#define WEIR_ENDPOINTS4_MAX_ENTRIES 16384
#endif
#ifndef WEIR_POLICY4_MAX_ENTRIES
#define WEIR_POLICY4_MAX_ENTRIES 524288
#endif
/* policies selecting this node's pods (slots; per CPU 32 bytes each in weir_policy_stats) */
#ifndef WEIR_POLICY_SLOTS
#define WEIR_POLICY_SLOTS 4096
#endif
#ifndef WEIR_IDENTITIES_MAX_ENTRIES
#define WEIR_IDENTITIES_MAX_ENTRIES 65536
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_IPCACHE4_MAX_ENTRIES);
	__type(key, struct weir_ipcache4_key);
	__type(value, struct weir_ipcache4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ipcache4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_IPCACHE4_MAX_ENTRIES);
	__type(key, struct weir_ipcache4_host_key);
	__type(value, struct weir_ipcache4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ipcache4_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_ENDPOINTS4_MAX_ENTRIES);
	__type(key, struct weir_endpoint4_key);
	__type(value, struct weir_endpoint4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_endpoints4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_IPCACHE6_MAX_ENTRIES);
	__type(key, struct weir_ipcache6_key);
	__type(value, struct weir_ipcache6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ipcache6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_IPCACHE6_MAX_ENTRIES);
	__type(key, struct weir_ipcache6_host_key);
	__type(value, struct weir_ipcache6);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_ipcache6_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_ENDPOINTS4_MAX_ENTRIES);
	__type(key, struct weir_endpoint6_key);
	__type(value, struct weir_endpoint6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_endpoints6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WEIR_POLICY4_MAX_ENTRIES);
	__type(key, struct weir_policy4_key);
	__type(value, struct weir_policy4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_policy4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_POLICY_SLOTS);
	__type(key, __u32);
	__type(value, struct weir_policy_name);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_policy_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_IDENTITIES_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct weir_identity_key);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_identities SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_POLICY4_MAX_ENTRIES);
	__type(key, struct weir_policy_select_key);
	__type(value, struct weir_policy_select);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_policy_selects SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEIR_POLICY_SLOTS);
	__type(key, __u32);
	__type(value, struct weir_policy_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_policy_stats SEC(".maps");

/* One decision's keys and state, per CPU: the stage runs on top of flow4_new's frame,
 * where the 512-byte BPF stack has 32 bytes left, so what the verifier would spill to the
 * stack lives here instead. Both families: only the address -> identity lookups differ
 * (policy_endpoint, policy_peer), the rest of the decision reads `local` and the peer's
 * identities. */
struct policy_scratch {
	struct weir_policy4_key key;
	struct weir_ipcache4_key ip;
	struct weir_endpoint4_key ep;
	struct weir_ipcache4_host_key host;
	struct weir_ipcache6_key ip6;
	struct weir_endpoint6_key ep6;
	struct weir_ipcache6_host_key host6;
	/* the endpoint whose direction is decided (either family's value: one layout) */
	struct weir_endpoint4 local;
	__u32 peer_identity;
	__u32 peer_cidr_identity;
	__u32 slot; /* a counter's or policy's slot, as a lookup key */
	__u32 hook;
	__u32 saddr[4]; /* IPv4: [0] */
	__u32 daddr[4];
	__u32 proto;
	__be16 port;
	__u16 bits;
};

_Static_assert(sizeof(struct weir_endpoint6) == sizeof(struct weir_endpoint4),
	       "weir_endpoint6 and weir_endpoint4 share one layout: policy_endpoint copies either");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct policy_scratch);
} weir_policy_scratch SEC(".maps");

/* Enforce NetworkPolicy (1), or allow every flow without a lookup (0). Set by userspace
 * at load (--network-policy); at 0 the verifier prunes the stage. */
const volatile __u8 policy_enabled = 0;
/* Count each policy's allowed and denied flows in weir_policy_stats (--policy-stats). */
const volatile __u8 policy_stats_enabled = 1;

static __always_inline void policy_stat(struct policy_scratch *s, __u32 slot, __u32 direction,
					int allowed)
{
	struct weir_policy_stats *st;

	if (!policy_stats_enabled)
		return;
	s->slot = slot;
	st = bpf_map_lookup_elem(&weir_policy_stats, &s->slot);
	if (!st)
		return;
	/* per-CPU slot: plain adds suffice */
	if (direction == WEIR_POLICY_INGRESS) {
		if (allowed)
			st->ingress_allowed += 1;
		else
			st->ingress_denied += 1;
	} else {
		if (allowed)
			st->egress_allowed += 1;
		else
			st->egress_denied += 1;
	}
}

/* count() with its key in the scratch (an event: no bytes) */
static __always_inline void policy_count(struct policy_scratch *s, enum weir_reason reason)
{
	s->slot = s->hook * WEIR_REASON__MAX + (__u32)reason;
	count_slot(&s->slot, 0);
}

/* The address -> identity step, per family: the local endpoint at @addr into s->local.
 * Returns 1 when @addr is an endpoint of this node, 0 when not. */
static __always_inline int policy_endpoint(struct policy_scratch *s, __u32 family,
					   const __u32 *addr)
{
	void *ep;

	if (family == 6) {
		__builtin_memcpy(s->ep6.address, addr, 16);
		ep = bpf_map_lookup_elem(&weir_endpoints6, &s->ep6);
	} else {
		s->ep.address = addr[0];
		ep = bpf_map_lookup_elem(&weir_endpoints4, &s->ep);
	}
	if (!ep)
		return 0;
	__builtin_memcpy(&s->local, ep, sizeof(s->local));
	return 1;
}

/* ... and the peer at @addr into s->peer_identity / peer_cidr_identity: its /32 (/128) in the
 * hosts hash first, else the longest prefix in the ipcache trie, else world. Both families'
 * values are {identity, cidr_identity}. */
static __always_inline void policy_peer(struct policy_scratch *s, __u32 family, const __u32 *addr)
{
	struct weir_ipcache4 *info;

	if (family == 6) {
		__builtin_memcpy(s->host6.address, addr, 16);
		info = bpf_map_lookup_elem(&weir_ipcache6_hosts, &s->host6);
		if (!info) {
			s->ip6.prefixlen = 128;
			__builtin_memcpy(s->ip6.address, addr, 16);
			info = bpf_map_lookup_elem(&weir_ipcache6, &s->ip6);
		}
	} else {
		s->host.address = addr[0];
		info = bpf_map_lookup_elem(&weir_ipcache4_hosts, &s->host);
		if (!info) {
			s->ip.prefixlen = 32;
			s->ip.address = addr[0];
			info = bpf_map_lookup_elem(&weir_ipcache4, &s->ip);
		}
	}
	s->peer_identity = info ? info->identity : WEIR_IDENTITY_WORLD;
	s->peer_cidr_identity = info ? info->cidr_identity : WEIR_IDENTITY_WORLD;
}

_Static_assert(sizeof(struct weir_ipcache6) == sizeof(struct weir_ipcache4),
	       "weir_ipcache6 and weir_ipcache4 share one layout: policy_peer reads either");

/* One isolated direction of s->local against the peer in s->peer_*: does some key allow it on
 * s->proto/s->port? Returns 1 when allowed (the allowing policy's slot counted), 0 when not.
 * Family-neutral from here on. */
static __always_inline int policy_direction(struct policy_scratch *s, __u32 direction)
{
	struct weir_policy4 *hit;

	/* a pod and its own node always talk (kubelet probes) */
	if (s->peer_identity == WEIR_IDENTITY_HOST)
		return 1;

	s->key.prefixlen = WEIR_POLICY4_FIXED_BITS + 8 + 16;
	s->key.identity = s->local.identity;
	s->key.direction = direction;
	s->key.protocol = s->proto;
	s->key.port = s->port;
	s->key.peer = s->peer_identity;
	hit = bpf_map_lookup_elem(&weir_policy4, &s->key);
	if (!hit && s->peer_cidr_identity != s->peer_identity) {
		s->key.peer = s->peer_cidr_identity;
		hit = bpf_map_lookup_elem(&weir_policy4, &s->key);
	}
	if (!hit) {
		s->key.peer = WEIR_IDENTITY_ANY;
		hit = bpf_map_lookup_elem(&weir_policy4, &s->key);
	}
	if (!hit)
		return 0;
	policy_stat(s, hit->policy, direction, 1);
	return 1;
}

/**
 * policy_check - the policy verdict of a new flow s->saddr -> s->daddr (after DNAT) of
 * @family (4 or 6), the addresses already in the scratch, on @proto_port (protocol << 16 |
 * destination port, network order)
 *
 * Returns the weir_ct_policy bits to cache (0: no local endpoint isolated in a direction
 * the flow takes), or minus the reason to drop the packet with. Counts the decision under
 * @hook. A global function, verified once: its frame sits on top of flow4_new's.
 */
__weir_slow_path int policy_check(__u32 family, __u32 proto_port, __u32 hook)
{
	struct policy_scratch *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&weir_policy_scratch, &zero);
	if (!s)
		return 0;
	s->hook = hook;
	s->proto = proto_port >> 16;
	s->port = (__be16)(proto_port & 0xffff);
	s->bits = 0;
	__builtin_memset(&s->key, 0, sizeof(s->key));
	if (s->proto != IPPROTO_TCP && s->proto != IPPROTO_UDP && s->proto != IPPROTO_SCTP)
		s->port =
			0; /* policy ports are TCP/UDP/SCTP's: others match "every port" keys only */

	if (policy_endpoint(s, family, s->saddr) && (s->local.flags & WEIR_EP_EGRESS_ISOLATED)) {
		policy_peer(s, family, s->daddr);
		if (!policy_direction(s, WEIR_POLICY_EGRESS)) {
			policy_stat(s, s->local.egress_policy, WEIR_POLICY_EGRESS, 0);
			return -WEIR_REASON_POLICY_EGRESS_DENIED;
		}
		s->bits |= WEIR_CT_POLICY_EGRESS_ALLOWED;
		policy_count(s, WEIR_REASON_POLICY_EGRESS_ALLOWED);
	}
	if (policy_endpoint(s, family, s->daddr) && (s->local.flags & WEIR_EP_INGRESS_ISOLATED)) {
		policy_peer(s, family, s->saddr);
		if (!policy_direction(s, WEIR_POLICY_INGRESS)) {
			policy_stat(s, s->local.ingress_policy, WEIR_POLICY_INGRESS, 0);
			return -WEIR_REASON_POLICY_INGRESS_DENIED;
		}
		s->bits |= WEIR_CT_POLICY_INGRESS_ALLOWED;
		policy_count(s, WEIR_REASON_POLICY_INGRESS_ALLOWED);
	}
	return s->bits;
}

/**
 * policy4_check - policy_check of an IPv4 flow @saddr -> @daddr (after DNAT): the addresses
 * into the scratch, then the family-neutral decision. (As two more arguments of policy_check
 * instead, from_pod failed verification under policy_enabled, EACCES: flow4_new's frame,
 * under which the call sits, has 32 bytes left. An array lookup costs no more than that.)
 */
static __always_inline int policy4_check(weir_ip4 saddr, weir_ip4 daddr, __u32 proto_port,
					 __u32 hook)
{
	struct policy_scratch *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&weir_policy_scratch, &zero);
	if (!s)
		return 0;
	s->saddr[0] = saddr;
	s->daddr[0] = daddr;
	return policy_check(4, proto_port, hook);
}

/**
 * policy4_new_flow - the verdict for the first packet of @flow, seen at @hook: the source
 * is the client as it arrived, the destination the backend chosen (the flow's NAT'd tuple)
 *
 * Sets flow->policy to the verdict bits to cache. Returns 0 to allow, or the reason to
 * drop the packet with.
 */
static __always_inline enum weir_reason policy4_new_flow(const struct packet *pkt, __u32 hook,
							 struct ct4_flow *flow)
{
	int r;

	flow->policy = 0;
	if (!policy_enabled)
		return 0;
	r = policy4_check(flow->orig.saddr, flow->nat.daddr,
			  ((__u32)flow->orig.protocol << 16) | (__u32)flow->nat.dport, hook);
	if (r < 0)
		return (enum weir_reason)(-r);
	flow->policy = (__u8)r;
	return 0;
}

/* Neighbour discovery (router/neighbour solicitation and advertisement, redirect): without it
 * not even the pod's own node is reachable, so no policy stops it. */
static __always_inline int policy6_is_nd(const struct packet *pkt)
{
	return pkt->l4_proto == IPPROTO_ICMPV6 && pkt->icmp_type >= 133 && pkt->icmp_type <= 137;
}

/**
 * policy6_new_flow - the verdict for the first packet of an IPv6 flow, seen at @hook: the
 * source is the client as it arrived (pkt), the destination @dst:@dport the backend chosen
 * (after DNAT). The IPv4 rules: from_pod decides the sender's egress and a local
 * destination's ingress, from_host and the tunnel a local destination's ingress against the
 * client's own address; the node's addresses are the host identity; ND always passes.
 *
 * Sets *@ct_policy to the enum weir_ct_policy bits to cache in conntrack. Returns 0 to
 * allow, or the WEIR_REASON_POLICY_*_DENIED reason to drop the packet with.
 */
static __always_inline enum weir_reason policy6_new_flow(const struct packet *pkt, __u32 hook,
							 const __u32 *dst, __be16 dport,
							 __u8 *ct_policy)
{
	struct policy_scratch *s;
	__u32 zero = 0;
	int r;

	*ct_policy = 0;
	if (!policy_enabled || policy6_is_nd(pkt))
		return 0;
	s = bpf_map_lookup_elem(&weir_policy_scratch, &zero);
	if (!s)
		return 0;
	__builtin_memcpy(s->saddr, pkt->saddr.v6, 16);
	__builtin_memcpy(s->daddr, dst, 16);
	r = policy_check(6, ((__u32)pkt->l4_proto << 16) | (__u32)dport, hook);
	if (r < 0)
		return (enum weir_reason)(-r);
	*ct_policy = (__u8)r;
	return 0;
}

#endif
