// The API source hands the policy model NetworkPolicies deserialized by client-node's
// ObjectSerializer (src/sources/kube.ts), whose ingress rules carry `from` as `_from`: a rule from
// the API must keep its peers. Found by the chaos campaign (test/lab/chaos.test.ts): every
// ingress rule with a `from` list allowed every peer under --kubeconfig.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { buildPolicyModel } from '../../src/model/policy/network-policy.js';
import { allowed } from '../../src/model/policy/verdict.js';
import { e2eInputs, policy } from './policy-helpers.js';

test('an ingress rule deserialized as the API source does keeps its from peers', () => {
  const raw = policy('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] });
  const typed = ObjectSerializer.deserialize(JSON.parse(JSON.stringify(raw)), 'V1NetworkPolicy') as V1NetworkPolicy;
  assert.ok('_from' in (typed.spec!.ingress![0] as object), 'client-node names it _from');
  const m = buildPolicyModel(e2eInputs([typed]));
  assert.equal(allowed(m, { pod: 'x/b' }, { pod: 'x/a' }, 'TCP', 80), true, 'the selected peer is allowed');
  assert.equal(allowed(m, { pod: 'x/c' }, { pod: 'x/a' }, 'TCP', 80), false, 'another pod is denied');
  assert.equal(allowed(m, { pod: 'y/b' }, { pod: 'x/a' }, 'TCP', 80), false, 'a pod of another namespace is denied');
});
