// bench: `make soak`: an hour of churn on one weir node (issue 16, must-show 6). `weir daemon
// --kubeconfig` in a lab node reads the fake API server (test/k8s, its own lab namespace on the
// underlay) while this process rewrites EndpointSlices at 50 changes/s, deletes and re-creates a
// Service every few seconds and changes NetworkPolicies and pod labels every few seconds, and a
// client pod (bench/soak-client.ts) opens new connections at a steady rate and keeps a few
// streams through the ClusterIP of three backend pods that a NetworkPolicy guards. Every sample
// reads the daemon's RSS and open fds from /proc, the entries of every hash/LRU/LPM map under its
// pin directory, /healthz (event-loop lag shows there) and /metrics; bench/soak-report.ts says
// whether each stayed flat and draws the curves. Results: bench/results/<SOAK_OUT>.{md,json,svg}.
//
//   SOAK_MINUTES=60 (default) SOAK_SAMPLE_SECONDS=20 SOAK_SERVICES=500 SOAK_ENDPOINT_RATE=50
//   SOAK_POLICY_SECONDS=5 SOAK_SERVICE_SECONDS=10 SOAK_CONN_RATE=20 SOAK_STREAMS=4 SOAK_PODS=200
//   SOAK_OUT=soak (default: soak for an hour or more, soak-<N>min below)
//   node --enable-source-maps dist/bench/soak.js
// SIGUSR1 ends the churn early and writes the report of what ran (SIGINT/SIGTERM only clean up).

import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { BpfMap } from '../src/bpf/index.js';
import type { KubeObject } from '../test/k8s/fake-apiserver.js';
import { kubeLab, svcIp, type KubeLab } from '../test/lab/kube-lab.js';
import { exitAfter } from '../test/lib/cleanup.js';
import type { ManagedProcess } from '../test/lib/lab.js';
import { sleep } from '../test/lib/proc.js';
import type { SoakTraffic } from './soak-client.js';
import { soakMarkdown, soakSvg, type SoakConfig, type SoakRun, type SoakSample } from './soak-report.js';
import { ROOT } from './tools.js';

