// Conntrack GC planning (src/dataplane/conntrack-gc.ts): flows age as pairs, by TCP state,
// UDP and ICMP timeouts; UDP entries of a removed backend are found in both directions; a pass
// in chunks decides as one over the whole map; a near-full table is logged.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WeirCt4, WeirCt4Key } from '../../src/bpf/index.js';
import { ConntrackGc, DEFAULT_CT_TIMEOUTS, planBackendConntrackDeletes, planConntrackGc, type CtGcPass } from '../../src/dataplane/conntrack-gc.js';
import { memoryLogger } from '../../src/log.js';
import { FakeMap } from './fake-maps.js';

const S = 1_000_000_000n;
const CLIENT = '198.18.1.50';
const VIP = '198.19.0.10';
const BE = '198.18.1.10';

/** The two entries of a client -> VIP:80 flow DNAT'd to BE:8080. */
function flow(protocol: number, lastSeen: bigint, origFlags: number, replyFlags: number, sport = 40000): Array<[WeirCt4Key, WeirCt4]> {
  const base = { policy: 0, pad: 0, tunnel_node: '0.0.0.0', ifindex: 0, frontend_id: 1, created_ns: 0n, packets: 1n, bytes: 60n, last_seen_ns: lastSeen };
  return [
    [
      { saddr: CLIENT, daddr: VIP, sport, dport: 80, protocol },
      { ...base, nat_saddr: CLIENT, nat_sport: sport, nat_daddr: BE, nat_dport: 8080, flags: 2, tcp_flags_seen: origFlags },
    ],
    [
      { saddr: BE, daddr: CLIENT, sport: 8080, dport: sport, protocol },
      { ...base, nat_saddr: VIP, nat_sport: 80, nat_daddr: CLIENT, nat_dport: sport, flags: 1 | 4, tcp_flags_seen: replyFlags },
    ],
  ];
}

const SYN = 0x02;
const ACK = 0x10;
const FIN = 0x01;

test('TCP: SYN-only expires after 60 s, established after 6 h, closing after 10 s; both entries together', () => {
  const now = 100_000n * S;
  const H6 = 6n * 3600n * S;
  const synOnly = flow(6, now - 61n * S, SYN, SYN | ACK, 1);
  const established = flow(6, now - 3600n * S, SYN | ACK, SYN | ACK, 2);
  const closing = flow(6, now - 11n * S, SYN | ACK | FIN, SYN | ACK, 3);
  const fresh = flow(6, now - 5n * S, SYN | ACK | FIN, SYN | ACK, 4);
  // established flows on either side of the 6 h bound: idle 6 h - 1 s stays, 6 h + 1 s goes
  const justUnder = flow(6, now - H6 + S, SYN | ACK, SYN | ACK, 5);
  const justOver = flow(6, now - H6 - S, SYN | ACK, SYN | ACK, 6);
  const p = planConntrackGc([...synOnly, ...established, ...closing, ...fresh, ...justUnder, ...justOver], now);
  assert.equal(p.flows, 6);
  assert.equal(p.expiredFlows, 3);
  const origins = p.deletes
    .filter((k) => k.saddr === CLIENT)
    .map((k) => k.sport)
    .sort((a, b) => a - b);
  assert.deepEqual(origins, [1, 3, 6], 'client-side entries deleted: SYN-only, closing, established idle 6 h + 1 s');
  assert.equal(p.deletes.filter((k) => k.saddr === BE && k.sport === 8080).length, 3, 'and the reply entry of each');
  // the same established flow, seen from its reply entry only (the original already gone)
  assert.equal(planConntrackGc([justOver[1]!], now).expiredFlows, 1);
  assert.equal(planConntrackGc([justUnder[1]!], now).expiredFlows, 0);
  assert.equal(DEFAULT_CT_TIMEOUTS.tcpEstablished, 6 * 3600);
});

test('UDP expires after 60 s of silence in both directions', () => {
  const now = 1000n * S;
  assert.equal(planConntrackGc(flow(17, now - 59n * S, 0, 0), now).expiredFlows, 0);
  assert.equal(planConntrackGc(flow(17, now - 61n * S, 0, 0), now).deletes.length, 2);
});

test('a removed UDP backend: both entries of its flows, nothing of other backends or TCP', () => {
  const udp = flow(17, 0n, 0, 0, 5);
  const tcp = flow(6, 0n, 0, 0, 6);
  const keys = planBackendConntrackDeletes([...udp, ...tcp], [{ family: 4, frontendId: 1, address: BE, port: 8080, protocol: 17 }]);
  assert.equal(keys.length, 2);
  assert.ok(keys.every((k) => k.protocol === 17));
  assert.deepEqual(planBackendConntrackDeletes(udp, [{ family: 4, frontendId: 2, address: BE, port: 8080, protocol: 17 }]), []);
});

test('a pass in chunks decides as one over the whole map: a flow whose two entries sit in different chunks looks its partner up', async () => {
  const now = 100_000n * S;
  // FIN seen on the reply side only: the original entry alone would look established (6 h) and stay
  const closing = flow(6, now - 11n * S, SYN | ACK, SYN | ACK | FIN, 1);
  const all = [...closing, ...flow(17, now - 61n * S, 0, 0, 2), ...flow(17, now - 59n * S, 0, 0, 3), ...flow(6, now - 3600n * S, SYN | ACK, SYN | ACK, 4)];
  const whole = planConntrackGc(all, now);
  const map = new FakeMap<WeirCt4Key, WeirCt4>();
  for (const [k, v] of all) map.set(k, v);
  const log = memoryLogger();
  const passes: CtGcPass[] = [];
  let yields = 0;
  const gc = new ConntrackGc({ 4: map as never }, log, {
    now: () => now,
    chunk: 1,
    onPass: (p) => passes.push(p),
    yieldFn: async () => void yields++,
  });
  const r = await gc.run();
  assert.deepEqual([r.expiredFlows, r.deleted, r.expiredEntries], [whole.expiredFlows, whole.deletes.length, whole.expiredEntries]);
  assert.deepEqual([r.expiredFlows, r.expiredEntries], [2, { tcp_closing: 2, udp: 2 }]);
  assert.deepEqual([...map.keys()].map((k) => (k.sport === 80 || k.sport === 8080 ? k.dport : k.sport)).sort(), [3, 3, 4, 4]);
  assert.equal(passes[0]!.alive, 4, 'what is left: the two live flows');
  // one yield to the event loop per chunk walked (4 entries were deleted before their chunk came)
  assert.equal(yields, r.scanned);
  assert.equal(r.scanned, 6);
});

test('a conntrack table near full is logged once, and again when the pressure eases', async () => {
  const now = 100_000n * S;
  const map = new FakeMap<WeirCt4Key, WeirCt4>();
  const fill = (n: number) => {
    map.data.clear();
    for (let i = 0; i < n; i++) for (const [k, v] of flow(17, now - S, 0, 0, 1000 + i)) map.set(k, v);
  };
  (map as unknown as { map: { name: string; maxEntries: number } }).map = { name: 'weir_ct4_v2', maxEntries: 100 };
  const log = memoryLogger();
  const gc = new ConntrackGc({ 4: map as never }, log, { now: () => now, yieldFn: async () => {} });
  fill(46); // 92 of 100
  await gc.run();
  await gc.run();
  fill(30); // 60 of 100
  await gc.run();
  const lines = log.lines.filter((l) => l.includes('conntrack table'));
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.match(lines[0]!, /conntrack table near full.*map=weir_ct4_v2.*entries=92.*capacity=100/);
  assert.match(lines[1]!, /conntrack table pressure eased.*entries=60/);
});
