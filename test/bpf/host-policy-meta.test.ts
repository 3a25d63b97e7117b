// The XDP -> TC handoff with real packets (BPF_PROG_TEST_RUN cannot carry XDP metadata into an
// skb): two private namespaces joined by a veth pair, the prefilter (native, then generic XDP)
// and from_host (TCX ingress) on the receiving end. An untracked allow is walked once — by
// XDP, whose metadata from_host reads — so the rule's stats equal the packets sent; without XDP
// from_host walks it itself; an untracked deny never reaches TC.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { attachTc, attachXdp, BpfObject, ifindexOf, withNetns, type BpfLink } from '../../src/bpf/index.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { onCleanup } from '../lib/cleanup.js';
import { allow, CHAIN, deny, HostPlan, ICMP } from './host-policy-fixture.js';

const NS_A = `weir-hpa-${process.pid}`;
const NS_B = `weir-hpb-${process.pid}`;
const A = '198.18.200.1';
const B = '198.18.200.2';
const HEP = 11;
const PINGS = 3;
const ip = (...args: string[]) => execFileSync('ip', args);

let fs: PrivateBpffs;
let xdp: BpfObject;
let tc: BpfObject;
let plan: HostPlan;
let ifindexB = 0;
let tcLink: BpfLink | undefined;
const cleanups: Array<() => Promise<void> | void> = [];

before(() => {
  fs = mountPrivateBpffs('host-policy-meta');
  cleanups.push(fs.cleanup);
  for (const ns of [NS_A, NS_B]) {
    ip('netns', 'add', ns);
    cleanups.push(
      onCleanup(`delete netns ${ns}`, () => {
        ip('netns', 'del', ns);
      }),
    );
  }
  ip('-n', NS_A, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'b0', 'netns', NS_B);
  ip('-n', NS_A, 'addr', 'add', `${A}/24`, 'dev', 'a0');
  ip('-n', NS_B, 'addr', 'add', `${B}/24`, 'dev', 'b0');
  ip('-n', NS_A, 'link', 'set', 'a0', 'up');
  ip('-n', NS_B, 'link', 'set', 'b0', 'up');
  xdp = BpfObject.load(join(process.cwd(), 'build', 'bpf', 'xdp_prefilter.o'), { pinDir: fs.path });
  tc = BpfObject.load(join(process.cwd(), 'build', 'bpf', 'from_host.o'), { pinDir: fs.path, consts: { ct_track_all: 1 } });
  plan = new HostPlan(xdp);
  ifindexB = withNetns(NS_B, () => ifindexOf('b0'));
  tcLink = attachTc(tc.program('weir_from_host'), 'b0', 'ingress', { netns: NS_B }).link;
});

after(async () => {
  tcLink?.close();
  xdp?.close();
  tc?.close();
  for (const c of cleanups.reverse()) await c();
});

beforeEach(() => {
  plan.clear();
  resetCounters(xdp.map('weir_counters'));
});

/** pings B from A; returns how many replies came back */
const ping = () => {
  const r = spawnSync('ip', ['netns', 'exec', NS_A, 'ping', '-c', String(PINGS), '-i', '0.2', '-W', '1', B], { encoding: 'utf8' });
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? -1);
};
/** the counters of IP packets (ARP, counted not_ip, comes and goes with the neighbour cache) */
const counters = () => counterTotals(readCounters(xdp.map('weir_counters')).filter((r) => r.reason !== 'not_ip'));
const ctEntries = () => [...tc.map('weir_ct4_v2').keys()].length;

for (const mode of ['native', 'generic'] as const) {
  test(`XDP ${mode}: an untracked allow is walked once (XDP), from_host reads the metadata and tracks nothing`, () => {
    const link = attachXdp(xdp.program('weir_xdp_prefilter'), 'b0', { mode, netns: NS_B }).link;
    try {
      plan.iface(ifindexB, HEP);
      const [rule] = plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [allow({ protocol: ICMP, flags: 1 })]);
      assert.equal(ping(), PINGS);
      const before = ctEntries();
      assert.equal(plan.stats(rule!).packets, PINGS, 'one walk per packet: TC did not walk again');
      assert.deepEqual(counters(), {
        xdp: { host_untracked_allowed: PINGS },
        from_host: { host_untracked_allowed: PINGS },
      });
      assert.equal(before, 0, 'untracked: no conntrack entry');
    } finally {
      link.close();
    }
  });

  test(`XDP ${mode}: an untracked deny drops in XDP, TC never sees the packet`, () => {
    const link = attachXdp(xdp.program('weir_xdp_prefilter'), 'b0', { mode, netns: NS_B }).link;
    try {
      plan.iface(ifindexB, HEP);
      plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [deny({ protocol: ICMP, flags: 1 })]);
      assert.equal(ping(), 0);
      assert.deepEqual(counters(), { xdp: { host_untracked_denied: PINGS } });
    } finally {
      link.close();
    }
  });
}

test('no XDP (TC fallback): from_host walks the untracked chain itself', () => {
  plan.iface(ifindexB, HEP);
  const [rule] = plan.chain(HEP, CHAIN.WEIR_CHAIN_UNTRACKED_IN, [allow({ protocol: ICMP, flags: 1 })]);
  assert.equal(ping(), PINGS);
  assert.equal(plan.stats(rule!).packets, PINGS);
  assert.deepEqual(counters(), { from_host: { host_untracked_allowed: PINGS } });
});

test('NORMAL_IN without the ipcache: the FIB says the destination is this host; a default deny drops new flows, an allow passes', () => {
  plan.iface(ifindexB, HEP);
  const [icmp, end] = plan.chain(HEP, CHAIN.WEIR_CHAIN_NORMAL_IN, [allow({ protocol: ICMP, flags: 1, dst_set: 1 }), deny()]);
  assert.equal(ping(), 0, 'the echo requests meet the deny: B is not in set 1 yet');
  assert.equal(plan.stats(end!).packets, PINGS);
  plan.set(1, `${B}/32`);
  assert.equal(ping(), PINGS);
  // one echo flow (one identifier): its first request decides, the others meet its conntrack entry
  assert.equal(plan.stats(icmp!).packets, 1);
  const c = counters().from_host ?? {};
  assert.equal(c.host_policy_denied, PINGS);
  assert.equal(c.host_policy_allowed, 1);
  assert.equal(c.ct_tracked, PINGS - 1);
});
