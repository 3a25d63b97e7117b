// dataplane/monitor: `weir monitor`'s userspace half. The programs write struct weir_event
// records into the ring buffer weir_events while a lease in weir_monitor_cfg runs
// (bpf-c/lib/monitor.h); this file holds the lease, turns event types and reasons into the
// kernel's reason mask, decodes records into MonitorEvents and filters them. The daemon's
// `--monitor off` switch is applyMonitorSwitch. docs/monitor.md explains the whole.

import { codecFor, enums, type BpfMap, type WeirMonitorCfg } from '../bpf/index.js';
import { canonicalIp, protocolName, unmapIp4 } from '../bpf/ip.js';
import { hookNames, reasonNames } from './counters.js';

/** What an event is, derived from its reason (the kernel knows only reasons). */
export type EventType = 'drop' | 'reject' | 'nat' | 'policy' | 'trace';
export const EVENT_TYPES: readonly EventType[] = ['drop', 'reject', 'nat', 'policy', 'trace'];

/** The reasons of each type that `weir monitor` shows by default (without --reason). */
const TYPE_REASONS: Record<Exclude<EventType, 'trace'>, readonly string[]> = {
  drop: [
    'no_local_backend_drop',
    'ct_create_failed',
    'sctp_port_rewrite',
    'backend_missing',
    'reject_failed',
    'nat_failed',
    'lb_source_denied',
    'tunnel_failed',
    'tunnel_denied',
    'tunnel_too_big',
    'spoofed_source',
    // host policy (Calico GlobalNetworkPolicy on host endpoints): XDP untracked, preDNAT, normal, forward
    'host_untracked_denied',
    'host_prednat_denied',
    'host_policy_denied',
    'host_forward_denied',
  ],
  // the packet is answered (ICMP unreachable, TCP RST, ICMP frag needed / packet too big)
  reject: ['no_backend_reject', 'tunnel_frag_needed'],
  // a new NAT'd flow (a packet's, or a connect() the socket LB translated); nat_established and
  // reverse_nat are per packet: --reason only
  nat: ['service_nat', 'hairpin', 'sock_lb_translated'],
  policy: ['policy_egress_denied', 'policy_ingress_denied'],
};
/** --reason may ask for these too (per-packet verdicts: use --sample); they show as their type */
const OPT_IN_NAT = ['nat_established', 'reverse_nat', 'icmp_error_revnat'];
/** host policy's allow verdicts (a failsafe port, an untracked allow, a host policy allow): --reason only, shown as policy */
const OPT_IN_POLICY = ['host_failsafe', 'host_untracked_allowed', 'host_policy_allowed'];

/** The type an event of `reason` shows as. */
export function eventType(reason: string): EventType {
  for (const [type, reasons] of Object.entries(TYPE_REASONS)) if (reasons.includes(reason)) return type as EventType;
  return OPT_IN_NAT.includes(reason) ? 'nat' : OPT_IN_POLICY.includes(reason) ? 'policy' : 'trace';
}

const reasonValues = new Map([...reasonNames].map(([v, n]) => [n, v]));
/**
 * The kernel's reason mask for `types` (default: drop, reject, nat, policy) and `reasons` (each
 * a reason name, any of the enum's). Both given: the reasons of those types only. Throws on an
 * unknown name, with the known ones.
 */
export function reasonMask(types: readonly EventType[] = [], reasons: readonly string[] = []): bigint {
  for (const t of types) if (!EVENT_TYPES.includes(t)) throw new Error(`unknown event type ${t} (known: ${EVENT_TYPES.join(', ')})`);
  let names: string[];
  if (reasons.length > 0) {
    for (const r of reasons) if (!reasonValues.has(r)) throw new Error(`unknown reason ${r} (known: ${[...reasonValues.keys()].sort().join(', ')})`);
    names = types.length > 0 ? reasons.filter((r) => types.includes(eventType(r))) : [...reasons];
  } else {
    const ts = types.length > 0 ? types : (['drop', 'reject', 'nat', 'policy'] as const);
    names = ts.flatMap((t) => (t === 'trace' ? [] : TYPE_REASONS[t]));
  }
  let mask = 0n;
  for (const n of names) {
    const v = reasonValues.get(n);
    if (v !== undefined && v < 64) mask |= 1n << BigInt(v);
  }
  return mask;
}

