// The per-CPU weir_counters map, read as named rows: which hook, which reason, how many
// packets and bytes. Names come from the ABI enums in BTF (abi.gen.ts): the C name
// WEIR_REASON_SERVICE_NAT becomes reason "service_nat", the metric label and CLI column.

import { enums } from '../bpf/abi.gen.js';
import type { BpfMap } from '../bpf/map.js';

export interface CounterRow {
  hook: string;
  reason: string;
  packets: bigint;
  bytes: bigint;
}

function names(e: Record<string, number>, prefix: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, value] of Object.entries(e)) {
    if (name.endsWith('__MAX')) continue;
    out.set(value, name.slice(prefix.length).toLowerCase());
  }
  return out;
}

export const hookNames = names(enums.weir_hook, 'WEIR_HOOK_');
export const reasonNames = names(enums.weir_reason, 'WEIR_REASON_');
const REASONS_PER_HOOK = enums.weir_reason.WEIR_REASON__MAX;

/**
 * What a reason says about the packet it counted: `drop` (the packet went no further; a reject
 * drops it and answers with an ICMP error), `forward` (it went on: passed untouched, NATed,
 * redirected), or `event` (not a packet verdict: counted next to the packet's own reason, or a
 * socket call). One line per WEIR_REASON_* of bpf-c/include/weir/counters.h: a reason added there
 * and not here fails test/metrics/verdicts.test.ts. weir_drops_total and
 * weir_forwarded_packets_total (metrics.ts) are split by this table, as Cilium splits
 * cilium_drop_count_total from cilium_forward_count_total.
 */
export type Verdict = 'drop' | 'forward' | 'event';

export const REASON_VERDICTS: Readonly<Record<string, Verdict>> = {
  pass: 'forward',
  // the probe (probe.c) passes every packet it parses
  parsed_tcp: 'forward',
  parsed_udp: 'forward',
  parsed_icmp: 'forward',
  parsed_icmpv6: 'forward',
  parsed_other_l4: 'forward',
  not_ip: 'forward',
  fragment: 'forward',
  // malformed packets are passed on untouched (the kernel's stack judges them)
  malformed_eth: 'forward',
  malformed_ipv4_hdr: 'forward',
  malformed_ipv4_len: 'forward',
  malformed_ipv6: 'forward',
  malformed_l4: 'forward',
  sock_connect4: 'event',
  service_nat: 'forward',
  nat_established: 'forward',
  reverse_nat: 'forward',
  no_backend_reject: 'drop',
  no_local_backend_drop: 'drop',
  ct_create_failed: 'drop',
  icmp_error_revnat: 'forward',
  hairpin: 'forward',
  sctp_port_rewrite: 'drop',
  sock_lb_translated: 'event',
  sock_lb_reverse: 'event',
  sock_lb_fallback: 'event',
  sock_destroyed: 'event',
  backend_missing: 'drop',
  reject_failed: 'drop',
  nat_failed: 'drop',
  midflow_no_conntrack: 'forward',
  lb_stats_full: 'event',
  ct_tracked_new: 'forward',
  ct_tracked: 'forward',
  ct_track_failed: 'forward',
  lb_source_denied: 'drop',
  tunnel_encap: 'event',
  tunnel_decap: 'event',
  // the packet is dropped; its sender gets ICMP fragmentation needed / Packet Too Big
  tunnel_frag_needed: 'drop',
  tunnel_failed: 'drop',
  tunnel_denied: 'drop',
  tunnel_too_big: 'drop',
  dsr_reply: 'event',
  policy_egress_denied: 'drop',
  policy_ingress_denied: 'drop',
  policy_egress_allowed: 'event',
  policy_ingress_allowed: 'event',
  spoofed_source: 'drop',
  host_untracked_denied: 'drop',
  host_untracked_allowed: 'forward',
  host_prednat_denied: 'drop',
  host_policy_denied: 'drop',
  host_forward_denied: 'drop',
  host_failsafe: 'event',
  host_policy_allowed: 'event',
};

/** The verdict a counter row stands for. The sock hook counts socket calls, never packets; a
 *  reason missing from the table (a newer object than this userspace) is no verdict either. */
export function verdictOf(hook: string, reason: string): Verdict {
  if (hook === 'sock') return 'event';
  return REASON_VERDICTS[reason] ?? 'event';
}

/** The counter slot of a hook and reason, as the C side computes it. */
export function counterSlot(hook: string, reason: string): number {
  const h = [...hookNames].find(([, n]) => n === hook)?.[0];
  const r = [...reasonNames].find(([, n]) => n === reason)?.[0];
  if (h === undefined || r === undefined) throw new Error(`unknown counter ${hook}/${reason}`);
  return h * REASONS_PER_HOOK + r;
}

/** Every non-zero slot, summed over CPUs. */
export function readCounters(map: BpfMap): CounterRow[] {
  const rows: CounterRow[] = [];
  for (const [key, value] of map.lookupBatch()) {
    const slot = key.readUInt32LE(0);
    let packets = 0n;
    let bytes = 0n;
    for (const cpu of map.splitPerCpu(value)) {
      packets += cpu.readBigUInt64LE(0);
      bytes += cpu.readBigUInt64LE(8);
    }
    if (packets === 0n && bytes === 0n) continue;
    const hook = Math.floor(slot / REASONS_PER_HOOK);
    const reason = slot % REASONS_PER_HOOK;
    rows.push({
      hook: hookNames.get(hook) ?? `hook_${hook}`,
      reason: reasonNames.get(reason) ?? `reason_${reason}`,
      packets,
      bytes,
    });
  }
  return rows;
}

/** {hook: {reason: packets}} for the non-zero slots: the shape tests compare exactly. */
export function counterTotals(rows: CounterRow[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const r of rows) (out[r.hook] ??= {})[r.reason] = Number(r.packets);
  return out;
}

/** Zero every slot on every CPU. */
export function resetCounters(map: BpfMap): void {
  const keys: Buffer[] = [];
  for (let i = 0; i < map.maxEntries; i++) {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(i);
    keys.push(k);
  }
  const zero = map.joinPerCpu(Array(map.cpuCount()).fill(Buffer.alloc(map.valueSize)));
  map.updateBatch(
    keys,
    keys.map(() => zero),
  );
}
