// The host protection labs read the host policy a daemon has in force from its pins
// (test/lib/host-policy-lab.ts readPlan, inChain, rulePackets); this checks that reading on maps
// laid out as include/weir/host_policy.h says, written here by hand in a private bpffs: two
// chains of one host endpoint, a policy's rules among compiled ones, per-CPU rule stats.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap } from '../../src/bpf/index.js';
import { codecFor } from '../../src/bpf/codec.js';
import { enums } from '../../src/bpf/abi.gen.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { inChain, readPlan, rulePackets } from '../lib/host-policy-lab.js';

const BPF_MAP_TYPE_HASH = 1;
const BPF_MAP_TYPE_ARRAY = 2;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

describe('host-policy-lab: reading the pinned host policy maps', () => {
  let fs: PrivateBpffs;
  const maps: BpfMap[] = [];

  before(() => {
    fs = mountPrivateBpffs('host-policy-lab');
    const make = (name: string, typeId: number, keySize: number, valueSize: number) => {
      const m = BpfMap.create({ typeId, keySize, valueSize, maxEntries: 16, name });
      m.pin(`${fs.path}/${name}`);
      maps.push(m);
      return m;
    };
    const names = make('weir_host_policy_names', BPF_MAP_TYPE_HASH, 4, codecFor('weir_host_policy_name').size);
    const chains = make('weir_hep_chains', BPF_MAP_TYPE_HASH, 8, codecFor('weir_hep_chain').size);
    const rules = make('weir_host_rules', BPF_MAP_TYPE_ARRAY, 4, codecFor('weir_host_rule').size);
    const stats = make('weir_host_rule_stats', BPF_MAP_TYPE_PERCPU_ARRAY, 4, codecFor('weir_host_rule_stats').size);

    const name = Buffer.alloc(320);
    name.write('default/lock-ssh-like');
    names.update(u32(3), codecFor('weir_host_policy_name').encode({ name }));
    const rule = (action: number, policy: number, index: number) =>
      codecFor('weir_host_rule').encode({
        action,
        protocol: 6,
        flags: 0,
        jump: 0,
        sport_min: 0,
        sport_max: 0,
        dport_min: 2222,
        dport_max: 2222,
        src_set: 0,
        src_not_set: 0,
        dst_set: 0,
        dst_not_set: 0,
        policy,
        rule: index,
      });
    const { WEIR_HOST_ALLOW: ALLOW, WEIR_HOST_DENY: DENY } = enums.weir_host_rule_action;
    // normalIn of host endpoint 1 at 4..7: the policy's allow (rule 0) and deny (rule 1), the tier end, the profile
    for (const [i, r] of [rule(ALLOW, 3, 0), rule(DENY, 3, 1), rule(DENY, 0, 0), rule(ALLOW, 0, 0)].entries()) rules.update(u32(4 + i), r);
    // forwardIn of host endpoint 1 at 8: the allow alone
    rules.update(u32(8), rule(ALLOW, 3, 0));
    const chain = (hep: number, kind: number, first: number, count: number) =>
      chains.update(codecFor('weir_hep_chain_key').encode({ hep, kind }), codecFor('weir_hep_chain').encode({ first, count }));
    chain(1, enums.weir_hep_chain_kind.WEIR_CHAIN_NORMAL_IN, 4, 4);
    chain(1, enums.weir_hep_chain_kind.WEIR_CHAIN_FORWARD_IN, 8, 1);
    const cpus = BpfMap.possibleCpus();
    const perCpu = (packets: number) =>
      Array.from({ length: cpus }, (_, cpu) => codecFor('weir_host_rule_stats').encode({ packets: BigInt(cpu === 0 ? packets : 1), bytes: 0n }));
    stats.updatePerCpu(u32(4), perCpu(10));
    stats.updatePerCpu(u32(5), perCpu(20));
    stats.updatePerCpu(u32(8), perCpu(100));
  });
  after(() => {
    for (const m of maps) m.close();
    fs?.cleanup();
  });

  test('readPlan: chains with their rules, policy names resolved, compiled rules unnamed', () => {
    const plan = readPlan(fs.path);
    assert.deepEqual(plan.names, ['default/lock-ssh-like']);
    assert.deepEqual(
      plan.chains.map((c) => [c.hep, c.kind, c.rules.map((r) => [r.index, r.action, r.policy, r.rule])]),
      [
        [1, 'forwardIn', [[8, 'allow', 'default/lock-ssh-like', 0]]],
        [
          1,
          'normalIn',
          [
            [4, 'allow', 'default/lock-ssh-like', 0],
            [5, 'deny', 'default/lock-ssh-like', 1],
            [6, 'deny', '', 0],
            [7, 'allow', '', 0],
          ],
        ],
      ],
    );
    assert.ok(inChain(plan, 'lock-ssh-like', 'normalIn'));
    assert.ok(!inChain(plan, 'lock-ssh-like', 'preDnatIn'));
    assert.ok(!inChain(plan, 'lock', 'normalIn'), 'whole names only');
  });

  test('rulePackets: summed over CPUs, per chain kind or over all of them', () => {
    const others = BpfMap.possibleCpus() - 1;
    assert.equal(rulePackets(fs.path, 'lock-ssh-like', 1, 'normalIn'), 20 + others);
    assert.equal(rulePackets(fs.path, 'lock-ssh-like', 0, 'normalIn'), 10 + others);
    assert.equal(rulePackets(fs.path, 'lock-ssh-like', 0), 10 + 100 + 2 * others);
    assert.throws(() => rulePackets(fs.path, 'lock-ssh-like', 1, 'forwardIn'), /no rule 1 of policy lock-ssh-like in a forwardIn chain/);
  });

  test('readPlan: an empty plan while the maps are not pinned', () => {
    assert.deepEqual(readPlan(`${fs.path}/nothing-here`), { names: [], chains: [], text: '{"names":[],"chains":[]}' });
  });
});
