// lib/lb.h, Maglev frontends: from_host picks the slot weir_maglev4 holds at
// jhash(client address, client port << 16 | frontend port, protocol) % M, M the
// maglev_table_size knob. The test computes the same hash in JS and predicts every backend;
// two NodePort frontends on different node addresses with the same table send a client
// tuple to the same backend (the destination address is not hashed); a frontend without
// the flag ignores tables; a missing table falls back to a random slot.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { codecFor, typedMap, type TypedMap, type WeirMaglev4, type WeirMaglev4Key } from '../../src/bpf/index.js';
import { serviceRows } from '../../src/cli/services.js';
import { maglevTable } from '../../src/dataplane/maglev.js';
import { eth, IPPROTO_TCP } from '../lib/packet.js';
import { addService, loadServiceDataplane, TC, type ServiceDataplane } from './service-fixture.js';

const M = 251;
const NODE1 = '198.18.0.1';
const NODE2 = '198.18.0.2';
const NODEPORT = 30080;
const BACKENDS = [0, 1, 2, 3].map((i) => ({ address: `198.18.2.${20 + i}`, port: 8080 }));
const IDS = BACKENDS.map((b) => `${b.address}:${b.port}`);

const open: ServiceDataplane[] = [];
after(async () => {
  for (const dp of open) await dp.close();
});

function load(): { dp: ServiceDataplane; tables: TypedMap<WeirMaglev4Key, WeirMaglev4> } {
  const m = new Uint32Array([M]);
  const dp = loadServiceDataplane({ maglev_table_size: Buffer.from(m.buffer) });
  open.push(dp);
  const tables = typedMap(dp.objects.fromHost.map('weir_maglev4'), codecFor('weir_maglev4_key'), codecFor('weir_maglev4'));
  return { dp, tables };
}

// the kernel's jhash_3words (lib/jhash.h), on the words as the program loads them: network
// byte order in a little-endian u32/u16
const rol = (w: number, s: number) => ((w << s) | (w >>> (32 - s))) >>> 0;
function jhash3(a: number, b: number, c: number, init: number): number {
  const iv = (0xdeadbeef + (3 << 2) + init) >>> 0;
  a = (a + iv) >>> 0;
  b = (b + iv) >>> 0;
  c = (c + iv) >>> 0;
  c = ((c ^ b) - rol(b, 14)) >>> 0;
  a = ((a ^ c) - rol(c, 11)) >>> 0;
  b = ((b ^ a) - rol(a, 25)) >>> 0;
  c = ((c ^ b) - rol(b, 16)) >>> 0;
  a = ((a ^ c) - rol(c, 4)) >>> 0;
  b = ((b ^ a) - rol(a, 14)) >>> 0;
  c = ((c ^ b) - rol(b, 24)) >>> 0;
  return c;
}
const le32 = (ip: string) => Buffer.from(ip.split('.').map(Number)).readUInt32LE(0);
const le16 = (port: number) => ((port & 0xff) << 8) | (port >> 8);
function entry(client: string, sport: number, dport: number): number {
  return jhash3(le32(client), ((le16(sport) << 16) | le16(dport)) >>> 0, IPPROTO_TCP, 0) % M;
}

const syn = (src: string, dst: string, sport: number, dport: number) =>
  eth()
    .ipv4({ src, dst })
    .tcp({ sport, dport, flags: ['syn'] })
    .build();

/** the backend address a SYN from client:sport to dst:NODEPORT was sent to (its conntrack entry) */
function backendOf(dp: ServiceDataplane, client: string, sport: number, dst: string): string {
  assert.equal(dp.run('fromHost', syn(client, dst, sport, NODEPORT)).retval, TC.pass);
  const ct = dp.conntrack.get({ saddr: client, daddr: dst, sport, dport: NODEPORT, protocol: IPPROTO_TCP });
  assert.ok(ct, `no conntrack entry for ${client}:${sport} -> ${dst}`);
  return ct.nat_daddr;
}

const clients = Array.from({ length: 40 }, (_, i) => ({ client: `198.18.${100 + (i % 5)}.${10 + i}`, sport: 40000 + 97 * i }));

