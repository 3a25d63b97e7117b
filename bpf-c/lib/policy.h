/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The policy stage: whether a new flow may start, decided once per flow, after the
 * backend is chosen (so egress is judged against the real destination) and before
 * conntrack is written (so a denied flow leaves no state). Its verdict is cached in both
 * conntrack entries (weir_ct4.policy): established packets and replies hit conntrack and
 * never come here, which is why policy needs conntrack for every flow (ct_track_all).
 *
 * Every new flow is decided where it first meets weir on this node: from_pod for what a
 * local pod sends (its egress, and the ingress of the destination when that is a local pod
 * too), from_host and the tunnel for what arrives from elsewhere (the ingress of a local
 * destination, against the client's own address: weir never SNATs it). Maps and semantics:
 * include/weir/policy.h. */
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
 * stack lives here instead. */
struct policy4_scratch {
	struct weir_policy4_key key;
	struct weir_ipcache4_key ip;
	struct weir_endpoint4_key ep;
	struct weir_ipcache4_host_key host;
	__u32 slot; /* a counter's or policy's slot, as a lookup key */
	__u32 hook;
	weir_ip4 saddr;
	weir_ip4 daddr;
	__u32 proto;
	__be16 port;
	__u16 bits;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct policy4_scratch);
} weir_policy_scratch SEC(".maps");

/* Enforce NetworkPolicy (1), or allow every flow without a lookup (0). Set by userspace
 * at load (--network-policy); at 0 the verifier prunes the stage. */
const volatile __u8 policy_enabled = 0;
/* Count each policy's allowed and denied flows in weir_policy_stats (--policy-stats). */
const volatile __u8 policy_stats_enabled = 1;

static __always_inline void policy4_stat(struct policy4_scratch *s, __u32 slot, __u32 direction,
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

/* One isolated direction of @ep: does some key allow the peer at @peer_addr on @proto/@port?
 * Returns 1 when allowed (the allowing policy's slot counted), 0 when not. */
static __always_inline int policy4_direction(struct policy4_scratch *s,
					     const struct weir_endpoint4 *ep, __u32 direction,
					     weir_ip4 peer_addr, __u32 proto, __be16 port)
{
	struct weir_ipcache4 *info;
	struct weir_policy4 *hit;
	__u32 identity = WEIR_IDENTITY_WORLD, cidr_identity = WEIR_IDENTITY_WORLD;

	s->host.address = peer_addr;
	info = bpf_map_lookup_elem(&weir_ipcache4_hosts, &s->host);
	if (!info) {
		s->ip.prefixlen = 32;
		s->ip.address = peer_addr;
		info = bpf_map_lookup_elem(&weir_ipcache4, &s->ip);
	}
	if (info) {
		identity = info->identity;
		cidr_identity = info->cidr_identity;
	}
	/* a pod and its own node always talk (kubelet probes) */
	if (identity == WEIR_IDENTITY_HOST)
		return 1;

	s->key.prefixlen = WEIR_POLICY4_FIXED_BITS + 8 + 16;
	s->key.identity = ep->identity;
	s->key.direction = direction;
	s->key.protocol = proto;
	s->key.port = port;
	s->key.peer = identity;
	hit = bpf_map_lookup_elem(&weir_policy4, &s->key);
	if (!hit && cidr_identity != identity) {
		s->key.peer = cidr_identity;
		hit = bpf_map_lookup_elem(&weir_policy4, &s->key);
	}
	if (!hit) {
		s->key.peer = WEIR_IDENTITY_ANY;
		hit = bpf_map_lookup_elem(&weir_policy4, &s->key);
	}
	if (!hit)
		return 0;
	policy4_stat(s, hit->policy, direction, 1);
	return 1;
}

/* count() with its key in the scratch (an event: no bytes) */
static __always_inline void policy4_count(struct policy4_scratch *s, enum weir_reason reason)
{
	s->slot = s->hook * WEIR_REASON__MAX + (__u32)reason;
	count_slot(&s->slot, 0);
}

/**
 * policy4_check - the policy verdict of a new flow @saddr -> @daddr (after DNAT) on
 * @proto_port (protocol << 16 | destination port, network order)
 *
 * Returns the weir_ct_policy bits to cache (0: no local endpoint isolated in a direction
 * the flow takes), or minus the reason to drop the packet with. Counts the decision under
 * @hook. A global function, verified once: its frame sits on top of flow4_new's.
 */
__weir_slow_path int policy4_check(weir_ip4 saddr, weir_ip4 daddr, __u32 proto_port, __u32 hook)
{
	struct weir_endpoint4 *ep;
	struct policy4_scratch *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&weir_policy_scratch, &zero);
	if (!s)
		return 0;
	s->hook = hook;
	s->saddr = saddr;
	s->daddr = daddr;
	s->proto = proto_port >> 16;
	s->port = (__be16)(proto_port & 0xffff);
	s->bits = 0;
	__builtin_memset(&s->key, 0, sizeof(s->key));
	if (s->proto != IPPROTO_TCP && s->proto != IPPROTO_UDP && s->proto != IPPROTO_SCTP)
		s->port =
			0; /* policy ports are TCP/UDP/SCTP's: others match "every port" keys only */

	s->ep.address = s->saddr;
	ep = bpf_map_lookup_elem(&weir_endpoints4, &s->ep);
	if (ep && (ep->flags & WEIR_EP_EGRESS_ISOLATED)) {
		if (!policy4_direction(s, ep, WEIR_POLICY_EGRESS, s->daddr, s->proto, s->port)) {
			policy4_stat(s, ep->egress_policy, WEIR_POLICY_EGRESS, 0);
			return -WEIR_REASON_POLICY_EGRESS_DENIED;
		}
		s->bits |= WEIR_CT_POLICY_EGRESS_ALLOWED;
		policy4_count(s, WEIR_REASON_POLICY_EGRESS_ALLOWED);
	}
	s->ep.address = s->daddr;
	ep = bpf_map_lookup_elem(&weir_endpoints4, &s->ep);
	if (ep && (ep->flags & WEIR_EP_INGRESS_ISOLATED)) {
		if (!policy4_direction(s, ep, WEIR_POLICY_INGRESS, s->saddr, s->proto, s->port)) {
			policy4_stat(s, ep->ingress_policy, WEIR_POLICY_INGRESS, 0);
			return -WEIR_REASON_POLICY_INGRESS_DENIED;
		}
		s->bits |= WEIR_CT_POLICY_INGRESS_ALLOWED;
		policy4_count(s, WEIR_REASON_POLICY_INGRESS_ALLOWED);
	}
	return s->bits;
}

