// The IPv6 service fixture table (serviceCases6 in test/fixtures/service-cases.ts) through the
// real from_pod6 and from_host6 objects with BPF_PROG_TEST_RUN, by the same runner as the IPv4
// table: per packet the TC verdict, the one counter it bumps and the packet that comes out
// (byte for byte against the fixture rebuilt with the expected tuple, whose checksums the
// packet library computes on its own: pseudo-header, 0xffff for a UDP sum of 0), then exact
// counter totals, conntrack state and weir_lb_stats6; then the tracked-flow cases with the
// programs loaded under ct_track_all.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runCase } from '../fixtures/run-service-case.js';
import { serviceCases6, serviceCases6Tracked } from '../fixtures/service-cases.js';
import { loadServiceDataplane, type ServiceDataplane } from './service-fixture.js';

let dp: ServiceDataplane;
let tracked: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane();
  tracked = loadServiceDataplane({ ct_track_all: 1 });
});
after(async () => {
  await dp?.close();
  await tracked?.close();
});

test('the IPv6 table: case names are unique, every case has a step', () => {
  const all = [...serviceCases6, ...serviceCases6Tracked];
  assert.equal(new Set(all.map((c) => c.name)).size, all.length);
  for (const c of all) assert.ok(c.steps.length > 0, c.name);
});

for (const c of serviceCases6) test(c.name, () => void runCase(dp, c));
// the same programs loaded with ct_track_all
for (const c of serviceCases6Tracked) test(c.name, () => void runCase(tracked, c));
