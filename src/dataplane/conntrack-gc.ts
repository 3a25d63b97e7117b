// dataplane/conntrack-gc: ages the entries of weir_ct4_v2 and weir_ct6. The dataplane only
// refreshes last_seen_ns and tcp_flags_seen; this decides when a flow is over, and deletes
// the two entries of a flow (original and reply direction) together. Also: which entries
// belong to a backend that left its frontend (UDP flows to it are deleted at once). Both
// families' entries have one shape (addresses as text), so one code path serves both maps.
// A pass walks the map in bounded chunks (BPF_MAP_LOOKUP_BATCH steps), deletes each chunk's
// expired flows, and yields to the event loop between chunks: a map of a million entries
// neither holds the heap nor stalls /healthz and /metrics. Its count of what is left is the
// conntrack maps' entry count for the metrics, and a near-full table is logged.
//
// Timestamps are bpf_ktime_get_ns(), CLOCK_MONOTONIC, the clock process.hrtime.bigint() reads.

import { enums, layouts, type TypedMap, type WeirCt4, type WeirCt4Key } from '../bpf/index.js';
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
  /** how many of the planned deletes are entries of the input (the others are partners looked up) */
  deletedOfInput: number;
}

/** One GC pass over one family's map, for the metrics (weir_conntrack_gc_*). */
export interface CtGcPass {
  family: IpFamily;
  /** the map's pin name (weir_ct4_v2, weir_ct6) and max_entries (0: unknown) */
  map: string;
  capacity: number;
  ok: boolean;
  seconds: number;
  /** entries deleted, by reason (expiryReason of the flow's state) */
  deleted: Record<string, number>;
  /** entries left in the map after the pass: those it walked and did not delete */
  alive: number;
}

/** Which entries of a dump (or one chunk of it) have expired at `nowNs`. A flow's two entries
 *  may sit in different chunks: `partnerOf` looks the other one up in the map (only for an entry
 *  idle long enough that the answer matters). Pure without `partnerOf`. */
