// bench/startup: start-up and memory at scale (issue 16, must-show 4). N Services x M endpoints
// (one port each, one EndpointSlice each) reach a fresh `weir daemon` in a lab node (its own
// netns, bpffs and cgroup) through each source:
// - manifests: files of 1,000 Services with their slices, JSON documents separated by `---`;
// - api: the fake API server (test/k8s, the real list/watch protocol in pages of 500) in its own
//   lab namespace, read through --kubeconfig, as bench/memory.ts does.
// Timed from spawning the daemon to its `event=ready` line (every object listed, the maps
// programmed, the programs attached); VmRSS and VmHWM of the daemon read from /proc at ready.
// Every round gets a fresh lab, so each start is a first start (no pinned maps to adopt).
//
//   node dist/bench/startup.js [--sizes 10000x10,50000x10] [--sources manifests,api] [--rounds 2]
//                              [--node-flags '--cpu-prof --cpu-prof-dir=/tmp/prof'] [--out bench/results/startup]

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { KubeObject } from '../test/k8s/fake-apiserver.js';
import { endpointSlice, kubeLab, service } from '../test/lab/kube-lab.js';
import { onCleanup, runCleanups } from '../test/lib/cleanup.js';
import { Lab } from '../test/lib/lab.js';
import { repoRoot } from '../test/lib/paths.js';
import { WeirNode, type LogLine, type WeirNodeOptions } from '../test/lib/weir-node.js';

export type StartupSource = 'manifests' | 'api';

export interface StartupRun {
  source: StartupSource;
  services: number;
  endpointsPerService: number;
  round: number;
  /** spawn of `weir daemon` → its ready line seen, ms (wall clock, polled every 25 ms) */
  readyMs: number;
  /** the daemon's own `ready ms=` (its start(): BPF load, source, first sync, attach) */
  daemonMs: number;
  /** the first full sync (`event=sync reason=start ms=`): model and map writes */
  startSyncMs: number;
  /** CPU time of the daemon process (all threads, user + system) at ready, ms: steadier than
   *  the wall clock on a shared machine, where the daemon waits for a core */
  cpuMs: number;
  /** VmRSS and VmHWM of the daemon at ready, MiB */
  rssMiB: number;
  hwmMiB: number;
  frontends: number;
  writes: number;
}

export interface StartupOptions {
  sizes: readonly (readonly [number, number])[];
  sources: readonly StartupSource[];
  rounds: number;
  /** node/V8 flags for the daemon (e.g. --cpu-prof --cpu-prof-dir=DIR) */
  nodeFlags?: string;
  /** keep each daemon's log lines here (<source>-<N>x<M>-<round>.log) */
  logDir?: string;
  log?: (line: string) => void;
}

// Addresses: the lab's underlay is 198.18.0.0/24 and node1's pods 198.18.1.0/24; ClusterIPs
// take the rest of 198.18.0.0/16 (65,024 of them), backends 198.19.0.0/16 (an address may back
// several Services, on another port: 500,000 endpoints do not fit in a /16).
const clusterIp = (s: number) => `198.18.${2 + (s >> 8)}.${s & 255}`;
const backendIp = (n: number) => `198.19.${(n >> 8) & 255}.${n & 255}`;
const nsOf = (s: number) => `ns-${s % 100}`;

/** The Services and EndpointSlices of an N x M run, in the order they are written or served. */
export function* objects(n: number, m: number): Generator<KubeObject> {
  if (n > 65_024) throw new Error(`at most 65,024 services (ClusterIPs in 198.18.2.0-198.18.255.255), got ${n}`);
  for (let s = 0; s < n; s++) {
    const port = 8000 + Math.floor((s * m) / 65_536);
    yield service(nsOf(s), `svc-${s}`, clusterIp(s), 80, port);
    yield endpointSlice(
      nsOf(s),
      `svc-${s}`,
      `svc-${s}-a`,
      Array.from({ length: m }, (_, j) => backendIp(s * m + j)),
      port,
    );
  }
}

