// Issue 5, must-shows 1 and 2, against `weir daemon --metrics-address` in a lab node: promtool
// (Debian's prometheus package) checks a real scrape; a real Prometheus server in its own lab
// namespace scrapes the node every second, and after N new TCP connections from a pod through
// a ClusterIP on the TC path, PromQL returns weir_dataplane_packets_total{hook="from_pod",
// reason="service_nat"} = N; `weir counters -o json` (run in the node) agrees with /metrics.
// Issue 15, must-show 4: connections to a service without endpoints (rejected) and to a Local
// NodePort without a local endpoint (dropped) show up in weir_drops_total with their reasons and
// not in weir_forwarded_packets_total; promtool passes on the scrape that has every new metric.

import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, run, type External, type LabNode, type Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';
import { BESIDE_EVENTS } from '../lib/beside-events.js';

const VIP = '198.19.0.10';
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];
const NODE_ADDR = '198.18.0.1';
const PROM_ADDR = '198.18.0.50';
const N = 40;
const EMPTY_VIP = '198.19.0.11';
const LOCAL_VIP = '198.19.0.12';
const LOCAL_NODEPORT = 30080;
const REJECTED = 7;
const DROPPED = 3;

let lab: Lab;
let node: LabNode;
let prom: External;
let client: Pod;
let weir: WeirNode;