export function planConntrackGc(
  entries: Iterable<readonly [CtKey, CtValue]>,
  nowNs: bigint,
  t: CtTimeouts = DEFAULT_CT_TIMEOUTS,
  partnerOf?: (k: CtKey) => CtValue | undefined,
): CtGcPlan {
  const byKey = new Map<string, [CtKey, CtValue]>();
  for (const [k, v] of entries) byKey.set(ctKeyString(k), [k, v]);
  const done = new Set<string>();
  const plan: CtGcPlan = { deletes: [], flows: 0, expiredFlows: 0, expiredEntries: {}, deletedOfInput: 0 };
  // no state times out sooner: an entry idle less than this is alive whatever its partner says
  const shortestNs = BigInt(Math.min(...Object.values(t))) * 1_000_000_000n;
  for (const [ks, [k, v]] of byKey) {
    if (done.has(ks)) continue;
    const pk = partnerKey(k, v);
    const pks = ctKeyString(pk);
    const inInput = byKey.get(pks);
    done.add(ks);
    done.add(pks);
    const isReply = (v.flags & CT.WEIR_CT_REPLY) !== 0;
    // a flow counts once: from its original entry, or from the pair when both are here
    if (inInput || !isReply || !partnerOf) plan.flows++;
    if (!inInput && partnerOf && !(nowNs > v.last_seen_ns && nowNs - v.last_seen_ns > shortestNs)) continue;
    const partner = inInput?.[1] ?? (ks !== pks ? partnerOf?.(pk) : undefined);
    const orig = isReply ? partner : v;
    const reply = isReply ? v : partner;
    const last = [v.last_seen_ns, partner?.last_seen_ns ?? 0n].reduce((a, b) => (a > b ? a : b));
    const state = flowState(k.protocol, orig, reply);
    const timeoutNs = BigInt(t[state]) * 1_000_000_000n;
    if (nowNs > last && nowNs - last > timeoutNs) {
      plan.expiredFlows++;
      plan.deletes.push(k);
      if (ks !== pks) plan.deletes.push(pk);
      plan.deletedOfInput += ks !== pks && inInput ? 2 : 1;
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

/** What one run did, both families summed (the keys deleted are not kept: a run of a full
 *  table must not hold them all). */
export interface CtGcRun {
  flows: number;
  expiredFlows: number;
  expiredEntries: Record<string, number>;
  scanned: number;
  deleted: number;
}

/** Each family's conntrack map (weir_ct4_v2, weir_ct6); a family without one is not scanned. */
export type CtMaps = Partial<Record<IpFamily, CtMap>>;

/** Where last_seen_ns sits in each family's value (weir_ct4, weir_ct6), from BTF. */
const LAST_SEEN_OFFSET: Record<IpFamily, number> = {
  4: layouts.weir_ct4.members.find((m) => m.name === 'last_seen_ns')!.offset,
  6: layouts.weir_ct6.members.find((m) => m.name === 'last_seen_ns')!.offset,
};

/** Entries per chunk of a pass: ~0.3 MB of decoded entries, a few ms of work between yields. */
export const CT_GC_CHUNK = 1024;
/** Fill at which a pass logs the table as near full, and below which it logs the pressure gone. */
export const CT_NEAR_FULL = 0.9;
export const CT_PRESSURE_EASED = 0.8;
/** While near full, the warning repeats at most this often. */
const NEAR_FULL_REPEAT_MS = 10 * 60_000;

export interface ConntrackGcOptions {
  timeouts?: CtTimeouts;
  now?: () => bigint;
  /** after each family's pass (the metrics, the map census) */
  onPass?: (p: CtGcPass) => void;
  chunk?: number;
  /** between chunks: the event loop runs (default setImmediate) */
  yieldFn?: () => Promise<void>;
}

/** The periodic scan over the live maps, one family after the other with the same rules. */
export class ConntrackGc {
  readonly stats: ConntrackGcStats = { runs: 0, scanned: 0, deleted: 0, errors: 0 };
  private running: Promise<CtGcRun> | undefined;
  private stopped = false;
  private readonly timeouts: CtTimeouts;
  private readonly now: () => bigint;
  private readonly chunk: number;
  private readonly yieldFn: () => Promise<void>;
  /** families logged near full, and when */
  private readonly nearFull = new Map<IpFamily, number>();

  constructor(
    private readonly maps: CtMaps,
    private readonly log: Logger,
    private readonly opts: ConntrackGcOptions = {},
  ) {
    this.timeouts = opts.timeouts ?? DEFAULT_CT_TIMEOUTS;
    this.now = opts.now ?? (() => process.hrtime.bigint());
    this.chunk = opts.chunk ?? CT_GC_CHUNK;
    this.yieldFn = opts.yieldFn ?? (() => new Promise<void>((r) => setImmediate(r)));
  }

  /** One scan of every family's map, the figures summed (a family that failed counts nothing).
   *  A run asked for while one is under way is that run. */
  run(): Promise<CtGcRun> {
    return (this.running ??= this.runAll().finally(() => (this.running = undefined)));
  }

  /** Ends a pass under way at its next chunk (the maps are about to close); no pass after. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running?.catch(() => undefined);
  }

  private async runAll(): Promise<CtGcRun> {
    this.stats.runs++;
    const total: CtGcRun = { flows: 0, expiredFlows: 0, expiredEntries: {}, scanned: 0, deleted: 0 };
    for (const family of FAMILIES) {
      const map = this.maps[family];
      if (!map || this.stopped) continue;
      const p = await this.runFamily(family, map);
      total.flows += p.flows;
      total.expiredFlows += p.expiredFlows;
      total.scanned += p.scanned;
      total.deleted += p.deleted;
      for (const [r, n] of Object.entries(p.expiredEntries)) total.expiredEntries[r] = (total.expiredEntries[r] ?? 0) + n;
    }
    return total;
  }

  private async runFamily(family: IpFamily, map: CtMap): Promise<CtGcRun> {
    const t0 = performance.now();
    const out: CtGcRun = { flows: 0, expiredFlows: 0, expiredEntries: {}, scanned: 0, deleted: 0 };
    const name = (map.map as BpfMapLike | undefined)?.name ?? `conntrack${family}`;
    const capacity = (map.map as BpfMapLike | undefined)?.maxEntries ?? 0;
    let alive = 0;
    // an entry idle less than the shortest timeout is alive whatever its partner says: it is
    // walked but not decoded (in a busy table, most of them)
    const lastSeenAt = LAST_SEEN_OFFSET[family];
    const shortestNs = BigInt(Math.min(...Object.values(this.timeouts))) * 1_000_000_000n;
    try {
      let now = this.now();
      const idle = (_k: Buffer, v: Buffer) => {
        const last = v.readBigUInt64LE(lastSeenAt);
        return now > last && now - last > shortestNs;
      };
      for (const { entries, walked } of map.chunks(this.chunk, idle)) {
        const plan = planConntrackGc(entries, now, this.timeouts, (k) => map.get(k));
        const deleted = plan.deletes.length ? map.deleteMany(plan.deletes) : 0;
        out.scanned += walked;
        out.deleted += deleted;
        out.flows += plan.flows;
        out.expiredFlows += plan.expiredFlows;
        for (const [r, n] of Object.entries(plan.expiredEntries)) out.expiredEntries[r] = (out.expiredEntries[r] ?? 0) + n;
        alive += walked - plan.deletedOfInput;
        await this.yieldFn();
        now = this.now();
        if (this.stopped) return out;
      }
      this.stats.scanned += out.scanned;
      this.stats.deleted += out.deleted;
      if (out.expiredFlows)
        this.log.debug('conntrack gc', { family: `IPv${family}`, entries: out.scanned, expiredFlows: out.expiredFlows, deleted: out.deleted });
      this.pressure(family, name, alive, capacity);
      // flows the dataplane opened meanwhile in buckets already walked are the next pass's
      this.opts.onPass?.({ family, map: name, capacity, ok: true, seconds: (performance.now() - t0) / 1000, deleted: out.expiredEntries, alive });
      return out;
    } catch (e) {
      this.stats.errors++;
      this.log.warn('conntrack gc failed', { family: `IPv${family}`, error: errText(e) });
      this.opts.onPass?.({ family, map: name, capacity, ok: false, seconds: (performance.now() - t0) / 1000, deleted: {}, alive: 0 });
      return { flows: 0, expiredFlows: 0, expiredEntries: {}, scanned: 0, deleted: 0 };
    }
  }

  /** A table near full evicts the least recently used flows (LRU) to make room for new ones,
   *  established flows included: say so, once and then every 10 minutes while it lasts. */
  private pressure(family: IpFamily, map: string, entries: number, capacity: number): void {
    if (!capacity) return;
    const ratio = entries / capacity;
    const since = this.nearFull.get(family);
    const fields = { family: `IPv${family}`, map, entries, capacity, ratio: Math.round(ratio * 1000) / 1000 };
    if (ratio >= CT_NEAR_FULL) {
      if (since !== undefined && Date.now() - since < NEAR_FULL_REPEAT_MS) return;
      this.nearFull.set(family, Date.now());
      this.log.warn('conntrack table near full', {
        ...fields,
        hint: 'new flows evict the least recently used ones; raise --ct-map-size (docs/operations.md, "Map sizes")',
      });
    } else if (since !== undefined && ratio < CT_PRESSURE_EASED) {
      this.nearFull.delete(family);
      this.log.info('conntrack table pressure eased', fields);
    }
  }
}

/** What a pass reads of the map under a typed view (a test's in-memory map has none). */
interface BpfMapLike {
  name: string;
  maxEntries: number;
}
