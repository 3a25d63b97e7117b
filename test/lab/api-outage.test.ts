// Issue 15, must-show 2: the fake API server down for 3 minutes (WEIR_TEST_OUTAGE_SECONDS to
// shorten it while iterating) under `weir daemon --kubeconfig --api-outage-bound 10s` in a lab
// node. Polled every second, /healthz (liveness) stays 200 throughout: a control-plane outage
// must not restart weir on every node. /readyz turns 503 after the bound with a body naming the
// outage, `weir status` (table and JSON) reports the API unreachable since its last contact, and
// new connections to a ClusterIP (from a pod) and a NodePort (from outside the node) keep being
// answered (probers count the failures: 0). A Service added, one deleted and an endpoint change
// made in the server's store while it was down are in the maps after it comes back; readiness
// returns and status says ok. The periodic resync runs every 5 s, so its liveness watchdog
// (3 × 5 s + 30 s) would have failed /healthz had the outage stalled it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import type { Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { sleep } from '../lib/proc.js';
import { probe, type Attempt } from '../lib/prober.js';
import { beIp, endpointSlice, kubeLab, mapsView, service, serverView, svcIp, until, type KubeLab } from './kube-lab.js';

const OUTAGE_S = Number(process.env.WEIR_TEST_OUTAGE_SECONDS ?? 180);
const BOUND_S = 10;
const WEB_IP = '198.19.200.1';
const NODE_IP = '198.18.0.1';
const NODE_PORT = 30080;
const ADDRESS = '127.0.0.1:9745';
const N = 30;

interface StatusJson {
  healthy: boolean;
  ready: boolean;
  problems: string[];
  kubernetesApi?: { state: string; lastContact?: string; unreachableSeconds?: number };
}

/** The ClusterIP frontends only (198.19.0.0/16): the NodePort's node-address frontends are not in serverView. */
const clusterIpView = (v: Record<string, string[]>) => Object.fromEntries(Object.entries(v).filter(([k]) => k.startsWith('198.19.')));

const failures = (a: Attempt[]) => a.filter((x) => !x.ok);

