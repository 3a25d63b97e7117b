// Host endpoint policy in from_host (TC ingress of a host interface) through BPF_PROG_TEST_RUN,
// with the plan written by hand: untracked rules without XDP (the TC fallback: deny drops,
// allow passes and tracks nothing unless NAT needs it), then for a new flow failsafe, preDNAT on
// the original destination (before NodePort NAT), NORMAL_IN to the host, FORWARD_IN through it
// (absent = allow); the host's own connections' replies pass a default-deny; an interface no
// host endpoint covers behaves as before. Exact counters and per-rule stats.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { BpfObject, codecFor, typedMap, type BpfProgram } from '../../src/bpf/index.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { eth } from '../lib/packet.js';
import { allow, CHAIN, deny, dports, FAILSAFE, HostPlan, TCP, UDP } from './host-policy-fixture.js';

const TC_PASS = 0;
const TC_DROP = 2;
const LO = 1; // BPF_PROG_TEST_RUN runs TC programs on the loopback device
const HEP = 3;
const CLIENT = '198.18.50.1';
const NODE = '198.18.0.2';
const POD = '198.18.3.20';
const NODEPORT = 30080;
const IDENTITY_HOST = 1;
const POD_IDENTITY = 300;

const l2 = () => eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' });
type Flag = 'syn' | 'ack' | 'fin' | 'rst';
const tcp = (dst: string, dport: number, flags: Flag[] = ['syn'], sport = 40000, src = CLIENT) =>
  l2().ipv4({ src, dst }).tcp({ sport, dport, flags }).payload('x').build();
const udp = (dst: string, sport: number, dport: number) => l2().ipv4({ src: CLIENT, dst }).udp({ sport, dport }).payload('q').build();

