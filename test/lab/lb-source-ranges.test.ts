// Issue 12, must-show 5, with `weir daemon` in a lab node: a LoadBalancer service whose
// loadBalancerSourceRanges list one external client. That client reaches the load balancer IP
// (the backend sees its address); another client on the same underlay does not (dropped,
// counted as lb_source_denied), nor does a pod; the ClusterIP of the same service is not
// restricted; rewriting the ranges swaps who gets through.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const LB_IP = '198.19.2.1';
const CLUSTER_IP = '198.19.0.40';
const PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: 8080, nodePort: 30090 }];

/** The service as the API server and a load balancer controller leave it. */
function lbService(ranges: string[]): object[] {
  const svc = service({ name: 'web', type: 'LoadBalancer', clusterIP: CLUSTER_IP, ports: PORTS }) as { spec: object };
  return [{ ...svc, spec: { ...svc.spec, loadBalancerSourceRanges: ranges }, status: { loadBalancer: { ingress: [{ ip: LB_IP }] } } }];
}

describe('loadBalancerSourceRanges through weir daemon', () => {
  let lab: Lab;
  let node: LabNode;
  let backend: Pod;
  let podClient: Pod;
  let listed: External;
  let unlisted: External;
  let weir: WeirNode;

  before(async () => {
    lab = await Lab.create({ name: 'lb-src' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backend = await lab.pod(node, 'be');
    podClient = await lab.pod(node, 'client');
    listed = await lab.external('listed', { address: '198.18.0.100/24' });
    unlisted = await lab.external('unlisted', { address: '198.18.0.101/24' });
    for (const c of [listed, unlisted]) await c.ns.addRoute(`${LB_IP}/32`, { via: node.address });
    await backend.ns.echoServer({ name: backend.name, port: 8080 });
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'on', metricsAddress: `${node.address}:9745` });
    weir.writeManifest('web.yaml', [
      ...lbService([` ${listed.address}/32`]), // whitespace, as kube-proxy tolerates
      endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: [{ ip: backend.ip, node: node.name }] }),
    ]);
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  /** One TCP connection to the LB IP: the answer, or how many SYNs weir dropped for it. */
  async function tryLb(c: External | Pod): Promise<{ peer?: string; denied: number }> {
    const hook = c === podClient ? 'from_pod' : 'from_host';
    const before = weir.counter(hook, 'lb_source_denied');
    try {
      const r = await c.ns.echo(LB_IP, 80, { proto: 'tcp', timeoutMs: 1500 });
      return { peer: r.reply.peer, denied: weir.counter(hook, 'lb_source_denied') - before };
    } catch {
      return { denied: weir.counter(hook, 'lb_source_denied') - before };
    }
  }

  test('MS5: the listed client reaches the LB IP with its own address; the unlisted one and a pod are dropped', async () => {
    const a = await tryLb(listed);
    assert.equal(a.peer, listed.address, 'the backend sees the listed client');
    assert.equal(a.denied, 0);
    const b = await tryLb(unlisted);
    assert.equal(b.peer, undefined, 'the unlisted client gets no answer');
    assert.ok(b.denied >= 1, `weir dropped its SYNs as lb_source_denied (${b.denied})`);
    console.log(`# unlisted client: ${b.denied} SYN(s) dropped as lb_source_denied in 1.5 s`);
    const p = await tryLb(podClient);
    assert.equal(p.peer, undefined, 'a pod outside the ranges is dropped too (as kube-proxy: the LB IP is firewalled for everyone)');
    assert.ok(p.denied >= 1, `from_pod dropped it (${p.denied})`);
  });

  test('the ClusterIP and the NodePort of the same service are not restricted', async () => {
    const r = await podClient.ns.echo(CLUSTER_IP, 80, { proto: 'tcp' });
    assert.equal(r.reply.server, backend.name);
    const n = await unlisted.ns.echo(node.address, 30090, { proto: 'tcp' });
    assert.equal(n.reply.peer, unlisted.address, 'NodePort: kube-proxy applies source ranges to the LB IP only');
  });

  test('rewriting the ranges swaps who gets through; an entry that is no CIDR is logged, counted and ignored (kube-proxy)', async () => {
    // a connection of the listed client, open across the change: conntrack carries it on
    const open = weir.flow(listed.ns, LB_IP, 80, { seconds: 0, interval: 50 });
    await open.waitReplies(5);
    const m = weir.mark();
    await weir.apply('web.yaml', [
      ...lbService([`${unlisted.address}/32`, '198.18.0.100/33']),
      endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: [{ ip: backend.ip, node: node.name }] }),
    ]);
    const b = await tryLb(unlisted);
    assert.equal(b.peer, unlisted.address, 'now listed: through, with its address');
    const a = await tryLb(listed);
    assert.equal(a.peer, undefined, 'no longer listed: dropped (the bad entry naming it is ignored)');
    assert.ok(a.denied >= 1);
    const atChange = open.replies();
    await open.waitReplies(atChange + 10);
    const f = await open.stop();
    assert.equal(f.error, undefined, 'the established connection of the now unlisted client keeps going (as kube-proxy: conntrack)');
    assert.ok(f.received >= f.sent - 1, `received ${f.received} of ${f.sent}`);
    console.log(`# established flow across the range change: ${f.received}/${f.sent} replies, longest gap ${f.maxGapMs} ms`);
    const bad = await weir.waitFor('invalid source range ignored', { service: 'default/web' }, 5000, m);
    console.log(`# ${JSON.stringify(bad)}`);
    assert.match((await weir.http('/metrics')).body, /^weir_errors_total\{kind="model"\} [1-9]/m);
  });
});
