// KubeSource keeps slim objects (src/sources/slim.ts) from both paths, through the real client
// library and the fake API server: a whole pod, node and service listed at start, and a pod
// changed by a watch event, reach the store as exactly slimObject() of what the server holds;
// Pods are listed and watched with the field selector that leaves finished pods out.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { POD_FIELD_SELECTOR } from '../../src/sources/kube-resources.js';
import { slimObject } from '../../src/sources/slim.js';
import type { ObjectKind } from '../../src/sources/types.js';
import { fatNode, fatPod, fatService } from '../unit/slim-fixtures.js';
import { FakeApiServer } from './fake-apiserver.js';
import { assertStoreEqualsServer, harness, kubeConfigFor, until } from './harness.js';

/** What the server holds of an object (with its resourceVersion), slim, as plain JSON (dates as the client's Date prints them). */
function slimOfServer(server: FakeApiServer, kind: ObjectKind, key: string): unknown {
  const o = server.state(kind).get(key);
  assert.ok(o, `${kind} ${key} on the server`);
  const s = JSON.parse(JSON.stringify(slimObject(kind, o as never))) as { metadata: { creationTimestamp?: string } };
  if (s.metadata.creationTimestamp) s.metadata.creationTimestamp = new Date(s.metadata.creationTimestamp).toISOString();
  return s;
}

const plain = (o: unknown): unknown => JSON.parse(JSON.stringify(o));

test('list and watch: the store holds slim objects; pods are asked for without finished ones', async () => {
  const server = new FakeApiServer({ token: 'weir-test-token' });
  await server.start();
  server.apply(fatPod({ namespace: 'shop', name: 'web-0', app: 'web', node: 'node-a', ip: '198.18.1.10' }));
  server.apply(fatNode({ name: 'node-a', ip: '198.18.0.1', podCIDR: '198.18.1.0/24', zone: 'zone-a' }));
  server.apply(fatService({ namespace: 'shop', name: 'web', clusterIP: '198.19.0.10', lbAlgorithm: 'maglev' }));
  const h = harness(kubeConfigFor(server));
  try {
    await h.waitFor((e) => e.type === 'synced', 10_000);
    for (const [kind, key] of [
      ['Pod', 'shop/web-0'],
      ['Node', 'node-a'],
      ['Service', 'shop/web'],
    ] as const) {
      assert.deepEqual(plain(h.store.get(kind, key)), slimOfServer(server, kind, key), `${kind} ${key} from the list`);
    }
    assert.ok(!JSON.stringify(h.store.get('Pod', 'shop/web-0')).includes('managedFields'));

    // a watch event: the pod moves to a new address
    server.apply(fatPod({ namespace: 'shop', name: 'web-0', app: 'web', node: 'node-a', ip: '198.18.1.11' }));
    await h.waitFor((e) => e.type === 'upsert' && e.kind === 'Pod' && JSON.stringify(e.object).includes('198.18.1.11'), 5000);
    assert.deepEqual(plain(h.store.get('Pod', 'shop/web-0')), slimOfServer(server, 'Pod', 'shop/web-0'), 'Pod from the watch');
    assertStoreEqualsServer(h.store, server);

    // a change weir does not keep (the kubelet's status conditions, an annotation): no event,
    // only the held version moves with the server's
    const upserts = h.source.counters.events.Pod.upserts;
    const events = h.events.length;
    const quiet = fatPod({ namespace: 'shop', name: 'web-0', app: 'web', node: 'node-a', ip: '198.18.1.11' });
    (quiet.metadata as { annotations: Record<string, string> }).annotations['kubectl.kubernetes.io/restartedAt'] = '2026-11-30T10:00:00Z';
    (quiet.status as { conditions: { lastTransitionTime: string }[] }).conditions[2]!.lastTransitionTime = '2026-11-30T10:00:05Z';
    server.apply(quiet);
    await until(() => h.source.counters.events.Pod.unchanged === 1, 'the unchanged pod taken as a bookmark');
    assert.equal(h.source.counters.events.Pod.upserts, upserts);
    assert.equal(h.events.length, events, 'no event for a change weir does not keep');
    assertStoreEqualsServer(h.store, server);

    // the server is asked for unfinished pods only, on the list and on every watch
    const lists = server.requestsOf('list', 'Pod');
    const watches = server.requestsOf('watch', 'Pod');
    assert.ok(lists.length >= 1 && watches.length >= 1);
    for (const r of [...lists, ...watches]) assert.equal(r.query.fieldSelector, POD_FIELD_SELECTOR, `${r.verb} ${r.path}`);
    for (const r of server.requestsOf('list', 'Service')) assert.equal(r.query.fieldSelector, undefined);
  } finally {
    await h.stop();
    await server.stop();
  }
});

test('WEIR_KUBE_KEEP_WHOLE_OBJECTS: keepWholeObjects keeps objects as served (the bench compares both)', async () => {
  const server = new FakeApiServer({ token: 'weir-test-token' });
  await server.start();
  server.apply(fatPod({ namespace: 'shop', name: 'web-0', app: 'web', node: 'node-a', ip: '198.18.1.10' }));
  const h = harness(kubeConfigFor(server), { keepWholeObjects: true });
  try {
    await h.waitFor((e) => e.type === 'synced', 10_000);
    assert.ok(JSON.stringify(h.store.get('Pod', 'shop/web-0')).includes('managedFields'));
  } finally {
    await h.stop();
    await server.stop();
  }
});
