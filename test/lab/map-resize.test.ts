// A map grown under traffic (issue 16, "Maps that fit the cluster", must-show 5): a node runs
// with small conntrack and backend maps (--ct-map-size 4096, --backend-map-size 2048), a pod
// streams through a ClusterIP and an external client through a NodePort (TC path: the NAT lives
// in conntrack), and new connections run back to back. weir restarts with both sizes doubled:
// the start migrates each map into one of the new size (entries copied, nothing dropped), the
// programs swap onto the pinned links, and the streams go on: every line back, one backend each,
// no gap over 1 s; not one new connection fails.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, service, WeirNode, type Flow, type PortSpec } from '../lib/weir-node.js';

const VIP = '198.19.0.50';
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }];

let lab: Lab;
let node: LabNode;
let backends: Pod[];
let podClient: Pod;
let client: External;
let weir: WeirNode;

before(async () => {
  lab = await Lab.create({ name: 'resize' });
  node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
  backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
  podClient = await lab.pod(node, 'cli');
  client = await lab.external('client', { address: '198.18.0.100/24' });
  await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
  weir = await WeirNode.create(lab, node, {
    connectTimeLb: 'off',
    metricsAddress: '127.0.0.1:9745',
    extraArgs: ['--ct-map-size', '4096', '--backend-map-size', '2048'],
  });
  weir.writeManifest('svc.yaml', [
    service({ name: 'web', type: 'NodePort', clusterIP: VIP, ports: PORTS }),
    endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: 'node1' })) }),
  ]);
  await weir.start(60_000);
});
after(async () => {
  await lab?.destroy();
  await runCleanups();
});

async function assertStream(name: string, flow: Flow): Promise<void> {
  await flow.waitReplies(flow.replies() + 20, 20_000);
  const r = await flow.stop();
  console.log(`# ${name}: sent=${r.sent} received=${r.received} maxGapMs=${r.maxGapMs} servers=${JSON.stringify(r.servers)}`);
  assert.equal(r.error, undefined, `${name}: ${r.error}`);
  assert.ok(r.sent > 20, `${name}: sent ${r.sent}`);
  assert.equal(r.received, r.sent, `${name}: every line comes back`);
  assert.equal(r.servers.length, 1, `${name}: one backend all along`);
  assert.ok(r.maxGapMs < 1000, `${name}: longest gap ${r.maxGapMs} ms`);
}

test('--ct-map-size and --backend-map-size doubled by a restart under traffic: streams go on, no new connection fails', async () => {
  const capacity = async (map: string) => Number(new RegExp(`^weir_map_capacity\\{map="${map}"\\} (\\d+)$`, 'm').exec((await weir.http('/metrics')).body)?.[1]);
  assert.deepEqual([await capacity('weir_ct4_v2'), await capacity('weir_backend4')], [4096, 2048]);
  const streams = {
    clusterIp: weir.flow(podClient.ns, VIP, 80, { seconds: 0, interval: 50 }),
    nodePort: weir.flow(client.ns, node.address, 30080, { seconds: 0, interval: 50 }),
  };
  // new connections back to back from before the stop until after the restart
  let restarted = false;
  const fresh = { connections: 0, failures: 0, errors: [] as string[] };
  const newConnections = (async () => {
    while (!restarted) {
      const r = await weir.spread(podClient.ns, VIP, 80, { count: 10 });
      fresh.connections += 10;
      fresh.failures += r.failures;
      fresh.errors.push(...r.errors);
    }
  })();
  await sleep(1000);
  const exit = await weir.terminate();
  assert.equal(exit.code, 0);
  weir.configure({ extraArgs: ['--ct-map-size', '8192', '--backend-map-size', '4096'] });
  const t0 = performance.now();
  const ready = await weir.start(60_000);
  console.log(`# restart with bigger maps: ready in ${Math.round(performance.now() - t0)} ms; migrated=${ready.migrated}`);
  await sleep(1000);
  restarted = true;
  await newConnections;
  const migrations = weir.events('migrate');
  console.log(`# ${JSON.stringify(migrations)}`);
  const byMap = new Map(migrations.map((m) => [m.map, m]));
  for (const map of ['weir_ct4', 'weir_backend4']) {
    const m = byMap.get(map);
    assert.ok(m, `${map} migrated: ${JSON.stringify(migrations)}`);
    assert.equal(m.dropped, '0', `${map}: nothing dropped`);
    assert.ok(Number(m.entries) > 0, `${map}: entries copied`);
  }
  assert.deepEqual([await capacity('weir_ct4_v2'), await capacity('weir_backend4')], [8192, 4096]);
  await assertStream('ClusterIP stream', streams.clusterIp);
  await assertStream('NodePort stream', streams.nodePort);
  console.log(`# new connections during the resize: ${fresh.connections}, failed ${fresh.failures}`);
  assert.ok(fresh.connections >= 20, `new connections ran across the restart: ${fresh.connections}`);
  assert.equal(fresh.failures, 0, fresh.errors.slice(0, 5).join('; '));
});
