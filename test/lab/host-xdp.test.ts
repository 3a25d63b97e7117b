// Issue 17, must-show 4, with real packets: a doNotTrack GlobalNetworkPolicy enforced in XDP.
// Two lab nodes, `weir daemon` on each (default flags: --xdp-mode auto, native XDP on a veth).
// node1 has a second host interface, flood0, a veth pair whose other end (fl0) is in a flooder
// namespace: the flooder (test/fixtures/native/flood.c: AF_PACKET, PACKET_QDISC_BYPASS,
// sendmmsg) sends minimum-size UDP frames from 198.18.9.2, a denied source net, straight into
// node1's XDP. The policy (selector: node1's hostname; doNotTrack, applyOnForward) denies
// 198.18.9.0/24 and allows client A (on the underlay, in a cgroup of its own) to TCP 7000 on
// node1, both ways (untracked traffic needs its replies allowed too). While the flood runs:
//   - every frame that reached flood0's XDP was dropped by the Deny rule: the rule's counter
//     (weir_host_rule_stats) and host_untracked_denied (XDP hook) equal fl0's tx counter (a veth
//     counts a frame its peer's XDP took as sent; frames the full peer ring refused are dropped
//     ones, and the sender's own count is their sum);
//   - A's long-lived TCP connection keeps answering and its new connections all succeed;
//   - `weir ct list` holds no entry for A's untracked port 7000, and does hold one for a tracked
//     connection of A's to 7001 (so the listing would show one).
// Then the TC fallback: node1's daemon restarted with --xdp-mode off detaches XDP, and the same
// policy drops a flood at TC ingress (from_host), every frame counted once, there.
// Printed: the offered rate (the sender's count over its time), the drops, the connections.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { applyHostPolicy, connections, globalNetworkPolicy, inChain, linkStats, rulePackets, waitPlan, xdpMode, type Client } from '../lib/host-policy-lab.js';
import { Lab, type Cgroup, type External, type LabNode, type Netns } from '../lib/lab.js';
import { repoRoot } from '../lib/paths.js';
import { sleep } from '../lib/proc.js';
import { node, WeirNode } from '../lib/weir-node.js';

const FLOOD = join(repoRoot, 'build', 'test-native', 'flood');
/** about 2 s at 1.5 Mpps: long enough for client A's connections to run inside it */
const FLOOD_COUNT = 3_000_000;
/** the TC fallback is slower per frame */
const TC_FLOOD_COUNT = 1_000_000;
const FLOOD_NET = '198.18.9.0/24';
const FLOOD_SRC = '198.18.9.2';
const FLOOD_NODE_ADDRESS = '198.18.9.1';
const UNTRACKED_PORT = 7000;
const TRACKED_PORT = 7001;
const POLICY = 'xdp-guard';

interface FloodResult {
  sent: number;
  seconds: number;
  pps: number;
  /** sendmmsg calls the driver refused (retried) */
  refused: number;
}

type Ct = { protocol: string; source: string; destination: string; flags: string[] };

