/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The per-packet bench's floor: a TC program that does nothing. Its BPF_PROG_TEST_RUN
 * duration is what the test-run loop itself costs per repeat (skb reset, the call), which
 * every measured program pays too. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int bench_floor(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
