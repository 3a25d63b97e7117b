// The demo lab (`make demo`): two node namespaces with pods made by the real CNI ptp plugin
// and an external client on the underlay; `weir daemon` runs inside each node on a manifests
// directory, and real traffic shows what it does:
//   1. a ClusterIP spread over three backends (new connections from a pod),
//   2. a NodePort reached from the external client, the backend reporting the client's
//      real address (no SNAT), the reply coming from the address the client dialled,
//   3. a NodePort on node1 whose only backend runs on node2: carried there in VXLAN, the
//      backend still sees the client's own address,
//   4. a service with no endpoints refused at once instead of timing out,
//   5. NetworkPolicy: a policy that lets only `role: frontend` pods into the web pods denies
//      the client pod, which is let in well within a second of being relabelled,
//   6. dual stack: the same Service over IPv6 (its second ClusterIP, the NodePort on node1's
//      IPv6 address): the client pod spread over the backends, the external client denied by
//      the same policy over IPv6, then, the policy removed, answered with its own IPv6 address,
// with `weir services`, `weir nodes`, `weir ct list` and `weir counters` showing the maps.
// Everything is torn down at the end, also on failure or Ctrl-C.

import { execFileSync } from 'node:child_process';
import { Lab, dualStackNode, type LabNode, type Pod } from '../test/lib/lab.js';
import { runCleanups } from '../test/lib/cleanup.js';
import { binWeir } from '../test/lib/paths.js';
import { WeirNode, endpointSlice, k8sNamespace, k8sPod, networkPolicy, node as nodeObject, service } from '../test/lib/weir-node.js';

const say = (s: string) => process.stdout.write(`\n== ${s}\n`);
const CLUSTER_IP = '198.19.0.10';
const EMPTY_IP = '198.19.0.11';
const API_IP = '198.19.0.12';
const CLUSTER_IP6 = '2001:2:ff::10';

/** A lab node as its Node object: what weir reads to reach that node's pods. */
const nodeManifest = (n: LabNode) => nodeObject({ name: n.name, internalIP: [n.address, n.address6!], podCIDRs: [n.podSubnet!, n.podSubnet6!] });
const NODE_PORT = 30080;
const REMOTE_NODE_PORT = 30081;

function weirCli(node: LabNode, weir: WeirNode, ...args: string[]): string {
  return execFileSync('nsenter', [`--net=${node.ns.path}`, binWeir, ...args, '--bpf-root', weir.lab.bpffs, '--instance', weir.instance], { encoding: 'utf8' });
}

