// /metrics, /healthz and /readyz over real HTTP, with the dataplane counters read from a
// real counters map that real test runs filled. promtool (Debian's prometheus package)
// checks the exposition; the values equal the packets sent.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BpfObject } from '../../src/bpf/index.js';
import { resetCounters } from '../../src/dataplane/counters.js';
import { startHttp, type HttpEndpoint } from '../../src/metrics/http.js';
import { Metrics } from '../../src/metrics/metrics.js';
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
  metrics.attachDataplane({ counters: () => probe.map('weir_counters'), maps: () => [probe.map('weir_counters'), probe.map('weir_probe_last_connect')] });
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
  problems = ['dataplane: attach to eth0 failed: ENODEV'];
  assert.deepEqual(await get('/healthz').then((r) => [r.status, r.body]), [503, 'unhealthy: dataplane: attach to eth0 failed: ENODEV\n']);
  problems = [];
  assert.equal((await get('/nope')).status, 404);
});

test('weir status prints health and readiness for humans, exit 1 until both are ok', async () => {
  const weir = (...args: string[]) => run(binWeir, ['status', '--address', `127.0.0.1:${http.port}`, ...args], { check: false });
  notReady = ['first sync not programmed'];
  problems = ['kubernetes API unreachable for 61s (bound 60s)'];
  const bad = await weir();
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /UNHEALTHY, NOT READY/);
  assert.match(bad.stdout, /unhealthy: kubernetes API unreachable for 61s/);
  assert.match(bad.stdout, /not ready: first sync not programmed/);
  notReady = [];
  problems = [];
  const good = await weir('-o', 'json');
  assert.equal(good.code, 0, good.stderr);
  const s = JSON.parse(good.stdout) as { healthy: boolean; ready: boolean; problems: string[]; syncs: number };
  assert.deepEqual([s.healthy, s.ready, s.problems], [true, true, []]);
  assert.equal(s.syncs, 1, 'from the sync histogram');
  const down = await run(binWeir, ['status', '--address', '127.0.0.1:1'], { check: false });
  assert.equal(down.code, 3, 'no daemon answering: the no-state exit code (docs/cli.md)');
  assert.match(down.stderr.trim(), /^weir: no weir daemon answering at http:\/\/127\.0\.0\.1:1\/healthz/);
});
