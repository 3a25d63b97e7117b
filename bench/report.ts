// bench: the results as Markdown tables (weir's ratio to each peer and to the direct
// ceiling, all from the same run) and an SVG chart drawn here, without dependencies.

import { CP_CONTESTANTS, CP_LABEL, type CpContestant, type CpMeasurement } from './controlplane.js';
import { CONTESTANTS, LABEL, type Contestant, type Measurement, type RoundFigures } from './dataplane.js';
import type { PerPacketRow } from './perpacket.js';

export interface RunInfo {
  command: string;
  machine: string;
  tools: string;
  started: string;
  seconds: number;
  mode: 'quick' | 'full';
  sizes: number[];
  durations: string;
  checks: string[];
  /** which CPUs the data plane's processes were pinned to (absent in runs before pinning) */
  pinning?: string;
  /** which parts ran (`--only`) */
  parts: ('dataplane' | 'controlplane')[];
  /** control-plane sizes and changes per size */
  cpSizes: number[];
  cpChanges: number;
  /** the data plane's address family (absent: IPv4) */
  family?: 4 | 6;
}

const f = (x: number | undefined, d = 0) =>
  x === undefined || Number.isNaN(x) ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !b ? '–' : `${(a / b).toFixed(2)}×`);
const ok = (m: Measurement | undefined): m is Measurement & Required<Pick<Measurement, 'crr' | 'rr' | 'throughputBps'>> =>
  !!m && !m.error && !m.skipped && !!m.crr;

type Metric = { name: string; get: (m: Measurement) => number | undefined; round: (r: RoundFigures) => number; better: 'lower' | 'higher' };
const METRICS: Metric[] = [
  { name: 'connect p50', get: (m) => m.crr?.connect?.p50_us, round: (r) => r.connectP50Us, better: 'lower' },
  { name: 'connect p99', get: (m) => m.crr?.connect?.p99_us, round: (r) => r.connectP99Us, better: 'lower' },
  { name: 'conn/s', get: (m) => m.crr?.rate, round: (r) => r.connPerSec, better: 'higher' },
  { name: 'req/s', get: (m) => m.rr?.rate, round: (r) => r.reqPerSec, better: 'higher' },
  { name: 'Gbit/s', get: (m) => (m.throughputBps === undefined ? undefined : m.throughputBps / 1e9), round: (r) => r.bps / 1e9, better: 'higher' },
];
const [P50, P99, CONNS, REQS, GBITS] = METRICS as [Metric, Metric, Metric, Metric, Metric];

/** A metric's min and max over the rounds (undefined for runs that kept no rounds, or one round). */
function spread(m: Measurement, metric: Metric): { min: number; max: number } | undefined {
  const xs = (m.rounds ?? []).map(metric.round).filter((x) => Number.isFinite(x));
  return xs.length > 1 ? { min: Math.min(...xs), max: Math.max(...xs) } : undefined;
}
/** `median (min–max)` */
function withSpread(m: Measurement, metric: Metric, d: number): string {
  const s = spread(m, metric);
  return `${f(metric.get(m), d)}${s ? ` (${f(s.min, d)}–${f(s.max, d)})` : ''}`;
}
/** The ratio of the medians, and the range the rounds allow (worst pairing each way): a range
 *  that contains 1.00× means the two are not told apart by this run. */
