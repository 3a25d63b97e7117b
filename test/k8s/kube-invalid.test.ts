// The API source against a server that serves what a real one would refuse (issue 16, break 7):
// 200,000-character names, too many endpoints, a bad port. Each object is skipped with one log line
// and one count, by list and by watch alike; the valid objects around it are served, and a valid
// version stays in the store when a later change to it is invalid.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeApiServer } from './fake-apiserver.js';
import { endpointSlice, harness, kubeConfigFor, service } from './harness.js';
import { buildServiceState, sortedFrontends } from '../../src/model/services.js';

const LONG = 'a'.repeat(200_000);

test('invalid objects from the API are skipped, logged once and counted; the rest is served', async () => {
  const server = new FakeApiServer({ tls: true, token: 'weir-test-token' });
  await server.start();
  server.apply(service('shop', 'web', '198.18.0.10'));
  server.apply(endpointSlice('shop', 'web', 'web-abc', ['198.19.0.5']));
  server.apply(service('shop', LONG, '198.18.0.11'));
  server.apply(service(LONG.slice(0, 64), 'api', '198.18.0.12'));
  server.apply(
    endpointSlice(
      'shop',
      'web',
      'web-many',
      Array.from({ length: 1001 }, (_, i) => `198.19.${8 + (i >> 8)}.${i & 255}`),
    ),
  );
  const h = harness(kubeConfigFor(server), { kinds: ['Service', 'EndpointSlice'] });
  try {
    await h.waitFor((e) => e.type === 'synced');
    assert.deepEqual([...h.store.services.keys()], ['shop/web']);
    assert.deepEqual([...h.store.map('EndpointSlice').keys()], ['shop/web-abc']);
    assert.deepEqual(Object.fromEntries(h.source.counters.rejected), { 'invalid-service': 2, 'invalid-endpointslice': 1 });
    const skipped = () => h.log.lines.filter((l) => l.startsWith('warn kube: invalid object skipped'));
    assert.equal(skipped().length, 3, skipped().join('\n'));
    assert.ok(
      skipped().every((l) => l.length < 1000),
      'the long name is clipped in the log line',
    );
    assert.ok(
      skipped().some((l) => l.includes('metadata.name: 200000 characters, more than 63')),
      skipped().join('\n'),
    );
    assert.ok(
      skipped().some((l) => l.includes('metadata.namespace: 64 characters, more than 63')),
      skipped().join('\n'),
    );
    assert.ok(
      skipped().some((l) => l.includes('endpoints: 1001 items, more than 1000')),
      skipped().join('\n'),
    );

    // by watch: a new invalid object is skipped; an invalid change keeps the last valid version
    server.apply(service('shop', `${LONG}b`, '198.18.0.13'));
    const bad = service('shop', 'web', '198.18.0.10');
    (bad.spec as { ports: { port: number }[] }).ports[0]!.port = 70000;
    server.apply(bad);
    server.apply(service('shop', 'late', '198.18.0.14'));
    await h.waitFor((e) => e.type === 'upsert' && e.key === 'shop/late');
    assert.equal(skipped().length, 5, skipped().join('\n'));
    assert.deepEqual([...h.store.services.keys()].sort(), ['shop/late', 'shop/web']);
    const fe = sortedFrontends(buildServiceState(h.store, { nodeName: 'node-a', nodeAddresses: [] }));
    assert.deepEqual(
      fe.map((f) => `${f.id} ${f.backends.map((b) => b.address).join(',')}`),
      ['198.18.0.10:80/TCP 198.19.0.5', '198.18.0.14:80/TCP '],
    );
    // a delete passes whatever the object: the store forgets what it held
    server.delete('Service', 'shop', 'web');
    await h.waitFor((e) => e.type === 'delete' && e.key === 'shop/web');
    assert.deepEqual([...h.store.services.keys()], ['shop/late']);
  } finally {
    await h.stop();
    await server.stop();
  }
});
