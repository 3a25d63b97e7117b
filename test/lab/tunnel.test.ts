// Issue 12, must-shows 1, 2 and 6, in both return modes: two lab nodes with plain routed pod
// networks (CNI ptp pods), `weir daemon` on each, reading the same manifests: a NodePort
// Service (externalTrafficPolicy: Cluster) whose only backend runs on node2, and both Node
// objects (InternalIP, podCIDR). An external client on the underlay dials node1's NodePort:
// node1 DNATs and encapsulates the packet in VXLAN to node2 (captured on the wire: UDP 4789,
// weir's VNI), node2 decapsulates and delivers it, the backend sees the client's own address,
// and the replies go back through the tunnel to node1, which reverse-NATs them (tunnel mode),
// or leave node2 for the client from node1's address and NodePort (DSR, captured on node2's
// wire), the counters of both nodes saying which. Without the tunnel the backend would answer
// the client from its pod address and every connection would time out. Then iperf3 both ways,
// a client that sends full-size packets without GSO (frag needed from node1, and its transfer
// completes), kill -9 of each node's daemon during a forwarded stream (it goes on), and in
// DSR a client listed in --dsr-optout-cidrs gets tunnel mode.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, node, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const NODEPORT = 30090;
const IPERF_NODEPORT = 30091;
const PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: NODEPORT }];
const LOCAL_NODEPORT = 30092;
const LOCAL_PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: LOCAL_NODEPORT }];
const IPERF_PORTS: PortSpec[] = [{ name: 'iperf', port: 5201, targetPort: 5201, protocol: 'TCP', nodePort: IPERF_NODEPORT }];
const VNI = 0x574549;
const LB_IP = '198.18.0.200';
const LB_PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30093 }];

const nodeObject = (n: LabNode) => node({ name: n.name, internalIP: n.address, podCIDRs: [n.podSubnet!] });

/** A LoadBalancer Service whose load balancer (the client's route) sends LB_IP to node1. */
function lbService(): object {
  const svc = service({ name: 'lb', type: 'LoadBalancer', clusterIP: '198.19.0.63', ports: LB_PORTS }) as { spec: object };
  return { ...svc, status: { loadBalancer: { ingress: [{ ip: LB_IP }] } } };
}

function manifests(nodes: LabNode[], backend: Pod): object[] {
  return [
    ...nodes.map(nodeObject),
    service({ name: 'web', type: 'NodePort', clusterIP: '198.19.0.60', ports: PORTS }),
    endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: [{ ip: backend.ip, node: backend.node.name }] }),
    service({ name: 'iperf', type: 'NodePort', clusterIP: '198.19.0.61', ports: IPERF_PORTS }),
    lbService(),
    endpointSlice({ name: 'lb-1', service: 'lb', ports: LB_PORTS, endpoints: [{ ip: backend.ip, node: backend.node.name }] }),
    service({ name: 'local', type: 'NodePort', clusterIP: '198.19.0.62', ports: LOCAL_PORTS, externalTrafficPolicy: 'Local' }),
    endpointSlice({ name: 'local-1', service: 'local', ports: LOCAL_PORTS, endpoints: [{ ip: backend.ip, node: backend.node.name }] }),
    endpointSlice({ name: 'iperf-1', service: 'iperf', ports: IPERF_PORTS, endpoints: [{ ip: backend.ip, node: backend.node.name }] }),
  ];
}

type Mode = 'tunnel' | 'dsr';
type Counters = Record<string, Record<string, number>>;
const delta = (a: Counters, b: Counters, hook: string, reason: string) => (a[hook]?.[reason] ?? 0) - (b[hook]?.[reason] ?? 0);
const ipRe = (a: string) => a.replace(/\./g, '\\.');

