// PodSourceTable (dataplane/pod-sources.ts): the workload interfaces' routed addresses into
// weir_pod_addrs4 / weir_pod_addrs6, address -> ifindex, in canonical text; a second sync of
// the same list writes nothing, a pod moved to another interface is one write, an interface
// gone is a delete; an address routed to two interfaces stays with the first; a failed write
// is logged and counted and the rest still written.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WeirPodAddr } from '../../src/bpf/index.js';
import { PodSourceTable, type PodAddrMaps } from '../../src/dataplane/pod-sources.js';
import { memoryLogger } from '../../src/log.js';
import { FakeMap } from './fake-maps.js';

type Key = { address: string };
const table = (m: FakeMap<Key, WeirPodAddr>) => Object.fromEntries([...m.entries()].map(([k, v]) => [k.address, v.ifindex]));

function setup() {
  const v4 = new FakeMap<Key, WeirPodAddr>();
  const v6 = new FakeMap<Key, WeirPodAddr>();
  const log = memoryLogger();
  return { v4, v6, log, t: new PodSourceTable({ 4: v4, 6: v6 } as unknown as PodAddrMaps, log) };
}

const PODS = [
  { ifindex: 5, ifname: 'veth-a', addresses: ['198.18.1.2', '2001:2:0:1:0:0:0:2'] },
  { ifindex: 6, ifname: 'veth-b', addresses: ['198.18.1.3'] },
];

test('each address to its interface, by family, in the text the codec reads back; the same list again writes nothing', () => {
  const { v4, v6, t } = setup();
  assert.equal(t.sync(PODS), 3);
  assert.deepEqual(table(v4), { '198.18.1.2': 5, '198.18.1.3': 6 });
  assert.deepEqual(table(v6), { '2001:2:0:1::2': 5 });
  assert.equal(t.sync(PODS), 0);
});

test('a pod on a new interface: its addresses rebound; an interface gone: its addresses deleted', () => {
  const { v4, v6, t } = setup();
  t.sync(PODS);
  assert.equal(t.sync([{ ...PODS[0]!, ifindex: 9 }, PODS[1]!]), 2, 'both of its addresses rebound');
  assert.deepEqual(table(v4), { '198.18.1.2': 9, '198.18.1.3': 6 });
  assert.equal(t.sync([PODS[1]!]), 2);
  assert.deepEqual([table(v4), table(v6)], [{ '198.18.1.3': 6 }, {}]);
});

test('an address routed to two interfaces stays with the first, and is said', () => {
  const { v4, log, t } = setup();
  t.sync([PODS[0]!, { ifindex: 7, ifname: 'veth-c', addresses: ['198.18.1.2'] }]);
  assert.deepEqual(table(v4), { '198.18.1.2': 5 });
  assert.ok(
    log.lines.some((l) => l.includes('routed to two interfaces') && l.includes('198.18.1.2')),
    log.lines.join('\n'),
  );
});

test('a failed write is logged and counted; the other addresses are written', () => {
  const { v4, log, t } = setup();
  v4.failOn = (k) => k.address === '198.18.1.3';
  t.sync(PODS);
  assert.deepEqual(table(v4), { '198.18.1.2': 5 });
  assert.equal(t.errors, 1);
  assert.ok(
    log.lines.some((l) => l.includes('pod address write failed') && l.includes('198.18.1.3')),
    log.lines.join('\n'),
  );
});
