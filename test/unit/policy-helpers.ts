// Fixtures for the policy model tests: the upstream netpol e2e suite's cluster (namespaces x, y, z,
// pods a, b, c in each, labelled pod=<name>, serving 80 and 81 on TCP, UDP and SCTP with ports
// named serve-<port>-<proto>), its Reachability truth table, and NetworkPolicy builders.
// Addresses from 198.18.0.0/15 only.

import assert from 'node:assert/strict';
import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { buildPolicyModel, type PolicyInputs, type PolicyModel } from '../../src/model/policy/network-policy.js';
import { allowed } from '../../src/model/policy/verdict.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
export const ALL_PODS: string[] = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));

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

/** A NetworkPolicy from a namespace, a name and a spec written as in YAML. */
export function policy(ns: string, name: string, spec: Record<string, unknown>): V1NetworkPolicy {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec: spec as V1NetworkPolicy['spec'] };
}

export interface ClusterOptions {
  podLabels?: Record<string, Record<string, string>>;
  nsLabels?: Record<string, Record<string, string>>;
}

/** The e2e cluster's inputs with these policies. */
export function e2eInputs(policies: V1NetworkPolicy[], o: ClusterOptions = {}): PolicyInputs {
  return {
    policies,
    pods: ALL_PODS.map((k) => pod(k, o.podLabels?.[k] ? { labels: o.podLabels[k] } : {})),
    namespaces: NAMESPACES.map((n) => namespace(n, o.nsLabels?.[n] ?? {})),
  };
}

interface PeerSpec {
  ns?: string;
  pod?: string;
}

function matches(p: PeerSpec, pod: string): boolean {
  const [ns, name] = pod.split('/');
  return (p.ns === undefined || p.ns === ns) && (p.pod === undefined || p.pod === name);
}

/** The e2e suite's Reachability: a from × to table with a default, refined by Expect* calls in order. */
export class Reachability {
  readonly cells = new Map<string, boolean>();
  constructor(def: boolean) {
    for (const f of ALL_PODS) for (const t of ALL_PODS) this.cells.set(`${f}>${t}`, def);
  }
  expectPeer(from: PeerSpec, to: PeerSpec, v: boolean): this {
    for (const f of ALL_PODS) for (const t of ALL_PODS) if (matches(from, f) && matches(to, t)) this.cells.set(`${f}>${t}`, v);
    return this;
  }
  expect(from: string, to: string, v: boolean): this {
    this.cells.set(`${from}>${to}`, v);
    return this;
  }
  expectAllIngress(to: string, v: boolean): this {
    for (const f of ALL_PODS) this.cells.set(`${f}>${to}`, v);
    return this;
  }
  expectAllEgress(from: string, v: boolean): this {
    for (const t of ALL_PODS) this.cells.set(`${from}>${t}`, v);
    return this;
  }
}

/**
 * Every cell of the table against the model's verdict, loopback excluded as upstream does
 * (ignoreLoopback: CNIs disagree). On mismatch, the whole observed table and the wrong cells.
 */
export function assertReachability(model: PolicyModel, want: Reachability, protocol: string, port: number): number {
  const wrong: string[] = [];
  const rows: string[] = [`      ${ALL_PODS.join(' ')}`];
  let checked = 0;
  for (const f of ALL_PODS) {
    let row = `${f}  `;
    for (const t of ALL_PODS) {
      if (f === t) {
        row += '  .  ';
        continue;
      }
      const got = allowed(model, { pod: f }, { pod: t }, protocol, port);
      const exp = want.cells.get(`${f}>${t}`)!;
      checked++;
      row += got === exp ? (got ? '  .  ' : '  X  ') : got ? ' !ok ' : ' !X  ';
      if (got !== exp) wrong.push(`${f} -> ${t} ${protocol}/${port}: got ${got}, want ${exp}`);
    }
    rows.push(row);
  }
  assert.equal(wrong.length, 0, `${wrong.join('\n')}\n${rows.join('\n')}`);
  return checked;
}

export function check(policies: V1NetworkPolicy[], want: Reachability, protocol: string, port: number, o: ClusterOptions = {}): PolicyModel {
  const model = buildPolicyModel(e2eInputs(policies, o));
  assert.deepEqual(model.policyIssues, [], 'no policy issues');
  assertReachability(model, want, protocol, port);
  return model;
}
