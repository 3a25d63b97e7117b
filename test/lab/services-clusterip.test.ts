// Issue 3, must-shows 1, 6, 7 and 5, with `weir daemon` running in a lab node: a pod reaches a
// ClusterIP over TCP and UDP through the per-packet TC path (--connect-time-lb off) and through
// the connect-time LB, 300 new connections spread over 3 backends; the connect-time LB leaves
// no conntrack entry and getpeername still shows the ClusterIP; counters show which path did the
// work; a pod reaches itself through its service (a hairpin through the ClusterIP on the TC path,
// a connect() to itself with the socket LB); ClientIP affinity pins one client to one backend.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, enums } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type Cgroup, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode, type PortSpec, type SpreadResult } from '../lib/weir-node.js';

const CLUSTER_IP = '198.19.0.10';
const PORTS: PortSpec[] = [
  { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' },
  { name: 'udp', port: 53, targetPort: 8080, protocol: 'UDP' },
];

/** weir_ct4 entries whose tuple mentions `addr`, read from the pinned map. */
/** NAT'd conntrack entries with `addr` on either side (tracked-only entries, which policy's
 *  conntrack of every flow gives the socket LB's already-translated flows too, not counted) */
function ctEntriesWith(pinDir: string, addr: string): number {
  return ctNatEntriesWith(pinDir, addr).length;
}

/** The same entries, each as its tuple and flags (for a failure's message) */
function ctNatEntriesWith(pinDir: string, addr: string): string[] {
  const m = BpfMap.openPinned(`${pinDir}/weir_ct4_v2`);
  try {
    const kc = codecFor('weir_ct4_key');
    const vc = codecFor('weir_ct4');
    const nat = enums.weir_ct_flags.WEIR_CT_DNAT | enums.weir_ct_flags.WEIR_CT_SNAT;
    const found: string[] = [];
    for (const [k, v] of m.entries()) {
      const key = kc.decode(k) as { saddr: string; daddr: string };
      const value = vc.decode(v) as { flags: number };
      if ((key.saddr === addr || key.daddr === addr) && (value.flags & nat) !== 0)
        found.push(JSON.stringify({ key, value }, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)));
    }
    return found;
  } finally {
    m.close();
  }
}

function assertSpread(r: SpreadResult, total: number, backends: string[], what: string): void {
  assert.equal(r.failures, 0, `${what}: ${r.failures} failed: ${r.errors.join('; ')}`);
  assert.deepEqual(Object.keys(r.servers).sort(), [...backends].sort(), `${what}: ${JSON.stringify(r.servers)}`);
  for (const b of backends) assert.ok(r.servers[b]! >= total * 0.2, `${what}: ${b} got ${r.servers[b]} of ${total} (< 20%): ${JSON.stringify(r.servers)}`);
}

