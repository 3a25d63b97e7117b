// The XDP prefilter (bpf-c/xdp_prefilter.c) through BPF_PROG_TEST_RUN: a host endpoint's
// UNTRACKED_IN chain written by hand decides each packet: deny drops it (counted, the rule's
// stats bumped), allow and no match pass it with the metadata TC reads, a failsafe port (or the
// reply of an outbound failsafe flow) passes before any rule; tiers (Pass), end-of-tier deny,
// port ranges, nets and not-nets, both families. No host endpoint on the interface: untouched.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { BpfObject, enums, RingBuffer, type BpfProgram } from '../../src/bpf/index.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { decodeEvent, MonitorLease, reasonMask } from '../../src/dataplane/monitor.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { eth } from '../lib/packet.js';
import { ACTION, allow, CHAIN, deny, dports, FAILSAFE, HostPlan, RULE, SCTP, TCP, UDP } from './host-policy-fixture.js';

const XDP_DROP = 1;
const XDP_PASS = 2;
const LO = 1; // BPF_PROG_TEST_RUN runs XDP as if received on the loopback device
const HEP = 7;
const META = enums.weir_xdp_verdict;
const CLIENT = '198.18.50.1';
const OTHER = '198.18.60.1';
const NODE = '198.18.0.2';
const CLIENT6 = '2001:2::50:1';
const NODE6 = '2001:2::2';

const l2 = () => eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' });
const tcp = (src: string, sport: number, dport: number, dst = NODE) =>
  l2()
    .ipv4({ src, dst })
    .tcp({ sport, dport, flags: ['syn'] })
    .build();
const udp = (src: string, sport: number, dport: number, dst = NODE) => l2().ipv4({ src, dst }).udp({ sport, dport }).payload('q').build();
const tcp6 = (src: string, sport: number, dport: number) =>
  l2()
    .ipv6({ src, dst: NODE6 })
    .tcp({ sport, dport, flags: ['syn'] })
    .build();
const sctp = (src: string, sport: number, dport: number) => {
  const b = Buffer.alloc(16);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt8(1, 12);
  b.writeUInt16BE(4, 14);
  return l2().ipv4({ src, dst: NODE, protocol: SCTP }).payload(b).build();
};

