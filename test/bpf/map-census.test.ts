// The map census (src/dataplane/map-census.ts) over a real loaded dataplane: every map pinned
// in the instance's directory has its weir_map_* series under its full pin name (the kernel's
// name is cut at 15 characters: weir_sock_destroy4 is `weir_sock_destr` there, and the daemon's
// hand-kept list missed weir_sock_rev4); a write reported under the kernel's name marks the right
// map; a count is taken in steps and is exact.

import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadDataplane, mapOf } from '../../src/dataplane/loader.js';
import { MapCensus, pinnedMaps } from '../../src/dataplane/map-census.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { mountPrivateBpffs } from '../lib/bpffs.js';
import { runCleanups } from '../lib/cleanup.js';

after(runCleanups);

test('every pinned map has weir_map_capacity and weir_map_entries under its pin name; counts are exact', async () => {
  const fs = mountPrivateBpffs('census');
  const dp = loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'on', networkPolicy: true, mapSizes: { ct: 4096 } });
  try {
    const pins = readdirSync(dp.pinDir)
      .filter((n) => statSync(join(dp.pinDir, n)).isFile())
      .sort();
    assert.ok(pins.includes('weir_sock_destroy4') && pins.includes('weir_sock_rev4'), `pins: ${pins.join(' ')}`);
    const census = new MapCensus(pinnedMaps(Object.values(dp.objects)), { step: 7 });
    assert.deepEqual(
      census.rows().map((r) => r.name),
      pins,
      'the census covers exactly the pinned maps',
    );
    // entries the census must find: 20 in a hash map written by hand, counted in steps of 7
    const rev = mapOf(dp.objects, 'weir_sock_rev4');
    for (let i = 0; i < 20; i++) rev.update(Buffer.from([i, 0, 0, 0, 0, 0, 0, 0, 198, 18, 0, 1, 0, 80, 0, 0]), Buffer.alloc(rev.valueSize));
    await census.refresh();
    const metrics = new Metrics({ processMetrics: false });
    metrics.attachDataplane({ counters: () => undefined, maps: () => census.rows() });
    const text = await metrics.text();
    const series = (name: string) => new Set([...text.matchAll(new RegExp(`^${name}\\{map="([^"]+)"\\}`, 'gm'))].map((m) => m[1]!));
    const capacity = series('weir_map_capacity');
    const entries = series('weir_map_entries');
    for (const pin of pins) {
      assert.ok(capacity.has(pin), `weir_map_capacity{map="${pin}"}`);
      assert.ok(entries.has(pin), `weir_map_entries{map="${pin}"}`);
    }
    assert.deepEqual(
      [...capacity].filter((n) => !pins.includes(n)),
      [],
      'no series under a name that is not a pin (a truncated one)',
    );
    assert.match(text, /^weir_map_entries\{map="weir_sock_rev4"\} 20$/m);
    assert.match(text, /^weir_map_capacity\{map="weir_ct4_v2"\} 4096$/m);

    // the daemon's write counter says weir_ipcache4_h (the kernel's name): the census recounts weir_ipcache4_hosts
    const hosts = mapOf(dp.objects, 'weir_ipcache4_hosts');
    assert.equal(hosts.name, 'weir_ipcache4_h');
    census.written('weir_ipcache4_h');
    await census.refresh();
    assert.equal(census.rows().find((r) => r.name === 'weir_ipcache4_hosts')!.entries, 0);
    // from now on it is recounted only after weir writes it: an entry behind the census' back is not seen...
    hosts.update(Buffer.from([198, 18, 0, 9]), Buffer.alloc(hosts.valueSize));
    await census.refresh();
    assert.equal(census.rows().find((r) => r.name === 'weir_ipcache4_hosts')!.entries, 0);
    // ...until a write is reported
    census.written('weir_ipcache4_h');
    await census.refresh();
    assert.equal(census.rows().find((r) => r.name === 'weir_ipcache4_hosts')!.entries, 1);
    // a map the programs fill (not reported written) is recounted at every refresh
    rev.delete(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 198, 18, 0, 1, 0, 80, 0, 0]));
    await census.refresh();
    assert.equal(census.rows().find((r) => r.name === 'weir_sock_rev4')!.entries, 19);
  } finally {
    dp.close();
    await fs.cleanup();
  }
});