const num = (name: string, dflt: number) => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`${name}=${v}: want a positive number`);
  return n;
};
const minutes = num('SOAK_MINUTES', 60);
const config: SoakConfig = {
  minutes,
  sampleSeconds: num('SOAK_SAMPLE_SECONDS', minutes >= 30 ? 20 : 10),
  services: num('SOAK_SERVICES', 500),
  endpointsPerService: 10,
  endpointChangesPerSecond: num('SOAK_ENDPOINT_RATE', 50),
  policyChangeSeconds: num('SOAK_POLICY_SECONDS', 5),
  serviceChangeSeconds: num('SOAK_SERVICE_SECONDS', 10),
  connectionsPerSecond: num('SOAK_CONN_RATE', 20),
  streams: num('SOAK_STREAMS', 4),
  streamIntervalMs: 100,
  pods: num('SOAK_PODS', 200),
};
const OUT = process.env.SOAK_OUT || (minutes >= 60 ? 'soak' : `soak-${minutes}min`);
const RESULTS = join(ROOT, 'bench', 'results');
const SOAK_CLIENT_JS = join(ROOT, 'dist', 'bench', 'soak-client.js');
const log = (line: string) => console.error(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`);

// addresses: filler ClusterIPs svcIp(i) (198.19.0.0/17), filler endpoints and remote pods from
// 198.19.128.0/17, the measured service's ClusterIP below both; the lab's pods are in 198.18.1.0/24
const WEB_IP = '198.19.127.1';
const POOL = 2 * 10; // each filler service's endpoints are 10 consecutive of its 20 addresses
const poolIp = (n: number) => `198.19.${128 + Math.floor(n / 250)}.${(n % 250) + 1}`;
if (config.services * POOL + config.pods > 127 * 250) throw new Error('SOAK_SERVICES/SOAK_PODS: more addresses than 198.19.128.0/17 holds');
const remotePodIp = (j: number) => poolIp(config.services * POOL + j);

const meta = (kind: string, apiVersion: string, namespace: string, name: string, labels?: Record<string, string>) => ({
  apiVersion,
  kind,
  metadata: { name, namespace, ...(labels ? { labels } : {}) },
});
const namespace = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } });
const pod = (ns: string, name: string, ip: string, nodeName: string, labels: Record<string, string>): KubeObject => ({
  ...meta('Pod', 'v1', ns, name, labels),
  spec: { nodeName, containers: [{ name: 'c', image: 'weir.invalid/echo', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
});
const svc = (ns: string, name: string, ip: string, port: number, targetPort: number): KubeObject => ({
  ...meta('Service', 'v1', ns, name),
  spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ports: [{ name: 'http', port, protocol: 'TCP', targetPort }] },
});
const slice = (ns: string, service: string, name: string, ips: string[], port: number): KubeObject => ({
  ...meta('EndpointSlice', 'discovery.k8s.io/v1', ns, name, { 'kubernetes.io/service-name': service }),
  addressType: 'IPv4',
  endpoints: ips.map((a) => ({ addresses: [a], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node2' })),
  ports: [{ name: 'http', port, protocol: 'TCP' }],
});
const netpol = (ns: string, name: string, spec: object): KubeObject => ({ ...meta('NetworkPolicy', 'networking.k8s.io/v1', ns, name), spec });

/** filler service i with its endpoint window at `offset` */
const filler = (i: number) => svc('fill', `svc-${i}`, svcIp(i), 80, 8080);
const fillerSlice = (i: number, offset: number) =>
  slice(
    'fill',
    `svc-${i}`,
    `svc-${i}-1`,
    Array.from({ length: 10 }, (_, k) => poolIp(i * POOL + ((offset + k) % POOL))),
    8080,
  );
const remotePod = (j: number, app: number) => pod('fill', `p-${j}`, remotePodIp(j), 'node2', { app: `a${app}` });

/** The churned policies at generation g: one over the measured pods (the client stays allowed by web-allow), one over the remote pods. */
function policyChange(g: number): { apply: KubeObject[]; remove: { kind: 'NetworkPolicy'; namespace: string; name: string }[] } {
  const web =
    g % 4 === 3
      ? []
      : [
          netpol('soak', 'churn', {
            podSelector: { matchLabels: { app: 'web' } },
            policyTypes: ['Ingress'],
            ingress: [{ from: [{ ipBlock: { cidr: `198.18.${100 + (g % 100)}.0/24` } }], ports: [{ protocol: 'TCP', port: 8080 + (g % 3) }] }],
          }),
        ];
  const fill = netpol('fill', 'churn', {
    podSelector: { matchLabels: { app: `a${g % 10}` } },
    policyTypes: ['Ingress', 'Egress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: `a${(g + 1) % 10}` } } }], ports: [{ protocol: 'TCP', port: 'http' }] }],
    egress: [{ to: [{ ipBlock: { cidr: `198.19.${128 + (g % 40)}.0/24` } }] }],
  });
  return {
    apply: [...web, fill, remotePod(g % config.pods, (g * 7) % 10)],
    remove: g % 4 === 3 ? [{ kind: 'NetworkPolicy', namespace: 'soak', name: 'churn' }] : [],
  };
}

/** The daemon's node process: nsenter and bin/weir exec, so the spawned pid is node itself. */
function daemonPid(p: ManagedProcess): number {
  const comm = readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim();
  if (comm !== 'node' && comm !== 'MainThread') throw new Error(`pid ${p.pid} is ${comm}, not node`);
  return p.pid;
}

function procStatus(pid: number): { rssKiB: number; hwmKiB: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKiB: kb('VmRSS'), hwmKiB: kb('VmHWM') };
}

/** Entries of every keyed map pinned in `dir` (arrays report max_entries, ring buffers nothing: left out). */
function mapEntries(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (!statSync(path).isFile()) continue;
    let m: BpfMap;
    try {
      m = BpfMap.openPinned(path);
    } catch {
      continue; // a pinned program or link
    }
    try {
      if (/hash|lru|lpm/.test(m.type)) out[name] = m.count();
    } finally {
      m.close();
    }
  }
  return out;
}

async function curlTime(k: KubeLab, path: string): Promise<{ ms: number; status: number; body: string }> {
  const r = await k.weir.ns.exec('curl', ['-sS', '-m', '10', '-o', '-', '-w', '\n%{http_code} %{time_total}', `http://127.0.0.1:9745${path}`], {
    check: false,
    timeoutMs: 15_000,
  });
  const i = r.stdout.lastIndexOf('\n');
  const [status, secs] = r.stdout.slice(i + 1).split(' ');
  return { ms: Number(secs) * 1000, status: Number(status), body: r.stdout.slice(0, Math.max(0, i)) };
}