/**
 * policy6_fail_closed - a new IPv6 flow from @src to @dst under policy, until IPv6 policy
 * exists: one to or from a local pod isolated in that direction is dropped, unless its other
 * end is this node (a pod and its node always talk) or it is neighbour discovery, so an
 * isolated pod is never reachable over IPv6 around its policy. Returns the reason to drop
 * with, or WEIR_REASON_PASS.
 */
static __always_inline enum weir_reason
policy6_fail_closed(const struct packet *pkt, const void *src_addr, const void *dst_addr)
{
	struct weir_endpoint6 *src, *dst;

	if (!policy_enabled || pkt->l3_proto != ETH_P_IPV6)
		return WEIR_REASON_PASS;
	/* neighbour discovery (router/neighbour solicitation and advertisement, redirect): without
	 * it not even the pod's own node is reachable */
	if (pkt->l4_proto == IPPROTO_ICMPV6 && pkt->icmp_type >= 133 && pkt->icmp_type <= 137)
		return WEIR_REASON_PASS;
	src = bpf_map_lookup_elem(&weir_endpoints6, src_addr);
	dst = bpf_map_lookup_elem(&weir_endpoints6, dst_addr);
	if (src && (src->flags & WEIR_EP_EGRESS_ISOLATED) && !(dst && (dst->flags & WEIR_EP_HOST)))
		return WEIR_REASON_POLICY_EGRESS_DENIED;
	if (dst && (dst->flags & WEIR_EP_INGRESS_ISOLATED) && !(src && (src->flags & WEIR_EP_HOST)))
		return WEIR_REASON_POLICY_INGRESS_DENIED;
	return WEIR_REASON_PASS;
}

/**
 * policy6_stage - an IPv6 packet at @hook that the IPv6 flow stages do not decide: passed,
 * or dropped by policy6_fail_closed; counted. Returns the verdict.
 */
static __always_inline int policy6_stage(const struct packet *pkt, __u32 hook)
{
	enum weir_reason reason = policy6_fail_closed(pkt, pkt->saddr.v6, pkt->daddr.v6);

	count(hook, reason, pkt->len);
	return reason ? WEIR_TC_DROP : WEIR_TC_PASS;
}

/**
 * policy6_new_flow - the verdict for the first packet @pkt of an IPv6 flow seen at @hook: the
 * source is the client as it arrived, the destination @dst:@dport the backend chosen (after
 * DNAT). Sets *ct_policy to the verdict bits to cache in the flow's weir_ct6 entries.
 * Returns 0 to allow, or the reason to drop the packet with.
 */
static __always_inline enum weir_reason policy6_new_flow(const struct packet *pkt, __u32 hook,
							 const __u32 *dst, __be16 dport,
							 __u8 *ct_policy)
{
	*ct_policy = 0;
	if (!policy_enabled)
		return 0;
	return policy6_fail_closed(pkt, pkt->saddr.v6, dst);
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

#endif
