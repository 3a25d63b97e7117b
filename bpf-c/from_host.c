/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_from_host: TC ingress of a host interface, i.e. packets arriving at the node.
 * NodePorts (one frontend entry per node address weir serves), externalIPs and
 * LoadBalancer IPs, ClusterIPs routed to the node, replies of flows NAT'd here, and
 * (ct_track_all) conntrack of every flow that enters the node:
 *
 *   parse, accept (lb4_accept: IPv4 TCP/UDP/ICMP/SCTP, no fragment)
 *   -> ICMP error about a NAT'd flow: translated back (icmp_error.h)
 *   -> conntrack (wire tuple)
 *        hit:  NAT as the entry says (established NodePort flows, replies from
 *              remote backends) -> forward
 *        miss: frontend EXTERNAL scope (eTP: Local), then INTERNAL
 *                -> admit (drop | reject out the same interface) -> select backend
 *                -> policy -> create conntrack (NODEPORT) -> DNAT, no SNAT -> forward
 *              no frontend: ct_track_all -> policy -> create conntrack -> forward
 *
 * Host endpoint policy (issue 17; lib/host_ingress.h), on an interface a host endpoint covers
 * (weir_hep_ifaces; elsewhere none of it runs):
 *   before all the above: UNTRACKED_IN (XDP's metadata, else walked here): deny drops, allow
 *     passes untracked (a frontend's packet still goes on to NAT, host policy done)
 *   the first packet of a flow (conntrack miss, ct_starts_flow), before the frontend's NAT:
 *     failsafe, PREDNAT_IN, then NORMAL_IN (to the host) or FORWARD_IN (through it)
 * A TCP miss that is no SYN (the SYN-ACK answering the host's own connect) is not judged.
 *
 * No SNAT: the backend sees the real client. A local backend's replies are reverse
 * NATed by from_pod on its interface, since the reverse entry is keyed by the reply.
 * Forward passes to the stack; issue 12 redirects remote backends into the tunnel there.
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/conntrack.h"
#include "lib/lb.h"
#include "lib/flow.h"
#include "lib/icmp_error.h"
#include "lib/monitor.h"
#include "lib/host_ingress.h"
#include "lib/btf_anchor.h"

/* no host endpoint covers the interface (or host policy is done with the packet) */
#define HOST_NO_HEP 0xffffffffu

/* A UDP packet to the tunnel port: -1 when it is not weir's (handled as any packet), else
 * the reason to count, *verdict set. The inner packet of a known flow goes on as its entry
 * says (on the ingress node a reply, reverse NATed and sent to the client; on the backend's
 * node a later packet); a new one gets its pair (flow4_tunnel_new). Called from the hook
 * itself, not a function of its own: the stack frames of those two on top of another would
 * not fit the BPF stack. */
static __always_inline int from_tunnel4(struct __sk_buff *skb, struct packet *pkt, int *verdict)
{
	struct weir_ct4 *ct;
	int reason;

	reason = tunnel4_decap(skb, pkt);
	if (reason) {
		if (reason > 0)
			*verdict = WEIR_TC_DROP;
		return reason;
	}
	ct = ct4_lookup_flow(pkt);
	if (ct)
		return flow4_established(skb, pkt, ct, WEIR_HOOK_FROM_HOST, verdict);
	return flow4_tunnel_new(skb, pkt, verdict);
}

static __always_inline enum weir_reason from_host4(struct __sk_buff *skb, struct packet *pkt,
						   __u32 hep, int *verdict)
{
	struct weir_frontend4 *fe;
	struct weir_ct4 *ct;

	if (icmp4_is_error_packet(pkt))
		return icmp4_error_stage(skb, pkt, verdict);

	ct = ct4_lookup_flow(pkt);
	if (ct)
		return flow4_established(skb, pkt, ct, WEIR_HOOK_FROM_HOST, verdict);

	fe = lb4_lookup_frontend(pkt, WEIR_SCOPE_EXTERNAL);
	if (!fe)
		fe = lb4_lookup_frontend(pkt, WEIR_SCOPE_INTERNAL);
	if (hep != HOST_NO_HEP && ct_starts_flow(pkt)) {
		enum weir_reason denied = host_new_flow_in(skb, pkt, hep, fe != NULL);

		if (denied) {
			*verdict = WEIR_TC_DROP;
			return denied;
		}
	}
	if (fe)
		return flow4_new_at_hook(
			skb, pkt, fe, FLOW4_ORIGIN(WEIR_HOOK_FROM_HOST, WEIR_CT_NODEPORT), verdict);
	if (ct_track_all)
		return flow4_track_new(skb, pkt, WEIR_HOOK_FROM_HOST, verdict);
	return WEIR_REASON_PASS;
}

/* The host endpoint covering the interface, its untracked verdict taken: HOST_NO_HEP when
 * there is none, or host policy is done with the packet (*reason set when it decided it). */
static __always_inline __u32 from_host4_hep(struct __sk_buff *skb, struct packet *pkt,
					    enum weir_reason *reason, int *verdict)
{
	struct weir_hep_iface *iface = host_hep_of(skb->ifindex);

	if (!iface)
		return HOST_NO_HEP;
	switch (host_untracked_in(skb, pkt, iface->hep)) {
	case HOST_DENY:
		*verdict = WEIR_TC_DROP;
		*reason = WEIR_REASON_HOST_UNTRACKED_DENIED;
		return HOST_NO_HEP;
	case HOST_ALLOW:
		/* never tracked, unless NAT needs the entry: a frontend's packet goes on */
		if (!lb4_lookup_frontend(pkt, WEIR_SCOPE_EXTERNAL) &&
		    !lb4_lookup_frontend(pkt, WEIR_SCOPE_INTERNAL))
			*reason = WEIR_REASON_HOST_UNTRACKED_ALLOWED;
		return HOST_NO_HEP;
	default:
		return iface->hep;
	}
}

SEC("tc")
int weir_from_host(struct __sk_buff *skb)
{
	int verdict = WEIR_TC_PASS;
	enum weir_reason reason;
	struct packet pkt;
	int tunnel;
	__u32 hep;

	reason = parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, &pkt);
	if (pkt.l3_proto == ETH_P_IPV6)
		return WEIR_TC_NEXT; /* the IPv6 program after this one (from_host6.c) */
	reason = lb4_accept(skb, &pkt, reason);
	hep = reason ? HOST_NO_HEP : from_host4_hep(skb, &pkt, &reason, &verdict);
	if (reason)
		goto out;
	if (tunnel4_candidate(&pkt)) {
		tunnel = from_tunnel4(skb, &pkt, &verdict);
		if (tunnel == TUNNEL4_INNER_IPV6)
			return WEIR_TC_NEXT; /* IPv6 inside: from_host6 decapsulates it */
		if (tunnel >= 0) {
			count(WEIR_HOOK_FROM_HOST, tunnel, pkt.len);
			monitor4(skb, &pkt, WEIR_HOOK_FROM_HOST, tunnel);
			return verdict;
		}
	}
	reason = from_host4(skb, &pkt, hep, &verdict);
out:
	count(WEIR_HOOK_FROM_HOST, reason, pkt.len);
	monitor4(skb, &pkt, WEIR_HOOK_FROM_HOST, reason);
	return verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