function ratioWithSpread(a: Measurement, b: Measurement, metric: Metric): string {
  const r = ratio(metric.get(a), metric.get(b));
  const sa = spread(a, metric);
  const sb = spread(b, metric);
  if (!sa || !sb || !sb.min || !sb.max) return r;
  const lo = sa.min / sb.max;
  const hi = sa.max / sb.min;
  return `${r} (${lo.toFixed(2)}–${hi.toFixed(2)}${lo <= 1 && hi >= 1 ? ', ≈' : ''})`;
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function markdown(info: RunInfo, results: Measurement[], perPacket: PerPacketRow[], cp: CpMeasurement[] = []): string {
  const at = (c: Contestant, n: number) => results.find((r) => r.contestant === c && r.services === n);
  const out: string[] = [];
  out.push(`# weir benchmarks (${info.mode} run)`, '');
  out.push(
    `- command: \`${info.command}\``,
    `- machine: ${info.machine}`,
    `- tools: ${info.tools}`,
    `- run: ${info.started}, ${Math.round(info.seconds)} s; ${info.durations}`,
    '',
  );
  out.push('Absolute numbers drift on this shared machine; the ratios compare figures taken minutes apart in this same run.', '');
  if (info.pinning)
    out.push(
      `Pinned: ${info.pinning}. Each figure is the median over the rounds with the rounds' min–max in brackets; a ratio's brackets pair the ` +
        'rounds the worst way each way (min ÷ max, max ÷ min), and "≈" marks a ratio whose range contains 1.00×: this run does not tell those two apart.',
      '',
    );

  if (info.parts.includes('controlplane')) out.push(...cpMarkdown(info, cp));
  if (!info.parts.includes('dataplane')) {
    out.push('## Against the targets of issue 6', '', ...cpTargets(cp), '');
    return out.join('\n');
  }
  const v6 = info.family === 6;
  out.push(`## Data plane${v6 ? ' over IPv6' : ''}: client pod → ClusterIP (target service written last), one node`, '');
  if (v6)
    out.push(
      "Every contestant in IPv6: dual-stack pods, an IPv6 ClusterIP, kube-proxy's IPv6 proxier rules (ip6tables, the `ip6 kube-proxy` table), " +
        "weir's IPv6 programs (from_pod6, the *6 socket programs) and maps.",
      '',
    );
  for (const n of info.sizes) {
    out.push(`### ${f(n)} service${n === 1 ? '' : 's'}`, '');
    const rows = CONTESTANTS.map((c) => {
      const m = at(c, n);
      if (!ok(m)) return [LABEL[c], m?.skipped ?? `FAILED: ${m?.error ?? 'no result'}`, '', '', '', '', '', ''];
      return [
        LABEL[c],
        withSpread(m, P50, 1),
        withSpread(m, P99, 1),
        withSpread(m, CONNS, 0),
        withSpread(m, REQS, 0),
        withSpread(m, GBITS, 2),
        c === 'direct' ? '–' : `${f(m.programMs, 0)} ms`,
        `${m.programmed ?? ''}${m.note ? ` (${m.note})` : ''}`,
      ];
    });
    out.push(
      table(['contestant', 'connect p50 µs', 'connect p99 µs', 'conn/s', 'req/s (kept-alive)', 'Gbit/s (iperf3)', 'program time', 'programmed'], rows),
      '',
    );
  }

  out.push('## Ratios: weir ÷ peer, same run', '', 'Latency: below 1.00× means weir is faster. Rates and throughput: above 1.00× means weir does more.', '');
  for (const w of ['weir-sock', 'weir-tc'] as const) {
    out.push(`### ${LABEL[w]}`, '');
    const rows: string[][] = [];
    for (const n of info.sizes)
      for (const p of CONTESTANTS.filter((c) => c !== 'weir-sock' && c !== 'weir-tc')) {
        const a = at(w, n);
        const b = at(p, n);
        rows.push([f(n), p === 'direct' ? `${LABEL[p]}` : LABEL[p], ...METRICS.map((m) => (ok(a) && ok(b) ? ratioWithSpread(a, b, m) : '–'))]);
      }
    out.push(table(['services', 'vs', ...METRICS.map((m) => m.name)], rows), '');
  }

  out.push('## Flatness: each contestant at N services ÷ itself at 1 service (connect p50)', '');
  out.push(
    table(
      ['contestant', ...info.sizes.map((n) => f(n))],
      CONTESTANTS.map((c) => {
        const base = at(c, info.sizes[0]!);
        return [LABEL[c], ...info.sizes.map((n) => (ok(at(c, n)) && ok(base) ? ratio(at(c, n)!.crr!.connect!.p50_us, base.crr.connect!.p50_us) : '–'))];
      }),
    ),
    '',
  );

  out.push('## Per-packet cost (BPF_PROG_TEST_RUN, kernel-measured)', '');
  const isRepeat = (r: PerPacketRow) => r.method.includes('repeat');
  const passRepeat = perPacket.find((r) => r.case.startsWith('pass-through') && isRepeat(r));
  const passSingle = perPacket.find((r) => r.case.startsWith('pass-through') && r.method.startsWith('median'));
  out.push(
    table(
      ['case', 'program', 'method', 'ns/packet', 'median round', 'above the floor', 'est. ns/packet (single runs less their overhead)'],
      perPacket.map((r) => [
        r.case,
        r.program,
        r.method,
        f(r.nsPerPacket),
        r.medianNs !== undefined ? f(r.medianNs) : '',
        r.aboveFloorNs !== undefined ? f(r.aboveFloorNs) : '',
        r.method.startsWith('median') && passRepeat && passSingle && r !== passSingle ? f(r.nsPerPacket - passSingle.nsPerPacket + passRepeat.nsPerPacket) : '',
      ]),
    ),
    '',
  );
  out.push(
    "Repeated runs reuse one skb, so the rewriting cases use a frontend whose backend is itself (the rewrite is computed and written, the bytes stay); each is measured in several rounds and the fastest round is shown, the median round next to it. The floor is an empty TC program through the same test-run loop: what every program pays before doing anything; 'above the floor' is weir's own work. New flows cannot repeat: each single run is a distinct flow; a single run carries the syscall-side timer overhead, which the pass-through pair of rows measures and the last column subtracts.",
    '',
  );

  out.push('## Against the targets of issue 6', '');
  out.push(...targets(info, perPacket, at), ...(info.parts.includes('controlplane') ? cpTargets(cp) : []), '');
  out.push('## Checks run before measuring', '', ...info.checks.map((c) => `- ${c}`), '');
  return out.join('\n');
}

function targets(info: RunInfo, perPacket: PerPacketRow[], at: (c: Contestant, n: number) => Measurement | undefined): string[] {
  const lines: string[] = [];
  const nMax = Math.max(...info.sizes.filter((n) => ok(at('weir-sock', n)) && ok(at('weir-tc', n))));
  for (const w of ['weir-sock', 'weir-tc'] as const) {
    const one = at(w, 1);
    const big = at(w, nMax);
    if (ok(one) && ok(big)) {
      const r = big.crr.connect!.p50_us / one.crr.connect!.p50_us;
      lines.push(
        `- ${LABEL[w]}: connect p50 at ${f(nMax)} services is ${r.toFixed(2)}× its 1-service figure (target: within 1.05×) → ${r <= 1.05 ? 'met' : 'MISSED'}`,
      );
    }
  }
  for (const [w, limit] of [
    ['weir-sock', 0.02],
    ['weir-tc', 0.1],
  ] as const) {
    for (const n of info.sizes) {
      const a = at(w, n);
      const d = at('direct', n);
      if (!ok(a) || !ok(d)) continue;
      const rr = a.rr.rate / d.rr.rate;
      const tp = a.throughputBps / d.throughputBps;
      const met = rr >= 1 - limit && tp >= 1 - limit;
      lines.push(
        `- ${LABEL[w]} at ${f(n)} services: req/s ${(rr * 100).toFixed(1)}%, throughput ${(tp * 100).toFixed(1)}% of direct (target ≥ ${100 - limit * 100}%) → ${met ? 'met' : 'MISSED'}`,
      );
    }
  }
  // the established paths; a repeatable new flow is repeated too, but is no hot path
  const hot = perPacket.filter((r) => r.method.includes('repeat') && r.program !== 'bench_floor' && !r.case.includes('new flow'));
  for (const r of hot)
    lines.push(
      `- hot path "${r.case}" (${r.program}): ${r.nsPerPacket} ns/packet, ${r.aboveFloorNs ?? '?'} ns above the empty program's floor (target < 100) → ${r.nsPerPacket < 100 ? 'met' : 'MISSED'}`,
    );

  if (!info.parts.includes('controlplane'))
    lines.push('- programming 10k × 10 end to end, one endpoint change p99, daemon RSS: control plane not run (`--only dataplane`)');
  return lines;
}

/** Connect p50 and p99 against the service count, one line per contestant (log x). */
export function svg(info: RunInfo, results: Measurement[]): string {
  const W = 980;
  const H = 420;
  const colors: Record<Contestant, string> = {
    direct: '#777777',
    'weir-sock': '#1b9e77',
    'weir-tc': '#66a61e',
    nftables: '#7570b3',
    'iptables-nft': '#d95f02',
    'iptables-legacy': '#e7298a',
  };
  const sizes = info.sizes;
  const panel = (x0: number, title: string, metric: Metric) => {
    const get = metric.get;
    const pw = 420;
    const ph = 300;
    const y0 = 50;
    const vals = results
      .filter(ok)
      .flatMap((m) => [get(m), spread(m, metric)?.max])
      .filter((v): v is number => v !== undefined);
    const ymax = Math.max(1, ...vals) * 1.1;
    const xs = (i: number) => x0 + 50 + (sizes.length === 1 ? pw / 2 : (i * (pw - 70)) / (sizes.length - 1));
    const ys = (v: number) => y0 + ph - (v / ymax) * ph;
    const parts: string[] = [`<text x="${x0 + 50}" y="${y0 - 15}" font-size="14" font-weight="bold">${title}</text>`];
    parts.push(
      `<line x1="${x0 + 50}" y1="${y0 + ph}" x2="${x0 + pw}" y2="${y0 + ph}" stroke="#000"/>`,
      `<line x1="${x0 + 50}" y1="${y0}" x2="${x0 + 50}" y2="${y0 + ph}" stroke="#000"/>`,
    );
    for (let t = 0; t <= 4; t++) {
      const v = (ymax * t) / 4;
      parts.push(
        `<text x="${x0 + 44}" y="${ys(v) + 4}" font-size="10" text-anchor="end">${v.toFixed(0)}</text>`,
        `<line x1="${x0 + 50}" y1="${ys(v)}" x2="${x0 + pw}" y2="${ys(v)}" stroke="#eee"/>`,
      );
    }
    sizes.forEach((n, i) => parts.push(`<text x="${xs(i)}" y="${y0 + ph + 16}" font-size="11" text-anchor="middle">${f(n)}</text>`));
    parts.push(`<text x="${x0 + 50 + pw / 2}" y="${y0 + ph + 34}" font-size="11" text-anchor="middle">services (target last)</text>`);
    parts.push(`<text x="${x0 + 12}" y="${y0 + ph / 2}" font-size="11" transform="rotate(-90 ${x0 + 12} ${y0 + ph / 2})" text-anchor="middle">µs</text>`);
    for (const c of CONTESTANTS) {
      const pts = sizes
        .map((n, i) => {
          const m = results.find((r) => r.contestant === c && r.services === n);
          const v = ok(m) ? get(m) : undefined;
          return v === undefined ? undefined : `${xs(i).toFixed(1)},${ys(v).toFixed(1)}`;
        })
        .filter((p): p is string => !!p);
      if (!pts.length) continue;
      // the rounds' min–max as a bar at each point (contestants nudged apart so bars do not overlap)
      const dx = (CONTESTANTS.indexOf(c) - (CONTESTANTS.length - 1) / 2) * 3;
      sizes.forEach((n, i) => {
        const m = results.find((r) => r.contestant === c && r.services === n);
        const sp = ok(m) ? spread(m, metric) : undefined;
        if (sp)
          parts.push(
            `<line x1="${(xs(i) + dx).toFixed(1)}" y1="${ys(sp.min).toFixed(1)}" x2="${(xs(i) + dx).toFixed(1)}" y2="${ys(sp.max).toFixed(1)}" stroke="${colors[c]}" stroke-width="1.5" opacity="0.6"/>`,
          );
      });
      parts.push(`<polyline fill="none" stroke="${colors[c]}" stroke-width="2" points="${pts.join(' ')}"/>`);
      for (const p of pts) parts.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3" fill="${colors[c]}"/>`);
    }
    return parts.join('\n');
  };
  const legend = CONTESTANTS.map(
    (c, i) =>
      `<rect x="${40 + i * 155}" y="${H - 22}" width="12" height="12" fill="${colors[c]}"/><text x="${56 + i * 155}" y="${H - 12}" font-size="11">${LABEL[c]}</text>`,
  ).join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${W / 2}" y="20" font-size="15" text-anchor="middle">New-connection latency (connect) to a ClusterIP vs number of services — ${info.mode} run, ${info.started}</text>`,
    panel(0, 'connect p50 (µs), bars: min–max over rounds', P50),
    panel(490, 'connect p99 (µs), bars: min–max over rounds', P99),
    legend,
    '</svg>',
    '',
  ].join('\n');
}