describe('weir_xdp_prefilter', () => {
  let fs: PrivateBpffs;
  let obj: BpfObject;
  let prog: BpfProgram;
  let plan: HostPlan;

  before(() => {
    fs = mountPrivateBpffs('host-policy-xdp');
    obj = BpfObject.load(join(process.cwd(), 'build', 'bpf', 'xdp_prefilter.o'), { pinDir: fs.path });
    prog = obj.program('weir_xdp_prefilter');
    plan = new HostPlan(obj);
  });
  after(async () => {
    obj?.close();
    await fs?.cleanup();
  });
  beforeEach(() => {
    plan.clear();
    resetCounters(obj.map('weir_counters'));
  });

  const counters = () => counterTotals(readCounters(obj.map('weir_counters')));
  /** runs @data; returns the verdict and the metadata in front of the packet (undefined: none) */
  const run = (data: Buffer) => {
    const r = prog.testRun({ data });
    if (r.retval !== XDP_PASS) return { retval: r.retval, meta: undefined };
    const metaLen = r.data.length - data.length;
    assert.deepEqual(r.data.subarray(metaLen), data, 'the packet itself is untouched');
    if (metaLen === 0) return { retval: r.retval, meta: undefined };
    assert.equal(metaLen, 8);
    assert.equal(r.data.readUInt32LE(0), 0x77656972, 'the magic');
    return { retval: r.retval, meta: r.data.readUInt32LE(4) };
  };
  const verdict = (data: Buffer) => {
    const r = run(data);
    if (r.retval === XDP_DROP) return 'drop';
    return r.meta === META.WEIR_XDP_UNTRACKED_ALLOW ? 'allow' : r.meta === META.WEIR_XDP_FAILSAFE ? 'failsafe' : r.meta === undefined ? 'no-meta' : 'no-match';
  };

  test('no host endpoint on the interface: every packet passes untouched, without metadata', () => {
    plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [deny()]);
    assert.equal(verdict(tcp(CLIENT, 40000, 80)), 'no-meta');
    assert.deepEqual(counters(), {});
  });

  test('deny drops (counted, the rule stats), allow and no match pass with their metadata', () => {
    plan.iface(LO, HEP);
    const [d, a] = plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [deny(dports(TCP, 80)), allow(dports(UDP, 53))]);
    const syn = tcp(CLIENT, 40000, 80);
    for (let i = 0; i < 3; i++) assert.equal(verdict(syn), 'drop');
    assert.equal(verdict(udp(CLIENT, 40000, 53)), 'allow');
    assert.equal(verdict(udp(CLIENT, 40000, 54)), 'no-match');
    assert.equal(verdict(tcp(CLIENT, 40000, 81)), 'no-match');
    assert.deepEqual(plan.stats(d!), { packets: 3, bytes: 3 * syn.length });
    assert.deepEqual(plan.stats(a!), { packets: 1, bytes: udp(CLIENT, 40000, 53).length });
    assert.deepEqual(counters(), { xdp: { host_untracked_denied: 3, host_untracked_allowed: 1 } });
  });

  test('no untracked chain for the endpoint: passed untouched, no metadata (from_host finds no chain either)', () => {
    plan.iface(LO, HEP);
    plan.chain(HEP + 1, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [deny()]);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [deny()]);
    assert.equal(verdict(tcp(CLIENT, 40000, 80)), 'no-meta');
  });

  test('Pass jumps to the next tier; the tier-end deny catches what the tier did not decide', () => {
    plan.iface(LO, HEP);
    const PASS = ACTION.WEIR_HOST_PASS;
    plan.set(1, `${OTHER}/32`);
    // tier 1: pass TCP/22, deny from OTHER, tier end; tier 2: allow TCP 22, tier end
    const idx = plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [
      { ...dports(TCP, 22), action: PASS, jump: 3 },
      deny({ src_set: 1 }),
      deny({ flags: RULE.WEIR_HOST_RULE_TIER_END }),
      allow(dports(TCP, 22)),
      deny({ flags: RULE.WEIR_HOST_RULE_TIER_END }),
    ]);
    assert.equal(verdict(tcp(OTHER, 40000, 22)), 'allow', 'passed over the deny of OTHER to tier 2');
    assert.equal(verdict(tcp(OTHER, 40000, 80)), 'drop');
    assert.equal(verdict(tcp(CLIENT, 40000, 80)), 'drop', 'tier end');
    assert.deepEqual(
      idx.map((i) => plan.stats(i).packets),
      [0, 1, 1, 1, 0],
      'the pass rule decides nothing: no stats',
    );
  });

  test('port ranges, source ports, protocol; nets and not-nets; family flags', () => {
    plan.iface(LO, HEP);
    plan.set(1, '198.18.50.0/24');
    plan.set(2, '198.18.50.128/25');
    plan.set(3, '2001:2::50:0/112');
    plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [
      allow({ ...dports(TCP, 1000, 1999), src_set: 1, src_not_set: 2 }),
      allow({ protocol: UDP, sport_min: 123, sport_max: 123, flags: RULE.WEIR_HOST_RULE_PROTOCOL | RULE.WEIR_HOST_RULE_SPORTS }),
      allow({ ...dports(TCP, 443), flags: RULE.WEIR_HOST_RULE_PROTOCOL | RULE.WEIR_HOST_RULE_DPORTS | RULE.WEIR_HOST_RULE_IPV6 }),
      allow({ src_set: 3 }),
      deny(),
    ]);
    assert.equal(verdict(tcp('198.18.50.9', 40000, 1000)), 'allow');
    assert.equal(verdict(tcp('198.18.50.9', 40000, 1999)), 'allow');
    assert.equal(verdict(tcp('198.18.50.9', 40000, 2000)), 'drop', 'past the range');
    assert.equal(verdict(tcp('198.18.50.9', 40000, 999)), 'drop', 'before the range');
    assert.equal(verdict(tcp('198.18.50.200', 40000, 1500)), 'drop', 'in the not-net');
    assert.equal(verdict(tcp('198.18.51.9', 40000, 1500)), 'drop', 'outside the net');
    assert.equal(verdict(udp(OTHER, 123, 5000)), 'allow', 'source port');
    assert.equal(verdict(tcp(OTHER, 123, 5000)), 'drop', 'source port of another protocol');
    assert.equal(verdict(tcp(OTHER, 40000, 443)), 'drop', 'an IPv6-only rule never matches IPv4');
    assert.equal(verdict(tcp6('2001:2::99:1', 40000, 443)), 'allow', 'the IPv6-only rule');
    assert.equal(verdict(tcp6(CLIENT6, 40000, 8080)), 'allow', 'IPv6 net');
    assert.equal(verdict(tcp6('2001:2::51:1', 40000, 8080)), 'drop');
  });

  test('SCTP ports are read past parse_packet', () => {
    plan.iface(LO, HEP);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [allow(dports(SCTP, 3868)), deny()]);
    assert.equal(verdict(sctp(CLIENT, 5000, 3868)), 'allow');
    assert.equal(verdict(sctp(CLIENT, 5000, 3869)), 'drop');
  });

  test('failsafe: an inbound port passes before any rule; so does the reply of an outbound failsafe flow (its source port)', () => {
    plan.iface(LO, HEP);
    const [all] = plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [deny()]);
    plan.failsafe(FAILSAFE.WEIR_FAILSAFE_IN, TCP, 22);
    plan.failsafe(FAILSAFE.WEIR_FAILSAFE_OUT, UDP, 53, '198.18.50.0/24');
    plan.failsafe(FAILSAFE.WEIR_FAILSAFE_IN, TCP, 22, '2001:2::/64');
    assert.equal(verdict(tcp(CLIENT, 40000, 22)), 'failsafe');
    assert.equal(verdict(udp(CLIENT, 53, 33000)), 'failsafe', 'a DNS reply from a failsafe resolver');
    assert.equal(verdict(udp(OTHER, 53, 33000)), 'drop', 'the outbound entry names 198.18.50.0/24 only');
    assert.equal(verdict(udp(CLIENT, 33000, 53)), 'drop', 'an outbound port is not an inbound one');
    assert.equal(verdict(tcp(CLIENT, 40000, 23)), 'drop');
    assert.equal(verdict(tcp6(CLIENT6, 40000, 22)), 'failsafe');
    assert.equal(verdict(tcp6('2001:2:0:1::1', 40000, 22)), 'drop', 'outside the IPv6 entry');
    assert.equal(plan.stats(all!).packets, 4);
    assert.deepEqual(counters(), { xdp: { host_untracked_denied: 4 } });
  });

  test('a later fragment and a malformed packet pass untouched', () => {
    plan.iface(LO, HEP);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [deny()]);
    const later = l2().ipv4({ src: CLIENT, dst: NODE, fragOffset: 100, protocol: UDP }).payload(Buffer.alloc(24)).build();
    assert.equal(verdict(later), 'no-meta');
    assert.equal(verdict(tcp(CLIENT, 40000, 80).subarray(0, 30)), 'no-meta');
    assert.deepEqual(counters(), {});
  });

  test('weir monitor sees an XDP drop: hook xdp, reason host_untracked_denied, the addresses', () => {
    plan.iface(LO, HEP);
    plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [deny(dports(TCP, 80))]);
    const ring = new RingBuffer(obj.map('weir_events'));
    try {
      ring.consume();
      assert.equal(verdict(tcp(CLIENT, 40000, 80)), 'drop');
      assert.deepEqual(ring.consume(), [], 'nobody monitoring: no event');
      const lease = new MonitorLease(obj.map('weir_monitor_cfg'), reasonMask([], ['host_untracked_denied']), 1);
      lease.acquire();
      assert.equal(verdict(tcp(CLIENT, 40001, 80)), 'drop');
      assert.equal(verdict(udp(CLIENT, 40000, 53)), 'no-match');
      lease.release();
      const got = ring.consume().map((b) => decodeEvent(b)!);
      assert.deepEqual(
        got.map((e) => [e.hook, e.reason, e.proto, `${e.src}:${e.srcPort}`, `${e.dst}:${e.dstPort}`]),
        [['xdp', 'host_untracked_denied', 'tcp', `${CLIENT}:40001`, `${NODE}:80`]],
      );
    } finally {
      ring.close();
    }
  });
});
