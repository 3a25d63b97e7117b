// The reconciler on real kernel maps (loaded objects, pinned in a private bpffs) at their
// limits: a service added while weir_backend4 is full is not written (no frontend entry
// pointing at missing slots, no slot left behind), and the sync that deletes another service
// writes it (the deletes first); a restart adopts a big set (20,000 frontends and 200,000
// backends; 60,000 x 10 with WEIR_ADOPT_FRONTENDS=60000) entry for entry, the timing printed.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { loadDataplane } from '../../src/dataplane/loader.js';
import { Reconciler } from '../../src/dataplane/reconcile.js';
import { MAP_SIZE_MIN } from '../../src/dataplane/map-sizes.js';
import { memoryLogger } from '../../src/log.js';
import { mountPrivateBpffs } from '../lib/bpffs.js';
import { runCleanups } from '../lib/cleanup.js';
import { bulkFrontend, bulkFrontends } from '../lib/frontend-fixtures.js';

after(runCleanups);

test('weir_backend4 full: the new service gets no entry; the sync that removes another one writes it, in that same sync', () => {
  const fs = mountPrivateBpffs('reconcile-full');
  const dp = loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off', mapSizes: { backend: MAP_SIZE_MIN } });
  try {
    const { frontends, backends } = dp.maps;
    assert.equal(backends.map.maxEntries, MAP_SIZE_MIN);
    const log = memoryLogger();
    const r = new Reconciler(dp.maps, log);
    // 200 + 56 slots: the backend map is full
    const big = bulkFrontend(1, 200);
    const rest = bulkFrontend(2, 56);
    const late = bulkFrontend(3, 10);
    r.setAll([big, rest]);
    assert.equal(r.sync().errors, 0);
    assert.equal(backends.count(), MAP_SIZE_MIN);
    const entryOf = (address: string) => [...frontends.entries()].find(([k]) => k.address === address)?.[1];

    r.update([late], []);
    const full = r.sync();
    assert.equal(full.unprogrammed, 1);
    assert.equal(entryOf(late.address), undefined, 'no frontend entry pointing at slots that are not there');
    assert.equal(backends.count(), MAP_SIZE_MIN, 'nothing half-written');
    assert.deepEqual([...r.unprogrammedServices()], [['map_full', 1]]);
    assert.ok(
      log.lines.some((l) => /services not programmed services=1 entries=1 maps=weir_backend4:map_full names=default\/svc-3 /.test(l)),
      log.lines.join('\n'),
    );
    assert.equal(entryOf(big.address)?.backend_count, 200, 'the services that fit keep their entries');

    // the next change frees room: the deletes go first, the late service is written in this same sync
    r.update([], [big.id]);
    const freed = r.sync();
    assert.equal(freed.errors, 0);
    assert.equal(freed.unprogrammed, 0);
    assert.equal(entryOf(big.address), undefined);
    const v = entryOf(late.address);
    assert.equal(v?.backend_count, 10, 'programmed by the sync that freed room, not at the resync');
    for (let slot = 0; slot < 10; slot++) assert.ok(backends.get({ frontend_id: v!.id, slot }), `slot ${slot}`);
    assert.equal(backends.count(), 56 + 10);
    assert.equal(r.resync().writes, 0, 'nothing left to repair');
  } finally {
    dp.close();
  }
});

test('restart: a big set (20,000 frontends, 200,000 backends) adopted entry for entry; the same desired state writes nothing', () => {
  const fs = mountPrivateBpffs('reconcile-adopt');
  const load = () => loadDataplane({ bpfRoot: fs.path, instance: 't', sockLbMode: 'off', mapSizes: { frontend: 131_072, backend: 1_048_576 } });
  // 60,000 x 10 with WEIR_ADOPT_FRONTENDS=60000 (bench/adopt.ts measures that size); `make
  // test` adopts 20,000 x 10 to stay within its time
  const N = Number(process.env.WEIR_ADOPT_FRONTENDS ?? 20_000);
  const M = 10;
  const want = bulkFrontends(N, M);
  let dp = load();
  const ids = new Map<string, number>();
  try {
    const first = new Reconciler(dp.maps, memoryLogger());
    first.setAll(want);
    assert.equal(first.sync().errors, 0);
    for (const [k, v] of dp.maps.frontends.entries()) ids.set(`${k.address}:${k.port}`, v.id);
  } finally {
    dp.close();
  }
  dp = load();
  try {
    const r = new Reconciler(dp.maps, memoryLogger());
    const t0 = performance.now();
    const adopted = r.adopt();
    console.log(`# adopted ${adopted.frontends} frontends and ${adopted.backends} backends in ${Math.round(performance.now() - t0)} ms`);
    assert.deepEqual(adopted, { frontends: N, backends: N * M });
    // the mirror is what the maps hold: ids kept, the same state plans no write
    const byId = r.frontendsById();
    assert.equal(byId.size, 0, 'no desired state yet: nothing named');
    r.setAll(want);
    assert.equal(r.sync().writes, 0);
    const named = r.frontendsById();
    assert.equal(named.size, N);
    for (const [id, { frontend }] of [...named].slice(0, 1000)) assert.equal(ids.get(frontend.replace(/\/\w+$/, '')), id);
    // a new frontend gets an id none of the adopted ones has
    r.update([bulkFrontend(N, 1)], []);
    assert.equal(r.sync().errors, 0);
    assert.equal(new Set([...dp.maps.frontends.entries()].map(([, v]) => v.id)).size, N + 1);
  } finally {
    dp.close();
  }
});
