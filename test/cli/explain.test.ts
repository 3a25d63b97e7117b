// `weir explain` against maps the real programs use, checked against what real packets get
// from the same programs (BPF_PROG_TEST_RUN of from_pod / from_host): the backend set and the
// verdict for a ClusterIP, a NodePort with Local policy, a no-endpoint service, a terminating
// backend with an established flow, and ClientIP affinity. Explain writes nothing: every map
// is byte-for-byte the same before and after.

import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { decodePacket, eth } from '../lib/packet.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { addService, IPPROTO, loadServiceDataplane, TC, type ServiceDataplane } from '../bpf/service-fixture.js';

const CLIENT = '198.18.1.10';
const OUTSIDE = '198.18.0.100';
const NODE = '198.18.0.1';
const CLUSTER_IP = '198.19.0.10';
const A = '198.18.2.20';
const B = '198.18.2.21';
const C = '198.18.2.22';

let dp: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane();
});
after(async () => {
  await dp?.close();
});
beforeEach(() => dp.reset());

interface Explained {
  verdict: string;
  hook: string;
  candidates: Array<{ address: string; port: number }>;
  affinity?: { backend: string; fresh: boolean };
  rewrite?: { daddr: string; dport: number };
  flows: Array<{ sport: number; backend: string }>;
}

function explainCli(...args: string[]): Explained {
  const r = runSync(binWeir, ['explain', ...args, '--pin-dir', dp.bpffs.path, '-o', 'json'], { check: false });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Explained;
}

/** Every entry of every service map, raw, to prove explain changes nothing. */
function snapshot(): string {
  return JSON.stringify([dp.frontends, dp.backends, dp.affinity, dp.conntrack].map((m) => m.entries()), (_, v) => (typeof v === 'bigint' ? v.toString() : v));
}

const packet = (src: string, dst: string) => eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src, dst });
const syn = (src: string, dst: string, sport: number, dport: number) => packet(src, dst).tcp({ sport, dport, flags: ['syn'] }).build();
const ack = (src: string, dst: string, sport: number, dport: number) => packet(src, dst).tcp({ sport, dport, flags: ['ack'] }).build();
const backendsOf = (e: Explained) => e.candidates.map((c) => `${c.address}:${c.port}`).sort();

test('ClusterIP: explain names the backends real new flows land on', () => {
  addService(dp, { id: 7, address: CLUSTER_IP, port: 80, backends: [{ address: A, port: 8080 }, { address: B, port: 8080 }] });
  const before = snapshot();
  const e = explainCli(CLIENT, CLUSTER_IP, '80/tcp', '--from', 'pod');
  assert.equal(snapshot(), before, 'explain wrote nothing');
  assert.equal(e.verdict, 'dnat');
  assert.equal(e.hook, 'from_pod');
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const r = dp.run('fromPod', syn(CLIENT, CLUSTER_IP, 41000 + i, 80));
    const d = decodePacket(r.data);
    seen.add(`${d.ipv4!.dst}:${d.tcp!.dport}`);
  }
  assert.deepEqual([...seen].sort(), backendsOf(e));
  // and a flow under way: explain with its source port follows conntrack
  const flow = explainCli(CLIENT, CLUSTER_IP, '80/tcp', '--from', 'pod', '--sport', '41003');
  const real = decodePacket(dp.run('fromPod', ack(CLIENT, CLUSTER_IP, 41003, 80)).data);
  assert.equal(flow.verdict, 'established');
  assert.deepEqual([flow.rewrite!.daddr, flow.rewrite!.dport], [real.ipv4!.dst, real.tcp!.dport]);
  assert.equal(flow.flows.length, 40);
});

