// dataplane/conntrack-gc: ages the entries of weir_ct4_v2 and weir_ct6. The dataplane only
// refreshes last_seen_ns and tcp_flags_seen; this decides when a flow is over, and deletes
// the two entries of a flow (original and reply direction) together. Also: which entries
// belong to a backend that left its frontend (UDP flows to it are deleted at once). Both
// families' entries have one shape (addresses as text), so one code path serves both maps.
//
// Timestamps are bpf_ktime_get_ns(), CLOCK_MONOTONIC, the clock process.hrtime.bigint() reads.

import { enums, type TypedMap, type WeirCt4, type WeirCt4Key } from '../bpf/index.js';
import { IPPROTO, type IpFamily } from '../bpf/ip.js';
import { type Logger, errText } from '../log.js';
import { FAMILIES, type RemovedBackend } from './frontend-plan.js';

const CT = enums.weir_ct_flags;
const TCP_FIN = 0x01;
const TCP_RST = 0x04;
const TCP_ACK = 0x10;

// The entries have the same shape in both families (weir_ct4_key / weir_ct6_key): addresses
// are text, which each map's codec turns into a weir_ip4 or a weir_ip6.
export type CtKey = WeirCt4Key;
export type CtValue = WeirCt4;
/** A conntrack map of either family. */
export type CtMap = TypedMap<CtKey, CtValue>;

/** Seconds a flow may stay idle, by state. */
export interface CtTimeouts {
  tcpSynOnly: number;
  tcpEstablished: number;
  tcpClosing: number;
  udp: number;
  icmp: number;
  /** SCTP and anything else */
  other: number;
}

export const DEFAULT_CT_TIMEOUTS: CtTimeouts = {
  tcpSynOnly: 60,
  tcpEstablished: 6 * 3600,
  tcpClosing: 10,
  udp: 60,
  icmp: 10,
  other: 60,
};

export function ctKeyString(k: CtKey): string {
  return `${k.protocol}:${k.saddr}:${k.sport}>${k.daddr}:${k.dport}`;
}

/** The key of the other direction's entry of the same flow (both entries store the
 *  rewrite that turns their tuple into the other's reply tuple; a tracked-only pair,
 *  ct_track_all, stores its own tuple, so the same rule finds its partner). */
export function partnerKey(k: CtKey, v: CtValue): CtKey {
  return { saddr: v.nat_daddr, daddr: v.nat_saddr, sport: v.nat_dport, dport: v.nat_sport, protocol: k.protocol };
}

/** Which idle timeout applies to a flow, from its entries (either may be missing). */
export function flowState(protocol: number, orig: CtValue | undefined, reply: CtValue | undefined): keyof CtTimeouts {
  if (protocol === IPPROTO.UDP) return 'udp';
  if (protocol === IPPROTO.ICMP || protocol === IPPROTO.ICMPV6) return 'icmp';
  if (protocol !== IPPROTO.TCP) return 'other';
  const all = (orig?.tcp_flags_seen ?? 0) | (reply?.tcp_flags_seen ?? 0);
  if (all & (TCP_FIN | TCP_RST)) return 'tcpClosing';
  // established once the client acknowledged (its ACK of the SYN-ACK); without the
  // original entry, the reply direction's ACK is all there is to go by
  const acked = orig ? orig.tcp_flags_seen & TCP_ACK : (reply?.tcp_flags_seen ?? 0) & TCP_ACK;
  return acked ? 'tcpEstablished' : 'tcpSynOnly'; // SYN only: a handshake that never finished
}

