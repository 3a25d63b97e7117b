// Map sizes as settings (src/dataplane/map-sizes.ts, the loader's bpf_map__set_max_entries):
// loaded with a small conntrack size, both families' conntrack maps have it (the addon's
// maxEntries and bpftool agree); a restart with another size migrates the entries (real flows
// made by from_pod through BPF_PROG_TEST_RUN keep their NAT; a resized frontend map keeps its
// entries and ids, an LPM trie its prefixes), and a restart with the same sizes is a plain
// adoption (nothing moved aside).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { abiMaps, BpfMap, codecFor, typedMap } from '../../src/bpf/index.js';
import { loadDataplane, mapOf, type LoadedDataplane } from '../../src/dataplane/loader.js';
import { MAP_SIZE_SETTINGS, maxEntriesByMap, type MapSizes } from '../../src/dataplane/map-sizes.js';
import { runCleanups } from '../lib/cleanup.js';
import { addService, CLIENT, FRONTEND, openFlows, pod } from '../lib/service-flows.js';
import { mountPrivateBpffs } from '../lib/bpffs.js';
import { decodePacket } from '../lib/packet.js';

after(runCleanups);

/** Each flow's next packet goes to the same backend (its conntrack entry survived). */
function assertSameBackends(dp: LoadedDataplane, flows: Map<number, string>): void {
  const prog = dp.objects.from_pod.program('weir_from_pod');
  for (const [sport, backend] of flows) {
    const r = prog.testRun({
      data: pod(CLIENT, FRONTEND)
        .tcp({ sport, dport: 80, flags: ['ack'] })
        .payload('x')
        .build(),
    });
    assert.equal(decodePacket(r.data).ipv4!.dst, backend, `flow ${sport}: same backend after the resize`);
  }
}

/** max_entries as bpftool reports the pinned map. */
function bpftoolMaxEntries(path: string): number {
  return (JSON.parse(execFileSync('bpftool', ['-j', 'map', 'show', 'pinned', path], { encoding: 'utf8' })) as { max_entries: number }).max_entries;
}

/** IPv6 conntrack entries written by hand (weir_ct6 is 'copy' on a resize): distinct keys. */
function fillCt6(m: BpfMap, count: number): void {
  for (let i = 0; i < count; i++) {
    const k = Buffer.alloc(m.keySize);
    k.writeUInt16BE(0x2001, 0);
    k.writeUInt16BE(2, 2);
    k.writeUInt32BE(i + 1, 12);
    k.writeUInt16BE(40000 + i, 32);
    k[36] = 6;
    const v = Buffer.alloc(m.valueSize);
    v.writeUInt32LE(i + 1, 40);
    m.update(k, v);
  }
}