describe('ClusterIP through weir daemon', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let cg: Cgroup;
  let weir: WeirNode;

  before(async () => {
    lab = await Lab.create({ name: 'svc-clusterip' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [];
    for (const n of ['be-a', 'be-b', 'be-c']) backends.push(await lab.pod(node, n));
    client = await lab.pod(node, 'client');
    cg = await lab.cgroup('pods');
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    weir = await WeirNode.create(lab, node, { cgroup: cg, connectTimeLb: 'off' });
    weir.writeManifest('web.yaml', [
      service({ name: 'web', clusterIP: CLUSTER_IP, ports: PORTS }),
      endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) }),
    ]);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('MS1: TC path (--connect-time-lb off): 300 TCP and 300 UDP connections over 3 backends, none below 20%', async () => {
    const ready = await weir.start();
    assert.equal(ready.frontends, '2');
    for (const proto of ['tcp', 'udp'] as const) {
      const port = proto === 'tcp' ? 80 : 53;
      const r = await weir.spread(client.ns, CLUSTER_IP, port, { proto, count: 300, cgroup: cg });
      assertSpread(
        r,
        300,
        backends.map((b) => b.name),
        `TC ${proto}`,
      );
      // no SNAT: every backend saw the client pod; the client saw the ClusterIP answer
      for (const peers of Object.values(r.peers)) assert.deepEqual(peers, [client.ip]);
      assert.deepEqual(
        Object.keys(r.remotes).map((x) => x.replace(/:\d+$/, '')),
        [CLUSTER_IP],
        JSON.stringify(r.remotes),
      );
    }
    // per-packet NAT: the flows are in conntrack
    assert.ok(ctEntriesWith(weir.pinDir, client.ip) > 0, 'conntrack holds the TC path flows');
  });

  test('MS1 + MS6: connect-time LB (on): 300 TCP and 300 UDP over 3 backends; no conntrack entry; getpeername is the ClusterIP', async () => {
    assert.equal((await weir.terminate()).code, 0);
    weir.configure({ connectTimeLb: 'on' });
    const ready = await weir.start();
    // restarted on adopted maps: nothing to write
    assert.equal(ready.writes, '0');
    // a fresh client address, so the conntrack check below sees only this test's flows
    const other = await lab.pod(node, 'client2');
    const fallback0 = weir.counter('sock', 'sock_lb_fallback');
    for (const proto of ['tcp', 'udp'] as const) {
      const port = proto === 'tcp' ? 80 : 53;
      const translated0 = weir.counter('sock', 'sock_lb_translated');
      const r = await weir.spread(other.ns, CLUSTER_IP, port, { proto, count: 300, cgroup: cg });
      assertSpread(
        r,
        300,
        backends.map((b) => b.name),
        `socket LB ${proto}`,
      );
      // the socket LB did the work: one connect() each (TCP); at least one sendto() each (UDP:
      // svc-client resends an unanswered datagram)
      const translated = weir.counter('sock', 'sock_lb_translated') - translated0;
      if (proto === 'tcp') assert.equal(translated, 300, 'socket LB translations');
      else assert.ok(translated >= 300, `socket LB translations: ${translated}`);
      for (const peers of Object.values(r.peers)) assert.deepEqual(peers, [other.ip]);
      // TCP: getpeername() of the connected socket; UDP: recvmsg's source address
      assert.deepEqual(Object.keys(r.remotes), [`${CLUSTER_IP}:${port}`], JSON.stringify(r.remotes));
    }
    // The socket LB leaves no conntrack entry. A connect()/sendmsg() it could not translate
    // (sock_lb_fallback: no backend in the picked slot, or its reverse entry not written) takes
    // the per-packet path, correctly but tracked: one NAT'd flow (two entries) at most for each.
    // CI once saw one such flow; the counter tells that case apart from a socket LB that missed.
    const natted = ctNatEntriesWith(weir.pinDir, other.ip);
    const fallbacks = weir.counter('sock', 'sock_lb_fallback') - fallback0;
    assert.ok(
      natted.length <= 2 * fallbacks && fallbacks <= 3,
      `the socket LB needs no conntrack entry: ${natted.length} NAT'd entries, ${fallbacks} fallbacks\n${natted.join('\n')}\nsock counters: ${JSON.stringify(weir.counters()['sock'])}\n${weir
        .runLines()
        .filter((l) => /attach|cgroup|ready/.test(l))
        .join('\n')}`,
    );
    // the same pod outside the socket-LB cgroup takes the TC path again
    const r = await weir.spread(other.ns, CLUSTER_IP, 80, { proto: 'tcp', count: 30 });
    assert.equal(r.failures, 0);
    assert.ok(ctEntriesWith(weir.pinDir, other.ip) > 0, 'outside the cgroup: TC path, conntrack entries');
  });

  test('MS7: hairpin: a backend reaches its own service through the ClusterIP (TC path); the socket LB connects it to itself', async () => {
    const self = backends[0]!;
    // only self as endpoint of a second service, so every connection hairpins
    const ports: PortSpec[] = [{ name: 'tcp', port: 81, targetPort: 8080 }];
    await weir.apply('self.yaml', [
      service({ name: 'self', clusterIP: '198.19.0.11', ports }),
      endpointSlice({ name: 'self-1', service: 'self', ports, endpoints: [{ ip: self.ip, node: node.name }] }),
    ]);
    // TC path: out of the pod, DNAT'd back to it and SNAT'd to the ClusterIP by from_pod, in again
    const hairpins0 = weir.counter('from_pod', 'hairpin');
    const tc = await weir.spread(self.ns, '198.19.0.11', 81, { count: 10 });
    assert.equal(tc.failures, 0, tc.errors.join('; '));
    assert.deepEqual(tc.servers, { [self.name]: 10 });
    assert.equal(weir.counter('from_pod', 'hairpin') - hairpins0, 10, 'every connection hairpinned in from_pod');
    assert.deepEqual(tc.peers[self.name], ['198.19.0.11'], 'the backend saw the ClusterIP as its peer (hairpin SNAT)');
    assert.deepEqual(Object.keys(tc.remotes), ['198.19.0.11:81']);
    // socket LB: connect() is rewritten to the pod's own address, so nothing leaves the pod
    const translated0 = weir.counter('sock', 'sock_lb_translated');
    const hairpins1 = weir.counter('from_pod', 'hairpin');
    const sock = await weir.spread(self.ns, '198.19.0.11', 81, { count: 10, cgroup: cg });
    assert.equal(sock.failures, 0, sock.errors.join('; '));
    assert.deepEqual(sock.servers, { [self.name]: 10 });
    assert.equal(weir.counter('sock', 'sock_lb_translated') - translated0, 10, 'the socket LB translated every connect()');
    assert.equal(weir.counter('from_pod', 'hairpin') - hairpins1, 0, 'and from_pod saw none of them');
    assert.deepEqual(sock.peers[self.name], [self.ip]);
    assert.deepEqual(Object.keys(sock.remotes), ['198.19.0.11:81'], 'getpeername still shows the ClusterIP');
  });

  test('MS5: ClientIP affinity: 50 connections from one client land on one backend', async () => {
    const ports: PortSpec[] = [{ name: 'tcp', port: 82, targetPort: 8080 }];
    await weir.apply('sticky.yaml', [
      service({ name: 'sticky', clusterIP: '198.19.0.12', ports, affinityTimeout: 300 }),
      endpointSlice({ name: 'sticky-1', service: 'sticky', ports, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) }),
    ]);
    // from a pod, in and out of the socket-LB cgroup: the socket LB leaves affinity services of
    // pods to the TC path (it keys affinity by the pod's address), so both legs are from_pod's
    for (const cgroup of [undefined, cg]) {
      const translated0 = weir.counter('sock', 'sock_lb_translated');
      const nat0 = weir.counter('from_pod', 'service_nat');
      const r = await weir.spread(client.ns, '198.19.0.12', 82, { count: 50, concurrency: 1, ...(cgroup ? { cgroup } : {}) });
      assert.equal(r.failures, 0, r.errors.join('; '));
      assert.equal(Object.keys(r.servers).length, 1, JSON.stringify(r.servers));
      assert.equal(weir.counter('sock', 'sock_lb_translated') - translated0, 0, 'the socket LB passed them');
      assert.equal(weir.counter('from_pod', 'service_nat') - nat0, 50, 'from_pod NATed every connection');
    }
    // the TC path keyed the affinity entry by the client pod's address
    const aff = BpfMap.openPinned(`${weir.pinDir}/weir_affinity4`);
    try {
      const clients = [...aff.entries()].map(([k]) => (codecFor('weir_affinity4_key').decode(k) as { client: string }).client);
      assert.ok(clients.includes(client.ip), `affinity entries: ${clients.join(',')}`);
    } finally {
      aff.close();
    }
  });
});