/** The metric label of a state whose timeout expired: tcpSynOnly -> tcp_syn_only. */
export function expiryReason(state: keyof CtTimeouts): string {
  return state.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export interface CtGcPlan {
  /** keys to delete: both directions of every expired flow */
  deletes: CtKey[];
  flows: number;
  expiredFlows: number;
  /** entries planned for deletion, by the timeout that expired (expiryReason) */
  expiredEntries: Record<string, number>;
}

/** One GC pass over one family's map, for the metrics (weir_conntrack_gc_*). */
export interface CtGcPass {
  family: IpFamily;
  ok: boolean;
  seconds: number;
  /** entries deleted, by reason (expiryReason of the flow's state) */
  deleted: Record<string, number>;
  /** entries left in the map after the pass */
  alive: number;
}

/** Which entries of a dump have expired at `nowNs`. Pure. */
export function planConntrackGc(entries: Iterable<readonly [CtKey, CtValue]>, nowNs: bigint, t: CtTimeouts = DEFAULT_CT_TIMEOUTS): CtGcPlan {
  const byKey = new Map<string, [CtKey, CtValue]>();
  for (const [k, v] of entries) byKey.set(ctKeyString(k), [k, v]);
  const done = new Set<string>();
  const plan: CtGcPlan = { deletes: [], flows: 0, expiredFlows: 0, expiredEntries: {} };
  for (const [ks, [k, v]] of byKey) {
    if (done.has(ks)) continue;
    const pk = partnerKey(k, v);
    const pks = ctKeyString(pk);
    const partner = byKey.get(pks);
    done.add(ks);
    done.add(pks);
    plan.flows++;
    const isReply = (v.flags & CT.WEIR_CT_REPLY) !== 0;
    const orig = isReply ? partner?.[1] : v;
    const reply = isReply ? v : partner?.[1];
    const last = [v.last_seen_ns, partner?.[1].last_seen_ns ?? 0n].reduce((a, b) => (a > b ? a : b));
    const state = flowState(k.protocol, orig, reply);
    const timeoutNs = BigInt(t[state]) * 1_000_000_000n;
    if (nowNs > last && nowNs - last > timeoutNs) {
      plan.expiredFlows++;
      plan.deletes.push(k);
      if (ks !== pks) plan.deletes.push(pk);
      // the partner entry counts only if it exists (a lone entry's partner key is computed, not found)
      const reason = expiryReason(state);
      plan.expiredEntries[reason] = (plan.expiredEntries[reason] ?? 0) + (ks !== pks && partner ? 2 : 1);
    }
  }
  return plan;
}

/** Entries (both directions) of UDP flows to backends that left their frontend, in one
 *  family's map (`removed` of other families are not in it: frontend ids are unique across
 *  families, so they simply match nothing). Pure. */
export function planBackendConntrackDeletes(entries: Iterable<readonly [CtKey, CtValue]>, removed: readonly RemovedBackend[]): CtKey[] {
  const gone = new Set(removed.filter((r) => r.protocol === IPPROTO.UDP).map((r) => `${r.frontendId}|${r.address}:${r.port}`));
  if (gone.size === 0) return [];
  const out = new Map<string, CtKey>();
  for (const [k, v] of entries) {
    if (k.protocol !== IPPROTO.UDP) continue;
    // original direction: DNAT to the backend; reply direction: from the backend
    const backend = v.flags & CT.WEIR_CT_REPLY ? `${k.saddr}:${k.sport}` : `${v.nat_daddr}:${v.nat_dport}`;
    if (!gone.has(`${v.frontend_id}|${backend}`)) continue;
    out.set(ctKeyString(k), k);
    const pk = partnerKey(k, v);
    out.set(ctKeyString(pk), pk);
  }
  return [...out.values()];
}

export interface ConntrackGcStats {
  runs: number;
  scanned: number;
  deleted: number;
  errors: number;
}

/** Each family's conntrack map (weir_ct4_v2, weir_ct6); a family without one is not scanned. */
export type CtMaps = Partial<Record<IpFamily, CtMap>>;

/** The periodic scan over the live maps, one family after the other with the same rules. */
export class ConntrackGc {
  readonly stats: ConntrackGcStats = { runs: 0, scanned: 0, deleted: 0, errors: 0 };

  constructor(
    private readonly maps: CtMaps,
    private readonly log: Logger,
    private readonly timeouts: CtTimeouts = DEFAULT_CT_TIMEOUTS,
    private readonly now: () => bigint = () => process.hrtime.bigint(),
    /** after each family's pass (the metrics) */
    private readonly onPass?: (p: CtGcPass) => void,
  ) {}

  /** One scan of every family's map; the plans summed (a family that failed counts nothing). */
  run(): CtGcPlan {
    this.stats.runs++;
    const total: CtGcPlan = { deletes: [], flows: 0, expiredFlows: 0, expiredEntries: {} };
    for (const family of FAMILIES) {
      const map = this.maps[family];
      if (!map) continue;
      const p = this.runFamily(family, map);
      total.deletes.push(...p.deletes);
      total.flows += p.flows;
      total.expiredFlows += p.expiredFlows;
      for (const [r, n] of Object.entries(p.expiredEntries)) total.expiredEntries[r] = (total.expiredEntries[r] ?? 0) + n;
    }
    return total;
  }

  private runFamily(family: IpFamily, map: CtMap): CtGcPlan {
    const t0 = performance.now();
    try {
      const entries = [...map.entries()];
      const plan = planConntrackGc(entries, this.now(), this.timeouts);
      const deleted = plan.deletes.length ? map.deleteMany(plan.deletes) : 0;
      this.stats.scanned += entries.length;
      this.stats.deleted += deleted;
      if (plan.expiredFlows) this.log.debug('conntrack gc', { family: `IPv${family}`, entries: entries.length, expiredFlows: plan.expiredFlows, deleted });
      // alive: what the dump held less what this pass deleted (flows the dataplane opened meanwhile are the next pass's)
      this.onPass?.({ family, ok: true, seconds: (performance.now() - t0) / 1000, deleted: plan.expiredEntries, alive: entries.length - deleted });
      return plan;
    } catch (e) {
      this.stats.errors++;
      this.log.warn('conntrack gc failed', { family: `IPv${family}`, error: errText(e) });
      this.onPass?.({ family, ok: false, seconds: (performance.now() - t0) / 1000, deleted: {}, alive: 0 });
      return { deletes: [], flows: 0, expiredFlows: 0, expiredEntries: {} };
    }
  }
}
