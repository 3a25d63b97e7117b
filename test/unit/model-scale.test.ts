// Scale and incremental updates: 50k services × 10 endpoints built from scratch (timing printed,
// not asserted), then single-service changes that recompute one service and report a minimal diff.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { affectedServiceKeys, buildServiceState, diffServiceStates, sortedFrontends, updateServiceState } from '../../src/model/services.js';
import { Store } from '../../src/sources/store.js';
import { NODE, slice, svc } from './model-helpers.js';

function ipv4(n: number): string {
  return `${198 + ((n >>> 16) & 1)}.${18 + ((n >>> 16) >> 1)}.${(n >>> 8) & 255}.${n & 255}`;
}

function upsert(store: Store, kind: 'Service' | 'EndpointSlice', object: V1Service | V1EndpointSlice) {
  const key = `${object.metadata!.namespace}/${object.metadata!.name}`;
  return store.apply({ type: 'upsert', kind, key, object, origin: 'test', observedAt: 0 } as never);
}

test('50k services × 10 endpoints: full build, then incremental updates', () => {
  const N = 50_000;
  const store = new Store();
  for (let i = 0; i < N; i++) {
    // service IPs in 198.19.0.0/16 … spread over 198.18.0.0/15 with a simple counter.
    upsert(store, 'Service', svc(`s${i}`, { clusterIP: ipv4(65536 + i) }));
    const eps = Array.from({ length: 10 }, (_, j) => ({ ip: ipv4((i * 10 + j) % 65536), node: j === 0 ? 'node-a' : 'node-b' }));
    upsert(store, 'EndpointSlice', slice(`s${i}-x`, `s${i}`, eps));
  }
  const t0 = performance.now();
  const state = buildServiceState(store, NODE);
  const t1 = performance.now();
  console.log(`# full build: ${N} services, ${state.frontends.size} frontends in ${(t1 - t0).toFixed(0)} ms`);
  assert.equal(state.frontends.size, N);
  assert.equal(state.services.size, N);

  // One endpoint becomes terminating in one slice.
  const changed = slice('s123-x', 's123', [
    { ip: '198.18.200.1', node: 'node-a', ready: false, serving: true, terminating: true },
    { ip: '198.18.200.2', node: 'node-b' },
  ]);
  const ch = upsert(store, 'EndpointSlice', changed)!;
  const keys = affectedServiceKeys(ch.kind, ch.previous, ch.current);
  assert.deepEqual(keys, ['default/s123']);
  const t2 = performance.now();
  const diff = updateServiceState(state, store, NODE, keys);
  const t3 = performance.now();
  console.log(`# incremental update of 1 service: ${(t3 - t2).toFixed(2)} ms`);
  assert.equal(diff.upserted.length, 1);
  assert.deepEqual(diff.removed, []);
  const f = diff.upserted[0]!;
  assert.deepEqual(
    f.backends.map((b) => b.address),
    ['198.18.200.2'],
  );
  assert.deepEqual(
    f.establishedOnly.map((b) => b.address),
    ['198.18.200.1'],
  );

  // Re-applying identical content changes nothing.
  assert.deepEqual(updateServiceState(state, store, NODE, keys), { upserted: [], removed: [] });

  // Deleting a service removes its frontend.
  const del = store.apply({ type: 'delete', kind: 'Service', key: 'default/s7', object: store.get('Service', 'default/s7')!, origin: 'test', observedAt: 0 })!;
  const d2 = updateServiceState(state, store, NODE, affectedServiceKeys(del.kind, del.previous, del.current));
  assert.deepEqual(d2, { upserted: [], removed: [`${ipv4(65536 + 7)}:80/TCP`] });

  // The incrementally maintained state equals a fresh build.
  const t4 = performance.now();
  const fresh = buildServiceState(store, NODE);
  const t5 = performance.now();
  console.log(`# second full build: ${(t5 - t4).toFixed(0)} ms`);
  assert.deepEqual(diffServiceStates(state, fresh), { upserted: [], removed: [] });
  assert.deepEqual(sortedFrontends(state).length, sortedFrontends(fresh).length);
});

test('incremental: slice relabelled to another service updates both; conflict loser takes over', () => {
  const store = new Store();
  upsert(store, 'Service', svc('a', { clusterIP: '198.19.0.1' }));
  upsert(store, 'Service', svc('b', { clusterIP: '198.19.0.2', externalIPs: ['198.19.0.1'] }));
  upsert(store, 'EndpointSlice', slice('x', 'a', [{ ip: '198.18.1.1' }]));
  const state = buildServiceState(store, NODE);
  assert.equal(state.frontends.get('198.19.0.1:80/TCP')!.serviceKey, 'default/a');

  const ch = upsert(store, 'EndpointSlice', slice('x', 'b', [{ ip: '198.18.1.1' }]))!;
  const keys = affectedServiceKeys(ch.kind, ch.previous, ch.current).sort();
  assert.deepEqual(keys, ['default/a', 'default/b']);
  const diff = updateServiceState(state, store, NODE, keys);
  assert.deepEqual(
    diff.upserted.map((f) => `${f.id} ${f.serviceKey} ${f.reject}`),
    ['198.19.0.1:80/TCP default/a true', '198.19.0.2:80/TCP default/b false'],
  );

  // Service a goes away: b's externalIP frontend takes over the address.
  const del = store.apply({ type: 'delete', kind: 'Service', key: 'default/a', object: store.get('Service', 'default/a')!, origin: 't', observedAt: 0 })!;
  const d2 = updateServiceState(state, store, NODE, affectedServiceKeys(del.kind, del.previous, del.current));
  assert.deepEqual(
    d2.upserted.map((f) => `${f.id} ${f.kind} ${f.serviceKey}`),
    ['198.19.0.1:80/TCP ExternalIP default/b'],
  );
  assert.deepEqual(diffServiceStates(state, buildServiceState(store, NODE)), { upserted: [], removed: [] });
});