/** Node's heap and event-loop figures from a /metrics body (prom-client's default metrics). */
function nodeFigures(body: string): SoakSample['node'] {
  const v = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(body)?.[1] ?? NaN);
  const r = {
    heapUsedMiB: v('nodejs_heap_size_used_bytes') / 2 ** 20,
    heapTotalMiB: v('nodejs_heap_size_total_bytes') / 2 ** 20,
    externalMiB: v('nodejs_external_memory_bytes') / 2 ** 20,
    lagP99Ms: v('nodejs_eventloop_lag_p99_seconds') * 1000,
    lagMaxMs: v('nodejs_eventloop_lag_max_seconds') * 1000,
  };
  return Number.isFinite(r.heapUsedMiB) ? r : undefined;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('soak needs root (network namespaces, BPF, cgroups)');
    return 1;
  }
  const started = Date.now();
  const daemonArgs = ['--network-policy', 'on'];
  const k = await kubeLab('soak', { weir: { logLevel: 'info', extraArgs: daemonArgs } });
  const client = await k.lab.pod(k.node, 'client');
  const backends = [await k.lab.pod(k.node, 'be0'), await k.lab.pod(k.node, 'be1'), await k.lab.pod(k.node, 'be2')];
  for (const b of backends) await b.ns.echoServer({ name: b.name, port: 8080, tcp: true });

  const offsets = new Array<number>(config.services).fill(0);
  const objects: KubeObject[] = [
    namespace('soak'),
    namespace('fill'),
    pod('soak', 'client', client.ip, 'node1', { role: 'client' }),
    ...backends.map((b) => pod('soak', b.name, b.ip, 'node1', { app: 'web' })),
    svc('soak', 'web', WEB_IP, 80, 8080),
    slice(
      'soak',
      'web',
      'web-1',
      backends.map((b) => b.ip),
      8080,
    ),
    netpol('soak', 'web-allow', {
      podSelector: { matchLabels: { app: 'web' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }],
    }),
    ...Array.from({ length: config.pods }, (_, j) => remotePod(j, j % 10)),
    ...Array.from({ length: config.services }, (_, i) => [filler(i), fillerSlice(i, 0)]).flat(),
    ...policyChange(0).apply,
  ];
  // the web slice's endpoints sit on node1, not node2 as the fillers'
  (objects.find((o) => o.kind === 'EndpointSlice' && (o.metadata as { name: string }).name === 'web-1')!.endpoints as { nodeName: string }[]).forEach(
    (e) => (e.nodeName = 'node1'),
  );
  await k.server.apply(objects);
  const ready = await k.weir.start(60_000);
  log(`daemon ready (${ready.ms ?? '?'} ms): ${config.services} services × 10 endpoints, ${config.pods} remote pods`);
  const pid = daemonPid(k.weir.process!);

  // the daemon's log, counted as it comes (the process keeps only the last MiB of it)
  const logCount = { lines: 0, warn: 0, error: 0, syncs: 0 };
  let partial = '';
  k.weir.process!.child.stdout!.on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      logCount.lines++;
      if (l.includes('level=warn')) logCount.warn++;
      else if (l.includes('level=error')) logCount.error++;
      if (l.includes('event=sync ')) logCount.syncs++;
    }
  });

  const traffic = client.ns.spawn(
    process.execPath,
    [
      SOAK_CLIENT_JS,
      '--host',
      WEB_IP,
      '--port',
      '80',
      '--rate',
      String(config.connectionsPerSecond),
      '--streams',
      String(config.streams),
      '--interval',
      String(config.streamIntervalMs),
      '--report',
      '5',
    ],
    { label: 'soak-client' },
  );
  const lastTraffic = (): SoakTraffic | undefined => {
    const line = traffic.stdout.trim().split('\n').at(-1);
    return line?.startsWith('{') ? (JSON.parse(line) as SoakTraffic) : undefined;
  };

  // churn: every 100 ms a batch of the endpoint changes due by the clock (a timer that fires late
  // on a loaded machine does not lower the rate; a catch-up batch is at most 1 s of changes), none
  // while the previous batch is in flight
  const churn = { endpointChanges: 0, serviceChanges: 0, policyChanges: 0, applyErrors: 0, skippedTicks: 0 };
  let removed: number | undefined;
  let cursor = 0;
  let inFlight = false;
  let issued = 0;
  const churnStart = Date.now();
  const fail = (what: string) => (e: unknown) => {
    churn.applyErrors++;
    if (churn.applyErrors <= 5) log(`${what}: ${(e as Error).message}`);
  };
  const endpointTimer = setInterval(() => {
    if (inFlight) return void churn.skippedTicks++;
    const due = Math.floor((config.endpointChangesPerSecond * (Date.now() - churnStart)) / 1000) - issued;
    const batch: KubeObject[] = [];
    for (let n = Math.min(due, config.endpointChangesPerSecond); n > 0; n--) {
      let i = cursor++ % config.services;
      if (i === removed) i = cursor++ % config.services;
      offsets[i]!++;
      batch.push(fillerSlice(i, offsets[i]!));
    }
    issued += Math.max(0, due);
    if (!batch.length) return;
    inFlight = true;
    k.server
      .apply(batch)
      .then(() => (churn.endpointChanges += batch.length))
      .catch(fail('endpoint change'))
      .finally(() => (inFlight = false));
  }, 100);
  // a Service deleted, then re-created with its slice the next time, then the next one
  const serviceTimer = setInterval(() => {
    const r = removed;
    const call =
      r === undefined
        ? k.server
            .delete([
              { kind: 'Service', namespace: 'fill', name: `svc-${(removed = churn.serviceChanges % config.services)}` },
              { kind: 'EndpointSlice', namespace: 'fill', name: `svc-${removed}-1` },
            ])
            .then(() => undefined)
        : k.server.apply([filler(r), fillerSlice(r, offsets[r]!)]).then(() => (removed = undefined));
    call.then(() => churn.serviceChanges++).catch(fail('service change'));
  }, config.serviceChangeSeconds * 1000);
  let generation = 0;
  const policyTimer = setInterval(() => {
    const c = policyChange(++generation);
    Promise.all([k.server.apply(c.apply), c.remove.length ? k.server.delete(c.remove) : undefined])
      .then(() => churn.policyChanges++)
      .catch(fail('policy change'));
  }, config.policyChangeSeconds * 1000);

  let endedEarly: string | undefined;
  let stop = false;
  process.once('SIGUSR1', () => {
    endedEarly = 'SIGUSR1 (asked to stop)';
    stop = true;
  });

  const t0 = Date.now();
  const end = t0 + minutes * 60_000;
  const samples: SoakSample[] = [];
  const sample = async (): Promise<SoakSample> => {
    const t = (Date.now() - t0) / 1000;
    const st = procStatus(pid);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    const maps = mapEntries(k.weir.pinDir);
    let healthzMs = 0;
    for (let n = 0; n < 3; n++) {
      const h = await curlTime(k, '/healthz');
      healthzMs = Math.max(healthzMs, h.status === 200 ? h.ms : 10_000);
    }
    const m = await curlTime(k, '/metrics');
    const tr = lastTraffic();
    const nf = nodeFigures(m.body);
    return {
      t,
      ...st,
      fds,
      maps,
      healthzMs,
      metricsMs: m.ms,
      metricsLines: m.body.split('\n').filter((l) => l && !l.startsWith('#')).length,
      ...(nf ? { node: nf } : {}),
      ...(tr ? { traffic: tr } : {}),
      churn: { ...churn },
      log: { ...logCount },
      load1: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
    };
  };

  try {
    while (!stop && Date.now() < end) {
      if (!k.weir.process!.running) {
        endedEarly = `the daemon exited: ${JSON.stringify(k.weir.process!.exitStatus)}\n${k.weir.runLines().slice(-5).join('\n')}`;
        break;
      }
      const s = await sample();
      samples.push(s);
      const tr = s.traffic;
      log(
        `t=${Math.round(s.t)}s rss=${(s.rssKiB / 1024).toFixed(1)}MiB heap=${s.node?.heapUsedMiB.toFixed(1) ?? '?'}MiB fds=${s.fds} ct=${Object.entries(s.maps)
          .filter(([n]) => n.startsWith('weir_ct'))
          .reduce((a, [, v]) => a + v, 0)} healthz=${s.healthzMs.toFixed(1)}ms ` +
          `ep=${s.churn.endpointChanges} pol=${s.churn.policyChanges} conn ok=${tr?.connections.ok ?? 0} failed=${tr?.connections.failed ?? 0} ` +
          `streams broken=${tr?.streams.broken ?? 0} gap=${tr?.streams.windowMaxGapMs ?? 0}ms load=${s.load1}`,
      );
      const next = t0 + samples.length * config.sampleSeconds * 1000;
      while (!stop && Date.now() < Math.min(next, end)) await sleep(Math.min(500, Math.min(next, end) - Date.now()));
    }
  } finally {
    clearInterval(endpointTimer);
    clearInterval(serviceTimer);
    clearInterval(policyTimer);
  }
  if (k.weir.process!.running && samples.length) samples.push(await sample());
  await traffic.stop();

  const run: SoakRun = {
    info: {
      command: `make soak  (SOAK_MINUTES=${minutes} node --enable-source-maps dist/bench/soak.js)`,
      machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average at the end ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
      started: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
      seconds: (Date.now() - started) / 1000,
      daemonArgs: k.weir.args().join(' '),
      ...(endedEarly ? { endedEarly } : {}),
    },
    config,
    samples,
  };
  writeFileSync(join(RESULTS, `${OUT}.json`), JSON.stringify(run, null, 1) + '\n');
  writeFileSync(join(RESULTS, `${OUT}.md`), soakMarkdown(run));
  writeFileSync(join(RESULTS, `${OUT}.svg`), soakSvg(run));
  console.log(soakMarkdown(run));
  log(`wrote bench/results/${OUT}.{md,json,svg}`);
  await k.lab.destroy();
  return endedEarly && !endedEarly.startsWith('SIGUSR1') ? 1 : 0;
}

await exitAfter(main);
