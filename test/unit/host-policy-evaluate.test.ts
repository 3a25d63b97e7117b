// evaluate / failsafeMatch (model/host-policy/evaluate.ts) on compiled plans: issue 17's must-show
// scenarios 1, 2, 3 and 5 as pure model (the lab tests play the same with real packets), and the
// walk itself (Pass trail, nomatch, family, not-sets).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, failsafeMatch } from '../../src/model/host-policy/evaluate.js';
import { parseFailsafes } from '../../src/model/host-policy/failsafe.js';
import type { HostPolicyPlan } from '../../src/model/host-policy/types.js';
import { FAILSAFES, compile, gnp, namespace, node, pod, tcp } from './host-policy-helpers.js';

const CLIENT_A = '198.18.100.1';
const CLIENT_B = '198.18.100.2';
const NODES = [node('n1', '198.18.0.1', { 'host-protect': 'on' }), node('n2', '198.18.0.2')];

function hepId(plan: HostPolicyPlan): number {
  return plan.endpoints.find((e) => e.auto)!.id;
}

test('must-show 1: a policy selecting nodes by label denies TCP 2222 to one client, allows another by nets; an unlabelled node is unaffected', () => {
  const policies = [
    gnp('protect-ssh', {
      selector: "host-protect == 'on'",
      ingress: [
        { action: 'Allow', protocol: 'TCP', source: { nets: [`${CLIENT_A}/32`] }, destination: { ports: [2222] } },
        { action: 'Deny', protocol: 'TCP', destination: { ports: [2222] } },
        { action: 'Allow' },
      ],
    }),
  ];
  const n1 = compile({ nodes: NODES, globalNetworkPolicies: policies });
  const n2 = compile({ nodeName: 'n2', nodes: NODES, globalNetworkPolicies: policies });
  const v = (plan: HostPolicyPlan, src: string, port: number) => evaluate(plan, hepId(plan), 'normalIn', tcp(src, '198.18.0.1', port));
  const a = v(n1, CLIENT_A, 2222);
  assert.equal(a.verdict, 'allow');
  assert.equal(n1.policyNames.get(n1.rules[a.ruleIndex!]!.policy), 'default/protect-ssh');
  assert.equal(n1.rules[a.ruleIndex!]!.rule, 0);
  const b = v(n1, CLIENT_B, 2222);
  assert.equal(b.verdict, 'deny');
  assert.equal(n1.rules[b.ruleIndex!]!.rule, 1, 'denied by the policy rule, not the tier end');
  assert.equal(v(n1, CLIENT_B, 80).verdict, 'allow');
  assert.equal(v(n1, CLIENT_B, 80).ruleIndex, b.ruleIndex! + 1);
  // IPv6 client: the nets rule is IPv4-only, so it falls to the deny
  assert.equal(evaluate(n1, hepId(n1), 'normalIn', tcp('2001:2::1', '2001:2::10', 2222)).verdict, 'deny');
  const other = v(n2, CLIENT_B, 2222);
  assert.equal(other.verdict, 'allow');
  assert.equal(n2.rules[other.ruleIndex!]!.compiled, 'profile');
});

test('must-show 2: a default-deny host policy denies everything but the failsafes (22, 6443, weir health port) bypass it', () => {
  const withHealth = [...FAILSAFES, ...parseFailsafes('tcp:9745', 'in').entries];
  const plan = compile({
    nodes: NODES,
    failsafes: withHealth,
    globalNetworkPolicies: [gnp('default-deny', { selector: 'all()', types: ['Ingress', 'Egress'] })],
  });
  const hep = hepId(plan);
  for (const port of [22, 6443, 9745, 2222]) {
    const p = tcp(CLIENT_B, '198.18.0.1', port);
    const v = evaluate(plan, hep, 'normalIn', p);
    assert.equal(v.verdict, 'deny', `port ${port}: the policy itself denies`);
    assert.equal(plan.rules[v.ruleIndex!]!.compiled, 'tierEnd');
    assert.equal(failsafeMatch(plan, 'in', p) !== undefined, port !== 2222, `port ${port} failsafe`);
  }
  assert.equal(failsafeMatch(plan, 'in', { ...tcp(CLIENT_B, '198.18.0.1', 68), protocol: 17 })?.port, 68, 'DHCP client, UDP');
  assert.equal(failsafeMatch(plan, 'in', { ...tcp(CLIENT_B, '198.18.0.1', 22), protocol: 17 }), undefined, 'UDP 22 is no failsafe');
  // outbound: DNS and the API server
  assert.equal(failsafeMatch(plan, 'out', { ...tcp('198.18.0.1', '198.18.53.53', 53), protocol: 17 })?.port, 53);
  assert.equal(failsafeMatch(plan, 'out', tcp('198.18.0.1', '198.18.0.9', 6443))?.port, 6443);
  assert.equal(evaluate(plan, hep, 'normalOut', tcp('198.18.0.1', '198.18.0.9', 6443)).verdict, 'deny');
  // a failsafe with a CIDR holds only for peers inside it
  const narrow = compile({ nodes: NODES, failsafes: parseFailsafes('tcp:198.18.100.0/31:22', 'in').entries });
  assert.ok(failsafeMatch(narrow, 'in', tcp(CLIENT_B, '198.18.0.1', 22)) === undefined);
  assert.ok(failsafeMatch(narrow, 'in', tcp('198.18.100.0', '198.18.0.1', 22)) !== undefined);
});