/** One event as `weir monitor -o json` prints it. */
export interface MonitorEvent {
  /** wall-clock time of the packet (ISO 8601, from the kernel's monotonic stamp) */
  time: string;
  type: EventType;
  hook: string;
  reason: string;
  family: 4 | 6;
  proto: string;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  /** the backend a NAT'd flow was sent to */
  natDst?: string;
  natDstPort?: number;
  /** the source a flow was rewritten to (hairpin) */
  natSrc?: string;
  natSrcPort?: number;
  ifindex: number;
  len: number;
  /** TCP flags byte (TCP only) */
  tcpFlags?: number;
  /** ICMP/ICMPv6 type (ICMP only) */
  icmpType?: number;
}

const eventCodec = codecFor('weir_event');
export const EVENT_SIZE = eventCodec.size;
const F_NAT = enums.weir_event_flags.WEIR_EVENT_NAT;
const F_SNAT = enums.weir_event_flags.WEIR_EVENT_SNAT;

/** The offset from the kernel's monotonic clock (bpf_ktime_get_ns) to wall-clock ns. */
export function monotonicToWall(): bigint {
  return BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
}

function addr(a: string, family: number): string {
  return family === 4 ? (unmapIp4(a) ?? a) : a;
}

/** A record of weir_events as a MonitorEvent; undefined for a record of another size (a
 *  newer or older weir's layout: the caller counts it). */
export function decodeEvent(buf: Buffer, wallOffset: bigint = monotonicToWall()): MonitorEvent | undefined {
  if (buf.length !== EVENT_SIZE) return undefined;
  const e = eventCodec.decode(buf);
  const family = e.family === 6 ? 6 : 4;
  const reason = reasonNames.get(e.reason) ?? `reason_${e.reason}`;
  const proto = protocolName(e.protocol);
  const ev: MonitorEvent = {
    time: new Date(Number((e.time_ns + wallOffset) / 1_000_000n)).toISOString(),
    type: eventType(reason),
    hook: hookNames.get(e.hook) ?? `hook_${e.hook}`,
    reason,
    family,
    proto,
    src: addr(e.saddr, family),
    srcPort: e.sport,
    dst: addr(e.daddr, family),
    dstPort: e.dport,
    ifindex: e.ifindex,
    len: e.len,
  };
  if (e.flags & F_NAT) {
    ev.natDst = addr(e.nat_daddr, family);
    ev.natDstPort = e.nat_dport;
  }
  if (e.flags & F_SNAT) {
    ev.natSrc = addr(e.nat_saddr, family);
    ev.natSrcPort = e.nat_sport;
  }
  if (e.protocol === 6) ev.tcpFlags = e.tcp_flags;
  if (e.protocol === 1 || e.protocol === 58) ev.icmpType = e.icmp_type;
  return ev;
}

/** What `weir monitor` shows of the events the kernel sent (the kernel filters on reason only). */
export interface EventFilter {
  /** either end (or the NAT target) is one of these (canonical form) */
  addresses?: readonly string[];
  /** either port (or the NAT target's) is one of these */
  ports?: readonly number[];
  reasons?: readonly string[];
  types?: readonly EventType[];
  /** the hook that emitted it (xdp, from_host, to_host, from_pod, ...) */
  hooks?: readonly string[];
}

/** The filter with its addresses in canonical form; throws on an address that is none. */
export function normalizeFilter(f: EventFilter): EventFilter {
  const knownHooks = [...hookNames.values()].filter((h) => !h.startsWith('_'));
  for (const h of f.hooks ?? []) if (!knownHooks.includes(h)) throw new Error(`unknown hook ${h} (known: ${knownHooks.sort().join(', ')})`);
  const addresses = f.addresses?.map((a) => {
    const c = canonicalIp(a, a.includes(':') ? 6 : 4);
    if (!c) throw new Error(`not an IP address: ${a}`);
    return c;
  });
  return { ...f, ...(addresses && { addresses }) };
}

export function matchesFilter(ev: MonitorEvent, f: EventFilter): boolean {
  if (f.types?.length && !f.types.includes(ev.type)) return false;
  if (f.reasons?.length && !f.reasons.includes(ev.reason)) return false;
  if (f.hooks?.length && !f.hooks.includes(ev.hook)) return false;
  if (f.addresses?.length) {
    const ends = [ev.src, ev.dst, ev.natDst, ev.natSrc];
    if (!f.addresses.some((a) => ends.includes(a))) return false;
  }
  if (f.ports?.length) {
    const ports = [ev.srcPort, ev.dstPort, ev.natDstPort, ev.natSrcPort];
    if (!f.ports.some((p) => ports.includes(p))) return false;
  }
  return true;
}

/** The lease: how long the programs keep emitting after the last renewal (the CLI renews every
 *  LEASE_RENEW_MS), so a monitor killed with -9 stops the events within LEASE_MS. */
