// bench/memory: the daemon's memory with a big cluster behind the API (issue 15, must-show 7).
// The fake API server (test/k8s, the real list/watch protocol with pages of 500) runs in its own
// lab namespace, filled with 50,000 pods on 500 nodes, 10,000 Services with one EndpointSlice of
// 5 endpoints each, 100 namespaces and 200 NetworkPolicies, every object as a real API server
// serves it (managedFields, last-applied-configuration, container specs, status; see
// test/unit/slim-fixtures.ts). `weir daemon --kubeconfig` starts in a lab node (its own netns,
// bpffs and cgroup), and once it logs `ready` we read VmRSS / VmHWM from /proc/<pid>/status,
// and again after a settle period; the heap figures come from /metrics when it has Node's
// default metrics. Each mode gets a fresh lab: `slim` (what weir does) and `whole`
// (WEIR_KUBE_KEEP_WHOLE_OBJECTS=1: objects kept as served, what weir did before).
//
//   node dist/bench/memory.js [--pods N] [--services N] [--modes slim,whole] [--settle-s S] [--out bench/results/memory]

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { KubeObject } from '../test/k8s/fake-apiserver.js';
import { kubeLab, type KubeLab } from '../test/lab/kube-lab.js';
import { onCleanup, runCleanups } from '../test/lib/cleanup.js';
import { repoRoot } from '../test/lib/paths.js';
import { sleep } from '../test/lib/proc.js';
import { fatEndpointSlice, fatNamespace, fatNetworkPolicy, fatNode, fatPod, fatService } from '../test/unit/slim-fixtures.js';

const { values: args } = parseArgs({
  options: {
    pods: { type: 'string', default: '50000' },
    services: { type: 'string', default: '10000' },
    modes: { type: 'string', default: 'slim,whole' },
    // also measure the JS heap step by step (bench/memory-heap.ts) for these modes
    'heap-steps': { type: 'string', default: 'slim,whole' },
    'settle-s': { type: 'string', default: '20' },
    out: { type: 'string', default: join(repoRoot, 'bench', 'results', 'memory') },
    // the daemon runs with --trace-gc: the JS heap after its last full GC is read from those lines
    'trace-gc': { type: 'boolean', default: true },
    // more node/V8 flags for the daemon (e.g. --optimize-for-size): what they would change, measured
    'node-flags': { type: 'string', default: '' },
    // only write <out>.md again from <out>.json
    'report-only': { type: 'boolean', default: false },
  },
});
const PODS = Number(args.pods);
const SERVICES = Number(args.services);
const NODES = 500;
const NAMESPACES = 100;
const PODS_PER_SERVICE = Math.max(1, Math.floor(PODS / SERVICES));
const ZONES = ['zone-a', 'zone-b', 'zone-c'];
const METRICS = '127.0.0.1:9745';

// Addresses: nodes 198.18.2.0/23, pod CIDRs 198.19.0.0/16 (a /25 per node), ClusterIPs 198.18.64.0/18
// (the lab's underlay is 198.18.0.0/24 and node1's pods 198.18.1.0/24).
const nodeName = (n: number) => `node-${n}`;
const nodeIp = (n: number) => `198.18.${2 + ((n + 1) >> 8)}.${(n + 1) & 255}`;
const podCidrBase = (n: number) => n * 128;
const podCidr = (n: number) => `198.19.${podCidrBase(n) >> 8}.${podCidrBase(n) & 255}/25`;
const podIp = (n: number, k: number) => {
  const a = podCidrBase(n) + 1 + k;
  return `198.19.${a >> 8}.${a & 255}`;
};
const clusterIp = (s: number) => `198.18.${64 + ((s + 1) >> 8)}.${(s + 1) & 255}`;
const nsOf = (s: number) => `team${s % 10}-ns-${s % NAMESPACES}`;

/** Pod j: service j / PODS_PER_SERVICE, node j % NODES, k-th pod of its node. */
function podOf(j: number): { pod: KubeObject; svc: number; node: number; ip: string; name: string } {
  const svc = Math.floor(j / PODS_PER_SERVICE) % SERVICES;
  const node = j % NODES;
  const ip = podIp(node, Math.floor(j / NODES));
  const name = `app-${svc}-5f7b9c${(j % 1000).toString(36)}-${j.toString(36)}`;
  return { pod: fatPod({ namespace: nsOf(svc), name, app: `app-${svc}`, node: nodeName(node), ip }), svc, node, ip, name };
}

