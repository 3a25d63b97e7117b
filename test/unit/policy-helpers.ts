// Fixtures for the policy model tests: the upstream netpol e2e suite's cluster (namespaces x, y, z,
// pods a, b, c in each, labelled pod=<name>, serving 80 and 81 on TCP, UDP and SCTP with ports
// named serve-<port>-<proto>) as model inputs, checked against its Reachability truth tables
// (test/lib/netpol-scenarios.ts).
// Addresses from 198.18.0.0/15 only.

import assert from 'node:assert/strict';
import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { buildPolicyModel, type PolicyInputs, type PolicyModel } from '../../src/model/policy/network-policy.js';
import { allowed } from '../../src/model/policy/verdict.js';

import { ALL_PODS, compareTruthTable, NAMESPACES, POD_NAMES, type ClusterOptions, type Reachability } from '../lib/netpol-scenarios.js';

// the suite's cluster and table live with the scenarios, which the lab test shares
export { ALL_PODS, NAMESPACES, POD_NAMES, policy, Reachability, type ClusterOptions } from '../lib/netpol-scenarios.js';

/** x/a = 198.18.1.10, x/b = 198.18.1.11, …, z/c = 198.18.3.12. */
export function podIp(pod: string): string {
  const [ns, name] = pod.split('/') as [string, string];
  return `198.18.${NAMESPACES.indexOf(ns as 'x') + 1}.${POD_NAMES.indexOf(name as 'a') + 10}`;
}

export function namespace(name: string, labels: Record<string, string> = {}): V1Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } } };
}

export function pod(
  key: string,
  o: { labels?: Record<string, string>; ip?: string | null; node?: string; hostNetwork?: boolean; ports?: [string, number, string][] } = {},
): V1Pod {
  const [ns, name] = key.split('/') as [string, string];
  const ports =
    o.ports ??
    [80, 81].flatMap((port) => ['TCP', 'UDP', 'SCTP'].map((proto) => [`serve-${port}-${proto.toLowerCase()}`, port, proto] as [string, number, string]));
  const ip = o.ip === undefined ? podIp(key) : o.ip;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: ns, name, labels: o.labels ?? { pod: name } },
    spec: {
      nodeName: o.node ?? 'node-1',
      ...(o.hostNetwork ? { hostNetwork: true } : {}),
      containers: ports.map(([pname, port, protocol]) => ({ name: `cont-${pname}`, ports: [{ name: pname, containerPort: port, protocol }] })),
    },
    status: { phase: 'Running', ...(ip !== null ? { podIP: ip, podIPs: [{ ip }] } : {}) },
  };
}

/** The e2e cluster's inputs with these policies. */
export function e2eInputs(policies: V1NetworkPolicy[], o: ClusterOptions = {}): PolicyInputs {
  return {
    policies,
    pods: ALL_PODS.map((k) => pod(k, o.podLabels?.[k] ? { labels: o.podLabels[k] } : {})),
    namespaces: NAMESPACES.map((n) => namespace(n, o.nsLabels?.[n] ?? {})),
  };
}

/**
 * Every cell of the table against the model's verdict, loopback excluded as upstream does
 * (ignoreLoopback: CNIs disagree). On mismatch, the whole truth table as upstream prints it.
 */
export function assertReachability(model: PolicyModel, want: Reachability, protocol: string, port: number): number {
  const r = compareTruthTable((f, t) => allowed(model, { pod: f }, { pod: t }, protocol, port), want);
  assert.equal(r.wrong.length, 0, `${protocol}/${port}:\n${r.wrong.join('\n')}\n${r.table}`);
  return r.checked;
}

export function check(policies: V1NetworkPolicy[], want: Reachability, protocol: string, port: number, o: ClusterOptions = {}): PolicyModel {
  const model = buildPolicyModel(e2eInputs(policies, o));
  assert.deepEqual(model.policyIssues, [], 'no policy issues');
  assertReachability(model, want, protocol, port);
  return model;
}
