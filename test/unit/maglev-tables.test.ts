// The reconciler's Maglev tables (dataplane/maglev-tables.ts) over fake maps: which frontends
// get one (the annotation, --lb-algorithm, external kinds only), the table matches the slots
// the maps hold, and only a changed backend set rewrites a table; a frontend that goes or
// loses the flag loses its table.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { enums, type WeirMaglev4, type WeirMaglev4Key } from '../../src/bpf/index.js';
import { maglevTable } from '../../src/dataplane/maglev.js';
import { MaglevTables } from '../../src/dataplane/maglev-tables.js';
import { Reconciler } from '../../src/dataplane/reconcile.js';
import type { Backend, Frontend, FrontendKind, LbAlgorithm } from '../../src/model/service-types.js';
import { memoryLogger } from '../../src/log.js';
import { FakeMap, fakeMaps } from './fake-maps.js';

const M = 251;
const MAGLEV = enums.weir_frontend_flags.WEIR_FRONTEND_MAGLEV;

const be = (address: string): Backend => ({
  address,
  port: 8080,
  nodeName: 'node-a',
  isLocal: true,
  ready: true,
  serving: true,
  terminating: false,
  zone: '',
});

function fe(kind: FrontendKind, address: string, port: number, backends: Backend[], lbAlgorithm: LbAlgorithm | null = null): Frontend {
  return {
    id: `${address}:${port}/TCP`,
    serviceKey: 'default/web',
    portName: 'http',
    servicePortKey: 'default/web:http/TCP',
    kind,
    family: 4,
    address,
    port,
    protocol: 'TCP',
    backends,
    inClusterBackends: backends,
    establishedOnly: [],
    localOnly: false,
    reject: backends.length === 0,
    affinity: null,
    sourceRanges: null,
    lbAlgorithm,
  };
}

function setup(defaultAlgorithm: LbAlgorithm) {
  const { fake, maps } = fakeMaps();
  const tableMap = new FakeMap<WeirMaglev4Key, WeirMaglev4>();
  const tables = new MaglevTables(tableMap as never, M, memoryLogger());
  const r = new Reconciler(maps, memoryLogger(), { lbAlgorithm: defaultAlgorithm, maglev: tables });
  const idOf = (address: string, port: number): number => {
    for (const [k, v] of fake.frontends.entries() as Iterable<[{ address: string; port: number }, { id: number; flags: number }]>)
      if (k.address === address && k.port === port) return v.id;
    throw new Error(`no frontend ${address}:${port}`);
  };
  const flagsOf = (address: string, port: number): number => (fake.frontends.get({ address, port, protocol: 6, scope: 0 } as never) as { flags: number }).flags;
  return { fake, maps, r, tableMap, tables, idOf, flagsOf };
}

const four = ['198.18.2.20', '198.18.2.21', '198.18.2.22', '198.18.2.23'].map(be);

test('the annotation and --lb-algorithm choose; ClusterIPs never get a table', () => {
  const s = setup('random');
  s.r.setAll([
    fe('NodePort', '198.18.0.1', 30080, four, 'maglev'),
    fe('NodePort', '198.18.0.1', 30081, four),
    fe('ClusterIP', '198.19.0.10', 80, four, 'maglev'),
  ]);
  s.r.sync();
  assert.ok(s.flagsOf('198.18.0.1', 30080) & MAGLEV);
  assert.equal(s.flagsOf('198.18.0.1', 30081) & MAGLEV, 0, 'default random');
  assert.equal(s.flagsOf('198.19.0.10', 80) & MAGLEV, 0, 'ClusterIP: east-west, random');
  assert.deepEqual(
    [...s.tableMap.keys()].map((k) => k.frontend_id),
    [s.idOf('198.18.0.1', 30080)],
  );

  const d = setup('maglev');
  d.r.setAll([fe('LoadBalancer', '198.18.5.1', 80, four), fe('NodePort', '198.18.0.1', 30081, four, 'random')]);
  d.r.sync();
  assert.ok(d.flagsOf('198.18.5.1', 80) & MAGLEV, 'default maglev');
  assert.equal(d.flagsOf('198.18.0.1', 30081) & MAGLEV, 0, 'the annotation overrides the default');
  assert.equal(d.tableMap.data.size, 1);
});

test('the table names the slots the maps hold; only a changed backend set rewrites it; a removed frontend loses it', () => {
  const s = setup('maglev');
  const web = (bs: Backend[]) => fe('NodePort', '198.18.0.1', 30080, bs);
  const other = (bs: Backend[]) => fe('NodePort', '198.18.0.1', 30090, bs);
  s.r.setAll([web(four), other(four.slice(0, 2))]);
  s.r.sync();
  assert.equal(s.tables.stats.writes, 2);
  const check = () => {
    const id = s.idOf('198.18.0.1', 30080);
    const slots = s.tableMap.get({ frontend_id: id })!.slots;
    const bySlot = (slot: number) => (s.fake.backends.get({ frontend_id: id, slot } as never) as { address: string }).address;
    const count = [...s.fake.backends.keys()].filter((k) => (k as { frontend_id: number }).frontend_id === id).length;
    const identities = Array.from({ length: count }, (_, i) => `${bySlot(i)}:8080`);
    const want = maglevTable(identities, M);
    assert.deepEqual(
      slots.map((x) => bySlot(x)),
      Array.from(want, (i) => identities[i]!.split(':')[0]),
    );
  };
  check();

  s.r.update([other(four.slice(0, 3))], []);
  s.r.sync();
  assert.equal(s.tables.stats.writes, 3, 'only the changed frontend is rewritten');
  s.r.update([web(four)], []); // the same set again: no write
  s.r.sync();
  assert.equal(s.tables.stats.writes, 3);
  s.r.update([web(four.filter((_, i) => i !== 1))], []);
  s.r.sync();
  assert.equal(s.tables.stats.writes, 4);
  check();

  // a restart: a new reconciler over the same maps adopts them and writes nothing
  const again = new MaglevTables(s.tableMap as never, M, memoryLogger());
  const r2 = new Reconciler(s.maps, memoryLogger(), { lbAlgorithm: 'maglev', maglev: again });
  r2.setAll([web(four.filter((_, i) => i !== 1)), other(four.slice(0, 3))]);
  assert.equal(r2.sync().writes, 0);
  assert.equal(again.stats.writes, 0);

  s.r.update([], [web([]).id]);
  s.r.sync();
  assert.equal(s.tables.stats.deletes, 1);
  assert.deepEqual(
    [...s.tableMap.keys()].map((k) => k.frontend_id),
    [s.idOf('198.18.0.1', 30090)],
  );
  s.r.update([fe('NodePort', '198.18.0.1', 30090, four, 'random')], []);
  s.r.sync();
  assert.equal(s.tableMap.data.size, 0, 'the flag went: so did the table');
});
