// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// bench: the packet flood of bench/xdp-drop.ts. Raw UDP/IPv4 frames through an
// AF_PACKET socket with PACKET_QDISC_BYPASS (straight to the driver's xmit, no
// qdisc), in sendmmsg batches, for a given time. Sources cycle through N /24s
// (198.19.<i>.0/24, the rules' CIDRs) so that every rule is hit and the
// filters' lookups see many keys. Prints one JSON line: frames handed to the
// driver, frames it refused (ENOBUFS) and seconds.
//
//   flood IFNAME DST_MAC DST_IP DPORT N SECONDS

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAMES 256
#define BATCH 64
#define PAYLOAD 18 /* 14 + 20 + 8 + 18 = 60 bytes: a minimum Ethernet frame without FCS */
#define FRAME_LEN                                                                                  \
	(sizeof(struct ether_header) + sizeof(struct iphdr) + sizeof(struct udphdr) + PAYLOAD)

static uint16_t ip_checksum(const void *hdr, size_t len)
{
	const uint16_t *p = hdr;
	uint32_t sum = 0;

	for (; len > 1; len -= 2)
		sum += *p++;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static uint8_t frames[FRAMES][FRAME_LEN];
	struct mmsghdr msgs[BATCH];
	struct iovec iovs[BATCH];
	struct sockaddr_ll sll = {0};
	unsigned int mac[6], n, ifindex;
	unsigned long long sent = 0, refused = 0, batches = 0;
	double seconds, t0, t;
	struct in_addr dst;
	int fd, one = 1, dport;

	if (argc != 7) {
		fprintf(stderr, "usage: flood IFNAME DST_MAC DST_IP DPORT N SECONDS\n");
		return 2;
	}
	ifindex = if_nametoindex(argv[1]);
	if (!ifindex ||
	    sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4],
		   &mac[5]) != 6 ||
	    inet_pton(AF_INET, argv[3], &dst) != 1) {
		fprintf(stderr, "flood: bad interface, MAC or address\n");
		return 2;
	}
	dport = atoi(argv[4]);
	n = (unsigned int)atoi(argv[5]);
	seconds = atof(argv[6]);
	if (n < 1 || n > 256 || dport < 1 || dport > 65535 || seconds <= 0) {
		fprintf(stderr, "flood: N in 1..256, DPORT in 1..65535, SECONDS > 0\n");
		return 2;
	}

	for (unsigned int k = 0; k < FRAMES; k++) {
		struct ether_header *eth = (void *)frames[k];
		struct iphdr *ip = (void *)(eth + 1);
		struct udphdr *udp = (void *)(ip + 1);

		for (int i = 0; i < 6; i++) {
			eth->ether_dhost[i] = (uint8_t)mac[i];
			eth->ether_shost[i] =
				(uint8_t)(i == 0 ? 0x02 : i); /* locally administered */
		}
		eth->ether_type = htons(ETHERTYPE_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->tot_len = htons(sizeof(*ip) + sizeof(*udp) + PAYLOAD);
		ip->id = htons((uint16_t)k);
		/* 198.19.<rule>.<host>: every rule's /24 in turn, a few hosts in each */
		ip->saddr =
			htonl((198u << 24) | (19u << 16) | ((k % n) << 8) | (1 + (k / n) % 250));
		ip->daddr = dst.s_addr;
		ip->check = ip_checksum(ip, sizeof(*ip));
		udp->source = htons((uint16_t)(10000 + k));
		udp->dest = htons((uint16_t)dport);
		udp->len = htons(sizeof(*udp) + PAYLOAD);
		udp->check = 0; /* optional in IPv4 */
	}

	fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only, nothing queued to us */
	if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one))) {
		perror("flood: socket");
		return 1;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)ifindex;
	sll.sll_halen = 6;
	memcpy(sll.sll_addr, frames[0], 6);
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll))) {
		perror("flood: bind");
		return 1;
	}

	memset(msgs, 0, sizeof(msgs));
	t0 = now();
	for (unsigned int next = 0;;) {
		for (int i = 0; i < BATCH; i++) {
			iovs[i].iov_base = frames[(next + i) % FRAMES];
			iovs[i].iov_len = FRAME_LEN;
			msgs[i].msg_hdr.msg_iov = &iovs[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		int r = sendmmsg(fd, msgs, BATCH, 0);

		if (r < 0 && (errno == ENOBUFS || errno == EAGAIN)) {
			/* the driver refused a frame (a full ring or backlog): counted, not fatal
       */
			refused++;
			r = 1;
		} else if (r < 0) {
			perror("flood: sendmmsg");
			return 1;
		} else {
			sent += (unsigned long long)r;
		}
		next = (next + (unsigned int)r) % FRAMES;
		/* the clock once per 16 batches: cheap against 1,024 frames */
		if ((++batches & 15) == 0 && (t = now()) - t0 >= seconds)
			break;
	}
	printf("{\"sent\":%llu,\"refused\":%llu,\"seconds\":%.6f}\n", sent, refused, now() - t0);
	return 0;
}