describe('doNotTrack in XDP: a flood from a denied source is dropped before the stack; an allowed client keeps working, untracked', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let a: External;
  let flooder: Netns;
  let floodCgroup: Cgroup;
  let weir1: WeirNode;
  let weir2: WeirNode;
  const clientA = (): Client => ({ ns: a.ns, ...(a.cgroup ? { cgroup: a.cgroup } : {}) });

  before(async () => {
    lab = await Lab.create({ name: 'host-xdp' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
    await lab.routePodSubnets();
    a = await lab.external('client-a', { address: '198.18.0.101/24', cgroup: true });
    // the flooder: no IPv6 (no router solicitations or MLD reports on fl0), no address (it
    // writes whole frames): nothing but the flood crosses fl0
    flooder = await lab.netns('flooder');
    await flooder.sysctl('net.ipv6.conf.all.disable_ipv6', 1);
    await flooder.sysctl('net.ipv6.conf.default.disable_ipv6', 1);
    await lab.veth(node1.ns, 'flood0', flooder, 'fl0');
    await node1.ns.addAddr('flood0', `${FLOOD_NODE_ADDRESS}/24`);
    floodCgroup = await lab.cgroup('flooder');
    for (const port of [UNTRACKED_PORT, TRACKED_PORT]) await node1.ns.echoServer({ name: `node1-${port}`, port, tcp: true });

    const cluster = [
      node({ name: 'node1', internalIP: node1.address, podCIDRs: [node1.podSubnet!] }),
      node({ name: 'node2', internalIP: node2.address, podCIDRs: [node2.podSubnet!] }),
    ];
    weir1 = await WeirNode.create(lab, node1);
    weir2 = await WeirNode.create(lab, node2);
    for (const w of [weir1, weir2]) w.writeManifest('cluster.yaml', cluster);
    await Promise.all([weir1.start(), weir2.start()]);
    const ready = weir1.events('ready')[0]!;
    assert.match(ready.hostInterfaces ?? '', /flood0/, `flood0 is one of node1's host interfaces: ${JSON.stringify(ready)}`);
    const policy = globalNetworkPolicy(POLICY, {
      selector: "kubernetes.io/hostname == 'node1'",
      doNotTrack: true,
      applyOnForward: true,
      types: ['Ingress', 'Egress'],
      ingress: [
        { action: 'Deny', source: { nets: [FLOOD_NET] } },
        { action: 'Allow', protocol: 'TCP', source: { nets: [`${a.address}/32`] }, destination: { ports: [UNTRACKED_PORT] } },
      ],
      // untracked: the replies are allowed by a rule of their own
      egress: [{ action: 'Allow', protocol: 'TCP', source: { ports: [UNTRACKED_PORT] }, destination: { nets: [`${a.address}/32`] } }],
    });
    await applyHostPolicy([weir1, weir2], 'xdp-guard.yaml', [policy], (p, w) => inChain(p, POLICY, 'untrackedIn') === (w === weir1), POLICY);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('the prefilter runs in native XDP on both host interfaces of node1', async () => {
    const modes = { eth0: await xdpMode(node1.ns, 'eth0'), flood0: await xdpMode(node1.ns, 'flood0') };
    console.log(`# node1 XDP: ${JSON.stringify(modes)}`);
    assert.deepEqual(modes, { eth0: 'native', flood0: 'native' });
  });

  /**
   * Floods `count` frames from the flooder into flood0 and returns the figures: the sender's
   * own, what reached flood0 (fl0's tx counter) and what the full veth ring refused, the Deny
   * rule's packets and host_untracked_denied under `hook`. `meanwhile` runs once the flood is
   * under way (fl0 counting); `overlapped`: it ended before the flood did.
   */
  async function floodThrough<T>(count: number, hook: string, meanwhile: () => Promise<T>) {
    const rule0 = rulePackets(weir1.pinDir, POLICY, 0, 'untrackedIn');
    const c0 = weir1.counters();
    const [fl0, flood0] = [await linkStats(flooder, 'fl0'), await linkStats(node1.ns, 'flood0')];
    const mac = await node1.ns.mac('flood0');
    const run = flooder.exec(FLOOD, ['fl0', mac, FLOOD_SRC, FLOOD_NODE_ADDRESS, '9', String(count)], { timeoutMs: 120_000, cgroup: floodCgroup });
    let done = false;
    void run.then(
      () => (done = true),
      () => (done = true),
    );
    while (!done && (await linkStats(flooder, 'fl0')).txPackets - fl0.txPackets < 10_000) await sleep(5);
    const during = await meanwhile();
    const overlapped = !done;
    const flood = JSON.parse((await run).stdout) as FloodResult;
    await sleep(300); // the last frames leave the peer's ring
    const [fl1, flood1] = [await linkStats(flooder, 'fl0'), await linkStats(node1.ns, 'flood0')];
    const rule1 = rulePackets(weir1.pinDir, POLICY, 0, 'untrackedIn');
    const c1 = weir1.counters();
    const figures = {
      flood,
      delivered: fl1.txPackets - fl0.txPackets,
      // refused by the full peer ring (or backlog): the sender's tx_dropped (on some kernels the peer's rx_dropped)
      refused: fl1.txDropped - fl0.txDropped + (flood1.rxDropped - flood0.rxDropped),
      dropped: rule1 - rule0,
      denied: (c1[hook]?.host_untracked_denied ?? 0) - (c0[hook]?.host_untracked_denied ?? 0),
      /** every hook's host_untracked_denied: the frames were counted once, where they were dropped */
      deniedAnywhere:
        Object.values(c1).reduce((n, r) => n + (r.host_untracked_denied ?? 0), 0) - Object.values(c0).reduce((n, r) => n + (r.host_untracked_denied ?? 0), 0),
    };
    console.log(
      `# flood (${hook}): ${flood.sent} frames sent in ${flood.seconds.toFixed(3)} s = ${(flood.pps / 1e6).toFixed(2)} Mpps offered; ` +
        `reached flood0 ${figures.delivered}, refused by the full veth ring ${figures.refused}; ` +
        `dropped by ${POLICY} rule 0: ${figures.dropped}; host_untracked_denied (${hook}): ${figures.denied}`,
    );
    return { ...figures, during, overlapped };
  }

  test('MS4: a flood from the denied net is dropped in XDP (rule counter = frames that reached XDP), A keeps working, untracked', async () => {
    const flow = weir1.flow(a.ns, node1.address, UNTRACKED_PORT, { seconds: 0, interval: 20, ...(a.cgroup ? { cgroup: a.cgroup } : {}) });
    await flow.waitReplies(10);
    let replies0 = 0;
    const r = await floodThrough(FLOOD_COUNT, 'xdp', () => {
      replies0 = flow.replies();
      return connections(clientA(), node1.address, UNTRACKED_PORT, 20, 3000);
    });
    const repliesDuring = flow.replies() - replies0;
    await flow.waitReplies(flow.replies() + 10);
    const f = await flow.stop();
    console.log(
      `# client A: ${r.during.ok}/20 new connections (${r.overlapped ? 'all made during the flood' : 'the flood ended before the last'}), ` +
        `${repliesDuring} replies on its open connection from then on; flow ${JSON.stringify(f)}`,
    );
    assert.equal(r.flood.sent, FLOOD_COUNT, 'the flooder sent every frame');
    assert.equal(r.delivered + r.refused, r.flood.sent, "fl0's counters account for every frame sent");
    assert.equal(r.dropped, r.delivered, "the Deny rule's counter equals the frames that reached XDP");
    assert.equal(r.denied, r.dropped, 'host_untracked_denied under the XDP hook');
    assert.equal(r.deniedAnywhere, r.denied, 'and nowhere else: TC never saw them');
    assert.equal(r.during.ok, 20, `A's new connections during the flood: ${r.during.errors.join('; ')}`);
    assert.ok(repliesDuring > 0, "A's open connection answered during the flood");
    assert.equal(f.error, undefined);
  });

  test("MS4: no conntrack entry for A's untracked flow; a tracked one to another port has its entry", async () => {
    const untracked = weir1.flow(a.ns, node1.address, UNTRACKED_PORT, { seconds: 0, interval: 50, ...(a.cgroup ? { cgroup: a.cgroup } : {}) });
    const tracked = weir1.flow(a.ns, node1.address, TRACKED_PORT, { seconds: 0, interval: 50, ...(a.cgroup ? { cgroup: a.cgroup } : {}) });
    try {
      await untracked.waitReplies(5);
      await tracked.waitReplies(5);
      const c0 = weir1.counter('xdp', 'host_untracked_allowed');
      await untracked.waitReplies(untracked.replies() + 5);
      const allowedInXdp = weir1.counter('xdp', 'host_untracked_allowed') - c0;
      const ctUntracked = weir1.cli<Ct[]>('ct', 'list', '--port', String(UNTRACKED_PORT));
      const ctTracked = weir1.cli<Ct[]>('ct', 'list', '--port', String(TRACKED_PORT));
      console.log(
        `# ct entries: port ${UNTRACKED_PORT} ${ctUntracked.length}, port ${TRACKED_PORT} ${ctTracked.length}; host_untracked_allowed (xdp) +${allowedInXdp}`,
      );
      assert.deepEqual(ctUntracked, [], 'the untracked flow has no conntrack entry');
      assert.ok(
        ctTracked.some((e) => e.source.startsWith(`${a.address}:`) || e.destination.startsWith(`${a.address}:`)),
        `the tracked flow has one: ${JSON.stringify(ctTracked)}`,
      );
      assert.ok(allowedInXdp >= 5, `the untracked flow's packets were allowed in XDP: ${allowedInXdp}`);
    } finally {
      await Promise.all([untracked.stop(), tracked.stop()]);
    }
  });

  test('TC fallback (--xdp-mode off, restarted): the same policy drops the flood at TC ingress, counted under from_host', async () => {
    await weir1.terminate();
    weir1.configure({ extraArgs: ['--xdp-mode', 'off'] });
    await weir1.start();
    await waitPlan([weir1], (p) => inChain(p, POLICY, 'untrackedIn'), `${POLICY} after the restart`);
    const modes = { eth0: await xdpMode(node1.ns, 'eth0'), flood0: await xdpMode(node1.ns, 'flood0') };
    console.log(`# node1 XDP with --xdp-mode off: ${JSON.stringify(modes)}`);
    assert.deepEqual(modes, { eth0: undefined, flood0: undefined }, 'no XDP program attached');
    const r = await floodThrough(TC_FLOOD_COUNT, 'from_host', () => connections(clientA(), node1.address, UNTRACKED_PORT, 5, 3000));
    assert.equal(r.delivered + r.refused, r.flood.sent, "fl0's counters account for every frame sent");
    assert.equal(r.dropped, r.delivered, "the Deny rule's counter equals the frames that reached TC");
    assert.equal(r.denied, r.dropped, 'host_untracked_denied under from_host');
    assert.equal(r.deniedAnywhere, r.denied, 'and nowhere else (no XDP)');
    assert.equal(r.during.ok, 5, r.during.errors.join('; '));
  });
});
