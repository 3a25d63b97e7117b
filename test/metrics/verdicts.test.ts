// The verdict table of dataplane/counters.ts against the C enum (read from BTF into
// abi.gen.ts): every WEIR_REASON_* is classified drop, forward or event, so a reason added to
// bpf-c/include/weir/counters.h cannot reach weir_drops_total / weir_forwarded_packets_total
// unclassified; and the drop reasons are the ones the C comments call drops.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { enums } from '../../src/bpf/abi.gen.js';
import { REASON_VERDICTS, reasonNames, verdictOf } from '../../src/dataplane/counters.js';
import { BESIDE_EVENTS } from '../lib/beside-events.js';

test('every WEIR_REASON_* has a verdict, and the table names no reason the enum lacks', () => {
  const fromEnum = [...reasonNames.values()].sort();
  const missing = fromEnum.filter((r) => !(r in REASON_VERDICTS));
  assert.deepEqual(missing, [], `classify these in REASON_VERDICTS (src/dataplane/counters.ts): ${missing.join(', ')}`);
  assert.deepEqual(Object.keys(REASON_VERDICTS).sort(), fromEnum, 'a reason in the table that the enum lacks');
  assert.equal(Object.keys(enums.weir_reason).filter((n) => !n.endsWith('__MAX')).length, fromEnum.length);
});

test('drops are the reasons that drop or reject the packet', () => {
  const drops = Object.entries(REASON_VERDICTS)
    .filter(([, v]) => v === 'drop')
    .map(([r]) => r)
    .sort();
  assert.deepEqual(drops, [
    'backend_missing',
    'ct_create_failed',
    'host_forward_denied',
    'host_policy_denied',
    'host_prednat_denied',
    'host_untracked_denied',
    'lb_source_denied',
    'nat_failed',
    'no_backend_reject',
    'no_local_backend_drop',
    'policy_egress_denied',
    'policy_ingress_denied',
    'reject_failed',
    'sctp_port_rewrite',
    'spoofed_source',
    'tunnel_denied',
    'tunnel_failed',
    'tunnel_frag_needed',
    'tunnel_too_big',
  ]);
  // events counted next to a packet's own reason are never a verdict, nor is a socket call
  for (const r of BESIDE_EVENTS) assert.equal(verdictOf('from_pod', r), 'event', r);
  assert.equal(verdictOf('sock', 'pass'), 'event');
  assert.equal(verdictOf('from_pod', 'pass'), 'forward');
  assert.equal(verdictOf('from_host', 'no_local_backend_drop'), 'drop');
  assert.equal(verdictOf('from_pod', 'a_reason_from_a_newer_object'), 'event');
});
