// syncDsrOptout (dataplane/dsr-optout.ts): --dsr-optout-cidrs into weir_dsr_optout4 and
// weir_dsr_optout6, each prefix in its family's map; what an earlier run pinned and the flag
// no longer names is removed; a family without a map is skipped with a log line.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TypedMap } from '../../src/bpf/index.js';
import { syncDsrOptout } from '../../src/dataplane/dsr-optout.js';
import { memoryLogger } from '../../src/log.js';
import { FakeMap } from './fake-maps.js';

type Key = { prefixlen: number; address: string };
const keys = (m: FakeMap<Key, number>) => [...m.keys()].map((k) => `${k.address}/${k.prefixlen}`).sort();
const typed = (m: FakeMap<Key, number>) => m as unknown as TypedMap<Key, number>;

test('each prefix goes into its family map; stale entries go; a family without a map is skipped and said', () => {
  const v4 = new FakeMap<Key, number>();
  const v6 = new FakeMap<Key, number>();
  v6.set({ prefixlen: 64, address: '2001:2:ee::' }, 1); // an earlier run's
  const log = memoryLogger();
  const lines = log.lines;
  const r = syncDsrOptout({ 4: typed(v4), 6: typed(v6) }, ['198.18.0.100/32', '2001:2:ff::/48', '2001:2:ff::101/128'], log);
  assert.deepEqual(keys(v4), ['198.18.0.100/32']);
  assert.deepEqual(keys(v6), ['2001:2:ff::/48', '2001:2:ff::101/128']);
  assert.deepEqual(r, { written: 4, skipped: [] });
  assert.equal(
    syncDsrOptout({ 4: typed(v4), 6: typed(v6) }, ['198.18.0.100/32', '2001:2:ff::/48', '2001:2:ff::101/128'], log).written,
    0,
    'a restart with the same flag writes nothing',
  );
  const only4 = syncDsrOptout({ 4: typed(v4) }, ['198.18.0.100/32', '2001:2:ff::/48'], log);
  assert.deepEqual(only4.skipped, ['2001:2:ff::/48']);
  assert.ok(
    lines.some((l) => l.includes('dsr optout cidrs skipped') && l.includes('2001:2:ff::/48')),
    lines.join('\n'),
  );
});
