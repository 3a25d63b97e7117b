// Issue 12, must-show 4, with `weir daemon` on two lab nodes: an eTP=Local LoadBalancer
// service whose one endpoint runs on node1. An external client on the underlay asks each
// node's healthCheckNodePort as a cloud load balancer would: node1 answers 200 with
// localEndpoints 1, node2 503 with 0 (kube-proxy's JSON and headers). Both nodes answer
// kube-proxy's node health server on the default 0.0.0.0:10256; a node the cluster autoscaler
// tainted fails /healthz (not /livez). Removing the endpoint turns node1 503, deleting the
// service closes the port, a port someone else holds is logged and counted, not fatal, and
// --nodeport-addresses narrows the addresses the port listens on.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Netns, type Pod } from '../lib/lab.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const HC_PORT = 32100;
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }];

/** The LoadBalancer service with eTP=Local and its health check node port, as the API server writes it. */
function webService(hcPort = HC_PORT, name = 'web', clusterIP = '198.19.0.40', nodePort = 30080): object {
  const ports = PORTS.map((p) => ({ ...p, nodePort }));
  const svc = service({ name, type: 'LoadBalancer', clusterIP, externalTrafficPolicy: 'Local', ports }) as { spec: object };
  return { ...svc, spec: { ...svc.spec, healthCheckNodePort: hcPort } };
}

