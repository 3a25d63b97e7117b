// What `weir policy` and `weir identities` print for a small cluster (model/policy/describe.ts),
// line by line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPolicyModel } from '../../src/model/policy/network-policy.js';
import { describeEndpoint, describeIdentities } from '../../src/model/policy/describe.js';
import { namespace, pod, policy } from './policy-helpers.js';

const pods = [pod('x/a', { ip: '198.18.1.10' }), pod('x/b', { ip: '198.18.1.11' }), pod('x/h', { hostNetwork: true, ip: '198.18.0.1' })];
const web = policy('x', 'web', {
  podSelector: { matchLabels: { pod: 'a' } },
  policyTypes: ['Ingress', 'Egress'],
  ingress: [
    { from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80, endPort: 81 }] },
    { from: [{ ipBlock: { cidr: '198.19.0.0/16', except: ['198.19.1.0/24'] } }] },
  ],
  egress: [],
});
const model = buildPolicyModel({ policies: [web], pods, namespaces: [namespace('x')] });

test('describeEndpoint: identity, isolation, each rule with the identities it names', () => {
  assert.deepEqual(describeEndpoint(model, 'x/a'), [
    'x/a  identity 256 x:{pod=a}  198.18.1.10  node node-1',
    '  ingress: isolated by x/web; 2 keys',
    '    x/web ingress[0]: from pods (257 x:{pod=b}), TCP 80-81',
    '    x/web ingress[1]: from 198.19.0.0/16 except 198.19.1.0/24 (16777216 cidr:198.19.0.0/16), any protocol, any port',
    '  egress: isolated by x/web; 0 keys',
    '    (no rule: default deny)',
  ]);
  assert.deepEqual(describeEndpoint(model, 'x/b'), [
    'x/b  identity 257 x:{pod=b}  198.18.1.11  node node-1',
    '  ingress: not isolated, everything allowed',
    '  egress: not isolated, everything allowed',
  ]);
  assert.deepEqual(describeEndpoint(model, 'x/h'), ["x/h: host network on node-1, not policed (its traffic is the node's)"]);
  assert.deepEqual(describeEndpoint(model, 'x/zz'), ['x/zz: no endpoint (unknown pod or no address)']);
});

test('describeIdentities: pods and CIDR prefixes by id', () => {
  assert.deepEqual(describeIdentities(model), [
    '256\tx:{pod=a}\t1 endpoints',
    '257\tx:{pod=b}\t1 endpoints',
    '16777216\tcidr:198.19.0.0/16\t0 endpoints',
    '16777217\tcidr:198.19.1.0/24\t0 endpoints',
  ]);
});
