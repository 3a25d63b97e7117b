// cli/status: `weir status`: the daemon's /healthz and /readyz for humans, plus a few
// headline figures from /metrics (frontends in total and per family, from the entries of
// weir_frontend4 / weir_frontend6; the Kubernetes API connectivity from weir_k8s_api_*).
// Exit 0 when healthy and ready, 1 otherwise.

import type { Command } from 'commander';
import { document, NoStateError, outputOption, type OutputFormat } from './output.js';

interface Status {
  address: string;
  healthy: boolean;
  ready: boolean;
  problems: string[];
  frontends?: number;
  /** entries of each family's frontend map (weir_map_entries), where the daemon exports them */
  frontendsByFamily?: Record<string, number>;
  syncs?: number;
  repairs?: number;
  /** with the API source: connected, or unreachable since the last successful exchange */
  kubernetesApi?: ApiConnectivity;
  /** host protection (issue 17), when the daemon enforces it */
  hostPolicy?: HostPolicyStatus;
}

interface HostPolicyStatus {
  endpoints: number;
  rules: number;
  /** host interface -> the XDP prefilter's mode; interfaces not listed: TC does the prefilter's work */
  xdp: Record<string, string>;
}

/** weir_host_endpoints, weir_host_policy_rules and weir_xdp_attached{interface,mode} (absent: host policy off). */
function hostPolicy(metrics: string): HostPolicyStatus | undefined {
  const endpoints = sample(metrics, 'weir_host_endpoints');
  if (endpoints === undefined) return undefined;
  const xdp: Record<string, string> = {};
  for (const m of metrics.matchAll(/^weir_xdp_attached\{interface="([^"]*)",mode="([^"]*)"\} 1$/gm)) xdp[m[1]!] = m[2]!;
  return { endpoints, rules: sample(metrics, 'weir_host_policy_rules') ?? 0, xdp };
}

interface ApiConnectivity {
  state: 'ok' | 'unreachable';
  /** the last successful exchange (RFC 3339), absent before the first */
  lastContact?: string;
  /** seconds since lastContact, when unreachable */
  unreachableSeconds?: number;
}

/** weir_k8s_api_connected and _last_contact_timestamp_seconds (absent with the manifests source). */
function apiConnectivity(metrics: string, now = Date.now()): ApiConnectivity | undefined {
  const connected = sample(metrics, 'weir_k8s_api_connected');
  if (connected === undefined) return undefined;
  const last = sample(metrics, 'weir_k8s_api_last_contact_timestamp_seconds');
  const lastContact = last !== undefined ? { lastContact: new Date(last * 1000).toISOString() } : {};
  if (connected === 1) return { state: 'ok', ...lastContact };
  return { state: 'unreachable', ...lastContact, ...(last !== undefined ? { unreachableSeconds: Math.max(0, Math.round(now / 1000 - last)) } : {}) };
}

/** 185 → "3m 5s" */
function duration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [h ? `${h}h` : '', h || m ? `${m}m` : '', `${s}s`].filter(Boolean).join(' ');
}

function apiLine(a: ApiConnectivity): string {
  if (a.state === 'ok') return 'ok';
  if (a.lastContact === undefined) return 'unreachable, never reached since the daemon started';
  return `unreachable since ${a.lastContact} (${duration(a.unreachableSeconds ?? 0)})`;
}

/** The sum of a metric's samples, or of those whose labels include `labels` (`map="x"`). */
function sample(text: string, name: string, labels?: string): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labels && !(rest[0] === '{' && rest.slice(1, rest.indexOf('}')).split(',').includes(labels))) continue;
    sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Frontends per family: the entries of weir_frontend4 and weir_frontend6 (absent: not exported). */
function frontendsByFamily(metrics: string): Record<string, number> | undefined {
  const out: Record<string, number> = {};
  for (const f of [4, 6]) {
    const n = sample(metrics, 'weir_map_entries', `map="weir_frontend${f}"`);
    if (n !== undefined) out[`IPv${f}`] = n;
  }
  return Object.keys(out).length ? out : undefined;
}

export async function readStatus(address: string, timeoutMs = 3000): Promise<Status> {
  const base = `http://${address.startsWith(':') ? `127.0.0.1${address}` : address}`;
  const get = async (path: string) => {
    try {
      const r = await fetch(base + path, { signal: AbortSignal.timeout(timeoutMs) });
      return { status: r.status, body: await r.text() };
    } catch (e) {
      // status reads the daemon, not the pins: nobody answering is its "no weir state" (same exit code)
      const why = (e as Error).cause ? String(((e as Error).cause as Error).message ?? (e as Error).cause) : (e as Error).message;
      throw new NoStateError(`no weir daemon answering at ${base}${path}: ${why} (is the daemon running on this node? --address)`);
    }
  };
  const [health, ready, metrics] = await Promise.all([get('/healthz'), get('/readyz'), get('/metrics')]);
  const problems = [...health.body.split('\n'), ...ready.body.split('\n')].map((l) => l.trim()).filter((l) => l && l !== 'ok');
  const s: Status = { address: base, healthy: health.status === 200, ready: ready.status === 200, problems };
  const frontends = sample(metrics.body, 'weir_frontends');
  const byFamily = frontendsByFamily(metrics.body);
  const syncs = sample(metrics.body, 'weir_sync_duration_seconds_count');
  const repairs = sample(metrics.body, 'weir_resync_repairs_total');
  const api = apiConnectivity(metrics.body);
  const hp = hostPolicy(metrics.body);
  return {
    ...s,
    ...(frontends !== undefined ? { frontends } : {}),
    ...(byFamily ? { frontendsByFamily: byFamily } : {}),
    ...(syncs !== undefined ? { syncs } : {}),
    ...(repairs !== undefined ? { repairs } : {}),
    ...(api ? { kubernetesApi: api } : {}),
    ...(hp ? { hostPolicy: hp } : {}),
  };
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description("the daemon's health and readiness (its /healthz and /readyz), and headline figures; exit 1 unless healthy and ready")
    .option('--address <host:port>', "the daemon's --metrics-address", '127.0.0.1:9745')
    .addOption(outputOption())
    .action(async (o: { address: string; output: OutputFormat }) => {
      const s = await readStatus(o.address);
      if (o.output !== 'table') process.stdout.write(document(o.output, s) + '\n');
      else {
        const lines = [`weir at ${s.address}: ${s.healthy ? 'healthy' : 'UNHEALTHY'}, ${s.ready ? 'ready' : 'NOT READY'}`];
        if (s.frontends !== undefined) {
          const families = Object.entries(s.frontendsByFamily ?? {}).map(([f, n]) => `${f} ${n}`);
          lines.push(`  frontends programmed: ${s.frontends}${families.length ? ` (${families.join(', ')})` : ''}`);
        }
        if (s.syncs !== undefined) lines.push(`  syncs: ${s.syncs}, resync repairs: ${s.repairs ?? 0}`);
        if (s.kubernetesApi) lines.push(`  kubernetes API: ${apiLine(s.kubernetesApi)}`);
        if (s.hostPolicy) {
          const xdp = Object.entries(s.hostPolicy.xdp).map(([i, m]) => `${i} ${m}`);
          lines.push(`  host policy: ${s.hostPolicy.endpoints} host endpoints, ${s.hostPolicy.rules} rules; XDP: ${xdp.length ? xdp.join(', ') : 'none (TC)'}`);
        }
        for (const p of s.problems) lines.push(`  ${p}`);
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (!s.healthy || !s.ready) process.exitCode = 1;
    });
}