export const LEASE_MS = 3000;
export const LEASE_RENEW_MS = 1000;
const DISABLED = enums.weir_monitor_cfg_flags.WEIR_MONITOR_DISABLED;
const cfgCodec = codecFor('weir_monitor_cfg');
const KEY0 = Buffer.alloc(4);

export function readMonitorCfg(map: BpfMap): WeirMonitorCfg {
  const v = map.lookup(KEY0);
  return v ? cfgCodec.decode(v) : { until_ns: 0n, reasons: 0n, sample: 0, flags: 0, owner_pid: 0, pad: 0 };
}

function writeMonitorCfg(map: BpfMap, c: WeirMonitorCfg): void {
  map.update(KEY0, cfgCodec.encode(c));
}

const now = () => process.hrtime.bigint(); // CLOCK_MONOTONIC, bpf_ktime_get_ns()'s clock

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why a monitor cannot start: the daemon's switch, or another monitor holding the lease. */
export class MonitorRefused extends Error {}

/**
 * One monitor's lease on the programs' events. One at a time per node: the ring buffer has one
 * reading position, so two readers would each see part of the events. A second monitor is
 * refused while the first one's lease runs and its process lives; a lapsed lease or a dead
 * owner is taken over.
 */
export class MonitorLease {
  private held = false;

  constructor(
    private readonly cfg: BpfMap,
    private readonly reasons: bigint,
    private readonly sample: number,
    private readonly pid: number = process.pid,
  ) {}

  /** Takes the lease; throws MonitorRefused (switch off, or another monitor running). */
  acquire(): void {
    const cur = readMonitorCfg(this.cfg);
    if (cur.flags & DISABLED) throw new MonitorRefused('monitor disabled by --monitor off (the daemon keeps the programs from emitting events)');
    if (cur.until_ns > now() && cur.owner_pid && cur.owner_pid !== this.pid && alive(cur.owner_pid)) {
      throw new MonitorRefused(`another weir monitor (pid ${cur.owner_pid}) is running on this node; one at a time (the ring buffer has one reader)`);
    }
    this.write();
    this.held = true;
  }

  /** Extends the lease by LEASE_MS; false (and no write) when the switch went off meanwhile or
   *  another monitor took the lease over. */
  renew(): boolean {
    if (!this.held) return false;
    const cur = readMonitorCfg(this.cfg);
    if (cur.flags & DISABLED || (cur.owner_pid !== this.pid && cur.until_ns > now())) {
      this.held = false;
      return false;
    }
    this.write();
    return true;
  }

  /** Ends the lease now (the programs stop emitting), unless someone else holds it. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    const cur = readMonitorCfg(this.cfg);
    if (cur.owner_pid === this.pid && !(cur.flags & DISABLED)) writeMonitorCfg(this.cfg, { ...cur, until_ns: 0n, reasons: 0n, sample: 0, owner_pid: 0 });
  }

  private write(): void {
    const until = now() + BigInt(LEASE_MS) * 1_000_000n;
    writeMonitorCfg(this.cfg, { until_ns: until, reasons: this.reasons, sample: Math.max(1, this.sample), flags: 0, owner_pid: this.pid, pad: 0 });
  }
}

/**
 * The daemon's `--monitor on|off`. Off: the control entry is all zero but DISABLED, so the
 * programs emit nothing and the CLI refuses; the daemon calls this again periodically, so a
 * lease written past the CLI is cut within that period. On: a DISABLED flag a previous run
 * left is cleared (a running monitor's lease is left alone). Returns whether it wrote.
 */
export function applyMonitorSwitch(cfg: BpfMap, on: boolean): boolean {
  const cur = readMonitorCfg(cfg);
  if (on) {
    if (!(cur.flags & DISABLED)) return false;
    writeMonitorCfg(cfg, { until_ns: 0n, reasons: 0n, sample: 0, flags: 0, owner_pid: 0, pad: 0 });
    return true;
  }
  if (cur.flags === DISABLED && cur.until_ns === 0n && cur.reasons === 0n) return false;
  writeMonitorCfg(cfg, { until_ns: 0n, reasons: 0n, sample: 0, flags: DISABLED, owner_pid: 0, pad: 0 });
  return true;
}

/** weir_monitor_stats summed over CPUs: events the programs emitted, and lost to a full ring. */
export function monitorStats(map: BpfMap): { emitted: bigint; lost: bigint } {
  const vals = map.lookupPerCpu(KEY0);
  let emitted = 0n;
  let lost = 0n;
  for (const v of vals ?? []) {
    emitted += v.readBigUInt64LE(0);
    lost += v.readBigUInt64LE(8);
  }
  return { emitted, lost };
}