for (const mode of ['tunnel', 'dsr'] as Mode[]) {
  describe(`across nodes: NodePort to a backend on the other node through the VXLAN tunnel (${mode} return)`, () => {
    let lab: Lab;
    let node1: LabNode;
    let node2: LabNode;
    let backend: Pod;
    let client: External;
    let weir1: WeirNode;
    let weir2: WeirNode;
    const weir1Args = ['--external-service-mode', mode];

    before(async () => {
      lab = await Lab.create({ name: `tunnel-${mode}` });
      node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
      node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
      await lab.routePodSubnets();
      backend = await lab.pod(node2, 'be-remote');
      await backend.ns.echoServer({ name: 'be-remote', port: 8080 });
      await backend.ns.iperfServer({ port: 5201 });
      client = await lab.external('client', { address: '198.18.0.100/24' });
      // the load balancer in front of the nodes: LB_IP goes to node1
      await client.ns.addRoute(`${LB_IP}/32`, { via: node1.address });
      // default flags otherwise (the connect-time LB on: the clients here are outside its
      // cgroup); the DSR lab starts the daemons with `ip netns exec`, as a user would
      const launcher = mode === 'dsr' ? 'ip-netns-exec' : 'nsenter';
      weir1 = await WeirNode.create(lab, node1, { launcher, extraArgs: weir1Args });
      weir2 = await WeirNode.create(lab, node2, { launcher, extraArgs: ['--external-service-mode', mode] });
      for (const w of [weir1, weir2]) w.writeManifest('web.yaml', manifests([node1, node2], backend));
      await Promise.all([weir1.start(), weir2.start()]);
    });
    after(async () => {
      await lab?.destroy();
      await runCleanups();
    });

    const returns = mode === 'tunnel' ? 'replies return through node1' : 'replies leave node2 from node1:NodePort';
    test(`MS1 (${mode}): the backend on node2 sees the client; the forward leg is VXLAN on UDP 4789 with weir's VNI; ${returns}`, async () => {
      const c1 = weir1.counters();
      const c2 = weir2.counters();
      // the wire between the nodes: node2's underlay interface, UDP to 4789 from node1
      const vxlan = node2.ns.spawn('tcpdump', ['-i', node2.ifname, '-n', '-l', '-c', '4', '-x', 'udp and dst port 4789 and src host ' + node1.address], {
        label: 'tcpdump vxlan',
      });
      // what node2 sends out of its underlay interface from node1's NodePort: DSR replies
      const direct = node2.ns.spawn('tcpdump', ['-i', node2.ifname, '-Q', 'out', '-n', '-l', `tcp and src host ${node1.address} and src port ${NODEPORT}`], {
        label: 'tcpdump dsr',
      });
      await sleep(500);
      const r = await weir1.spread(client.ns, node1.address, NODEPORT, { count: 20, concurrency: 4 });
      assert.equal(r.failures, 0, r.errors.join('; '));
      assert.deepEqual(Object.keys(r.servers), ['be-remote']);
      assert.deepEqual([...new Set(r.peers['be-remote'])], [client.address], 'the backend sees the client');
      await vxlan.exited;
      await sleep(300);
      await direct.stop();
      const dump = vxlan.stdout;
      console.log(`# ${dump.split('\n').filter((l) => /IP /.test(l))[0]}`);
      assert.match(dump, new RegExp(`IP ${ipRe(node1.address)}\\.\\d+ > ${ipRe(node2.address)}\\.4789: VXLAN`), dump);
      // the VXLAN header: 0x08 flags, then the VNI in bytes 4..6 (tcpdump -x prints the IP packet; VXLAN starts at 28)
      const hex = dump
        .split('\n')
        .filter((l) => /^\s+0x[0-9a-f]{4}:/.test(l))
        .slice(0, 3)
        .map((l) => l.replace(/^\s+0x[0-9a-f]{4}:\s+/, '').replace(/\s+/g, ''))
        .join('');
      assert.equal(hex.slice(56, 58), '08', `VXLAN I flag: ${hex}`);
      assert.equal(parseInt(hex.slice(64, 70), 16), VNI, `weir's VNI: ${hex}`);
      const fromFrontend = direct.stdout.split('\n').filter((l) => l.includes(`> ${client.address}.`)).length;
      console.log(`# node2 sent ${fromFrontend} packets from ${node1.address}:${NODEPORT} to the client`);

      const d1 = weir1.counters();
      const d2 = weir2.counters();
      console.log(`# node1 from_host ${JSON.stringify(d1.from_host)}; node2 from_host ${JSON.stringify(d2.from_host)} from_pod ${JSON.stringify(d2.from_pod)}`);
      assert.equal(delta(d1, c1, 'from_host', 'service_nat'), 20, 'node1 chose a backend for each connection');
      assert.ok(delta(d1, c1, 'from_host', 'tunnel_encap') >= 20 * 3, 'node1 encapsulated every client packet');
      assert.ok(delta(d2, c2, 'from_host', 'tunnel_decap') >= 20 * 3, 'node2 decapsulated them');
      if (mode === 'tunnel') {
        // each forwarded connection an entry pair; policy's conntrack of every flow also tracks
        // whatever else reaches node2 meanwhile (a stray packet of the lab's own), at most one here
        const tracked = delta(d2, c2, 'from_host', 'ct_tracked_new');
        assert.ok(tracked >= 20 && tracked <= 21, `node2 gave each forwarded connection an entry pair: ${tracked}`);
        assert.ok(delta(d2, c2, 'from_pod', 'tunnel_encap') >= 20 * 2, 'node2 sent the replies back into the tunnel');
        assert.ok(delta(d1, c1, 'from_host', 'tunnel_decap') >= 20 * 2, 'node1 received the replies from the tunnel');
        assert.ok(delta(d1, c1, 'from_host', 'reverse_nat') >= 20 * 2, 'node1 reverse-NATed them for the client');
        assert.equal(fromFrontend, 0, 'nothing left node2 from the frontend');
      } else {
        assert.equal(delta(d2, c2, 'from_host', 'service_nat'), 20, 'node2 DNATed each connection to the backend node1 named');
        assert.ok(delta(d2, c2, 'from_pod', 'reverse_nat') >= 20 * 2, 'node2 answered the client from the frontend');
        assert.equal(delta(d2, c2, 'from_pod', 'dsr_reply'), delta(d2, c2, 'from_pod', 'reverse_nat'), 'each of them counted as a DSR reply');
        assert.equal(delta(d2, c2, 'from_pod', 'tunnel_encap'), 0, 'no reply went back into the tunnel');
        assert.equal(delta(d1, c1, 'from_host', 'tunnel_decap'), 0, 'node1 received no reply');
        assert.ok(fromFrontend >= 20 * 2, `the replies left node2 from ${node1.address}:${NODEPORT}: ${fromFrontend}`);
      }
    });

    test(`MS1 (${mode}): a load balancer IP routed to node1, backend on node2: the backend sees the client`, async () => {
      const c1 = weir1.counters();
      const r = await weir1.spread(client.ns, LB_IP, 80, { count: 10, concurrency: 2 });
      assert.equal(r.failures, 0, r.errors.join('; '));
      assert.deepEqual([...new Set(r.peers['be-remote'])], [client.address], 'the backend sees the client');
      assert.deepEqual(Object.keys(r.remotes), [`${LB_IP}:80`], 'the client talked to the LB IP throughout');
      assert.ok(delta(weir1.counters(), c1, 'from_host', 'tunnel_encap') >= 10 * 3, 'through the tunnel');
    });

    test(`MS2 (${mode}): iperf3 through the tunnel in both directions`, async () => {
      for (const reverse of [false, true]) {
        // capped: veths share per-CPU backlogs, and an unbounded flood drops packets of other labs
        const r = await client.ns.iperfClient(node1.address, { port: IPERF_NODEPORT, seconds: 2, bitrate: '1G', reverse });
        console.log(`# iperf3 (${mode}) ${reverse ? 'backend -> client' : 'client -> backend'}: ${(r.receivedBitsPerSecond / 1e6).toFixed(0)} Mbit/s`);
        assert.ok(r.receivedBitsPerSecond > 50e6, `${reverse ? '-R' : ''}: ${r.receivedBitsPerSecond} bit/s`);
      }
    });

    test(`MS2 (${mode}): a client sending full-size packets (no GSO) gets frag needed (MTU 1450) from node1 and completes its transfer`, async () => {
      const small = await lab.external('client-nogso', { address: '198.18.0.101/24' });
      await small.ns.exec('ethtool', ['-K', small.ifname, 'gso', 'off', 'tso', 'off']);
      const before = weir1.counter('from_host', 'tunnel_frag_needed');
      const r = await small.ns.exec('iperf3', ['-c', node1.address, '-p', String(IPERF_NODEPORT), '-b', '200M', '-n', '4M', '-J'], { timeoutMs: 30_000 });
      const j = JSON.parse(r.stdout) as { end: { sum_sent: { bytes: number }; sum_received: { bytes: number } } };
      // the sender's count is exact (-n); the receiver's summary may miss the last interval's bytes
      assert.ok(j.end.sum_sent.bytes >= 4 * 1024 * 1024, `transfer completed: ${j.end.sum_sent.bytes} bytes sent`);
      assert.ok(j.end.sum_received.bytes >= 0.9 * 4 * 1024 * 1024, `received ${j.end.sum_received.bytes} bytes`);
      const fragNeeded = weir1.counter('from_host', 'tunnel_frag_needed') - before;
      assert.ok(fragNeeded >= 1, 'node1 sent frag needed');
      const route = await small.ns.exec('ip', ['route', 'get', node1.address]);
      console.log(`# frag needed sent ${fragNeeded}x; client's route cache: ${route.stdout.trim().replace(/\s+/g, ' ')}`);
      assert.match(route.stdout, /mtu 1450/, 'the client learned the path MTU');
    });

    for (const which of ['node1 (ingress)', 'node2 (backend)'] as const) {
      test(`MS6 (${mode}): kill -9 of weir on ${which} during a forwarded TCP stream: the stream goes on, new connections work`, async () => {
        const w = which.startsWith('node1') ? weir1 : weir2;
        const flow = w.flow(client.ns, node1.address, NODEPORT, { seconds: 0, interval: 20 });
        await flow.waitReplies(10);
        const daemon = w.process!;
        daemon.signalGroup('SIGKILL');
        await daemon.exited;
        const whileDead = await w.spread(client.ns, node1.address, NODEPORT, { count: 10 });
        assert.equal(whileDead.failures, 0, whileDead.errors.join('; '));
        await flow.waitReplies(flow.replies() + 10);
        const f = await flow.stop();
        assert.equal(f.error, undefined);
        assert.equal(f.received, f.sent, `every line across the kill came back: ${JSON.stringify(f)}`);
        console.log(`# kill -9 on ${which} (${mode}): ${f.sent} lines, longest gap ${f.maxGapMs} ms`);
        await w.start();
      });
    }

    test(`operators (${mode}): weir nodes shows node2 and its pod CIDR; weir explain on node1 says the backend is reached through the tunnel`, () => {
      const cli = <T>(...args: string[]): T => weir1.cli<T>(...args);
      const nodes = cli<{ nodes: Array<{ address: string; flags: string[]; podCIDRs: string[] }> }>('nodes');
      assert.deepEqual(
        nodes.nodes.map((n) => [n.address, n.flags, n.podCIDRs]),
        [[node2.address, ['peer'], [node2.podSubnet]]],
      );
      const ex = cli<{ candidates: Array<{ address: string; tunnelTo?: string }>; notes: string[] }>(
        'explain',
        client.address,
        node1.address,
        `${NODEPORT}/tcp`,
      );
      assert.deepEqual(
        ex.candidates.map((c) => [c.address, c.tunnelTo]),
        [[backend.ip, node2.address]],
      );
      assert.ok(
        ex.notes.some((n) => n.includes('carried there in VXLAN')),
        ex.notes.join('\n'),
      );
      // the flows of the tests before: node1 sends each through the tunnel to node2
      const nat = cli<Array<{ forward: string }>>('nat', 'list', '--port', String(NODEPORT));
      assert.ok(nat.length > 0, 'NodePort flows in weir nat list');
      for (const r of nat) assert.equal(r.forward, `${mode}→${node2.address}`, JSON.stringify(r));
    });

    if (mode === 'tunnel')
      test('a pod on node1 -> ClusterIP -> backend on node2 (TC path) with an INVALID-drop rule on node1: both directions bypass netfilter, every connection works', async () => {
        const pod = await lab.pod(node1, 'client-pod');
        // weir attaches to a new pod's veth when netlink tells it; until then the pod's packets
        // meet no weir (a kubelet starts the containers after CNI, which is later still)
        const t0 = Date.now();
        await weir1.waitFor('attached', { ifname: pod.hostIfname, hook: 'from_pod' });
        console.log(`# new pod veth: from_pod attached ${Date.now() - t0} ms after CNI ADD returned`);
        // what kube-proxy's KUBE-FORWARD (and many host firewalls) do
        await node1.ns.exec('iptables', ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP']);
        const c1 = weir1.counters();
        const r = await weir1.spread(pod.ns, '198.19.0.60', 80, { count: 20, concurrency: 4 });
        assert.equal(r.failures, 0, r.errors.join('; '));
        assert.deepEqual([...new Set(r.peers['be-remote'])], [pod.ip], 'the backend sees the pod');
        const d1 = weir1.counters();
        assert.equal(delta(d1, c1, 'from_pod', 'service_nat'), 20, 'TC path');
        assert.ok(delta(d1, c1, 'from_host', 'reverse_nat') >= 20 * 2, 'replies reverse NATed where they entered node1');
        assert.equal(delta(d1, c1, 'from_host', 'tunnel_encap'), 0, 'no tunnel: the pod network reaches node2');
        const drops = await node1.ns.exec('iptables', ['-L', 'FORWARD', '-v', '-x', '-n']);
        const invalid = drops.stdout.split('\n').find((l) => l.includes('INVALID'))!;
        assert.equal(Number(invalid.trim().split(/\s+/)[0]), 0, `netfilter saw no packet of it: ${invalid}`);
      });

    if (mode === 'tunnel')
      test("hostile: a VXLAN packet with weir's VNI from an address that is not a node is dropped (tunnel_denied); another VNI is not weir's", async () => {
        // a SYN to the backend pod, wrapped by the client itself (its kernel adds the outer IP/UDP)
        const send = `
import socket, struct, sys
vni, dst, inner_dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
src = socket.inet_aton('${client.address}'); d = socket.inet_aton(inner_dst)
tcp = struct.pack('!HHIIBBHHH', 40000, 8080, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
tcp = tcp[:16] + struct.pack('!H', csum(src + d + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, d)
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
eth = bytes.fromhex('025745490000') + bytes(6) + b'\\x08\\x00'
vx = struct.pack('!II', 0x08000000, vni << 8)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(vx + eth + ip + tcp, (dst, 4789))
`;
        const before = weir2.counters();
        await client.ns.exec('python3', ['-c', send, String(VNI), node2.address, backend.ip]);
        await client.ns.exec('python3', ['-c', send, String(VNI + 1), node2.address, backend.ip]);
        await sleep(300);
        const after = weir2.counters();
        assert.equal(delta(after, before, 'from_host', 'tunnel_denied'), 1, JSON.stringify(after.from_host));
        assert.equal(delta(after, before, 'from_host', 'tunnel_decap'), 0, 'nothing was decapsulated');
        // the other VNI's datagram is an ordinary UDP flow to node2 (tracked: conntrack of every
        // flow, for policy); the denied one created nothing, and nothing reached a service
        assert.equal(delta(after, before, 'from_host', 'ct_tracked_new'), 1, 'only the ordinary UDP datagram was tracked');
        assert.equal(delta(after, before, 'from_host', 'service_nat'), 0, 'no service flow was created');
      });

    if (mode === 'tunnel')
      test('MS7: externalTrafficPolicy Local: node1 (no local endpoint) drops, nothing goes into the tunnel; node2 serves with the client address', async () => {
        const c1 = weir1.counters();
        const dropped = await weir1.spread(client.ns, node1.address, LOCAL_NODEPORT, { count: 3, concurrency: 3 });
        assert.equal(dropped.failures, 3, 'every connection through node1 failed');
        const d1 = weir1.counters();
        assert.ok(delta(d1, c1, 'from_host', 'no_local_backend_drop') >= 3, JSON.stringify(d1.from_host));
        assert.equal(delta(d1, c1, 'from_host', 'tunnel_encap'), 0, 'a Local service never crosses the tunnel');
        const served = await weir2.spread(client.ns, node2.address, LOCAL_NODEPORT, { count: 10 });
        assert.equal(served.failures, 0, served.errors.join('; '));
        assert.deepEqual([...new Set(served.peers['be-remote'])], [client.address]);
      });

    if (mode === 'dsr')
      test('DSR: a client in --dsr-optout-cidrs keeps tunnel mode (its replies come back through node1)', async () => {
        const p = weir1.process!;
        p.signalGroup('SIGTERM');
        await p.exited;
        weir1Args.push('--dsr-optout-cidrs', `${client.address}/32`);
        await weir1.start();
        const c1 = weir1.counters();
        const c2 = weir2.counters();
        const r = await weir1.spread(client.ns, node1.address, NODEPORT, { count: 10, concurrency: 2 });
        assert.equal(r.failures, 0, r.errors.join('; '));
        const d1 = weir1.counters();
        const d2 = weir2.counters();
        assert.ok(delta(d1, c1, 'from_host', 'tunnel_decap') >= 10 * 2, 'the replies came back through node1');
        assert.equal(delta(d2, c2, 'from_host', 'ct_tracked_new'), 10, 'node2 saw tunnel-mode flows');
        assert.equal(delta(d2, c2, 'from_host', 'service_nat'), 0, 'node2 did not DNAT them');
      });
  });
}
