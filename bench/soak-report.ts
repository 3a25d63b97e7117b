// bench: the soak's samples (bench/soak.ts) as a flatness table (first quarter against last
// quarter, and the slope of the second half) in Markdown, and their curves as an SVG of small
// panels, one per series, drawn here without dependencies as bench/report.ts draws the others.

import type { SoakTraffic } from './soak-client.js';

export interface SoakSample {
  /** seconds since the churn started */
  t: number;
  rssKiB: number;
  /** VmHWM: the daemon's peak RSS so far */
  hwmKiB: number;
  fds: number;
  /** entries by pin name, hash/LRU/LPM maps only (arrays always count max_entries) */
  maps: Record<string, number>;
  /** the slowest of three /healthz round trips this sample (curl's time_total), ms */
  healthzMs: number;
  /** one /metrics scrape, ms, and its line count (a label set that grows shows here) */
  metricsMs: number;
  metricsLines: number;
  /** Node's own figures from /metrics (prom-client's defaults): what part of the RSS is the JS heap, and event-loop lag */
  node?: { heapUsedMiB: number; heapTotalMiB: number; externalMiB: number; lagP99Ms: number; lagMaxMs: number };
  traffic?: SoakTraffic;
  churn: { endpointChanges: number; serviceChanges: number; policyChanges: number; applyErrors: number; skippedTicks: number };
  log: { lines: number; warn: number; error: number; syncs: number };
  /** the machine's 1-minute load average (shared with other work) */
  load1: number;
}

export interface SoakConfig {
  minutes: number;
  sampleSeconds: number;
  services: number;
  endpointsPerService: number;
  endpointChangesPerSecond: number;
  policyChangeSeconds: number;
  serviceChangeSeconds: number;
  connectionsPerSecond: number;
  streams: number;
  streamIntervalMs: number;
  pods: number;
}

export interface SoakRun {
  info: { command: string; machine: string; started: string; seconds: number; daemonArgs: string; endedEarly?: string };
  config: SoakConfig;
  samples: SoakSample[];
}

interface Series {
  name: string;
  unit: string;
  get: (s: SoakSample) => number | undefined;
  /** a change this small is flat whatever the ratio (a count moving by one entry) */
  absTolerance: number;
  /** whether the series must stay flat (latency and load are shown, not judged) */
  judged: boolean;
}

const mapSum = (re: RegExp) => (s: SoakSample) => Object.entries(s.maps).reduce((n, [k, v]) => (re.test(k) ? n + v : n), 0);

