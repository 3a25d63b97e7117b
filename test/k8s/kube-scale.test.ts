// KubeSource at size through the real client library: 1,000 Services with their
// EndpointSlices are all in the store (and the model) when 'synced' fires, and each of 50
// changes reaches the sink, in order. Prints the latencies (the bench measures time).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeApiServer } from './fake-apiserver.js';
import { assertStoreEqualsServer, backendIp, clusterIp, endpointSlice, harness, kubeConfigFor, namespace, percentile, service } from './harness.js';
import { buildServiceState } from '../../src/model/services.js';

const SERVICES = 1000;

test('1,000 services with endpoints: all present at synced; every change reaches the sink (latency printed)', async () => {
  const server = new FakeApiServer({ tls: true, token: 'weir-test-token' });
  await server.start();
  for (const ns of ['shop', 'db', 'infra', 'batch']) server.apply(namespace(ns));
  const nsOf = (i: number) => ['shop', 'db', 'infra', 'batch'][i % 4]!;
  for (let i = 0; i < SERVICES; i++) {
    server.apply(service(nsOf(i), `svc-${i}`, clusterIp(i)));
    server.apply(endpointSlice(nsOf(i), `svc-${i}`, `svc-${i}-a`, [backendIp(i, 0), backendIp(i, 1)]));
  }
  const t0 = performance.now();
  const h = harness(kubeConfigFor(server));
  let atSynced: { services: number; slices: number; frontendsWithBackends: number } | undefined;
  try {
    await h.waitFor((e) => {
      if (e.type !== 'synced') return false;
      const state = buildServiceState(h.store, { nodeName: 'node-a', nodeAddresses: [] });
      atSynced = {
        services: h.store.size('Service'),
        slices: h.store.size('EndpointSlice'),
        frontendsWithBackends: [...state.frontends.values()].filter((f) => f.backends.length === 2).length,
      };
      return true;
    }, 20_000);
    const syncMs = performance.now() - t0;
    console.log(
      `# kube sync: ${SERVICES} services + ${SERVICES} endpointslices listed and synced in ${syncMs.toFixed(0)} ms (${server.counters.listPages} list pages)`,
    );
    assert.deepEqual(atSynced, { services: SERVICES, slices: SERVICES, frontendsWithBackends: SERVICES });
    assertStoreEqualsServer(h.store, server);
    // pages of 500: two per kind with 1,000 objects
    assert.equal(server.requestsOf('list', 'Service').length, 2);
    assert.equal(server.requestsOf('list', 'EndpointSlice').length, 2);

    // 50 EndpointSlice changes, one at a time: server write → sink
    const latencies: number[] = [];
    for (let n = 0; n < 50; n++) {
      const i = (n * 37) % SERVICES;
      const want = backendIp(i, 2 + (n % 2));
      const t = performance.now();
      server.apply(endpointSlice(nsOf(i), `svc-${i}`, `svc-${i}-a`, [backendIp(i, 0), want]));
      const key = `${nsOf(i)}/svc-${i}-a`;
      await h.waitFor((e) => e.type === 'upsert' && e.kind === 'EndpointSlice' && e.key === key && JSON.stringify(e.object).includes(want), 10_000);
      latencies.push(performance.now() - t);
      // the next change only after this one was seen; old events must not satisfy the next wait
      h.events.length = 0;
    }
    const p50 = percentile(latencies, 50);
    const max = Math.max(...latencies);
    const p95 = percentile(latencies, 95);
    const figures = `p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${max.toFixed(1)} ms`;
    console.log(`# kube change latency (server write → sink) over 50 EndpointSlice changes: ${figures}`);
    assert.equal(latencies.length, 50, 'every change reached the sink');
    assertStoreEqualsServer(h.store, server);
    assert.equal(h.source.counters.relists, 0);
    assert.equal(h.source.counters.errors, 0);
  } finally {
    await h.stop();
    await server.stop();
  }
});
