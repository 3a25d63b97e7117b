// `weir services`, `weir ct list|flush`, `weir nat list`, `weir affinity list` and `weir diff`'s
// live side through the real bin/weir over both families: the IPv4 maps of the service
// fixture and the IPv6 maps of from_pod6.o pinned beside them, IPv6 entries written as the
// reconciler and the IPv6 programs write them. IPv6 rows have the IPv4 rows' JSON shape with
// `[address]:port` text, and every row says its `family`.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BpfObject, codecFor, enums, typedMap, type TypedMap } from '../../src/bpf/index.js';
import type { NatRow } from '../../src/cli/nat.js';
import type { CtRow, ServiceRow } from '../../src/cli/services.js';
import { readLive } from '../../src/cli/diff.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { addService, IPPROTO, loadServiceDataplane, OBJ_DIR, type ServiceDataplane } from '../bpf/service-fixture.js';

const CLIENT6 = '2001:2:1::50';
const VIP6 = '2001:2:ff::10';
const BE6 = ['2001:2:1::10', '2001:2:1::11'];
const NODE4 = '198.18.0.2';

let dp: ServiceDataplane;
let six: BpfObject;
const m6 = <K, V>(name: string, key: string, value: string): TypedMap<K, V> =>
  typedMap(six.map(name), codecFor(key as never) as never, codecFor(value as never) as never);

/** The two entries of CLIENT6:sport -> VIP6:80 DNAT'd to backend:8080 (tunnel_node: the backend's node, v4-mapped). */
function flow6(sport: number, backend: string, protocol: number, tunnel = '::') {
  const base = { policy: 0, ifindex: 0, frontend_id: 21, created_ns: 1n, last_seen_ns: 1n, packets: 3n, bytes: 180n, tunnel_node: tunnel };
  return [
    [
      { saddr: CLIENT6, daddr: VIP6, sport, dport: 80, protocol },
      { ...base, nat_saddr: CLIENT6, nat_sport: sport, nat_daddr: backend, nat_dport: 8080, flags: 2, tcp_flags_seen: 0x12 },
    ],
    [
      { saddr: backend, daddr: CLIENT6, sport: 8080, dport: sport, protocol },
      { ...base, nat_saddr: VIP6, nat_sport: 80, nat_daddr: CLIENT6, nat_dport: sport, flags: 1 | 4, tcp_flags_seen: 0x12 },
    ],
  ] as const;
}

before(() => {
  dp = loadServiceDataplane();
  six = BpfObject.load(join(OBJ_DIR, 'from_pod6.o'), { pinDir: dp.bpffs.path });
  addService(dp, { id: 7, address: '198.19.0.10', port: 80, backends: [{ address: '198.18.2.20', port: 8080 }] });
  const fe = m6<object, object>('weir_frontend6', 'weir_frontend6_key', 'weir_frontend6');
  const be = m6<object, object>('weir_backend6', 'weir_backend6_key', 'weir_backend6');
  BE6.forEach((address, slot) => be.set({ frontend_id: 21, slot }, { address, port: 8080, flags: 0 }));
  fe.set({ address: VIP6, port: 80, protocol: IPPROTO.tcp, scope: 0 }, { id: 21, backend_count: 2, flags: 0, affinity_timeout: 0 });
  be.set({ frontend_id: 22, slot: 0 }, { address: BE6[0], port: 5353, flags: 0 });
  fe.set(
    { address: '2001:2::1', port: 30053, protocol: IPPROTO.udp, scope: 0 },
    {
      id: 22,
      backend_count: 1,
      flags: enums.weir_frontend_flags.WEIR_FRONTEND_NODEPORT | enums.weir_frontend_flags.WEIR_FRONTEND_AFFINITY,
      affinity_timeout: 60,
    },
  );
  const ct = m6<object, object>('weir_ct6', 'weir_ct6_key', 'weir_ct6');
  for (const [k, v] of [...flow6(40001, BE6[0]!, IPPROTO.tcp), ...flow6(40002, BE6[1]!, IPPROTO.tcp, `::ffff:${NODE4}`)]) ct.set(k, v);
  const aff = m6<object, object>('weir_affinity6', 'weir_affinity6_key', 'weir_affinity6');
  aff.set({ client: CLIENT6, frontend_id: 22 }, { backend: BE6[0], port: 5353, last_used_ns: 1n });
});
after(async () => {
  six?.close();
  await dp?.close();
});

