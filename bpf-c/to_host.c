/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_to_host: TC egress of a host interface, i.e. every packet leaving the node there. Host
 * endpoint policy's egress side (issue 17), on an interface a host endpoint covers
 * (weir_hep_ifaces; elsewhere: count, pass):
 *
 *   parse (IPv4, IPv6; a later fragment, anything unparsed: pass)
 *   host-sent (skb->ingress_ifindex == 0):
 *     failsafe outbound (or the reply of an inbound failsafe flow): pass
 *     UNTRACKED_OUT, every packet: deny drops, allow passes untracked
 *     a new flow (no conntrack entry, ct_starts_flow): NORMAL_OUT; deny drops; else the flow
 *       is tracked (an entry pair that rewrites nothing), so that its replies meet
 *       conntrack in from_host instead of the ingress policy
 *   forwarded (arrived on another interface: pods, routed traffic):
 *     the first packet of a flow: FORWARD_OUT (absent: allow)
 *
 * Replies of flows that entered the node have entries (from_host, ct_track_all) and are not
 * judged. The conntrack lookups here only read: counters and state stay the entering hook's.
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/conntrack6.h"
#include "lib/monitor.h"
#include "lib/host_policy.h"
#include "lib/btf_anchor.h"

/* Has host policy already seen @pkt's flow? Host-sent: any entry (the host's tracked flow,
 * or the reply of one that entered). Forwarded: the reply direction, or an entry that an
 * earlier packet already matched (from_pod wrote the entry for this first packet). */
static __always_inline int to_host_known_flow(const struct packet *pkt, int forwarded)
{
	__u16 flags;
	__u64 packets;

	if (pkt->l3_proto == ETH_P_IPV6) {
		struct weir_ct6_key key;
		struct weir_ct6 *ct;

		ct6_key_of(pkt, &key);
		ct = bpf_map_lookup_elem(&weir_ct6, &key);
		if (!ct)
			return 0;
		flags = ct->flags;
		packets = ct->packets;
	} else {
		struct weir_ct4_key key;
		struct weir_ct4 *ct;

		ct4_key_of(pkt, &key);
		ct = bpf_map_lookup_elem(&weir_ct4_v2, &key);
		if (!ct)
			return 0;
		flags = ct->flags;
		packets = ct->packets;
	}
	return !forwarded || (flags & WEIR_CT_REPLY) || packets > 1;
}

/* Tracks the host's new flow @pkt: an entry pair that rewrites nothing. Global functions, one
 * per family, called from the hook: the entries do not fit on top of to_host_policy's frame,
 * nor the IPv4 ones on top of ct6_create's. */
__weir_slow_path int to_host_track4(const struct packet *pkt)
{
	struct ct4_flow flow;

	if (!pkt)
		return 0;
	ct4_flow_untranslated(pkt, &flow);
	return ct4_create(&flow, pkt, bpf_ktime_get_ns());
}

__weir_slow_path int to_host_track6(const struct packet *pkt)
{
	struct ct6_flow flow;

	if (!pkt)
		return 0;
	ct6_flow_untranslated(pkt, &flow);
	return ct6_create(&flow, pkt, bpf_ktime_get_ns());
}

/**
 * to_host_policy - host endpoint @hep's verdict on @pkt leaving the node
 *
 * Returns the reason to count: a host_* drop reason (the caller drops), host_untracked_allowed,
 * ct_tracked_new (the caller tracks the host's new flow) or pass. A global function.
 */
__weir_slow_path int to_host_policy(struct __sk_buff *skb, const struct packet *pkt, __u32 hep)
{
	struct host_pkt hp;
	int forwarded, r;

	if (!skb || !pkt)
		return WEIR_REASON_PASS;
	forwarded = skb->ingress_ifindex != 0;
	host_pkt_of(&hp, pkt);
	if (!forwarded) {
		/* the failsafe lookups only where a chain could judge the packet */
		int untracked = host_has_chain(hep, WEIR_CHAIN_UNTRACKED_OUT);

		if ((untracked || ct_starts_flow(pkt)) && host_failsafe(WEIR_FAILSAFE_OUT, &hp)) {
			if (ct_starts_flow(pkt))
				count(WEIR_HOOK_TO_HOST, WEIR_REASON_HOST_FAILSAFE, hp.len);
			return WEIR_REASON_PASS;
		}
		r = untracked ? host_chain_walk(&hp, hep, WEIR_CHAIN_UNTRACKED_OUT) : HOST_NO_CHAIN;
		if (HOST_VERDICT(r) == HOST_DENY)
			return WEIR_REASON_HOST_UNTRACKED_DENIED;
		if (HOST_VERDICT(r) == HOST_ALLOW)
			return WEIR_REASON_HOST_UNTRACKED_ALLOWED;
	}
	if (!ct_starts_flow(pkt) || to_host_known_flow(pkt, forwarded))
		return WEIR_REASON_PASS;
	r = host_chain_walk(&hp, hep, forwarded ? WEIR_CHAIN_FORWARD_OUT : WEIR_CHAIN_NORMAL_OUT);
	if (HOST_VERDICT(r) == HOST_DENY)
		return forwarded ? WEIR_REASON_HOST_FORWARD_DENIED : WEIR_REASON_HOST_POLICY_DENIED;
	if (HOST_VERDICT(r) == HOST_ALLOW)
		count(WEIR_HOOK_TO_HOST, WEIR_REASON_HOST_POLICY_ALLOWED, hp.len);
	return forwarded ? WEIR_REASON_PASS : WEIR_REASON_CT_TRACKED_NEW;
}

SEC("tc")
int weir_to_host(struct __sk_buff *skb)
{
	int verdict = WEIR_TC_PASS;
	struct weir_hep_iface *iface;
	enum weir_reason reason;
	struct packet pkt;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	switch (reason) {
	case WEIR_REASON_PARSED_TCP:
	case WEIR_REASON_PARSED_UDP:
	case WEIR_REASON_PARSED_ICMP:
	case WEIR_REASON_PARSED_ICMPV6:
		reason = 0;
		break;
	case WEIR_REASON_PARSED_OTHER_L4:
		reason = pkt.l4_proto == IPPROTO_SCTP ? parse_sctp_ports(skb, &pkt) : 0;
		break;
	default:
		break; /* not IP, a later fragment, malformed: counted, passed */
	}
	if (!reason) {
		iface = host_hep_of(skb->ifindex);
		reason = iface ? to_host_policy(skb, &pkt, iface->hep) : WEIR_REASON_PASS;
		switch (reason) {
		case WEIR_REASON_HOST_UNTRACKED_DENIED:
		case WEIR_REASON_HOST_POLICY_DENIED:
		case WEIR_REASON_HOST_FORWARD_DENIED:
			verdict = WEIR_TC_DROP;
			break;
		case WEIR_REASON_CT_TRACKED_NEW:
			if (pkt.l3_proto == ETH_P_IPV6)
				to_host_track6(&pkt);
			else
				to_host_track4(&pkt);
			break;
		default:
			break;
		}
	}
	count(WEIR_HOOK_TO_HOST, reason, pkt.len);
	if (pkt.l3_proto == ETH_P_IPV6)
		monitor6(skb, &pkt, WEIR_HOOK_TO_HOST, reason);
	else
		monitor4(skb, &pkt, WEIR_HOOK_TO_HOST, reason);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