// ---- control plane ----------------------------------------------------------------------

const cpOk = (m: CpMeasurement | undefined): m is CpMeasurement & { programMs: number } => !!m && !m.error && !m.skipped && m.programMs !== undefined;
const cpRatio = (a: number | undefined, b: number | undefined) => (a !== undefined && b && a / b < 0.01 ? `${(a / b).toFixed(4)}×` : ratio(a, b));
const ms = (x: number | undefined) => (x === undefined ? '–' : x >= 10_000 ? `${f(x / 1000, 1)} s` : `${f(x, x < 10 ? 1 : 0)} ms`);

function cpMarkdown(info: RunInfo, cp: CpMeasurement[]): string[] {
  const at = (c: CpContestant, n: number) => cp.find((r) => r.contestant === c && r.services === n);
  const out: string[] = [];
  out.push('## Control plane: program N services from nothing, then one endpoint change at a time', '');
  out.push(
    `N ClusterIP services × M endpoints (M = 10; 5 at 50,000 services, where weir_backend4's 262,144 entries cannot hold 500,000). ${info.cpChanges} endpoint changes per contestant and size (fewer where the change budget ran out: see the notes), alternately removing a service's last endpoint and putting it back.`,
    '',
    "- **weir**: end to end. The Services and EndpointSlices are manifest files (1,000 services per file; the slices that change in files of their own); `program` is the wall clock from spawning `weir daemon --connect-time-lb off` in a lab node to its `event=ready` line (node's start-up included), `daemon ms` the daemon's own `ready ms=` (its start() to ready: loading the BPF objects, reading the manifests, the first full sync, attaching) and, in brackets, that first full sync alone (`event=sync reason=start ms=`: model and map writes). `change` runs from the atomic rename of the slice file to the new backend count in the pinned `weir_frontend4` (polled at event-loop pace): the rename's inotify wake-up, the read and parse of that one file, the event-loop turn and the sync (a file renamed into place is read at once; docs/daemon.md); `inner` is the daemon's own `event=sync reason=change ms=` (model update and map writes). RSS is the daemon's VmHWM after ready.",
    "- **kube-proxy iptables**: `program` is one `iptables-restore --noflush` of the whole input into an empty netns (a full sync). `change` is the KEP-3453 partial restore kube-proxy ≥ 1.28 makes for one changed service: the filter table, KUBE-SERVICES (N rules) and the other top-level nat chains, plus that service's KUBE-SVC/KUBE-SEP chains (removed endpoints' chains stay until the periodic cleanup, as in large-cluster mode).",
    "- **kube-proxy nftables**: `program` is `nft -f` of the full transaction. `change` is its partial sync: `nft --json list chains ip` and `list sets ip` (run on every sync), then `nft -f` of the changed service's chains (add + flush + rules; map elements unchanged); `inner` is that transaction alone.",
    "- Peers' figures are the commands only: kube-proxy's informers, its own computation and its `minSyncPeriod` (1 s by default) come on top; weir's include its source, model and map writes.",
    '',
  );
  const rows: string[][] = [];
  for (const n of info.cpSizes)
    for (const c of CP_CONTESTANTS) {
      const m = at(c, n);
      if (!m) continue;
      const M = m.endpointsPerService;
      if (!cpOk(m)) {
        rows.push([f(n), String(M), CP_LABEL[c], m.skipped ?? `FAILED: ${m.error ?? 'no result'}`, '', '', '', '', '', '', '']);
        continue;
      }
      rows.push([
        f(n),
        String(M),
        CP_LABEL[c],
        ms(m.programMs),
        m.readyMs === undefined ? '' : `${ms(m.readyMs)}${m.startSyncMs !== undefined && !Number.isNaN(m.startSyncMs) ? ` (sync ${ms(m.startSyncMs)})` : ''}`,
        m.rssMiB === undefined ? '' : f(m.rssMiB),
        m.change ? ms(m.change.p50_ms) : (m.error ?? '–'),
        m.change ? ms(m.change.p99_ms) : '–',
        m.changeInner ? `${ms(m.changeInner.p50_ms)} / ${ms(m.changeInner.p99_ms)}` : '',
        m.change ? String(m.change.count) : '',
        `${m.programmed ?? ''}${m.note ? ` (${m.note})` : ''}`,
      ]);
    }
  out.push(
    table(['services', 'M', 'contestant', 'program', 'daemon ms', 'RSS MiB', 'change p50', 'change p99', 'inner p50 / p99', 'changes', 'programmed'], rows),
    '',
  );

  out.push('### Control-plane ratios: weir ÷ peer, same run', '', 'Below 1.00× means weir takes less time.', '');
  const rr: string[][] = [];
  for (const n of info.cpSizes) {
    const w = at('weir', n);
    for (const p of CP_CONTESTANTS.filter((c) => c !== 'weir')) {
      const b = at(p, n);
      if (!b) continue;
      const both = cpOk(w) && cpOk(b);
      rr.push([
        f(n),
        CP_LABEL[p],
        both ? cpRatio(w.programMs, b.programMs) : '–',
        both && w.change && b.change ? cpRatio(w.change.p50_ms, b.change.p50_ms) : '–',
        both && w.change && b.change ? cpRatio(w.change.p99_ms, b.change.p99_ms) : '–',
        both && w.changeInner && b.change ? cpRatio(w.changeInner.p99_ms, b.change.p99_ms) : '–',
      ]);
    }
  }
  out.push(table(['services', 'vs', 'program', 'change p50', 'change p99', 'weir inner p99 ÷ peer change p99'], rr), '');
  return out;
}

