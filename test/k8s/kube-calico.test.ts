// Calico's projectcalico.org/v3 GlobalNetworkPolicy and HostEndpoint through the API source (the
// real client-node informers) against the fake API server: list in pages, watch with bookmarks,
// add/modify/delete; and a cluster without the CRDs: the kinds are empty, the source syncs
// anyway, says so once, counts it, retries with backoff, and picks the CRDs up when they are
// installed later (and empties the kinds when they are removed again), with no restart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeApiServer } from './fake-apiserver.js';
import { assertStoreEqualsServer, globalNetworkPolicy, harness, hostEndpoint, kubeConfigFor, node, service, until } from './harness.js';
import { CALICO_KINDS } from '../../src/sources/types.js';

const CALICO = 'projectcalico.org';

test('GlobalNetworkPolicy and HostEndpoint: paged list, watch with bookmarks, add/modify/delete, slim objects', async () => {
  const server = new FakeApiServer({ bookmarkIntervalMs: 50 });
  await server.start();
  for (const name of ['allow-ssh', 'allow-bgp', 'deny-all']) server.apply(globalNetworkPolicy(name));
  server.apply({ ...hostEndpoint('node-a-eth0', 'node-a', 'eth0', '198.18.200.1'), metadata: { name: 'node-a-eth0', annotations: { big: 'x'.repeat(1000) } } });
  const h = harness(kubeConfigFor(server), { kinds: CALICO_KINDS, pageSize: 2 });
  try {
    await h.waitFor((e) => e.type === 'synced');
    assert.deepEqual([...h.store.globalNetworkPolicies.keys()].sort(), ['allow-bgp', 'allow-ssh', 'deny-all']);
    assert.deepEqual([...h.store.hostEndpoints.keys()], ['node-a-eth0']);
    assertStoreEqualsServer(h.store, server);
    // three policies in pages of two: the second page was asked for with the continue token
    const lists = server.requestsOf('list', 'GlobalNetworkPolicy');
    assert.deepEqual(
      lists.map((r) => [r.path, r.query.limit, r.query.continue !== undefined]),
      [
        ['/apis/projectcalico.org/v3/globalnetworkpolicies', '2', false],
        ['/apis/projectcalico.org/v3/globalnetworkpolicies', '2', true],
      ],
    );
    const gnp = h.store.globalNetworkPolicies.get('allow-ssh')!;
    assert.equal(gnp.kind, 'GlobalNetworkPolicy');
    assert.equal(gnp.apiVersion, 'projectcalico.org/v3');
    assert.deepEqual(gnp.metadata.labels, { team: 'infra' });
    // the spec is kept whole, ports as the server sent them (numbers and "lo:hi" strings)
    assert.deepEqual(gnp.spec, globalNetworkPolicy('allow-ssh').spec);
    // slim: the name, labels and version are kept, the rest of the metadata (annotations, uid) is not
    const hep = h.store.hostEndpoints.get('node-a-eth0')!;
    assert.deepEqual(Object.keys(hep.metadata).sort(), ['creationTimestamp', 'name', 'resourceVersion']);
    assert.deepEqual(hep.spec, { node: 'node-a', interfaceName: 'eth0', expectedIPs: ['198.18.200.1'], profiles: ['projectcalico-default-allow'] });

    // watch: add, modify, delete, as events and in the store
    server.apply(hostEndpoint('node-b-eth0', 'node-b', 'eth0', '198.18.200.2'));
    await h.waitFor((e) => e.type === 'upsert' && e.kind === 'HostEndpoint' && e.key === 'node-b-eth0');
    server.apply(globalNetworkPolicy('allow-ssh', 5));
    await h.waitFor((e) => e.type === 'upsert' && e.kind === 'GlobalNetworkPolicy' && e.key === 'allow-ssh' && e.object.spec.order === 5);
    assert.equal(h.store.globalNetworkPolicies.get('allow-ssh')!.spec.order, 5);
    server.delete('GlobalNetworkPolicy', undefined, 'deny-all');
    await h.waitFor((e) => e.type === 'delete' && e.kind === 'GlobalNetworkPolicy' && e.key === 'deny-all');
    server.delete('HostEndpoint', undefined, 'node-a-eth0');
    await h.waitFor((e) => e.type === 'delete' && e.kind === 'HostEndpoint' && e.key === 'node-a-eth0');
    assertStoreEqualsServer(h.store, server);

    // the structural check applies to the API's objects too: skipped, logged, counted
    server.apply({ apiVersion: 'projectcalico.org/v3', kind: 'HostEndpoint', metadata: { name: 'no-node' }, spec: { interfaceName: 'eth9' } });
    server.apply(hostEndpoint('node-c-eth0', 'node-c', 'eth0', '198.18.200.3'));
    await h.waitFor((e) => e.type === 'upsert' && e.key === 'node-c-eth0');
    assert.equal(h.store.hostEndpoints.has('no-node'), false);
    assert.deepEqual(Object.fromEntries(h.source.counters.rejected), { 'invalid-object': 1 });
    assert.ok(h.log.lines.some((l) => l.startsWith('warn kube: invalid object skipped') && l.includes('HostEndpoint/no-node: spec.node: required')));

    // bookmarks arrive; a dropped watch resumes from the last version, without a relist
    await until(() => server.counters.bookmarks >= 2, 'bookmarks');
    for (const kind of CALICO_KINDS) assert.equal(server.requestsOf('watch', kind)[0]!.query.allowWatchBookmarks, 'true', kind);
    server.dropWatches('clean');
    server.apply(globalNetworkPolicy('after-drop'));
    await h.waitFor((e) => e.type === 'upsert' && e.key === 'after-drop');
    assert.equal(h.source.counters.relists, 0);
    assert.equal(h.source.counters.errors, 0);
    assert.deepEqual(h.source.counters.notServed, {});
    assert.deepEqual(h.source.health().notServed, []);
    assert.deepEqual([...h.store.hostEndpoints.keys()].sort(), ['node-b-eth0', 'node-c-eth0']);
    assert.deepEqual(h.source.counters.events.GlobalNetworkPolicy, { upserts: 5, deletes: 1, unchanged: 0, lists: 1 });
  } finally {
    await h.stop();
    await server.stop();
  }
});

