// Issue 14, must-show 3 across nodes: two dual-stack lab nodes with routed pod networks, `weir
// daemon` on each reading the same manifests (both Node objects with an InternalIP and a pod
// CIDR of each family, an IPv6 NodePort Service whose only backend runs on node2). An external
// client dials node1's IPv6 NodePort: node1 forwards the connection to node2 through the VXLAN
// tunnel over an IPv4 or an IPv6 underlay (--tunnel-underlay; captured on node2's wire: UDP
// 4789 from node1's address of that family), the backend sees the client's own IPv6 address,
// and the client hears back from [node1]:NodePort in both return modes: through the tunnel
// and node1 (tunnel), or straight from node2 (DSR, captured leaving node2). Without the tunnel
// the backend would answer from its pod address and every connection would fail.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { dualStackNode, Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, node, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const NODEPORT = 30190;
const PORTS: PortSpec[] = [
  { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: NODEPORT },
  { name: 'udp', port: 53, targetPort: 8080, protocol: 'UDP', nodePort: NODEPORT },
];
const VIP6 = '2001:2:ff::90';

const nodeObject = (n: LabNode) => node({ name: n.name, internalIP: [n.address, n.address6!], podCIDRs: [n.podSubnet!, n.podSubnet6!] });

const CASES = (['ipv4', 'ipv6'] as const).flatMap((underlay) => (['tunnel', 'dsr'] as const).map((mode) => ({ underlay, mode })));

for (const { underlay, mode } of CASES) {
  describe(`across nodes over IPv6: NodePort to a backend on the other node (${mode} return, ${underlay} underlay)`, () => {
    let lab: Lab;
    let node1: LabNode;
    let node2: LabNode;
    let backend: Pod;
    let client: External;
    let weir1: WeirNode;
    let weir2: WeirNode;

    before(async () => {
      lab = await Lab.create({ name: `ipv6-tunnel-${mode}-${underlay}` });
      node1 = await lab.node('node1', dualStackNode(1));
      node2 = await lab.node('node2', dualStackNode(2));
      await lab.routePodSubnets();
      backend = await lab.pod(node2, 'be-remote');
      await backend.ns.echoServer({ name: 'be-remote', port: 8080 });
      client = await lab.external('client', { address: '198.18.0.100/24', address6: '2001:2::100/64', cgroup: true });
      const manifests = [
        nodeObject(node1),
        nodeObject(node2),
        service({ name: 'web6', type: 'NodePort', clusterIP: VIP6, ports: PORTS }),
        endpointSlice({ name: 'web6-1', service: 'web6', ports: PORTS, endpoints: [{ ip: backend.ip6!, node: node2.name }] }),
      ];
      const extraArgs = ['--external-service-mode', mode, '--tunnel-underlay', underlay];
      weir1 = await WeirNode.create(lab, node1, { extraArgs });
      weir2 = await WeirNode.create(lab, node2, { extraArgs });
      for (const w of [weir1, weir2]) w.writeManifest('web.yaml', manifests);
      await Promise.all([weir1.start(), weir2.start()]);
    });
    after(async () => {
      await lab?.destroy();
      await runCleanups();
    });

    test(`MS3 (${mode}, ${underlay} underlay): external client -> [node1]:NodePort, backend on node2: it sees the client's IPv6 address; VXLAN between the nodes`, async () => {
      // the wire between the nodes: node2's underlay interface, VXLAN from node1 (either family)
      const vxlan = node2.ns.spawn(
        'tcpdump',
        ['-i', node2.ifname, '-n', '-l', '-c', '4', `udp and dst port 4789 and (src host ${node1.address} or src host ${node1.address6})`],
        { label: 'tcpdump vxlan' },
      );
      // what node2 sends out of its underlay from node1's NodePort: the DSR replies
      const direct = node2.ns.spawn(
        'tcpdump',
        ['-i', node2.ifname, '-Q', 'out', '-n', '-l', `ip6 and tcp and src host ${node1.address6} and src port ${NODEPORT}`],
        {
          label: 'tcpdump dsr',
        },
      );
      await sleep(500);
      for (const proto of ['tcp', 'udp'] as const) {
        const r = await weir1.spread(client.ns, node1.address6!, NODEPORT, { proto, count: 20, concurrency: 4, cgroup: client.cgroup! });
        assert.equal(r.failures, 0, `${proto}: ${r.errors.join('; ')}`);
        assert.deepEqual(Object.keys(r.servers), ['be-remote']);
        assert.deepEqual([...new Set(r.peers['be-remote'])], [client.address6], `${proto}: the backend sees the client`);
        assert.deepEqual(Object.keys(r.remotes), [`${node1.address6}:${NODEPORT}`], `${proto}: replies from the NodePort the client dialled`);
      }
      await sleep(300);
      vxlan.signalGroup('SIGTERM');
      direct.signalGroup('SIGTERM');
      await Promise.all([vxlan.exited, direct.exited]);
      const encapsulated = vxlan.stdout.split('\n').filter((l) => / > .*\.4789: /.test(l));
      const from = underlay === 'ipv6' ? `IP6 ${node1.address6}.` : `IP ${node1.address}.`;
      console.log(`# ${mode}: VXLAN seen on node2:\n${encapsulated.slice(0, 2).join('\n')}`);
      assert.ok(encapsulated.length > 0, `node1 sent VXLAN to node2:\n${vxlan.stdout}${vxlan.stderr}`);
      assert.ok(
        encapsulated.every((l) => l.includes(from)),
        `the outer header is the ${underlay} underlay's (${from}):\n${encapsulated.join('\n')}`,
      );
      const dsrReplies = direct.stdout.split('\n').filter((l) => l.includes(' > ')).length;
      console.log(`# ${mode}: replies leaving node2 from [node1]:${NODEPORT}: ${dsrReplies}`);
      if (mode === 'dsr') assert.ok(dsrReplies > 0, 'DSR: node2 answered the client directly from the NodePort');
      else assert.equal(dsrReplies, 0, 'tunnel: the replies went back through node1');
    });
  });
}