test('must-show 3: preDNAT restricts who reaches a NodePort; allowed traffic skips normal policy, other traffic goes on', () => {
  const policies = [
    gnp('nodeport-30080', {
      preDNAT: true,
      applyOnForward: true,
      order: 10,
      ingress: [
        { action: 'Allow', protocol: 'TCP', source: { nets: [`${CLIENT_A}/32`] }, destination: { ports: [30080] } },
        { action: 'Deny', protocol: 'TCP', destination: { ports: [30080] } },
      ],
    }),
  ];
  const plan = compile({ nodes: NODES, globalNetworkPolicies: policies });
  const hep = hepId(plan);
  assert.equal(evaluate(plan, hep, 'preDnatIn', tcp(CLIENT_A, '198.18.0.1', 30080)).verdict, 'allow');
  assert.equal(evaluate(plan, hep, 'preDnatIn', tcp(CLIENT_B, '198.18.0.1', 30080)).verdict, 'deny');
  // no match: no default drop in preDNAT, the packet continues to normal / forward / pod policy
  assert.equal(evaluate(plan, hep, 'preDnatIn', tcp(CLIENT_B, '198.18.0.1', 30081)).verdict, 'nomatch');
  assert.equal(evaluate(plan, hep, 'normalIn', tcp(CLIENT_B, '198.18.0.1', 30081)).verdict, 'allow');
  assert.equal(evaluate(plan, hep, 'forwardIn', tcp(CLIENT_A, '198.18.10.5', 8080)).verdict, 'nomatch', 'no forward chain: allowed');
});

test('must-show 5: applyOnForward polices traffic forwarded to pods when set, and not when not', () => {
  const pods = [pod('prod', 'web', '198.18.10.5', { app: 'web' })];
  const namespaces = [namespace('prod')];
  const spec = (applyOnForward: boolean) => ({
    selector: "host-protect == 'on'",
    applyOnForward,
    ingress: [
      { action: 'Deny', protocol: 'TCP', source: { nets: [`${CLIENT_B}/32`] }, destination: { selector: "app == 'web'", ports: [8080] } },
      { action: 'Allow' },
    ],
  });
  const on = compile({ nodes: NODES, pods, namespaces, globalNetworkPolicies: [gnp('fwd', spec(true))] });
  const off = compile({ nodes: NODES, pods, namespaces, globalNetworkPolicies: [gnp('fwd', spec(false))] });
  const toPod = (src: string) => tcp(src, '198.18.10.5', 8080);
  assert.equal(evaluate(on, hepId(on), 'forwardIn', toPod(CLIENT_B)).verdict, 'deny');
  assert.equal(evaluate(on, hepId(on), 'forwardIn', toPod(CLIENT_A)).verdict, 'allow');
  assert.equal(evaluate(on, hepId(on), 'forwardIn', tcp(CLIENT_B, '198.18.10.6', 8080)).verdict, 'allow', 'not the selected pod');
  const offV = evaluate(off, hepId(off), 'forwardIn', toPod(CLIENT_B));
  assert.equal(offV.verdict, 'nomatch', 'no applyOnForward policy: no forward chain, forwarded traffic allowed');
  assert.equal(
    off.chains.some((c) => c.kind === 'forwardIn'),
    false,
  );
});

test('evaluate: Pass leaves a trail and continues at the next tier; untracked chains fall off with nomatch', () => {
  const policies = [
    gnp('admin', { tier: 'kube-admin', ingress: [{ action: 'Pass', source: { nets: ['198.18.100.0/24'] } }, { action: 'Deny' }] }),
    gnp('app', { ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [443] } }] }),
    gnp('untracked', { doNotTrack: true, applyOnForward: true, ingress: [{ action: 'Deny', source: { notNets: ['198.18.0.0/16'] } }] }),
  ];
  const plan = compile({ nodes: NODES, globalNetworkPolicies: policies });
  const hep = hepId(plan);
  const passed = evaluate(plan, hep, 'normalIn', tcp(CLIENT_A, '198.18.0.1', 443));
  assert.equal(passed.verdict, 'allow');
  assert.equal(passed.trail.length, 2);
  assert.equal(plan.rules[passed.trail[0]!]!.action, 'pass');
  assert.equal(passed.trail[1], passed.ruleIndex);
  const passedOther = evaluate(plan, hep, 'normalIn', tcp(CLIENT_A, '198.18.0.1', 80));
  assert.equal(plan.rules[passedOther.ruleIndex!]!.compiled, 'tierEnd', 'default tier took part: its end denies');
  const notPassed = evaluate(plan, hep, 'normalIn', tcp('198.18.200.1', '198.18.0.1', 443));
  assert.equal(notPassed.verdict, 'deny');
  assert.equal(plan.rules[notPassed.ruleIndex!]!.rule, 1, 'the admin tier denies what it did not pass');
  assert.equal(evaluate(plan, hep, 'untrackedIn', tcp('198.19.0.1', '198.18.0.1', 443)).verdict, 'deny', 'not in notNets');
  assert.equal(evaluate(plan, hep, 'untrackedIn', tcp(CLIENT_A, '198.18.0.1', 443)).verdict, 'nomatch');
  assert.equal(evaluate(plan, 999, 'normalIn', tcp(CLIENT_A, '198.18.0.1', 443)).verdict, 'nomatch', 'unknown endpoint');
});
