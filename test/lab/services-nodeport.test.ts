// Issue 3, must-shows 2 and 3, with `weir daemon` in a lab node: an external client reaches a
// NodePort and an externalIP whose backend runs on the same node; the backend sees the client's
// real address and the replies come from the address the client dialled. A service without
// endpoints is refused at once, and works as soon as endpoints appear.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const EXTERNAL_IP = '198.19.1.1';
const PORTS: PortSpec[] = [
  { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 },
  { name: 'udp', port: 53, targetPort: 8080, protocol: 'UDP', nodePort: 30053 },
];

describe('NodePort and externalIP through weir daemon', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: External;
  let weir: WeirNode;

  before(async () => {
    lab = await Lab.create({ name: 'svc-nodeport' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
    client = await lab.external('client', { address: '198.18.0.100/24' });
    await client.ns.addRoute(`${EXTERNAL_IP}/32`, { via: node.address });
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'on' });
    weir.writeManifest('web.yaml', [
      service({ name: 'web', type: 'NodePort', clusterIP: '198.19.0.30', externalIPs: [EXTERNAL_IP], ports: PORTS }),
      endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) }),
    ]);
    const ready = await weir.start();
    assert.equal(ready.nodePortAddresses, node.address);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  for (const [what, host, port] of [
    ['NodePort', '198.18.0.1', 30080],
    ['externalIP', EXTERNAL_IP, 80],
  ] as const) {
    test(`MS2: external client -> ${what} (TCP and UDP): the backend sees the client; replies come from ${host}`, async () => {
      for (const proto of ['tcp', 'udp'] as const) {
        const p = proto === 'tcp' ? port : port === 80 ? 53 : 30053;
        const r = await weir.spread(client.ns, host, p, { proto, count: 60 });
        assert.equal(r.failures, 0, `${proto}: ${r.errors.join('; ')}`);
        assert.deepEqual(Object.keys(r.servers).sort(), backends.map((b) => b.name).sort(), JSON.stringify(r.servers));
        for (const peers of Object.values(r.peers)) assert.deepEqual(peers, [client.address], 'no SNAT: the real client address');
        assert.deepEqual(Object.keys(r.remotes), [`${host}:${p}`], 'replies from the dialled address');
      }
    });
  }

  test('MS3: no endpoints: refused at once (external client and pod); endpoints appear: the next connection works', async () => {
    const ports: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, nodePort: 30081 }];
    await weir.apply('empty.yaml', [service({ name: 'empty', type: 'NodePort', clusterIP: '198.19.0.31', ports })]);
    // nothing listens on the node's port 30081 or anywhere behind the ClusterIP, so the kernel
    // would refuse too: only weir's reject counter tells weir's refusal from the kernel's
    for (const [ns, host, port, hook] of [
      [client.ns, node.address, 30081, 'from_host'],
      [backends[0]!.ns, '198.19.0.31', 80, 'from_pod'],
    ] as const) {
      const before = weir.counter(hook, 'no_backend_reject');
      const t0 = Date.now();
      await assert.rejects(ns.echo(host, port, { proto: 'tcp', timeoutMs: 5000 }), /ECONNREFUSED/);
      console.log(`# ${hook}: refused after ${Date.now() - t0} ms (a fresh node process; the refusal itself is microseconds)`);
      assert.equal(weir.counter(hook, 'no_backend_reject') - before, 1, `${hook}: weir rejected the one SYN`);
    }
    await weir.apply('empty.yaml', [
      service({ name: 'empty', type: 'NodePort', clusterIP: '198.19.0.31', ports }),
      endpointSlice({ name: 'empty-1', service: 'empty', ports, endpoints: [{ ip: backends[1]!.ip, node: node.name }] }),
    ]);
    const r = await client.ns.echo(node.address, 30081, { proto: 'tcp' });
    assert.equal(r.reply.server, backends[1]!.name);
    assert.equal(r.reply.peer, client.address);
  });
});
