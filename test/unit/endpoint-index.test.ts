// The node maps' endpoint index (dataplane/endpoint-index.ts) and NodeMapSync's use of it: an
// address placed on the first non-empty node name whatever the slice order, conflicts and
// moves tracked slice by slice; no endpoint read while no peer exists; a move writes only the
// addresses that moved and leaves the maps as a full replan would.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import { EndpointIndex } from '../../src/dataplane/endpoint-index.js';
import { NodeMapSync } from '../../src/dataplane/node-map-sync.js';
import { desiredNodeMaps, sliceLocations, type NodeMaps } from '../../src/dataplane/node-maps.js';
import { memoryLogger } from '../../src/log.js';
import { buildNodeTable } from '../../src/model/nodes.js';
import { Store } from '../../src/sources/store.js';
import { FakeMap } from './fake-maps.js';

const at = (address: string, nodeName: string) => ({ address, nodeName });
const placement = (index: EndpointIndex) =>
  Object.fromEntries([...index.nodes(4)].map(([n, a]) => [n, [...a].sort()]).sort((x, y) => (x[0]! < y[0]! ? -1 : 1)));

test('EndpointIndex: the first non-empty name places an address whatever the order; counts per slice; conflicts come and go', () => {
  const index = new EndpointIndex();
  assert.equal(index.setSlice('s1', [at('198.18.9.1', 'node-c'), at('198.18.9.2', '')]), true);
  assert.deepEqual([...index.takeDirty()].sort(), ['198.18.9.1', '198.18.9.2']);
  assert.equal(index.setSlice('s1', [at('198.18.9.1', 'node-c'), at('198.18.9.2', '')]), false, 'the same locations change nothing');
  // a second slice names node-b for .1 (a conflict: node-b sorts first) and a node for .2
  assert.equal(index.setSlice('s2', [at('198.18.9.1', 'node-b'), at('198.18.9.2', 'node-c'), at('2001:2::9', 'node-c')]), true);
  assert.deepEqual(placement(index), { 'node-b': ['198.18.9.1'], 'node-c': ['198.18.9.2'] });
  assert.deepEqual(
    [...index.nodes(6)].map(([n, a]) => [n, [...a]]),
    [['node-c', ['2001:2::9']]],
  );
  assert.deepEqual([...index.conflicts], ['198.18.9.1']);
  assert.deepEqual(index.namesOf('198.18.9.1'), ['node-b', 'node-c']);
  assert.deepEqual([...index.takeDirty()].sort(), ['198.18.9.1', '198.18.9.2', '2001:2::9']);
  // s2 goes: .1 back on node-c, no conflict; .2 unnamed again; the IPv6 address gone
  assert.equal(index.setSlice('s2', []), true);
  assert.deepEqual(placement(index), { '': ['198.18.9.2'], 'node-c': ['198.18.9.1'] });
  assert.deepEqual([...index.conflicts], []);
  assert.equal(index.placedOn('2001:2::9'), undefined);
  assert.equal(index.size, 2);
  // the same address twice in one slice with one name, then once: still placed (counted, not a set)
  index.setSlice('s3', [at('198.18.9.3', 'node-d'), at('198.18.9.3', 'node-d')]);
  index.setSlice('s3', [at('198.18.9.3', 'node-d')]);
  assert.equal(index.placedOn('198.18.9.3'), 'node-d');
  // a conflict appearing without a move is a change (the planner says it), with nothing dirty
  index.takeDirty();
  assert.equal(index.setSlice('s4', [at('198.18.9.3', 'node-e')]), true);
  assert.equal(index.placedOn('198.18.9.3'), 'node-d');
  assert.deepEqual([...index.takeDirty()], []);
});

function node(name: string, address: string, podCIDRs: string[] = []): V1Node {
  return { metadata: { name }, spec: { podCIDRs }, status: { addresses: [{ type: 'InternalIP', address }] } };
}
const slice = (eps: [string, string][]): V1EndpointSlice => ({
  addressType: 'IPv4',
  metadata: { name: 'x', labels: { 'kubernetes.io/service-name': 'x' } },
  endpoints: eps.map(([ip, nodeName]) => ({ addresses: [ip], nodeName, conditions: { ready: true } })),
});
const tick = () => new Promise((r) => setImmediate(r));

test('NodeMapSync: no endpoint read while no other node exists; the first peer reads them; moves keep the maps equal to a full replan', async () => {
  const store = new Store();
  const maps = { family: 4, nodes: new FakeMap<object, object>(), tunnel: new FakeMap<object, object>() };
  const log = memoryLogger();
  const sync = new NodeMapSync(maps as unknown as NodeMaps, store, 'node-a', log);
  const put = (kind: 'Node' | 'EndpointSlice', key: string, object: object | undefined) => {
    const change = store.apply({ type: object ? 'upsert' : 'delete', kind, key, object: object as never, origin: 'test', observedAt: 0 } as never);
    if (change) sync.changed(change);
  };
  put('Node', 'node-a', node('node-a', '198.18.0.1', ['198.18.1.0/24']));
  for (let s = 0; s < 20; s++)
    put(
      'EndpointSlice',
      `ns/s${s}`,
      slice([
        [`198.18.9.${s}`, 'node-a'],
        [`198.18.10.${s}`, 'node-b'],
      ]),
    );
  sync.start();
  assert.equal(sync.index.size, 0, 'nothing indexed with no peer');
  assert.ok(
    log.lines.some((l) => l.includes('not read: no peer')),
    log.lines.join('\n'),
  );
  put('EndpointSlice', 'ns/s0', slice([['198.18.9.0', 'node-b']]));
  await tick();
  assert.equal([...maps.tunnel.keys()].length, 0);

  // node-b appears: every slice is read once, node-b's endpoints routed
  put('Node', 'node-b', node('node-b', '198.18.0.2', ['198.18.10.0/28']));
  await tick();
  assert.equal(sync.index.size, 39);
  const full = () => {
    const locations = [...store.map('EndpointSlice').values()].flatMap((s) => sliceLocations(s));
    const want = desiredNodeMaps(buildNodeTable(store.nodes.values()), 'node-a', locations);
    return [...want.tunnel].map(([k, v]) => `${k}>${v.nodeIp}`).sort();
  };
  const have = () =>
    [...maps.tunnel.entries()]
      .map(([k, v]) => `${(k as { address: string }).address}/${(k as { prefixlen: number }).prefixlen}>${(v as { node_ip: string }).node_ip}`)
      .sort();
  assert.deepEqual(have(), full());
  assert.ok(have().includes('198.18.9.0/32>198.18.0.2'));
  const applies = sync.writer.stats.applies;
  // moves and deletes, several per turn, some slices sharing addresses: after each turn the maps equal a full replan
  put('Node', 'node-c', node('node-c', '198.18.0.3', []));
  await tick();
  let seed = 7;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const names = ['node-a', 'node-b', 'node-c', 'node-z', ''];
  for (let turn = 0; turn < 30; turn++) {
    for (let k = 0; k < 3; k++) {
      const s = rnd(20);
      if (rnd(6) === 0) put('EndpointSlice', `ns/s${s}`, undefined);
      else put('EndpointSlice', `ns/s${s}`, slice([[`198.18.${9 + rnd(2)}.${rnd(24)}`, names[rnd(names.length)]!]]));
    }
    await tick();
    assert.deepEqual(have(), full(), `turn ${turn}`);
  }
  assert.ok(sync.writer.stats.applies > applies + 20, 'the turns applied');
  sync.stop();
});
