// The upstream NetworkPolicy e2e suite (kubernetes/kubernetes test/e2e/network/netpol/network_policy.go)
// on the pure model: every scenario of test/lib/netpol-scenarios.ts (the suite's policies and truth
// tables, shared with the lab test on real packets, test/lab/policy-e2e.test.ts), each step's model
// against each table; the tables themselves against the spec's reference evaluator; and, for two
// scenarios, what the change between steps rewrites.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPolicyModel, type PolicyModel } from '../../src/model/policy/network-policy.js';
import { diffPolicyModels } from '../../src/model/policy/diff.js';
import { netpolScenarios, compareTruthTable } from '../lib/netpol-scenarios.js';
import { assertReachability, check, e2eInputs, podIp, Reachability } from './policy-helpers.js';
import { referenceAllowed } from './policy-reference.js';

const scenarios = netpolScenarios(podIp);

/** What the change between a scenario's steps must rewrite in the model (beyond the tables). */
const extras: Record<string, (models: PolicyModel[]) => void> = {
  'should allow ingress access from updated namespace': ([before, after]) => {
    // the relabel gives y's pods new identities; only x/a (the one endpoint selecting them) gains keys
    const d = diffPolicyModels(before!, after!);
    assert.deepEqual(
      d.endpoints.changed.filter((c) => c.ingress.added.length + c.egress.added.length > 0).map((c) => c.pod),
      ['x/a'],
    );
  },
  'should stop enforcing policies after they are deleted': ([before, after]) => {
    const d = diffPolicyModels(before!, after!);
    assert.equal(d.endpoints.changed.length, 3, 'the three x pods lose isolation');
    assert.ok(d.endpoints.changed.every((c) => c.ingress.isolated?.to === false && c.egress.isolated?.to === false));
  },
};

for (const s of scenarios) {
  test(`e2e: ${s.name}`, () => {
    const models = s.steps.map((st) => {
      let model: PolicyModel | undefined;
      for (const p of st.probes) model = check(st.policies, p.want, p.protocol, p.port, st.cluster);
      return model!;
    });
    extras[s.name]?.(models);
  });
}

test('e2e tables agree with the reference evaluator (written from the spec, sharing no code with the model)', () => {
  let cells = 0;
  for (const s of scenarios)
    for (const st of s.steps) {
      const cluster = e2eInputs(st.policies, st.cluster);
      const ref = { policies: [...cluster.policies], pods: [...cluster.pods], namespaces: [...cluster.namespaces] };
      for (const p of st.probes) {
        const r = compareTruthTable((f, t) => referenceAllowed(ref, { pod: f }, { pod: t }, p.protocol, p.port), p.want);
        assert.equal(r.wrong.length, 0, `${s.name} ${p.protocol}/${p.port}:\n${r.wrong.join('\n')}\n${r.table}`);
        cells += r.checked;
      }
    }
  console.log(`${scenarios.length} scenarios, ${cells} cells agree with the reference`);
  assert.ok(scenarios.length >= 40);
});

test('every scenario has an extra check only where one is named', () => {
  for (const name of Object.keys(extras))
    assert.ok(
      scenarios.some((s) => s.name === name),
      name,
    );
});

test('truth table count: every scenario checks 72 ordered pairs', () => {
  const model = buildPolicyModel(e2eInputs([]));
  assert.equal(assertReachability(model, new Reachability(true), 'TCP', 80), 72);
  assert.equal(model.endpoints.size, 9);
});