describe('from_host with host endpoint policy', () => {
  let fs: PrivateBpffs;
  let obj: BpfObject;
  let prog: BpfProgram;
  let plan: HostPlan;

  const ct = () => typedMap(obj.map('weir_ct4_v2'), codecFor('weir_ct4_key'), codecFor('weir_ct4'));
  const frontends = () => typedMap(obj.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
  const ipcache = () => typedMap(obj.map('weir_ipcache4_hosts'), codecFor('weir_ipcache4_host_key'), codecFor('weir_ipcache4'));
  const counters = () => counterTotals(readCounters(obj.map('weir_counters')));
  const run = (data: Buffer) => prog.testRun({ data }).retval;
  const entries = () => [...ct().keys()].length;

  before(() => {
    fs = mountPrivateBpffs('host-policy-from-host');
    obj = BpfObject.load(join(process.cwd(), 'build', 'bpf', 'from_host.o'), { pinDir: fs.path, consts: { ct_track_all: 1 } });
    prog = obj.program('weir_from_host');
    plan = new HostPlan(obj);
    // the node's address and a local pod, as the policy sync writes them
    ipcache().set({ address: NODE }, { identity: IDENTITY_HOST, cidr_identity: 3 });
    ipcache().set({ address: POD }, { identity: POD_IDENTITY, cidr_identity: 3 });
    // a NodePort on the node's address, its one backend the pod
    typedMap(obj.map('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4')).set(
      { frontend_id: 9, slot: 0 },
      { address: POD, port: 8080, flags: 0 },
    );
  });
  after(async () => {
    obj?.close();
    await fs?.cleanup();
  });
  beforeEach(() => {
    plan.clear();
    ct().deleteMany([...ct().keys()]);
    frontends().deleteMany([...frontends().keys()]);
    resetCounters(obj.map('weir_counters'));
  });
  const addNodePort = () =>
    frontends().set({ address: NODE, port: NODEPORT, protocol: TCP, scope: 0 }, { id: 9, backend_count: 1, flags: 0, affinity_timeout: 0 });

  test('no host endpoint on the interface: chains written for it change nothing', () => {
    plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [deny()]);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [deny()]);
    plan.iface(LO + 100, HEP); // another interface
    assert.equal(run(tcp(NODE, 80)), TC_PASS);
    assert.equal(entries(), 2);
    assert.deepEqual(counters(), { from_host: { ct_tracked_new: 1 } });
  });

  test('untracked without XDP: deny drops, allow passes and leaves no conntrack entry; per-rule stats', () => {
    plan.iface(LO, HEP);
    const [a, d] = plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [allow(dports(UDP, 5000, 5999)), deny(dports(TCP, 25))]);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [deny()]);
    const smtp = tcp(NODE, 25);
    assert.equal(run(smtp), TC_DROP);
    assert.equal(run(tcp(NODE, 25, ['ack'])), TC_DROP, 'untracked rules judge every packet, not just new flows');
    const dgram = udp(NODE, 40000, 5500);
    for (let i = 0; i < 4; i++) assert.equal(run(dgram), TC_PASS);
    assert.equal(entries(), 0, 'allowed untracked: never tracked, and normal policy (deny all) skipped');
    assert.deepEqual(plan.stats(a!), { packets: 4, bytes: 4 * dgram.length });
    assert.deepEqual(plan.stats(d!), { packets: 2, bytes: smtp.length + tcp(NODE, 25, ['ack']).length });
    assert.deepEqual(counters(), { from_host: { host_untracked_denied: 2, host_untracked_allowed: 4 } });
  });

  test('an untracked allow to a frontend is still NAT-ed (NAT needs conntrack); host policy is skipped', () => {
    plan.iface(LO, HEP);
    addNodePort();
    plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [allow(dports(TCP, NODEPORT))]);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_PREDNAT_IN, [deny()]);
    assert.notEqual(run(tcp(NODE, NODEPORT)), TC_DROP);
    assert.equal(entries(), 2);
    assert.deepEqual(counters(), { from_host: { service_nat: 1 } });
  });

  test('NORMAL_IN: default deny to the host drops new flows; an allowed port passes and is tracked', () => {
    plan.iface(LO, HEP);
    const [allowed, end] = plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [allow(dports(TCP, 443)), deny()]);
    assert.equal(run(tcp(NODE, 80)), TC_DROP);
    assert.equal(run(udp(NODE, 40000, 161)), TC_DROP);
    assert.equal(entries(), 0);
    assert.equal(run(tcp(NODE, 443)), TC_PASS);
    assert.equal(entries(), 2);
    assert.equal(run(tcp(NODE, 443, ['ack'])), TC_PASS, 'a later packet hits conntrack: not judged again');
    assert.deepEqual(plan.stats(allowed!).packets, 1);
    assert.deepEqual(plan.stats(end!).packets, 2);
    assert.deepEqual(counters(), {
      from_host: { host_policy_denied: 2, host_policy_allowed: 1, ct_tracked_new: 1, ct_tracked: 1 },
    });
  });

  test("the host's own connections: their SYN-ACK (a conntrack miss that starts no flow) passes a default deny", () => {
    plan.iface(LO, HEP);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [deny()]);
    assert.equal(run(tcp(NODE, 41000, ['syn', 'ack'], 443)), TC_PASS);
    assert.equal(run(tcp(NODE, 41000, ['ack'], 443)), TC_PASS);
    assert.deepEqual(counters(), { from_host: { pass: 2 } });
  });

  test('failsafe: an inbound failsafe port passes a default deny (counted), so does the reply of an outbound one', () => {
    plan.iface(LO, HEP);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [deny()]);
    plan.failsafe(FAILSAFE.WEIR_FAILSAFE_IN, TCP, 22);
    plan.failsafe(FAILSAFE.WEIR_FAILSAFE_OUT, UDP, 53, `${CLIENT}/32`);
    assert.equal(run(tcp(NODE, 22)), TC_PASS);
    assert.equal(run(udp(NODE, 53, 33000)), TC_PASS, 'a DNS reply');
    assert.equal(run(udp(NODE, 33000, 53)), TC_DROP);
    assert.deepEqual(counters(), {
      from_host: { host_failsafe: 2, ct_tracked_new: 2, host_policy_denied: 1 },
    });
  });

  test('preDNAT: a deny drops a NodePort flow before NAT (no entry); an allow skips NORMAL_IN and FORWARD_IN', () => {
    plan.iface(LO, HEP);
    addNodePort();
    plan.set(1, '198.18.60.0/24');
    const [d, a] = plan.chain(HEP, CHAIN.WEIR_CHAIN_PREDNAT_IN, [deny({ ...dports(TCP, NODEPORT), src_set: 1 }), allow(dports(TCP, 9000))]);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [deny()]);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_FORWARD_IN, [deny()]);
    assert.equal(run(tcp(NODE, NODEPORT, ['syn'], 40000, '198.18.60.5')), TC_DROP);
    assert.equal(entries(), 0);
    assert.equal(run(tcp(NODE, 9000)), TC_PASS, 'preDNAT allowed: NORMAL_IN not asked');
    assert.equal(run(tcp(NODE, NODEPORT)), TC_DROP, 'no preDNAT match: on to FORWARD_IN, which denies');
    assert.equal(plan.stats(d!).packets, 1);
    assert.equal(plan.stats(a!).packets, 1);
    assert.deepEqual(counters(), {
      from_host: { host_prednat_denied: 1, host_policy_allowed: 1, ct_tracked_new: 1, host_forward_denied: 1 },
    });
  });

  test('FORWARD_IN: absent means allow (NodePort to a pod, traffic to a pod); present, it judges forwarded flows only', () => {
    plan.iface(LO, HEP);
    addNodePort();
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [deny()]);
    assert.notEqual(run(tcp(NODE, NODEPORT)), TC_DROP, 'a NodePort flow is forwarded: NORMAL_IN does not apply');
    assert.notEqual(run(tcp(POD, 8080, ['syn'], 40001)), TC_DROP);
    assert.deepEqual(counters(), { from_host: { service_nat: 1, ct_tracked_new: 1 } });

    resetCounters(obj.map('weir_counters'));
    ct().deleteMany([...ct().keys()]);
    const [fwd] = plan.chain(HEP, CHAIN.WEIR_CHAIN_FORWARD_IN, [allow(dports(TCP, 8080)), deny()]);
    assert.notEqual(run(tcp(POD, 8080, ['syn'], 40002)), TC_DROP);
    assert.equal(run(tcp(POD, 8081, ['syn'], 40002)), TC_DROP);
    assert.equal(run(tcp(NODE, 80)), TC_DROP, 'to the host: NORMAL_IN');
    assert.equal(plan.stats(fwd!).packets, 1);
    assert.deepEqual(counters(), {
      from_host: { host_policy_allowed: 1, ct_tracked_new: 1, host_forward_denied: 1, host_policy_denied: 1 },
    });
  });
});

