// Issue 4, must-show 2, with `weir daemon --kubeconfig` in a lab node and the fake API
// server in its own namespace: (2) watches dropped, then 410 Gone on resume, while Services
// and EndpointSlices were added, changed and deleted: after recovery the maps equal the
// server's state exactly. (3), the API server down longer than --api-outage-bound, is
// test/lab/api-outage.test.ts (issue 15's must-show 2: liveness stays 200, readiness fails).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OBJECT_KINDS } from '../../src/sources/types.js';
import { runCleanups } from '../lib/cleanup.js';
import type { Pod } from '../lib/lab.js';
import { beIp, endpointSlice, kubeLab, mapsView, service, serverView, svcIp, until, type KubeLab } from './kube-lab.js';

const N = 40;
const WEB_IP = '198.19.200.1';

describe('API source recovery in a lab node', () => {
  let k: KubeLab;
  let backend: Pod;

  const converged = async (what: string, timeoutMs = 8000) => {
    let want: Record<string, string[]> = {};
    await until(
      async () => {
        want = await serverView(k.server);
        return JSON.stringify(mapsView(k.weir.pinDir)) === JSON.stringify(want);
      },
      () => {
        const have = mapsView(k.weir.pinDir);
        const diff = [...new Set([...Object.keys(have), ...Object.keys(want)])].filter((x) => JSON.stringify(have[x]) !== JSON.stringify(want[x])).slice(0, 5);
        return `${what}: maps differ from the server: ${diff.map((x) => `${x}: maps ${JSON.stringify(have[x])} server ${JSON.stringify(want[x])}`).join('; ')}\n${k.weir.runLines().slice(-8).join('\n')}`;
      },
      timeoutMs,
      50,
    );
    assert.deepEqual(mapsView(k.weir.pinDir), want, what);
  };

  before(async () => {
    k = await kubeLab('kube-recovery');
    backend = await k.lab.pod(k.node, 'web-a');
    await backend.ns.echoServer({ name: 'web-a', port: 8080 });
    const objects = [service('default', 'web', WEB_IP), endpointSlice('default', 'web', 'web-1', [backend.ip])];
    for (let i = 0; i < N; i++) objects.push(service('shop', `svc-${i}`, svcIp(i)), endpointSlice('shop', `svc-${i}`, `svc-${i}-a`, [beIp(i, 0)]));
    await k.server.apply(objects);
    await k.weir.start(20_000);
    await converged('after start');
  });
  after(async () => {
    await k?.lab.destroy();
    await runCleanups();
  });

  for (const how of ['abrupt', 'clean'] as const) {
    test(`MS2: watches dropped (${how}), objects added/changed/deleted, history compacted (410 on resume): maps equal the server`, async () => {
      const round = how === 'abrupt' ? 0 : 1;
      let open = 0;
      await until(
        async () => (open = (await k.server.info()).openWatches) === OBJECT_KINDS.length,
        () => `${open} open watches, want ${OBJECT_KINDS.length} (one per kind)`,
        8000,
        50,
      );
      const m = k.weir.mark();
      const deletes = [];
      const applies = [];
      for (let j = 0; j < 5; j++) {
        const i = round * 5 + j;
        deletes.push({ kind: 'Service', namespace: 'shop', name: `svc-${i}` }, { kind: 'EndpointSlice', namespace: 'shop', name: `svc-${i}-a` });
        const n = 100 + round * 5 + j;
        applies.push(service('shop', `svc-${n}`, svcIp(n)), endpointSlice('shop', `svc-${n}`, `svc-${n}-a`, [beIp(n, 0), beIp(n, 1)]));
        const c = N - 1 - i;
        applies.push(endpointSlice('shop', `svc-${c}`, `svc-${c}-a`, [beIp(c, 0), beIp(c, 2), beIp(c, 3)]));
      }
      const [dropped] = (await k.server.batch([
        { op: 'dropWatches', args: how },
        { op: 'apply', args: applies },
        { op: 'delete', args: deletes },
        { op: 'compactHistory' },
      ])) as [number];
      assert.equal(dropped, OBJECT_KINDS.length, 'one watch per kind was open');
      await converged(`after the ${how} drop`);
      // it recovered by a relist after 410, which removed what was deleted meanwhile
      const relists = k.weir.events('kube: relisted').slice(0);
      assert.ok(
        k.weir
          .events()
          .slice(m)
          .some((l) => l.event === 'kube: relisted' && (l.kind === 'Service' || l.kind === 'EndpointSlice')),
        `no relist logged: ${JSON.stringify(relists)}`,
      );
      const view = mapsView(k.weir.pinDir);
      for (let j = 0; j < 5; j++) assert.equal(view[`${svcIp(round * 5 + j)}:80/6`], undefined, 'a deleted service left no frontend');
      // the relist's own sync did it: no periodic resync (60 s, weir's default) had to repair anything
      assert.equal(k.weir.repairs(), 0, 'resync repairs');
    });
  }
});