test('Calico CRDs absent: the kinds are empty and the source syncs; logged once, counted, retried; installed later, removed again', async () => {
  const server = new FakeApiServer({ unservedGroups: [CALICO] });
  await server.start();
  server.apply(node('node-a', '198.18.200.1'));
  server.apply(service('shop', 'web', '198.18.0.10'));
  const h = harness(kubeConfigFor(server), { kinds: ['Service', 'Node', ...CALICO_KINDS], backoff: { initialMs: 20, maxMs: 200 } });
  const notServedLines = () => h.log.lines.filter((l) => l.startsWith('warn kube: kind not served'));
  try {
    await h.waitFor((e) => e.type === 'synced');
    assert.equal(h.store.size('Service'), 1);
    assert.equal(h.store.size('Node'), 1);
    for (const kind of CALICO_KINDS) assert.equal(h.store.size(kind), 0, kind);
    assert.deepEqual(h.source.notReady(), [], 'a kind not served does not hold readiness');
    assert.deepEqual(h.source.health().notServed.sort(), [...CALICO_KINDS].sort());
    assert.equal(h.source.health().apiReachable, true);

    // retried: several 404 lists per kind, no watch of a kind not served, one log line per kind
    await until(() => CALICO_KINDS.every((k) => (h.source.counters.notServed[k] ?? 0) >= 4), 'four lists of each Calico kind');
    for (const kind of CALICO_KINDS) {
      const lists = server.requestsOf('list', kind);
      assert.ok(lists.length >= 4 && lists.every((r) => r.status === 404), `${kind}: ${JSON.stringify(lists.map((r) => r.status))}`);
      assert.equal(server.requestsOf('watch', kind).length, 0, `${kind}: no watch while not served`);
    }
    assert.equal(notServedLines().length, 2, notServedLines().join('\n'));
    assert.ok(notServedLines()[0]!.includes('/apis/projectcalico.org/v3/'), notServedLines()[0]);
    assert.equal(h.source.counters.errors, 0, 'a kind not served is not a list/watch error');
    assert.equal(h.source.counters.relists, 0);

    // discovery, as kubectl sees it: the group appears once installed
    const groups = async () =>
      ((await (await fetch(`${server.url}/apis`)).json()) as { groups: { name: string; preferredVersion: { groupVersion: string } }[] }).groups.map(
        (g) => g.preferredVersion.groupVersion,
      );
    assert.ok(!(await groups()).includes('projectcalico.org/v3'));

    // the CRDs are installed: the next retry lists them, and their changes are watched
    server.serveGroup(CALICO, true);
    assert.ok((await groups()).includes('projectcalico.org/v3'));
    const resources = (await (await fetch(`${server.url}/apis/projectcalico.org/v3`)).json()) as { resources: { name: string; namespaced: boolean }[] };
    assert.deepEqual(
      resources.resources.map((r) => `${r.name} ${r.namespaced}`),
      ['globalnetworkpolicies false', 'hostendpoints false'],
    );
    server.apply(globalNetworkPolicy('allow-ssh'));
    server.apply(hostEndpoint('node-a-eth0', 'node-a', 'eth0', '198.18.200.1'));
    await h.waitFor((e) => e.type === 'upsert' && e.kind === 'GlobalNetworkPolicy' && e.key === 'allow-ssh');
    await h.waitFor((e) => e.type === 'upsert' && e.kind === 'HostEndpoint' && e.key === 'node-a-eth0');
    await until(() => h.source.health().notServed.length === 0, 'both kinds served');
    assert.equal(h.log.lines.filter((l) => l.startsWith('info kube: kind served now')).length, 2);
    server.apply(globalNetworkPolicy('allow-ssh', 7));
    await h.waitFor((e) => e.type === 'upsert' && e.key === 'allow-ssh' && e.kind === 'GlobalNetworkPolicy' && e.object.spec.order === 7);
    server.delete('HostEndpoint', undefined, 'node-a-eth0');
    await h.waitFor((e) => e.type === 'delete' && e.kind === 'HostEndpoint' && e.key === 'node-a-eth0');
    server.apply(hostEndpoint('node-a-eth1', 'node-a', 'eth1', '198.18.201.1'));
    await h.waitFor((e) => e.type === 'upsert' && e.kind === 'HostEndpoint' && e.key === 'node-a-eth1');
    assertStoreEqualsServer(h.store, server);

    // the CRDs are removed (their objects with them): the watch ends, the relist answers 404,
    // what the store held is deleted, and the source says so once more
    server.serveGroup(CALICO, false);
    await h.waitFor((e) => e.type === 'delete' && e.kind === 'GlobalNetworkPolicy' && e.key === 'allow-ssh');
    await h.waitFor((e) => e.type === 'delete' && e.kind === 'HostEndpoint' && e.key === 'node-a-eth1');
    for (const kind of CALICO_KINDS) assert.equal(h.store.size(kind), 0, kind);
    await until(() => h.source.health().notServed.length === 2, 'both kinds not served again');
    assert.equal(notServedLines().length, 4, notServedLines().join('\n'));
    assert.equal(h.store.size('Service'), 1, 'the other kinds are untouched');

    // and installed again
    server.serveGroup(CALICO, true);
    server.apply(globalNetworkPolicy('back'));
    await h.waitFor((e) => e.type === 'upsert' && e.key === 'back');
    assertStoreEqualsServer(h.store, server);
    assert.equal(h.source.counters.errors, 0);
  } finally {
    await h.stop();
    await server.stop();
  }
});

