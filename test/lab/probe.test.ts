// The counting probe in the lab, with real tools: attached at TC ingress of a pod's host
// veth it counts exactly the pings a pod sent and exactly the packets and bytes the
// kernel's own interface statistics saw for an iperf3 stream; its connect4 program on a
// child cgroup sees connect()s made inside that cgroup and none made outside; and
// replacing it (TCX link update, cls_bpf replace on the same handle) while a ping stream
// flows loses nothing: every packet is counted by exactly one of the two versions.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { attachCgroup, attachTc, BpfLink, BpfObject, type TcAttachment } from '../../src/bpf/index.js';
import { counterSlot, counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type Cgroup, type LabNode, type Pod } from '../lib/lab.js';
import { bpfObject } from '../lib/paths.js';
import { enums } from '../../src/bpf/abi.gen.js';

const HOOK_PROBE = enums.weir_hook.WEIR_HOOK_PROBE;
const HOOK_ALT = enums.weir_hook.WEIR_HOOK_PROBE_ALT;

/** The kernel's rx statistics of an interface (what the probe at its TC ingress must match). */
async function rxStats(node: LabNode, ifname: string): Promise<{ packets: number; bytes: number }> {
  const [link] = await node.ns.ipJson<Array<{ stats64: { rx: { packets: number; bytes: number } } }>>('-s', 'link', 'show', 'dev', ifname);
  return { packets: link!.stats64.rx.packets, bytes: link!.stats64.rx.bytes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('probe in the lab', () => {
  let lab: Lab;
  let node: LabNode;
  let a: Pod;
  let b: Pod;
  let probe: BpfObject; // counts as hook "probe"
  let alt: BpfObject; // the same object counting as "probe_alt": the "new version"

  before(async () => {
    lab = await Lab.create({ name: 'probe' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    a = await lab.pod(node, 'pod-a');
    b = await lab.pod(node, 'pod-b');
    probe = BpfObject.load(bpfObject('probe'), { pinDir: lab.bpffs, consts: { probe_hook: HOOK_PROBE } });
    alt = BpfObject.load(bpfObject('probe'), { pinDir: lab.bpffs, consts: { probe_hook: HOOK_ALT } });
  });
  after(async () => {
    probe?.close();
    alt?.close();
    await runCleanups();
    await lab?.destroy();
  });

  test('ping: the probe at the pod veth counts every echo request the pod sent, no more', async () => {
    const counters = probe.map('weir_counters');
    const att = attachTc(probe.program('weir_probe'), a.hostIfname, 'ingress', { netns: node.ns.path });
    try {
      resetCounters(counters);
      const r = await a.ns.ping(b.ip, { count: 40, interval: 0.01 });
      assert.equal(r.transmitted, 40);
      assert.equal(r.received, 40);
      assert.equal(counterTotals(readCounters(counters)).probe?.parsed_icmp, 40);
    } finally {
      att.detach();
    }
  });

  test('iperf3 TCP: packets and bytes counted equal the interface rx statistics', async () => {
    const counters = probe.map('weir_counters');
    const server = await b.ns.iperfServer();
    const att = attachTc(probe.program('weir_probe'), a.hostIfname, 'ingress', { netns: node.ns.path });
    try {
      resetCounters(counters);
      const before = await rxStats(node, a.hostIfname);
      const r = await a.ns.iperfClient(b.ip, { seconds: 1 });
      // the connection's last segments may still be on their way: read both sides until they
      // agree and the payload iperf3 sent has all crossed (or 5 s pass, and the assertions
      // below say by how much they differ). Agreeing alone is not enough: on a loaded machine
      // both sides can agree while the last segments are still queued.
      const sentBytes = Number(r.raw.end.sum_sent.bytes);
      let after = await rxStats(node, a.hostIfname);
      let rows = readCounters(counters).filter((row) => row.hook === 'probe');
      const sum = (k: 'packets' | 'bytes') => rows.reduce((s, row) => s + Number(row[k]), 0);
      const tcpBytes = () => Number(rows.find((row) => row.reason === 'parsed_tcp')?.bytes ?? 0);
      for (const deadline = Date.now() + 5000; (sum('packets') !== after.packets - before.packets || tcpBytes() <= sentBytes) && Date.now() < deadline;) {
        await sleep(20);
        after = await rxStats(node, a.hostIfname);
        rows = readCounters(counters).filter((row) => row.hook === 'probe');
      }
      const packets = sum('packets');
      const bytes = sum('bytes');
      const tcp = rows.find((row) => row.reason === 'parsed_tcp');
      assert.ok(sentBytes > 1e6, `iperf3 sent ${sentBytes} bytes`);
      assert.equal(packets, after.packets - before.packets, 'packets: probe vs rx_packets');
      assert.equal(bytes, after.bytes - before.bytes, 'bytes: probe vs rx_bytes');
      // every payload byte iperf3 sent crossed the probe inside a TCP packet
      assert.ok(tcp && Number(tcp.bytes) > sentBytes, `TCP bytes ${tcp?.bytes} cover the ${sentBytes} sent`);
      assert.ok(Number(tcp.bytes) < sentBytes * 1.1 + 1e5, 'and not much more than headers on top');
    } finally {
      att.detach();
      await server.stop();
    }
  });

  describe('cgroup connect4', () => {
    let inside: Cgroup;
    let outside: Cgroup;
    let link: BpfLink;
    const connects = () => Number(readCounters(probe.map('weir_counters')).find((r) => r.hook === 'probe' && r.reason === 'sock_connect4')?.packets ?? 0n);
    // a UDP connect() sends nothing, so no network is needed; bash's /dev/udp connects
    const connectFrom = (cg: Cgroup, port: number) =>
      cg.exec('bash', ['-c', `for i in 1 2 3 4 5; do exec 3<>/dev/udp/198.18.7.7/${port}; exec 3>&-; done`], { netnsPath: node.ns.path });

    before(async () => {
      inside = await lab.cgroup('inside');
      outside = await lab.cgroup('outside');
      link = attachCgroup(probe.program('weir_probe_connect4'), inside.path);
    });
    after(() => {
      link?.detach();
      link?.close();
    });

    test('sees the connect() of a process in the cgroup', async () => {
      resetCounters(probe.map('weir_counters'));
      await connectFrom(inside, 4242);
      assert.equal(connects(), 5);
      const last = probe.map('weir_probe_last_connect').lookup(Buffer.alloc(4))!;
      assert.equal([...last.subarray(0, 4)].join('.'), '198.18.7.7');
      assert.equal(last.readUInt16BE(4), 4242);
    });

    test('does not see a connect() made outside the cgroup', async () => {
      resetCounters(probe.map('weir_counters'));
      await connectFrom(outside, 4343);
      assert.equal(connects(), 0);
      const last = probe.map('weir_probe_last_connect').lookup(Buffer.alloc(4))!;
      assert.notEqual(last.readUInt16BE(4), 4343, 'the last connect seen is still the one from inside');
      // and the program is still there: one more from inside is seen
      await connectFrom(inside, 4444);
      assert.equal(connects(), 5);
    });
  });

  /** Ping through an attachment while swapping the two versions back and forth. */
  async function swapUnderTraffic(att: TcAttachment, swap: (to: BpfObject) => void) {
    const counters = probe.map('weir_counters');
    resetCounters(counters);
    const COUNT = 600;
    const pinging = a.ns.ping(b.ip, { count: COUNT, interval: 0.005, wait: 2 });
    let swaps = 0;
    let done = false;
    void pinging.finally(() => (done = true));
    while (!done) {
      swap(swaps % 2 === 0 ? alt : probe);
      swaps++;
      await sleep(15);
    }
    const r = await pinging;
    att.detach();
    const totals = counterTotals(readCounters(counters));
    const first = totals.probe?.parsed_icmp ?? 0;
    const second = totals.probe_alt?.parsed_icmp ?? 0;
    assert.ok(swaps >= 20, `swapped ${swaps} times while packets flowed`);
    assert.equal(r.transmitted, COUNT);
    assert.equal(r.received, COUNT, 'no echo request lost');
    assert.ok(first > 0 && second > 0, `both versions handled packets (${first} + ${second})`);
    assert.equal(first + second, COUNT, 'every packet counted by exactly one version');
    // the slots are the ones the C side computes
    assert.equal(counterSlot('probe_alt', 'parsed_icmp'), HOOK_ALT * enums.weir_reason.WEIR_REASON__MAX + enums.weir_reason.WEIR_REASON_PARSED_ICMP);
  }

  test('TCX link update while packets flow loses none', async () => {
    const att = attachTc(probe.program('weir_probe'), a.hostIfname, 'ingress', { mode: 'tcx', netns: node.ns.path });
    assert.equal(att.mode, 'tcx');
    await swapUnderTraffic(att, (to) => att.replace(to.program('weir_probe')));
  });

  test('a pinned TCX link reopened (as a restarted daemon does) and updated loses none', async () => {
    const att = attachTc(probe.program('weir_probe'), a.hostIfname, 'ingress', { mode: 'tcx', netns: node.ns.path });
    const pin = `${lab.bpffs}/probe_link`;
    att.pin(pin);
    att.link!.close();
    const reopened = BpfLink.openPinned(pin);
    await swapUnderTraffic({ ...att, detach: () => (reopened.detach(), reopened.unpin(), reopened.close()) }, (to) =>
      reopened.update(to.program('weir_probe')),
    );
  });

  test('cls_bpf replace on the same handle and priority while packets flow loses none', async () => {
    const att = attachTc(probe.program('weir_probe'), a.hostIfname, 'ingress', { mode: 'cls_bpf', handle: 1, priority: 1, netns: node.ns.path });
    assert.equal(att.mode, 'cls_bpf');
    await swapUnderTraffic(att, (to) => att.replace(to.program('weir_probe')));
  });
});
