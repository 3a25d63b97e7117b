// The host policy rows of the hook table (src/dataplane/hooks.ts): their pin names parse back to
// them and collide with no other row's (a rollback's attach manager parses only its own names,
// so these stay pinned and untouched by an older release: docs/upgrade.md); without host policy
// the rows are inactive; with XDP the row is an XDP place on host interfaces.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { activeHooks, HOOKS, OBJECTS, parsePinName, pinName } from '../../src/dataplane/hooks.js';

const row = (name: string) => HOOKS.find((h) => h.name === name)!;

test('xdp_prefilter and to_host: places, objects, pin names that parse back to them only', () => {
  assert.deepEqual(row('xdp_prefilter').at, { kind: 'xdp', interfaces: 'host' });
  assert.deepEqual(row('to_host').at, { kind: 'tc', interfaces: 'host', direction: 'egress' });
  assert.equal(pinName(row('xdp_prefilter'), 7), 'xdp-7-prefilter');
  assert.equal(pinName(row('to_host'), 7), 'tcx-7-to_host');
  assert.equal(parsePinName('xdp-7-prefilter')?.hook.name, 'xdp_prefilter');
  assert.equal(parsePinName('tcx-7-to_host')?.hook.name, 'to_host');
  assert.equal(parsePinName('tcx-7-from_host')?.hook.name, 'from_host', 'the 2e42a8d name still parses to its row');
  // an older release's table (without the rows) does not parse the new names: it leaves them alone
  const older = HOOKS.filter((h) => h.name !== 'xdp_prefilter' && h.name !== 'to_host');
  assert.equal(parsePinName('xdp-7-prefilter', older), undefined);
  assert.equal(parsePinName('tcx-7-to_host', older), undefined);
  assert.equal(new Set(HOOKS.map((h) => h.pin)).size, HOOKS.length);
});

test('the rows are active only with host policy; their objects are marked so', () => {
  assert.ok(OBJECTS.xdp_prefilter.hostPolicy && OBJECTS.to_host.hostPolicy);
  const off = activeHooks(false).map((h) => h.name);
  assert.ok(!off.includes('xdp_prefilter') && !off.includes('to_host') && off.includes('from_host'));
  assert.equal(activeHooks(true).length, HOOKS.length);
});
