// `weir services`, `weir ct list|flush`, `weir nat list`, `weir affinity list` and `weir diff`'s
// live side through the real bin/weir over both families: the service fixture's maps (the
// IPv4 and the IPv6 programs pinned together), frontends programmed as the reconciler does,
// IPv6 flows created by from_pod6 test runs (and one entry pair of a flow through another
// node over an IPv4 underlay, as the tunnel writes it). IPv6 rows have the IPv4 rows' JSON
// shape with `[address]:port` text, and every row says its `family`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatRow } from '../../src/cli/nat.js';
import type { CtRow, ServiceRow } from '../../src/cli/services.js';
import { readLive } from '../../src/cli/diff.js';
import { eth } from '../lib/packet.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { addService, ctFlag, IPPROTO, loadServiceDataplane, type ServiceDataplane } from '../bpf/service-fixture.js';

const CLIENT6 = '2001:2:1::50';
const VIP6 = '2001:2:ff::10';
const DNS6 = '2001:2:ff::53';
const BE6 = ['2001:2:1::10', '2001:2:1::11'];
const REMOTE_CLIENT6 = '2001:2:9::50';
const NODE4 = '198.18.0.2';

let dp: ServiceDataplane;

const pkt6 = (src: string, dst: string) => eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv6({ src, dst });
const pass6 = (b: Buffer) => assert.equal(dp.run('fromPod6', b).retval, 0);

before(() => {
  dp = loadServiceDataplane();
  addService(dp, { id: 7, address: '198.19.0.10', port: 80, backends: [{ address: '198.18.2.20', port: 8080 }] });
  addService(dp, { id: 21, address: VIP6, port: 80, backends: BE6.map((address) => ({ address, port: 8080 })) });
  addService(dp, {
    id: 22,
    address: DNS6,
    port: 53,
    protocol: IPPROTO.udp,
    flags: ['affinity'],
    affinityTimeout: 60,
    backends: [{ address: BE6[0]!, port: 5353 }],
  });
  // a TCP connection: handshake through from_pod6 (client and backend are local pods)
  pass6(
    pkt6(CLIENT6, VIP6)
      .tcp({ sport: 40001, dport: 80, flags: ['syn'] })
      .build(),
  );
  const [k] = [...dp.ipv6.conntrack.entries()].find(([key]) => key.saddr === CLIENT6 && key.sport === 40001)!;
  const backend = dp.ipv6.conntrack.get(k)!.nat_daddr;
  pass6(
    pkt6(backend, CLIENT6)
      .tcp({ sport: 8080, dport: 40001, flags: ['syn', 'ack'] })
      .build(),
  );
  pass6(
    pkt6(CLIENT6, VIP6)
      .tcp({ sport: 40001, dport: 80, flags: ['ack'] })
      .build(),
  );
  // a UDP query to the affinity frontend: affinity and conntrack entries, one new connection counted
  pass6(pkt6(CLIENT6, DNS6).udp({ sport: 5000, dport: 53 }).payload('q').build());
  // a flow through another node over an IPv4 underlay: weir_ct6 names that node v4-mapped
  const base = { policy: 0, ifindex: 0, frontend_id: 21, created_ns: 1n, last_seen_ns: 1n, packets: 3n, bytes: 180n, tunnel_node: `::ffff:${NODE4}` };
  dp.ipv6.conntrack.set(
    { saddr: REMOTE_CLIENT6, daddr: VIP6, sport: 40002, dport: 80, protocol: IPPROTO.tcp },
    { ...base, nat_saddr: REMOTE_CLIENT6, nat_sport: 40002, nat_daddr: BE6[1]!, nat_dport: 8080, flags: ctFlag.dnat!, tcp_flags_seen: 0x02 },
  );
});
after(async () => {
  await dp?.close();
});

