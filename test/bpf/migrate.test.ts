// Issue 11, must-show 3: the map migration machinery on its own (src/dataplane/map-upgrade.ts).
// Flows are made by real programs through BPF_PROG_TEST_RUN. (a) A test-only layout bump:
// a fixture from_pod pins weir_ct4_v2 with 4,096 entries; the real objects declare 262,144,
// so the loader moves the pin aside, converts, and after "the swap" copies what the old
// program created meanwhile (delta). (b) An older version's pin (weir_ct4, layout v1 of
// 2e42a8d) is converted by the table's converter. Established flows keep their NAT after.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BpfMap, BpfObject, type WeirCt4Key } from '../../src/bpf/index.js';
import { loadDataplane, mapOf, type LoadedDataplane } from '../../src/dataplane/loader.js';
import { MAP_ABI, MAP_TYPE } from '../../src/dataplane/map-abi.js';
import { handOff } from '../../src/dataplane/map-upgrade.js';
import { MAP_SIZE_SETTINGS } from '../../src/dataplane/map-sizes.js';
import { runCleanups } from '../lib/cleanup.js';
import { addService, CLIENT, FRONTEND, openFlows, pod } from '../lib/service-flows.js';
import { mountPrivateBpffs } from '../lib/bpffs.js';
import { decodePacket } from '../lib/packet.js';

const FIXTURE = join(process.cwd(), 'build', 'test-bpf', 'from_pod_ct4096.o');

/** Every flow keeps its NAT through the new programs: data to its backend, replies from the frontend. */
function assertEstablished(dp: LoadedDataplane, flows: Map<number, string>): void {
  const prog = dp.objects.from_pod.program('weir_from_pod');
  for (const [sport, backend] of flows) {
    const fwd = decodePacket(
      prog.testRun({
        data: pod(CLIENT, FRONTEND)
          .tcp({ sport, dport: 80, flags: ['ack'] })
          .payload('x')
          .build(),
      }).data,
    );
    assert.equal(fwd.ipv4!.dst, backend, `flow ${sport}: same backend after the migration`);
    const rep = decodePacket(
      prog.testRun({
        data: pod(backend, CLIENT)
          .tcp({ sport: 8080, dport: sport, flags: ['ack'] })
          .payload('y')
          .build(),
      }).data,
    );
    assert.deepEqual([rep.ipv4!.src, rep.tcp!.sport], [FRONTEND, 80], `flow ${sport}: reply reverse-NATed`);
  }
}

const ctCount = (m: BpfMap) => m.count();
const pinCount = (path: string) => {
  const m = BpfMap.openPinned(path);
  try {
    return m.count();
  } finally {
    m.close();
  }
};

