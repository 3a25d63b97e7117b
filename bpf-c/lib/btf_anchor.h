/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* clang writes a type into BTF only when a map, function or variable uses it. The ABI
 * enums are used only as constants, so this read-only anchor names each of them once:
 * userspace then reads every ABI name and value from the object's BTF and never keeps a
 * copy of its own. Costs a few bytes of .rodata. Include it once per object. */
#ifndef WEIR_LIB_BTF_ANCHOR_H
#define WEIR_LIB_BTF_ANCHOR_H

#include <weir/counters.h>
#include <weir/service.h>
#include <weir/conntrack.h>
#include <weir/legacy.h>
#include <weir/forward.h>
#include <weir/tunnel.h>
#include <weir/monitor.h>
#include <weir/host_policy.h>

struct weir_btf_anchor {
	enum weir_hook hook;
	enum weir_reason reason;
	struct weir_counter counter;
	/* services (weir/service.h) */
	enum weir_frontend_scope frontend_scope;
	enum weir_frontend_flags frontend_flags;
	enum weir_backend_flags backend_flags;
	enum weir_sock_lb_mode sock_lb_mode;
	struct weir_frontend4_key frontend4_key;
	struct weir_frontend4 frontend4;
	struct weir_backend4_key backend4_key;
	struct weir_backend4 backend4;
	struct weir_affinity4_key affinity4_key;
	struct weir_affinity4 affinity4;
	struct weir_sock_rev4_key sock_rev4_key;
	struct weir_sock_rev4 sock_rev4;
	struct weir_sock_destroy4_key sock_destroy4_key;
	struct weir_lb_stats4_key lb_stats4_key;
	struct weir_lb_stats4 lb_stats4;
	struct weir_frontend6_key frontend6_key;
	struct weir_frontend6 frontend6;
	struct weir_backend6_key backend6_key;
	struct weir_backend6 backend6;
	struct weir_lb_src6_key lb_src6_key;
	struct weir_affinity6_key affinity6_key;
	struct weir_affinity6 affinity6;
	struct weir_sock_rev6_key sock_rev6_key;
	struct weir_sock_rev6 sock_rev6;
	struct weir_sock_destroy6_key sock_destroy6_key;
	struct weir_lb_stats6_key lb_stats6_key;
	struct weir_lb_stats6 lb_stats6;
	/* conntrack (weir/conntrack.h) */
	enum weir_ct_flags ct_flags;
	struct weir_ct4_key ct4_key;
	struct weir_ct4 ct4;
	struct weir_ct6_key ct6_key;
	struct weir_ct6 ct6;
	enum weir_ct_policy ct_policy;
	/* forwarding (weir/forward.h) */
	enum weir_iface_flags iface_flags;
	struct weir_iface iface;
	/* other nodes (weir/tunnel.h) */
	enum weir_node_flags node_flags;
	struct weir_node4_key node4_key;
	struct weir_node4 node4;
	enum weir_tunnel_flags tunnel_flags;
	struct weir_tunnel4_key tunnel4_key;
	struct weir_tunnel4 tunnel4;
	enum weir_tunnel_mode tunnel_mode;
	struct weir_dsr_optout4_key dsr_optout4_key;
	struct weir_node6_key node6_key;
	struct weir_node6 node6;
	struct weir_tunnel6_key tunnel6_key;
	struct weir_tunnel6 tunnel6;
	struct weir_dsr_optout6_key dsr_optout6_key;
	struct weir_tunnel_dsr6_opt tunnel_dsr6_opt;
	/* weir monitor (weir/monitor.h) */
	enum weir_monitor_cfg_flags monitor_cfg_flags;
	enum weir_event_flags event_flags;
	struct weir_monitor_cfg monitor_cfg;
	struct weir_monitor_stats monitor_stats;
	struct weir_event event;
	/* host endpoint policy (weir/host_policy.h) */
	enum weir_hep_chain_kind hep_chain_kind;
	enum weir_hep_iface_flags hep_iface_flags;
	enum weir_host_rule_action host_rule_action;
	enum weir_host_rule_flags host_rule_flags;
	enum weir_failsafe_direction failsafe_direction;
	enum weir_xdp_verdict xdp_verdict;
	struct weir_hep_iface_key hep_iface_key;
	struct weir_hep_iface hep_iface;
	struct weir_hep_chain_key hep_chain_key;
	struct weir_hep_chain hep_chain;
	struct weir_host_rule host_rule;
	struct weir_host_set4_key host_set4_key;
	struct weir_host_set6_key host_set6_key;
	struct weir_failsafe4_key failsafe4_key;
	struct weir_failsafe6_key failsafe6_key;
	struct weir_host_rule_stats host_rule_stats;
	struct weir_host_policy_name host_policy_name;
	struct weir_hep_info hep_info;
	struct weir_xdp_meta xdp_meta;
	/* earlier releases' layouts, for conversion (weir/legacy.h) */
	struct weir_ct4_v1 ct4_v1;
};

const volatile struct weir_btf_anchor weir_btf_anchor = {};

#endif
