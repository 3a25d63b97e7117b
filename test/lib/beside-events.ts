// The reasons the programs count beside a packet's own reason (an event, not a second verdict:
// bpf-c/include/weir/counters.h says so for each). Written out here, apart from the daemon's
// table (src/dataplane/counters.ts), so the tests check that table against it.
export const BESIDE_EVENTS = [
  'lb_stats_full',
  'tunnel_encap',
  'tunnel_decap',
  'dsr_reply',
  'policy_egress_allowed',
  'policy_ingress_allowed',
  'host_failsafe',
  'host_policy_allowed',
] as const;