test('Maglev frontends: every flow goes to the backend the table names at its hash; both node addresses agree', () => {
  const { dp, tables } = load();
  addService(dp, { id: 8, address: NODE1, port: NODEPORT, flags: ['nodeport', 'maglev'], backends: BACKENDS });
  addService(dp, { id: 9, address: NODE2, port: NODEPORT, flags: ['nodeport', 'maglev'], backends: BACKENDS });
  const table = Array.from(maglevTable(IDS, M));
  tables.set({ frontend_id: 8 }, { slots: table });
  tables.set({ frontend_id: 9 }, { slots: table });
  const seen = new Set<string>();
  for (const { client, sport } of clients) {
    const want = BACKENDS[table[entry(client, sport, NODEPORT)]!]!.address;
    const got1 = backendOf(dp, client, sport, NODE1);
    const got2 = backendOf(dp, client, sport, NODE2);
    assert.equal(got1, want, `${client}:${sport} via ${NODE1}`);
    assert.equal(got2, want, `${client}:${sport} via ${NODE2}: the destination address is not hashed`);
    seen.add(got1);
    // the same tuple again (its conntrack entry gone) picks the same backend
    dp.conntrack.delete({ saddr: client, daddr: NODE1, sport, dport: NODEPORT, protocol: IPPROTO_TCP });
    assert.equal(backendOf(dp, client, sport, NODE1), want);
  }
  assert.ok(seen.size >= 3, `40 tuples spread over ${seen.size} backends`);
  assert.equal(dp.counters().from_host?.service_nat, 3 * clients.length);
});

test('a table of one slot sends every flow there; the same table on a frontend without the flag is ignored', () => {
  const { dp, tables } = load();
  addService(dp, { id: 8, address: NODE1, port: NODEPORT, flags: ['nodeport', 'maglev'], backends: BACKENDS });
  addService(dp, { id: 9, address: NODE2, port: NODEPORT, flags: ['nodeport'], backends: BACKENDS });
  const all2 = new Array<number>(M).fill(2);
  tables.set({ frontend_id: 8 }, { slots: all2 });
  tables.set({ frontend_id: 9 }, { slots: all2 });
  const random = new Set<string>();
  for (const { client, sport } of clients) {
    assert.equal(backendOf(dp, client, sport, NODE1), BACKENDS[2]!.address);
    random.add(backendOf(dp, client, sport, NODE2));
  }
  assert.ok(random.size >= 2, 'the unflagged frontend picks at random');
});

test('a missing table or a slot beyond the count falls back to a random slot, never a drop', () => {
  const { dp, tables } = load();
  addService(dp, { id: 8, address: NODE1, port: NODEPORT, flags: ['nodeport', 'maglev'], backends: BACKENDS });
  const seen = new Set<string>();
  for (const { client, sport } of clients.slice(0, 20)) seen.add(backendOf(dp, client, sport, NODE1));
  assert.ok(seen.size >= 2, 'no table: random');
  dp.conntrack.deleteMany([...dp.conntrack.keys()]);
  tables.set({ frontend_id: 8 }, { slots: new Array<number>(M).fill(7) }); // slot 7 >= count 4
  seen.clear();
  for (const { client, sport } of clients.slice(0, 20)) seen.add(backendOf(dp, client, sport, NODE1));
  assert.ok(seen.size >= 2 && [...seen].every((a) => BACKENDS.some((b) => b.address === a)));
});

test('weir services shows the algorithm: random, maglev, or maglev-no-table until the table is written', () => {
  const { dp, tables } = load();
  addService(dp, { id: 8, address: NODE1, port: NODEPORT, flags: ['nodeport', 'maglev'], backends: BACKENDS });
  addService(dp, { id: 9, address: NODE2, port: NODEPORT, flags: ['nodeport'], backends: BACKENDS });
  const algorithms = () => Object.fromEntries(serviceRows({ pinDir: dp.bpffs.path }).map((r) => [r.id, r.algorithm]));
  assert.deepEqual(algorithms(), { 8: 'maglev-no-table', 9: 'random' });
  tables.set({ frontend_id: 8 }, { slots: Array.from(maglevTable(IDS, M)) });
  assert.deepEqual(algorithms(), { 8: 'maglev', 9: 'random' });
});