function* clusterObjects(): Generator<KubeObject> {
  for (let i = 0; i < NAMESPACES; i++) yield fatNamespace(nsOf(i));
  for (let n = 0; n < NODES; n++) yield fatNode({ name: nodeName(n), ip: nodeIp(n), podCIDR: podCidr(n), zone: ZONES[n % ZONES.length]! });
  const endpoints = new Map<number, { ip: string; pod: string; node: string; zone: string }[]>();
  for (let j = 0; j < PODS; j++) {
    const p = podOf(j);
    yield p.pod;
    let e = endpoints.get(p.svc);
    if (!e) endpoints.set(p.svc, (e = []));
    e.push({ ip: p.ip, pod: p.name, node: nodeName(p.node), zone: ZONES[p.node % ZONES.length]! });
  }
  for (let s = 0; s < SERVICES; s++) {
    yield fatService({ namespace: nsOf(s), name: `app-${s}`, clusterIP: clusterIp(s) });
    yield fatEndpointSlice(nsOf(s), `app-${s}`, `app-${s}-x7k2p`, endpoints.get(s) ?? []);
  }
  for (let i = 0; i < NAMESPACES; i++) {
    yield fatNetworkPolicy(nsOf(i), 'allow-web', `app-${i}`);
    yield fatNetworkPolicy(nsOf(i), 'allow-api', `app-${i + NAMESPACES}`);
  }
}

async function fill(k: KubeLab): Promise<{ objects: number; bytes: number; byKind: Record<string, number> }> {
  let batch: KubeObject[] = [];
  let bytes = 0;
  let objects = 0;
  const byKind: Record<string, number> = {};
  for (const o of clusterObjects()) {
    batch.push(o);
    objects++;
    byKind[o.kind!] = (byKind[o.kind!] ?? 0) + 1;
    bytes += JSON.stringify(o).length;
    if (batch.length === 1000) {
      await k.server.apply(batch);
      batch = [];
    }
  }
  if (batch.length) await k.server.apply(batch);
  return { objects, bytes, byKind };
}

/** A bin/weir that runs node with --trace-gc and --node-flags (NODE_OPTIONS may not carry V8 flags), as WeirNode's releaseDir. */
function traceGcLauncher(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weir-bench-memory-'));
  mkdirSync(join(dir, 'bin'));
  const flags = [...(args['trace-gc'] ? ['--trace-gc'] : []), ...args['node-flags'].split(' ').filter(Boolean)].join(' ');
  const script = `#!/usr/bin/env bash\nexport MALLOC_ARENA_MAX="\${MALLOC_ARENA_MAX:-2}"\nexec node ${flags} --enable-source-maps ${join(repoRoot, 'dist', 'src', 'cli', 'main.js')} "$@"\n`;
  writeFileSync(join(dir, 'bin', 'weir'), script, { mode: 0o755 });
  onCleanup(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface ProcMemory {
  rssMiB: number;
  hwmMiB: number;
}

function procMemory(pid: number): ProcMemory {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

/** RSS by mapping (smaps): anonymous memory (the JS heap, malloc) apart from code and mapped files. */
function rssByMapping(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[1] ?? '';
      name = path === '' ? 'anonymous' : path.startsWith('/') ? path.split('/').pop()! : path;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[name] = (out[name] ?? 0) + Number(rss[1]) / 1024;
  }
  return Object.fromEntries(
    Object.entries(out)
      .filter(([, v]) => v >= 1)
      .sort(([, a], [, b]) => b - a)
      .map(([k, v]) => [k, Math.round(v)]),
  );
}

/** The node process of the daemon (bin/weir execs node, nsenter execs bin/weir: the same pid). */
function daemonPid(pid: number): number {
  const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  // Node 24 names its main thread (and so the process's comm) MainThread
  if (comm !== 'node' && comm !== 'MainThread') throw new Error(`pid ${pid} is ${comm}, not node`);
  return pid;
}

/** The JS heap after the last mark-compact (full) GC, from --trace-gc lines: `Mark-Compact 80.1 (95.2) -> 61.3 (90.0) MB`. */
function heapAfterFullGc(lines: readonly string[]): number | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /Mark-Compact[^>]*-> ([0-9.]+) \(([0-9.]+)\) MB/.exec(lines[i]!);
    if (m) return Number(m[1]);
  }
  return null;
}

/** Heap figures from /metrics, when the daemon exports Node's default metrics. */
function heapFromMetrics(text: string): { heapUsedMiB: number; heapTotalMiB: number } | null {
  const metric = (name: string) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text);
    return m ? Number(m[1]) / 2 ** 20 : NaN;
  };
  const used = metric('nodejs_heap_size_used_bytes');
  return Number.isFinite(used) ? { heapUsedMiB: used, heapTotalMiB: metric('nodejs_heap_size_total_bytes') } : null;
}

interface ModeResult {
  mode: string;
  readyMs: number;
  daemonReadyMs: number;
  atReady: ProcMemory;
  settled: ProcMemory;
  heap: { heapUsedMiB: number; heapTotalMiB: number } | null;
  /** MB of JS heap after the last full GC (--trace-gc) */
  heapAfterFullGcMB: number | null;
  frontends: number | null;
  synced: string;
  /** MiB of RSS per mapping after settling */
  rssByMapping: Record<string, number>;
}