interface HttpAnswer {
  /** curl's exit code: 0 answered, 7 refused */
  exitCode: number;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** GET with the response headers (curl -i), from `ns`. */
async function get(ns: Netns, url: string): Promise<HttpAnswer> {
  const r = await ns.exec('curl', ['-sS', '-i', '-m', '3', url], { check: false, timeoutMs: 8000 });
  if (r.code !== 0) return { exitCode: r.code ?? -1, status: 0, headers: {}, body: '' };
  const [head, ...rest] = r.stdout.split('\r\n\r\n');
  const lines = head!.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { exitCode: 0, status: Number(lines[0]!.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
}

/** Polls until `check` holds (the daemon acts after its sync; no wall-clock bound is asserted). */
async function eventually<T>(what: string, f: () => Promise<T>, check: (t: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = await f();
    if (check(t)) return t;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(t)}`);
    await sleep(50);
  }
}

describe('health check node ports and the node health server on two nodes', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let backend: Pod;
  let client: External;
  let weir1: WeirNode;
  let weir2: WeirNode;
  const both = () => [weir1, weir2];

  before(async () => {
    lab = await Lab.create({ name: 'hc-ports' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
    await lab.routePodSubnets();
    backend = await lab.pod(node1, 'be-a');
    await backend.ns.echoServer({ name: backend.name, port: 8080 });
    client = await lab.external('lb', { address: '198.18.0.100/24' });
    weir1 = await WeirNode.create(lab, node1, { connectTimeLb: 'off' });
    weir2 = await WeirNode.create(lab, node2, { connectTimeLb: 'off', metricsAddress: `${node2.address}:9745` });
    for (const w of both())
      w.writeManifest('web.yaml', [
        webService(),
        endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: [{ ip: backend.ip, node: node1.name }] }),
      ]);
    await Promise.all(both().map((w) => w.start()));
    for (const w of both()) await w.waitFor('health check port listening', { service: 'default/web', port: HC_PORT });
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('MS4: node1 (local endpoint) 200 with localEndpoints 1, node2 503 with 0: kube-proxy JSON and headers', async () => {
    const a1 = await get(client.ns, `http://${node1.address}:${HC_PORT}/any/path`);
    const a2 = await get(client.ns, `http://${node2.address}:${HC_PORT}/`);
    console.log(`# node1: ${a1.status} ${JSON.stringify(a1.body)}\n# node2: ${a2.status} ${JSON.stringify(a2.body)}`);
    assert.equal(a1.status, 200);
    assert.deepEqual(JSON.parse(a1.body), { service: { namespace: 'default', name: 'web' }, localEndpoints: 1, serviceProxyHealthy: true });
    assert.equal(a1.body, '{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 1,\n\t"serviceProxyHealthy": true\n}');
    assert.equal(a2.status, 503);
    assert.deepEqual(JSON.parse(a2.body), { service: { namespace: 'default', name: 'web' }, localEndpoints: 0, serviceProxyHealthy: true });
    for (const a of [a1, a2]) {
      assert.equal(a.headers['content-type'], 'application/json');
      assert.equal(a.headers['x-content-type-options'], 'nosniff');
    }
    assert.equal(a1.headers['x-load-balancing-endpoint-weight'], '1');
  });

  test('MS4: :10256/healthz and /livez answer 200 with kube-proxy JSON on both nodes (default --healthz-address)', async () => {
    for (const n of [node1, node2]) {
      const h = await get(client.ns, `http://${n.address}:10256/healthz`);
      console.log(`# ${n.name} /healthz: ${h.status} ${h.body}`);
      assert.equal(h.status, 200, h.body);
      assert.equal(h.headers['content-type'], 'application/json');
      const j = JSON.parse(h.body) as Record<string, unknown>;
      assert.equal(j.nodeEligible, true);
      assert.equal(j.healthy, true);
      assert.ok(!Number.isNaN(Date.parse(j.lastUpdated as string)) && !Number.isNaN(Date.parse(j.currentTime as string)), h.body);
      assert.deepEqual(Object.keys((j.status ?? {}) as object), ['IPv4'], 'one pipeline, reported per family like kube-proxy');
      const l = await get(client.ns, `http://${n.address}:10256/livez`);
      assert.equal(l.status, 200, l.body);
      assert.equal((JSON.parse(l.body) as Record<string, unknown>).nodeEligible, undefined, '/livez leaves nodeEligible out');
    }
  });

  test('the cluster autoscaler taints node2: /healthz 503 nodeEligible false, /livez still 200; untainted: 200 again', async () => {
    const node = (taints: object[]) => [{ apiVersion: 'v1', kind: 'Node', metadata: { name: node2.name }, spec: { taints } }];
    weir2.writeManifest('node.yaml', node([{ key: 'ToBeDeletedByClusterAutoscaler', value: '1700000000', effect: 'NoSchedule' }]));
    const h = await eventually(
      'tainted /healthz',
      () => get(client.ns, `http://${node2.address}:10256/healthz`),
      (a) => a.status !== 200,
    );
    assert.equal(h.status, 503);
    assert.equal((JSON.parse(h.body) as Record<string, unknown>).nodeEligible, false);
    assert.equal((await get(client.ns, `http://${node2.address}:10256/livez`)).status, 200);
    assert.equal((await get(client.ns, `http://${node1.address}:10256/healthz`)).status, 200, 'node1 is not tainted');
    weir2.writeManifest('node.yaml', node([]));
    await eventually(
      'untainted /healthz',
      () => get(client.ns, `http://${node2.address}:10256/healthz`),
      (a) => a.status === 200,
    );
  });

  test('a port someone else holds: logged and counted (weir_errors_total{kind="healthcheck"}), the daemon keeps serving', async () => {
    // a listener of its own in node2 holds the port before the service asks for it
    const busy = 32101;
    const holder = node2.ns.spawn(process.execPath, ['-e', `require('net').createServer().listen(${busy}, () => console.log('listening'))`], {
      label: 'port holder',
    });
    await holder.waitForOutput(/listening/, 5000);
    const m = weir2.mark();
    await weir2.apply('busy.yaml', [webService(busy, 'busy', '198.19.0.41', 30081)]);
    const failed = await weir2.waitFor('health check port failed', { service: 'default/busy', port: busy }, 5000, m);
    console.log(`# ${JSON.stringify(failed)}`);
    const metrics = await weir2.http('/metrics');
    assert.match(metrics.body, /^weir_errors_total\{kind="healthcheck"\} [1-9]/m);
    assert.equal((await get(client.ns, `http://${node2.address}:${HC_PORT}/`)).status, 503, 'the other service is still served');
    assert.equal((await get(client.ns, `http://${node2.address}:10256/healthz`)).status, 200);
    // freed: the next sync retries and opens it
    await holder.stop();
    await weir2.apply('nudge.yaml', [service({ name: 'nudge', clusterIP: '198.19.0.42', ports: [{ port: 80 }] })]);
    await weir2.waitFor('health check port listening', { service: 'default/busy', port: busy }, 5000, m);
    assert.equal((await get(client.ns, `http://${node2.address}:${busy}/`)).status, 503);
  });

  test('the endpoint goes: node1 turns 503 with 0; the service goes: the port stops listening', async () => {
    await weir1.apply('web.yaml', [webService(), endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: [] })]);
    const a = await eventually(
      'node1 without endpoint',
      () => get(client.ns, `http://${node1.address}:${HC_PORT}/`),
      (x) => x.status !== 200,
    );
    assert.equal(a.status, 503);
    assert.equal((JSON.parse(a.body) as { localEndpoints: number }).localEndpoints, 0);
    const m = weir1.mark();
    weir1.removeManifest('web.yaml');
    await weir1.waitFor('health check port closed', { service: 'default/web', port: HC_PORT }, 5000, m);
    const gone = await get(client.ns, `http://${node1.address}:${HC_PORT}/`);
    assert.equal(gone.exitCode, 7, 'connection refused: nothing listens');
    assert.equal((await get(client.ns, `http://${node2.address}:${HC_PORT}/`)).status, 503, 'node2 still has the service');
  });

  test('--nodeport-addresses: the port listens on the selected node addresses only (all of them without the flag)', async () => {
    assert.equal((await get(node2.ns, `http://127.0.0.1:${HC_PORT}/`)).status, 503, 'default: every address, loopback too');
    await weir2.terminate();
    weir2.configure({ extraArgs: ['--nodeport-addresses', '198.18.0.0/24'] });
    await weir2.start();
    await weir2.waitFor('health check port listening', { service: 'default/web', port: HC_PORT, addresses: node2.address });
    assert.equal((await get(client.ns, `http://${node2.address}:${HC_PORT}/`)).status, 503);
    assert.equal((await get(node2.ns, `http://127.0.0.1:${HC_PORT}/`)).exitCode, 7, 'not on loopback: refused');
  });
});
