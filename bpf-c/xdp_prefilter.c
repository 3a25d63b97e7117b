/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* weir_xdp_prefilter: XDP on a host interface, the first thing a packet meets on the node.
 * Host endpoint policy's untracked (doNotTrack) ingress rules, decided before the stack
 * spends anything on the packet:
 *
 *   parse (IPv4, IPv6; a later fragment or anything unparsed passes untouched)
 *   -> the interface's host endpoint (weir_hep_ifaces) and its UNTRACKED_IN chain (either
 *      absent: pass untouched)
 *   -> failsafe (inbound port, or the reply of an outbound failsafe flow): meta FAILSAFE
 *   -> UNTRACKED_IN: Deny: XDP_DROP (host_untracked_denied, the rule's stats)
 *                    Allow: meta UNTRACKED_ALLOW (host_untracked_allowed)
 *                    no match: meta NO_MATCH
 * A drop is also a `weir monitor` event (monitor_xdp).
 *
 * The metadata (struct weir_xdp_meta, bpf_xdp_adjust_meta) tells from_host the walk is done
 * and whether to leave the packet untracked. A driver without metadata room: pass without
 * it, and from_host walks UNTRACKED_IN itself. Lean on purpose: benchmarked in packets per
 * second per core against iptables raw and nft netdev. */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/host_policy.h"
#include "lib/monitor.h"
#include "lib/btf_anchor.h"

/* Tells TC what XDP decided; fails harmlessly (no meta) where the driver has no room. */
static __always_inline void xdp_set_meta(struct xdp_md *ctx, __u32 verdict)
{
	struct weir_xdp_meta *meta;
	void *data;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
		return;
	meta = (void *)(long)ctx->data_meta;
	data = (void *)(long)ctx->data;
	if ((void *)(meta + 1) > data)
		return;
	meta->magic = WEIR_XDP_META_MAGIC;
	meta->verdict = verdict;
}

/* parse_packet in a subprogram of its own: inlined into the hook, clang recomputes the ICMP
 * header's pointer after its bounds check and the verifier loses the range */
static __attribute__((noinline)) int xdp_parse(struct xdp_md *ctx, struct packet *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return parse_packet(data, data_end, data_end - data, pkt);
}

/* `weir monitor`'s event of a packet XDP dropped (monitor4/monitor6 read an skb). A
 * subprogram: verified once, and off the fast path's frame. */
static __attribute__((noinline)) int monitor_xdp(struct xdp_md *ctx, const struct packet *pkt,
						 __u32 reason)
{
	struct weir_event *e;

	if (!monitor_wanted(reason))
		return 0;
	e = monitor_reserve();
	if (!e)
		return 1;
	e->time_ns = bpf_ktime_get_ns();
	e->hook = WEIR_HOOK_XDP;
	e->reason = reason;
	e->protocol = pkt->l4_proto;
	e->ifindex = ctx->ingress_ifindex;
	e->len = pkt->len;
	e->tcp_flags = pkt->tcp_flags;
	e->icmp_type = pkt->icmp_type;
	e->sport = pkt->sport;
	e->dport = pkt->dport;
	if (pkt->l3_proto == ETH_P_IPV6) {
		e->family = 6;
		__builtin_memcpy(e->saddr, pkt->saddr.v6, 16);
		__builtin_memcpy(e->daddr, pkt->daddr.v6, 16);
	} else {
		e->family = 4;
		monitor_ip4(e->saddr, pkt->saddr.v4);
		monitor_ip4(e->daddr, pkt->daddr.v4);
	}
	bpf_ringbuf_submit(e, 0);
	return 1;
}

SEC("xdp")
int weir_xdp_prefilter(struct xdp_md *ctx)
{
	struct weir_hep_iface *iface;
	enum weir_reason parsed;
	struct host_pkt hp;
	struct packet pkt;
	int r;

	parsed = xdp_parse(ctx, &pkt);
	switch (parsed) {
	case WEIR_REASON_PARSED_TCP:
	case WEIR_REASON_PARSED_UDP:
	case WEIR_REASON_PARSED_ICMP:
	case WEIR_REASON_PARSED_ICMPV6:
	case WEIR_REASON_PARSED_OTHER_L4:
		break;
	default:
		return XDP_PASS; /* not IP, a later fragment, malformed: the stack's business */
	}
	iface = host_hep_of(ctx->ingress_ifindex);
	if (!iface)
		return XDP_PASS;
	if (pkt.l4_proto == IPPROTO_SCTP) {
		/* parse_packet stops at SCTP's common header: its ports, as parse_sctp_ports */
		__be16 ports[2];

		if (pkt.l4_off + 12 > pkt.l3_off + pkt.l3_len ||
		    bpf_xdp_load_bytes(ctx, pkt.l4_off, ports, sizeof(ports)))
			return XDP_PASS;
		pkt.sport = ports[0];
		pkt.dport = ports[1];
	}
	/* no untracked policy: nothing to decide, nothing to tell (from_host finds no chain either) */
	if (!host_has_chain(iface->hep, WEIR_CHAIN_UNTRACKED_IN))
		return XDP_PASS;
	host_pkt_of(&hp, &pkt);
	if (host_failsafe(WEIR_FAILSAFE_IN, &hp)) {
		xdp_set_meta(ctx, WEIR_XDP_FAILSAFE);
		return XDP_PASS;
	}
	r = host_chain_walk(&hp, iface->hep, WEIR_CHAIN_UNTRACKED_IN);
	switch (HOST_VERDICT(r)) {
	case HOST_DENY:
		count(WEIR_HOOK_XDP, WEIR_REASON_HOST_UNTRACKED_DENIED, hp.len);
		monitor_xdp(ctx, &pkt, WEIR_REASON_HOST_UNTRACKED_DENIED);
		return XDP_DROP;
	case HOST_ALLOW:
		count(WEIR_HOOK_XDP, WEIR_REASON_HOST_UNTRACKED_ALLOWED, hp.len);
		xdp_set_meta(ctx, WEIR_XDP_UNTRACKED_ALLOW);
		return XDP_PASS;
	default:
		xdp_set_meta(ctx, WEIR_XDP_NO_MATCH);
		return XDP_PASS;
	}
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