const weir = (...args: string[]) => {
  const r = runSync(binWeir, [...args, '--pin-dir', dp.bpffs.path], { check: false });
  assert.equal(r.code, 0, `weir ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const json = <T>(...args: string[]) => JSON.parse(weir(...args, '-o', 'json')) as T;

test('weir services: IPv4 rows first, then IPv6 ones in the same shape, `[address]:port`, with a family', () => {
  const rows = json<ServiceRow[]>('services');
  assert.deepEqual(
    rows.map((r) => [r.family, `${r.frontend}/${r.protocol}`, r.id]),
    [
      ['IPv4', '198.19.0.10:80/tcp', 7],
      ['IPv6', '[2001:2::1]:30053/udp', 22],
      ['IPv6', `[${VIP6}]:80/tcp`, 21],
    ],
  );
  assert.deepEqual(Object.keys(rows[2]!).sort(), Object.keys(rows[0]!).sort(), 'one shape');
  assert.deepEqual(
    rows[2]!.backends.map((b) => `${b.slot}=${b.address}:${b.port}`),
    [`0=${BE6[0]}:8080`, `1=${BE6[1]}:8080`],
  );
  assert.deepEqual(rows[1]!.flags, ['nodeport', 'affinity']);
  assert.match(
    weir('services'),
    new RegExp(`^\\[${VIP6}\\]:80/tcp\\s+internal\\s+21\\s+-\\s+random\\s+\\[${BE6[0]}\\]:8080 \\[${BE6[1]}\\]:8080\\s+0 0$`, 'm'),
  );
});

test('weir ct list: IPv6 entries with bracketed endpoints, the v4-mapped tunnel node as IPv4; --address picks the family; ct flush deletes only matches', () => {
  const all = json<CtRow[]>('ct', 'list');
  const v6 = all.filter((r) => r.family === 'IPv6');
  assert.equal(v6.length, 4);
  const orig = v6.find((r) => r.source === `[${CLIENT6}]:40002`)!;
  assert.equal(orig.destination, `[${VIP6}]:80`);
  assert.equal(orig.nat, `dst→[${BE6[1]}]:8080`);
  assert.equal(orig.forward, `tunnel→${NODE4}`);
  assert.equal(v6.find((r) => r.source === `[${CLIENT6}]:40001`)!.forward, 'stack');
  assert.deepEqual(
    json<CtRow[]>('ct', 'list', '--address', '2001:2:1:0::11')
      .map((r) => r.source)
      .sort(),
    [`[${BE6[1]}]:8080`, `[${CLIENT6}]:40002`],
    'canonicalised, IPv6 map only',
  );
  assert.deepEqual(json<CtRow[]>('ct', 'list', '--address', '198.18.2.20'), []);
  assert.deepEqual(json<unknown>('ct', 'flush', '--port', '40001'), [{ deleted: 2 }]);
  assert.equal(json<CtRow[]>('ct', 'list').length, 2);
});

test('weir nat list: an IPv6 flow is one row, both directions paired, in the IPv4 row shape', () => {
  const rows = json<NatRow[]>('nat', 'list');
  assert.equal(rows.length, 1);
  const r = rows[0]!;
  assert.deepEqual(
    [r.family, r.client, r.frontend, r.backend, r.forward, r.state, r.paired],
    ['IPv6', `[${CLIENT6}]:40002`, `[${VIP6}]:80`, `[${BE6[1]}]:8080`, `tunnel→${NODE4}`, 'established', true],
  );
  assert.match(weir('nat', 'list'), new RegExp(`^tcp +\\[${CLIENT6}\\]:40002 +\\[${VIP6}\\]:80 +\\[${BE6[1]}\\]:8080 +established`, 'm'));
});

test('weir affinity list: IPv6 clients beside IPv4 ones, with a family', () => {
  const rows = json<Array<{ family: string; client: string; frontendId: number; backend: string }>>('affinity', 'list');
  assert.deepEqual(
    rows.map(({ family, client, frontendId, backend }) => ({ family, client, frontendId, backend })),
    [{ family: 'IPv6', client: CLIENT6, frontendId: 22, backend: `[${BE6[0]}]:5353` }],
  );
});

test("weir diff's live side reads both families, keyed as the reconciler keys them", () => {
  const live = readLive({ pinDir: dp.bpffs.path });
  assert.deepEqual([...live.keys()].sort(), ['198.19.0.10:80/6/0', '[2001:2::1]:30053/17/0', `[${VIP6}]:80/6/0`]);
  assert.deepEqual(
    live.get(`[${VIP6}]:80/6/0`)!.backends.map((b) => b.address),
    BE6,
  );
});
