// NetworkPolicy over IPv6 on real packets (issue 14): a dual-stack lab of two nodes (CNI ptp
// pods with both families, routes between the nodes' pod subnets) and an external client, weir
// on both nodes. IPv6 flows are decided as IPv4 ones: pod selectors by identity (the pod's IPv6
// address in weir_ipcache6), an IPv6 ipBlock with an except (which IPv4 traffic of the same
// pods does not match), ingress decided where the flow enters node1 (from_pod6 for a local
// client, from_host6 for one from node2 or outside, against its own address), egress on the
// sender's interface, the node always reaching its pods, replies of an allowed flow allowed;
// through IPv6 ClusterIPs, egress judged against the backend chosen and ingress against the client.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, k8sNamespace, k8sPod, networkPolicy, node as nodeObject, service, WeirNode } from '../lib/weir-node.js';

const PORT = 8080;
/** IPv6 ClusterIPs (port 80 -> PORT): one to x/a, one to x/c */
const VIP_A = '2001:2:ff::a';
const VIP_C = '2001:2:ff::c';

describe('NetworkPolicy over IPv6: pod selectors, IPv6 ipBlocks, both directions', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let a: Pod; // x/a on node1: the server
  let b: Pod; // x/b on node1
  let c: Pod; // x/c on node2: a server too
  let ext: External;
  let weir1: WeirNode;
  let weir2: WeirNode;

  type Client = { ns: Pod['ns'] };
  /** true when a TCP connection from `from` reaches `host`:`port` within 1 s (and the server sees the client's own address) */
  const reaches = async (from: Client, host: string, client?: string, port = PORT): Promise<boolean> => {
    try {
      const r = await from.ns.echo(host, port, { timeoutMs: 1000 });
      if (client) assert.equal(r.reply.peer, client, 'the server sees the client itself');
      return true;
    } catch {
      return false;
    }
  };
  const write = (name: string, objs: object[]) => {
    weir1.writeManifest(name, objs);
    weir2.writeManifest(name, objs);
  };
  /** every policy here selects node1's pods: node1 writes (node2, whose maps need nothing, logs no change) */
  const applied = async (name: string, objs: object[]) => {
    const m1 = weir1.mark();
    write(name, objs);
    await weir1.waitFor('policy', { reason: 'change' }, 10_000, m1);
  };
  const delta = (w: WeirNode, hook: string, reason: string) => {
    const before = w.counter(hook, reason);
    return () => w.counter(hook, reason) - before;
  };

  before(async () => {
    lab = await Lab.create({ name: 'policy-v6' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24', address6: '2001:2::1/64', podSubnet6: '2001:2:0:1::/64' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24', address6: '2001:2::2/64', podSubnet6: '2001:2:0:2::/64' });
    await lab.routePodSubnets();
    a = await lab.pod(node1, 'a');
    b = await lab.pod(node1, 'b');
    c = await lab.pod(node2, 'c');
    assert.ok(a.ip6 && b.ip6 && c.ip6, 'dual-stack pods');
    ext = await lab.external('ext', { address: '198.18.0.100/24', address6: '2001:2::100/64' });
    await a.ns.echoServer({ name: 'a', port: PORT, tcp: true });
    await c.ns.echoServer({ name: 'c', port: PORT, tcp: true });
    weir1 = await WeirNode.create(lab, node1, { connectTimeLb: 'off', metricsAddress: '127.0.0.1:9745' });
    weir2 = await WeirNode.create(lab, node2, { connectTimeLb: 'off' });
    write('cluster.yaml', [
      nodeObject({ name: 'node1', internalIP: ['198.18.0.1', '2001:2::1'], podCIDRs: ['198.18.1.0/24', '2001:2:0:1::/64'] }),
      nodeObject({ name: 'node2', internalIP: ['198.18.0.2', '2001:2::2'], podCIDRs: ['198.18.2.0/24', '2001:2:0:2::/64'] }),
      k8sNamespace({ name: 'x' }),
      k8sPod({ name: 'a', namespace: 'x', labels: { pod: 'a' }, ip: [a.ip, a.ip6!], node: 'node1' }),
      k8sPod({ name: 'b', namespace: 'x', labels: { pod: 'b' }, ip: [b.ip, b.ip6!], node: 'node1' }),
      k8sPod({ name: 'c', namespace: 'x', labels: { pod: 'c' }, ip: [c.ip, c.ip6!], node: 'node2' }),
      ...[
        { name: 'svc-a', vip: VIP_A, pod: a, node: 'node1' },
        { name: 'svc-c', vip: VIP_C, pod: c, node: 'node2' },
      ].flatMap((x) => {
        const svc = service({ name: x.name, namespace: 'x', clusterIP: x.vip, ports: [{ name: 'tcp', port: 80, targetPort: PORT, protocol: 'TCP' }] }) as {
          spec: Record<string, unknown>;
        };
        svc.spec.ipFamilies = ['IPv6'];
        const slice = endpointSlice({
          name: `${x.name}-v6`,
          namespace: 'x',
          service: x.name,
          ports: [{ name: 'tcp', port: 80, targetPort: PORT, protocol: 'TCP' }],
          endpoints: [{ ip: x.pod.ip6!, node: x.node }],
        }) as { addressType: string };
        slice.addressType = 'IPv6';
        return [svc, slice];
      }),
    ]);
    await Promise.all([weir1.start(), weir2.start()]);
  });
  after(async () => {
    await runCleanups();
    await lab?.destroy();
  });

  test('no policy: every client reaches a over IPv6', async () => {
    assert.equal(await reaches(b, a.ip6!, b.ip6), true, 'b (same node)');
    assert.equal(await reaches(c, a.ip6!, c.ip6), true, 'c (other node)');
    assert.equal(await reaches(ext, a.ip6!, ext.address6), true, 'external');
    assert.equal(await reaches(b, VIP_A, b.ip6, 80), true, 'b through the IPv6 ClusterIP');
  });

  test('ingress from pod b only: b in over IPv6 (from_pod6), c and the external client out (from_host6), the node always in', async () => {
    await applied('policy.yaml', [
      networkPolicy({
        name: 'a-from-b',
        namespace: 'x',
        spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: PORT }] }] },
      }),
    ]);
    const allowed = delta(weir1, 'from_pod', 'policy_ingress_allowed');
    const denied = delta(weir1, 'from_host', 'policy_ingress_denied');
    assert.equal(await reaches(b, a.ip6!, b.ip6), true, 'b over IPv6');
    assert.equal(await reaches(b, a.ip), true, 'b over IPv4');
    assert.equal(await reaches(c, a.ip6!), false, 'c over IPv6');
    assert.equal(await reaches(ext, a.ip6!), false, 'external over IPv6');
    assert.equal(await reaches(node1, a.ip6!), true, 'node1 -> its pod over IPv6 (host identity)');
    assert.equal(await reaches(b, VIP_A, b.ip6, 80), true, 'b through the ClusterIP');
    assert.equal(await reaches(c, VIP_A, undefined, 80), false, "c through the ClusterIP (node2 translates, node1 judges c's own address)");
    assert.ok(allowed() >= 1, `policy_ingress_allowed at from_pod: ${JSON.stringify(weir1.counters().from_pod)}`);
    assert.ok(denied() >= 2, `policy_ingress_denied at from_host: ${JSON.stringify(weir1.counters().from_host)}`);
    // the metrics, from the same counters and weir_policy_stats: this policy's denials were IPv6 flows only
    const m = (await weir1.http('/metrics')).body;
    assert.match(m, /^weir_policy_flows_total\{policy="x\/a-from-b",direction="ingress",verdict="denied"\} [2-9]/m);
    assert.match(m, /^weir_policy_objects\{kind="endpoints"\} 4$/m, 'a and b, each by its IPv4 and its IPv6 address');
  });

  test('an IPv6 ipBlock with an except: the external client in over IPv6, c (in the except) out; IPv4 matches no IPv6 block', async () => {
    await applied('policy.yaml', [
      networkPolicy({
        name: 'a-from-block',
        namespace: 'x',
        spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ ipBlock: { cidr: '2001:2::/48', except: ['2001:2:0:2::/64'] } }] }] },
      }),
    ]);
    assert.equal(await reaches(ext, a.ip6!, ext.address6), true, 'external over IPv6: inside the block');
    assert.equal(await reaches(b, a.ip6!, b.ip6), true, 'b over IPv6: inside the block');
    assert.equal(await reaches(c, a.ip6!), false, "c over IPv6: node2's pod /64 is excepted");
    assert.equal(await reaches(ext, a.ip), false, 'external over IPv4: no IPv4 block');
    assert.equal(await reaches(b, a.ip), false, 'b over IPv4: no IPv4 block');
  });

  test('egress of b to pod a only: b -> a over IPv6, b -> c dropped on its own interface (policy_egress_denied)', async () => {
    await applied('policy.yaml', [
      networkPolicy({
        name: 'b-to-a',
        namespace: 'x',
        spec: { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { pod: 'a' } } }] }] },
      }),
    ]);
    const denied = delta(weir1, 'from_pod', 'policy_egress_denied');
    assert.equal(await reaches(b, a.ip6!, b.ip6), true, 'b -> a over IPv6 (the reply passes: conntrack)');
    assert.equal(await reaches(b, c.ip6!), false, 'b -> c over IPv6');
    assert.equal(await reaches(b, VIP_A, b.ip6, 80), true, "b -> a's ClusterIP: judged against the backend, a");
    assert.equal(await reaches(b, VIP_C, undefined, 80), false, "b -> c's ClusterIP: judged against the backend, c");
    assert.equal(await reaches(a, c.ip6!, a.ip6), true, 'a (not isolated) -> c over IPv6');
    assert.ok(denied() >= 1, JSON.stringify(weir1.counters().from_pod));
  });

  test('the policies deleted: IPv6 open again', async () => {
    await applied('policy.yaml', []);
    assert.equal(await reaches(c, a.ip6!, c.ip6), true);
    assert.equal(await reaches(b, c.ip6!, b.ip6), true);
    assert.equal(await reaches(b, VIP_C, b.ip6, 80), true, "c's ClusterIP works: the denial above was the policy's");
  });
});
