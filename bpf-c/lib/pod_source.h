/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The source check of from_pod and from_pod6, the first stage after the parse: a packet whose
 * source address is not bound to the interface it arrived on (weir/pod_source.h) is dropped
 * (spoofed_source). Every IP packet is checked, a fragment or one the parser calls malformed
 * too (the source is then read from the packet itself): the stack forwards some packets weir's
 * parser declines (an IPv6 extension header chain longer than it walks).
 *
 * What passes without an entry, since the stack never routes it off the pod's link:
 *   - IPv4 0.0.0.0 to UDP port 67 (a DHCP client before it has an address)
 *   - IPv6 link-local sources (fe80::/10: neighbour and router discovery, MLD)
 *   - IPv6 :: in ICMPv6 (duplicate address detection, MLD before an address is ready)
 * Non-IP frames (ARP) are not IP packets and are not checked here.
 *
 * Off (the pod_source_check knob, --pod-source-check off) the stage passes everything: for
 * pods that route for others, or a CNI plugin whose pod routes are not host routes. */
#ifndef WEIR_LIB_POD_SOURCE_H
#define WEIR_LIB_POD_SOURCE_H

#include "compiler.h"
#include "parse.h"
#include <weir/counters.h>
#include <weir/pod_source.h>

/* drop packets from a pod whose source is not its own (set by the daemon; 0 in tests that
 * load the objects without it) */
const volatile __u8 pod_source_check = 0;

#ifndef WEIR_POD_ADDRS_MAX_ENTRIES
#define WEIR_POD_ADDRS_MAX_ENTRIES 16384 /* as weir_ifaces: one address per family per pod */
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_POD_ADDRS_MAX_ENTRIES);
	__type(key, struct weir_pod_addr4_key);
	__type(value, struct weir_pod_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_pod_addrs4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WEIR_POD_ADDRS_MAX_ENTRIES);
	__type(key, struct weir_pod_addr6_key);
	__type(value, struct weir_pod_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weir_pod_addrs6 SEC(".maps");

#define POD_SOURCE_DHCP_SERVER_PORT 67

/* Whether the interface the packet arrived on owns @a (an entry naming it). */
static __always_inline int pod_source_bound(const struct __sk_buff *skb,
					    const struct weir_pod_addr *a)
{
	return a && a->ifindex == skb->ifindex;
}

/**
 * pod_source4_ok - whether IPv4 packet @pkt (l3_proto ETH_P_IP), parsed with result @parsed,
 * may enter the node from the pod interface it arrived on
 */
static __always_inline int pod_source4_ok(struct __sk_buff *skb, const struct packet *pkt,
					  enum weir_reason parsed)
{
	struct weir_pod_addr4_key k = {};

	if (!pod_source_check)
		return 1;
	if (parsed == WEIR_REASON_MALFORMED_IPV4_HDR || parsed == WEIR_REASON_MALFORMED_IPV4_LEN) {
		/* too short to carry a source: the stack drops it as we would */
		if (bpf_skb_load_bytes(skb, pkt->l3_off + 12, &k.address, sizeof(k.address)))
			return 1;
	} else {
		k.address = pkt->saddr.v4;
	}
	if (!k.address)
		return parsed == WEIR_REASON_PARSED_UDP &&
		       pkt->dport == bpf_htons(POD_SOURCE_DHCP_SERVER_PORT);
	return pod_source_bound(skb, bpf_map_lookup_elem(&weir_pod_addrs4, &k));
}

/**
 * pod_source6_ok - whether IPv6 packet @pkt (l3_proto ETH_P_IPV6), parsed with result @parsed,
 * may enter the node from the pod interface it arrived on
 */
static __always_inline int pod_source6_ok(struct __sk_buff *skb, const struct packet *pkt,
					  enum weir_reason parsed)
{
	struct weir_pod_addr6_key k = {};
	__u32 w0;

	if (!pod_source_check)
		return 1;
	if (parsed == WEIR_REASON_MALFORMED_IPV6) {
		if (bpf_skb_load_bytes(skb, pkt->l3_off + 8, k.address, sizeof(k.address)))
			return 1;
	} else {
		__builtin_memcpy(k.address, pkt->saddr.v6, sizeof(k.address));
	}
	w0 = bpf_ntohl(*(__be32 *)&k.address[0]);
	if ((w0 & 0xffc00000) == 0xfe800000) /* fe80::/10 */
		return 1;
	if (!w0 && !*(__u32 *)&k.address[4] && !*(__u32 *)&k.address[8] &&
	    !*(__u32 *)&k.address[12]) /* :: */
		return parsed == WEIR_REASON_PARSED_ICMPV6;
	return pod_source_bound(skb, bpf_map_lookup_elem(&weir_pod_addrs6, &k));
}

#endif
