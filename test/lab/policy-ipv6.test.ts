// NetworkPolicy and IPv6 until IPv6 policy exists (issue 14): a dual-stack pod isolated by a
// policy must not be reachable over IPv6 around it. Before, IPv6 packets went through the
// IPv4 stages on the addresses' first 32 bits and met no endpoint: a deny-all stopped IPv4
// and let IPv6 in. Now an isolated direction fails closed over IPv6, except between a pod and
// its own node (kubelet probes) and neighbour discovery.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { k8sNamespace, k8sPod, networkPolicy, node as nodeObject, WeirNode } from '../lib/weir-node.js';

const PORT = 8080;

describe('NetworkPolicy on a dual-stack pod: IPv6 fails closed', () => {
  let lab: Lab;
  let node: LabNode;
  let a: Pod;
  let b: Pod;
  let weir: WeirNode;

  const reaches = async (from: { ns: Pod['ns'] }, host: string): Promise<boolean> =>
    from.ns.echo(host, PORT, { timeoutMs: 1000 }).then(
      () => true,
      () => false,
    );

  before(async () => {
    lab = await Lab.create({ name: 'policy-v6' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24', address6: '2001:2::1/64', podSubnet6: '2001:2:0:1::/64' });
    a = await lab.pod(node, 'a');
    b = await lab.pod(node, 'b');
    assert.ok(a.ip6 && b.ip6, 'dual-stack pods');
    await a.ns.echoServer({ name: 'a', port: PORT, tcp: true });
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'off' });
    weir.writeManifest('cluster.yaml', [
      nodeObject({ name: 'node1', internalIP: ['198.18.0.1', '2001:2::1'], podCIDRs: ['198.18.1.0/24', '2001:2:0:1::/64'] }),
      k8sNamespace({ name: 'x' }),
      k8sPod({ name: 'a', namespace: 'x', labels: { pod: 'a' }, ip: [a.ip, a.ip6!], node: 'node1' }),
      k8sPod({ name: 'b', namespace: 'x', labels: { pod: 'b' }, ip: [b.ip, b.ip6!], node: 'node1' }),
    ]);
    await weir.start();
  });
  after(async () => {
    await runCleanups();
    await lab?.destroy();
  });

  test('no policy: b reaches a over both families', async () => {
    assert.equal(await reaches(b, a.ip), true);
    assert.equal(await reaches(b, a.ip6!), true);
  });

  test('deny-all ingress on a: b is dropped over IPv4 and over IPv6; the node reaches a over both', async () => {
    const mark = weir.mark();
    weir.writeManifest('policy.yaml', [
      networkPolicy({ name: 'deny-a', namespace: 'x', spec: { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] } }),
    ]);
    await weir.waitFor('policy', { reason: 'change' }, 10_000, mark);
    const before = weir.counter('from_pod', 'policy_ingress_denied');
    assert.equal(await reaches(b, a.ip), false, 'IPv4 denied');
    assert.equal(await reaches(b, a.ip6!), false, 'IPv6 denied (fails closed)');
    assert.ok(weir.counter('from_pod', 'policy_ingress_denied') - before >= 2, JSON.stringify(weir.counters().from_pod));
    assert.equal(await reaches(node, a.ip), true, 'node -> its pod over IPv4');
    assert.equal(await reaches(node, a.ip6!), true, 'node -> its pod over IPv6');
  });

  test('the policy deleted: IPv6 open again', async () => {
    const mark = weir.mark();
    weir.writeManifest('policy.yaml', []);
    await weir.waitFor('policy', { reason: 'change' }, 10_000, mark);
    assert.equal(await reaches(b, a.ip6!), true);
  });
});
