// Issue 3, must-shows 8, 4 and 9, with `weir daemon` in a lab node: kill -9 of weir while a TCP
// stream runs through a ClusterIP (the stream goes on; the next weir adopts the maps and writes
// nothing); drift behind weir's back is repaired by the resync; a terminating backend keeps its
// established connection and gets no new ones; a removed backend's UDP conntrack entries go at
// once (its UDP flow is re-balanced) and connected UDP sockets to it are destroyed; bad input
// is logged and skipped while every other service keeps working.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap, type WeirCt4, type WeirCt4Key, type WeirFrontend4Key } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type Cgroup, type LabNode, type Pod } from '../lib/lab.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, service, WeirNode, type EndpointSpec, type PortSpec } from '../lib/weir-node.js';

const VIP = '198.19.0.20';
const PORTS: PortSpec[] = [
  { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' },
  { name: 'udp', port: 53, targetPort: 8080, protocol: 'UDP' },
];

function ctEntries(pinDir: string): Array<[WeirCt4Key, WeirCt4]> {
  const m = typedMap(BpfMap.openPinned(`${pinDir}/weir_ct4_v2`), codecFor('weir_ct4_key'), codecFor('weir_ct4'));
  try {
    return [...m.entries()] as Array<[WeirCt4Key, WeirCt4]>;
  } finally {
    m.map.close();
  }
}

const ctKey = (k: WeirCt4Key) => `${k.protocol}:${k.saddr}:${k.sport}>${k.daddr}:${k.dport}`;

/** Conntrack keys of client -> VIP:port now (to tell a new flow from earlier ones). */
function flowKeys(pinDir: string, client: string, port: number, protocol: number): Set<string> {
  return new Set(ctEntries(pinDir).filter(([k]) => k.saddr === client && k.daddr === VIP && k.dport === port && k.protocol === protocol).map(([k]) => ctKey(k)));
}

/** The backend a new flow client -> VIP:port (not in `before`) was DNAT'd to. */
function backendOfNewFlow(pinDir: string, before: Set<string>, client: string, port: number, protocol: number): string | undefined {
  const e = ctEntries(pinDir).find(([k]) => k.saddr === client && k.daddr === VIP && k.dport === port && k.protocol === protocol && !before.has(ctKey(k)));
  return e?.[1].nat_daddr;
}

async function until<T>(f: () => T | undefined, what: string, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('weir daemon lifecycle', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let cg: Cgroup;
  let weir: WeirNode;
  const byIp = (ip: string) => backends.find((b) => b.ip === ip)!;
  const slice = (eps: EndpointSpec[]) => endpointSlice({ name: 'app-1', service: 'app', ports: PORTS, endpoints: eps });
  const all = () => backends.map((b) => ({ ip: b.ip, node: node.name }));

  before(async () => {
    lab = await Lab.create({ name: 'svc-lifecycle' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [];
    for (const n of ['be-a', 'be-b', 'be-c']) backends.push(await lab.pod(node, n));
    client = await lab.pod(node, 'client');
    cg = await lab.cgroup('pods');
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    weir = await WeirNode.create(lab, node, { cgroup: cg, connectTimeLb: 'on' });
    weir.writeManifest('app.yaml', [service({ name: 'app', clusterIP: VIP, ports: PORTS })]);
    weir.writeManifest('app-slice.yaml', [slice(all())]);
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('MS8: kill -9 during a TCP stream through the ClusterIP: the stream continues; the new weir adopts and writes 0', async () => {
    // the TC path (client outside the socket-LB cgroup): per-packet NAT that must survive
    const flow = weir.flow(client.ns, VIP, 80, { proto: 'tcp', seconds: 4, interval: 20 });
    await sleep(700);
    await weir.kill9();
    await sleep(700);
    const t0 = Date.now();
    const ready = await weir.start();
    const readyMs = Date.now() - t0;
    const r = await flow.result;
    assert.equal(r.error, undefined);
    assert.ok(r.sent > 150, `sent ${r.sent}`);
    assert.ok(r.received >= r.sent - 2, `received ${r.received} of ${r.sent}`);
    assert.equal(r.servers.length, 1, `one backend all along: ${JSON.stringify(r.servers)}`);
    assert.ok(r.maxGapMs < 500, `longest gap ${r.maxGapMs} ms`);
    assert.equal(ready.writes, '0', 'nothing changed: zero writes');
    assert.equal(weir.events('sync')[0]!.writes, '0');
    assert.equal(ready.attached, '0', 'links adopted, none created');
    console.log(`# restart: ready in ${readyMs} ms (${ready.ms} ms inside weir), writes=${ready.writes}, adoptedLinks=${ready.adoptedLinks}`);
  });

  test('drift behind weir\'s back is repaired by the periodic resync (counted)', async () => {
    const fe = typedMap(BpfMap.openPinned(`${weir.pinDir}/weir_frontend4`), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
    try {
      const key: WeirFrontend4Key = { address: VIP, port: 80, protocol: 6, scope: 0 };
      assert.ok(fe.get(key), 'frontend present');
      const m = weir.mark();
      fe.delete(key);
      const line = await weir.waitFor('resync', { repairs: 1 }, 5000, m);
      assert.equal(line.level, 'warn');
      assert.ok(fe.get(key), 'frontend rewritten');
    } finally {
      fe.map.close();
    }
    const r = await weir.spread(client.ns, VIP, 80, { count: 30 });
    assert.equal(r.failures, 0);
  });

  test('MS4: a terminating backend keeps its established TCP connection and gets no new ones', async () => {
    const before = flowKeys(weir.pinDir, client.ip, 80, 6);
    const flow = weir.flow(client.ns, VIP, 80, { proto: 'tcp', seconds: 3, interval: 20 });
    const busy = await until(() => backendOfNewFlow(weir.pinDir, before, client.ip, 80, 6), 'the flow in conntrack');
    await weir.apply('app-slice.yaml', [slice(all().map((e) => (e.ip === busy ? { ...e, ready: false, serving: true, terminating: true } : e)))]);
    for (const cgroup of [undefined, cg]) {
      const r = await weir.spread(client.ns, VIP, 80, { count: 60, ...(cgroup ? { cgroup } : {}) });
      assert.equal(r.failures, 0, r.errors.join('; '));
      assert.equal(r.servers[byIp(busy).name], undefined, `no new connection to the terminating backend: ${JSON.stringify(r.servers)}`);
    }
    const r = await flow.result;
    assert.equal(r.error, undefined);
    assert.deepEqual(r.servers, [[byIp(busy).name, r.received]], 'the established connection stayed on its backend');
    assert.ok(r.received >= r.sent - 2, `received ${r.received} of ${r.sent}`);
    await weir.apply('app-slice.yaml', [slice(all())]);
  });

  test('MS4: a removed backend: its UDP conntrack entries go at once, its UDP flow moves, no new connection reaches it', async () => {
    const before = flowKeys(weir.pinDir, client.ip, 53, 17);
    const flow = weir.flow(client.ns, VIP, 53, { proto: 'udp', seconds: 3, interval: 20 });
    const gone = await until(() => backendOfNewFlow(weir.pinDir, before, client.ip, 53, 17), 'the UDP flow in conntrack');
    await sleep(300);
    const m = weir.mark();
    await weir.apply('app-slice.yaml', [slice(all().filter((e) => e.ip !== gone))]);
    const cleanup = await weir.waitFor('cleanup', {}, 2000, m);
    assert.ok(Number(cleanup.conntrackDeleted) >= 2, `conntrack entries deleted: ${cleanup.conntrackDeleted}`);
    const r = await flow.result;
    assert.equal(r.error, undefined);
    const names = r.servers.map(([n]) => n);
    assert.equal(names[0], byIp(gone).name);
    assert.ok(names.length >= 2 && names.at(-1) !== byIp(gone).name, `the flow moved to another backend: ${JSON.stringify(r.servers)}`);
    assert.ok(!ctEntries(weir.pinDir).some(([k, v]) => k.protocol === 17 && (v.nat_daddr === gone || k.saddr === gone)), 'no UDP conntrack entry of the removed backend');
    for (const proto of ['tcp', 'udp'] as const) {
      const s = await weir.spread(client.ns, VIP, proto === 'tcp' ? 80 : 53, { proto, count: 60, cgroup: cg });
      assert.equal(s.failures, 0, s.errors.join('; '));
      assert.equal(s.servers[byIp(gone).name], undefined, `${proto}: ${JSON.stringify(s.servers)}`);
    }
    await weir.apply('app-slice.yaml', [slice(all())]);
  });

  test('MS4: connected UDP sockets to a removed backend (socket LB) are destroyed', async () => {
    const flow = weir.flow(client.ns, VIP, 53, { proto: 'udp', seconds: 2, interval: 20, cgroup: cg });
    await sleep(500);
    // the socket LB connected the socket to one backend; remove every backend but one other
    const m0 = weir.mark();
    await sleep(100);
    const keep = backends[0]!;
    await weir.apply('app-slice.yaml', [slice([{ ip: keep.ip, node: node.name }])]);
    const cleanup = await weir.waitFor('cleanup', {}, 2000, m0);
    assert.ok(Number(cleanup.socketNetns) >= 2, `iterator ran in the host and pod namespaces: ${JSON.stringify(cleanup)}`);
    const r = await flow.result;
    const first = r.servers[0]![0];
    if (first !== keep.name) {
      // the socket's backend was removed: the socket was destroyed under the application
      assert.match(r.error ?? '', /ECONNABORTED|ECONNRESET|EPIPE|ENOTCONN/, JSON.stringify(r));
    }
    await weir.apply('app-slice.yaml', [slice(all())]);
  });

  test('MS9: an invalid port, a garbage endpoint address and an unparseable file are logged and skipped; others work', async () => {
    const m = weir.mark();
    const badPorts: PortSpec[] = [{ name: 'tcp', port: 70000, targetPort: 8080 }];
    weir.writeManifest('bad-port.yaml', [service({ name: 'bad-port', clusterIP: '198.19.0.21', ports: badPorts })]);
    const okPorts: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080 }];
    const garbage = endpointSlice({ name: 'garbage-1', service: 'garbage', ports: okPorts, endpoints: [{ ip: '999.1.2.3', node: node.name }] });
    weir.writeManifest('garbage.yaml', [service({ name: 'garbage', clusterIP: '198.19.0.22', ports: okPorts }), garbage]);
    weir.writeManifest('broken.yaml', 'kind: Service\nmetadata: {name: [unclosed\n');
    const rejected = async (file: string) => weir.waitFor('manifests: rejected', { file: `${weir.manifests}/${file}` }, 5000, m);
    const reasons = [(await rejected('bad-port.yaml')).reason, (await rejected('garbage.yaml')).reason, (await rejected('broken.yaml')).reason];
    assert.deepEqual(reasons, ['invalid-service', 'invalid-endpointslice', 'yaml-syntax']);
    assert.ok(weir.process!.running, 'weir still runs');
    // the garbage service itself is valid: it has no endpoints, so it rejects at once
    await weir.waitFor('sync', { reason: 'change' }, 5000, m);
    const t0 = Date.now();
    await assert.rejects(client.ns.echo('198.19.0.22', 80, { proto: 'tcp', timeoutMs: 1000 }), /ECONNREFUSED/);
    assert.ok(Date.now() - t0 < 1000);
    for (const proto of ['tcp', 'udp'] as const) {
      const r = await weir.spread(client.ns, VIP, proto === 'tcp' ? 80 : 53, { proto, count: 30, cgroup: cg });
      assert.equal(r.failures, 0, r.errors.join('; '));
      assert.equal(Object.keys(r.servers).length, 3);
    }
  });

  test('SIGTERM: weir exits 0 and leaves the dataplane in place', async () => {
    const exit = await weir.terminate();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(weir.events('stopped').length === 1);
    const r = await weir.spread(client.ns, VIP, 80, { count: 30 });
    assert.equal(r.failures, 0, r.errors.join('; '));
    assert.equal(Object.keys(r.servers).length, 3);
  });
});