describe(`API server down for ${OUTAGE_S} s (--api-outage-bound ${BOUND_S}s)`, () => {
  let k: KubeLab;
  let backend: Pod;
  let client: Pod;

  const status = async (...args: string[]) => k.node.ns.exec(binWeir, ['status', '--address', ADDRESS, ...args], { check: false, timeoutMs: 30_000 });

  const converged = async (what: string, timeoutMs: number) => {
    let want: Record<string, string[]> = {};
    await until(
      async () => {
        want = await serverView(k.server);
        return JSON.stringify(clusterIpView(mapsView(k.weir.pinDir))) === JSON.stringify(want);
      },
      () => `${what}: maps differ from the server\n${k.weir.runLines().slice(-8).join('\n')}`,
      timeoutMs,
      100,
    );
    assert.deepEqual(clusterIpView(mapsView(k.weir.pinDir)), want, what);
  };

  before(async () => {
    k = await kubeLab('api-outage', { weir: { metricsAddress: ADDRESS, resyncInterval: '5s', extraArgs: ['--api-outage-bound', `${BOUND_S}s`] } });
    backend = await k.lab.pod(k.node, 'web-a');
    client = await k.lab.pod(k.node, 'client');
    await backend.ns.echoServer({ name: 'web-a', port: 8080 });
    const nodePort = service('default', 'web-np', '198.19.200.2') as { spec: Record<string, unknown> };
    const objects = [
      service('default', 'web', WEB_IP),
      endpointSlice('default', 'web', 'web-1', [backend.ip]),
      {
        ...nodePort,
        spec: { ...nodePort.spec, type: 'NodePort', ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: NODE_PORT }] },
      },
      endpointSlice('default', 'web-np', 'web-np-1', [backend.ip]),
    ];
    for (let i = 0; i < N; i++) objects.push(service('shop', `svc-${i}`, svcIp(i)), endpointSlice('shop', `svc-${i}`, `svc-${i}-a`, [beIp(i, 0)]));
    await k.server.apply(objects);
    await k.weir.start(20_000);
    await converged('after start', 10_000);
  });
  after(async () => {
    await k?.lab.destroy();
    await runCleanups();
  });

  test('liveness stays 200, readiness and weir status report the outage, traffic flows, recovery re-syncs', async () => {
    assert.equal((await k.weir.http('/healthz')).status, 200);
    assert.equal((await k.weir.http('/readyz')).status, 200);
    const okBefore = await status('-o', 'json');
    assert.equal(okBefore.code, 0, okBefore.stderr);
    assert.equal((JSON.parse(okBefore.stdout) as StatusJson).kubernetesApi?.state, 'ok');

    // a new connection every 100 ms to the ClusterIP (from a pod) and to the NodePort (from the
    // API server's own namespace on the underlay: outside the node)
    const clusterIp = probe(client.ns, WEB_IP, 80, { every: 100, timeoutMs: 1000 });
    const nodePort = probe(k.api.ns, NODE_IP, NODE_PORT, { every: 100, timeoutMs: 1000 });
    await until(
      () => clusterIp.attempts().some((a) => a.ok) && nodePort.attempts().some((a) => a.ok),
      () => `probers: ClusterIP ${JSON.stringify(clusterIp.attempts().slice(-3))}, NodePort ${JSON.stringify(nodePort.attempts().slice(-3))}`,
      10_000,
    );

    const stoppedAt = Date.now();
    await k.server.stop();
    // while down, the cluster changes (an etcd-backed server has them on restart)
    await k.server.apply([
      service('shop', 'svc-late', svcIp(150)),
      endpointSlice('shop', 'svc-late', 'svc-late-a', [beIp(150, 0)]),
      endpointSlice('shop', 'svc-5', 'svc-5-a', [beIp(5, 1), beIp(5, 2)]),
    ]);
    await k.server.delete([
      { kind: 'Service', namespace: 'shop', name: 'svc-20' },
      { kind: 'EndpointSlice', namespace: 'shop', name: 'svc-20-a' },
    ]);

    // once a second for the whole outage: liveness, readiness; status once readiness failed
    const healthz = { polls: 0, not200: [] as string[] };
    let notReadyAt: number | undefined;
    let notReadyBody = '';
    let table: string | undefined;
    let json: StatusJson | undefined;
    let statusCode: number | null | undefined;
    while (Date.now() - stoppedAt < OUTAGE_S * 1000) {
      const tick = Date.now();
      const h = await k.weir.http('/healthz');
      healthz.polls++;
      if (h.status !== 200) healthz.not200.push(`${Math.round((tick - stoppedAt) / 1000)}s: ${h.status} ${h.body.trim()}`);
      const r = await k.weir.http('/readyz');
      if (r.status === 503 && notReadyAt === undefined) {
        notReadyAt = tick;
        notReadyBody = r.body;
      }
      if (notReadyAt !== undefined && table === undefined) {
        const t = await status();
        statusCode = t.code;
        table = t.stdout;
        json = JSON.parse((await status('-o', 'json')).stdout) as StatusJson;
      }
      await sleep(Math.max(0, tick + 1000 - Date.now()));
    }
    const outageMs = Date.now() - stoppedAt;
    const duringClusterIp = clusterIp.attempts().filter((a) => a.start >= stoppedAt);
    const duringNodePort = nodePort.attempts().filter((a) => a.start >= stoppedAt);

    console.log(`# API outage ${(outageMs / 1000).toFixed(0)} s: /healthz polled ${healthz.polls} times, non-200: ${healthz.not200.length}`);
    console.log(
      `# /readyz 503 ${notReadyAt === undefined ? 'never' : `${notReadyAt - stoppedAt} ms`} after the stop (bound ${BOUND_S} s): ${notReadyBody.trim()}`,
    );
    console.log(`# weir status (exit ${statusCode}):\n${(table ?? '').trimEnd().replace(/^/gm, '#   ')}`);
    console.log(
      `# during the outage: ClusterIP ${duringClusterIp.length} connections, ${failures(duringClusterIp).length} failed; ` +
        `NodePort ${duringNodePort.length} connections, ${failures(duringNodePort).length} failed`,
    );
    assert.deepEqual(healthz.not200, [], 'liveness never failed during the API outage');
    assert.ok(notReadyAt !== undefined, '/readyz turned 503 during the outage');
    assert.match(notReadyBody, new RegExp(`^not ready: kubernetes API unreachable for \\d+\\.\\ds \\(bound ${BOUND_S}\\.0s\\)`));
    assert.equal(statusCode, 1, 'weir status exits 1 while not ready');
    assert.match(table ?? '', /: healthy, NOT READY\n/);
    assert.match(table ?? '', /\n {2}kubernetes API: unreachable since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \((\d+m )?\d+s\)\n/);
    assert.match(table ?? '', /\n {2}not ready: kubernetes API unreachable for /);
    assert.equal(json?.healthy, true);
    assert.equal(json?.ready, false);
    assert.equal(json?.kubernetesApi?.state, 'unreachable');
    assert.ok(Date.parse(json?.kubernetesApi?.lastContact ?? '') <= stoppedAt + 1000, `last contact ${json?.kubernetesApi?.lastContact} before the stop`);
    assert.ok((json?.kubernetesApi?.unreachableSeconds ?? 0) >= BOUND_S, JSON.stringify(json?.kubernetesApi));
    const metricsDown = (await k.weir.http('/metrics')).body;
    assert.match(metricsDown, /^weir_k8s_api_connected 0$/m);
    assert.ok(duringClusterIp.length > 0 && duringNodePort.length > 0, 'the probers ran through the outage');
    assert.deepEqual(failures(duringClusterIp), [], 'ClusterIP connections failed during the outage');
    assert.deepEqual(failures(duringNodePort), [], 'NodePort connections failed during the outage');

    // the API server comes back with what changed meanwhile
    await k.server.restart();
    const restartedAt = Date.now();
    // the source retries with backoff capped at 30 s (plus jitter): the maps converge within it
    await converged('after the API server came back', 60_000);
    const syncedMs = Date.now() - restartedAt;
    await until(
      async () => (await k.weir.http('/readyz')).status === 200,
      () => '/readyz back to 200',
      15_000,
      200,
    );
    const readyMs = Date.now() - restartedAt;
    const view = mapsView(k.weir.pinDir);
    assert.deepEqual(view[`${svcIp(150)}:80/6`], [`${beIp(150, 0)}:8080`], 'the service added during the outage');
    assert.deepEqual(view[`${svcIp(5)}:80/6`], [`${beIp(5, 1)}:8080`, `${beIp(5, 2)}:8080`], 'the endpoints changed during the outage');
    assert.equal(view[`${svcIp(20)}:80/6`], undefined, 'the service deleted during the outage');
    const after = await status('-o', 'json');
    assert.equal(after.code, 0, after.stdout + after.stderr);
    const s = JSON.parse(after.stdout) as StatusJson;
    assert.deepEqual([s.healthy, s.ready, s.kubernetesApi?.state], [true, true, 'ok']);
    assert.match((await status()).stdout, /\n {2}kubernetes API: ok\n/);
    const metrics = (await k.weir.http('/metrics')).body;
    assert.match(metrics, /^weir_k8s_api_connected 1$/m);
    assert.ok(Number(/^weir_source_errors_total\{reason="api_list_watch"\} (\d+)/m.exec(metrics)?.[1]) > 0, 'API errors counted');
    assert.ok(Number(/^weir_errors_total\{kind="api"\} (\d+)/m.exec(metrics)?.[1]) > 0, 'API errors counted by kind');
    assert.equal((await k.weir.http('/healthz')).status, 200);

    const allClusterIp = await clusterIp.stop();
    const allNodePort = await nodePort.stop();
    console.log(`# recovery: maps equal the server ${syncedMs} ms after the restart, /readyz 200 after ${readyMs} ms`);
    console.log(
      `# whole test: ClusterIP ${allClusterIp.length} connections, ${failures(allClusterIp).length} failed; ` +
        `NodePort ${allNodePort.length} connections, ${failures(allNodePort).length} failed`,
    );
    assert.deepEqual(failures(allClusterIp), [], 'ClusterIP connections failed');
    assert.deepEqual(failures(allNodePort), [], 'NodePort connections failed');
  });
});
