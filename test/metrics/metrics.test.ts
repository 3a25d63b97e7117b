// /metrics, /healthz and /readyz over real HTTP, with the dataplane counters read from a
// real counters map that real test runs filled. promtool (Debian's prometheus package)
// checks the exposition; the values equal the packets sent.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BpfMap, BpfObject, codecFor } from '../../src/bpf/index.js';
import { MAP_TYPE } from '../../src/dataplane/map-abi.js';
import { counterSlot, resetCounters } from '../../src/dataplane/counters.js';
import { MapCensus, pinnedMaps } from '../../src/dataplane/map-census.js';
import { startHttp, type HttpEndpoint } from '../../src/metrics/http.js';
import { buildInfo } from '../../src/metrics/build-info.js';
import { Metrics, perFrontendSeries } from '../../src/metrics/metrics.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { eth } from '../lib/packet.js';
import { binWeir, bpfObject } from '../lib/paths.js';
import { run, runSync } from '../lib/proc.js';

let fs: PrivateBpffs;
let probe: BpfObject;
let metrics: Metrics;
let http: HttpEndpoint;
let problems: string[] = [];
let notReady: string[] = ['first sync not programmed'];

before(async () => {
  fs = mountPrivateBpffs('metrics');
  probe = BpfObject.load(bpfObject('probe'), { pinDir: fs.path });
  metrics = new Metrics();
  const census = new MapCensus(pinnedMaps([probe]));
  await census.refresh();
  metrics.attachDataplane({ counters: () => probe.map('weir_counters'), maps: () => census.rows() });
  http = await startHttp('127.0.0.1:0', metrics, { problems: () => problems, notReady: () => notReady });
});
after(async () => {
  await http?.close();
  probe?.close();
  await fs?.cleanup();
});

const get = async (path: string) => {
  const r = await fetch(`http://127.0.0.1:${http.port}${path}`);
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
};