describe('from_host6 with host endpoint policy', () => {
  const CLIENT6 = '2001:2::50:1';
  const NODE6 = '2001:2::2';
  let fs: PrivateBpffs;
  let obj: BpfObject;
  let prog: BpfProgram;
  let plan: HostPlan;

  const counters = () => counterTotals(readCounters(obj.map('weir_counters')));
  const run = (data: Buffer) => prog.testRun({ data }).retval;
  const tcp6 = (dport: number, flags: Flag[] = ['syn']) => l2().ipv6({ src: CLIENT6, dst: NODE6 }).tcp({ sport: 40000, dport, flags }).build();
  const udp6 = (sport: number, dport: number) => l2().ipv6({ src: CLIENT6, dst: NODE6 }).udp({ sport, dport }).payload('q').build();
  const ns = l2().ipv6({ src: CLIENT6, dst: 'ff02::1:ff00:2', hopLimit: 255 }).icmpv6({ type: 135, rest: 0 }).payload(Buffer.alloc(16)).build();

  before(() => {
    fs = mountPrivateBpffs('host-policy-from-host6');
    obj = BpfObject.load(join(process.cwd(), 'build', 'bpf', 'from_host6.o'), { pinDir: fs.path, consts: { ct_track_all: 1 } });
    prog = obj.program('weir_from_host6');
    plan = new HostPlan(obj);
    typedMap(obj.map('weir_ipcache6_hosts'), codecFor('weir_ipcache6_host_key'), codecFor('weir_ipcache6')).set(
      { address: NODE6 },
      { identity: IDENTITY_HOST, cidr_identity: 3 },
    );
  });
  after(async () => {
    obj?.close();
    await fs?.cleanup();
  });

  test('untracked deny, NORMAL_IN default deny with an allowed port, failsafe, SYN-ACK replies; neighbour discovery always passes', () => {
    plan.iface(LO, HEP);
    const [u] = plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [deny(dports(TCP, 25)), deny({ protocol: 58, flags: 1 })]);
    const [a] = plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [allow(dports(TCP, 443)), deny()]);
    plan.failsafe(FAILSAFE.WEIR_FAILSAFE_IN, TCP, 22, '2001:2::/64');
    assert.equal(run(tcp6(25)), TC_DROP);
    assert.equal(run(tcp6(80)), TC_DROP);
    assert.equal(run(tcp6(443)), TC_PASS);
    assert.equal(run(tcp6(22)), TC_PASS);
    assert.equal(run(tcp6(41000, ['syn', 'ack'])), TC_PASS);
    assert.equal(run(udp6(33000, 161)), TC_DROP);
    assert.equal(run(ns), TC_PASS, 'an ICMPv6 deny-all untracked rule does not cut neighbour discovery');
    assert.equal(plan.stats(u!).packets, 1);
    assert.equal(plan.stats(a!).packets, 1);
    assert.deepEqual(counters(), {
      from_host: {
        host_untracked_denied: 1,
        host_policy_denied: 2,
        host_policy_allowed: 1,
        host_failsafe: 1,
        ct_tracked_new: 2,
        pass: 2,
      },
    });
  });
});
