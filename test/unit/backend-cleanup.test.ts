// The clean-up stage (src/dataplane/backend-cleanup.ts) on its own, fed what an applied plan
// removed: affinity of released frontend ids and of endpoints that left, UDP conntrack of
// those endpoints, sockets only for peers no UDP frontend still uses, IPv6 removals kept off
// the IPv4 maps, and a failing step that is logged and counted while the others still run.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WeirCt4, WeirCt4Key } from '../../src/bpf/index.js';
import { BackendCleanup } from '../../src/dataplane/backend-cleanup.js';
import { frontendEntries, type DesiredFrontend } from '../../src/dataplane/frontend-entries.js';
import type { RemovedBackend } from '../../src/dataplane/frontend-plan.js';
import type { Backend, Frontend } from '../../src/model/service-types.js';
import { memoryLogger } from '../../src/log.js';
import { fakeMaps } from './fake-maps.js';

const A = '198.18.1.10';
const B = '198.18.1.11';
const CLIENT = '198.18.1.50';

const gone = (frontendId: number, address: string, port: number, protocol = 17, family: 4 | 6 = 4): RemovedBackend => ({
  family,
  frontendId,
  address,
  port,
  protocol,
});

const ct = (sport: number, backend: string, frontendId: number): [WeirCt4Key, WeirCt4] => [
  { saddr: CLIENT, daddr: '198.19.0.10', sport, dport: 53, protocol: 17 },
  {
    nat_saddr: CLIENT,
    nat_daddr: backend,
    nat_sport: sport,
    nat_dport: 5353,
    flags: 2,
    tcp_flags_seen: 0,
    policy: 0,
    frontend_id: frontendId,
    tunnel_node: '0.0.0.0',
    ifindex: 0,
    created_ns: 0n,
    last_seen_ns: 0n,
    packets: 0n,
    bytes: 0n,
  },
];

function udpFrontend(address: string, backends: string[]): DesiredFrontend[] {
  const bs: Backend[] = backends.map((a) => ({
    address: a,
    port: 5353,
    nodeName: 'n',
    isLocal: true,
    ready: true,
    serving: true,
    terminating: false,
    zone: '',
  }));
  const f: Frontend = {
    id: `${address}:53/UDP`,
    serviceKey: 'default/dns',
    portName: 'dns',
    servicePortKey: 'default/dns:dns/UDP',
    kind: 'ClusterIP',
    family: 4,
    address,
    port: 53,
    protocol: 'UDP',
    backends: bs,
    inClusterBackends: bs,
    establishedOnly: [],
    localOnly: false,
    reject: false,
    affinity: null,
    sourceRanges: null,
    lbAlgorithm: null,
  };
  return frontendEntries(f) as DesiredFrontend[];
}

function setup(destroySockets?: () => number) {
  const { fake, maps } = fakeMaps();
  const log = memoryLogger();
  const cleanup = new BackendCleanup(maps, log, destroySockets ? { destroySockets } : {});
  fake.affinity.set({ client: CLIENT, frontend_id: 1 }, { backend: A, port: 5353, pad: 0, last_used_ns: 1n });
  fake.affinity.set({ client: '198.18.1.51', frontend_id: 1 }, { backend: B, port: 5353, pad: 0, last_used_ns: 1n });
  fake.affinity.set({ client: CLIENT, frontend_id: 2 }, { backend: B, port: 5353, pad: 0, last_used_ns: 1n });
  for (const [k, v] of [ct(4000, A, 1), ct(4001, B, 1), ct(4002, B, 2)]) fake.conntrack.set(k, v);
  return { fake, cleanup, log };
}

test('a released frontend id loses all its affinity entries; an endpoint that left loses its own', () => {
  const { fake, cleanup } = setup();
  cleanup.run({ removedBackends: [gone(1, A, 5353, 6)], releasedIds: [2], desired: [] });
  assert.deepEqual(
    [...fake.affinity.entries()].map(([k, v]) => [k.frontend_id, v.backend]),
    [[1, B]],
  );
  assert.equal(cleanup.stats.affinityDeleted, 2);
  assert.equal(cleanup.stats.conntrackDeleted, 0, 'TCP conntrack stays (its flows end on their own)');
});

test('UDP: conntrack of the endpoint goes; its sockets are destroyed unless another UDP frontend still uses the peer', () => {
  const peers: string[][] = [];
  const { fake, cleanup } = setup(() => {
    peers.push([...fake.sockDestroy.entries()].map(([k]) => (k as { address: string }).address));
    return 2;
  });
  // A left frontend 1 but still serves another UDP frontend: no socket destroyed
  cleanup.run({ removedBackends: [gone(1, A, 5353)], releasedIds: [], desired: udpFrontend('198.19.0.99', [A]) });
  assert.equal(cleanup.stats.conntrackDeleted, 1);
  assert.deepEqual(peers, []);
  // B left both frontends and is nowhere else
  cleanup.run({ removedBackends: [gone(1, B, 5353), gone(2, B, 5353)], releasedIds: [], desired: udpFrontend('198.19.0.99', [A]) });
  assert.deepEqual(peers, [[B]], 'one run, the peer listed once');
  assert.equal(fake.sockDestroy.data.size, 0, 'the destroy list is emptied again');
  assert.equal(fake.conntrack.data.size, 0);
  assert.equal(cleanup.stats.socketDestroyRuns, 1);
});

test('IPv6 removals do not touch the IPv4 maps', () => {
  const { fake, cleanup } = setup(() => assert.fail('no socket run for IPv6'));
  cleanup.run({ removedBackends: [gone(1, '2001:2:1::10', 5353, 17, 6)], releasedIds: [], desired: [] });
  assert.equal(fake.affinity.data.size, 3);
  assert.equal(fake.conntrack.data.size, 3);
  assert.equal(cleanup.stats.removedBackends, 0);
});

test('a failing step is logged and counted; the next steps still run', () => {
  const { fake, cleanup, log } = setup();
  fake.affinity.entries = () => {
    throw new Error('EPERM: map read');
  };
  cleanup.run({ removedBackends: [gone(1, A, 5353)], releasedIds: [], desired: [] });
  assert.equal(cleanup.stats.errors, 1);
  assert.ok(
    log.lines.some((l) => /affinity cleanup failed .*EPERM/.test(l)),
    log.lines.join('\n'),
  );
  assert.equal(cleanup.stats.conntrackDeleted, 1, 'conntrack cleaned all the same');
  assert.ok(
    log.lines.some((l) => /cleanup backends=1 conntrackDeleted=1$/.test(l)),
    log.lines.join('\n'),
  );
});
