// Issue 5, must-shows 1 and 2, against `weir daemon --metrics-address` in a lab node: promtool
// (Debian's prometheus package) checks a real scrape; a real Prometheus server in its own lab
// namespace scrapes the node every second, and after N new TCP connections from a pod through
// a ClusterIP on the TC path, PromQL returns weir_dataplane_packets_total{hook="from_pod",
// reason="service_nat"} = N; `weir counters -o json` (run in the node) agrees with /metrics.

import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, run, type External, type LabNode, type Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const VIP = '198.19.0.10';
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];
const NODE_ADDR = '198.18.0.1';
const PROM_ADDR = '198.18.0.50';
const N = 40;

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
  weir = await WeirNode.create(lab, node, { connectTimeLb: 'off', metricsAddress: `${NODE_ADDR}:9963` });
  weir.writeManifest('web.yaml', [
    service({ name: 'web', clusterIP: VIP, ports: PORTS }),
    endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) }),
  ]);
  const dir = join(lab.dir, 'prometheus');
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: weir\n    static_configs:\n      - targets: ['${NODE_ADDR}:9963']\n`,
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
  assert.equal(m.get('weir_map_entries{map="weir_frontend4"}'), 1);
});
