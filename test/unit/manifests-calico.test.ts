// The manifests source with Calico's projectcalico.org/v3 GlobalNetworkPolicy and HostEndpoint:
// cluster-scoped (keyed by name, no namespace), the spec as written (ports and protocols as
// numbers or strings), the structural check (sources/validate-calico.ts) refusing what the
// model must not walk, and a directory's objects reaching the store's getters.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseManifest } from '../../src/sources/manifest-parse.js';
import { ManifestsSource } from '../../src/sources/manifests.js';
import { memoryLogger } from '../../src/log.js';
import { Store } from '../../src/sources/store.js';
import type { ObjectEvent } from '../../src/sources/types.js';

const POLICY = `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: default.allow-ssh
  namespace: ignored
  labels: {team: infra}
spec:
  tier: default
  order: 100
  selector: role == 'edge'
  types: [Ingress]
  ingress:
    - action: Allow
      protocol: TCP
      source:
        nets: [198.18.0.0/15, "2001:2::/48"]
      destination:
        ports: [22, "8000:8100", ssh]
    - action: Deny
      protocol: 17
  preDNAT: false
  applyOnForward: true
`;

const HEP = `kind: HostEndpoint
metadata:
  name: node-a-eth0
  labels: {role: edge}
spec:
  node: node-a
  interfaceName: eth0
  expectedIPs: [198.18.200.1]
  ports:
    - {name: ssh, protocol: TCP, port: 22}
`;

test('GlobalNetworkPolicy and HostEndpoint manifests: keyed by name, the spec as written, apiVersion filled in', () => {
  const parsed = parseManifest(`${POLICY}---\n${HEP}`, false);
  assert.deepEqual(parsed.rejects, []);
  assert.deepEqual(
    parsed.objects.map((o) => o.identity),
    ['GlobalNetworkPolicy/default.allow-ssh', 'HostEndpoint/node-a-eth0'],
  );
  const gnp = parsed.objects[0]!.object as unknown as { metadata: Record<string, unknown>; spec: { ingress: unknown[] } };
  assert.equal(gnp.metadata.namespace, 'ignored', 'kept as written, but not part of the key of a cluster-scoped kind');
  assert.deepEqual(gnp.spec.ingress, [
    { action: 'Allow', protocol: 'TCP', source: { nets: ['198.18.0.0/15', '2001:2::/48'] }, destination: { ports: [22, '8000:8100', 'ssh'] } },
    { action: 'Deny', protocol: 17 },
  ]);
  const hep = parsed.objects[1]!.object as unknown as { apiVersion: string; spec: unknown };
  assert.equal(hep.apiVersion, 'projectcalico.org/v3', 'a manifest without apiVersion gets the kind’s');
  assert.deepEqual(hep.spec, { node: 'node-a', interfaceName: 'eth0', expectedIPs: ['198.18.200.1'], ports: [{ name: 'ssh', protocol: 'TCP', port: 22 }] });
});

test('the structural check: names, shapes and sizes are refused with the field named; the rest of the file loads', () => {
  const manyRules = Array.from({ length: 1001 }, () => ({ action: 'Allow' }));
  const docs = [
    { kind: 'HostEndpoint', metadata: { name: 'no-node' }, spec: { interfaceName: 'eth0' } },
    { kind: 'HostEndpoint', metadata: { name: 'Bad_Name' }, spec: { node: 'node-a' } },
    {
      kind: 'HostEndpoint',
      metadata: { name: 'ports' },
      spec: { node: 'node-a', ports: [{ name: 'x', protocol: 'TCP', port: '22' }], expectedIPs: '198.18.0.1' },
    },
    { kind: 'GlobalNetworkPolicy', metadata: { name: 'many' }, spec: { ingress: manyRules } },
    { kind: 'GlobalNetworkPolicy', metadata: { name: 'long' }, spec: { selector: 'a'.repeat(5000) } },
    { kind: 'GlobalNetworkPolicy', metadata: { name: 'shapes' }, spec: { order: '1', egress: [{ protocol: 'TCP', destination: { ports: [{}] } }, 'Allow'] } },
    { kind: 'GlobalNetworkPolicy', metadata: { name: 'no-spec' } },
    { kind: 'GlobalNetworkPolicy', metadata: { name: 'fine' }, spec: {} },
  ];
  const parsed = parseManifest(JSON.stringify({ kind: 'List', items: docs }), true);
  assert.deepEqual(
    parsed.objects.map((o) => o.identity),
    ['GlobalNetworkPolicy/fine'],
  );
  assert.deepEqual(
    parsed.rejects.map((r) => [r.reason, r.detail.replace(/^items\[\d+\]: /, '')]),
    [
      ['invalid-object', 'HostEndpoint/no-node: spec.node: required'],
      ['invalid-object', `HostEndpoint/Bad_Name: metadata.name: "Bad_Name" is not a DNS-1123 subdomain (lower case alphanumerics, '-' and '.')`],
      ['invalid-object', 'HostEndpoint/ports: spec.expectedIPs: not a list; spec.ports[0].port: not a number'],
      ['invalid-object', 'GlobalNetworkPolicy/many: spec.ingress: 1001 items, more than 1000'],
      ['invalid-object', 'GlobalNetworkPolicy/long: spec.selector: 5000 characters, more than 4096'],
      [
        'invalid-object',
        'GlobalNetworkPolicy/shapes: spec.order: not a number; spec.egress[0].action: required; spec.egress[0].destination.ports[0]: not a string; spec.egress[1]: not an object',
      ],
      ['invalid-object', 'GlobalNetworkPolicy/no-spec: spec: required'],
    ],
  );
});

test('a manifests directory hands both kinds to the store, where the host policy model reads them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'weir-manifests-calico-'));
  try {
    await writeFile(join(dir, 'host.yaml'), `${POLICY}---\n${HEP}`);
    const store = new Store();
    const src = new ManifestsSource({ dir, log: memoryLogger(), debounceMs: 20, rescanIntervalMs: 0 });
    await src.start((e) => {
      if (e.type !== 'synced') store.apply(e as ObjectEvent);
    });
    await src.stop();
    assert.deepEqual([...store.globalNetworkPolicies.keys()], ['default.allow-ssh']);
    assert.deepEqual([...store.hostEndpoints.keys()], ['node-a-eth0']);
    assert.equal(store.hostEndpoints.get('node-a-eth0')!.spec.node, 'node-a');
    assert.deepEqual(store.globalNetworkPolicies.get('default.allow-ssh')!.spec.types, ['Ingress']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
