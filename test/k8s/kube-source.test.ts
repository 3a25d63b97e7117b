// KubeSource against the fake API server through the real client library: initial list and
// 'synced', typed objects as the manifests source gives them, changes, deletes, auth.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeApiServer } from './fake-apiserver.js';
import {
  assertStoreEqualsServer,
  endpointSlice,
  globalNetworkPolicy,
  harness,
  hostEndpoint,
  kubeConfigFor,
  namespace,
  networkPolicy,
  node,
  pod,
  service,
} from './harness.js';
import { OBJECT_KINDS } from '../../src/sources/types.js';
import { buildServiceState, sortedFrontends } from '../../src/model/services.js';

test('every kind is listed before synced; watch changes and deletes follow; objects are typed', async () => {
  const server = new FakeApiServer({ tls: true, token: 'weir-test-token' });
  await server.start();
  server.apply(namespace('shop'));
  server.apply(node('node-a', '198.18.200.1'));
  server.apply(pod('shop', 'web-0', '198.19.0.5'));
  server.apply(networkPolicy('shop', 'allow-lan'));
  server.apply(service('shop', 'web', '198.18.0.10'));
  server.apply(endpointSlice('shop', 'web', 'web-abc', ['198.19.0.5']));
  server.apply(globalNetworkPolicy('allow-ssh'));
  server.apply(hostEndpoint('node-a-eth0', 'node-a', 'eth0', '198.18.200.1'));
  const h = harness(kubeConfigFor(server));
  try {
    await h.waitFor((e) => e.type === 'synced');
    const firstSynced = h.events.findIndex((e) => e.type === 'synced');
    assert.equal(firstSynced, 8, 'eight upserts, then synced');
    for (const k of OBJECT_KINDS) assert.equal(h.store.size(k), 1, k);
    assertStoreEqualsServer(h.store, server);
    const svc = h.store.get('Service', 'shop/web')!;
    assert.equal(svc.kind, 'Service');
    assert.equal(svc.apiVersion, 'v1');
    assert.ok(svc.metadata?.creationTimestamp instanceof Date, 'list items are deserialized (Date)');
    // plain objects under their JSON names, as the manifests source stores them: not the library's typing (`from` as `_from`)
    const rule = (key: string) => (h.store.get('NetworkPolicy', key) as unknown as { spec: { ingress: object[] } }).spec.ingress[0];
    assert.deepEqual(rule('shop/allow-lan'), { from: [{ ipBlock: { cidr: '198.18.0.0/15', except: ['198.18.9.0/24'] } }] }, 'a listed NetworkPolicy');
    assert.equal(h.events.at(-1)?.type, 'synced');
    assert.ok(h.events.every((e) => e.origin === 'api'));

    // a watch change: typed like list items
    server.apply(endpointSlice('shop', 'web', 'web-abc', ['198.19.0.5', '198.19.0.6']));
    const ev = await h.waitFor((e) => e.type === 'upsert' && e.kind === 'EndpointSlice' && (e.object as { endpoints?: unknown[] }).endpoints?.length === 2);
    assert.ok(ev.type === 'upsert' && ev.object.metadata?.creationTimestamp instanceof Date, 'watch objects are deserialized (Date)');
    assert.equal(ev.type === 'upsert' && ev.object.kind, 'EndpointSlice');
    server.apply(networkPolicy('shop', 'allow-lan-2'));
    await h.waitFor((e) => e.type === 'upsert' && e.key === 'shop/allow-lan-2');
    assert.deepEqual(rule('shop/allow-lan-2'), { from: [{ ipBlock: { cidr: '198.18.0.0/15', except: ['198.18.9.0/24'] } }] }, 'a watched NetworkPolicy');
    const fe = sortedFrontends(buildServiceState(h.store, { nodeName: 'node-a', nodeAddresses: [] }));
    assert.deepEqual(
      fe.map(
        (f) =>
          `${f.address}:${f.port} ${f.backends
            .map((b) => b.address)
            .sort()
            .join(',')}`,
      ),
      ['198.18.0.10:80 198.19.0.5,198.19.0.6'],
    );

    server.delete('Service', 'shop', 'web');
    await h.waitFor((e) => e.type === 'delete' && e.kind === 'Service' && e.key === 'shop/web');
    server.delete('Node', undefined, 'node-a');
    await h.waitFor((e) => e.type === 'delete' && e.kind === 'Node' && e.key === 'node-a');
    assertStoreEqualsServer(h.store, server);
    assert.equal(h.source.counters.events.Service.deletes, 1);
    assert.equal(h.source.counters.events.EndpointSlice.upserts, 2);
    assert.equal(h.source.counters.relists, 0);
    // the informers asked for bookmarks and a server-side timeout
    const w = server.requestsOf('watch', 'Service')[0]!;
    assert.equal(w.query.allowWatchBookmarks, 'true');
    assert.ok(Number(w.query.timeoutSeconds) >= 300);
    assert.equal(h.source.health().apiReachable, true);
    assert.deepEqual(h.source.notReady(), []);
    assert.equal(h.source.health().connected, true);
  } finally {
    await h.stop();
    await server.stop();
  }
});
