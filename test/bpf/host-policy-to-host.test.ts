// Host endpoint policy at host egress (bpf-c/to_host.c) through BPF_PROG_TEST_RUN: host-sent
// packets meet the outbound failsafes, UNTRACKED_OUT and (first packet of a flow) NORMAL_OUT;
// an allowed host flow is tracked, so its reply passes from_host under a default-deny ingress
// policy; forwarded packets (ingress_ifindex set) meet FORWARD_OUT only. No host endpoint:
// counted and passed, nothing tracked.

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
const LO = 1;
const HEP = 5;
const NODE = '198.18.0.2';
const SERVER = '198.18.70.1';
const POD = '198.18.3.20';

const l2 = () => eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' });
const udp = (src: string, dst: string, sport: number, dport: number) => l2().ipv4({ src, dst }).udp({ sport, dport }).payload('q').build();
const syn = (src: string, dst: string, dport: number) =>
  l2()
    .ipv4({ src, dst })
    .tcp({ sport: 41000, dport, flags: ['syn'] })
    .build();
const syn6 = (dport: number) =>
  l2()
    .ipv6({ src: '2001:2::2', dst: '2001:2::70:1' })
    .tcp({ sport: 41000, dport, flags: ['syn'] })
    .build();
/** a struct __sk_buff prefix with ingress_ifindex (offset 36) set: a forwarded packet */
const forwardedCtx = () => {
  const ctx = Buffer.alloc(48);
  ctx.writeUInt32LE(LO, 36);
  return ctx;
};

describe('weir_to_host', () => {
  let fs: PrivateBpffs;
  let toHost: BpfObject;
  let fromHost: BpfObject;
  let egress: BpfProgram;
  let ingress: BpfProgram;
  let plan: HostPlan;

  const ct = () => typedMap(toHost.map('weir_ct4_v2'), codecFor('weir_ct4_key'), codecFor('weir_ct4'));
  const counters = () => counterTotals(readCounters(toHost.map('weir_counters')));
  const out = (data: Buffer, ctx?: Buffer) => egress.testRun(ctx ? { data, ctx, ctxSizeOut: 256 } : { data }).retval;

  before(() => {
    fs = mountPrivateBpffs('host-policy-to-host');
    toHost = BpfObject.load(join(process.cwd(), 'build', 'bpf', 'to_host.o'), { pinDir: fs.path });
    fromHost = BpfObject.load(join(process.cwd(), 'build', 'bpf', 'from_host.o'), { pinDir: fs.path, consts: { ct_track_all: 1 } });
    egress = toHost.program('weir_to_host');
    ingress = fromHost.program('weir_from_host');
    plan = new HostPlan(toHost);
  });
  after(async () => {
    toHost?.close();
    fromHost?.close();
    await fs?.cleanup();
  });
  beforeEach(() => {
    plan.clear();
    ct().deleteMany([...ct().keys()]);
    resetCounters(toHost.map('weir_counters'));
  });

  test('no host endpoint: counted, passed, nothing tracked', () => {
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_OUT, [deny()]);
    assert.equal(out(syn(NODE, SERVER, 443)), TC_PASS);
    assert.equal([...ct().keys()].length, 0);
    assert.deepEqual(counters(), { to_host: { pass: 1 } });
  });

  test('host-sent: NORMAL_OUT decides new flows; an allowed flow is tracked and its reply passes a default-deny ingress', () => {
    plan.iface(LO, HEP);
    const [a, d] = plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_OUT, [allow(dports(UDP, 123)), deny()]);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [deny()]);
    assert.equal(out(syn(NODE, SERVER, 25)), TC_DROP);
    assert.equal(out(syn6(25)), TC_DROP, 'IPv6 too');
    assert.equal(out(udp(NODE, SERVER, 40123, 123)), TC_PASS);
    assert.equal([...ct().keys()].length, 2, 'the NTP query is tracked');
    assert.equal(out(udp(NODE, SERVER, 40123, 123)), TC_PASS, 'its next packet: known, not judged again');
    assert.equal(ingress.testRun({ data: udp(SERVER, NODE, 123, 40123) }).retval, TC_PASS, 'the reply meets conntrack, not NORMAL_IN');
    assert.equal(ingress.testRun({ data: udp(SERVER, NODE, 124, 40123) }).retval, TC_DROP, 'a packet of no flow meets NORMAL_IN');
    assert.equal(plan.stats(a!).packets, 1);
    assert.equal(plan.stats(d!).packets, 2);
    assert.deepEqual(counters(), {
      to_host: { host_policy_denied: 2, host_policy_allowed: 1, ct_tracked_new: 1, pass: 1 },
      from_host: { ct_tracked: 1, host_policy_denied: 1 },
    });
  });

  test('host-sent: outbound failsafe passes before UNTRACKED_OUT; untracked deny drops every packet, allow tracks nothing', () => {
    plan.iface(LO, HEP);
    plan.failsafe(FAILSAFE.WEIR_FAILSAFE_OUT, UDP, 53);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_OUT, [allow(dports(TCP, 8443)), deny()]);
    assert.equal(out(udp(NODE, SERVER, 40000, 53)), TC_PASS);
    assert.equal(out(syn(NODE, SERVER, 8443)), TC_PASS);
    assert.equal(out(syn(NODE, SERVER, 443)), TC_DROP);
    assert.equal([...ct().keys()].length, 0);
    assert.deepEqual(counters(), { to_host: { host_failsafe: 1, pass: 1, host_untracked_allowed: 1, host_untracked_denied: 1 } });
  });

  test('forwarded: FORWARD_OUT only (absent: allow); NORMAL_OUT and UNTRACKED_OUT do not apply', () => {
    plan.iface(LO, HEP);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_OUT, [deny()]);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_OUT, [deny()]);
    assert.equal(out(syn(POD, SERVER, 443), forwardedCtx()), TC_PASS);
    const [f] = plan.chain(HEP, CHAIN.WEIR_CHAIN_FORWARD_OUT, [deny(dports(TCP, 25))]);
    assert.equal(out(syn(POD, SERVER, 25), forwardedCtx()), TC_DROP);
    assert.equal(out(syn(POD, SERVER, 443), forwardedCtx()), TC_PASS);
    assert.equal([...ct().keys()].length, 0, 'forwarded flows are tracked where they enter, not here');
    assert.equal(plan.stats(f!).packets, 1);
    assert.deepEqual(counters(), { to_host: { pass: 2, host_forward_denied: 1 } });
  });
});
