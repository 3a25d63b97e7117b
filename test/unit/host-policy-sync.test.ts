// HostPolicyWriter (src/dataplane/host-policy-sync.ts) on in-memory maps that log every write in
// one sequence: what a plan becomes in the host policy maps, the order that never opens a gap
// (names and sets, failsafes, rules into the unused half, chains, interfaces, deletions last),
// that an unchanged plan (and a restart's adopt) writes nothing, that a set-only change writes
// no rule, and that a full rule array or a bad entry is a named failure with the rest written.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HEP_XDP_ATTACHED, hepIfaces, HostPolicyWriter, type HostPolicyMaps } from '../../src/dataplane/host-policy-sync.js';
import type { HostEndpointPlan, HostPolicyPlan } from '../../src/model/host-policy/types.js';
import { FakeMap } from './fake-maps.js';

/** FakeMaps that append `map op key` to one shared log. */
function fakes() {
  const log: string[] = [];
  const mk = <K, V>(name: string) => {
    const m = new FakeMap<K, V>();
    const set = m.set.bind(m);
    const del = m.delete.bind(m);
    m.set = (k: K, v: V) => {
      set(k, v);
      log.push(`${name} set ${JSON.stringify(k)}`);
    };
    m.delete = (k: K) => {
      log.push(`${name} delete ${JSON.stringify(k)}`);
      return del(k);
    };
    return m;
  };
  const f = {
    ifaces: mk('ifaces'),
    chains: mk('chains'),
    rules: mk('rules'),
    sets4: mk('sets4'),
    sets6: mk('sets6'),
    failsafe4: mk('failsafe4'),
    failsafe6: mk('failsafe6'),
    names: mk('names'),
  };
  return { f, log, maps: f as unknown as HostPolicyMaps };
}

const AUTO: HostEndpointPlan = { id: 1, name: 'n1-auto-hep', auto: true, interfaces: '*', expectedIPs: [], labels: {}, profiles: [], policies: [] };
const ETH1: HostEndpointPlan = { ...AUTO, id: 2, name: 'eth1-hep', auto: false, interfaces: ['eth1'] };

/** hep 1: normalIn = [allow tcp/80 from set 1 (policy 1), tier-end deny, profile allow]; untrackedIn = [deny from set 2] */
function plan(over: Partial<HostPolicyPlan> = {}): HostPolicyPlan {
  return {
    endpoints: [AUTO],
    chains: [
      { hep: 1, kind: 'normalIn', first: 0, count: 3 },
      { hep: 1, kind: 'untrackedIn', first: 3, count: 1 },
    ],
    rules: [
      { action: 'allow', protocol: 6, dports: [80, 80], srcSet: 1, policy: 1, rule: 0 },
      { action: 'deny', policy: 0, rule: 0, compiled: 'tierEnd' },
      { action: 'allow', policy: 0, rule: 0, compiled: 'profile' },
      { action: 'deny', srcSet: 2, policy: 2, rule: 0 },
    ],
    sets: new Map([
      [1, ['198.18.0.0/24', '2001:2::/64']],
      [2, ['198.18.9.9']],
    ]),
    policyNames: new Map([
      [1, 'default/allow-http'],
      [2, 'default/block-bad'],
    ]),
    failsafes: [{ direction: 'in', protocol: 'tcp', port: 22 }],
    errors: [],
    ...over,
  };
}

const HOSTS = [
  { ifname: 'eth0', ifindex: 5 },
  { ifname: 'eth1', ifindex: 6 },
];

const firstIndex = (log: string[], prefix: string) => log.findIndex((l) => l.startsWith(prefix));
const lastIndex = (log: string[], prefix: string) => log.findLastIndex((l) => l.startsWith(prefix));

