// Issue 14, must-show 3 across nodes: an external IPv6 client -> an IPv6 NodePort on node1 ->
// the backend pod on node2, through weir's tunnel, in both return modes, over an IPv4 and over
// an IPv6 underlay; the backend sees the client's IPv6 address. Real packets between lab
// namespaces (two dual-stack nodes, a CNI ptp pod with both families, an external client),
// weir's real programs attached with TCX where the daemon attaches them (from_host +
// from_host6 on each node's eth0, from_pod + from_pod6 on the backend's veth), the maps written
// here as the daemon's reconciler and node maps would (the IPv6 service maps' userspace is
// another helper's): one frontend, one backend, node2's IPv6 pod CIDR in node1's weir_tunnel6
// toward node2's IPv4 address (v4-mapped) or its IPv6 one, the peers in weir_nodes4/6. A
// capture on node2's wire shows the outer header of each underlay; in DSR the replies leave
// node2 from node1's address and NodePort. Without the tunnel the backend would answer from
// its pod address and every connection would fail.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { attachTc, BpfMap, BpfObject, codecFor, enums, typedMap, u32, type TcAttachment } from '../../src/bpf/index.js';
import { counterTotals, readCounters } from '../../src/dataplane/counters.js';
import { v4Mapped } from '../../src/dataplane/node-maps.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, node as k8sNode, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const OBJ_DIR = join(process.cwd(), 'build', 'bpf');
const NODEPORT = 30096;
const IPERF_NODEPORT = 30097;
const FRONTEND_ID = 7;
type Mode = 'tunnel' | 'dsr';
type Counters = Record<string, Record<string, number>>;
const delta = (a: Counters, b: Counters, hook: string, reason: string) => (a[hook]?.[reason] ?? 0) - (b[hook]?.[reason] ?? 0);

/** weir's objects of one node in its own pin directory, the hooks attached as the daemon does. */
class NodeDataplane {
  readonly objects: Record<string, BpfObject> = {};
  readonly links: TcAttachment[] = [];

  constructor(
    lab: Lab,
    readonly node: LabNode,
    mode: Mode,
  ) {
    const pinDir = join(lab.bpffs, node.name);
    mkdirSync(pinDir, { recursive: true });
    const consts = { external_service_mode: enums.weir_tunnel_mode[mode === 'dsr' ? 'WEIR_TUNNEL_MODE_DSR' : 'WEIR_TUNNEL_MODE_TUNNEL'] };
    for (const name of ['from_host', 'from_host6', 'from_pod', 'from_pod6'])
      this.objects[name] = BpfObject.load(join(OBJ_DIR, `${name}.o`), { pinDir, consts });
  }

  /** The IPv4 program then the IPv6 one, on the same TCX hook (the IPv4 one hands IPv6 over). */
  attach(iface: string, pair: 'host' | 'pod'): void {
    for (const name of pair === 'host' ? ['from_host', 'from_host6'] : ['from_pod', 'from_pod6'])
      this.links.push(attachTc(this.objects[name]!.program(`weir_${name}`), iface, 'ingress', { netns: this.node.ns.name, mode: 'tcx' }));
  }

  map(name: string, key: Parameters<typeof codecFor>[0], value: Parameters<typeof codecFor>[0]) {
    return typedMap(this.objects.from_host6!.map(name), codecFor(key), codecFor(value)) as unknown as {
      set(k: object, v: object): void;
    };
  }

  counters(): Counters {
    return counterTotals(readCounters(this.objects.from_host6!.map('weir_counters')));
  }

  close(): void {
    for (const l of this.links) l.detach();
    for (const o of Object.values(this.objects)) o.close();
  }
}

