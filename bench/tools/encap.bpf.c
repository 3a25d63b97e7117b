/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bench/tunnel.ts, the encapsulation itself: VXLAN between two lab nodes two ways, with no
 * NAT and no conntrack, so that the only difference is who builds and strips the outer headers.
 *
 *   bench_encap_bpf: weir's own code (bpf-c/lib/tunnel.h): a packet to an address in
 *                    weir_tunnel4 is encapsulated in BPF (tunnel4_route, tunnel4_encap) and
 *                    redirected to the underlay; a tunnel packet from a peer in weir_nodes4 is
 *                    decapsulated in BPF (tunnel4_decap) and redirected to its route.
 *   bench_encap_md:  Cilium's way: bpf_skb_set_tunnel_key + bpf_redirect to a collect_md
 *                    VXLAN device (`ip link add ... type vxlan external dstport 4789`), which
 *                    builds the outer headers; the peer's device strips them and
 *   bench_fwd:       (on that device's ingress) redirects the inner packet to its route, as
 *                    Cilium's program on cilium_vxlan does.
 *
 * Both redirect with bpf_redirect_neigh after a FIB lookup and leave the TTL alone (a bench
 * path, not a router). The inner frame's destination MAC is set to the VXLAN devices' address
 * (the same on every node) in the collect_md case, so the peer's device takes it as its own.
 */
#include "lib/compiler.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/tunnel.h"

/* the collect_md VXLAN device on this node, and the MAC every such device has */
const volatile __u32 vxlan_ifindex = 0;
const volatile __u8 vxlan_mac[6] = {};

static __always_inline int parsed_ip4(struct __sk_buff *skb, struct packet *pkt)
{
	enum weir_reason r =
		parse_packet((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len, pkt);

	return (r == WEIR_REASON_PARSED_TCP || r == WEIR_REASON_PARSED_UDP ||
		r == WEIR_REASON_PARSED_ICMP) &&
	       pkt->l3_proto == ETH_P_IP;
}

/* To the kernel's route for @pkt's destination, or to the stack when there is none. */
static __always_inline int redirect_route(struct __sk_buff *skb, const struct packet *pkt)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.family = AF_INET;
	fib.ifindex = skb->ifindex;
	fib.l4_protocol = pkt->l4_proto;
	fib.ipv4_src = pkt->saddr.v4;
	fib.ipv4_dst = pkt->daddr.v4;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return WEIR_TC_PASS;
	return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
}

SEC("tc")
int bench_encap_bpf(struct __sk_buff *skb)
{
	const struct weir_tunnel4 *remote;
	struct tunnel4_meta meta = {}; /* tunnel mode: the inner header names no backend */
	struct tunnel4_route rt = {};
	struct packet pkt;
	int r;

	if (!parsed_ip4(skb, &pkt))
		return WEIR_TC_PASS;
	if (tunnel4_candidate(&pkt)) {
		r = tunnel4_decap(skb, &pkt);
		if (r < 0)
			return WEIR_TC_PASS;
		return r ? WEIR_TC_DROP : redirect_route(skb, &pkt);
	}
	remote = tunnel4_node_of(pkt.daddr.v4);
	if (!remote || !remote->node_ip)
		return WEIR_TC_PASS;
	if (tunnel4_route(skb, &pkt, remote->node_ip, &rt))
		return WEIR_TC_DROP;
	r = tunnel4_encap(skb, &rt, &meta);
	return r < 0 ? WEIR_TC_DROP : r;
}

SEC("tc")
int bench_encap_md(struct __sk_buff *skb)
{
	const struct weir_tunnel4 *remote;
	struct bpf_tunnel_key key = {};
	struct packet pkt;
	__u8 mac[6];

	if (!parsed_ip4(skb, &pkt))
		return WEIR_TC_PASS;
	remote = tunnel4_node_of(pkt.daddr.v4);
	if (!remote || !remote->node_ip)
		return WEIR_TC_PASS;
	__builtin_memcpy(mac, (const void *)vxlan_mac, sizeof(mac));
	if (bpf_skb_store_bytes(skb, 0, mac, sizeof(mac), 0))
		return WEIR_TC_DROP;
	key.remote_ipv4 = bpf_ntohl(remote->node_ip);
	key.tunnel_id = WEIR_TUNNEL_VNI;
	key.tunnel_ttl = 64;
	/* DF as weir sets it; the UDP checksum zero as weir leaves it (the device's default) */
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_DONT_FRAGMENT))
		return WEIR_TC_DROP;
	return bpf_redirect(vxlan_ifindex, 0);
}

SEC("tc")
int bench_fwd(struct __sk_buff *skb)
{
	struct packet pkt;

	if (!parsed_ip4(skb, &pkt))
		return WEIR_TC_PASS;
	return redirect_route(skb, &pkt);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