function cpTargets(cp: CpMeasurement[]): string[] {
  const lines: string[] = [];
  const w = cp.filter((m) => m.contestant === 'weir');
  const at10k = w.find((m) => m.services === 10_000);
  const largest = [...w].filter(cpOk).sort((a, b) => b.services - a.services)[0];
  const pick = at10k && cpOk(at10k) ? at10k : largest;
  if (!pick) return ['- control plane: weir produced no figure'];
  const tag = pick.services === 10_000 ? '' : ` (measured at ${f(pick.services)} services, not 10k)`;
  lines.push(
    `- programming 10k × 10 end to end${tag}: ${ms(pick.programMs)} wall from process start (daemon ${ms(pick.readyMs)}) (target < 1 s) → ${pick.services === 10_000 ? (pick.programMs < 1000 ? 'met' : 'MISSED') : 'not measured at 10k'}`,
  );
  if (pick.change)
    lines.push(
      `- one endpoint change at 10k${tag}: p99 ${ms(pick.change.p99_ms)} from the file's rename into place, daemon's own sync p99 ${ms(pick.changeInner?.p99_ms)} (target < 5 ms) → ${pick.services === 10_000 ? (pick.change.p99_ms < 5 ? 'met' : 'MISSED end to end') + (pick.changeInner && pick.changeInner.p99_ms < 5 ? ", met by the daemon's sync" : '') : 'not measured at 10k'}`,
    );
  if (pick.rssMiB !== undefined)
    lines.push(
      `- daemon RSS at 10k × 10${tag}: ${f(pick.rssMiB)} MiB VmHWM (target < 200 MB = 191 MiB) → ${pick.services === 10_000 ? (pick.rssMiB < 190.7 ? 'met' : 'MISSED') : 'not measured at 10k'}`,
    );
  return lines;
}