test('--ct-map-size: both conntrack maps take the size; a restart with another size migrates the entries; the same size adopts', () => {
  const fs = mountPrivateBpffs('map-sizes');
  const pinDir = join(fs.path, 'weir', 't');
  const load = (sizes: Partial<MapSizes>) => loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off', mapSizes: sizes });
  const small = { ct: 4096, frontend: 1024, backend: 2048, ipcache: 1024 };

  const first = load(small);
  let flows: Map<number, string>;
  try {
    for (const [name, n] of Object.entries(maxEntriesByMap(small))) {
      assert.equal(mapOf(first.objects, name).maxEntries, n, `${name}: the addon's maxEntries`);
      assert.equal(bpftoolMaxEntries(join(pinDir, name)), n, `${name}: bpftool map show`);
    }
    // not set: the objects' own size
    assert.equal(mapOf(first.objects, 'weir_affinity4').maxEntries, MAP_SIZE_SETTINGS.affinity.default);
    addService(first.objects.from_pod);
    flows = openFlows(first.objects.from_pod, 20000, 30);
    fillCt6(mapOf(first.objects, 'weir_ct6'), 12);
    // an LPM trie (no batch ops): 198.18.1.0/24 -> identity 42
    mapOf(first.objects, 'weir_ipcache4').update(Buffer.from([24, 0, 0, 0, 198, 18, 1, 0]), Buffer.from([42, 0, 0, 0, 0, 0, 0, 0]));
    assert.equal(mapOf(first.objects, 'weir_ct4_v2').count(), 60, 'two entries per flow');
  } finally {
    first.close(); // the daemon stops; the pins stay
  }

  const bigger = { ...small, ct: 8192, frontend: 2048, ipcache: 2048 };
  const second = load(bigger);
  try {
    assert.deepEqual(
      second.upgrade.notes.map((n) => [n.action, n.pin]).sort(),
      [
        ['moved-aside', 'weir_ct4_v2'],
        ['moved-aside', 'weir_ct6'],
        ['moved-aside', 'weir_frontend4'],
        ['moved-aside', 'weir_frontend6'],
        ['moved-aside', 'weir_ipcache4'],
        ['moved-aside', 'weir_ipcache4_hosts'],
        ['moved-aside', 'weir_ipcache6'],
        ['moved-aside', 'weir_ipcache6_hosts'],
      ],
      'only the resized maps move aside',
    );
    const ct4 = mapOf(second.objects, 'weir_ct4_v2');
    const ct6 = mapOf(second.objects, 'weir_ct6');
    assert.deepEqual([ct4.maxEntries, ct6.maxEntries, bpftoolMaxEntries(join(pinDir, 'weir_ct6'))], [8192, 8192, 8192]);
    const reports = second.upgrade.finish((n) => mapOf(second.objects, n));
    console.log(`# resize 4096 -> 8192: ${JSON.stringify(reports)}`);
    assert.deepEqual(reports.map((r) => [r.map, r.entries, r.dropped, r.how]).sort(), [
      ['weir_ct4', 60, 0, 'convert'],
      ['weir_ct6', 12, 0, 'copy'],
      ['weir_frontend4', 1, 0, 'copy (resize)'],
      ['weir_frontend6', 0, 0, 'copy (resize)'],
      ['weir_ipcache4', 1, 0, 'copy (resize)'],
      ['weir_ipcache4_hosts', 0, 0, 'copy (resize)'],
      ['weir_ipcache6', 0, 0, 'copy (resize)'],
      ['weir_ipcache6_hosts', 0, 0, 'copy (resize)'],
    ]);
    // a rebuilt map's entries survive a resize: the frontend keeps its id (conntrack, affinity and
    // the Maglev tables key on it), the LPM trie its prefix
    const fe = typedMap(mapOf(second.objects, 'weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
    assert.equal(fe.get({ address: FRONTEND, port: 80, protocol: 6, scope: 0 })?.id, 7);
    assert.equal(mapOf(second.objects, 'weir_ipcache4').lookup(Buffer.from([24, 0, 0, 0, 198, 18, 1, 0]))?.[0], 42);
    assert.equal(ct4.count(), 60);
    assert.equal(ct6.count(), 12);
    assert.ok(!readdirSync(pinDir).some((n) => n.includes('migrating')), 'the moved-aside pins are gone');
    assertSameBackends(second, flows);
  } finally {
    second.close();
  }

  const third = load(bigger);
  try {
    assert.deepEqual(third.upgrade.notes, [], 'the same sizes: a plain restart adopts every pin');
    assert.ok(third.upgrade.idle);
    assert.equal(mapOf(third.objects, 'weir_ct4_v2').count(), 60);
    // 299 more frontends, for a shrink below the live entries
    const fe = typedMap(mapOf(third.objects, 'weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
    for (let i = 1; i < 300; i++)
      fe.set({ address: `198.19.1.${i % 250}`, port: 1000 + i, protocol: 6, scope: 0 }, { id: 100 + i, backend_count: 0, flags: 0, affinity_timeout: 0 });
  } finally {
    third.close();
  }

  // a smaller map than its live entries (a hash map: no eviction): as many as fit, the rest counted dropped
  const fourth = load({ ...bigger, frontend: 256 });
  try {
    const reports = fourth.upgrade.finish((n) => mapOf(fourth.objects, n));
    const r = reports.find((x) => x.map === 'weir_frontend4')!;
    console.log(`# shrink 2048 -> 256 with 300 frontends: ${JSON.stringify(r)}`);
    assert.deepEqual([r.entries, r.dropped], [256, 44]);
    assert.equal(mapOf(fourth.objects, 'weir_frontend4').count(), 256);
  } finally {
    fourth.close();
  }

  // no size given any more: back to the defaults (a map weir sized is not an earlier release's)
  const fifth = load({});
  try {
    const sizes = ['weir_ct4_v2', 'weir_frontend4', 'weir_backend4', 'weir_ipcache4'].map((m) => mapOf(fifth.objects, m).maxEntries);
    assert.deepEqual(sizes, [
      MAP_SIZE_SETTINGS.ct.default,
      MAP_SIZE_SETTINGS.frontend.default,
      MAP_SIZE_SETTINGS.backend.default,
      MAP_SIZE_SETTINGS.ipcache.default,
    ]);
  } finally {
    fifth.close();
  }
});

test('maps an earlier release pinned at the compiled sizes keep them when no size is given (upgrade and rollback adopt)', () => {
  const fs = mountPrivateBpffs('map-sizes-old');
  const compiled: Partial<MapSizes> = {
    frontend: abiMaps.weir_frontend4.maxEntries,
    backend: abiMaps.weir_backend4.maxEntries,
    ipcache: abiMaps.weir_ipcache4.maxEntries,
  };
  assert.ok(compiled.frontend !== MAP_SIZE_SETTINGS.frontend.default, 'the default differs from the compiled size');
  const load = (sizes: Partial<MapSizes>) => loadDataplane({ bpfRoot: fs.path, instance: 'o', sockLbMode: 'off', mapSizes: sizes });
  load(compiled).close(); // as the earlier release left them
  const next = load({});
  try {
    assert.deepEqual(next.upgrade.notes, [], 'nothing resized');
    assert.equal(mapOf(next.objects, 'weir_frontend4').maxEntries, compiled.frontend);
    assert.equal(mapOf(next.objects, 'weir_backend6').maxEntries, compiled.backend);
  } finally {
    next.close();
  }
});
