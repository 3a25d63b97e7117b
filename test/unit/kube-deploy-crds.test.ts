// deploy/calico-crds.yaml: the projectcalico.org/v3 CRDs of the Calico kinds weir reads. They name
// what the API source lists (WATCHED_RESOURCES: group, version, plural, cluster scope), validate
// against the Kubernetes JSON schemas (kubernetes-models), are structural (every field typed;
// ports and protocols int-or-string), and keep every field of the model's types: an object with
// every field of src/model/host-policy/types.ts set passes the schema with nothing pruned (the
// API server drops the fields a schema does not name), and wrong values are refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as jsYaml from 'js-yaml';
import { WATCHED_RESOURCES } from '../../src/sources/kube-resources.js';
import { CALICO_KINDS, CLUSTER_SCOPED } from '../../src/sources/types.js';
import type { CalicoRule, GlobalNetworkPolicy, HostEndpoint } from '../../src/model/host-policy/types.js';

const FILE = new URL('../../../deploy/calico-crds.yaml', import.meta.url).pathname;

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  anyOf?: Schema[];
  'x-kubernetes-int-or-string'?: boolean;
}

interface Crd {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; singular: string; listKind: string };
    versions: { name: string; served: boolean; storage: boolean; schema: { openAPIV3Schema: Schema } }[];
  };
}

const crds = jsYaml.loadAll(readFileSync(FILE, 'utf8')) as Crd[];
const schemaOf = (kind: string) => crds.find((c) => c.spec.names.kind === kind)!.spec.versions[0]!.schema.openAPIV3Schema;

test('one CRD per Calico kind the API source lists: its group, version, plural, cluster scope', () => {
  assert.deepEqual(
    crds.map((c) => `${c.apiVersion} ${c.kind} ${c.metadata.name}`),
    [
      'apiextensions.k8s.io/v1 CustomResourceDefinition globalnetworkpolicies.projectcalico.org',
      'apiextensions.k8s.io/v1 CustomResourceDefinition hostendpoints.projectcalico.org',
    ],
  );
  for (const kind of CALICO_KINDS) {
    const res = WATCHED_RESOURCES.find((r) => r.kind === kind)!;
    assert.equal(res.mayBeAbsent, true, `${kind}: the source copes with the CRD being absent`);
    const crd = crds.find((c) => c.spec.names.kind === kind);
    assert.ok(crd, `${kind}: a CRD`);
    assert.equal(crd.metadata.name, `${res.resource}.${res.group}`);
    assert.equal(crd.spec.group, res.group);
    assert.equal(crd.spec.names.plural, res.resource);
    assert.equal(crd.spec.scope, CLUSTER_SCOPED.has(kind) ? 'Cluster' : 'Namespaced');
    assert.equal(crd.spec.names.listKind, `${kind}List`);
    assert.deepEqual(
      crd.spec.versions.map((v) => [v.name, v.served, v.storage]),
      [['v3', true, true]],
    );
    assert.equal(res.path, `/apis/${crd.spec.group}/${crd.spec.versions[0]!.name}/${crd.spec.names.plural}`);
  }
});

test('validates against the Kubernetes JSON schemas (kubernetes-models)', async () => {
  const { CustomResourceDefinition } = (await import('kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition')) as unknown as {
    CustomResourceDefinition: new (o: unknown) => { validate(): void };
  };
  for (const crd of crds) assert.doesNotThrow(() => new CustomResourceDefinition(crd).validate(), crd.metadata.name);
  // and the validator does refuse a wrong value
  const bad = JSON.parse(JSON.stringify(crds[0])) as { spec: { versions: { served: unknown }[] } };
  bad.spec.versions[0]!.served = 'yes';
  assert.throws(() => new CustomResourceDefinition(bad).validate(), /served must be boolean/);
});

/** The rules of a structural schema (Kubernetes' apiextensions validation) that a hand-written one can break. */
function structuralProblems(s: Schema, at: string, out: string[]): void {
  if (s['x-kubernetes-int-or-string']) {
    if (s.type !== undefined) out.push(`${at}: int-or-string has no type`);
    const alts = (s.anyOf ?? []).map((a) => a.type).sort();
    if (s.anyOf !== undefined && JSON.stringify(alts) !== JSON.stringify(['integer', 'string'])) out.push(`${at}: anyOf is integer|string only`);
    return;
  }
  if (s.type === undefined) out.push(`${at}: no type`);
  if (s.properties !== undefined && s.type !== 'object') out.push(`${at}: properties on a ${s.type}`);
  if (s.type === 'array' && s.items === undefined) out.push(`${at}: an array without items`);
  if (s.anyOf !== undefined) out.push(`${at}: anyOf outside int-or-string`);
  for (const r of s.required ?? []) if (!s.properties?.[r]) out.push(`${at}: required ${r} is not a property`);
  for (const [k, v] of Object.entries(s.properties ?? {})) structuralProblems(v, `${at}.${k}`, out);
  if (s.items) structuralProblems(s.items, `${at}[]`, out);
}

test('the schemas are structural; ports and protocols are int-or-string', () => {
  for (const kind of CALICO_KINDS) {
    const out: string[] = [];
    structuralProblems(schemaOf(kind), kind, out);
    assert.deepEqual(out, [], kind);
  }
  const gnp = schemaOf('GlobalNetworkPolicy').properties!.spec!.properties!;
  for (const dir of ['ingress', 'egress']) {
    const rule = gnp[dir]!.items!.properties!;
    assert.equal(rule.protocol!['x-kubernetes-int-or-string'], true);
    for (const end of ['source', 'destination']) assert.equal(rule[end]!.properties!.ports!.items!['x-kubernetes-int-or-string'], true, `${dir}.${end}`);
  }
  const hepPort = schemaOf('HostEndpoint').properties!.spec!.properties!.ports!.items!.properties!;
  assert.equal(hepPort.protocol!['x-kubernetes-int-or-string'], true);
  assert.equal(hepPort.port!.type, 'integer');
});

