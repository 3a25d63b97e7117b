// A smoke run of bench/startup.ts (make bench-startup): 100 Services x 10 endpoints through the
// manifests source and through the fake API server, each into a fresh lab daemon, timed to
// ready. The figures are printed, not bounded (the bench measures); what is asserted is that
// both paths program every Service and the report has a row for each.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { report, runStartup } from '../../bench/startup.js';

test('bench-startup smoke: 100 x 10 through manifests and the API, every Service programmed', async () => {
  const runs = await runStartup({ sizes: [[100, 10]], sources: ['manifests', 'api'], rounds: 1, log: (l) => console.log(l) });
  assert.deepEqual(
    runs.map((r) => `${r.source} ${r.frontends} frontends, ${r.writes} writes`),
    // one frontend and 10 backend slots per Service; the API source adds nothing of its own
    ['manifests 100 frontends, 1100 writes', 'api 100 frontends, 1100 writes'],
  );
  for (const r of runs) assert.ok(r.rssMiB > 0 && r.cpuMs > 0 && r.readyMs > 0, JSON.stringify(r));
  const md = report(runs);
  assert.match(md, /\| manifests \| 100 x 10 \|/);
  assert.match(md, /\| api \| 100 x 10 \|/);
});