for (const mode of ['tunnel', 'dsr'] as Mode[]) {
  describe(`across nodes in IPv6: NodePort on node1's IPv6 address, backend on node2, through the tunnel (${mode} return)`, () => {
    let lab: Lab;
    let node1: LabNode;
    let node2: LabNode;
    let backend: Pod;
    let client: External;
    let dp1: NodeDataplane;
    let dp2: NodeDataplane;

    before(async () => {
      lab = await Lab.create({ name: `tunnel6-${mode}` });
      node1 = await lab.node('node1', { address: '198.18.0.1/24', address6: '2001:2::1/64', podSubnet: '198.18.1.0/24', podSubnet6: '2001:2:0:1::/64' });
      node2 = await lab.node('node2', { address: '198.18.0.2/24', address6: '2001:2::2/64', podSubnet: '198.18.2.0/24', podSubnet6: '2001:2:0:2::/64' });
      await lab.routePodSubnets();
      backend = await lab.pod(node2, 'be-remote');
      assert.ok(backend.ip6, 'the pod has an IPv6 address');
      await backend.ns.echoServer({ name: 'be-remote', port: 8080 });
      await backend.ns.iperfServer({ port: 5201 });
      client = await lab.external('client', { address: '198.18.0.100/24', address6: '2001:2::100/64' });
      dp1 = new NodeDataplane(lab, node1, mode);
      dp2 = new NodeDataplane(lab, node2, mode);
      dp1.attach('eth0', 'host');
      dp2.attach('eth0', 'host');
      dp2.attach(backend.hostIfname, 'pod');
      // the NodePort on node1's IPv6 address, its one backend on node2 (the reconciler's entries)
      for (const [id, port, target] of [
        [FRONTEND_ID, NODEPORT, 8080],
        [FRONTEND_ID + 1, IPERF_NODEPORT, 5201],
      ] as const) {
        dp1
          .map('weir_backend6', 'weir_backend6_key', 'weir_backend6')
          .set({ frontend_id: id, slot: 0 }, { address: backend.ip6!, port: target, flags: 0, pad: 0 });
        dp1
          .map('weir_frontend6', 'weir_frontend6_key', 'weir_frontend6')
          .set(
            { address: node1.address6!, port, protocol: 6, scope: 0 },
            { id, backend_count: 1, flags: enums.weir_frontend_flags.WEIR_FRONTEND_NODEPORT, affinity_timeout: 0, pad: 0 },
          );
      }
      // each node the other's peer, under both underlay families (node-maps.ts's weir_nodes4/6)
      for (const [dp, peer] of [
        [dp1, node2],
        [dp2, node1],
      ] as const) {
        dp.map('weir_nodes4', 'weir_node4_key', 'weir_node4').set({ address: peer.address }, { flags: 1 });
        dp.map('weir_nodes6', 'weir_node6_key', 'weir_node6').set({ address: peer.address6! }, { flags: 1 });
      }
      // the backend's veth is a workload interface of node2 (iface-table.ts)
      const veth = await node2.ns.ifindex(backend.hostIfname);
      typedMap(dp2.objects.from_host6!.map('weir_ifaces'), u32, codecFor('weir_iface')).set(veth, { flags: enums.weir_iface_flags.WEIR_IFACE_WORKLOAD });
    });
    after(async () => {
      dp1?.close();
      dp2?.close();
      await lab?.destroy();
      await runCleanups();
    });

    for (const underlay of [4, 6] as const) {
      const how = underlay === 4 ? 'IPv4 underlay (outer IPv4 198.18.0.1 -> 198.18.0.2)' : 'IPv6 underlay (outer IPv6 2001:2::1 -> 2001:2::2)';
      test(`MS3 (${mode}, ${how}): the backend on node2 sees the client's IPv6 address; ${mode === 'tunnel' ? 'replies return through node1' : "replies leave node2 from node1's address"}`, async () => {
        // node2's IPv6 pod CIDR in node1's weir_tunnel6, over this underlay (node-maps.ts: --tunnel-underlay)
        dp1
          .map('weir_tunnel6', 'weir_tunnel6_key', 'weir_tunnel6')
          .set({ prefixlen: 64, address: '2001:2:0:2::' }, { node_ip: underlay === 4 ? v4Mapped(node2.address) : node2.address6!, flags: 1 });
        const filter = underlay === 4 ? `udp and dst port 4789 and src host ${node1.address}` : `ip6 and udp and dst port 4789 and src host ${node1.address6}`;
        const wire = node2.ns.spawn('tcpdump', ['-i', node2.ifname, '-n', '-l', '-c', '3', filter], { label: 'tcpdump tunnel' });
        const direct = node2.ns.spawn(
          'tcpdump',
          ['-i', node2.ifname, '-Q', 'out', '-n', '-l', `ip6 and tcp and src host ${node1.address6} and src port ${NODEPORT}`],
          {
            label: 'tcpdump dsr',
          },
        );
        await sleep(500);
        const c1 = dp1.counters();
        const c2 = dp2.counters();
        const peers = new Set<string>();
        for (let i = 0; i < 10; i++) {
          const a = await client.ns.echo(node1.address6!, NODEPORT, { timeoutMs: 3000 });
          assert.equal(a.reply.server, 'be-remote');
          peers.add(a.reply.peer);
          assert.equal(a.client.remote, node1.address6, 'the client talked to the NodePort throughout');
        }
        assert.deepEqual([...peers], [client.address6], 'the backend sees the client');
        await wire.exited;
        await sleep(300);
        await direct.stop();
        const outer = wire.stdout.split('\n').filter((l) => l.includes('4789'))[0] ?? '';
        console.log(`# ${mode}, IPv${underlay} underlay: ${outer.trim()}`);
        const src = underlay === 4 ? node1.address : node1.address6!;
        const dst = underlay === 4 ? node2.address : node2.address6!;
        assert.ok(outer.includes(`${src}.`) && outer.includes(`> ${dst}.4789`), `the tunnel's outer header: ${wire.stdout}`);
        const fromFrontend = direct.stdout.split('\n').filter((l) => l.includes(`> ${client.address6}.`)).length;
        const d1 = dp1.counters();
        const d2 = dp2.counters();
        console.log(
          `# node1 from_host ${JSON.stringify(d1.from_host)}; node2 from_host ${JSON.stringify(d2.from_host)} from_pod ${JSON.stringify(d2.from_pod)}`,
        );
        assert.equal(delta(d1, c1, 'from_host', 'service_nat'), 10, 'node1 chose the backend for each connection');
        assert.ok(delta(d1, c1, 'from_host', 'tunnel_encap') >= 10 * 3, 'node1 encapsulated every client packet');
        assert.ok(delta(d2, c2, 'from_host', 'tunnel_decap') >= 10 * 3, 'node2 decapsulated them');
        if (mode === 'tunnel') {
          assert.equal(delta(d2, c2, 'from_host', 'ct_tracked_new'), 10, 'node2 gave each forwarded connection an entry pair');
          assert.ok(delta(d2, c2, 'from_pod', 'tunnel_encap') >= 10 * 2, 'node2 sent the replies back into the tunnel');
          assert.ok(delta(d1, c1, 'from_host', 'tunnel_decap') >= 10 * 2, 'node1 received the replies from the tunnel');
          assert.ok(delta(d1, c1, 'from_host', 'reverse_nat') >= 10 * 2, 'node1 reverse-NATed them for the client');
          assert.equal(fromFrontend, 0, 'nothing left node2 from the frontend');
        } else {
          assert.equal(delta(d2, c2, 'from_host', 'service_nat'), 10, 'node2 DNATed each connection to the backend node1 named');
          assert.ok(delta(d2, c2, 'from_pod', 'dsr_reply') >= 10 * 2, 'node2 answered the client from the frontend');
          assert.equal(delta(d2, c2, 'from_pod', 'tunnel_encap'), 0, 'no reply went back into the tunnel');
          assert.equal(delta(d1, c1, 'from_host', 'tunnel_decap'), 0, 'node1 received no reply');
          assert.ok(fromFrontend >= 10 * 2, `the replies left node2 from [${node1.address6}]:${NODEPORT}: ${fromFrontend}`);
        }
      });
    }

    test(`throughput (${mode}): iperf3 through the tunnel in both directions, over the IPv6 underlay`, async () => {
      dp1.map('weir_tunnel6', 'weir_tunnel6_key', 'weir_tunnel6').set({ prefixlen: 64, address: '2001:2:0:2::' }, { node_ip: node2.address6!, flags: 1 });
      for (const reverse of [false, true]) {
        // capped: veths share per-CPU backlogs, and an unbounded flood drops packets of other labs
        const r = await client.ns.iperfClient(node1.address6!, { port: IPERF_NODEPORT, seconds: 2, bitrate: '1G', reverse });
        console.log(`# iperf3 IPv6 (${mode}) ${reverse ? 'backend -> client' : 'client -> backend'}: ${(r.receivedBitsPerSecond / 1e6).toFixed(0)} Mbit/s`);
        assert.ok(r.receivedBitsPerSecond > 0, `${reverse ? '-R' : ''}: nothing arrived`);
      }
    });

    test(`MTU (${mode}): a client sending full-size IPv6 packets (no GSO) gets Packet Too Big from node1 (MTU 1500 - 70${mode === 'dsr' ? ' - 24' : ''} over the IPv6 underlay) and completes its transfer${mode === 'tunnel' ? "; the backend's full-size replies get it from node2" : ''}`, async () => {
      const mtu = 1500 - 70 - (mode === 'dsr' ? 24 : 0);
      dp1.map('weir_tunnel6', 'weir_tunnel6_key', 'weir_tunnel6').set({ prefixlen: 64, address: '2001:2:0:2::' }, { node_ip: node2.address6!, flags: 1 });
      const small = await lab.external('client-nogso', { address: '198.18.0.101/24', address6: '2001:2::101/64' });
      await small.ns.exec('ethtool', ['-K', small.ifname, 'gso', 'off', 'tso', 'off']);
      const before = dp1.counters();
      const r = await small.ns.exec('iperf3', ['-c', node1.address6!, '-p', String(IPERF_NODEPORT), '-b', '200M', '-n', '4M', '-J'], { timeoutMs: 30_000 });
      const j = JSON.parse(r.stdout) as { end: { sum_sent: { bytes: number }; sum_received: { bytes: number; bits_per_second: number } } };
      assert.ok(j.end.sum_sent.bytes >= 4 * 1024 * 1024, `transfer completed: ${j.end.sum_sent.bytes} bytes sent`);
      assert.ok(j.end.sum_received.bytes >= 0.9 * 4 * 1024 * 1024, `received ${j.end.sum_received.bytes} bytes`);
      const tooBig = delta(dp1.counters(), before, 'from_host', 'tunnel_frag_needed');
      assert.ok(tooBig >= 1, 'node1 sent Packet Too Big');
      const route = await small.ns.exec('ip', ['-6', 'route', 'get', node1.address6!]);
      console.log(
        `# ${(j.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s without GSO; Packet Too Big sent ${tooBig}x; client's route cache: ${route.stdout.trim().replace(/\s+/g, ' ')}`,
      );
      assert.match(route.stdout, new RegExp(`mtu ${mtu}\\b`), 'the client learned the path MTU');
      if (mode === 'tunnel') {
        // the other way: the backend's full-size replies do not fit the tunnel back to node1;
        // node2's from_pod6 sends it Packet Too Big (the MTU without DSR's option)
        // a client that has not learned the path MTU yet (its MSS lets the backend send 1500 bytes)
        const fresh = await lab.external('client-fresh', { address: '198.18.0.102/24', address6: '2001:2::102/64' });
        await backend.ns.exec('ethtool', ['-K', backend.ifname, 'gso', 'off', 'tso', 'off']);
        const b2 = dp2.counters();
        const rev = await fresh.ns.exec('iperf3', ['-c', node1.address6!, '-p', String(IPERF_NODEPORT), '-b', '200M', '-n', '4M', '-R', '-J'], {
          timeoutMs: 30_000,
        });
        const jr = JSON.parse(rev.stdout) as { end: { sum_received: { bytes: number } } };
        assert.ok(jr.end.sum_received.bytes >= 0.9 * 4 * 1024 * 1024, `-R received ${jr.end.sum_received.bytes} bytes`);
        const replyTooBig = delta(dp2.counters(), b2, 'from_pod', 'tunnel_frag_needed');
        const podRoute = await backend.ns.exec('ip', ['-6', 'route', 'get', fresh.address6!]);
        console.log(`# node2 sent the backend Packet Too Big ${replyTooBig}x; its route cache: ${podRoute.stdout.trim().replace(/\s+/g, ' ')}`);
        assert.ok(replyTooBig >= 1, 'node2 sent the backend Packet Too Big');
        assert.match(podRoute.stdout, /mtu 1430\b/, 'the backend learned the path MTU');
      }
    });
  });
}