async function main(): Promise<void> {
  const lab = await Lab.create({ name: 'demo' });
  try {
    say(
      'lab: node1 (198.18.0.1, 2001:2::1) and node2 (198.18.0.2, 2001:2::2), dual-stack pods from the CNI ptp plugin, an external client (198.18.0.100, 2001:2::100)',
    );
    const node = await lab.node('node1', dualStackNode(1));
    const node2 = await lab.node('node2', dualStackNode(2));
    await lab.routePodSubnets();
    const remote = await lab.pod(node2, 'api-remote');
    await remote.ns.echoServer({ name: 'api-remote', port: 8080 });
    const backends: Pod[] = [];
    for (const name of ['web-a', 'web-b', 'web-c']) {
      const pod = await lab.pod(node, name);
      await pod.ns.echoServer({ name, port: 8080 });
      backends.push(pod);
    }
    const client = await lab.pod(node, 'client');
    const outside = await lab.external('outside', { address: '198.18.0.100/24', address6: '2001:2::100/64', cgroup: true });
    for (const p of backends)
      console.log(`  backend ${p.name} ${p.ip}:8080 and [${p.ip6}]:8080 (echo server: replies with its name and the client address it sees)`);
    console.log(`  client pod ${client.ip} ${client.ip6}; on node2: backend api-remote ${remote.ip}:8080`);

    /** the Pod objects of the lab's pods (NetworkPolicy selects them by these labels) */
    const pods = (clientLabels: Record<string, string>) => [
      k8sNamespace({ name: 'default' }),
      ...backends.map((p) =>
        k8sPod({ name: p.name, labels: { app: 'web' }, ip: [p.ip, p.ip6!], node: 'node1', ports: [{ name: 'http', containerPort: 8080 }] }),
      ),
      k8sPod({ name: 'client', labels: clientLabels, ip: [client.ip, client.ip6!], node: 'node1' }),
      k8sPod({ name: 'api-remote', labels: { app: 'api' }, ip: remote.ip, node: 'node2' }),
    ];

    say('weir daemon in each node, on the same manifests (Services, EndpointSlices, Pods, the two Nodes)');
    const weir = await WeirNode.create(lab, node, { logLevel: 'info' });
    const weir2 = await WeirNode.create(lab, node2, { logLevel: 'info' });
    const ports = [{ name: 'http', port: 80, targetPort: 8080, nodePort: NODE_PORT }];
    const remotePorts = [{ name: 'http', port: 80, targetPort: 8080, nodePort: REMOTE_NODE_PORT }];
    for (const w of [weir, weir2]) {
      w.writeManifest('nodes.yaml', [nodeManifest(node), nodeManifest(node2)]);
      w.writeManifest('web.yaml', [
        // dual stack: one Service, a ClusterIP of each family, an EndpointSlice per family
        service({ name: 'web', clusterIP: [CLUSTER_IP, CLUSTER_IP6], type: 'NodePort', ports }),
        endpointSlice({ name: 'web-1', service: 'web', ports, endpoints: backends.map((p) => ({ ip: p.ip, node: 'node1' })) }),
        endpointSlice({ name: 'web-1-v6', service: 'web', ports, endpoints: backends.map((p) => ({ ip: p.ip6!, node: 'node1' })) }),
        service({ name: 'api', clusterIP: API_IP, type: 'NodePort', ports: remotePorts }),
        endpointSlice({ name: 'api-1', service: 'api', ports: remotePorts, endpoints: [{ ip: remote.ip, node: 'node2' }] }),
      ]);
      w.writeManifest('pods.yaml', pods({ app: 'client' }));
      w.writeManifest('empty.yaml', [service({ name: 'empty', clusterIP: EMPTY_IP, ports: [{ name: 'http', port: 80, targetPort: 8080 }] })]);
    }
    const [ready] = await Promise.all([weir.start(), weir2.start()]);
    console.log(
      `  ready: ${Object.entries(ready)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
    process.stdout.write(weirCli(node, weir, 'services'));

    say(`1. ClusterIP ${CLUSTER_IP}:80 from the client pod: 300 new TCP connections`);
    // the client runs in weir's cgroup, as a pod's processes sit under the node's cgroup
    // tree: the connect-time LB picks the backend in connect(), no per-packet NAT
    const spread = await weir.spread(client.ns, CLUSTER_IP, 80, { count: 300, cgroup: weir.cgroup });
    for (const [name, n] of Object.entries(spread.servers).sort())
      console.log(`  ${name}: ${n} (${((100 * n) / 300).toFixed(0)}%), saw the client as ${spread.peers[name]?.join(',')}`);
    console.log(`  failures: ${spread.failures}; getpeername() in the client still showed ${Object.keys(spread.remotes).join(', ')}`);

    say(`2. NodePort ${node.address}:${NODE_PORT} from the external client ${outside.address}`);
    for (let i = 0; i < 3; i++) {
      const r = await outside.ns.echo(node.address, NODE_PORT, { proto: 'tcp', cgroup: outside.cgroup });
      console.log(`  backend ${r.reply.server} saw the client as ${r.reply.peer}; the client's peer was ${r.client.remote}`);
    }

    say(`3. NodePort ${node.address}:${REMOTE_NODE_PORT}, whose only backend runs on node2, from the external client`);
    for (let i = 0; i < 3; i++) {
      const r = await outside.ns.echo(node.address, REMOTE_NODE_PORT, { proto: 'tcp', cgroup: outside.cgroup });
      console.log(`  backend ${r.reply.server} (on node2) saw the client as ${r.reply.peer}; the client's peer was ${r.client.remote}`);
    }
    const c = weir.counters().from_host ?? {};
    console.log(`  node1 encapsulated ${c.tunnel_encap ?? 0} packets into VXLAN (UDP 4789) and decapsulated ${c.tunnel_decap ?? 0} replies`);
    process.stdout.write(weirCli(node, weir, 'nodes'));

    say(`4. ${EMPTY_IP}:80 has no endpoints: refused at once`);
    const refused = await client.ns.curl(`http://${EMPTY_IP}:80/`, { check: false, timeoutMs: 3000 });
    console.log(`  curl exit ${refused.exitCode} (${refused.exitCode === 7 ? 'connection refused' : 'unexpected'}) after ${refused.totalMs.toFixed(1)} ms`);

    say('5. NetworkPolicy: only pods labelled role=frontend may reach the web pods (port "http")');
    let mark = weir.mark();
    for (const w of [weir, weir2])
      w.writeManifest('policy.yaml', [
        networkPolicy({
          name: 'web-from-frontend',
          spec: {
            podSelector: { matchLabels: { app: 'web' } },
            ingress: [{ from: [{ podSelector: { matchLabels: { role: 'frontend' } } }], ports: [{ port: 'http' }] }],
          },
        }),
      ]);
    await weir.waitFor('policy', { reason: 'change' }, 10_000, mark);
    const denied = await client.ns.echo(CLUSTER_IP, 80, { timeoutMs: 1000, cgroup: weir.cgroup }).then(
      (r) => `answered by ${r.reply.server} (unexpected)`,
      () => "no answer in 1 s: the SYN was dropped by the backend's ingress policy",
    );
    console.log(`  client pod (app=client) -> ${CLUSTER_IP}:80: ${denied}`);
    mark = weir.mark();
    const relabelled = Date.now();
    for (const w of [weir, weir2]) w.writeManifest('pods.yaml', pods({ app: 'client', role: 'frontend' }));
    let answer: string | undefined;
    while (!answer && Date.now() - relabelled < 5000)
      answer = await client.ns.echo(CLUSTER_IP, 80, { timeoutMs: 200, cgroup: weir.cgroup }).then(
        (r) => r.reply.server,
        () => undefined,
      );
    console.log(`  client relabelled role=frontend: answered by ${answer ?? 'nobody'} ${Date.now() - relabelled} ms after the relabel was written`);
    const p = weir.counters().from_pod ?? {};
    console.log(`  node1's BPF counters: policy_ingress_denied ${p.policy_ingress_denied ?? 0}, policy_ingress_allowed ${p.policy_ingress_allowed ?? 0}`);

    say(`6. dual stack: the same Service over IPv6: ClusterIP [${CLUSTER_IP6}]:80 and NodePort [${node.address6}]:${NODE_PORT}`);
    const spread6 = await weir.spread(client.ns, CLUSTER_IP6, 80, { count: 60, cgroup: weir.cgroup });
    for (const [name, n] of Object.entries(spread6.servers).sort()) console.log(`  ${name}: ${n} of 60, saw the client as ${spread6.peers[name]?.join(',')}`);
    console.log(`  failures: ${spread6.failures}; getpeername() in the client showed ${Object.keys(spread6.remotes).join(', ')} (connect6 picked the backend)`);
    const external6 = (timeoutMs: number) => outside.ns.echo(node.address6!, NODE_PORT, { proto: 'tcp', timeoutMs, cgroup: outside.cgroup });
    const denied6 = await external6(1000).then(
      (r) => `answered by ${r.reply.server} (unexpected)`,
      () => 'no answer in 1 s: the web pods admit only role=frontend pods, over IPv6 as over IPv4',
    );
    console.log(`  external client ${outside.address6} -> [${node.address6}]:${NODE_PORT}: ${denied6}`);
    mark = weir.mark();
    for (const w of [weir, weir2]) w.removeManifest('policy.yaml');
    await weir.waitFor('policy', { reason: 'change' }, 10_000, mark);
    for (let i = 0; i < 3; i++) {
      const r = await external6(2000);
      console.log(`  policy removed: backend ${r.reply.server} saw the client as ${r.reply.peer}; the client's peer was ${r.client.remote}`);
    }

    say('the maps behind it: conntrack entries of the NodePort flows, and the counters');
    process.stdout.write(weirCli(node, weir, 'ct', 'list', '--port', String(NODE_PORT)));
    process.stdout.write(weirCli(node, weir, 'counters'));
    await Promise.all([weir.terminate(), weir2.terminate()]);
  } finally {
    say('teardown');
    await lab.destroy();
    await runCleanups();
    console.log('  namespaces, cgroups and bpffs removed');
  }
}

main().catch((e) => {
  console.error(`demo failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
