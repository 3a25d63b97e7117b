// The service fixture table (test/fixtures/service-cases.ts) through the real from_pod,
// from_host and to_pod objects with BPF_PROG_TEST_RUN: per packet the TC verdict, the one
// counter it bumps and the packet that comes out (field-level diff, checksums), then exact
// counter totals and conntrack/affinity state. test/cli/explain.test.ts runs the same
// table through `weir explain`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runCase } from '../fixtures/run-service-case.js';
import { serviceCases } from '../fixtures/service-cases.js';
import { loadServiceDataplane, type ServiceDataplane } from './service-fixture.js';

let dp: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane();
});
after(async () => {
  await dp?.close();
});

test('the table: case names are unique, every case has a step', () => {
  assert.equal(new Set(serviceCases.map((c) => c.name)).size, serviceCases.length);
  for (const c of serviceCases) assert.ok(c.steps.length > 0, c.name);
});

for (const c of serviceCases) test(c.name, () => void runCase(dp, c));
