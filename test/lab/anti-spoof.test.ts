// Issue 16, must-show 2, with real packets between lab namespaces: two dual-stack nodes with
// routed pod networks, `weir daemon` on each reading the same manifests (both Node objects, a
// NodePort Service whose backend `target` runs on node2). Capture runs inside the target pod's
// namespace, on its eth0, so "did not reach the pod" is what the pod itself saw.
//   - A pod on node1 that gives its eth0 a neighbour pod's addresses and pings the target from
//     them (ping -I): every packet is dropped on its host-side veth (from_pod / from_pod6,
//     spoofed_source, counted and shown by `weir monitor`); the same pod's pings from its own
//     addresses get answered.
//   - A pod created while weir runs: checked from its first packet, its own addresses work.
//   - The first pod borrowing its node's address to send VXLAN to node2 (the peer check trusts
//     node addresses): dropped at node1 as spoofed, never on the wire.
//   - An external client that sends VXLAN with weir's VNI to node2:4789 (IPv4 outer with an
//     IPv4 and with an IPv6 packet inside, IPv6 outer), the inner packets addressed to the
//     target: dropped before decapsulation (tunnel_denied, one per packet), while the client's
//     connections through node1's NodePort, which node1 forwards to node2 through the real
//     tunnel, keep working and are seen in the pod.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BpfMap } from '../../src/bpf/index.js';
import { readMonitorCfg, type MonitorEvent } from '../../src/dataplane/monitor.js';
import { runCleanups } from '../lib/cleanup.js';
import { dualStackNode, Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { sleep, spawnManaged, type ManagedProcess } from '../lib/proc.js';
import { endpointSlice, node, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const NODEPORT = 30290;
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: NODEPORT }];
const VNI = 0x574549;
const METRICS = '127.0.0.1:9745';
/** the inner source of the forged tunnel packets: no one on the lab networks */
const FORGED_SRC = '198.18.66.6';
const FORGED_SRC6 = '2001:2:66::6';

const nodeObject = (n: LabNode) => node({ name: n.name, internalIP: [n.address, n.address6!], podCIDRs: [n.podSubnet!, n.podSubnet6!] });

/** Sends one VXLAN datagram with weir's VNI (tunnel mode) to DST:4789 over the socket family
 *  of DST, carrying a UDP packet INNER_SRC -> INNER_DST:9999 with the payload "forged", from
 *  SRC (bound; '' for any). Checksums are right so that only weir's check stands in the way. */
const FORGE_VXLAN = `
import socket, struct, sys
dst, src, inner_src, inner_dst, vni = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
data = b'forged'
six = ':' in inner_src
fam = socket.AF_INET6 if six else socket.AF_INET
s, d = socket.inet_pton(fam, inner_src), socket.inet_pton(fam, inner_dst)
udp = struct.pack('!HHHH', 40000, 9999, 8 + len(data), 0) + data
pseudo = s + d + (struct.pack('!IxxxB', len(udp), 17) if six else struct.pack('!BBH', 0, 17, len(udp)))
udp = udp[:6] + struct.pack('!H', csum(pseudo + udp) or 0xffff) + udp[8:]
if six:
    ip = struct.pack('!IHBB16s16s', 6 << 28, len(udp), 17, 64, s, d)
else:
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, s, d)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
eth = bytes.fromhex('025745490000') + bytes(6) + (b'\\x86\\xdd' if six else b'\\x08\\x00')
vx = struct.pack('!II', 0x08000000, vni << 8)
sock = socket.socket(socket.AF_INET6 if ':' in dst else socket.AF_INET, socket.SOCK_DGRAM)
if src: sock.bind((src, 0))
sock.sendto(vx + eth + ip + udp, (dst, 4789))
`;