const weir = (...args: string[]) => {
  const r = runSync(binWeir, [...args, '--pin-dir', dp.bpffs.path], { check: false });
  assert.equal(r.code, 0, `weir ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const json = <T>(...args: string[]) => JSON.parse(weir(...args, '-o', 'json')) as T;

test('weir services: IPv4 rows first, then IPv6 ones in the same shape, `[address]:port`, with a family and their new connections', () => {
  const rows = json<ServiceRow[]>('services');
  assert.deepEqual(
    rows.map((r) => [r.family, `${r.frontend}/${r.protocol}`, r.id]),
    [
      ['IPv4', '198.19.0.10:80/tcp', 7],
      ['IPv6', `[${VIP6}]:80/tcp`, 21],
      ['IPv6', `[${DNS6}]:53/udp`, 22],
    ],
  );
  assert.deepEqual(Object.keys(rows[1]!).sort(), Object.keys(rows[0]!).sort(), 'one shape');
  assert.deepEqual(
    rows[1]!.backends.map((b) => `${b.slot}=${b.address}:${b.port}`),
    [`0=${BE6[0]}:8080`, `1=${BE6[1]}:8080`],
  );
  assert.equal(
    rows[1]!.backends.reduce((n, b) => n + b.newConnections, 0),
    1,
    'the TCP connection, counted in weir_lb_stats6',
  );
  assert.deepEqual([rows[2]!.flags, rows[2]!.affinityTimeout, rows[2]!.backends[0]!.newConnections], [['affinity'], 60, 1]);
  assert.match(
    weir('services'),
    new RegExp(`^\\[${VIP6}\\]:80/tcp\\s+internal\\s+21\\s+-\\s+random\\s+\\[${BE6[0]}\\]:8080 \\[${BE6[1]}\\]:8080\\s+[01] [01]$`, 'm'),
  );
});

test('weir ct list: IPv6 entries with bracketed endpoints, a v4-mapped tunnel node as IPv4; --address picks the family; ct flush deletes only matches', () => {
  const v6 = json<CtRow[]>('ct', 'list').filter((r) => r.family === 'IPv6');
  assert.equal(v6.length, 5, 'two per local flow, the remote flow as this node holds it');
  const orig = v6.find((r) => r.source === `[${CLIENT6}]:40001`)!;
  assert.equal(orig.destination, `[${VIP6}]:80`);
  assert.match(orig.nat, new RegExp(`^dst→\\[(${BE6.join('|')})\\]:8080$`));
  assert.equal(orig.forward, 'stack');
  assert.equal(orig.tcp, 'S.');
  const reply = v6.find((r) => r.destination === `[${CLIENT6}]:40001`)!;
  assert.ok(reply.flags.includes('reply'));
  assert.equal(reply.nat, `src→[${VIP6}]:80`);
  assert.equal(v6.find((r) => r.source === `[${REMOTE_CLIENT6}]:40002`)!.forward, `tunnel→${NODE4}`);
  assert.deepEqual(
    json<CtRow[]>('ct', 'list', '--address', '2001:2:ff:0::53')
      .map((r) => r.protocol)
      .sort(),
    ['udp', 'udp'],
    'canonicalised, the IPv6 map only',
  );
  assert.deepEqual(json<CtRow[]>('ct', 'list', '--address', '198.18.2.20'), []);
  assert.deepEqual(json<unknown>('ct', 'flush', '--port', '5000'), [{ deleted: 2 }]);
  assert.equal(json<CtRow[]>('ct', 'list').length, 3);
});

test('weir nat list: an IPv6 flow is one row, both directions paired, in the IPv4 row shape', () => {
  const rows = json<NatRow[]>('nat', 'list');
  assert.deepEqual(
    rows.map((r) => [r.family, r.client, r.frontend, r.forward, r.state, r.paired]),
    [
      ['IPv6', `[${CLIENT6}]:40001`, `[${VIP6}]:80`, 'stack', 'established', true],
      ['IPv6', `[${REMOTE_CLIENT6}]:40002`, `[${VIP6}]:80`, `tunnel→${NODE4}`, 'syn_sent', false],
    ],
  );
  assert.match(rows[0]!.backend, new RegExp(`^\\[(${BE6.join('|')})\\]:8080$`));
  assert.match(weir('nat', 'list'), new RegExp(`^tcp +\\[${CLIENT6}\\]:40001 +\\[${VIP6}\\]:80 +\\[2001:2:1::1[01]\\]:8080 +established`, 'm'));
});

test('weir affinity list: the IPv6 client pinned to its backend, with a family', () => {
  const rows = json<Array<{ family: string; client: string; frontendId: number; backend: string }>>('affinity', 'list');
  assert.deepEqual(
    rows.map(({ family, client, frontendId, backend }) => ({ family, client, frontendId, backend })),
    [{ family: 'IPv6', client: CLIENT6, frontendId: 22, backend: `[${BE6[0]}]:5353` }],
  );
});

test("weir diff's live side reads both families, keyed as the reconciler keys them", () => {
  const live = readLive({ pinDir: dp.bpffs.path });
  assert.deepEqual([...live.keys()].sort(), ['198.19.0.10:80/6/0', `[${VIP6}]:80/6/0`, `[${DNS6}]:53/17/0`]);
  assert.deepEqual(
    live.get(`[${VIP6}]:80/6/0`)!.backends.map((b) => b.address),
    BE6,
  );
});