/** Control plane: program time and change p99 against N, log scale, one line per contestant. */
export function cpSvg(info: RunInfo, cp: CpMeasurement[]): string {
  const W = 980;
  const H = 420;
  const colors: Record<CpContestant, string> = { weir: '#1b9e77', nftables: '#7570b3', 'iptables-nft': '#d95f02', 'iptables-legacy': '#e7298a' };
  const sizes = info.cpSizes;
  const panel = (x0: number, title: string, get: (m: CpMeasurement) => number | undefined) => {
    const pw = 420;
    const ph = 300;
    const y0 = 50;
    const vals = cp
      .filter(cpOk)
      .map(get)
      .filter((v): v is number => v !== undefined && v > 0);
    const lo = Math.floor(Math.log10(Math.min(1, ...vals)));
    const hi = Math.ceil(Math.log10(Math.max(10, ...vals)));
    const xs = (i: number) => x0 + 50 + (sizes.length === 1 ? pw / 2 : (i * (pw - 70)) / (sizes.length - 1));
    const ys = (v: number) => y0 + ph - ((Math.log10(v) - lo) / (hi - lo)) * ph;
    const parts: string[] = [`<text x="${x0 + 50}" y="${y0 - 15}" font-size="14" font-weight="bold">${title}</text>`];
    parts.push(
      `<line x1="${x0 + 50}" y1="${y0 + ph}" x2="${x0 + pw}" y2="${y0 + ph}" stroke="#000"/>`,
      `<line x1="${x0 + 50}" y1="${y0}" x2="${x0 + 50}" y2="${y0 + ph}" stroke="#000"/>`,
    );
    for (let e = lo; e <= hi; e++) {
      const v = 10 ** e;
      parts.push(
        `<text x="${x0 + 44}" y="${ys(v) + 4}" font-size="10" text-anchor="end">${v >= 1000 ? `${v / 1000} s` : `${v} ms`}</text>`,
        `<line x1="${x0 + 50}" y1="${ys(v)}" x2="${x0 + pw}" y2="${ys(v)}" stroke="#eee"/>`,
      );
    }
    sizes.forEach((n, i) => parts.push(`<text x="${xs(i)}" y="${y0 + ph + 16}" font-size="11" text-anchor="middle">${f(n)}</text>`));
    parts.push(`<text x="${x0 + 50 + pw / 2}" y="${y0 + ph + 34}" font-size="11" text-anchor="middle">services</text>`);
    for (const c of CP_CONTESTANTS) {
      const pts = sizes
        .map((n, i) => {
          const m = cp.find((r) => r.contestant === c && r.services === n);
          const v = cpOk(m) ? get(m) : undefined;
          return v === undefined || v <= 0 ? undefined : `${xs(i).toFixed(1)},${ys(v).toFixed(1)}`;
        })
        .filter((p): p is string => !!p);
      if (!pts.length) continue;
      parts.push(`<polyline fill="none" stroke="${colors[c]}" stroke-width="2" points="${pts.join(' ')}"/>`);
      for (const p of pts) parts.push(`<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3" fill="${colors[c]}"/>`);
    }
    return parts.join('\n');
  };
  const legend = CP_CONTESTANTS.map(
    (c, i) =>
      `<rect x="${40 + i * 235}" y="${H - 22}" width="12" height="12" fill="${colors[c]}"/><text x="${56 + i * 235}" y="${H - 12}" font-size="11">${CP_LABEL[c]}</text>`,
  ).join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${W / 2}" y="20" font-size="15" text-anchor="middle">Control plane vs number of services (log scale) — ${info.mode} run, ${info.started}</text>`,
    panel(0, 'program from nothing', (m) => m.programMs),
    panel(490, 'one endpoint change, p99', (m) => m.change?.p99_ms),
    legend,
    '</svg>',
    '',
  ].join('\n');
}