test('a plan becomes entries of every map, in the order that never opens a gap', () => {
  const { f, log, maps } = fakes();
  const w = new HostPolicyWriter(maps, 64);
  const r = w.apply(plan(), hepIfaces(plan(), HOSTS, new Set([5])));
  assert.equal(r.errors, 0, JSON.stringify(w.takeFailures()));
  assert.equal(f.names.data.size, 2);
  assert.equal(f.sets4.data.size, 2);
  assert.equal(f.sets6.data.size, 1);
  assert.deepEqual(f.sets4.get({ prefixlen: 64, set: 2, address: '198.18.9.9' }), 1);
  // tcp:22 with no CIDR: both families, any peer
  assert.equal(f.failsafe4.get({ prefixlen: 32, direction: 0, protocol: 6, port: 22, address: '0.0.0.0' }), 1);
  assert.equal(f.failsafe6.get({ prefixlen: 32, direction: 0, protocol: 6, port: 22, address: '::' }), 1);
  // the first generation goes into the half not in use (the second: nothing pointed anywhere yet)
  assert.equal(r.half, 1);
  assert.deepEqual(f.chains.get({ hep: 1, kind: 3 }), { first: 32, count: 3 });
  assert.deepEqual(f.chains.get({ hep: 1, kind: 0 }), { first: 35, count: 1 });
  const r0 = f.rules.get(32) as { action: number; flags: number; dport_min: number; src_set: number; policy: number };
  assert.deepEqual([r0.action, r0.flags, r0.dport_min, r0.src_set, r0.policy], [0, 1 | 4, 80, 1, 1]);
  assert.equal((f.rules.get(33) as { flags: number }).flags, 32, 'the end-of-tier deny is flagged');
  // both interfaces: the auto endpoint `*`, XDP only on eth0
  assert.deepEqual(f.ifaces.get({ ifindex: 5 }), { hep: 1, flags: HEP_XDP_ATTACHED });
  assert.deepEqual(f.ifaces.get({ ifindex: 6 }), { hep: 1, flags: 0 });
  // order: names and sets before rules, rules before chains, chains before interfaces
  assert.ok(lastIndex(log, 'names') < firstIndex(log, 'rules'));
  assert.ok(lastIndex(log, 'sets') < firstIndex(log, 'rules'));
  assert.ok(lastIndex(log, 'rules') < firstIndex(log, 'chains'));
  assert.ok(lastIndex(log, 'chains') < firstIndex(log, 'ifaces'));
});

test('an unchanged plan writes nothing, and neither does a restart that adopts the maps', () => {
  const { maps } = fakes();
  const w = new HostPolicyWriter(maps, 64);
  const ifaces = hepIfaces(plan(), HOSTS, new Set());
  assert.ok(w.apply(plan(), ifaces).writes > 0);
  assert.equal(w.apply(plan(), ifaces).writes, 0);
  const restarted = new HostPolicyWriter(maps, 64);
  const adopted = restarted.adopt();
  assert.deepEqual(adopted, { chains: 2, rules: 4, ifaces: 2 });
  const r = restarted.apply(plan(), ifaces);
  assert.equal(r.writes, 0);
  assert.equal(r.half, 1);
  assert.equal(restarted.policyNames().get(2), 'default/block-bad');
});

test('a changed rule: the new generation into the other half, then the switch, then what is gone', () => {
  const { f, log, maps } = fakes();
  const w = new HostPolicyWriter(maps, 64);
  const ifaces = hepIfaces(plan(), HOSTS, new Set());
  w.apply(plan(), ifaces);
  log.length = 0;
  // the untracked chain and set 2 go away; the http rule now names set 3
  const p = plan({
    chains: [{ hep: 1, kind: 'normalIn', first: 0, count: 3 }],
    rules: plan()
      .rules.slice(0, 3)
      .map((r, i) => (i === 0 ? { ...r, srcSet: 3 } : r)),
    sets: new Map([[3, ['198.18.1.0/24']]]),
    policyNames: new Map([[1, 'default/allow-http']]),
  });
  const r = w.apply(p, ifaces);
  assert.equal(r.errors, 0);
  assert.equal(r.half, 0);
  assert.deepEqual(f.chains.get({ hep: 1, kind: 3 }), { first: 0, count: 3 });
  assert.equal(f.chains.get({ hep: 1, kind: 0 }), undefined);
  assert.equal((f.rules.get(0) as { src_set: number }).src_set, 3);
  assert.equal(f.sets4.get({ prefixlen: 64, set: 2, address: '198.18.9.9' }), undefined);
  assert.equal(f.names.get(2), undefined);
  // the new set before the rules, the rules before the switch, deletions of sets and names after it
  assert.ok(firstIndex(log, 'sets4 set') < firstIndex(log, 'rules'));
  assert.ok(lastIndex(log, 'rules') < firstIndex(log, 'chains set'));
  assert.ok(lastIndex(log, 'chains set') < firstIndex(log, 'chains delete'));
  assert.ok(lastIndex(log, 'chains') < firstIndex(log, 'sets4 delete'));
  assert.ok(lastIndex(log, 'chains') < firstIndex(log, 'names delete'));
  // the interfaces did not change: not rewritten
  assert.equal(firstIndex(log, 'ifaces'), -1);
});

test('a change of set members only writes set entries, no rule and no chain', () => {
  const { log, maps } = fakes();
  const w = new HostPolicyWriter(maps, 64);
  const ifaces = hepIfaces(plan(), HOSTS, new Set());
  w.apply(plan(), ifaces);
  log.length = 0;
  const r = w.apply(plan({ sets: new Map([...plan().sets, [2, ['198.18.9.9', '198.18.9.10']]]) }), ifaces);
  assert.equal(r.writes, 1);
  assert.deepEqual(log, ['sets4 set {"prefixlen":64,"set":2,"address":"198.18.9.10"}']);
});