/** weir_drops_total{hook, reason} as the daemon's /metrics says it */
async function dropsMetric(w: WeirNode, hook: string, reason: string): Promise<number | undefined> {
  const { body } = await w.http('/metrics');
  const line = body.split('\n').find((l) => l.startsWith(`weir_drops_total{hook="${hook}",reason="${reason}"}`));
  console.log(`# ${line}`);
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

/** Waits until a `weir monitor` holds the lease on `w`'s programs (they emit events from then on). */
async function leaseHeld(w: WeirNode): Promise<void> {
  const cfg = BpfMap.openPinned(join(w.pinDir, 'weir_monitor_cfg'));
  try {
    for (let i = 0; i < 100; i++) {
      if (readMonitorCfg(cfg).until_ns > process.hrtime.bigint()) return;
      await sleep(100);
    }
    throw new Error('weir monitor took no lease within 10 s');
  } finally {
    cfg.close();
  }
}

type Counters = Record<string, Record<string, number>>;
const delta = (a: Counters, b: Counters, hook: string, reason: string) => (a[hook]?.[reason] ?? 0) - (b[hook]?.[reason] ?? 0);

describe('anti-spoofing: spoofed pod sources and forged VXLAN are dropped before they reach a pod', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let spoofer: Pod;
  let neighbour: Pod;
  let target: Pod;
  let client: External;
  let weir1: WeirNode;
  let weir2: WeirNode;

  /** tcpdump in the target pod, on its eth0, ready when it says it listens */
  async function capture(filter: string): Promise<ManagedProcess> {
    const p = target.ns.spawn('tcpdump', ['-i', 'eth0', '-n', '-l', '-U', filter], { label: 'tcpdump target' });
    await p.waitForOutput(/listening on/, 5000);
    return p;
  }
  async function captured(p: ManagedProcess): Promise<string[]> {
    await sleep(300);
    p.signalGroup('SIGTERM');
    await p.exited;
    return p.stdout.split('\n').filter((l) => l.includes(' > '));
  }

  before(async () => {
    lab = await Lab.create({ name: 'anti-spoof' });
    node1 = await lab.node('node1', dualStackNode(1));
    node2 = await lab.node('node2', dualStackNode(2));
    await lab.routePodSubnets();
    spoofer = await lab.pod(node1, 'spoofer');
    neighbour = await lab.pod(node1, 'neighbour');
    target = await lab.pod(node2, 'target');
    await target.ns.echoServer({ name: 'target', port: 8080 });
    client = await lab.external('client', { address: '198.18.0.100/24', address6: '2001:2::100/64' });
    const manifests = [
      nodeObject(node1),
      nodeObject(node2),
      service({ name: 'web', type: 'NodePort', clusterIP: '198.19.0.90', ports: PORTS }),
      endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: [{ ip: target.ip, node: node2.name }] }),
    ];
    // each node its own netns: both may listen on the same metrics address
    weir1 = await WeirNode.create(lab, node1, { metricsAddress: METRICS });
    weir2 = await WeirNode.create(lab, node2, { metricsAddress: METRICS });
    for (const w of [weir1, weir2]) w.writeManifest('web.yaml', manifests);
    await Promise.all([weir1.start(), weir2.start()]);
    // the spoofer claims its neighbour's addresses (and its node's, for the tunnel case) as a
    // compromised pod with NET_ADMIN could; its kernel then sends from them without complaint
    await spoofer.ns.addAddr('eth0', `${neighbour.ip}/32`);
    await spoofer.ns.ip('-6', 'addr', 'add', `${neighbour.ip6}/128`, 'dev', 'eth0', 'nodad');
    await spoofer.ns.addAddr('eth0', `${node1.address}/32`);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test("a pod sending from its neighbour's IPv4 and IPv6 addresses: dropped on its veth, counted, in weir monitor; nothing reaches the target", async () => {
    const mon = spawnManaged(binWeir, ['monitor', '--pin-dir', weir1.pinDir, '--type', 'drop', '-o', 'json'], { label: 'weir monitor', killAfterMs: 3000 });
    const cap = await capture(`icmp or icmp6`);
    const before = weir1.counters();
    // its own addresses: answered (the capture sees them, so it would see the others)
    for (const [from, dst] of [
      [spoofer.ip, target.ip],
      [spoofer.ip6!, target.ip6!],
    ] as const) {
      const own = await spoofer.ns.ping(dst, { from, count: 3 });
      assert.equal(own.received, 3, `from its own ${from}: ${own.output}`);
    }
    // the neighbour's: nothing comes back (once the monitor holds its lease, so it sees them all)
    await leaseHeld(weir1);
    const v4 = await spoofer.ns.ping(target.ip, { from: neighbour.ip, count: 3 });
    const v6 = await spoofer.ns.ping(target.ip6!, { from: neighbour.ip6!, count: 3 });
    assert.deepEqual([v4.received, v6.received], [0, 0], 'no reply to a spoofed ping');
    const after = weir1.counters();
    const lines = await captured(cap);
    await sleep(300);
    await mon.stop();
    console.log(`# target saw:\n${lines.map((l) => `#   ${l}`).join('\n')}`);
    const fromNeighbour = lines.filter((l) => l.includes(`${neighbour.ip} >`) || l.includes(`${neighbour.ip6} >`));
    assert.deepEqual(fromNeighbour, [], 'nothing from the spoofed addresses reached the target');
    assert.equal(lines.filter((l) => l.includes(`${spoofer.ip} >`) && l.includes('echo request')).length, 3, 'its own IPv4 pings did');
    assert.equal(lines.filter((l) => l.includes(`${spoofer.ip6} >`) && l.includes('echo request')).length, 3, 'its own IPv6 pings did');
    // exact: each spoofed echo request once (IPv6 neighbour discovery from its link-local address passes)
    const counted = delta(after, before, 'from_pod', 'spoofed_source');
    console.log(`# spoofed_source on node1: ${counted} (3 IPv4, 3 IPv6 echo requests)`);
    assert.equal(counted, 3 + 3);
    assert.equal(await dropsMetric(weir1, 'from_pod', 'spoofed_source'), after.from_pod?.spoofed_source);
    const events = mon.stdout
      .split('\n')
      .filter((l) => l.includes('spoofed_source'))
      .map((l) => JSON.parse(l) as MonitorEvent);
    console.log(`# weir monitor: ${JSON.stringify(events[0])}`);
    assert.equal(events.length, 6, `the monitor showed each drop: ${mon.stdout}${mon.stderr}`);
    for (const e of events) assert.deepEqual([e.type, e.hook, e.proto], ['drop', 'from_pod', e.family === 4 ? 'icmp' : 'icmpv6']);
    assert.deepEqual([...new Set(events.map((e) => e.src))].sort(), [neighbour.ip, neighbour.ip6].sort());
  });

  test("a pod created while weir runs: its own addresses work from its first packets, its neighbour's are dropped", async () => {
    const late = await lab.pod(node1, 'late');
    // weir attaches when the netlink event for the pod's route arrives; the addresses go first
    const link = join(weir1.pinDir, 'links', `tcx-${await node1.ns.ifindex(late.hostIfname)}-from_pod6`);
    for (let i = 0; i < 100 && !existsSync(link); i++) await sleep(50);
    assert.ok(existsSync(link), `weir attached to ${late.hostIfname}`);
    const before = weir1.counters();
    for (const dst of [target.ip, target.ip6!]) {
      const own = await late.ns.ping(dst, { count: 2 });
      assert.equal(own.received, 2, `from its own address to ${dst}: ${own.output}`);
    }
    await late.ns.addAddr('eth0', `${neighbour.ip}/32`);
    const spoofed = await late.ns.ping(target.ip, { from: neighbour.ip, count: 2 });
    assert.equal(spoofed.received, 0);
    assert.equal(delta(weir1.counters(), before, 'from_pod', 'spoofed_source'), 2);
  });

  test("a pod sending VXLAN from its node's address (which node2 trusts): dropped on its veth, never on the wire", async () => {
    const wire = node2.ns.spawn('tcpdump', ['-i', node2.ifname, '-n', '-l', '-U', 'udp dst port 4789'], { label: 'tcpdump wire' });
    await wire.waitForOutput(/listening on/, 5000);
    const cap = await capture(`udp port 9999`);
    const before = weir1.counters();
    await spoofer.ns.exec('python3', ['-c', FORGE_VXLAN, node2.address, node1.address, FORGED_SRC, target.ip, String(VNI)]);
    const lines = await captured(cap);
    await sleep(100);
    wire.signalGroup('SIGTERM');
    await wire.exited;
    assert.deepEqual(lines, [], 'nothing reached the target');
    assert.deepEqual(
      wire.stdout.split('\n').filter((l) => l.includes(' > ')),
      [],
      "node2's wire saw no VXLAN",
    );
    assert.equal(delta(weir1.counters(), before, 'from_pod', 'spoofed_source'), 1);
  });

  test('forged VXLAN from an external client to node2:4789 (IPv4 outer with IPv4 and IPv6 inside, IPv6 outer): dropped, counted; the real tunnel works', async () => {
    const cap = await capture(`udp port 9999 or (tcp port 8080 and (src host ${client.address}))`);
    const before = weir2.counters();
    for (const [outer, inner, innerDst] of [
      [node2.address, FORGED_SRC, target.ip],
      [node2.address, FORGED_SRC6, target.ip6!],
      [node2.address6!, FORGED_SRC6, target.ip6!],
    ] as const)
      await client.ns.exec('python3', ['-c', FORGE_VXLAN, outer, '', inner, innerDst, String(VNI)]);
    // a real peer's tunnel: node1 forwards the client's NodePort connections to node2
    const r = await weir1.spread(client.ns, node1.address, NODEPORT, { count: 5, concurrency: 1 });
    assert.equal(r.failures, 0, r.errors.join('; '));
    assert.deepEqual([...new Set(r.peers['target'])], [client.address], 'the target sees the client through the tunnel');
    const after = weir2.counters();
    const lines = await captured(cap);
    console.log(`# target saw ${lines.length} packets, e.g.\n#   ${lines[0]}`);
    assert.deepEqual(
      lines.filter((l) => l.includes('9999')),
      [],
      'no forged packet reached the target',
    );
    assert.ok(
      lines.some((l) => l.includes(`${client.address}.`)),
      'the tunneled connections did',
    );
    assert.equal(delta(after, before, 'from_host', 'tunnel_denied'), 3, JSON.stringify(after.from_host));
    assert.ok(delta(after, before, 'from_host', 'tunnel_decap') > 0, 'node1 -> node2 went through the tunnel');
    assert.equal(await dropsMetric(weir2, 'from_host', 'tunnel_denied'), after.from_host?.tunnel_denied);
  });
});
