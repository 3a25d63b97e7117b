// Every `weir` inspection command against a live lab node (weir daemon running on a
// manifests dir, real traffic through its services), run as an operator runs them: the real
// bin/weir inside the node's network namespace. Each `-o json` output parses and agrees
// with the traffic sent; `weir explain` predicts the backend set and verdict real
// connections get (ClusterIP, NodePort, no endpoints) without changing any map.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode } from '../lib/weir-node.js';

const CLUSTER_IP = '198.19.0.40';
const EMPTY_IP = '198.19.0.41';
const NODE_PORT = 30400;

describe('weir CLI on a live node', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let outside: External;
  let weir: WeirNode;

  /** bin/weir in the node's netns; -o json parsed. */
  const cli = <T = unknown>(...args: string[]): T => weir.cli<T>(...args);
  const mapsSnapshot = () =>
    JSON.stringify(
      [cli('services'), cli('ct', 'list'), cli('affinity', 'list')].map((x) => (Array.isArray(x) ? x.map((r) => ({ ...r, ageS: 0, idleS: 0 })) : x)),
    );

  before(async () => {
    lab = await Lab.create({ name: 'cli-live' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
    client = await lab.pod(node, 'client');
    outside = await lab.external('outside', { address: '198.18.0.100/24' });
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'host-only', metricsAddress: '127.0.0.1:9745', extraArgs: ['--service-stats', 'backend'] });
    const ports = [{ name: 'http', port: 80, targetPort: 8080, nodePort: NODE_PORT }];
    weir.writeManifest('web.yaml', [
      service({ name: 'web', type: 'NodePort', clusterIP: CLUSTER_IP, ports }),
      endpointSlice({ name: 'web-1', service: 'web', ports, endpoints: backends.map((b) => ({ ip: b.ip, node: 'node1' })) }),
      service({ name: 'empty', clusterIP: EMPTY_IP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    ]);
    await weir.start();
  });
  after(async () => {
    await runCleanups();
    await lab?.destroy();
  });

  test('services, explain, traffic, ct, counters agree; explain changes nothing', async () => {
    type Svc = { frontend: string; protocol: string; flags: string[]; backends: Array<{ address: string; port: number; newConnections: number }> };
    const svcs = cli<Svc[]>('services');
    const web = svcs.find((s) => s.frontend === `${CLUSTER_IP}:80`)!;
    assert.deepEqual(web.backends.map((b) => `${b.address}:${b.port}`).sort(), backends.map((b) => `${b.ip}:8080`).sort());
    assert.deepEqual(svcs.find((s) => s.frontend === `${EMPTY_IP}:80`)!.flags, ['reject']);
    assert.ok(svcs.some((s) => s.frontend === `${node.address}:${NODE_PORT}` && s.flags.includes('nodeport')));

    type Ex = { verdict: string; hook: string; candidates: Array<{ address: string }> };
    const before = mapsSnapshot();
    const exCluster = cli<Ex>('explain', client.ip, CLUSTER_IP, '80/tcp');
    const exNodePort = cli<Ex>('explain', outside.address, node.address, `${NODE_PORT}/tcp`);
    const exEmpty = cli<Ex>('explain', client.ip, EMPTY_IP, '80/tcp');
    assert.equal(mapsSnapshot(), before, 'explain wrote nothing');
    assert.deepEqual([exCluster.hook, exCluster.verdict], ['from_pod', 'dnat'], 'auto: the client is a local pod');
    assert.deepEqual([exNodePort.hook, exNodePort.verdict], ['from_host', 'dnat'], 'auto: the outside client is not');
    assert.equal(exEmpty.verdict, 'reject');

    // real traffic: 40 connections from the pod (TC path: host-only socket LB), 6 from outside
    const spread = await weir.spread(client.ns, CLUSTER_IP, 80, { count: 40 });
    assert.equal(spread.failures, 0, spread.errors.join('; '));
    const nameToIp = new Map(backends.map((b) => [b.name, b.ip]));
    const predicted = new Set(exCluster.candidates.map((c) => c.address));
    for (const name of Object.keys(spread.servers)) assert.ok(predicted.has(nameToIp.get(name)!), `${name} was predicted`);
    const outsidePeers = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await outside.ns.echo(node.address, NODE_PORT, { proto: 'tcp' });
      assert.ok(exNodePort.candidates.some((c) => c.address === nameToIp.get(r.reply.server)));
      outsidePeers.add(r.reply.peer);
    }
    assert.deepEqual([...outsidePeers], [outside.address]);
    const refused = await client.ns.curl(`http://${EMPTY_IP}:80/`, { check: false, timeoutMs: 2000 });
    assert.equal(refused.exitCode, 7, 'the no-endpoint service refuses, as explain said');

    // per-backend new connections: `weir services` and /metrics agree with what the client saw
    const webAfter = cli<Svc[]>('services').find((s) => s.frontend === `${CLUSTER_IP}:80`)!;
    const seen = Object.fromEntries(backends.map((b) => [b.ip, spread.servers[b.name] ?? 0]));
    assert.deepEqual(Object.fromEntries(webAfter.backends.map((b) => [b.address, b.newConnections])), seen);
    assert.equal(
      webAfter.backends.reduce((n, b) => n + b.newConnections, 0),
      40,
    );
    const metrics = (await weir.http('/metrics')).body;
    const series = [...metrics.matchAll(/^weir_service_backend_new_connections_total\{service="default\/web",frontend="([^"]+)",backend="([^"]+)"\} (\d+)$/gm)];
    const fromMetrics: Record<string, number> = {};
    for (const [, fe, be, n] of series) if (fe === `${CLUSTER_IP}:80/tcp`) fromMetrics[be!.split(':')[0]!] = Number(n);
    assert.deepEqual(fromMetrics, Object.fromEntries(Object.entries(seen).filter(([, n]) => n > 0)));
    const nodePortConns = series.filter(([, fe]) => fe === `${node.address}:${NODE_PORT}/tcp`).reduce((n, [, , , c]) => n + Number(c), 0);
    assert.equal(nodePortConns, 6, 'the NodePort flows from outside');

    // nat list: the 6 NodePort flows, one row each, client -> node:nodePort -> a backend
    type Nat = { client: string; frontend: string; backend: string; state: string; paired: boolean; packetsOut: number; packetsIn: number };
    const nat = cli<Nat[]>('nat', 'list', '--address', outside.address);
    assert.equal(nat.length, 6);
    for (const r of nat) {
      assert.equal(r.frontend, `${node.address}:${NODE_PORT}`);
      assert.ok(
        backends.some((b) => r.backend === `${b.ip}:8080`),
        r.backend,
      );
      assert.ok(r.paired && r.packetsOut >= 3 && r.packetsIn >= 2, JSON.stringify(r));
      assert.ok(['established', 'closing', 'closed'].includes(r.state), r.state);
    }

    type Ct = { protocol: string; source: string; destination: string; flags: string[] };
    const ct = cli<Ct[]>('ct', 'list', '--port', String(NODE_PORT));
    assert.equal(ct.filter((e) => e.destination === `${node.address}:${NODE_PORT}`).length, 6, 'one NodePort flow per connection from outside');
    assert.ok(ct.every((e) => e.flags.includes('nodeport')));

    type Row = { hook: string; reason: string; packets: number };
    const counters = cli<Row[]>('counters');
    const get = (hook: string, reason: string) => counters.find((r) => r.hook === hook && r.reason === reason)?.packets ?? 0;
    assert.equal(get('from_pod', 'service_nat'), 40);
    assert.equal(get('from_host', 'service_nat'), 6);
    assert.equal(get('from_pod', 'no_backend_reject'), 1);

    const flushed = cli<Array<{ deleted: number }>>('ct', 'flush', '--address', outside.address);
    assert.equal(flushed[0]!.deleted, 12, 'both directions of the 6 NodePort flows');
    assert.deepEqual(cli('ct', 'list', '--address', outside.address), []);
  });

  test('maps and ifaces show what the daemon pinned and attached', () => {
    type MapRow = { name: string; entries: number; capacity: number };
    const maps = cli<MapRow[]>('maps');
    for (const m of ['weir_frontend4', 'weir_backend4', 'weir_ct4_v2', 'weir_affinity4', 'weir_counters'])
      assert.ok(
        maps.some((r) => r.name === m),
        m,
      );
    assert.equal(maps.find((r) => r.name === 'weir_frontend4')!.entries, cli<unknown[]>('services').length);

    type If = { interface: string; hook: string; program: string; pinned: string };
    const ifaces = cli<If[]>('ifaces');
    for (const p of [...backends, client]) {
      assert.ok(
        ifaces.some((r) => r.interface === p.hostIfname && r.hook === 'tc ingress' && r.program === 'weir_from_pod' && r.pinned),
        `${p.name} from_pod`,
      );
      assert.ok(
        ifaces.some((r) => r.interface === p.hostIfname && r.hook === 'tc egress' && r.program === 'weir_to_pod'),
        `${p.name} to_pod`,
      );
    }
    assert.ok(ifaces.some((r) => r.interface === 'eth0' && r.program === 'weir_from_host'));
  });
});
