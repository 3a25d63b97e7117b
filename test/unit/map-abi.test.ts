// The map ABI table (src/dataplane/map-abi.ts): pin names carry the layout version, and the
// conntrack converters keep what established flows need (NAT fields) across v2 -> v1 -> v2.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { abiMaps, codecFor, enums, type WeirCt4 } from '../../src/bpf/index.js';
import { ctV1ToV2, ctV2ToV1, MAP_ABI, parsePinName, pinName } from '../../src/dataplane/map-abi.js';

const F = enums.weir_ct_flags;

function ct(flags: number, extra: Partial<WeirCt4> = {}): WeirCt4 {
  return {
    nat_saddr: '198.18.0.100',
    nat_daddr: '198.18.1.10',
    nat_sport: 40000,
    nat_dport: 8080,
    flags,
    tcp_flags_seen: 0x12,
    policy: 0,
    frontend_id: 7,
    tunnel_node: '0.0.0.0',
    ifindex: 0,
    pad: 0,
    created_ns: 11n,
    last_seen_ns: 22n,
    packets: 33n,
    bytes: 44n,
    ...extra,
  };
}

test('pin names: version 1 is the bare base, N >= 2 is <base>_v<N>, and parse back', () => {
  assert.equal(pinName('weir_ct4', 1), 'weir_ct4');
  assert.equal(pinName('weir_ct4', 2), 'weir_ct4_v2');
  assert.deepEqual(parsePinName('weir_ct4_v2'), { base: 'weir_ct4', version: 2 });
  assert.deepEqual(parsePinName('weir_ct4'), { base: 'weir_ct4', version: 1 });
  assert.deepEqual(parsePinName('weir_frontend4'), { base: 'weir_frontend4', version: 1 });
});

test('every map the objects pin is in the table, under the pin name of its version', () => {
  const pinned = Object.keys(abiMaps)
    // the probe's own map and the per-CPU scratch maps of the policy stage, IPv6 flows and the IPv6 tunnel (per object, never pinned)
    .filter((n) => n !== 'weir_probe_last_connect' && n !== 'weir_policy_scratch' && n !== 'weir_ct6_scratch' && n !== 'weir_tunnel6_scratch')
    .sort();
  const table = MAP_ABI.map((r) => pinName(r.base, r.version)).sort();
  assert.deepEqual(table, pinned);
});

test('conntrack v1 spec is the map release 2e42a8d pinned: LRU hash, 16/56 bytes, 262,144 entries', () => {
  const v1 = MAP_ABI.find((r) => r.base === 'weir_ct4')!.older.find((o) => o.version === 1)!;
  const sizes = { keySize: codecFor('weir_ct4_key').size, valueSize: codecFor('weir_ct4_v1').size };
  assert.deepEqual(v1.spec, { type: 'lru_hash', ...sizes, maxEntries: 262144, flags: 0 });
  assert.equal(v1.spec.valueSize, 56);
  assert.equal(v1.rollback, true);
});

test('round trip v2 -> v1 -> v2 keeps the NAT fields, flags, counters and timestamps of a NAT entry', () => {
  const all = F.WEIR_CT_DNAT | F.WEIR_CT_SNAT | F.WEIR_CT_HAIRPIN | F.WEIR_CT_NODEPORT | F.WEIR_CT_SEEN;
  for (const flags of [F.WEIR_CT_DNAT, F.WEIR_CT_SNAT | F.WEIR_CT_REPLY, all]) {
    const v2 = ct(flags);
    const back = ctV1ToV2(ctV2ToV1(v2)!);
    assert.deepEqual({ ...back, pad: 0 }, v2);
  }
});

test('v2 -> v1: an entry without SNAT/DNAT has no v1 form; v2-only fields and flags are dropped', () => {
  assert.equal(ctV2ToV1(ct(0)), undefined);
  assert.equal(ctV2ToV1(ct(F.WEIR_CT_SEEN)), undefined);
  const v1 = ctV2ToV1(ct(F.WEIR_CT_DNAT | F.WEIR_CT_TUNNEL | F.WEIR_CT_DSR, { policy: 3, tunnel_node: '198.18.0.9', ifindex: 5 }))!;
  assert.equal(v1.flags, F.WEIR_CT_DNAT);
  const up = ctV1ToV2(v1);
  assert.deepEqual([up.policy, up.tunnel_node, up.ifindex], [0, '0.0.0.0', 0]);
});

test('the raw converters of the table encode the same as the typed ones (byte for byte)', () => {
  const v1row = MAP_ABI.find((r) => r.base === 'weir_ct4')!.older[0]!;
  const v2 = ct(F.WEIR_CT_DNAT | F.WEIR_CT_SNAT);
  const raw = codecFor('weir_ct4').encode(v2);
  const down = v1row.down(raw)!;
  assert.equal(down.length, 56);
  assert.deepEqual(down, codecFor('weir_ct4_v1').encode(ctV2ToV1(v2)!));
  assert.deepEqual(v1row.up(down), raw);
  assert.equal(v1row.down(codecFor('weir_ct4').encode(ct(0))), undefined);
});