describe('map migration (test-only layout bumps)', () => {
  after(runCleanups);

  test('MS3a: weir_ct4_v2 pinned with another max_entries: moved aside, flows copied, delta after the swap, old pin removed', () => {
    const fs = mountPrivateBpffs('migrate-a');
    const pinDir = join(fs.path, 'weir', 't');
    // the "old release": the fixture object pins the small map and makes 40 flows
    mkdirSync(pinDir, { recursive: true });
    const old = BpfObject.load(FIXTURE, { pinDir });
    addService(old);
    const flows = openFlows(old, 20000, 40);
    const before = ctCount(old.map('weir_ct4_v2'));
    assert.equal(old.map('weir_ct4_v2').maxEntries, 4096);
    assert.equal(before, 80, 'two entries per flow');

    const dp = loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off' });
    try {
      assert.deepEqual(
        dp.upgrade.notes.map((n) => [n.action, n.pin]),
        [['moved-aside', 'weir_ct4_v2']],
      );
      const ct = mapOf(dp.objects, 'weir_ct4_v2');
      assert.equal(ct.maxEntries, MAP_SIZE_SETTINGS.ct.default, 'the map this release declares');
      assert.equal(ctCount(ct), before, 'first pass: every entry');
      // the old program is still attached somewhere until the swap: it makes 5 more flows
      for (const [k, v] of openFlows(old, 30000, 5)) flows.set(k, v);
      const reports = dp.upgrade.finish((n) => mapOf(dp.objects, n));
      console.log(`migrate: ${JSON.stringify(reports)}`);
      assert.deepEqual(
        reports.map((r) => [r.map, r.from, r.to, r.entries, r.delta, r.dropped]),
        [['weir_ct4', 2, 2, 80, 10, 0]],
      );
      assert.equal(ctCount(ct), 90);
      assert.ok(!readdirSync(pinDir).some((n) => n.includes('migrating')), 'the moved-aside pin is gone');
      assertEstablished(dp, flows);
    } finally {
      dp.close();
      old.close();
    }
  });

  test('MS3b: an older layout pin (weir_ct4, v1) is converted by the table converter; the v1 pin goes after finish', () => {
    const fs = mountPrivateBpffs('migrate-b');
    const pinDir = join(fs.path, 'weir', 't');
    // flows made by the real programs, then written in the v1 layout as 2e42a8d pinned it
    const first = loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off' });
    addService(first.objects.from_pod);
    const flows = openFlows(first.objects.from_pod, 21000, 25);
    const row = MAP_ABI.find((r) => r.base === 'weir_ct4')!;
    const v1 = row.older[0]!;
    const { type, ...sizes } = v1.spec;
    const v1map = BpfMap.create({ typeId: MAP_TYPE[type], ...sizes, name: 'weir_ct4' });
    for (const [k, v] of mapOf(first.objects, 'weir_ct4_v2').entries()) v1map.update(k, v1.down(v)!);
    v1map.pin(join(pinDir, 'weir_ct4'));
    v1map.close();
    first.close();
    // the v2 pin did not exist in 2e42a8d
    BpfMap.openPinned(join(pinDir, 'weir_ct4_v2')).unpin();

    const dp = loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off' });
    try {
      assert.deepEqual(
        dp.upgrade.notes.map((n) => [n.action, n.pin]),
        [['older-found', 'weir_ct4']],
      );
      const reports = dp.upgrade.finish((n) => mapOf(dp.objects, n));
      console.log(`migrate: ${JSON.stringify(reports)}`);
      assert.deepEqual(
        reports.map((r) => [r.map, r.from, r.to, r.entries, r.delta]),
        [['weir_ct4', 1, 2, 50, 0]],
      );
      assert.ok(!existsSync(join(pinDir, 'weir_ct4')), 'v1 pin removed after finish');
      const key: WeirCt4Key = { saddr: CLIENT, daddr: FRONTEND, sport: 21000, dport: 80, protocol: 6 };
      const entry = dp.maps.conntrack.get(key);
      assert.ok(entry && entry.nat_daddr === flows.get(21000), 'the converted forward entry keeps its DNAT');
      assert.deepEqual([entry.policy, entry.tunnel_node, entry.ifindex], [0, '0.0.0.0', 0], 'fields v1 does not have start empty');
      assertEstablished(dp, flows);
    } finally {
      dp.close();
    }
  });
  test('hand-off: the v1 copy holds every flow, new flows are mirrored into it, the next start empties the slot and drops the copy', () => {
    const fs = mountPrivateBpffs('migrate-c');
    const pinDir = join(fs.path, 'weir', 't');
    const dp = loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off' });
    addService(dp.objects.from_pod);
    openFlows(dp.objects.from_pod, 22000, 5);
    const [r] = handOff(pinDir, (n) => mapOf(dp.objects, n));
    assert.deepEqual([r!.map, r!.from, r!.to, r!.entries, r!.skipped], ['weir_ct4', 2, 1, 10, 0]);
    const v1 = join(pinDir, 'weir_ct4');
    assert.equal(pinCount(v1), 10);
    // this release's programs stay attached until the earlier release swaps the links
    openFlows(dp.objects.from_pod, 23000, 3);
    assert.equal(pinCount(v1), 16, 'flows created after the copy are mirrored into the v1 map');
    dp.close();

    // no link uses the v1 map: this release's next start keeps v2, empties the slot, drops the copy
    const next = loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off' });
    try {
      assert.deepEqual(
        next.upgrade.notes.map((n) => [n.action, n.pin]),
        [['stale-removed', 'weir_ct4']],
      );
      assert.deepEqual(
        next.upgrade.finish((n) => mapOf(next.objects, n)),
        [],
      );
      assert.ok(!existsSync(v1));
      assert.equal(mapOf(next.objects, 'weir_ct4_handoff').lookup(Buffer.alloc(4)), undefined, 'slot emptied');
      assert.equal(ctCount(mapOf(next.objects, 'weir_ct4_v2')), 16);
    } finally {
      next.close();
    }
  });
  test('bad pinned state: a program pinned where the v1 conntrack belongs is reported, not fatal', () => {
    const fs = mountPrivateBpffs('migrate-d');
    const pinDir = join(fs.path, 'weir', 't');
    const first = loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off' });
    first.objects.from_pod.program('weir_from_pod').pin(join(pinDir, 'weir_ct4'));
    first.close();
    const dp = loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off' });
    try {
      const notes = dp.upgrade.notes.map((n) => `${n.action}:${n.pin}:${n.reason}`);
      assert.equal(notes.length, 1, notes.join('\n'));
      assert.match(notes[0]!, /^error:weir_ct4_v2:open pinned map .*\/weir_ct4: .*holds a prog/);
      assert.deepEqual(
        dp.upgrade.finish((n) => mapOf(dp.objects, n)),
        [],
      );
    } finally {
      dp.close();
    }
  });
});