test('Calico kinds forbidden (the ClusterRole of an older deploy/weir.yaml): empty, the services sync; granted later, read', async () => {
  const server = new FakeApiServer({ forbidden: [...CALICO_KINDS] });
  await server.start();
  server.apply(service('shop', 'web', '198.18.0.10'));
  server.apply(globalNetworkPolicy('allow-ssh'));
  const h = harness(kubeConfigFor(server), { kinds: ['Service', ...CALICO_KINDS], backoff: { initialMs: 20, maxMs: 200 } });
  try {
    await h.waitFor((e) => e.type === 'synced');
    assert.equal(h.store.size('Service'), 1);
    assert.equal(h.store.size('GlobalNetworkPolicy'), 0);
    assert.deepEqual(h.source.notReady(), []);
    const lists = server.requestsOf('list', 'GlobalNetworkPolicy');
    assert.ok(lists.length >= 1 && lists.every((r) => r.status === 403), JSON.stringify(lists.map((r) => r.status)));
    const lines = h.log.lines.filter((l) => l.startsWith('warn kube: kind not served'));
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.ok(
      lines.every((l) => l.includes("forbidden: weir's ClusterRole lacks list/watch on projectcalico.org")),
      lines.join('\n'),
    );
    assert.equal(h.source.counters.errors, 0);

    // the new ClusterRole is applied: the next try reads them
    for (const kind of CALICO_KINDS) server.forbid(kind, false);
    await h.waitFor((e) => e.type === 'upsert' && e.kind === 'GlobalNetworkPolicy' && e.key === 'allow-ssh');
    await until(() => h.source.health().notServed.length === 0, 'both kinds read');
    assertStoreEqualsServer(h.store, server);
  } finally {
    await h.stop();
    await server.stop();
  }
});
