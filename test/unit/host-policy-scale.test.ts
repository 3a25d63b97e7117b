// compileHostPolicy at scale: 1,000 GlobalNetworkPolicies, 100 nodes, 10,000 pods. Prints the
// build times (first build, and a rebuild with the previous plan and the same objects); asserts
// what the plan must hold, never a time.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { evaluate } from '../../src/model/host-policy/evaluate.js';
import { compile, gnp, namespace, node, pod, tcp } from './host-policy-helpers.js';

const NODES = Array.from({ length: 100 }, (_, i) => node(`n${i + 1}`, `198.18.0.${i + 1}`, { zone: `z${i % 4}`, pool: i < 10 ? 'edge' : 'worker' }));
const NAMESPACES = Array.from({ length: 50 }, (_, i) => namespace(`ns${i}`, { team: `t${i % 5}` }));
const PODS = Array.from({ length: 10_000 }, (_, i) =>
  pod(`ns${i % 50}`, `p${i}`, `198.19.${Math.floor(i / 250)}.${i % 250}`, { app: `app${i % 100}`, version: `v${i % 3}` }, `n${(i % 100) + 1}`),
);
// 1,000 policies: half select edge nodes, the rest spread over zones; each has an allow from
// one app (sometimes scoped by namespace labels), a nets allow on two ports, and a deny
const POLICIES = Array.from({ length: 1_000 }, (_, i) =>
  gnp(`p${String(i).padStart(4, '0')}`, {
    selector: i % 2 === 0 ? "pool == 'edge'" : `zone == 'z${i % 4}'`,
    order: i % 10,
    types: ['Ingress', 'Egress'],
    ingress: [
      {
        action: 'Allow',
        protocol: 'TCP',
        source: { selector: `app == 'app${i % 100}'`, ...(i % 3 === 0 ? { namespaceSelector: `team == 't${i % 5}'` } : {}) },
        destination: { ports: [1000 + i] },
      },
      { action: 'Allow', protocol: 'UDP', source: { nets: [`198.18.${100 + (i % 50)}.0/24`] }, destination: { ports: [53, '6000:6010'] } },
      { action: 'Deny', protocol: 'TCP', destination: { ports: [2222] } },
    ],
    egress: [{ action: 'Allow', destination: { notNets: ['198.18.200.0/24'] } }],
  }),
);

test('scale: 1,000 policies × 100 nodes × 10,000 pods (times printed)', () => {
  const input = { nodeName: 'n1', nodes: NODES, pods: PODS, namespaces: NAMESPACES, globalNetworkPolicies: POLICIES };
  let t = performance.now();
  const first = compile(input);
  const firstMs = performance.now() - t;
  t = performance.now();
  const again = compile({ ...input, previous: first });
  const againMs = performance.now() - t;
  // n1 (edge, zone z0): the 500 even policies select it; the odd ones select zones z1 and z3 only
  const applied = POLICIES.filter((_, i) => i % 2 === 0 || `z${i % 4}` === 'z0').length;
  assert.deepEqual(first.errors, []);
  assert.equal(first.endpoints.length, 1);
  assert.equal(first.endpoints[0]!.policies.filter((p) => p.chain === 'normalIn').length, applied);
  // per policy: 1 + 2 + 1 ingress flat rules, 1 egress; plus one tier end and one profile per chain
  assert.equal(first.rules.length, applied * 5 + 4);
  assert.deepEqual(again.rules, first.rules);
  assert.deepEqual([...again.sets], [...first.sets]);
  // spot check: app0's pods may reach port 1000 on n1 (policy p0000), the 2222 deny holds for others
  const hep = first.endpoints[0]!.id;
  assert.equal(evaluate(first, hep, 'normalIn', tcp('198.19.0.0', '198.18.0.1', 1000)).verdict, 'allow');
  assert.equal(evaluate(first, hep, 'normalIn', tcp('198.19.0.1', '198.18.0.1', 2222)).verdict, 'deny');
  console.log(
    `host policy compile: ${POLICIES.length} policies, ${NODES.length} nodes, ${PODS.length} pods -> ${first.rules.length} rules, ` +
      `${first.sets.size} sets; first build ${firstMs.toFixed(0)} ms, rebuild with previous ${againMs.toFixed(0)} ms`,
  );
});
