// Issue 14, the connect-time LB's dual-stack half through `weir daemon`: the daemon attaches the
// socket LB's IPv6 programs (hook rows connect6 ... getpeername6) to its cgroup, and a pod's
// dual-stack AF_INET6 sockets dialling an IPv4 ClusterIP v4-mapped (::ffff:a.b.c.d) are
// balanced by it over the backends, TCP and UDP, with getpeername / recvfrom showing the
// v4-mapped ClusterIP and no conntrack entry. (IPv6 ClusterIPs through the daemon need the IPv6
// maps written by the reconciler and dual-stack pods: test/bpf/service-sock6.test.ts covers
// the programs on their own.)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, enums } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type Cgroup, type LabNode, type Pod } from '../lib/lab.js';
import { run } from '../lib/proc.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const CLUSTER_IP = '198.19.0.20';
const MAPPED = `::ffff:${CLUSTER_IP}`;
const PORTS: PortSpec[] = [
  { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' },
  { name: 'udp', port: 53, targetPort: 8080, protocol: 'UDP' },
];

/** NAT'd weir_ct4 entries with `addr` on either side. */
function natEntriesWith(pinDir: string, addr: string): number {
  const m = BpfMap.openPinned(`${pinDir}/weir_ct4_v2`);
  try {
    const kc = codecFor('weir_ct4_key');
    const vc = codecFor('weir_ct4');
    const nat = enums.weir_ct_flags.WEIR_CT_DNAT | enums.weir_ct_flags.WEIR_CT_SNAT;
    let n = 0;
    for (const [k, v] of m.entries()) {
      const key = kc.decode(k);
      if ((key.saddr === addr || key.daddr === addr) && (vc.decode(v).flags & nat) !== 0) n++;
    }
    return n;
  } finally {
    m.close();
  }
}

describe('socket LB: dual-stack sockets to an IPv4 ClusterIP, v4-mapped, through weir daemon', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let cg: Cgroup;
  let weir: WeirNode;

  before(async () => {
    lab = await Lab.create({ name: 'sock-lb6-mapped' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
    client = await lab.pod(node, 'client');
    cg = await lab.cgroup('pods');
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    weir = await WeirNode.create(lab, node, { cgroup: cg, connectTimeLb: 'on' });
    weir.writeManifest('web.yaml', [
      service({ name: 'web', clusterIP: CLUSTER_IP, ports: PORTS }),
      endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) }),
    ]);
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('the daemon attached both families of socket-LB programs to its cgroup', async () => {
    const r = await run('bpftool', ['-j', 'cgroup', 'show', cg.path]);
    const names = (JSON.parse(r.stdout.trim() || '[]') as Array<{ name: string }>).map((p) => p.name).sort();
    const want = ['connect', 'getpeername', 'recvmsg', 'sendmsg'].flatMap((h) => [`weir_sock_${h}4`, `weir_sock_${h}6`]).sort();
    assert.deepEqual(names, want);
  });

  test('TCP and UDP to ::ffff:ClusterIP: spread over both backends by the socket LB; the peer is the v4-mapped ClusterIP', async () => {
    for (const proto of ['tcp', 'udp'] as const) {
      const port = proto === 'tcp' ? 80 : 53;
      const translated0 = weir.counter('sock', 'sock_lb_translated');
      const r = await weir.spread(client.ns, MAPPED, port, { proto, count: 60, cgroup: cg });
      console.log(`${proto} ${MAPPED}:${port}: ${JSON.stringify(r.servers)} in ${r.ms} ms`);
      assert.equal(r.failures, 0, r.errors.join('; '));
      assert.deepEqual(Object.keys(r.servers).sort(), backends.map((b) => b.name).sort(), JSON.stringify(r.servers));
      const translated = weir.counter('sock', 'sock_lb_translated') - translated0;
      // TCP: one connect() each; UDP: at least one sendto() each (svc-client resends an unanswered datagram)
      if (proto === 'tcp') assert.equal(translated, 60, 'socket LB translations');
      else assert.ok(translated >= 60, `socket LB translations: ${translated}`);
      for (const peers of Object.values(r.peers)) assert.deepEqual(peers, [client.ip], 'the backends saw the pod, over IPv4');
      // TCP: getpeername(); UDP: recvfrom's source, both through the IPv6 hooks of the AF_INET6 socket
      assert.deepEqual(Object.keys(r.remotes), [`${MAPPED}:${port}`], JSON.stringify(r.remotes));
    }
    assert.equal(natEntriesWith(weir.pinDir, client.ip), 0, 'the socket LB needs no conntrack entry');
  });
});