/** bench/memory-heap.js in one lab node, once per variant: the JS heap after the source synced,
 *  the service model, the policy model; `slim` / `whole`, optionally `slim@100` (list page size). */
async function heapSteps(variants: string[]): Promise<{ steps: Record<string, unknown>; filled: Awaited<ReturnType<typeof fill>> }> {
  const out: Record<string, unknown> = {};
  const k = await kubeLab('memheap', { weir: { metricsAddress: METRICS } });
  try {
    const filled = await fill(k);
    for (const v of variants) {
      const [mode, page] = v.split('@');
      const p = k.node.ns.spawn(
        process.execPath,
        ['--expose-gc', '--enable-source-maps', join(repoRoot, 'dist', 'bench', 'memory-heap.js'), k.kubeconfig, ...(page ? [page] : [])],
        { label: `memory-heap ${v}`, ...(mode === 'whole' ? { env: { WEIR_KUBE_KEEP_WHOLE_OBJECTS: '1' } } : {}) },
      );
      const exit = await p.exited;
      if (exit.code !== 0) throw p.failure(`exit ${exit.code}`);
      const line = p.stdout.trim().split('\n').pop() ?? '';
      out[v] = JSON.parse(line) as unknown;
      console.log(`# heap steps (${v}): ${line}`);
    }
    return { steps: out, filled };
  } finally {
    await k.lab.destroy();
  }
}

async function runMode(mode: 'slim' | 'whole'): Promise<{ result: ModeResult; fill: Awaited<ReturnType<typeof fill>> }> {
  const k = await kubeLab(`memory-${mode}`, {
    weir: {
      metricsAddress: METRICS,
      logLevel: 'info',
      ...(mode === 'whole' ? { env: { WEIR_KUBE_KEEP_WHOLE_OBJECTS: '1' } } : {}),
      ...(args['trace-gc'] || args['node-flags'] ? { releaseDir: traceGcLauncher() } : {}),
    },
  });
  try {
    const t0 = Date.now();
    const filled = await fill(k);
    console.log(
      `# ${mode}: fake API server filled with ${filled.objects} objects (${(filled.bytes / 2 ** 20).toFixed(0)} MiB of JSON) in ${Date.now() - t0} ms`,
    );
    const t1 = Date.now();
    const ready = await k.weir.start(15 * 60_000);
    const readyMs = Date.now() - t1;
    const pid = daemonPid(k.weir.process!.pid);
    const atReady = procMemory(pid);
    console.log(`# ${mode}: ready in ${readyMs} ms; VmRSS ${atReady.rssMiB.toFixed(0)} MiB, VmHWM ${atReady.hwmMiB.toFixed(0)} MiB`);
    await sleep(Number(args['settle-s']) * 1000);
    const settled = procMemory(pid);
    const metrics = await k.weir.http('/metrics', { timeoutMs: 20_000 });
    const frontends = /^weir_frontends (\d+)/m.exec(metrics.body)?.[1];
    const synced = k.weir.events('kube: synced')[0]?.objects ?? '';
    const result: ModeResult = {
      mode,
      readyMs,
      daemonReadyMs: Number(ready.ms),
      atReady,
      settled,
      heap: heapFromMetrics(metrics.body),
      heapAfterFullGcMB: heapAfterFullGc(k.weir.process?.stdout.split('\n') ?? []),
      frontends: frontends === undefined ? null : Number(frontends),
      synced,
      rssByMapping: rssByMapping(pid),
    };
    console.log(`# ${mode}: RSS by mapping (MiB): ${JSON.stringify(result.rssByMapping)}; JS heap after the last full GC ${result.heapAfterFullGcMB} MB`);
    console.log(
      `# ${mode}: after ${args['settle-s']} s VmRSS ${settled.rssMiB.toFixed(0)} MiB, VmHWM ${settled.hwmMiB.toFixed(0)} MiB; frontends ${result.frontends}`,
    );
    await k.weir.terminate();
    return { result, fill: filled };
  } finally {
    await k.lab.destroy();
  }
}

interface HeapStep {
  heapUsedMiB: number;
  rssMiB: number;
}

/** The heap steps of one variant as table rows: what each stage adds to the live JS heap. */
function heapRows(name: string, r: unknown): string[] {
  const x = r as {
    syncMs: number;
    atSynced: { rssMiB: number; hwmMiB: number };
    before: HeapStep;
    synced: HeapStep;
    withServices: HeapStep;
    withPolicy: HeapStep;
  };
  const d = (a: HeapStep, b: HeapStep) => `+${(b.heapUsedMiB - a.heapUsedMiB).toFixed(0)} MiB`;
  return [
    `| ${name} | ${x.before.heapUsedMiB.toFixed(0)} MiB | ${d(x.before, x.synced)} | ${d(x.synced, x.withServices)} | ${d(x.withServices, x.withPolicy)} | ` +
      `${x.withPolicy.heapUsedMiB.toFixed(0)} MiB | ${x.atSynced.rssMiB} MiB (peak ${x.atSynced.hwmMiB}) | ${(x.syncMs / 1000).toFixed(0)} s |`,
  ];
}

