// Issue 11, must-shows 1 and 2: two lab nodes run release 2e42a8d's weir, built in the test
// from the git history (scripts/build-release.sh). An external client streams through a
// NodePort on node1 and a pod streams through a ClusterIP on node2, both on the TC path
// (--connect-time-lb off), a line every 50 ms. MS1: each node's old daemon stops (SIGTERM)
// and this release starts on its state (conntrack v1 -> v2 converted): every line comes back,
// no gap over 1 s, new connections spread, the migrated count is the v1 entry count. MS2: the
// same back to 2e42a8d (this release writes the v1 layout on SIGTERM), then forward again
// with both layouts pinned: the attached programs decide which one is current.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { repoRoot } from '../lib/paths.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, service, WeirNode, type Flow, type FlowResult, type LogLine, type PortSpec } from '../lib/weir-node.js';

const RELEASE = '2e42a8d';
const VIP = '198.19.0.40';
const NP_PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }];
const CIP_PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];
const START_TIMEOUT_MS = 60_000;

const pinCount = (path: string) => {
  const m = BpfMap.openPinned(path);
  try {
    return m.count();
  } finally {
    m.close();
  }
};

/** Forward conntrack entries saddr -> daddr:dport in a pinned conntrack map of either layout. */
function forwardEntries(path: string, value: 'weir_ct4' | 'weir_ct4_v1', saddr: string, daddr: string, dport: number): number {
  const m = BpfMap.openPinned(path);
  try {
    const t =
      value === 'weir_ct4' ? typedMap(m, codecFor('weir_ct4_key'), codecFor('weir_ct4')) : typedMap(m, codecFor('weir_ct4_key'), codecFor('weir_ct4_v1'));
    let n = 0;
    for (const [k] of t.entries()) if (k.saddr === saddr && k.daddr === daddr && k.dport === dport) n++;
    return n;
  } finally {
    m.close();
  }
}
const hasForwardEntry = (...a: Parameters<typeof forwardEntries>) => forwardEntries(...a) > 0;

/**
 * Ends an until-stopped stream once it has carried 20 more lines after the event (so it spans
 * the event however slow the machine is), and checks it: every line back, one backend, no gap
 * over 1 s. stop() waits for the answers to every line sent.
 */
async function assertStream(name: string, flow: Flow): Promise<void> {
  await flow.waitReplies(flow.replies() + 20, 20_000);
  const r: FlowResult = await flow.stop();
  console.log(`${name}: sent=${r.sent} received=${r.received} maxGapMs=${r.maxGapMs} servers=${JSON.stringify(r.servers)}`);
  assert.equal(r.error, undefined, `${name}: ${r.error}`);
  assert.ok(r.sent > 20, `${name}: sent ${r.sent}`);
  assert.equal(r.received, r.sent, `${name}: every line comes back`);
  assert.equal(r.servers.length, 1, `${name}: one backend all along: ${JSON.stringify(r.servers)}`);
  assert.ok(r.maxGapMs < 1000, `${name}: longest gap ${r.maxGapMs} ms`);
}