test('NodePort with Local policy from outside: the external scope, only local backends', () => {
  addService(dp, { id: 1, address: NODE, port: 30080, flags: ['nodeport'], backends: [{ address: A, port: 8080 }, { address: B, port: 8080 }] });
  addService(dp, { id: 2, address: NODE, port: 30080, scope: 'external', flags: ['nodeport'], backends: [{ address: B, port: 8080 }] });
  const e = explainCli(OUTSIDE, NODE, '30080/tcp', '--from', 'external');
  assert.equal(e.hook, 'from_host');
  assert.deepEqual(backendsOf(e), [`${B}:8080`]);
  for (let i = 0; i < 10; i++) {
    const d = decodePacket(dp.run('fromHost', syn(OUTSIDE, NODE, 42000 + i, 30080)).data);
    assert.equal(`${d.ipv4!.dst}:${d.tcp!.dport}`, `${B}:8080`);
    assert.equal(d.ipv4!.src, OUTSIDE, 'client address kept');
  }
  // from a pod the same address and port use the internal scope: both backends
  assert.deepEqual(backendsOf(explainCli(CLIENT, NODE, '30080/tcp', '--from', 'pod')), [`${A}:8080`, `${B}:8080`]);
});

test('no endpoints: explain says reject, and the real packet is answered with port unreachable', () => {
  addService(dp, { id: 3, address: CLUSTER_IP, port: 80, flags: ['reject'], backends: [] });
  const e = explainCli(CLIENT, CLUSTER_IP, '80/tcp', '--from', 'pod');
  assert.equal(e.verdict, 'reject');
  assert.deepEqual(e.candidates, []);
  const r = dp.run('fromPod', syn(CLIENT, CLUSTER_IP, 43000, 80));
  const d = decodePacket(r.data);
  assert.deepEqual([d.icmp!.type, d.icmp!.code], [3, 3]);
  assert.equal(r.retval, TC.redirect);
});

test('terminating backend: out of the new-flow set, its established flow still followed', () => {
  addService(dp, { id: 4, address: CLUSTER_IP, port: 80, backends: [{ address: C, port: 8080 }] });
  dp.run('fromPod', syn(CLIENT, CLUSTER_IP, 44000, 80)); // a flow to C
  // C starts terminating: the reconciler takes it out of the slots, A serves new flows
  addService(dp, { id: 4, address: CLUSTER_IP, port: 80, backends: [{ address: A, port: 8080 }] });
  const fresh = explainCli(CLIENT, CLUSTER_IP, '80/tcp', '--from', 'pod');
  assert.deepEqual(backendsOf(fresh), [`${A}:8080`]);
  assert.deepEqual(fresh.flows.map((f) => [f.sport, f.backend]), [[44000, C]]);
  const old = explainCli(CLIENT, CLUSTER_IP, '80/tcp', '--from', 'pod', '--sport', '44000');
  assert.equal(old.verdict, 'established');
  assert.equal(old.rewrite!.daddr, C);
  assert.equal(decodePacket(dp.run('fromPod', ack(CLIENT, CLUSTER_IP, 44000, 80)).data).ipv4!.dst, C);
  assert.equal(decodePacket(dp.run('fromPod', syn(CLIENT, CLUSTER_IP, 44001, 80)).data).ipv4!.dst, A);
});

test('ClientIP affinity: explain names the pinned backend, and does not refresh it', () => {
  addService(dp, { id: 5, address: CLUSTER_IP, port: 53, protocol: IPPROTO.udp, flags: ['affinity'], affinityTimeout: 600, backends: [{ address: A, port: 5353 }, { address: B, port: 5353 }] });
  const first = decodePacket(dp.run('fromPod', packet(CLIENT, CLUSTER_IP).udp({ sport: 5000, dport: 53 }).payload('q').build()).data).ipv4!.dst;
  const before = snapshot();
  const e = explainCli(CLIENT, CLUSTER_IP, '53/udp', '--from', 'pod');
  assert.equal(snapshot(), before, 'the affinity timestamp was not touched');
  assert.equal(e.affinity!.backend, first);
  assert.equal(e.affinity!.fresh, true);
  for (let i = 1; i <= 10; i++) assert.equal(decodePacket(dp.run('fromPod', packet(CLIENT, CLUSTER_IP).udp({ sport: 5000 + i, dport: 53 }).payload('q').build()).data).ipv4!.dst, first);
});

test('not a frontend: pass; bad arguments: one line, exit 1', () => {
  assert.equal(explainCli(CLIENT, '198.19.9.9', '80/tcp', '--from', 'pod').verdict, 'pass');
  const r = runSync(binWeir, ['explain', CLIENT, 'nope', '80/tcp', '--pin-dir', dp.bpffs.path], { check: false });
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), 'weir: destination nope: an IPv4 address');
});
