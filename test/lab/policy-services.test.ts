// NetworkPolicy with Services, changes and restarts, on real packets across two lab nodes
// (issue 13, must-shows 3, 4 and 5): weir on both nodes with default flags, CNI ptp pods in
// two namespaces, external clients on the underlay. Across nodes: a pod on node2 allowed or
// denied into a pod on node1 by its labels; through a ClusterIP the client's egress policy is
// judged on the chosen backend and each backend's ingress against the client itself (TC path,
// and the connect-time LB for a client in the node's socket-LB cgroup); an external client
// through a NodePort by ipBlock with except, the backend on node1 and on node2 through the
// tunnel (tunnel and DSR return), decided on the backend's node. Changes (a policy added and
// deleted, a pod and a namespace relabelled) are followed within a second (printed), and
// unrelated changes do not disturb a long-lived TCP stream or UDP flow. kill -9 and restart of
// weir on the protected pod's node, twice: a denied client hammering it never gets through,
// the allowed stream goes on, a restart adopts the pinned maps and writes only what changed.
//
// The decision the issue asks for, shown here: a policy that starts to deny an established
// connection does not cut it. The verdict is cached in conntrack when the flow starts; the
// connection's later packets never meet the policy stage again, so it continues (TCP and a
// UDP flow alike) while every new connection is denied at once (Calico and Cilium do the
// same). A UDP flow is decided anew once its conntrack entry goes (60 s idle; here flushed
// with `weir ct flush`), and is then denied. (A TCP connection whose entry goes is decided
// anew too, on its next segment: docs/dataplane.md.)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { probe, type Attempt } from '../lib/prober.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, k8sNamespace, k8sPod, networkPolicy, node, service, SVC_CLIENT_JS, WeirNode, type LogLine, type PortSpec } from '../lib/weir-node.js';
import type { SpreadResult } from '../lib/svc-client.js';

const PORT = 8080;
const VIP = '198.19.0.80';
const WEB: PortSpec[] = [{ name: 'http', port: 80, targetPort: PORT, protocol: 'TCP' }];
const NP_LOCAL = 30180; // backend wa on node1
const NP_REMOTE = 30181; // backend wb on node2: node1 carries it through the tunnel
const npPorts = (nodePort: number): PortSpec[] => [{ name: 'http', port: 80, targetPort: PORT, protocol: 'TCP', nodePort }];

type Counters = Record<string, Record<string, number>>;
const delta = (a: Counters, b: Counters, hook: string, reason: string) => (a[hook]?.[reason] ?? 0) - (b[hook]?.[reason] ?? 0);
const summary = (as: Attempt[]) => `${as.filter((a) => a.ok).length} ok / ${as.length}`;

