// Issue 3, must-shows 8, 4 and 9, with `weir daemon` in a lab node: kill -9 of weir while a TCP
// stream runs through a ClusterIP (the stream goes on; the next weir adopts the maps and writes
// nothing); drift behind weir's back is repaired by the resync; a terminating backend keeps its
// established connection and gets no new ones; a removed backend's UDP conntrack entries go at
// once (its UDP flow is re-balanced) and connected UDP sockets to it are destroyed; bad input
// is logged and skipped while every other service keeps working.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, enums, typedMap, type WeirCt4, type WeirCt4Key, type WeirFrontend4Key } from '../../src/bpf/index.js';
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
  return new Set(
    ctEntries(pinDir)
      .filter(([k]) => k.saddr === client && k.daddr === VIP && k.dport === port && k.protocol === protocol)
      .map(([k]) => ctKey(k)),
  );
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
    // a 2 s resync for the drift test; every other test asserts that no resync repaired
    // anything, so an incremental sync that missed a write fails instead of being mended
    weir = await WeirNode.create(lab, node, { cgroup: cg, connectTimeLb: 'on', resyncInterval: '2s' });
    weir.writeManifest('app.yaml', [service({ name: 'app', clusterIP: VIP, ports: PORTS })]);
    weir.writeManifest('app-slice.yaml', [slice(all())]);
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  /** Spreads `count` connections from the client in the socket-LB cgroup and checks that the
   *  socket LB translated them (TC would give the same replies): TCP one connect() each, UDP
   *  at least one sendto() each (svc-client resends an unanswered datagram). */
  const spreadSockLb = async (proto: 'tcp' | 'udp', count: number) => {
    const before = weir.counter('sock', 'sock_lb_translated');
    const r = await weir.spread(client.ns, VIP, proto === 'tcp' ? 80 : 53, { proto, count, cgroup: cg });
    const translated = weir.counter('sock', 'sock_lb_translated') - before;
    if (proto === 'tcp') assert.equal(translated, count, `${proto}: socket LB translations`);
    else assert.ok(translated >= count, `${proto}: socket LB translations ${translated} of ${count}`);
    return r;
  };
  const noRepairs = () => assert.equal(weir.repairs(), 0, 'no resync had anything to repair: every change reached the maps incrementally');

  test('MS8: kill -9 during a TCP stream through the ClusterIP: the stream continues; the new weir adopts and writes 0', async () => {
    // the TC path (client outside the socket-LB cgroup): per-packet NAT that must survive
    const flow = weir.flow(client.ns, VIP, 80, { proto: 'tcp', seconds: 0, interval: 20 });
    await flow.waitReplies(10);
    await weir.kill9();
    // with no weir at all the stream goes on
    await flow.waitReplies(flow.replies() + 10);
    const t0 = Date.now();
    const ready = await weir.start();
    const readyMs = Date.now() - t0;
    // and after the new weir adopted the state
    await flow.waitReplies(flow.replies() + 10);
    const r = await flow.stop();
    assert.equal(r.error, undefined);
    assert.equal(r.received, r.sent, `every line came back: ${r.received} of ${r.sent}`);
    assert.equal(r.servers.length, 1, `one backend all along: ${JSON.stringify(r.servers)}`);
    assert.equal(ready.writes, '0', 'nothing changed: zero writes');
    assert.equal(weir.events('sync')[0]!.writes, '0');
    assert.equal(ready.attached, '0', 'links adopted, none created');
    console.log(
      `# restart: ready in ${readyMs} ms (${ready.ms} ms inside weir), writes=${ready.writes}, adoptedLinks=${ready.adoptedLinks}; ` +
        `${r.sent} lines, longest gap ${r.maxGapMs} ms`,
    );
  });

  test("drift behind weir's back is repaired by the periodic resync (counted)", async () => {
    noRepairs();
    const fe = typedMap(BpfMap.openPinned(`${weir.pinDir}/weir_frontend4`), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
    try {
      const key: WeirFrontend4Key = { address: VIP, port: 80, protocol: 6, scope: 0 };
      assert.ok(fe.get(key), 'frontend present');
      const m = weir.mark();
      fe.delete(key);
      const line = await weir.waitFor('resync', { repairs: 1 }, 10_000, m);
      assert.equal(line.level, 'warn');
      assert.ok(fe.get(key), 'frontend rewritten');
    } finally {
      fe.map.close();
    }
    assert.equal(weir.repairs(), 1, 'the one entry deleted by hand, nothing else');
    const r = await weir.spread(client.ns, VIP, 80, { count: 30 });
    assert.equal(r.failures, 0);
  });

  test('MS4: a terminating backend keeps its established TCP connection and gets no new ones', async () => {
    const repairs0 = weir.repairs();
    const before = flowKeys(weir.pinDir, client.ip, 80, 6);
    const flow = weir.flow(client.ns, VIP, 80, { proto: 'tcp', seconds: 0, interval: 20 });
    const busy = await until(() => backendOfNewFlow(weir.pinDir, before, client.ip, 80, 6), 'the flow in conntrack');
    await weir.apply('app-slice.yaml', [slice(all().map((e) => (e.ip === busy ? { ...e, ready: false, serving: true, terminating: true } : e)))]);
    const atChange = flow.replies();
    for (const sockLb of [false, true]) {
      const r = sockLb ? await spreadSockLb('tcp', 60) : await weir.spread(client.ns, VIP, 80, { count: 60 });
      assert.equal(r.failures, 0, r.errors.join('; '));
      assert.equal(r.servers[byIp(busy).name], undefined, `no new connection to the terminating backend: ${JSON.stringify(r.servers)}`);
    }
    // the established connection still answers after the change
    await flow.waitReplies(atChange + 10);
    const r = await flow.stop();
    assert.equal(r.error, undefined);
    assert.deepEqual(r.servers, [[byIp(busy).name, r.received]], 'the established connection stayed on its backend');
    assert.equal(r.received, r.sent, `every line came back: ${r.received} of ${r.sent}`);
    assert.equal(weir.repairs(), repairs0, 'no resync repairs');
    await weir.apply('app-slice.yaml', [slice(all())]);
  });

  test('MS4: a removed backend: its UDP conntrack entries go at once, its UDP flow moves, no new connection reaches it', async () => {
    const repairs0 = weir.repairs();
    const before = flowKeys(weir.pinDir, client.ip, 53, 17);
    const flow = weir.flow(client.ns, VIP, 53, { proto: 'udp', seconds: 0, interval: 20 });
    const gone = await until(() => backendOfNewFlow(weir.pinDir, before, client.ip, 53, 17), 'the UDP flow in conntrack');
    await flow.waitReplies(5);
    const m = weir.mark();
    await weir.apply('app-slice.yaml', [slice(all().filter((e) => e.ip !== gone))]);
    const cleanup = await weir.waitFor('cleanup', {}, 5000, m);
    assert.ok(Number(cleanup.conntrackDeleted) >= 2, `conntrack entries deleted: ${cleanup.conntrackDeleted}`);
    // replies after the clean-up come from another backend
    await flow.waitReplies(flow.replies() + 10);
    const r = await flow.stop();
    assert.equal(r.error, undefined);
    const names = r.servers.map(([n]) => n);
    assert.equal(names[0], byIp(gone).name);
    assert.ok(names.length >= 2 && names.at(-1) !== byIp(gone).name, `the flow moved to another backend: ${JSON.stringify(r.servers)}`);
    // NAT'd entries: a reply the removed backend still had in flight after the clean-up meets no
    // entry and, with conntrack of every flow (policy's, on by default), becomes a tracked-only
    // entry of its own, which translates nothing
    const nat = enums.weir_ct_flags.WEIR_CT_DNAT | enums.weir_ct_flags.WEIR_CT_SNAT;
    assert.ok(
      !ctEntries(weir.pinDir).some(([k, v]) => k.protocol === 17 && (v.flags & nat) !== 0 && (v.nat_daddr === gone || k.saddr === gone)),
      "no NAT'd UDP conntrack entry of the removed backend",
    );
    for (const proto of ['tcp', 'udp'] as const) {
      const s = await spreadSockLb(proto, 60);
      assert.equal(s.failures, 0, s.errors.join('; '));
      assert.equal(s.servers[byIp(gone).name], undefined, `${proto}: ${JSON.stringify(s.servers)}`);
    }
    assert.equal(weir.repairs(), repairs0, 'no resync repairs');
    await weir.apply('app-slice.yaml', [slice(all())]);
  });

  test('MS4: connected UDP sockets to a removed backend (socket LB) are destroyed', async () => {
    const flow = weir.flow(client.ns, VIP, 53, { proto: 'udp', seconds: 0, interval: 20, cgroup: cg });
    // the socket LB connected the socket to one backend: remove exactly that one
    const used = await flow.connectedBackend();
    const destroyed0 = weir.counter('sock', 'sock_destroyed');
    const m0 = weir.mark();
    await weir.apply('app-slice.yaml', [slice(all().filter((e) => e.ip !== backends.find((b) => b.name === used)!.ip))]);
    const cleanup = await weir.waitFor('cleanup', {}, 5000, m0);
    assert.ok(Number(cleanup.socketNetns) >= 2, `iterator ran in the host and pod namespaces: ${JSON.stringify(cleanup)}`);
    // the socket was destroyed under the application, which sees the error
    const err = await flow.waitLine(/^error /);
    assert.match(err, /ECONNABORTED/);
    assert.equal(weir.counter('sock', 'sock_destroyed') - destroyed0, 1, "exactly the flow's socket was destroyed");
    const r = await flow.stop();
    assert.deepEqual(r.servers, [[used, r.received]], 'every reply came from the removed backend, none after');
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
    // the garbage service itself is valid: it has no endpoints, so weir rejects at once
    await weir.waitFor('sync', { reason: 'change' }, 5000, m);
    const rejects0 = weir.counter('from_pod', 'no_backend_reject');
    await assert.rejects(client.ns.echo('198.19.0.22', 80, { proto: 'tcp', timeoutMs: 5000 }), /ECONNREFUSED/);
    assert.equal(weir.counter('from_pod', 'no_backend_reject') - rejects0, 1, "weir's reject, not a timeout or a stray RST");
    for (const proto of ['tcp', 'udp'] as const) {
      const r = await spreadSockLb(proto, 30);
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
