// cli/monitor: `weir monitor`, the live stream of dataplane events (drops with their reason,
// rejects, new NAT flows, policy denials) from the ring buffer weir_events. Takes the lease
// in weir_monitor_cfg (src/dataplane/monitor.ts), reads the ring every 100 ms from a timer
// (never blocking the event loop), filters and prints a line per event until --count,
// --duration or a signal; then gives the lease back so the programs stop emitting.

import type { Command } from 'commander';
import { BpfMap, RingBuffer } from '../bpf/index.js';
import {
  decodeEvent,
  EVENT_TYPES,
  LEASE_RENEW_MS,
  matchesFilter,
  monitorStats,
  MonitorLease,
  MonitorRefused,
  monotonicToWall,
  normalizeFilter,
  reasonMask,
  type EventFilter,
  type EventType,
  type MonitorEvent,
} from '../dataplane/monitor.js';
import { CliError } from './output.js';
import { openMap, stateOptions, type StateOptions } from './state.js';

const POLL_MS = 100;

interface MonitorOptions extends StateOptions {
  output: 'table' | 'json';
  address: string[];
  port: number[];
  reason: string[];
  type: EventType[];
  hook: string[];
  sample: number;
  count?: number;
  duration?: number;
}

const list = (v: string, prev: string[] = []) => [
  ...prev,
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

function positive(what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new CliError(`${what} ${v}: a whole number from 1`);
    return n;
  };
}

function ports(v: string, prev: number[] = []): number[] {
  return [
    ...prev,
    ...list(v).map((p) => {
      const n = Number(p);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new CliError(`--port ${p}: a port from 0 to 65535`);
      return n;
    }),
  ];
}

function types(v: string, prev: EventType[] = []): EventType[] {
  return [
    ...prev,
    ...list(v).map((t) => {
      if (!EVENT_TYPES.includes(t as EventType)) throw new CliError(`--type ${t}: use ${EVENT_TYPES.join(', ')}`);
      return t as EventType;
    }),
  ];
}

/** 500ms, 10s, 2m, 1h, or plain seconds; milliseconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new CliError(`--duration ${v}: e.g. 30s, 5m, 500ms`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
  return Number(m[1]) * unit;
}

function format(v: string): 'table' | 'json' {
  if (v === 'table' || v === 'json') return v;
  throw new CliError(`-o ${v}: use table or json`);
}

const hp = (a: string, p: number | undefined) => (p === undefined ? a : a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);

const COLUMNS = ['TIME', 'HOOK', 'TYPE', 'REASON', 'PROTO', 'FLOW', 'NAT'];
const WIDTHS = [12, 9, 6, 21, 6, 47];

/** One table line: time of day, hook, type, reason, protocol, src -> dst, NAT target. */
export function tableLine(e: MonitorEvent): string {
  const nat = [e.natSrc && `src ${hp(e.natSrc, e.natSrcPort)}`, e.natDst && `-> ${hp(e.natDst, e.natDstPort)}`].filter(Boolean).join(' ');
  const cells = [e.time.slice(11, 23), e.hook, e.type, e.reason, e.proto, `${hp(e.src, e.srcPort)} -> ${hp(e.dst, e.dstPort)}`, nat];
  return cells
    .map((c, i) => (i < WIDTHS.length ? c.padEnd(WIDTHS[i]!) : c))
    .join(' ')
    .trimEnd();
}

export function registerMonitorCommand(program: Command): void {
  stateOptions(
    program
      .command('monitor')
      .description(
        'live dataplane events: drops with their reason, rejects (no endpoints), new NAT flows, policy denials, with the packet addresses (docs/monitor.md)',
      )
      .option('--address <ip>', 'only events with this address at either end or as NAT target (repeat or comma-separate; IPv4 or IPv6)', list, [])
      .option('--port <port>', 'only events with this port at either end (repeat or comma-separate)', ports, [])
      .option('--reason <reason>', 'only these reasons (counter names, e.g. no_local_backend_drop; repeat or comma-separate)', list, [])
      .option('--hook <hook>', 'only events of these hooks, e.g. xdp (the XDP prefilter), from_host, to_host, from_pod (repeat or comma-separate)', list, [])
      .option('--type <type>', `only these types: ${EVENT_TYPES.join(', ')} (default: all but trace)`, types, [])
      .option('--sample <n>', 'the programs emit 1 in n of the matching packets (bounds the cost under a flood)', positive('--sample'), 1)
      .option('--count <n>', 'stop after n events', positive('--count'))
      .option('--duration <d>', 'stop after this long (30s, 5m, 500ms)', parseDuration)
      .option('-o, --output <format>', 'table (a line per event) or json (JSON lines)', format, 'table'),
  ).action((o: MonitorOptions) => runMonitor(o));
}

