// Issue 4, must-shows 2 and 3, with `weir daemon --kubeconfig` in a lab node and the fake API
// server in its own namespace: (2) watches dropped, then 410 Gone on resume, while Services
// and EndpointSlices were added, changed and deleted: after recovery the maps equal the
// server's state exactly; (3) the API server down longer than --api-outage-bound (2 s here,
// 60 s by default): a TCP flow through a ClusterIP keeps working throughout, /healthz names
// the outage after the bound, and the restarted server's state (changed meanwhile) is synced.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import type { Pod } from '../lib/lab.js';
import { sleep } from '../lib/proc.js';
import { beIp, endpointSlice, kubeLab, mapsView, service, serverView, svcIp, until, type KubeLab } from './kube-lab.js';

const N = 40;
const WEB_IP = '198.19.200.1';

describe('API source recovery in a lab node', () => {
  let k: KubeLab;
  let backend: Pod;
  let client: Pod;

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
    k = await kubeLab('kube-recovery', { weir: { extraArgs: ['--api-outage-bound', '2s'] } });
    backend = await k.lab.pod(k.node, 'web-a');
    client = await k.lab.pod(k.node, 'client');
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
        async () => (open = (await k.server.info()).openWatches) === 6,
        () => `${open} open watches, want 6 (one per kind)`,
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
      assert.equal(dropped, 6, 'six watches (one per kind) were open');
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

  test('MS3: API server down for 60 s (--api-outage-bound 2s): traffic keeps flowing, /healthz names the outage, recovery re-syncs', async () => {
    const OUTAGE_MS = 60_000;
    assert.equal((await k.weir.http('/healthz')).status, 200);
    // one TCP connection through the ClusterIP, running until the maps have converged again
    const flow = k.weir.flow(client.ns, WEB_IP, 80, { proto: 'tcp', seconds: 0, interval: 50 });
    await flow.waitReplies(10);
    const stoppedAt = Date.now();
    await k.server.stop();
    const atStop = flow.replies();
    // while down: the cluster changes (an etcd-backed server keeps writing on restart)
    await k.server.apply([service('shop', 'svc-late', svcIp(150)), endpointSlice('shop', 'svc-late', 'svc-late-a', [beIp(150, 0)])]);
    await k.server.delete([
      { kind: 'Service', namespace: 'shop', name: 'svc-20' },
      { kind: 'EndpointSlice', namespace: 'shop', name: 'svc-20-a' },
    ]);
    let h = await k.weir.http('/healthz');
    while (h.status === 200 && Date.now() - stoppedAt < 6000) {
      await sleep(100);
      h = await k.weir.http('/healthz');
    }
    const unhealthyAfter = Date.now() - stoppedAt;
    console.log(`# kube lab: API server stopped → /healthz 503 after ${unhealthyAfter} ms (bound 2 s): ${h.body.trim()}`);
    assert.equal(h.status, 503, `/healthz still ${h.status} ${unhealthyAfter} ms after the API server stopped`);
    assert.match(h.body, /^unhealthy: kubernetes API unreachable for \d+\.\ds \(bound 2\.0s\)/);
    // the outage is measured from the last contact, which is at most an idle probe (bound/3) old
    assert.ok(unhealthyAfter >= 2000 - 1100, `unhealthy ${unhealthyAfter} ms after the stop: before the bound`);
    // still ready: the maps hold the last state and serve
    assert.equal((await k.weir.http('/readyz')).status, 200);
    // the rest of the minute: still unhealthy, still serving
    await sleep(Math.max(0, stoppedAt + OUTAGE_MS - Date.now()));
    assert.equal((await k.weir.http('/healthz')).status, 503);
    const duringOutage = flow.replies();
    await k.server.restart();
    const restartedAt = Date.now();
    // the source retries with backoff capped at 30 s (plus jitter): the maps converge within it
    await converged('after the API server came back', 45_000);
    await until(
      async () => (await k.weir.http('/healthz')).status === 200,
      () => '/healthz back to 200',
      10_000,
      100,
    );
    console.log(`# kube lab: after a ${OUTAGE_MS / 1000} s outage the maps equal the server again ${Date.now() - restartedAt} ms after its restart`);
    // and the connection still answers after the re-sync
    await flow.waitReplies(flow.replies() + 10);
    const r = await flow.stop();
    assert.equal(r.error, undefined);
    assert.ok(duringOutage > atStop, `replies while the API server was down: ${duringOutage - atStop}`);
    assert.equal(r.received, r.sent, `every line came back: ${r.received} of ${r.sent}`);
    assert.deepEqual(r.servers, [['web-a', r.received]]);
    console.log(`# kube lab: ${r.sent} lines through the outage, longest gap ${r.maxGapMs} ms`);
    const view = mapsView(k.weir.pinDir);
    assert.deepEqual(view[`${svcIp(150)}:80/6`], [`${beIp(150, 0)}:8080`], 'the service added during the outage');
    assert.equal(view[`${svcIp(20)}:80/6`], undefined, 'the service deleted during the outage');
    const metrics = (await k.weir.http('/metrics')).body;
    assert.ok(Number(/^weir_source_errors_total\{reason="api_list_watch"\} (\d+)/m.exec(metrics)?.[1]) > 0, 'API errors counted');
    assert.ok(Number(/^weir_errors_total\{kind="api"\} (\d+)/m.exec(metrics)?.[1]) > 0, 'API errors counted by kind');
    assert.equal(k.weir.repairs(), 0, 'the re-sync after the outage was whole: no periodic resync repaired anything');
  });
});
