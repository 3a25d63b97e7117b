// NetworkPolicy on real packets across two lab nodes (issue 13): CNI ptp pods in two
// namespaces, weir on both nodes reading Pods, Namespaces and NetworkPolicies from its
// manifests. A default-deny ingress policy on x/a stops pods on the other node and lets the
// node's own kubelet-like traffic through; a namespaceSelector rule lets y in; relabelling a
// pod lets it in within a second; the counters name the drop.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { k8sNamespace, k8sPod, networkPolicy, node, WeirNode } from '../lib/weir-node.js';

const PORT = 8080;

describe('NetworkPolicy across two nodes', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let a: Pod; // x/a on node1: the server
  let b: Pod; // x/b on node2
  let c: Pod; // y/c on node2
  let weir1: WeirNode;
  let weir2: WeirNode;

  const pods = (bLabels: Record<string, string>) => [
    k8sNamespace({ name: 'x', labels: { ns: 'x' } }),
    k8sNamespace({ name: 'y', labels: { ns: 'y' } }),
    k8sPod({ name: 'a', namespace: 'x', labels: { pod: 'a' }, ip: a.ip, node: 'node1', ports: [{ name: 'serve-80', containerPort: PORT }] }),
    k8sPod({ name: 'b', namespace: 'x', labels: bLabels, ip: b.ip, node: 'node2' }),
    k8sPod({ name: 'c', namespace: 'y', labels: { pod: 'c' }, ip: c.ip, node: 'node2' }),
  ];
  const write = (name: string, objs: object[]) => {
    weir1.writeManifest(name, objs);
    weir2.writeManifest(name, objs);
  };
  /** true when a TCP connection from `from` to a reaches the server within `timeoutMs` */
  const reaches = async (from: Pod, timeoutMs = 1000): Promise<boolean> => {
    try {
      const r = await from.ns.echo(a.ip, PORT, { timeoutMs });
      assert.equal(r.reply.peer.replace(/^::ffff:/, ''), from.ip, 'the server sees the client itself');
      return true;
    } catch {
      return false;
    }
  };
  /** polls until `from` reaches a as `want`, returns how long that took. Each try gives up
   *  after 300 ms: a try whose SYN the old policy dropped would otherwise wait for its
   *  retransmission, 1 s later, and measure TCP's timer instead of weir (on a loaded machine
   *  the first try can start before the daemon has read the change) */
  const until = async (from: Pod, want: boolean, timeoutMs = 5000): Promise<number> => {
    const t0 = Date.now();
    for (;;) {
      if ((await reaches(from, 300)) === want) return Date.now() - t0;
      if (Date.now() - t0 > timeoutMs) assert.fail(`${from.name} -> a stayed ${!want} for ${timeoutMs} ms`);
    }
  };

  before(async () => {
    lab = await Lab.create({ name: 'policy' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
    await lab.routePodSubnets();
    a = await lab.pod(node1, 'a');
    b = await lab.pod(node2, 'b');
    c = await lab.pod(node2, 'c');
    await a.ns.echoServer({ name: 'a', port: PORT, tcp: true });
    weir1 = await WeirNode.create(lab, node1, { connectTimeLb: 'off', metricsAddress: '127.0.0.1:9745' });
    weir2 = await WeirNode.create(lab, node2, { connectTimeLb: 'off' });
    const nodes = [
      node({ name: 'node1', internalIP: node1.address, podCIDRs: ['198.18.1.0/24'] }),
      node({ name: 'node2', internalIP: node2.address, podCIDRs: ['198.18.2.0/24'] }),
    ];
    for (const w of [weir1, weir2]) {
      w.writeManifest('nodes.yaml', nodes);
      w.writeManifest('pods.yaml', pods({ pod: 'b' }));
    }
    await Promise.all([weir1.start(), weir2.start()]);
  });
  after(async () => {
    await runCleanups();
    await lab?.destroy();
  });

  test('no policy: every pod reaches x/a', async () => {
    assert.equal(await reaches(b), true);
    assert.equal(await reaches(c), true);
  });

  test('default deny ingress on x/a: pods on node2 are dropped, node1 itself still reaches a', async () => {
    const mark = weir1.mark();
    write('policy.yaml', [networkPolicy({ name: 'deny-a', namespace: 'x', spec: { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] } })]);
    await weir1.waitFor('policy', { reason: 'change' }, 10_000, mark);
    assert.equal(await reaches(b), false);
    assert.equal(await reaches(c), false);
    const host = await node1.ns.echo(a.ip, PORT, { timeoutMs: 1000 });
    assert.ok(host.reply.server === 'a', 'node1 -> its own pod is always allowed');
    const m = (await weir1.http('/metrics')).body;
    assert.match(m, /^weir_dataplane_packets_total\{hook="from_host",reason="policy_ingress_denied"\} [1-9]/m);
    assert.match(m, /^weir_policy_flows_total\{policy="x\/deny-a",direction="ingress",verdict="denied"\} [1-9]/m);
  });

  test('a namespaceSelector rule lets y in; x/b stays out; relabelling b lets it in within a second', async () => {
    write('policy.yaml', [
      networkPolicy({
        name: 'deny-a',
        namespace: 'x',
        spec: {
          podSelector: { matchLabels: { pod: 'a' } },
          policyTypes: ['Ingress'],
          ingress: [
            {
              from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { role: 'friend' } } }],
              ports: [{ port: 'serve-80' }],
            },
          ],
        },
      }),
    ]);
    const took = await until(c, true);
    console.log(`y/c allowed ${took} ms after the policy was written`);
    assert.equal(await reaches(b), false);
    write('pods.yaml', pods({ pod: 'b', role: 'friend' }));
    const relabel = await until(b, true);
    console.log(`x/b allowed ${relabel} ms after its relabel was written`);
    assert.ok(relabel < 1000, `allowed ${relabel} ms after the relabel`);
  });

  test("bad input: an invalid CIDR in one peer is logged and counted, the policy's other peer still lets y in, x/b (now unlabelled) stays out", async () => {
    write('pods.yaml', pods({ pod: 'b' }));
    const mark = weir1.mark();
    write('policy.yaml', [
      networkPolicy({
        name: 'deny-a',
        namespace: 'x',
        spec: {
          podSelector: { matchLabels: { pod: 'a' } },
          policyTypes: ['Ingress'],
          ingress: [{ from: [{ ipBlock: { cidr: '198.18.300.0/24' } }, { namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
        },
      }),
    ]);
    const issue = await weir1.waitFor('policy issue', { policy: 'x/deny-a' }, 10_000, mark);
    assert.equal(issue.reason, 'invalid_cidr');
    await weir1.waitFor('policy', { reason: 'change' }, 10_000, mark);
    await until(b, false);
    assert.equal(await reaches(c), true, 'the valid peer of the same rule is enforced');
    const m = (await weir1.http('/metrics')).body;
    assert.match(m, /^weir_policy_issues\{kind="policy",reason="invalid_cidr"\} 1$/m);
  });
});