export const SERIES: Series[] = [
  { name: 'daemon RSS', unit: 'MiB', get: (s) => s.rssKiB / 1024, absTolerance: 4, judged: true },
  { name: 'JS heap used', unit: 'MiB', get: (s) => s.node?.heapUsedMiB, absTolerance: 4, judged: true },
  // what V8 holds for the heap: most of the RSS under allocation churn, beside what is in use
  { name: 'JS heap total', unit: 'MiB', get: (s) => s.node?.heapTotalMiB, absTolerance: 4, judged: true },
  { name: 'open fds', unit: 'fds', get: (s) => s.fds, absTolerance: 2, judged: true },
  { name: 'frontends', unit: 'entries', get: mapSum(/^weir_frontend/), absTolerance: 2, judged: true },
  { name: 'backends', unit: 'entries', get: mapSum(/^weir_backend/), absTolerance: 20, judged: true },
  { name: 'conntrack', unit: 'entries', get: mapSum(/^weir_ct/), absTolerance: 50, judged: true },
  { name: 'policy maps', unit: 'entries', get: mapSum(/^weir_policy/), absTolerance: 20, judged: true },
  { name: 'ipcache + endpoints', unit: 'entries', get: mapSum(/^weir_(ipcache|endpoints)/), absTolerance: 2, judged: true },
  { name: '/metrics lines', unit: 'lines', get: (s) => s.metricsLines, absTolerance: 10, judged: true },
  { name: 'failed connections (total)', unit: 'connections', get: (s) => s.traffic?.connections.failed, absTolerance: 0, judged: true },
  { name: 'stream wait, worst of the last 5 s', unit: 'ms', get: (s) => s.traffic?.streams.windowMaxGapMs, absTolerance: 0, judged: false },
  { name: '/healthz (worst of 3)', unit: 'ms', get: (s) => s.healthzMs, absTolerance: 0, judged: false },
  { name: 'event-loop lag p99', unit: 'ms', get: (s) => s.node?.lagP99Ms, absTolerance: 0, judged: false },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

/** Least-squares slope of (t, v), per hour. */
function slopePerHour(pts: [number, number][]): number {
  if (pts.length < 2) return NaN;
  const n = pts.length;
  const mt = pts.reduce((a, [t]) => a + t, 0) / n;
  const mv = pts.reduce((a, [, v]) => a + v, 0) / n;
  const num = pts.reduce((a, [t, v]) => a + (t - mt) * (v - mv), 0);
  const den = pts.reduce((a, [t]) => a + (t - mt) ** 2, 0);
  return den ? (num / den) * 3600 : NaN;
}

export interface Flatness {
  series: string;
  unit: string;
  first: number;
  last: number;
  min: number;
  max: number;
  change: number;
  /** last ÷ first − 1 */
  relative: number;
  /** least-squares slope over the second half of the run, per hour */
  slopePerHour: number;
  verdict: 'flat' | 'grows' | 'shrinks' | 'shown';
}

/** Each series' median over the first and the last quarter of the run, and whether it held (within 5% or its absolute tolerance). */
export function flatness(samples: SoakSample[]): Flatness[] {
  const end = Math.max(...samples.map((s) => s.t));
  return SERIES.flatMap((se) => {
    const pts = samples.map((s) => [s.t, se.get(s)] as [number, number | undefined]).filter((p): p is [number, number] => p[1] !== undefined);
    if (pts.length < 4) return [];
    const first = median(pts.filter(([t]) => t <= end / 4).map(([, v]) => v));
    const last = median(pts.filter(([t]) => t >= (end * 3) / 4).map(([, v]) => v));
    const change = last - first;
    const relative = first ? change / first : change ? Infinity : 0;
    const held = Math.abs(change) <= se.absTolerance || Math.abs(relative) <= 0.05;
    return [
      {
        series: se.name,
        unit: se.unit,
        first,
        last,
        min: Math.min(...pts.map(([, v]) => v)),
        max: Math.max(...pts.map(([, v]) => v)),
        change,
        relative,
        slopePerHour: slopePerHour(pts.filter(([t]) => t >= end / 2)),
        verdict: !se.judged ? 'shown' : held ? 'flat' : change > 0 ? 'grows' : 'shrinks',
      },
    ];
  });
}

const f = (x: number | undefined, d = 0) =>
  x === undefined || Number.isNaN(x) ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const digits = (unit: string) => (unit === 'MiB' || unit === 'ms' ? 1 : 0);

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function soakMarkdown(run: SoakRun): string {
  const { info, config: c, samples } = run;
  const last = samples.at(-1);
  const fl = flatness(samples);
  const t = last?.traffic;
  const minutes = last ? last.t / 60 : 0;
  const lines = [
    `# weir soak: ${f(minutes, 1)} minutes of churn`,
    '',
    `- command: \`${info.command}\``,
    `- machine: ${info.machine}; started ${info.started}; ${f(info.seconds)} s in all (lab setup and teardown included)`,
    `- daemon: \`weir daemon ${info.daemonArgs}\` in one lab node, fed by the fake API server (test/k8s) over the lab underlay`,
    `- churn: ${f(c.services)} ClusterIP services × ${c.endpointsPerService} endpoints, ${c.endpointChangesPerSecond} endpoint changes/s (one endpoint of a slice replaced per change, ` +
      `applied in batches every 100 ms); one Service deleted or re-created every ${c.serviceChangeSeconds} s; a NetworkPolicy change every ${c.policyChangeSeconds} s ` +
      `(a policy on the measured service's pods rewritten or deleted, a policy over ${c.pods} remote pods rewritten, one of those pods relabelled)`,
    `- traffic through the ClusterIP (3 backend pods, a NetworkPolicy allowing the client): ${c.connectionsPerSecond} new TCP connections/s (connect, a line, its echo, close) ` +
      `and ${c.streams} long-lived streams (a request every ${c.streamIntervalMs} ms, each reply awaited)`,
    `- sampled every ${c.sampleSeconds} s: the daemon's RSS and fds (/proc), entries of every hash/LRU/LPM map under its pin directory, /healthz (worst of 3) and /metrics`,
    ...(info.endedEarly ? [`- **ended early**: ${info.endedEarly}`] : []),
    '',
    '## Flat or not (median of the first quarter against the last quarter)',
    '',
    "Flat: the last quarter within 5% of the first, or within the series' absolute tolerance (a count moving by a few entries). Slope: least squares over the second half, per hour.",
    '',
    table(
      ['series', 'first quarter', 'last quarter', 'change', 'min – max', 'slope / h (2nd half)', 'verdict'],
      fl.map((r) => {
        const d = digits(r.unit);
        return [
          `${r.series} (${r.unit})`,
          f(r.first, d),
          f(r.last, d),
          `${r.change >= 0 ? '+' : ''}${f(r.change, d)} (${Number.isFinite(r.relative) ? `${r.relative >= 0 ? '+' : ''}${(r.relative * 100).toFixed(1)}%` : '–'})`,
          `${f(r.min, d)} – ${f(r.max, d)}`,
          f(r.slopePerHour, d),
          r.verdict === 'flat' || r.verdict === 'shown' ? r.verdict : `**${r.verdict}**`,
        ];
      }),
    ),
    '',
  ];
  if (last) {
    const ch = last.churn;
    lines.push(
      '## Churn and traffic, totals',
      '',
      `- endpoint changes applied: ${f(ch.endpointChanges)} (${f(ch.endpointChanges / Math.max(1, last.t), 1)}/s; ${f(ch.skippedTicks)} ticks skipped while the previous apply was in flight), ` +
        `service deletions/re-creations: ${f(ch.serviceChanges)}, policy changes: ${f(ch.policyChanges)}, failed control calls: ${f(ch.applyErrors)}`,
      `- daemon log: ${f(last.log.lines)} lines, ${f(last.log.syncs)} \`event=sync\`, ${f(last.log.warn)} warn, ${f(last.log.error)} error; peak RSS (VmHWM) ${f(last.hwmKiB / 1024, 1)} MiB`,
    );
    if (t) {
      const errs = Object.entries(t.connections.errors)
        .map(([k, v]) => `${k} ${f(v)}`)
        .join(', ');
      lines.push(
        `- new connections: ${f(t.connections.started)} started, ${f(t.connections.ok)} answered, **${f(t.connections.failed)} failed**${errs ? ` (${errs})` : ''}`,
        `- streams: ${f(t.streams.sent)} requests, ${f(t.streams.received)} replies, ${f(t.streams.broken)} broken, longest wait for a reply ${f(t.streams.maxGapMs)} ms`,
      );
    }
    lines.push('', '## Every map (entries at the first and the last sample)', '');
    const first = samples[0]!;
    lines.push(
      table(
        ['map', 'first', 'last', 'max'],
        Object.keys(last.maps)
          .sort()
          .map((k) => [k, f(first.maps[k]), f(last.maps[k]), f(Math.max(...samples.map((s) => s.maps[k] ?? 0)))]),
      ),
      '',
    );
  }
  return lines.join('\n');
}

/** One small panel per series (value against minutes, the y axis from 0 so a flat line looks flat), the first and last quarters shaded. */
export function soakSvg(run: SoakRun): string {
  const cols = 3;
  const pw = 300;
  const ph = 150;
  const gap = { x: 30, y: 70 };
  const rows = Math.ceil(SERIES.length / cols);
  const W = cols * (pw + gap.x) + 40;
  const H = rows * (ph + gap.y) + 50;
  const end = Math.max(1, ...run.samples.map((s) => s.t));
  const fl = flatness(run.samples);
  const parts: string[] = [];
  SERIES.forEach((se, i) => {
    const x0 = 60 + (i % cols) * (pw + gap.x);
    const y0 = 60 + Math.floor(i / cols) * (ph + gap.y);
    const pts = run.samples.map((s) => [s.t, se.get(s)] as const).filter((p): p is readonly [number, number] => p[1] !== undefined);
    const ymax = Math.max(1e-9, ...pts.map(([, v]) => v)) * 1.15;
    const xs = (t: number) => x0 + (t / end) * pw;
    const ys = (v: number) => y0 + ph - (v / ymax) * ph;
    const verdict = fl.find((r) => r.series === se.name);
    const color = verdict?.verdict === 'grows' || verdict?.verdict === 'shrinks' ? '#d95f02' : '#1b9e77';
    parts.push(
      `<rect x="${x0}" y="${y0}" width="${pw / 4}" height="${ph}" fill="#f3f3f3"/>`,
      `<rect x="${x0 + (pw * 3) / 4}" y="${y0}" width="${pw / 4}" height="${ph}" fill="#f3f3f3"/>`,
      `<text x="${x0}" y="${y0 - 10}" font-size="12" font-weight="bold">${se.name} (${se.unit})${verdict ? ` — ${verdict.verdict}` : ''}</text>`,
      `<line x1="${x0}" y1="${y0 + ph}" x2="${x0 + pw}" y2="${y0 + ph}" stroke="#000"/>`,
      `<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y0 + ph}" stroke="#000"/>`,
    );
    for (let k = 0; k <= 2; k++) {
      const v = (ymax * k) / 2;
      parts.push(`<text x="${x0 - 5}" y="${ys(v) + 4}" font-size="9" text-anchor="end">${f(v, v < 10 && v > 0 ? 1 : 0)}</text>`);
    }
    for (let k = 0; k <= 4; k++)
      parts.push(`<text x="${xs((end * k) / 4)}" y="${y0 + ph + 13}" font-size="9" text-anchor="middle">${f((end * k) / 4 / 60, 0)}</text>`);
    if (pts.length)
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.map(([t, v]) => `${xs(t).toFixed(1)},${ys(v).toFixed(1)}`).join(' ')}"/>`,
      );
  });
  const title = `weir soak: ${f(end / 60, 0)} min of churn (${run.config.endpointChangesPerSecond} endpoint changes/s, a policy change every ${run.config.policyChangeSeconds} s, ${run.config.connectionsPerSecond} conn/s + ${run.config.streams} streams) — ${run.info.started}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" font-size="14" text-anchor="middle">${title}</text>`,
    `<text x="${W / 2}" y="${H - 10}" font-size="11" text-anchor="middle">x: minutes; grey: the first and last quarters compared in soak.md</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