describe('NetworkPolicy with Services, changes and restarts across two nodes', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let weir1: WeirNode;
  let weir2: WeirNode;
  // x/a on node1: the protected server; x/b and y/c on node2: clients; x/wa (node1) and x/wb
  // (node2): the backends of the ClusterIP and of the NodePorts
  const pod: Record<'a' | 'b' | 'c' | 'wa' | 'wb', Pod> = {} as never;
  const podNs = { a: 'x', b: 'x', c: 'y', wa: 'x', wb: 'x' } as const;
  const podLabels: Record<keyof typeof pod, Record<string, string>> = {
    a: { pod: 'a' },
    b: { pod: 'b' },
    c: { pod: 'c' },
    wa: { app: 'web', be: 'a' },
    wb: { app: 'web', be: 'b' },
  };
  const nsLabels: Record<'x' | 'y', Record<string, string>> = { x: { ns: 'x' }, y: { ns: 'y' } };
  let denied: External; // 198.18.0.100: in the ipBlock's except
  let allowed: External; // 198.18.0.101: in the ipBlock
  let fromNothing: number; // the policy writes of node1's first start, on empty maps

  const both = () => [weir1, weir2];
  const podObjects = () =>
    (Object.keys(pod) as (keyof typeof pod)[]).map((n) =>
      k8sPod({ name: n, namespace: podNs[n], labels: podLabels[n], ip: pod[n].ip, node: pod[n].node.name, ports: [{ name: 'serve', containerPort: PORT }] }),
    );
  const nsObjects = () => (['x', 'y'] as const).map((n) => k8sNamespace({ name: n, labels: nsLabels[n] }));
  /** writes a manifest on both nodes; waits for the policy change line of `waitOn` */
  const write = async (name: string, objs: object[] | null, waitOn: WeirNode[] = both()) => {
    const marks = waitOn.map((w) => w.mark());
    for (const w of both())
      if (objs) w.writeManifest(name, objs);
      else w.removeManifest(name);
    await Promise.all(waitOn.map((w, i) => w.waitFor('policy', { reason: 'change' }, 10_000, marks[i])));
  };
  /** runs `body` with the policies of manifest `name` in force, removed afterwards even when it fails */
  const withPolicies = async (name: string, objs: object[], waitOn: WeirNode[], body: () => Promise<void>) => {
    await write(name, objs, waitOn);
    try {
      await body();
    } finally {
      await write(name, null, waitOn);
    }
  };
  /** true when a TCP connection from `from` reaches host:port within 1 s */
  const reaches = async (from: { ns: Pod['ns'] }, host: string, port = PORT): Promise<boolean> => {
    try {
      await from.ns.echo(host, port, { timeoutMs: 1000 });
      return true;
    } catch {
      return false;
    }
  };
  /** many new connections with a short timeout (a denied SYN is dropped: the connect times out) */
  const spread = async (from: { ns: Pod['ns'] }, host: string, port: number, count: number, inCgroup?: WeirNode): Promise<SpreadResult> => {
    const args = [SVC_CLIENT_JS, 'spread', '--host', host, '--port', String(port), '--count', String(count), '--concurrency', '10', '--timeout', '800'];
    const r = await from.ns.exec(process.execPath, args, { timeoutMs: 60_000, ...(inCgroup ? { cgroup: inCgroup.cgroup } : {}) });
    return JSON.parse(r.stdout) as SpreadResult;
  };

  before(async () => {
    lab = await Lab.create({ name: 'policy-svc' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
    await lab.routePodSubnets();
    for (const n of ['a', 'wa'] as const) pod[n] = await lab.pod(node1, n);
    for (const n of ['b', 'c', 'wb'] as const) pod[n] = await lab.pod(node2, n);
    for (const n of ['a', 'wa', 'wb'] as const) await pod[n].ns.echoServer({ name: n, port: PORT });
    denied = await lab.external('denied', { address: '198.18.0.100/24' });
    allowed = await lab.external('allowed', { address: '198.18.0.101/24' });
    // default flags: connect-time LB on (each daemon's own lab cgroup), tunnel return
    weir1 = await WeirNode.create(lab, node1, { metricsAddress: '127.0.0.1:9745' });
    weir2 = await WeirNode.create(lab, node2);
    const cluster = [
      node({ name: 'node1', internalIP: node1.address, podCIDRs: [node1.podSubnet!] }),
      node({ name: 'node2', internalIP: node2.address, podCIDRs: [node2.podSubnet!] }),
      service({ name: 'web', clusterIP: VIP, ports: WEB }),
      endpointSlice({
        name: 'web-1',
        service: 'web',
        ports: WEB,
        endpoints: [
          { ip: pod.wa.ip, node: 'node1' },
          { ip: pod.wb.ip, node: 'node2' },
        ],
      }),
      service({ name: 'np-local', type: 'NodePort', clusterIP: '198.19.0.81', ports: npPorts(NP_LOCAL) }),
      endpointSlice({ name: 'np-local-1', service: 'np-local', ports: npPorts(NP_LOCAL), endpoints: [{ ip: pod.wa.ip, node: 'node1' }] }),
      service({ name: 'np-remote', type: 'NodePort', clusterIP: '198.19.0.82', ports: npPorts(NP_REMOTE) }),
      endpointSlice({ name: 'np-remote-1', service: 'np-remote', ports: npPorts(NP_REMOTE), endpoints: [{ ip: pod.wb.ip, node: 'node2' }] }),
    ];
    for (const w of both()) {
      w.writeManifest('cluster.yaml', cluster);
      w.writeManifest('namespaces.yaml', nsObjects());
      w.writeManifest('pods.yaml', podObjects());
    }
    await Promise.all(both().map((w) => w.start()));
    fromNothing = Number(weir1.events('policy').find((l) => l.reason === 'start')!.writes);
  });
  after(async () => {
    await runCleanups();
    await lab?.destroy();
  });

  test('MS3: a pod on node2 is allowed into a pod on node1 by its labels, another pod of its namespace is not', async () => {
    assert.equal(await reaches(pod.wb, pod.a.ip), true, 'no policy: x/wb reaches x/a');
    const fromB = networkPolicy({
      name: 'from-b',
      namespace: 'x',
      spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] },
    });
    await withPolicies('ms3-labels.yaml', [fromB], [weir1], async () => {
      const c1 = weir1.counters();
      assert.equal(await reaches(pod.b, pod.a.ip), true, 'x/b (pod=b) on node2 is allowed');
      assert.equal(await reaches(pod.wb, pod.a.ip), false, 'x/wb (app=web) on node2 is denied');
      assert.equal(await reaches(pod.c, pod.a.ip), false, 'y/c: pod=c, and a podSelector alone means the policy namespace');
      const d1 = weir1.counters();
      assert.ok(delta(d1, c1, 'from_host', 'policy_ingress_denied') >= 2, JSON.stringify(d1.from_host));
      assert.ok(delta(d1, c1, 'from_host', 'policy_ingress_allowed') >= 1, JSON.stringify(d1.from_host));
    });
  });

  for (const path of ['TC path', 'connect-time LB'] as const)
    test(`MS3: through a ClusterIP, the client's egress is judged on the chosen backend (${path})`, async () => {
      // x/b may send only to be=a (x/wa on node1); the Service spreads over wa and wb
      const bToWa = networkPolicy({
        name: 'b-to-wa',
        namespace: 'x',
        spec: { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { be: 'a' } } }] }] },
      });
      await withPolicies('ms3-egress.yaml', [bToWa], [weir2], async () => {
        const c2 = weir2.counters();
        const r = await spread(pod.b, VIP, 80, 24, path === 'connect-time LB' ? weir2 : undefined);
        const d2 = weir2.counters();
        console.log(
          `# ${path}: ${JSON.stringify(r.servers)}, ${r.failures} failed; node2 from_pod ${JSON.stringify(d2.from_pod)} sock ${JSON.stringify(d2.sock)}`,
        );
        assert.deepEqual(Object.keys(r.servers), ['wa'], 'only backend A answered');
        assert.ok(r.failures > 0, 'the connections that chose backend B failed');
        assert.deepEqual(r.peers.wa, [pod.b.ip], 'wa saw the client itself');
        assert.ok(delta(d2, c2, 'from_pod', 'policy_egress_denied') >= r.failures, 'each was dropped by the egress policy on node2');
        assert.ok(delta(d2, c2, 'from_pod', 'policy_egress_allowed') >= r.servers.wa!, 'each allowed one was decided on its backend');
        if (path === 'TC path') {
          // a denied flow is counted as that (its NAT is never done): every connection is one or the other
          assert.equal(delta(d2, c2, 'from_pod', 'service_nat'), r.servers.wa, 'the TC path chose the backends');
          assert.equal(delta(d2, c2, 'sock', 'sock_lb_translated'), 0);
        } else {
          assert.ok(delta(d2, c2, 'sock', 'sock_lb_translated') >= 24, 'connect() chose the backends');
          assert.equal(delta(d2, c2, 'from_pod', 'service_nat'), 0, 'no packet went to the ClusterIP');
        }
      });
    });

  test("MS3: through a ClusterIP, the backends' ingress is judged against the client itself, on the backend's node (TC path and connect-time LB)", async () => {
    const onlyB = networkPolicy({
      name: 'web-from-b',
      namespace: 'x',
      spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] },
    });
    await withPolicies('ms3-ingress.yaml', [onlyB], both(), async () => {
      for (const inCgroup of [undefined, weir2]) {
        const path = inCgroup ? 'connect-time LB' : 'TC path';
        const before = [weir1.counters(), weir2.counters()] as const;
        const fromB = await spread(pod.b, VIP, 80, 12, inCgroup);
        const fromC = await spread(pod.c, VIP, 80, 10, inCgroup);
        const after = [weir1.counters(), weir2.counters()] as const;
        const denied = [delta(after[0], before[0], 'from_host', 'policy_ingress_denied'), delta(after[1], before[1], 'from_pod', 'policy_ingress_denied')];
        console.log(
          `# ${path}: x/b ${JSON.stringify(fromB.servers)} (${fromB.failures} failed); y/c ${fromC.failures} of 10 failed; ` +
            `denied on node1 ${denied[0]}, node2 ${denied[1]}`,
        );
        assert.equal(fromB.failures, 0, `${path}: x/b reaches both backends: ${fromB.errors.join('; ')}`);
        assert.deepEqual(Object.keys(fromB.servers).sort(), ['wa', 'wb'], `${path}: through both backends`);
        assert.deepEqual([...new Set([...fromB.peers.wa!, ...fromB.peers.wb!])], [pod.b.ip], 'each backend saw the client itself');
        assert.equal(fromC.failures, 10, `${path}: y/c is denied by both backends`);
        assert.ok(denied[0] >= 1 && denied[1] >= 1, `${path}: wa's node (from_host) and wb's node (from_pod) each denied y/c`);
      }
    });
  });

  /** ipBlock 198.18.0.0/24 except the denied client, on both NodePort backends */
  const ipBlockPolicies = () =>
    ['wa', 'wb'].map((n) =>
      networkPolicy({
        name: `np-${n}`,
        namespace: 'x',
        spec: {
          podSelector: { matchLabels: { app: 'web', be: n.slice(1) } },
          ingress: [{ from: [{ ipBlock: { cidr: '198.18.0.0/24', except: [`${denied.address}/32`] } }], ports: [{ port: PORT }] }],
        },
      }),
    );
  const nodePortCase = async (mode: string) => {
    await withPolicies('ms3-ipblock.yaml', ipBlockPolicies(), both(), async () => {
      for (const [port, where, w] of [
        [NP_LOCAL, 'backend on node1', weir1],
        [NP_REMOTE, 'backend on node2 through the tunnel', weir2],
      ] as const) {
        const before = [weir1.counters(), weir2.counters()] as const;
        const ok = await allowed.ns.echo(node1.address, port, { timeoutMs: 1500 });
        assert.equal(ok.reply.peer, allowed.address, `${mode}, ${where}: the backend sees the allowed client itself`);
        assert.equal(await reaches(denied, node1.address, port), false, `${mode}, ${where}: the client in except is denied`);
        const after = [weir1.counters(), weir2.counters()] as const;
        const i = w === weir1 ? 0 : 1;
        const d = (n: 0 | 1, hook: string, reason: string) => delta(after[n], before[n], hook, reason);
        console.log(
          `# ${mode}, ${where}: on the backend's node ingress denied ${d(i, 'from_host', 'policy_ingress_denied')}, ` +
            `allowed ${d(i, 'from_host', 'policy_ingress_allowed')}; node1 tunnel_encap ${d(0, 'from_host', 'tunnel_encap')}, ` +
            `node2 dsr_reply ${d(1, 'from_pod', 'dsr_reply')}, node2 replies into the tunnel ${d(1, 'from_pod', 'tunnel_encap')}`,
        );
        assert.ok(d(i, 'from_host', 'policy_ingress_denied') >= 1, `${where}: denied on the backend's node`);
        assert.ok(d(i, 'from_host', 'policy_ingress_allowed') >= 1, `${where}: allowed on the backend's node`);
        assert.equal(d(i === 0 ? 1 : 0, 'from_host', 'policy_ingress_denied'), 0, `${where}: the other node decided nothing`);
        if (w === weir2) {
          assert.ok(d(0, 'from_host', 'tunnel_encap') >= 3, 'node1 carried the flows to node2');
          // the allowed connection's replies: back through the tunnel, or straight to the client
          assert.ok(d(1, 'from_pod', mode === 'dsr' ? 'dsr_reply' : 'tunnel_encap') >= 2, `${mode} return`);
        }
      }
    });
  };

  test('MS3: an external client through a NodePort, by ipBlock with except (tunnel mode)', () => nodePortCase('tunnel'));

  test('MS4: a policy added, a pod relabelled, a namespace relabelled, the policy deleted: the verdicts follow within a second', async () => {
    const figures: string[] = [];
    const measure = async (what: string, from: 'b' | 'c', want: boolean, change: () => void) => {
      const p = probe(pod[from].ns, pod.a.ip, PORT, { every: 20, timeoutMs: 400 });
      try {
        await p.flipped(0, !want, 5000); // the verdict before the change, settled
        const t0 = Date.now();
        change();
        const ms = await p.flipped(t0, want);
        figures.push(`${what}: ${ms} ms`);
        console.log(`# ${what}: ${from} -> a ${want ? 'allowed' : 'denied'} ${ms} ms after the manifest was written`);
        assert.ok(ms < 1000, `${what}: ${ms} ms`);
      } finally {
        await p.stop();
      }
    };
    const writeAll = (name: string, objs: object[]) => both().forEach((w) => w.writeManifest(name, objs));
    const policy = [
      networkPolicy({
        name: 'friends',
        namespace: 'x',
        spec: {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { role: 'friend' } } }, { namespaceSelector: { matchLabels: { team: 'blue' } } }] }],
        },
      }),
    ];
    try {
      await measure('policy added', 'b', false, () => writeAll('ms4.yaml', policy));
      podLabels.b = { pod: 'b', role: 'friend' };
      await measure('pod relabelled in', 'b', true, () => writeAll('pods.yaml', podObjects()));
      podLabels.b = { pod: 'b' };
      await measure('pod relabelled out', 'b', false, () => writeAll('pods.yaml', podObjects()));
      nsLabels.y = { ns: 'y', team: 'blue' };
      await measure('namespace relabelled in', 'c', true, () => writeAll('namespaces.yaml', nsObjects()));
      nsLabels.y = { ns: 'y' };
      await measure('namespace relabelled out', 'c', false, () => writeAll('namespaces.yaml', nsObjects()));
      await measure('policy deleted', 'c', true, () => both().forEach((w) => w.removeManifest('ms4.yaml')));
    } finally {
      // a failure above leaves neither the policy nor a label behind for the next tests
      podLabels.b = { pod: 'b' };
      nsLabels.y = { ns: 'y' };
      for (const w of both()) {
        w.removeManifest('ms4.yaml');
        w.writeManifest('pods.yaml', podObjects());
        w.writeManifest('namespaces.yaml', nsObjects());
      }
    }
    console.log(`# MS4 verdict latencies: ${figures.join(', ')}`);
  });

  test('MS4: an allowed long-lived stream is not disturbed by unrelated changes (another policy, another pod relabelled)', async () => {
    const allowY = networkPolicy({
      name: 'allow-y',
      namespace: 'x',
      spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] },
    });
    await withPolicies('ms4-stream.yaml', [allowY], [weir1], async () => {
      const flows = (['tcp', 'udp'] as const).map((proto) => weir1.flow(pod.c.ns, pod.a.ip, PORT, { seconds: 0, interval: 50, proto }));
      await Promise.all(flows.map((f) => f.waitReplies(10)));
      // unrelated: a policy on x/wa and x/wb, then x/wa (node1) relabelled; nothing of x/a's changes
      await write(
        'ms4-stream.yaml',
        [allowY, networkPolicy({ name: 'web-closed', namespace: 'x', spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [] } })],
        [weir1],
      );
      podLabels.wa = { app: 'web', be: 'a', tier: 'front' };
      await write('pods.yaml', podObjects(), [weir1]);
      await Promise.all(flows.map((f) => f.waitReplies(f.replies() + 10)));
      const [t, u] = await Promise.all(flows.map((f) => f.stop()));
      console.log(
        `# across unrelated changes: TCP stream ${t!.received}/${t!.sent} (longest gap ${t!.maxGapMs} ms), UDP ${u!.received}/${u!.sent} (${u!.maxGapMs} ms)`,
      );
      for (const f of [t!, u!]) {
        assert.equal(f.error, undefined, 'no reset');
        assert.equal(f.received, f.sent);
        assert.ok(f.maxGapMs < 500, `longest gap ${f.maxGapMs} ms`);
      }
    });
  });

  test('decided: an established connection outlives a policy that starts to deny it (TCP and UDP); new connections are denied at once', async () => {
    const tcp = weir1.flow(pod.c.ns, pod.a.ip, PORT, { seconds: 0, interval: 50 });
    const udp = weir1.flow(pod.c.ns, pod.a.ip, PORT, { seconds: 0, interval: 50, proto: 'udp' });
    const udp2 = weir1.flow(pod.c.ns, pod.a.ip, PORT, { seconds: 0, interval: 50, proto: 'udp' });
    await Promise.all([tcp.waitReplies(10), udp.waitReplies(10), udp2.waitReplies(10)]);
    const denyAll = networkPolicy({ name: 'deny-all', namespace: 'x', spec: { podSelector: {}, policyTypes: ['Ingress'] } });
    await withPolicies('deny-all.yaml', [denyAll], [weir1], async () => {
      const c1 = weir1.counters();
      assert.equal(await reaches(pod.c, pod.a.ip), false, 'a new TCP connection from the same client is denied');
      await assert.rejects(pod.c.ns.echo(pod.a.ip, PORT, { proto: 'udp', timeoutMs: 1000 }), 'a new UDP flow (another source port) is denied');
      await Promise.all([tcp.waitReplies(tcp.replies() + 20), udp.waitReplies(udp.replies() + 20), udp2.waitReplies(udp2.replies() + 20)]);
      const [t, u] = await Promise.all([tcp.stop(), udp.stop()]);
      const d1 = weir1.counters();
      console.log(`# after deny-all: TCP stream ${t.received}/${t.sent} (gap ${t.maxGapMs} ms), UDP flow ${u.received}/${u.sent} (gap ${u.maxGapMs} ms)`);
      assert.ok(delta(d1, c1, 'from_host', 'policy_ingress_denied') >= 2, 'the new ones were denied by the policy');
      assert.equal(t.error, undefined, 'the established TCP connection was not reset');
      assert.equal(t.received, t.sent, 'every line of the TCP stream came back');
      assert.equal(u.received, u.sent, 'every datagram of the UDP flow came back');

      // once a UDP flow's conntrack entry is gone (60 s idle; here flushed by hand), its next
      // datagram is a new flow, and the policy now denies it
      const flushed = weir1.cli<[{ deleted: number }]>('ct', 'flush', '--address', pod.c.ip, '--protocol', 'udp');
      await sleep(300); // replies already on their way
      const c2 = weir1.counters();
      const r0 = udp2.replies();
      await sleep(1000);
      const stalled = udp2.replies() - r0;
      const denied = delta(weir1.counters(), c2, 'from_host', 'policy_ingress_denied');
      const u2 = await udp2.stop();
      console.log(
        `# UDP flow after its conntrack entries were flushed (${flushed[0].deleted}): ${stalled} replies in 1 s, ` +
          `${denied} datagrams denied; ${u2.received}/${u2.sent}`,
      );
      assert.equal(stalled, 0, 'the flow, decided anew, is denied');
      assert.ok(denied >= 10, `its datagrams were denied by the policy: ${denied}`);
    });
  });

  test('MS5: kill -9 and restart of weir on node1, twice: a denied client never gets through, the stream goes on, a restart writes only changes', async () => {
    const allowY = networkPolicy({
      name: 'allow-y',
      namespace: 'x',
      spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] },
    });
    await withPolicies('ms5.yaml', [allowY], [weir1], async () => {
      const stream = weir1.flow(pod.c.ns, pod.a.ip, PORT, { seconds: 0, interval: 50 });
      const hammer = probe(pod.b.ns, pod.a.ip, PORT, { every: 10, timeoutMs: 1000 });
      const friend = probe(pod.c.ns, pod.a.ip, PORT, { every: 50, timeoutMs: 1000 });
      await stream.waitReplies(10);
      const windows: { kill: number; ready: number }[] = [];
      const starts: LogLine[] = [];
      /** kill -9, `whileDown`, restart; returns the restart's policy start line */
      const restart = async (whileDown: () => void) => {
        const kill = Date.now();
        await weir1.kill9();
        whileDown();
        await sleep(1000); // no daemon on node1
        await weir1.start();
        windows.push({ kill, ready: Date.now() });
        starts.push(weir1.events('policy').find((l) => l.reason === 'start')!);
        await sleep(500);
      };
      await restart(() => undefined); // nothing changed meanwhile
      await restart(() => {
        // while no daemon runs: x/wa relabelled (a new identity on node1)
        podLabels.wa = { app: 'web', be: 'a', tier: 'back' };
        weir1.writeManifest('pods.yaml', podObjects());
        weir2.writeManifest('pods.yaml', podObjects());
      });
      await stream.waitReplies(stream.replies() + 10);
      const [h, fr, s] = await Promise.all([hammer.stop(), friend.stop(), stream.stop()]);
      const during = (as: Attempt[]) => as.filter((a) => windows.some((w) => a.start >= w.kill && a.start <= w.ready));
      console.log(
        `# kill -9 to ready: ${windows.map((w) => `${w.ready - w.kill} ms`).join(', ')}; denied x/b: ${summary(h)} (${summary(during(h))} while down or ` +
          `starting); allowed y/c: ${summary(fr)} (${summary(during(fr))}); stream ${s.received}/${s.sent}, longest gap ${s.maxGapMs} ms`,
      );
      for (const l of starts) console.log(`# a restart's policy line: ${JSON.stringify(l)}`);
      console.log(`# the first start, on empty maps, wrote ${fromNothing}`);
      assert.equal(h.filter((a) => a.ok).length, 0, 'no connection of the denied client got through');
      assert.ok(during(h).length >= 100, `the denied client hammered throughout: ${during(h).length} attempts while down or starting`);
      assert.ok(fr.length > 0 && fr.every((a) => a.ok), `every new connection of the allowed client got through: ${summary(fr)}`);
      assert.equal(s.error, undefined);
      assert.equal(s.received, s.sent, 'the allowed stream lost nothing');
      assert.equal(starts[0]!.writes, '0', 'nothing changed: the restart adopted the pinned maps and wrote nothing');
      assert.ok(Number(starts[0]!.adoptedIdentities) > 0, 'it adopted the identities from the pins');
      const changed = Number(starts[1]!.writes);
      assert.ok(changed > 0 && changed < fromNothing, `a pod relabelled meanwhile: ${changed} writes (from nothing: ${fromNothing})`);
    });
  });

  test("SCTP: a denied pod's INIT to x/a is dropped by the policy; an allowed pod's starts a tracked flow", async () => {
    // no SCTP in the lab's kernel: the client writes the INIT on a raw socket (what the pod sees is on its wire)
    const init = `
import socket, struct, sys
chunk = struct.pack('!BBHIIHHI', 1, 0, 20, 0x11111111, 65535, 1, 1, 0x22222222)
socket.socket(socket.AF_INET, socket.SOCK_RAW, 132).sendto(struct.pack('!HHII', int(sys.argv[2]), ${PORT}, 0, 0) + chunk, (sys.argv[1], 0))
`;
    const allowY = networkPolicy({
      name: 'allow-y-sctp',
      namespace: 'x',
      spec: {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ protocol: 'SCTP', port: PORT }] }],
      },
    });
    await withPolicies('sctp.yaml', [allowY], [weir1], async () => {
      const dump = pod.a.ns.spawn('tcpdump', ['-i', 'eth0', '-n', '-l', 'sctp'], { label: 'tcpdump sctp in a' });
      await sleep(700);
      const c1 = weir1.counters();
      await pod.b.ns.exec('python3', ['-c', init, pod.a.ip, '40100']);
      await sleep(200);
      const d1 = weir1.counters();
      await pod.c.ns.exec('python3', ['-c', init, pod.a.ip, '40101']);
      await sleep(500);
      const e1 = weir1.counters();
      await dump.stop();
      const seen = dump.stdout.split('\n').filter((l) => l.includes('INIT'));
      console.log(`# SCTP INITs in x/a: ${seen.length ? seen.join(' | ') : 'none'}`);
      assert.equal(delta(d1, c1, 'from_host', 'policy_ingress_denied'), 1, `x/b's INIT denied: ${JSON.stringify(d1.from_host)}`);
      assert.equal(delta(e1, d1, 'from_host', 'policy_ingress_allowed'), 1, `y/c's INIT allowed: ${JSON.stringify(e1.from_host)}`);
      assert.equal(delta(e1, d1, 'from_host', 'ct_tracked_new'), 1, "y/c's INIT started a tracked flow");
      assert.deepEqual(
        seen.map((l) => l.split(' ')[2]),
        [`${pod.c.ip}.40101`],
        'only the allowed INIT reached the pod',
      );
    });
  });

  test('MS3: an external client through a NodePort, by ipBlock with except (DSR mode, both daemons restarted)', async () => {
    for (const w of both()) {
      await w.terminate();
      w.configure({ extraArgs: ['--external-service-mode', 'dsr'] });
    }
    await Promise.all(both().map((w) => w.start()));
    await nodePortCase('dsr');
  });
});