/** `name{labels} value` samples of a text exposition. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function promQuery(q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const r = await prom.ns.exec('curl', ['-sS', '-m', '2', '--get', '--data-urlencode', `query=${q}`, `http://${PROM_ADDR}:9090/api/v1/query`]);
  const body = JSON.parse(r.stdout) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  assert.equal(body.status, 'success', r.stdout);
  return body.data.result;
}

before(async () => {
  lab = await Lab.create({ name: 'metrics-prom' });
  node = await lab.node('node1', { address: `${NODE_ADDR}/24`, podSubnet: '198.18.1.0/24' });
  prom = await lab.external('prom', { address: `${PROM_ADDR}/24` });
  const backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
  client = await lab.pod(node, 'client');
  await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
  weir = await WeirNode.create(lab, node, {
    connectTimeLb: 'off',
    metricsAddress: `${NODE_ADDR}:9745`,
    // GC passes and per-backend series, so that the scrape promtool checks has them
    extraArgs: ['--ct-gc-interval', '1s', '--service-stats', 'backend'],
  });
  weir.writeManifest('web.yaml', [
    service({ name: 'web', clusterIP: VIP, ports: PORTS }),
    endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) }),
  ]);
  const dir = join(lab.dir, 'prometheus');
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: weir\n    static_configs:\n      - targets: ['${NODE_ADDR}:9745']\n`,
  );
  const p = prom.ns.spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=${PROM_ADDR}:9090`],
    { label: 'prometheus [prom]' },
  );
  await prom.ns.waitForPort(9090, { host: PROM_ADDR, timeoutMs: 15_000 }).catch((e: Error) => {
    throw p.failure(e.message);
  });
});
after(async () => {
  await lab?.destroy();
  await runCleanups();
});

test('MS1 + MS2: promtool passes on a live scrape; Prometheus scrapes weir; PromQL, /metrics and `weir counters` all equal the connections sent', async () => {
  await weir.start();
  // promtool on a real scrape (lint: naming, units, help text)
  const scrape = await weir.http('/metrics');
  assert.equal(scrape.status, 200);
  const lint = await run('promtool', ['check', 'metrics'], { input: scrape.body, check: false });
  assert.equal(lint.code, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
  assert.equal((await weir.http('/readyz')).status, 200);
  assert.equal((await weir.http('/healthz')).status, 200);

  // N new connections over the TC path (the client pod is in no socket-LB cgroup)
  const r = await weir.spread(client.ns, VIP, 80, { proto: 'tcp', count: N, concurrency: 4 });
  assert.equal(r.failures, 0, r.errors.join('; '));
  assert.equal(
    Object.values(r.servers).reduce((a, b) => a + b, 0),
    N,
  );

  // Prometheus: the counter reaches N at a scrape (1 s interval) and stays there
  const q = 'weir_dataplane_packets_total{hook="from_pod",reason="service_nat"}';
  let value = -1;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const res = await promQuery(q);
    value = res.length ? Number(res[0]!.value[1]) : -1;
    if (value === N) break;
    await sleep(250);
  }
  assert.equal(value, N, `PromQL ${q} = ${value}, want ${N}`);
  assert.deepEqual(
    (await promQuery('up{job="weir"}')).map((x) => x.value[1]),
    ['1'],
  );
  const programmed = await promQuery('weir_frontends');
  assert.equal(programmed[0]?.value[1], '1');

  // `weir counters -o json` in the node and /metrics agree, row by row
  const cli = await node.ns.exec(binWeir, ['counters', '-o', 'json', '--bpf-root', lab.bpffs, '--instance', weir.instance]);
  const rows = JSON.parse(cli.stdout) as { hook: string; reason: string; packets: number | string; bytes: number | string }[];
  const m = samples((await weir.http('/metrics')).body);
  const nat = rows.find((x) => x.hook === 'from_pod' && x.reason === 'service_nat');
  assert.equal(Number(nat?.packets), N, `weir counters: ${JSON.stringify(nat)}`);
  for (const row of rows) {
    const packets = m.get(`weir_dataplane_packets_total{hook="${row.hook}",reason="${row.reason}"}`)!;
    const bytes = m.get(`weir_dataplane_bytes_total{hook="${row.hook}",reason="${row.reason}"}`)!;
    if (row.hook === 'from_host') {
      // Prometheus's own scrapes arrive on the node's eth0 between the two reads: only growth
      assert.ok(packets >= Number(row.packets) && bytes >= Number(row.bytes), `from_host/${row.reason}: /metrics ${packets} < cli ${row.packets}`);
      continue;
    }
    // the pods are idle now: exactly equal
    assert.equal(packets, Number(row.packets), `packets ${row.hook}/${row.reason}`);
    assert.equal(bytes, Number(row.bytes), `bytes ${row.hook}/${row.reason}`);
  }
  const exported = [...m.keys()].filter((k) => k.startsWith('weir_dataplane_packets_total{')).length;
  assert.equal(exported, rows.length, 'the same rows in both');
  // control-plane figures fed by the daemon
  assert.equal(m.get('weir_frontends'), 1);
  assert.equal(m.get('weir_source_events_total{kind="Service",type="upsert"}'), 1);
  assert.equal(m.get('weir_map_writes_total{map="weir_frontend4",op="update"}'), 1);
  assert.equal(m.get('weir_map_writes_total{map="weir_backend4",op="update"}'), 2);
  assert.equal(m.get('weir_sync_duration_seconds_count{kind="full"}')! >= 1, true);
  assert.equal(m.get('weir_map_capacity{map="weir_frontend4"}'), 131072, '--frontend-map-size default');
  // entry counts come from the background census (recounted within a second of a write), not the scrape
  let entries = m.get('weir_map_entries{map="weir_frontend4"}');
  for (let i = 0; i < 50 && entries !== 1; i++) {
    await new Promise((r) => setTimeout(r, 100));
    entries = samples((await weir.http('/metrics')).body).get('weir_map_entries{map="weir_frontend4"}');
  }
  assert.equal(entries, 1);
  assert.equal(m.get('weir_map_capacity{map="weir_sock_rev4"}')! > 0, true, 'every pinned map, weir_sock_rev4 included');
  assert.equal(m.get('weir_map_capacity{map="weir_sock_destroy4"}')! > 0, true, 'by its pin name, not the kernel name weir_sock_destr');
});

/** The sum of a metric's samples whose labels include every one of `labels` (`hook="from_pod"`). */
function sum(m: Map<string, number>, name: string, ...labels: string[]): number {
  let n = 0;
  for (const [k, v] of m) {
    if (k !== name && !k.startsWith(`${name}{`)) continue;
    const have = k.startsWith(`${name}{`) ? k.slice(name.length + 1, -1).split(',') : [];
    if (labels.every((l) => have.includes(l))) n += v;
  }
  return n;
}