function report(results: ModeResult[], filled: Awaited<ReturnType<typeof fill>>, heap: Record<string, unknown>): string {
  const mib = (x: number) => `${x.toFixed(0)} MiB`;
  const lines = [
    '# weir daemon memory with a big cluster behind the API',
    '',
    `Generated by \`make bench-memory\` (bench/memory.ts) on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${results.length} fresh lab(s).`,
    '',
    `The fake API server (test/k8s/fake-apiserver.ts: weir lists in pages of 100 Pods and Nodes, 500 of the other kinds, then watches) holds ${filled.objects} objects, ` +
      `${(filled.bytes / 2 ** 20).toFixed(0)} MiB of JSON as served: ${Object.entries(filled.byKind)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ')}. ` +
      'Every object is what a real server returns (managedFields, last-applied-configuration, owner references, container specs, ' +
      'status conditions; test/unit/slim-fixtures.ts). `weir daemon --kubeconfig` runs in a lab node with network policy on.',
    '',
    ...(args['node-flags'] ? [`The daemon ran with node flags \`${args['node-flags']}\`.`, ''] : []),
    '| mode | time to ready | VmRSS at ready | VmHWM (peak) | VmRSS after settle | JS heap after last full GC | heap used (/metrics) |',
    '|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.mode === 'slim' ? 'slim (weir)' : 'whole (WEIR_KUBE_KEEP_WHOLE_OBJECTS=1)'} | ${(r.readyMs / 1000).toFixed(1)} s | ${mib(r.atReady.rssMiB)} | ` +
        `${mib(r.settled.hwmMiB)} | ${mib(r.settled.rssMiB)} | ${r.heapAfterFullGcMB === null ? 'n/a' : `${r.heapAfterFullGcMB.toFixed(0)} MB`} | ${r.heap ? mib(r.heap.heapUsedMiB) : 'n/a (no Node default metrics)'} |`,
    ),
    '',
    'VmRSS and VmHWM are read from /proc/<pid>/status of the daemon process; "after settle" is after ' +
      `${args['settle-s']} s more. Time to ready is from starting the daemon to its \`ready\` log line (every informer listed, ` +
      'the maps programmed). The machine is shared (2 cores): times vary between runs, memory much less.',
    '',
    ...(Object.keys(heap).length
      ? [
          '## Where the JS heap goes',
          '',
          'bench/memory-heap.ts in the same lab node (its own process, `--expose-gc`): the API source and store alone, then the service model, ' +
            'then the policy model built from the store, each followed by a full GC. RSS at synced is before any forced GC (what the list left behind).',
          '',
          '| variant | modules loaded | + source and store synced | + service model | + policy model | live heap | RSS at synced | list time |',
          '|---|---|---|---|---|---|---|---|',
          ...Object.entries(heap).flatMap(([k, v]) => heapRows(k, v)),
          '',
        ]
      : []),
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (args['report-only']) {
    const j = JSON.parse(readFileSync(`${args.out}.json`, 'utf8')) as {
      objects: Awaited<ReturnType<typeof fill>>;
      results: ModeResult[];
      heapSteps?: Record<string, unknown>;
    };
    writeFileSync(`${args.out}.md`, report(j.results, j.objects, j.heapSteps ?? {}));
    return;
  }
  const modes = args.modes.split(',').filter(Boolean) as ('slim' | 'whole')[];
  const results: ModeResult[] = [];
  const heap: Record<string, unknown> = {};
  let filled: Awaited<ReturnType<typeof fill>> | undefined;
  try {
    for (const m of modes) {
      const r = await runMode(m);
      results.push(r.result);
      filled = r.fill;
    }
    const variants = args['heap-steps'].split(',').filter(Boolean);
    if (variants.length) {
      const r = await heapSteps(variants);
      Object.assign(heap, r.steps);
      filled ??= r.filled;
    }
  } finally {
    await runCleanups();
  }
  const json = {
    nodeFlags: args['node-flags'],
    pods: PODS,
    services: SERVICES,
    nodes: NODES,
    namespaces: NAMESPACES,
    node: process.version,
    objects: filled,
    results,
    heapSteps: heap,
  };
  writeFileSync(`${args.out}.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${args.out}.md`, report(results, filled!, heap));
  console.log(`# wrote ${args.out}.json and ${args.out}.md`);
}

await main();