// The same through `weir daemon` on both nodes, from manifests: dual-stack Node objects
// (InternalIPs and podCIDRs of both families) -> node-maps.ts -> weir_tunnel6/weir_nodes6; a
// dual-stack NodePort Service with an IPv6 EndpointSlice -> the reconciler's IPv6 frontends.
// --tunnel-underlay picks the outer header; a restart with it changes weir_tunnel6 in place.
describe('across nodes in IPv6 through `weir daemon` on both nodes (node maps from Node objects, --tunnel-underlay)', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let backend: Pod;
  let client: External;
  let weir1: WeirNode;
  let weir2: WeirNode;
  const args1: string[] = [];
  const args2: string[] = [];
  const PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: NODEPORT }];

  /** node2's IPv6 pod CIDR as node1's weir_tunnel6 holds it (the node address it tunnels to). */
  const tunnelEntry = (): string | undefined => {
    const m = BpfMap.openPinned(join(weir1.pinDir, 'weir_tunnel6'));
    try {
      return typedMap(m, codecFor('weir_tunnel6_key'), codecFor('weir_tunnel6')).get({ prefixlen: 64, address: '2001:2:0:2::' })?.node_ip;
    } finally {
      m.close();
    }
  };

  before(async () => {
    lab = await Lab.create({ name: 'tunnel6-daemon' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', address6: '2001:2::1/64', podSubnet: '198.18.1.0/24', podSubnet6: '2001:2:0:1::/64' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', address6: '2001:2::2/64', podSubnet: '198.18.2.0/24', podSubnet6: '2001:2:0:2::/64' });
    await lab.routePodSubnets();
    backend = await lab.pod(node2, 'be-remote');
    await backend.ns.echoServer({ name: 'be-remote', port: 8080 });
    client = await lab.external('client', { address: '198.18.0.100/24', address6: '2001:2::100/64' });
    const svc = service({ name: 'web', type: 'NodePort', clusterIP: '198.19.0.60', ports: PORTS }) as { spec: Record<string, unknown> };
    svc.spec.clusterIPs = ['198.19.0.60', '2001:2:ff::60'];
    svc.spec.ipFamilies = ['IPv4', 'IPv6'];
    svc.spec.ipFamilyPolicy = 'RequireDualStack';
    const v4 = endpointSlice({ name: 'web-v4', service: 'web', ports: PORTS, endpoints: [{ ip: backend.ip, node: node2.name }] });
    const v6 = endpointSlice({ name: 'web-v6', service: 'web', ports: PORTS, endpoints: [{ ip: backend.ip6!, node: node2.name }] });
    (v6 as { addressType: string }).addressType = 'IPv6';
    const nodes = [node1, node2].map((n) => k8sNode({ name: n.name, internalIP: [n.address, n.address6!], podCIDRs: [n.podSubnet!, n.podSubnet6!] }));
    weir1 = await WeirNode.create(lab, node1, { extraArgs: args1 });
    weir2 = await WeirNode.create(lab, node2, { extraArgs: args2 });
    for (const w of [weir1, weir2]) w.writeManifest('web.yaml', [...nodes, svc, v4, v6]);
    await Promise.all([weir1.start(), weir2.start()]);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  for (const underlay of ['ipv4', 'ipv6'] as const) {
    test(`--tunnel-underlay ${underlay}: weir_tunnel6 names node2 ${underlay === 'ipv4' ? 'v4-mapped' : 'by its IPv6 InternalIP'}; the backend sees the client's IPv6 address`, async () => {
      if (underlay === 'ipv6') {
        const p = weir1.process!;
        p.signalGroup('SIGTERM');
        await p.exited;
        args1.push('--tunnel-underlay', 'ipv6');
        await weir1.start();
      }
      assert.equal(tunnelEntry(), underlay === 'ipv4' ? v4Mapped(node2.address) : node2.address6);
      const filter =
        underlay === 'ipv4' ? `udp and dst port 4789 and src host ${node1.address}` : `ip6 and udp and dst port 4789 and src host ${node1.address6}`;
      const wire = node2.ns.spawn('tcpdump', ['-i', node2.ifname, '-n', '-l', '-c', '3', filter], { label: 'tcpdump tunnel' });
      await sleep(500);
      const c1 = weir1.counters();
      const c2 = weir2.counters();
      const r = await weir1.spread(client.ns, node1.address6!, NODEPORT, { count: 10, concurrency: 2 });
      assert.equal(r.failures, 0, r.errors.join('; '));
      assert.deepEqual([...new Set(r.peers['be-remote'])], [client.address6], 'the backend sees the client');
      await wire.exited;
      console.log(
        `# daemon, --tunnel-underlay ${underlay}: ${wire.stdout
          .split('\n')
          .find((l) => l.includes('4789'))
          ?.trim()}`,
      );
      const d1 = weir1.counters();
      const d2 = weir2.counters();
      assert.equal(delta(d1, c1, 'from_host', 'service_nat'), 10, 'node1 chose the backend for each connection');
      assert.ok(delta(d1, c1, 'from_host', 'tunnel_encap') >= 10 * 3, 'node1 encapsulated every client packet');
      assert.ok(delta(d2, c2, 'from_pod', 'tunnel_encap') >= 10 * 2, 'node2 sent the replies back into the tunnel');
      assert.ok(delta(d1, c1, 'from_host', 'reverse_nat') >= 10 * 2, 'node1 reverse-NATed them for the client');
    });
  }

  test('--external-service-mode dsr on both (IPv6 underlay): node2 DNATs to the backend node1 named and answers the client itself', async () => {
    for (const w of [weir1, weir2]) {
      const p = w.process!;
      p.signalGroup('SIGTERM');
      await p.exited;
    }
    for (const a of [args1, args2]) a.push('--external-service-mode', 'dsr');
    await Promise.all([weir1.start(), weir2.start()]);
    const c1 = weir1.counters();
    const c2 = weir2.counters();
    const r = await weir1.spread(client.ns, node1.address6!, NODEPORT, { count: 10, concurrency: 2 });
    assert.equal(r.failures, 0, r.errors.join('; '));
    assert.deepEqual([...new Set(r.peers['be-remote'])], [client.address6], 'the backend sees the client');
    const d1 = weir1.counters();
    const d2 = weir2.counters();
    console.log(`# daemon, dsr: node1 from_host ${JSON.stringify(d1.from_host)}; node2 from_pod ${JSON.stringify(d2.from_pod)}`);
    assert.equal(delta(d2, c2, 'from_host', 'service_nat'), 10, 'node2 DNATed each connection to the backend node1 named');
    assert.ok(delta(d2, c2, 'from_pod', 'dsr_reply') >= 10 * 2, 'node2 answered the client from the frontend');
    assert.equal(delta(d1, c1, 'from_host', 'tunnel_decap'), 0, 'node1 received no reply');
  });
});