/** A bin/weir that runs node with more `flags` (NODE_OPTIONS may not carry V8 flags), as WeirNode's releaseDir. */
function launcher(flags: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-startup-'));
  mkdirSync(join(dir, 'bin'));
  // as bin/weir runs it (its malloc arena cap and V8 flags), then `flags` (later flags win)
  const main = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
  const script = `#!/usr/bin/env bash\nexport MALLOC_ARENA_MAX="\${MALLOC_ARENA_MAX:-2}"\nexec node --max-semi-space-size=4 ${flags} --enable-source-maps ${main} "$@"\n`;
  writeFileSync(join(dir, 'bin', 'weir'), script, { mode: 0o755 });
  onCleanup(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** utime + stime of a process (every thread), ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 of stat (utime, stime), in clock ticks of 100 Hz
  return (Number(f[11]) + Number(f[12])) * 10;
}

function procMemory(pid: number): { rssMiB: number; hwmMiB: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

/** Starts the daemon, waits for ready, reads its memory, stops it. */
async function timeStart(weir: WeirNode, source: StartupSource, n: number, m: number, round: number, logDir?: string): Promise<StartupRun> {
  const t0 = performance.now();
  const ready: LogLine = await weir.start(10 * 60_000);
  const readyMs = performance.now() - t0;
  // bin/weir execs node and nsenter execs bin/weir: the spawned pid is the daemon's
  const mem = procMemory(weir.process!.pid);
  const cpu = cpuMs(weir.process!.pid);
  const run: StartupRun = {
    source,
    services: n,
    endpointsPerService: m,
    round,
    readyMs: Math.round(readyMs),
    daemonMs: Number(ready.ms),
    startSyncMs: Number(weir.events('sync').find((l) => l.reason === 'start')?.ms),
    cpuMs: cpu,
    rssMiB: Math.round(mem.rssMiB),
    hwmMiB: Math.round(mem.hwmMiB),
    frontends: Number(ready.frontends),
    writes: Number(ready.writes),
  };
  await weir.terminate();
  if (logDir) writeFileSync(join(logDir, `${source}-${n}x${m}-${round}.log`), weir.runLines().join('\n') + '\n');
  if (run.frontends < n) throw new Error(`${source} ${n}x${m}: ready with ${run.frontends} frontends, want ${n}`);
  return run;
}

async function runManifests(n: number, m: number, round: number, weirOpts: WeirNodeOptions, logDir?: string): Promise<StartupRun> {
  const lab = await Lab.create({ name: 'startup-mf' });
  try {
    const node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    const weir = await WeirNode.create(lab, node, weirOpts);
    let docs: string[] = [];
    let file = 0;
    const flush = () => {
      writeFileSync(join(weir.manifests, `objects-${String(file++).padStart(3, '0')}.yaml`), docs.join('\n---\n') + '\n');
      docs = [];
    };
    for (const o of objects(n, m)) {
      docs.push(JSON.stringify(o));
      if (docs.length === 2000) flush();
    }
    if (docs.length) flush();
    return await timeStart(weir, 'manifests', n, m, round, logDir);
  } finally {
    await lab.destroy();
  }
}

async function runApi(n: number, m: number, round: number, weirOpts: WeirNodeOptions, logDir?: string): Promise<StartupRun> {
  const k = await kubeLab('startup-api', { weir: weirOpts });
  try {
    let batch: KubeObject[] = [];
    for (const o of objects(n, m)) {
      batch.push(o);
      if (batch.length === 2000) {
        await k.server.apply(batch);
        batch = [];
      }
    }
    if (batch.length) await k.server.apply(batch);
    return await timeStart(k.weir, 'api', n, m, round, logDir);
  } finally {
    await k.lab.destroy();
  }
}

export async function runStartup(o: StartupOptions): Promise<StartupRun[]> {
  const log = o.log ?? ((l: string) => console.log(l));
  const weirOpts: WeirNodeOptions = {
    logLevel: 'info',
    connectTimeLb: 'on',
    metricsAddress: '127.0.0.1:9745',
    // the periodic resync reads every map back: not what is timed
    resyncInterval: '3600s',
    ...(o.nodeFlags ? { releaseDir: launcher(o.nodeFlags) } : {}),
  };
  const runs: StartupRun[] = [];
  for (const [n, m] of o.sizes) {
    for (const source of o.sources) {
      for (let r = 1; r <= o.rounds; r++) {
        const run = source === 'manifests' ? await runManifests(n, m, r, weirOpts, o.logDir) : await runApi(n, m, r, weirOpts, o.logDir);
        log(
          `# ${source} ${n}x${m} round ${r}: ready in ${run.readyMs} ms (daemon ${run.daemonMs} ms, first sync ${run.startSyncMs} ms, CPU ${run.cpuMs} ms), ` +
            `VmRSS ${run.rssMiB} MiB, VmHWM ${run.hwmMiB} MiB, ${run.frontends} frontends, ${run.writes} writes`,
        );
        runs.push(run);
      }
    }
  }
  return runs;
}

/** Aims of issue 16: ready within (ms) and RSS at ready under (MiB), per size. */
export const AIMS: Record<string, { readyMs: number; rssMiB: number }> = {
  '10000x10': { readyMs: 1000, rssMiB: 200 },
  '50000x10': { readyMs: 3000, rssMiB: 600 },
};

export function report(runs: readonly StartupRun[], notes: readonly string[] = []): string {
  const groups = new Map<string, StartupRun[]>();
  for (const r of runs) {
    const k = `${r.source} ${r.services}x${r.endpointsPerService}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const fmt = (xs: number[], unit: string) => {
    const lo = Math.round(Math.min(...xs));
    const hi = Math.round(Math.max(...xs));
    return lo === hi ? `${lo} ${unit}` : `${lo} ${unit} (max ${hi})`;
  };
  const lines = [
    '# weir start-up and memory at scale',
    '',
    `Generated by \`make bench-startup\` (bench/startup.ts) on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ` +
      `${Math.max(...runs.map((r) => r.round))} round(s) per row, each a fresh lab (first start, nothing pinned).`,
    '',
    'N ClusterIP Services x M endpoints, one port and one EndpointSlice each. **ready** is the wall clock from spawning `weir daemon` ' +
      'in a lab node to its `event=ready` line (polled every 25 ms): node start-up, loading and verifying the BPF objects, reading ' +
      'the source, the first full sync into the maps, attaching. **daemon** is the daemon’s own `ready ms=` (from its start(), ' +
      'node’s boot excluded), **sync** the first full sync alone (model and map writes), **CPU** the daemon’s user + system time at ' +
      'ready (every thread; the steadier figure where the daemon waits for a core). RSS is VmRSS of the daemon at ready, peak its VmHWM. The best round is shown, the worst in brackets: the machine has 2 cores shared with other work.',
    '',
    '| source | services x endpoints | ready | daemon | sync | CPU at ready | RSS at ready | peak RSS | aim: ready / RSS | met |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [k, rs] of groups) {
    const [source, size] = k.split(' ') as [string, string];
    const aim = AIMS[size];
    const best = Math.min(...rs.map((r) => r.readyMs));
    const rss = Math.min(...rs.map((r) => r.rssMiB));
    const met = aim ? `${best <= aim.readyMs ? 'yes' : 'no'} / ${rss <= aim.rssMiB ? 'yes' : 'no'}` : '';
    lines.push(
      `| ${source} | ${size.replace('x', ' x ')} | ${fmt(
        rs.map((r) => r.readyMs),
        'ms',
      )} | ${fmt(
        rs.map((r) => r.daemonMs),
        'ms',
      )} | ${fmt(
        rs.map((r) => r.startSyncMs),
        'ms',
      )} | ${fmt(
        rs.map((r) => r.cpuMs),
        'ms',
      )} | ${fmt(
        rs.map((r) => r.rssMiB),
        'MiB',
      )} | ${fmt(
        rs.map((r) => r.hwmMiB),
        'MiB',
      )} | ${aim ? `${aim.readyMs} ms / ${aim.rssMiB} MiB` : ''} | ${met} |`,
    );
  }
  if (notes.length) lines.push('', ...notes);
  return lines.join('\n') + '\n';
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: args } = parseArgs({
    options: {
      sizes: { type: 'string', default: '10000x10,50000x10' },
      sources: { type: 'string', default: 'manifests,api' },
      rounds: { type: 'string', default: '2' },
      'node-flags': { type: 'string', default: '' },
      'log-dir': { type: 'string' },
      out: { type: 'string', default: join(repoRoot, 'bench', 'results', 'startup') },
      // only write <out>.md again from <out>.json
      'report-only': { type: 'boolean', default: false },
    },
  });
  const out = args.out;
  try {
    let runs: StartupRun[];
    if (args['report-only']) {
      runs = (JSON.parse(readFileSync(`${out}.json`, 'utf8')) as { runs: StartupRun[] }).runs;
    } else {
      runs = await runStartup({
        sizes: args.sizes.split(',').map((s) => s.split('x').map(Number) as [number, number]),
        sources: args.sources.split(',') as StartupSource[],
        rounds: Number(args.rounds),
        nodeFlags: args['node-flags'],
        ...(args['log-dir'] ? { logDir: args['log-dir'] } : {}),
      });
      writeFileSync(`${out}.json`, JSON.stringify({ date: new Date().toISOString(), node: process.version, runs }, null, 1) + '\n');
    }
    const notesFile = `${out}.notes.md`;
    let notes: string[] = [];
    try {
      notes = [readFileSync(notesFile, 'utf8').trimEnd()];
    } catch {
      /* no notes */
    }
    writeFileSync(`${out}.md`, report(runs, notes));
    console.log(readFileSync(`${out}.md`, 'utf8'));
  } finally {
    await runCleanups();
  }
}
