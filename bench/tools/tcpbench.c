/* tcpbench: the one client (and echo server) every peer is measured with.
 *
 *   tcpbench server PORT              epoll echo server (one thread), echoes what it reads,
 *                                     on PORT of both families
 *   tcpbench crr HOST PORT SECS WARMUP SIZE
 *       new connections in a loop: connect, send SIZE bytes, read SIZE back, close.
 *       close is an abortive close (SO_LINGER 0, an RST): no TIME_WAIT on either side, so
 *       ephemeral ports and conntrack entries do not run out during a run.
 *       Reports connect() latency (the first packet's round trip through the service
 *       path) and whole-transaction latency p50/p90/p99 and connections per second.
 *   tcpbench rr HOST PORT SECS WARMUP SIZE
 *       one kept-alive connection: send SIZE, read SIZE, repeat. Transactions per second
 *       and p50/p99.
 * HOST is an IPv4 or an IPv6 address.
 * Output: one JSON line on stdout. Samples taken during WARMUP seconds are discarded. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct samples {
	uint32_t *v; /* ns */
	size_t n, cap;
};

static void push(struct samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1 << 16;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v) { perror("realloc"); exit(2); }
	}
	s->v[s->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(struct samples *s, double p)
{
	if (!s->n) return 0;
	size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
	return s->v[i] / 1000.0; /* us */
}

static void print_dist(const char *name, struct samples *s)
{
	double sum = 0;
	qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
	for (size_t i = 0; i < s->n; i++) sum += s->v[i];
	printf("\"%s\":{\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"mean_us\":%.2f,\"max_us\":%.2f}",
	       name, pct(s, 0.5), pct(s, 0.9), pct(s, 0.99), s->n ? sum / s->n / 1000.0 : 0, pct(s, 1.0));
}

static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r <= 0) { if (r < 0 && errno == EINTR) continue; return -1; }
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const char *buf, size_t len)
{
	size_t put = 0;
	while (put < len) {
		ssize_t r = write(fd, buf + put, len - put);
		if (r <= 0) { if (r < 0 && errno == EINTR) continue; return -1; }
		put += (size_t)r;
	}
	return 0;
}

/* One listener per family on the same port: IPv4 clients meet a plain AF_INET socket (as
 * before IPv6 was measured), IPv6 clients an IPV6_V6ONLY one. No IPv6 in the namespace is
 * not an error: only the IPv4 listener then. */
static int listener(int family, int port)
{
	int ls = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_ANY_INIT };
	if (ls < 0) return -1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6) setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	int r = family == AF_INET6 ? bind(ls, (struct sockaddr *)&a6, sizeof(a6)) : bind(ls, (struct sockaddr *)&a4, sizeof(a4));
	if (r || listen(ls, 4096)) { close(ls); return -1; }
	return ls;
}

static int server(int port)
{
	int ls4 = listener(AF_INET, port), ls6 = listener(AF_INET6, port), one = 1;
	if (ls4 < 0) { perror("bind/listen"); return 1; }
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls4 }, evs[256];
	epoll_ctl(ep, EPOLL_CTL_ADD, ls4, &ev);
	if (ls6 >= 0) {
		struct epoll_event ev6 = { .events = EPOLLIN, .data.fd = ls6 };
		epoll_ctl(ep, EPOLL_CTL_ADD, ls6, &ev6);
	}
	char buf[65536];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == ls4 || fd == ls6) {
				int c;
				while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r > 0) {
				if (write(fd, buf, (size_t)r) != r) { /* tiny messages: a short write means the peer is gone */ }
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(fd); /* closing removes it from the epoll set */
			}
		}
	}
}

static int connect_to(struct sockaddr_storage *a, socklen_t alen, uint64_t *connect_ns)
{
	int fd = socket(a->ss_family, SOCK_STREAM, 0), one = 1;
	struct timeval tv = { .tv_sec = 2 };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	if (fd < 0) return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	uint64_t t0 = now_ns();
	if (connect(fd, (struct sockaddr *)a, alen)) { close(fd); return -1; }
	*connect_ns = now_ns() - t0;
	return fd;
}

static int client(const char *mode, const char *host, int port, double secs, double warmup, size_t size)
{
	/* either family: an IPv4 address, else an IPv6 one */
	struct sockaddr_storage a = {0};
	struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;
	socklen_t alen;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		alen = sizeof(*a4);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		alen = sizeof(*a6);
	} else {
		fprintf(stderr, "bad address %s\n", host);
		return 2;
	}
	char *out = calloc(1, size), *in = malloc(size);
	memset(out, 'x', size);
	struct samples conn = {0}, txn = {0};
	uint64_t start = now_ns(), measure_from = start + (uint64_t)(warmup * 1e9), end = measure_from + (uint64_t)(secs * 1e9);
	uint64_t errors = 0, count = 0, first = 0, last = 0;
	int crr = !strcmp(mode, "crr"), fd = -1;
	uint64_t cns;
	if (!crr && (fd = connect_to(&a, alen, &cns)) < 0) { fprintf(stderr, "connect: %s\n", strerror(errno)); return 1; }
	for (;;) {
		uint64_t t0 = now_ns();
		if (t0 >= end) break;
		if (crr && (fd = connect_to(&a, alen, &cns)) < 0) { errors++; continue; }
		if (write_full(fd, out, size) || read_full(fd, in, size)) {
			errors++;
			close(fd);
			if (!crr && (fd = connect_to(&a, alen, &cns)) < 0) return 1;
			continue;
		}
		if (crr) close(fd);
		uint64_t t1 = now_ns();
		if (t0 >= measure_from) {
			if (!first) first = t0;
			last = t1;
			count++;
			push(&txn, t1 - t0);
			if (crr) push(&conn, cns);
		}
	}
	if (!crr) close(fd);
	double elapsed = (last - first) / 1e9;
	printf("{\"mode\":\"%s\",\"count\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"rate\":%.1f,", mode,
	       (unsigned long long)count, (unsigned long long)errors, elapsed, elapsed > 0 ? count / elapsed : 0);
	if (crr) { print_dist("connect", &conn); printf(","); }
	print_dist("txn", &txn);
	printf("}\n");
	return count ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "server")) return server(atoi(argv[2]));
	if (argc >= 7 && (!strcmp(argv[1], "crr") || !strcmp(argv[1], "rr")))
		return client(argv[1], argv[2], atoi(argv[3]), atof(argv[4]), atof(argv[5]), (size_t)atol(argv[6]));
	fprintf(stderr, "usage: tcpbench server PORT | crr|rr HOST PORT SECS WARMUP SIZE\n");
	return 2;
}