async function runMonitor(o: MonitorOptions): Promise<void> {
  let filter: EventFilter;
  let mask: bigint;
  try {
    filter = normalizeFilter({ addresses: o.address, ports: o.port, reasons: o.reason, types: o.type, hooks: o.hook });
    mask = reasonMask(o.type, o.reason);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (mask === 0n) throw new CliError('no reason left to monitor: --type and --reason select nothing together');
  const cfg = openMap(o, 'weir_monitor_cfg');
  const stats = openMap(o, 'weir_monitor_stats');
  const events = openMap(o, 'weir_events');
  let ring: RingBuffer | undefined;
  const lease = new MonitorLease(cfg, mask, o.sample);
  try {
    lease.acquire();
    ring = new RingBuffer(events);
  } catch (e) {
    lease.release();
    for (const m of [cfg, stats, events]) m.close();
    if (e instanceof MonitorRefused) throw new CliError(e.message);
    throw e;
  }
  await stream(o, filter, lease, ring, stats, [cfg, events]);
}

/** Reads until done; always gives the lease back and closes what it opened. */
function stream(o: MonitorOptions, filter: EventFilter, lease: MonitorLease, ring: RingBuffer, stats: BpfMap, maps: BpfMap[]): Promise<void> {
  const wall = monotonicToWall();
  const started = process.hrtime.bigint();
  const lostAtStart = monitorStats(stats).lost;
  let shown = 0;
  let foreign = 0;
  if (o.output === 'table')
    process.stdout.write(
      COLUMNS.map((c, i) => c.padEnd(WIDTHS[i] ?? 0))
        .join(' ')
        .trimEnd() + '\n',
    );
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearInterval(poll);
      clearInterval(renew);
      if (deadline) clearTimeout(deadline);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      try {
        drain(); // what the programs wrote up to now
      } catch {
        /* closing anyway */
      }
      lease.release();
      const lost = monitorStats(stats).lost - lostAtStart;
      ring.close();
      stats.close();
      for (const m of maps) m.close();
      if (lost > 0n) process.stderr.write(`weir monitor: ${lost} events lost (ring buffer full): narrow --type/--reason or use --sample\n`);
      if (foreign > 0) process.stderr.write(`weir monitor: ${foreign} records of another layout skipped (a different weir version wrote them)\n`);
      if (err) reject(err);
      else resolve();
    };
    const drain = () => {
      for (;;) {
        if (o.count !== undefined && shown >= o.count) return;
        const recs = ring.consume(4096);
        for (const r of recs) {
          const ev = decodeEvent(r, wall);
          if (!ev) {
            foreign++;
            continue;
          }
          // a record from before this lease (a monitor killed earlier left it in the ring)
          if (r.readBigUInt64LE(0) < started) continue;
          if (!matchesFilter(ev, filter)) continue;
          process.stdout.write((o.output === 'json' ? JSON.stringify(ev) : tableLine(ev)) + '\n');
          if (o.count !== undefined && ++shown >= o.count) return finish();
        }
        if (recs.length < 4096 || done) return;
      }
    };
    const poll = setInterval(() => {
      try {
        drain();
      } catch (e) {
        finish(e as Error);
      }
    }, POLL_MS);
    const renew = setInterval(() => {
      try {
        if (!lease.renew()) finish(new CliError('lease lost: the daemon switched the monitor off (--monitor off) or another weir monitor took over'));
      } catch (e) {
        finish(e as Error);
      }
    }, LEASE_RENEW_MS);
    const deadline = o.duration !== undefined ? setTimeout(() => finish(), o.duration) : undefined;
    const onSignal = () => finish();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
