// Issue 12, topology-aware routing with real packets: `weir daemon` in a lab node whose Node
// manifest carries `topology.kubernetes.io/zone`; a ClusterIP service whose EndpointSlice hints
// two endpoints for zone-a and one for zone-b. New TCP connections from a pod over the TC path
// (--connect-time-lb off) reach only the node's zone; relabelling the node moves them; a slice
// without hints spreads them over all three again (kube-proxy's pkg/proxy/topology.go).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type Cgroup, type LabNode, type Pod } from '../lib/lab.js';
import { service, WeirNode, type PortSpec, type SpreadResult } from '../lib/weir-node.js';

const CLUSTER_IP = '198.19.0.20';
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];
const COUNT = 60;

function nodeManifest(name: string, zone: string | null): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...(zone ? { 'topology.kubernetes.io/zone': zone } : {}) } },
    spec: { podCIDRs: ['198.18.1.0/24'] },
    status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] },
  };
}

/** The slice: every endpoint with its zone, and (when `hints`) a forZones hint for that zone. */
function sliceManifest(endpoints: { ip: string; zone: string }[], hints: boolean): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    ports: [{ name: 'tcp', port: 8080, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      // on other nodes: topology, not locality, is what is tested
      nodeName: `node-${e.zone}`,
      zone: e.zone,
      conditions: { ready: true, serving: true, terminating: false },
      ...(hints ? { hints: { forZones: [{ name: e.zone }] } } : {}),
    })),
  };
}

function assertOnly(r: SpreadResult, expected: string[], what: string): void {
  console.log(`# ${what}: ${JSON.stringify(r.servers)}`);
  assert.equal(r.failures, 0, `${what}: ${r.failures} failed: ${r.errors.join('; ')}`);
  assert.deepEqual(Object.keys(r.servers).sort(), [...expected].sort(), `${what}: ${JSON.stringify(r.servers)}`);
}

describe('topology-aware routing through weir daemon', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let cg: Cgroup;
  let weir: WeirNode;
  let eps: { ip: string; zone: string }[];

  before(async () => {
    lab = await Lab.create({ name: 'topology' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [];
    for (const n of ['be-a1', 'be-a2', 'be-b1']) backends.push(await lab.pod(node, n));
    client = await lab.pod(node, 'client');
    cg = await lab.cgroup('pods');
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    eps = backends.map((b) => ({ ip: b.ip, zone: b.name.startsWith('be-a') ? 'zone-a' : 'zone-b' }));
    weir = await WeirNode.create(lab, node, { cgroup: cg, connectTimeLb: 'off' });
    weir.writeManifest('node.json', [nodeManifest(node.name, 'zone-a')]);
    weir.writeManifest('web.yaml', [service({ name: 'web', clusterIP: CLUSTER_IP, ports: PORTS }), sliceManifest(eps, true)]);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('hints for zone-a: connections reach only the two zone-a backends', async () => {
    await weir.start();
    const r = await weir.spread(client.ns, CLUSTER_IP, 80, { proto: 'tcp', count: COUNT, cgroup: cg });
    assertOnly(r, ['be-a1', 'be-a2'], 'zone-a');
  });

  test('the node relabelled zone-b (manifest rewrite): traffic follows to the zone-b backend', async () => {
    const m = weir.mark();
    weir.writeManifest('node.json', [nodeManifest(node.name, 'zone-b')]);
    await weir.waitFor('node zone changed', { zone: 'zone-b' }, 10_000, m);
    const r = await weir.spread(client.ns, CLUSTER_IP, 80, { proto: 'tcp', count: COUNT, cgroup: cg });
    assertOnly(r, ['be-b1'], 'zone-b');
  });

  test('a zone with no hinted endpoint: all three, and the fallback is logged', async () => {
    const m = weir.mark();
    weir.writeManifest('node.json', [nodeManifest(node.name, 'zone-c')]);
    await weir.waitFor('node zone changed', { zone: 'zone-c' }, 10_000, m);
    await weir.waitFor('topology hints ignored', { service: 'default/web' }, 10_000, m);
    const r = await weir.spread(client.ns, CLUSTER_IP, 80, { proto: 'tcp', count: COUNT, cgroup: cg });
    assertOnly(r, ['be-a1', 'be-a2', 'be-b1'], 'zone-c');
  });

  test('back in zone-a, then the hints removed from the slice: all three backends', async () => {
    const m = weir.mark();
    weir.writeManifest('node.json', [nodeManifest(node.name, 'zone-a')]);
    await weir.waitFor('node zone changed', { zone: 'zone-a' }, 10_000, m);
    assertOnly(await weir.spread(client.ns, CLUSTER_IP, 80, { proto: 'tcp', count: COUNT, cgroup: cg }), ['be-a1', 'be-a2'], 'zone-a again');
    await weir.apply('web.yaml', [service({ name: 'web', clusterIP: CLUSTER_IP, ports: PORTS }), sliceManifest(eps, false)]);
    const r = await weir.spread(client.ns, CLUSTER_IP, 80, { proto: 'tcp', count: COUNT, cgroup: cg });
    assertOnly(r, ['be-a1', 'be-a2', 'be-b1'], 'no hints');
  });
});