test('a named host endpoint beats `*`, an explicit `*` beats the automatic one; XDP flags follow the attachment', () => {
  const star: HostEndpointPlan = { ...AUTO, id: 3, name: 'all', auto: false };
  const m = hepIfaces({ endpoints: [AUTO, star, ETH1] }, HOSTS, new Set([6]));
  assert.deepEqual(m.get(5), { hep: 3, flags: 0 });
  assert.deepEqual(m.get(6), { hep: 2, flags: HEP_XDP_ATTACHED });
  assert.equal(hepIfaces({ endpoints: [ETH1] }, HOSTS, new Set()).has(5), false, 'no endpoint covers eth0: no entry');
});

test('rules beyond a half of the array: rules_full, the generation in force kept, the rest written', () => {
  const { f, maps } = fakes();
  const w = new HostPolicyWriter(maps, 8); // halves of 4
  const ifaces = hepIfaces(plan(), HOSTS, new Set());
  w.apply(plan(), ifaces);
  const big = plan({
    chains: [{ hep: 1, kind: 'normalIn', first: 0, count: 5 }],
    rules: [...plan().rules, { action: 'allow', policy: 0, rule: 0, compiled: 'profile' }],
    sets: new Map([...plan().sets, [4, ['198.18.4.0/24']]]),
  });
  const r = w.apply(big, ifaces);
  assert.equal(r.errors, 1);
  assert.deepEqual(
    w.takeFailures().map((x) => x.reason),
    ['rules_full'],
  );
  assert.deepEqual(f.chains.get({ hep: 1, kind: 3 }), { first: 4, count: 3 }, 'the chains still point at the generation in force');
  assert.equal(f.sets4.get({ prefixlen: 56, set: 4, address: '198.18.4.0' }), 1, 'the new set entry is written');
});

test('a bad set entry and a refused write are named failures; everything else is written', () => {
  const { f, maps } = fakes();
  f.sets6.failOn = () => true;
  const w = new HostPolicyWriter(maps, 64);
  const p = plan({ sets: new Map([...plan().sets, [5, ['not-an-address', '198.18.5.5/32']]]) });
  const r = w.apply(p, hepIfaces(p, HOSTS, new Set()));
  const fails = w.takeFailures();
  assert.deepEqual(fails.map((x) => x.reason).sort(), ['bad_entry', 'map_full']);
  assert.equal(r.errors, 2);
  assert.equal(f.sets4.get({ prefixlen: 64, set: 5, address: '198.18.5.5' }), 1);
  assert.deepEqual(f.chains.get({ hep: 1, kind: 3 }), { first: 32, count: 3 });
});

test('a switch zeroes the per-rule counts of the half it writes into, never the half in force', () => {
  const { f, maps } = fakes();
  const stats = new FakeMap<number, { packets: bigint; bytes: bigint }>();
  (maps as { stats?: unknown }).stats = stats;
  const w = new HostPolicyWriter(maps, 64);
  const ifaces = hepIfaces(plan(), HOSTS, new Set());
  w.apply(plan(), ifaces); // into half 1 (32..35)
  for (let i = 0; i < 64; i++) stats.set(i, { packets: 7n, bytes: 700n });
  w.apply(plan({ rules: plan().rules.map((r, i) => (i === 0 ? { ...r, dports: [81, 81] as const } : r)) }), ifaces); // into half 0
  assert.deepEqual(f.chains.get({ hep: 1, kind: 3 }), { first: 0, count: 3 });
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => stats.get(i)!.packets),
    [0n, 0n, 0n, 0n],
    'the new generation starts at 0',
  );
  assert.equal(stats.get(32)!.packets, 7n, 'the old half is left alone (packets in flight may still count there)');
});

test("the adopted maps as the compiler's previous plan: set ids with their CIDRs, policy slots with their names", () => {
  const { maps } = fakes();
  new HostPolicyWriter(maps, 64).apply(plan(), hepIfaces(plan(), HOSTS, new Set()));
  const w = new HostPolicyWriter(maps, 64);
  w.adopt();
  const p = w.adoptedPlan();
  assert.deepEqual(
    [...p.sets].sort(([a], [b]) => a - b),
    [
      [1, ['198.18.0.0/24', '2001:2::/64']],
      [2, ['198.18.9.9/32']],
    ],
  );
  assert.deepEqual([...p.policyNames].sort(), [
    [1, 'default/allow-http'],
    [2, 'default/block-bad'],
  ]);
});