describe(`upgrade from ${RELEASE} and rollback to it, under traffic`, () => {
  let lab: Lab;
  let nodes: LabNode[];
  let npBackends: Pod[];
  let cipBackends: Pod[];
  let podClient: Pod;
  let client: External;
  let weirs: WeirNode[];
  let oldDir: string;

  before(async () => {
    // the earlier release, from git history (cached under build/releases/)
    const build = join(repoRoot, 'scripts', 'build-release.sh');
    oldDir = execFileSync(build, [RELEASE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 900_000 }).trim();
    lab = await Lab.create({ name: 'upgrade' });
    nodes = [
      await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' }),
      await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' }),
    ];
    npBackends = [await lab.pod(nodes[0]!, 'np-a'), await lab.pod(nodes[0]!, 'np-b')];
    cipBackends = [await lab.pod(nodes[1]!, 'cip-a'), await lab.pod(nodes[1]!, 'cip-b')];
    podClient = await lab.pod(nodes[1]!, 'cli');
    client = await lab.external('client', { address: '198.18.0.100/24' });
    await Promise.all([...npBackends, ...cipBackends].map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    weirs = [];
    for (const node of nodes) {
      const w = await WeirNode.create(lab, node, { connectTimeLb: 'off', releaseDir: oldDir });
      w.writeManifest('svc.yaml', [
        service({ name: 'web', type: 'NodePort', clusterIP: '198.19.0.41', ports: NP_PORTS }),
        endpointSlice({ name: 'web-1', service: 'web', ports: NP_PORTS, endpoints: npBackends.map((b) => ({ ip: b.ip, node: 'node1' })) }),
        service({ name: 'api', clusterIP: VIP, ports: CIP_PORTS }),
        endpointSlice({ name: 'api-1', service: 'api', ports: CIP_PORTS, endpoints: cipBackends.map((b) => ({ ip: b.ip, node: 'node2' })) }),
      ]);
      weirs.push(w);
    }
    for (const w of weirs) await w.start(START_TIMEOUT_MS);
    // 2e42a8d's layout: the conntrack pin without a version
    assert.ok(existsSync(join(weirs[0]!.pinDir, 'weir_ct4')) && !existsSync(join(weirs[0]!.pinDir, 'weir_ct4_v2')));
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  /** Both streams, started now, sending a line every 50 ms until stopped (assertStream). */
  function streams() {
    return {
      nodePort: weirs[0]!.flow(client.ns, nodes[0]!.address, 30080, { seconds: 0, interval: 50 }),
      clusterIp: weirs[1]!.flow(podClient.ns, VIP, 80, { seconds: 0, interval: 50 }),
    };
  }

  async function assertSpread(): Promise<void> {
    const np = await weirs[0]!.spread(client.ns, nodes[0]!.address, 30080, { count: 40 });
    assert.equal(np.failures, 0, np.errors.join('; '));
    assert.deepEqual(Object.keys(np.servers).sort(), ['np-a', 'np-b'], JSON.stringify(np.servers));
    const cip = await weirs[1]!.spread(podClient.ns, VIP, 80, { count: 40 });
    assert.equal(cip.failures, 0, cip.errors.join('; '));
    assert.deepEqual(Object.keys(cip.servers).sort(), ['cip-a', 'cip-b'], JSON.stringify(cip.servers));
  }

  /** The stream's forward entry on each node: [pin dir, client address, frontend address, port]. */
  const streamKeys = () =>
    [
      [weirs[0]!.pinDir, client.address, nodes[0]!.address, 30080],
      [weirs[1]!.pinDir, podClient.ip, VIP, 80],
    ] as const;

  test(`MS1: upgrade ${RELEASE} -> this release: every line comes back, no gap over 1 s, the migrated count is the v1 count`, async () => {
    await assertSpread();
    const s = streams();
    await sleep(1000);
    const migrated: LogLine[] = [];
    for (const [i, w] of weirs.entries()) {
      const [pinDir, saddr, daddr, dport] = streamKeys()[i]!;
      const exit = await w.terminate();
      assert.equal(exit.code, 0, `old weir exit ${JSON.stringify(exit)}`);
      const v1 = join(pinDir, 'weir_ct4');
      const v1Count = pinCount(v1);
      assert.ok(hasForwardEntry(v1, 'weir_ct4_v1', saddr, daddr, dport), 'the stream is in the v1 conntrack');
      w.configure({ releaseDir: undefined, metricsAddress: '127.0.0.1:9745' });
      const ready = await w.start(START_TIMEOUT_MS);
      const m = w.events('migrate');
      const metrics = (await w.http('/metrics')).body;
      assert.match(metrics, new RegExp(`^weir_map_migrated_entries_total\\{map="weir_ct4",from="1",to="2"\\} ${v1Count}$`, 'm'));
      console.log(`node${i + 1}: v1 entries ${v1Count}; ${JSON.stringify(m)}; ready ${JSON.stringify(ready)}`);
      assert.equal(m.length, 1);
      assert.deepEqual([m[0]!.map, m[0]!.from, m[0]!.to], ['weir_ct4', '1', '2']);
      assert.equal(Number(m[0]!.entries) + Number(m[0]!.delta), v1Count, 'every v1 entry migrated');
      assert.equal(m[0]!.dropped, '0');
      assert.equal(ready.migrated, `weir_ct4:v1->v2:${v1Count}`);
      // rows 2e42a8d did not have (the IPv6 programs; host policy's XDP prefilter and to_host) get links of their
      // own; every other link is updated in place
      const newRows = readdirSync(join(pinDir, 'links')).filter((n) => /-from_(pod|host)6$|^cgroup-\w+6$|-prefilter$|-to_host$/.test(n)).length;
      assert.ok(newRows > 0, 'the IPv6 rows are attached');
      assert.equal(ready.attached, String(newRows), 'the pinned links were updated in place, only the new rows created');
      assert.ok(hasForwardEntry(join(pinDir, 'weir_ct4_v2'), 'weir_ct4', saddr, daddr, dport), 'the stream is in the v2 conntrack');
      assert.ok(!existsSync(v1), 'the v1 pin is removed after the swap');
      migrated.push(m[0]!);
    }
    await assertStream('NodePort stream', s.nodePort);
    await assertStream('ClusterIP stream', s.clusterIp);
    await assertSpread();
  });

  test(`MS2: rollback this release -> ${RELEASE}, then forward again: every line comes back, no gap over 1 s`, async () => {
    const s = streams();
    const windowStreams: { name: string; flow: Flow }[] = [];
    const windowStream = (i: number) =>
      i === 0
        ? { name: 'NodePort window stream', flow: weirs[0]!.flow(client.ns, nodes[0]!.address, 30080, { seconds: 0, interval: 50 }) }
        : { name: 'ClusterIP window stream', flow: weirs[1]!.flow(podClient.ns, VIP, 80, { seconds: 0, interval: 50 }) };
    await sleep(1000);
    for (const [i, w] of weirs.entries()) {
      const [pinDir, saddr, daddr, dport] = streamKeys()[i]!;
      const exit = await w.terminate();
      assert.equal(exit.code, 0, `weir exit ${JSON.stringify(exit)}`);
      const h = w.events('handoff');
      const v2Count = pinCount(join(pinDir, 'weir_ct4_v2'));
      console.log(`node${i + 1}: v2 entries ${v2Count}; ${JSON.stringify(h)}`);
      assert.equal(h.length, 1);
      assert.deepEqual([h[0]!.map, h[0]!.from, h[0]!.to], ['weir_ct4', '2', '1']);
      // v1 has no tracked-only entries (conntrack of every flow, for policy): those are skipped
      assert.equal(Number(h[0]!.entries) + Number(h[0]!.skipped), v2Count, 'every NAT entry handed off, the tracked-only ones skipped');
      assert.ok(Number(h[0]!.entries) > 0, 'NAT entries were handed off');
      assert.ok(hasForwardEntry(join(pinDir, 'weir_ct4'), 'weir_ct4_v1', saddr, daddr, dport), 'the stream is in the v1 hand-off');
      // the window: a connection this release's programs (still attached) create after the
      // hand-off copy, before 2e42a8d swaps the links; the programs mirror it into weir_ct4
      const handedOff = forwardEntries(join(pinDir, 'weir_ct4'), 'weir_ct4_v1', saddr, daddr, dport);
      const ws = windowStream(i);
      await sleep(500);
      const mirrored = forwardEntries(join(pinDir, 'weir_ct4'), 'weir_ct4_v1', saddr, daddr, dport);
      assert.equal(mirrored, handedOff + 1, 'the window stream was mirrored into the v1 hand-off');
      windowStreams.push(ws);
      w.configure({ releaseDir: oldDir, metricsAddress: 'off' });
      const ready = await w.start(START_TIMEOUT_MS);
      console.log(`node${i + 1} ${RELEASE} ready ${JSON.stringify(ready)}`);
      assert.equal(ready.attached, '0', `${RELEASE} updated the pinned links in place`);
    }
    for (const ws of windowStreams) await assertStream(ws.name, ws.flow);
    await assertStream('NodePort stream (rollback)', s.nodePort);
    await assertStream('ClusterIP stream (rollback)', s.clusterIp);
    await assertSpread();

    // forward again: weir_ct4 (v1, used by 2e42a8d's attached programs) and a stale
    // weir_ct4_v2 are both pinned; the attached programs say v1 is current
    const again = streams();
    await sleep(1000);
    for (const [i, w] of weirs.entries()) {
      const pinDir = streamKeys()[i]![0];
      await w.terminate();
      const v1Count = pinCount(join(pinDir, 'weir_ct4'));
      assert.ok(existsSync(join(pinDir, 'weir_ct4_v2')), 'the v2 pin of the earlier run is still there');
      const before = BpfMap.openPinned(join(pinDir, 'weir_ct4_handoff'));
      assert.ok(before.lookup(Buffer.alloc(4)), 'the hand-off slot is still set from the rollback');
      before.close();
      w.configure({ releaseDir: undefined });
      await w.start(START_TIMEOUT_MS);
      const notes = w.events('pinned-state').map((l) => `${l.action}:${l.pin}`);
      const m = w.events('migrate');
      console.log(`node${i + 1} re-upgrade: v1 entries ${v1Count}; notes ${notes.join(',')}; ${JSON.stringify(m)}`);
      assert.deepEqual(notes.sort(), ['older-found:weir_ct4', 'stale-removed:weir_ct4_v2']);
      const slots = BpfMap.openPinned(join(pinDir, 'weir_ct4_handoff'));
      assert.equal(slots.lookup(Buffer.alloc(4)), undefined, 'the hand-off slot is emptied: new flows go to v2 only');
      slots.close();
      assert.equal(Number(m[0]!.entries) + Number(m[0]!.delta), v1Count);
    }
    await assertStream('NodePort stream (re-upgrade)', again.nodePort);
    await assertStream('ClusterIP stream (re-upgrade)', again.clusterIp);
  });
});