/** What the API server does with `v` under `s`: the problems that refuse it, and the fields it prunes. */
function check(s: Schema, v: unknown, at: string, out: { problems: string[]; pruned: string[] }): void {
  if (s['x-kubernetes-int-or-string']) {
    if (!(typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v)))) out.problems.push(`${at}: not an int or a string`);
    return;
  }
  const isObj = typeof v === 'object' && v !== null && !Array.isArray(v);
  const ok = { object: isObj, array: Array.isArray(v), string: typeof v === 'string', boolean: typeof v === 'boolean' };
  const num = typeof v === 'number' && (s.type !== 'integer' || Number.isInteger(v));
  if (!(s.type === 'integer' || s.type === 'number' ? num : ok[s.type as keyof typeof ok])) return void out.problems.push(`${at}: not a ${s.type}`);
  if (s.enum && !s.enum.includes(v)) out.problems.push(`${at}: ${JSON.stringify(v)} is not one of ${s.enum.join(', ')}`);
  if (s.minimum !== undefined && (v as number) < s.minimum) out.problems.push(`${at}: below ${s.minimum}`);
  if (s.maximum !== undefined && (v as number) > s.maximum) out.problems.push(`${at}: above ${s.maximum}`);
  if (Array.isArray(v)) v.forEach((x, i) => check(s.items!, x, `${at}[${i}]`, out));
  if (isObj && s.properties) {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (o[r] === undefined) out.problems.push(`${at}.${r}: required`);
    for (const [k, x] of Object.entries(o)) {
      if (s.properties[k]) check(s.properties[k], x, `${at}.${k}`, out);
      else out.pruned.push(`${at}.${k}`);
    }
  }
  // an object schema without properties (metadata) keeps what it holds: the API server owns it
}

const checked = (kind: string, v: unknown) => {
  const out = { problems: [] as string[], pruned: [] as string[] };
  check(schemaOf(kind), v, kind, out);
  return out;
};

/** Every field set, all the way down: a field added to the model's types must be added here (the
 *  compiler says so), and so is checked against the schema. */
type Full<T> = T extends readonly (infer U)[] ? Full<U>[] : T extends object ? { [K in keyof T]-?: Full<T[K]> } : T;

const fullRule = (action: 'Allow' | 'Deny' | 'Pass', protocol: string | number): Full<CalicoRule> => {
  const entity = (sel: string) => ({
    nets: ['198.18.0.0/15', '2001:2::/48'],
    notNets: ['198.18.9.0/24'],
    selector: sel,
    notSelector: "role == 'db'",
    namespaceSelector: 'all()',
    ports: [22, '8000:8100', 'http'],
  });
  return { action, protocol, source: entity("role == 'edge'"), destination: entity('has(host)') };
};

const fullGnp: Full<GlobalNetworkPolicy> = {
  apiVersion: 'projectcalico.org/v3',
  kind: 'GlobalNetworkPolicy',
  metadata: { name: 'default.allow-ssh', labels: { team: 'infra' }, resourceVersion: '7' },
  spec: {
    tier: 'default',
    order: 10.5,
    selector: "role == 'edge'",
    types: ['Ingress', 'Egress'],
    ingress: [fullRule('Allow', 'TCP'), fullRule('Pass', 6)],
    egress: [fullRule('Deny', 'UDP')],
    applyOnForward: true,
    preDNAT: false,
    doNotTrack: false,
  },
};

const fullHep: Full<HostEndpoint> = {
  apiVersion: 'projectcalico.org/v3',
  kind: 'HostEndpoint',
  metadata: { name: 'node-a-eth0', labels: { role: 'edge' }, resourceVersion: '8' },
  spec: {
    node: 'node-a',
    interfaceName: 'eth0',
    expectedIPs: ['198.18.200.1', '2001:2::1'],
    profiles: ['projectcalico-default-allow'],
    ports: [{ name: 'ssh', protocol: 'TCP', port: 22 }],
  },
};

test('an object with every field of the model types passes, nothing pruned; wrong values are refused', () => {
  assert.deepEqual(checked('GlobalNetworkPolicy', fullGnp), { problems: [], pruned: [] });
  assert.deepEqual(checked('HostEndpoint', fullHep), { problems: [], pruned: [] });

  const gnp = JSON.parse(JSON.stringify(fullGnp)) as { spec: Record<string, unknown> & { ingress: Record<string, unknown>[] } };
  gnp.spec.ingress[0]!.action = 'Drop';
  gnp.spec.ingress[1]!.protocol = { tcp: true };
  gnp.spec.order = '10';
  gnp.spec.notAField = 1;
  assert.deepEqual(checked('GlobalNetworkPolicy', gnp), {
    problems: [
      'GlobalNetworkPolicy.spec.order: not a number',
      'GlobalNetworkPolicy.spec.ingress[0].action: "Drop" is not one of Allow, Deny, Pass, Log',
      'GlobalNetworkPolicy.spec.ingress[1].protocol: not an int or a string',
    ],
    pruned: ['GlobalNetworkPolicy.spec.notAField'],
  });
  const hep = JSON.parse(JSON.stringify(fullHep)) as { spec: Record<string, unknown> & { ports: Record<string, unknown>[] } };
  delete hep.spec.node;
  hep.spec.ports[0]!.port = 70000;
  assert.deepEqual(checked('HostEndpoint', hep).problems, ['HostEndpoint.spec.node: required', 'HostEndpoint.spec.ports[0].port: above 65535']);
});