/** Samples of the text exposition: `name{labels} value` → value, keyed by `name{labels}`. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

test('dataplane counters on /metrics equal the packets the programs saw', async () => {
  resetCounters(probe.map('weir_counters'));
  const udp = eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
    .ipv4({ src: '198.18.0.1', dst: '198.18.0.2' })
    .udp({ sport: 1, dport: 53 })
    .payload('x')
    .build();
  const prog = probe.program('weir_probe');
  for (let i = 0; i < 13; i++) prog.testRun({ data: udp });
  const r = await get('/metrics');
  assert.equal(r.status, 200);
  assert.match(r.type!, /^text\/plain; version=0\.0\.4/);
  const s = samples(r.body);
  assert.equal(s.get('weir_dataplane_packets_total{hook="probe",reason="parsed_udp"}'), 13);
  assert.equal(s.get('weir_dataplane_bytes_total{hook="probe",reason="parsed_udp"}'), 13 * udp.length);
  assert.equal(s.get('weir_map_capacity{map="weir_counters"}'), probe.map('weir_counters').maxEntries);
  assert.equal(s.get('weir_map_pressure_ratio{map="weir_counters"}'), 1, 'an array is always full');
  // a later scrape sees later packets (read at scrape time, not cached)
  prog.testRun({ data: udp });
  assert.equal(samples((await get('/metrics')).body).get('weir_dataplane_packets_total{hook="probe",reason="parsed_udp"}'), 14);
});

test('control-plane metrics: sync duration, programming latency, kube-proxy parity names', async () => {
  metrics.sourceEvents.inc({ kind: 'Service', type: 'upsert' }, 3);
  metrics.observeSync('incremental', 0.004, [Date.now() - 20, Date.now() - 2000]);
  const s = samples((await get('/metrics')).body);
  assert.equal(s.get('weir_source_events_total{kind="Service",type="upsert"}'), 3);
  assert.equal(s.get('weir_sync_duration_seconds_count{kind="incremental"}'), 1);
  assert.equal(s.get('kubeproxy_sync_proxy_rules_duration_seconds_count'), 1);
  assert.equal(s.get('weir_network_programming_duration_seconds_count'), 2);
  assert.equal(s.get('weir_network_programming_duration_seconds_bucket{le="0.05"}'), 1);
  assert.equal(s.get('weir_network_programming_duration_seconds_bucket{le="5"}'), 2);
  assert.ok(s.get('kubeproxy_sync_proxy_rules_last_timestamp_seconds')! > Date.now() / 1000 - 60);
});

test('drops and forwarded packets: one counter slot each, split by the verdict table', async () => {
  const counters = probe.map('weir_counters');
  resetCounters(counters);
  // slots as the C side bumps them: {packets, bytes} on two CPUs
  const write = (hook: string, reason: string, packets: number, bytes: number) => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(counterSlot(hook, reason));
    const cpu = () => {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(BigInt(packets), 0);
      b.writeBigUInt64LE(BigInt(bytes), 8);
      return b;
    };
    counters.updatePerCpu(key, [cpu(), cpu(), ...Array.from({ length: counters.cpuCount() - 2 }, () => Buffer.alloc(16))]);
  };
  write('from_pod', 'no_backend_reject', 3, 180);
  write('from_pod', 'service_nat', 5, 300);
  write('from_pod', 'lb_stats_full', 7, 0); // an event next to the packet's reason: neither
  write('from_host', 'no_local_backend_drop', 2, 120);
  write('from_host', 'pass', 11, 1100);
  write('sock', 'sock_lb_translated', 13, 0); // socket calls: neither
  const s = samples((await get('/metrics')).body);
  assert.equal(s.get('weir_drops_total{hook="from_pod",reason="no_backend_reject"}'), 6);
  assert.equal(s.get('weir_drops_total{hook="from_host",reason="no_local_backend_drop"}'), 4);
  assert.equal(s.get('weir_drop_bytes_total{hook="from_pod",reason="no_backend_reject"}'), 360);
  assert.equal(s.get('weir_forwarded_packets_total{hook="from_pod"}'), 10, 'service_nat only');
  assert.equal(s.get('weir_forwarded_packets_total{hook="from_host"}'), 22);
  assert.equal(s.get('weir_forwarded_bytes_total{hook="from_host"}'), 2200);
  assert.equal([...s.keys()].filter((k) => k.startsWith('weir_drops_total{')).length, 2);
  assert.equal(s.get('weir_forwarded_packets_total{hook="sock"}'), undefined);
  resetCounters(counters);
});

test('build info, Node process metrics, kube-proxy queue gauges, conntrack GC', async () => {
  const b = buildInfo();
  assert.match(b.commit, /^([0-9a-f]{40}|unknown)$/);
  assert.match(b.libbpfVersion, /^\d+\.\d+$/);
  metrics.observeQueue({ queued: 'service', servicesPending: 1, endpointsPending: 0 }, 1_700_000_000_000);
  metrics.observeQueue({ queued: 'endpoints', servicesPending: 1, endpointsPending: 1 }, 1_700_000_001_000);
  metrics.observeQueue({ queued: 'endpoints', servicesPending: 1, endpointsPending: 2 }, 1_700_000_002_000);
  metrics.observeConntrackGc({ family: 4, map: 'weir_ct4_v2', capacity: 1024, ok: true, seconds: 0.002, deleted: { udp: 4, tcp_closing: 2 }, alive: 10 });
  metrics.observeConntrackGc({ family: 6, map: 'weir_ct6', capacity: 1024, ok: false, seconds: 0.001, deleted: {}, alive: 0 });
  let s = samples((await get('/metrics')).body);
  const info = [...s.keys()].find((k) => k.startsWith('weir_build_info{'));
  assert.equal(
    info,
    `weir_build_info{version="${b.version}",commit="${b.commit}",dirty="${b.dirty}",node_version="${process.versions.node}",` +
      `libbpf_version="${b.libbpfVersion}",kernel_release="${(await import('node:os')).release()}"}`,
  );
  assert.equal(s.get(info!), 1);
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes'])
    assert.ok(s.get(name)! > 0, `${name} = ${s.get(name)}`);
  assert.equal(s.get('kubeproxy_sync_proxy_rules_service_changes_total'), 1);
  assert.equal(s.get('kubeproxy_sync_proxy_rules_endpoint_changes_total'), 2);
  assert.equal(s.get('kubeproxy_sync_proxy_rules_endpoint_changes_pending'), 2);
  assert.equal(s.get('kubeproxy_sync_proxy_rules_service_changes_pending'), 1);
  assert.equal(s.get('kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds'), 1_700_000_002);
  assert.equal(s.get('weir_conntrack_gc_runs_total{family="ipv4",status="completed"}'), 1);
  assert.equal(s.get('weir_conntrack_gc_runs_total{family="ipv6",status="failed"}'), 1);
  assert.equal(s.get('weir_conntrack_gc_deleted_entries_total{family="ipv4",reason="udp"}'), 4);
  assert.equal(s.get('weir_conntrack_gc_deleted_entries_total{family="ipv4",reason="tcp_closing"}'), 2);
  assert.equal(s.get('weir_conntrack_gc_entries{family="ipv4"}'), 10);
  assert.equal(s.get('weir_conntrack_gc_entries{family="ipv6"}'), undefined, 'a failed pass knows no count');
  assert.equal(s.get('weir_conntrack_gc_duration_seconds_count{family="ipv4"}'), 1);
  // a sync takes the queue: pending back to 0, totals and the queued time stay
  metrics.observeQueue({ servicesPending: 0, endpointsPending: 0 }, 1_700_000_009_000);
  s = samples((await get('/metrics')).body);
  assert.equal(s.get('kubeproxy_sync_proxy_rules_endpoint_changes_pending'), 0);
  assert.equal(s.get('kubeproxy_sync_proxy_rules_endpoint_changes_total'), 2);
  assert.equal(s.get('kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds'), 1_700_000_002);
});

test('new connections per service port by default, per backend only when asked (--service-stats backend)', async () => {
  const map = BpfMap.create({ typeId: MAP_TYPE.percpu_hash, keySize: 12, valueSize: 8, maxEntries: 16, name: 'weir_lb_stats4' });
  try {
    const key = codecFor('weir_lb_stats4_key');
    const put = (frontendId: number, backend: string, n: number) => {
      const v = Buffer.alloc(8);
      v.writeBigUInt64LE(BigInt(n));
      map.updatePerCpu(key.encode({ frontend_id: frontendId, backend, port: 8080, pad: 0 }), [
        v,
        ...Array.from({ length: map.cpuCount() - 1 }, () => Buffer.alloc(8)),
      ]);
    };
    put(1, '198.18.1.2', 5);
    put(1, '198.18.1.3', 7);
    put(2, '198.18.1.2', 4);
    const frontends = new Map([
      [1, { service: 'default/web', frontend: '198.19.0.10:80/tcp' }],
      [2, { service: 'default/web', frontend: '198.18.0.1:30080/tcp' }],
    ]);
    let backends = false;
    const m = new Metrics({ processMetrics: false });
    m.attachDataplane({ counters: () => undefined, maps: () => [], lbStats: () => ({ maps: [map], frontends, backends }) });
    let s = samples(await m.text());
    assert.equal(s.get('weir_service_new_connections_total{service="default/web",frontend="198.19.0.10:80/tcp"}'), 12);
    assert.equal(s.get('weir_service_new_connections_total{service="default/web",frontend="198.18.0.1:30080/tcp"}'), 4);
    assert.equal([...s.keys()].filter((k) => k.startsWith('weir_service_backend_new_connections_total')).length, 0, 'no per-backend series by default');
    backends = true;
    s = samples(await m.text());
    assert.equal(s.get('weir_service_backend_new_connections_total{service="default/web",frontend="198.19.0.10:80/tcp",backend="198.18.1.3:8080"}'), 7);
    assert.equal([...s.keys()].filter((k) => k.startsWith('weir_service_backend_new_connections_total')).length, 3);
    assert.equal(s.get('weir_service_new_connections_total{service="default/web",frontend="198.19.0.10:80/tcp"}'), 12, 'per service port still');
  } finally {
    map.close();
  }
  // bounded: the largest keep their labels, the rest sum into "other"
  const rows = [3, 9, 1, 5].map((value, i) => ({ service: `ns/s${i}`, frontend: `f${i}`, backend: 'x', value }));
  assert.deepEqual(
    perFrontendSeries(rows, 3).map((r) => [r.service, r.value]),
    [
      ['ns/s1', 9],
      ['ns/s3', 5],
      ['other', 4],
    ],
  );
});

test('promtool check metrics passes on /metrics', async () => {
  const body = (await get('/metrics')).body;
  const r = runSync('promtool', ['check', 'metrics'], { input: body, check: false });
  assert.equal(r.code, 0, `promtool: ${r.stdout}${r.stderr}`);
});

test('/healthz and /readyz say what is wrong, then ok', async () => {
  assert.deepEqual(await get('/readyz').then((r) => [r.status, r.body]), [503, 'not ready: first sync not programmed\n']);
  notReady = [];
  assert.deepEqual(await get('/readyz').then((r) => [r.status, r.body]), [200, 'ok\n']);
  assert.equal((await get('/healthz')).status, 200);
  problems = ['no progress: periodic resync last completed 211.0s ago (every 60s, bound 210s)'];
  assert.deepEqual(await get('/healthz').then((r) => [r.status, r.body]), [
    503,
    'unhealthy: no progress: periodic resync last completed 211.0s ago (every 60s, bound 210s)\n',
  ]);
  assert.equal((await get('/livez')).status, 503, '/livez is /healthz');
  problems = [];
  assert.equal((await get('/nope')).status, 404);
});

test('weir status prints health, readiness and the API connectivity for humans, exit 1 until both are ok', async () => {
  const weir = (...args: string[]) => run(binWeir, ['status', '--address', `127.0.0.1:${http.port}`, ...args], { check: false });
  notReady = ['kubernetes API unreachable for 185.0s (bound 60.0s)'];
  problems = ['no progress: conntrack GC last completed 61.0s ago (every 10s, bound 60s)'];
  const lastContact = Math.floor(Date.now() / 1000) - 185;
  metrics.observeApiConnectivity(false, lastContact * 1000);
  const bad = await weir();
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /UNHEALTHY, NOT READY/);
  assert.match(bad.stdout, /unhealthy: no progress: conntrack GC/);
  assert.match(bad.stdout, /not ready: kubernetes API unreachable for 185\.0s/);
  const since = new Date(lastContact * 1000).toISOString();
  assert.match(bad.stdout, new RegExp(`\n {2}kubernetes API: unreachable since ${since} \\(3m \\d+s\\)\n`));
  const badJson = JSON.parse((await weir('-o', 'json')).stdout) as { kubernetesApi: { state: string; lastContact: string; unreachableSeconds: number } };
  assert.equal(badJson.kubernetesApi.state, 'unreachable');
  assert.equal(badJson.kubernetesApi.lastContact, since);
  assert.ok(badJson.kubernetesApi.unreachableSeconds >= 185, String(badJson.kubernetesApi.unreachableSeconds));
  notReady = [];
  problems = [];
  metrics.observeApiConnectivity(true, Date.now());
  assert.match((await weir()).stdout, /\n {2}kubernetes API: ok\n/);
  const good = await weir('-o', 'json');
  assert.equal(good.code, 0, good.stderr);
  const s = JSON.parse(good.stdout) as { healthy: boolean; ready: boolean; problems: string[]; syncs: number; kubernetesApi: { state: string } };
  assert.deepEqual([s.healthy, s.ready, s.problems, s.kubernetesApi.state], [true, true, [], 'ok']);
  assert.equal(s.syncs, 1, 'from the sync histogram');
  const down = await run(binWeir, ['status', '--address', '127.0.0.1:1'], { check: false });
  assert.equal(down.code, 3, 'no daemon answering: the no-state exit code (docs/cli.md)');
  assert.match(down.stderr.trim(), /^weir: no weir daemon answering at http:\/\/127\.0\.0\.1:1\/healthz/);
});
