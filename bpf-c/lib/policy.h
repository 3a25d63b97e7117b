/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The policy stage: whether a new flow may start, decided once per flow, after the
 * backend is chosen (so a policy sees the real destination) and before conntrack is
 * written (so a denied flow leaves no state). Its verdict is cached in both conntrack
 * entries (weir_ct4.policy, enum weir_ct_policy): established packets hit conntrack and
 * never come here, which is why policy needs conntrack for every flow (ct_track_all).
 *
 * Today there is no policy: every flow is allowed and nothing is cached (policy 0, "not
 * checked"). The NetworkPolicy issue fills this in: the sending pod's egress rules at
 * from_pod, the receiving pod's ingress rules where the flow enters the pod. */
#ifndef WEIR_LIB_POLICY_H
#define WEIR_LIB_POLICY_H

#include "compiler.h"
#include "conntrack.h"
#include "parse.h"
#include <weir/counters.h>

/**
 * policy4_new_flow - the verdict for the first packet of @flow, seen at @hook
 *
 * Sets flow->policy to the verdict bits to cache. Returns 0 to allow, or the reason to
 * drop the packet with.
 */
static __always_inline enum weir_reason policy4_new_flow(const struct packet *pkt, __u32 hook,
							 struct ct4_flow *flow)
{
	flow->policy = 0; /* not checked: no policy yet */
	return 0;
}

#endif
