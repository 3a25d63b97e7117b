// Map sizes as settings (src/dataplane/map-sizes.ts): the flags' defaults (sized for 50,000
// services x 10 endpoints), their bounds and errors, and which pinned maps each one sizes
// (both families alike); the BPF-level half is test/bpf/map-sizes.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { daemonConfig } from '../../src/cli/daemon.js';
import { defaultMapSizes, MAP_SIZE_SETTINGS, maxEntriesByMap, parseMapSize } from '../../src/dataplane/map-sizes.js';
import { MAP_ABI, pinName } from '../../src/dataplane/map-abi.js';
import { baseDaemonFlags } from './daemon-flags.js';

test('defaults hold 50,000 services x 10 endpoints; flags give each size', () => {
  const d = defaultMapSizes();
  assert.ok(d.frontend >= 80_000, 'ClusterIP + NodePort/LoadBalancer frontends');
  assert.ok(d.backend >= 800_000, 'their endpoints, one slot each');
  assert.ok(d.ipcache >= 500_000, 'every pod address');
  assert.deepEqual(daemonConfig(baseDaemonFlags, {}).mapSizes, {}, 'none given: the loader decides (default, or an earlier release pin kept)');
  const small = daemonConfig({ ...baseDaemonFlags, ctMapSize: '4096', backendMapSize: '2048' }, {});
  assert.deepEqual(small.mapSizes, { ct: 4096, backend: 2048 });
});

test('bounds and readable errors', () => {
  assert.equal(parseMapSize('ct', ' 256 '), 256);
  assert.equal(parseMapSize('ct', String(1 << 26)), 1 << 26);
  for (const bad of ['255', String((1 << 26) + 1), '4k', '0x1000', '', '1e6', '-1'])
    assert.throws(() => parseMapSize('ct', bad), /bad --ct-map-size .*: entries, an integer in 256\.\.67108864 \(default 1048576\)/, bad);
  assert.throws(() => daemonConfig({ ...baseDaemonFlags, frontendMapSize: 'many' }, {}), /bad --frontend-map-size "many"/);
});

test('each setting sizes both families; every map it names is a pinned map of the ABI table (a migration row)', () => {
  const byMap = maxEntriesByMap({ ct: 4096, frontend: 1024 });
  assert.deepEqual(byMap, { weir_ct4_v2: 4096, weir_ct6: 4096, weir_frontend4: 1024, weir_frontend6: 1024 });
  const pinned = new Set(MAP_ABI.map((r) => pinName(r.base, r.version)));
  for (const [name, s] of Object.entries(MAP_SIZE_SETTINGS)) for (const m of s.maps) assert.ok(pinned.has(m), `${name}: ${m} is migrated on a resize`);
});

test('the default sizes hold 50,000 services x 10 endpoints, 1,000,000 conntrack entries and 100,000 pods', () => {
  const d = defaultMapSizes();
  assert.ok(d.ct >= 1_000_000, `conntrack ${d.ct}`);
  assert.ok(d.frontend >= 50_000, `frontends ${d.frontend}: one per ClusterIP service port at least`);
  assert.ok(d.backend >= 50_000 * 10, `backends ${d.backend}`);
  assert.ok(d.ipcache >= 100_000, `ipcache ${d.ipcache}: every pod address of the cluster`);
});
