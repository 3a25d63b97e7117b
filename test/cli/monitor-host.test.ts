// `weir monitor` and host policy, without a kernel: the host drop reasons are in the default
// mask (the drop type), the host allow verdicts only with --reason (shown as policy); a record
// from the XDP prefilter or the host egress program decodes with its hook's name (xdp,
// to_host), and --hook filters on it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { codecFor, enums } from '../../src/bpf/index.js';
import { tableLine } from '../../src/cli/monitor.js';
import { decodeEvent, eventType, matchesFilter, normalizeFilter, reasonMask } from '../../src/dataplane/monitor.js';

const R = enums.weir_reason;
const bit = (name: keyof typeof R) => 1n << BigInt(R[name]);
const HOST_DROPS = [
  'WEIR_REASON_HOST_UNTRACKED_DENIED',
  'WEIR_REASON_HOST_PREDNAT_DENIED',
  'WEIR_REASON_HOST_POLICY_DENIED',
  'WEIR_REASON_HOST_FORWARD_DENIED',
] as const;
const HOST_ALLOWS = ['WEIR_REASON_HOST_FAILSAFE', 'WEIR_REASON_HOST_UNTRACKED_ALLOWED', 'WEIR_REASON_HOST_POLICY_ALLOWED'] as const;

test('the host drop reasons are drops, in the default mask; the host allow verdicts only with --reason', () => {
  for (const r of HOST_DROPS) {
    const name = r.slice('WEIR_REASON_'.length).toLowerCase();
    assert.equal(eventType(name), 'drop', name);
    assert.notEqual(reasonMask() & bit(r), 0n, `${name} in the default mask`);
    assert.notEqual(reasonMask(['drop']) & bit(r), 0n, `${name} in --type drop`);
  }
  for (const r of HOST_ALLOWS) {
    const name = r.slice('WEIR_REASON_'.length).toLowerCase();
    assert.equal(eventType(name), 'policy', name);
    assert.equal(reasonMask() & bit(r), 0n, `${name} not in the default mask`);
    assert.equal(reasonMask([], [name]), bit(r), `--reason ${name}`);
    assert.equal(reasonMask(['policy'], [name]), bit(r), `--type policy --reason ${name}`);
  }
});

const codec = codecFor('weir_event');
const record = (hook: number, reason: number) =>
  codec.encode({
    time_ns: 1_000_000n,
    hook,
    reason,
    family: 4,
    protocol: 6,
    ifindex: 2,
    len: 60,
    flags: 0,
    tcp_flags: 2,
    icmp_type: 0,
    saddr: '::ffff:198.18.66.5',
    daddr: '::ffff:198.18.0.1',
    sport: 40000,
    dport: 8080,
    nat_sport: 0,
    nat_dport: 0,
    nat_saddr: '::',
    nat_daddr: '::',
  });

test('records of the host hooks decode with their names; --hook filters on them', () => {
  const H = enums.weir_hook;
  const xdp = decodeEvent(record(H.WEIR_HOOK_XDP, R.WEIR_REASON_HOST_UNTRACKED_DENIED), 0n)!;
  assert.deepEqual([xdp.hook, xdp.type, xdp.reason, xdp.src, xdp.dst], ['xdp', 'drop', 'host_untracked_denied', '198.18.66.5', '198.18.0.1']);
  const out = decodeEvent(record(H.WEIR_HOOK_TO_HOST, R.WEIR_REASON_HOST_POLICY_DENIED), 0n)!;
  assert.equal(out.hook, 'to_host');
  assert.match(tableLine(xdp), / xdp +drop +host_untracked_denied +tcp +198\.18\.66\.5:40000 -> 198\.18\.0\.1:8080/);
  const f = normalizeFilter({ hooks: ['xdp'] });
  assert.equal(matchesFilter(xdp, f), true);
  assert.equal(matchesFilter(out, f), false);
  assert.equal(matchesFilter(out, normalizeFilter({ hooks: ['xdp', 'to_host'], reasons: ['host_policy_denied'] })), true);
  assert.throws(() => normalizeFilter({ hooks: ['xdp_prefilter'] }), /unknown hook xdp_prefilter \(known: .*to_host.*xdp/);
});