test('MS4 (issue 15): a rejected and a dropped connection count as drops with their reasons, not as forwarded packets; promtool passes with every new metric', async () => {
  assert.ok(weir.process, 'the daemon of the first test runs');
  const before = samples((await weir.http('/metrics')).body);
  // a ClusterIP without endpoints (weir rejects: ICMP port unreachable) and an eTP=Local NodePort whose only
  // endpoint is on another node (this node drops what arrives for it)
  await weir.apply('drops.yaml', [
    service({ name: 'empty', clusterIP: EMPTY_VIP, ports: PORTS }),
    service({
      name: 'local',
      type: 'NodePort',
      clusterIP: LOCAL_VIP,
      externalTrafficPolicy: 'Local',
      ports: [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: LOCAL_NODEPORT }],
    }),
    endpointSlice({ name: 'local-1', service: 'local', ports: PORTS, endpoints: [{ ip: '198.18.2.10', node: 'node2' }] }),
  ]);
  const queued = samples((await weir.http('/metrics')).body);
  assert.equal(queued.get('kubeproxy_sync_proxy_rules_service_changes_total')! - (before.get('kubeproxy_sync_proxy_rules_service_changes_total') ?? 0), 2);
  assert.equal(queued.get('kubeproxy_sync_proxy_rules_endpoint_changes_total')! - (before.get('kubeproxy_sync_proxy_rules_endpoint_changes_total') ?? 0), 1);
  assert.equal(queued.get('kubeproxy_sync_proxy_rules_service_changes_pending'), 0, 'the sync took the queue');
  assert.equal(queued.get('kubeproxy_sync_proxy_rules_endpoint_changes_pending'), 0);
  const lastQueued = queued.get('kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds')!;
  assert.ok(lastQueued > Date.now() / 1000 - 60, `last queued ${lastQueued}`);
  assert.ok(queued.get('kubeproxy_sync_proxy_rules_last_timestamp_seconds')! >= lastQueued, 'synced after it was queued');
  assert.equal(queued.get('weir_service_ports_no_local_endpoints{traffic_policy="external"}'), 1, 'the Local NodePort');
  assert.equal(queued.get('weir_service_ports_no_local_endpoints{traffic_policy="internal"}'), 0);

  const rejected = await weir.spread(client.ns, EMPTY_VIP, 80, { count: REJECTED, concurrency: 1 });
  assert.equal(rejected.failures, REJECTED, 'every connection to the service without endpoints is refused');
  assert.ok(
    rejected.errors.every((e) => /ECONNREFUSED|EHOSTUNREACH/.test(e)),
    rejected.errors.join('; '),
  );
  const dropped = await weir.spread(prom.ns, NODE_ADDR, LOCAL_NODEPORT, { count: DROPPED, concurrency: DROPPED });
  assert.equal(dropped.failures, DROPPED, 'every connection to the Local NodePort without a local endpoint fails');

  const m = samples((await weir.http('/metrics')).body);
  const delta = (k: string) => (m.get(k) ?? 0) - (before.get(k) ?? 0);
  // one SYN per refused connection: the exact count, under its reason
  assert.equal(delta('weir_drops_total{hook="from_pod",reason="no_backend_reject"}'), REJECTED);
  assert.equal(delta('weir_dataplane_packets_total{hook="from_pod",reason="no_backend_reject"}'), REJECTED);
  // a dropped SYN is retransmitted: at least one per connection
  const localDrops = delta('weir_drops_total{hook="from_host",reason="no_local_backend_drop"}');
  assert.ok(localDrops >= DROPPED, `no_local_backend_drop ${localDrops}`);
  assert.equal(localDrops, delta('weir_dataplane_packets_total{hook="from_host",reason="no_local_backend_drop"}'));
  // not traffic: per hook, forwarded = every packet counted less the drops and the events beside a verdict
  for (const hook of ['from_pod', 'from_host']) {
    const all = sum(m, 'weir_dataplane_packets_total', `hook="${hook}"`);
    const drops = sum(m, 'weir_drops_total', `hook="${hook}"`);
    const events = BESIDE_EVENTS.map((r) => sum(m, 'weir_dataplane_packets_total', `hook="${hook}"`, `reason="${r}"`)).reduce((a, b) => a + b, 0);
    assert.equal(m.get(`weir_forwarded_packets_total{hook="${hook}"}`), all - drops - events, `${hook}: forwarded excludes the drops`);
  }
  assert.ok(sum(m, 'weir_drops_total', 'hook="from_pod"') >= REJECTED);
  // Prometheus sees the drop with its reason
  let promDrops = -1;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const res = await promQuery('weir_drops_total{hook="from_pod",reason="no_backend_reject"}');
    promDrops = res.length ? Number(res[0]!.value[1]) : -1;
    if (promDrops === m.get('weir_drops_total{hook="from_pod",reason="no_backend_reject"}')) break;
    await sleep(250);
  }
  assert.equal(promDrops, m.get('weir_drops_total{hook="from_pod",reason="no_backend_reject"}'), 'PromQL weir_drops_total');

  // a conntrack GC pass ran (--ct-gc-interval 1s) over the flows of the first test
  let scrape = '';
  let gc = new Map<string, number>();
  while (Date.now() < deadline + 10_000) {
    scrape = (await weir.http('/metrics')).body;
    gc = samples(scrape);
    if ((gc.get('weir_conntrack_gc_runs_total{family="ipv4",status="completed"}') ?? 0) > 0) break;
    await sleep(250);
  }
  assert.ok(gc.get('weir_conntrack_gc_runs_total{family="ipv4",status="completed"}')! > 0);
  assert.ok(gc.get('weir_conntrack_gc_entries{family="ipv4"}')! >= 0);
  // every new family of metrics is in this scrape, and promtool accepts it
  const names = new Set([...gc.keys()].map((k) => k.replace(/\{.*$/, '')));
  for (const name of [
    'weir_build_info',
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_eventloop_lag_seconds',
    'nodejs_eventloop_lag_p99_seconds',
    'nodejs_heap_size_used_bytes',
    'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
    'kubeproxy_sync_proxy_rules_service_changes_pending',
    'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
    'kubeproxy_sync_proxy_rules_service_changes_total',
    'kubeproxy_sync_proxy_rules_endpoint_changes_total',
    'weir_service_ports_no_local_endpoints',
    'weir_conntrack_gc_runs_total',
    'weir_conntrack_gc_duration_seconds_count',
    'weir_conntrack_gc_entries',
    'weir_drops_total',
    'weir_drop_bytes_total',
    'weir_forwarded_packets_total',
    'weir_forwarded_bytes_total',
    'weir_service_new_connections_total',
    'weir_service_backend_new_connections_total',
  ])
    assert.ok(names.has(name), `${name} is in the scrape`);
  const info = [...gc.keys()].find((k) => k.startsWith('weir_build_info{'))!;
  assert.match(info, /commit="([0-9a-f]{40}|unknown)"/);
  assert.match(info, /libbpf_version="\d+\.\d+"/);
  // per service port and per backend: the same connections
  assert.equal(gc.get(`weir_service_new_connections_total{service="default/web",frontend="${VIP}:80/tcp"}`), N);
  assert.equal(sum(gc, 'weir_service_backend_new_connections_total', 'service="default/web"'), N);
  const lint = await run('promtool', ['check', 'metrics'], { input: scrape, check: false });
  assert.equal(lint.code, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
  console.log(
    `# drops: no_backend_reject ${REJECTED}/${REJECTED} connections, no_local_backend_drop ${localDrops} SYNs for ${DROPPED} connections; ${names.size} metric names, ${gc.size} samples`,
  );
});
