// deploy/weir.yaml: parses as Kubernetes objects, every field is one the API knows (a round
// trip through client-node's typed models loses nothing), the values validate against the
// Kubernetes JSON schemas (kubernetes-models, when installed), the RBAC rules grant exactly the
// list/watch on the resources src/sources/kube.ts watches, and the DaemonSet has what a
// dataplane agent needs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadAllYaml, type V1ClusterRole, type V1ClusterRoleBinding, type V1DaemonSet, type V1ServiceAccount } from '@kubernetes/client-node';
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
// the YAML parser client-node's loadAllYaml uses, for the raw documents
import * as jsYaml from 'js-yaml';
import { WATCHED_RESOURCES } from '../../src/sources/kube.js';
import { API_ACCESS } from '../../src/sources/kube-resources.js';

const FILE = new URL('../../../deploy/weir.yaml', import.meta.url).pathname;
const text = readFileSync(FILE, 'utf8');
const raw = jsYaml.loadAll(text) as { apiVersion: string; kind: string; metadata: { name: string } }[];
const typed = loadAllYaml(text) as { kind?: string }[];
const byKind = <T>(kind: string) => typed.find((o) => o.kind === kind) as T;
/** typed model instances → plain data, for deepEqual */
const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;

const TYPE: Record<string, string> = {
  ServiceAccount: 'V1ServiceAccount',
  ClusterRole: 'V1ClusterRole',
  ClusterRoleBinding: 'V1ClusterRoleBinding',
  DaemonSet: 'V1DaemonSet',
};

test('deploy/weir.yaml holds the ServiceAccount, ClusterRole, ClusterRoleBinding and DaemonSet', () => {
  assert.deepEqual(
    raw.map((d) => `${d.apiVersion} ${d.kind} ${d.metadata.name}`),
    [
      'v1 ServiceAccount weir',
      'rbac.authorization.k8s.io/v1 ClusterRole weir',
      'rbac.authorization.k8s.io/v1 ClusterRoleBinding weir',
      'apps/v1 DaemonSet weir',
    ],
  );
});

test('every field is known to the Kubernetes types (typed round trip loses nothing)', () => {
  for (const doc of raw) {
    const type = TYPE[doc.kind]!;
    const back = ObjectSerializer.serialize(ObjectSerializer.deserialize(doc, type), type);
    // a misspelled or misplaced field is dropped by the typed model: the round trip shows it
    assert.deepEqual(JSON.parse(JSON.stringify(back)), doc, `${doc.kind}: a field the ${type} model does not know`);
  }
});

test('validates against the Kubernetes JSON schemas (kubernetes-models)', async (t) => {
  const models: Record<string, string> = {
    ServiceAccount: 'kubernetes-models/v1/ServiceAccount',
    ClusterRole: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole',
    ClusterRoleBinding: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding',
    DaemonSet: 'kubernetes-models/apps/v1/DaemonSet',
  };
  let load: (kind: string) => Promise<new (o: unknown) => { validate(): void }>;
  try {
    const spec = models.DaemonSet!;
    await import(spec);
    load = async (kind) => (await import(models[kind]!))[kind];
  } catch (e) {
    // only a missing package may skip; a broken install or a module that fails to load fails
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'ERR_MODULE_NOT_FOUND' || !/Cannot find package 'kubernetes-models'/.test(err.message)) throw e;
    t.skip('kubernetes-models is not installed (devDependency kubernetes-models@4: the Kubernetes OpenAPI schemas, validated offline with ajv)');
    return;
  }
  for (const doc of raw) {
    const Model = await load(doc.kind);
    assert.doesNotThrow(() => new Model(doc).validate(), `${doc.kind} ${doc.metadata.name}`);
  }
  // and the validator does reject a wrong value
  const ds = JSON.parse(JSON.stringify(raw.find((d) => d.kind === 'DaemonSet'))) as { spec: { template: { spec: { hostNetwork: unknown } } } };
  ds.spec.template.spec.hostNetwork = 'yes';
  const Model = await load('DaemonSet');
  assert.throws(() => new Model(ds).validate(), /hostNetwork must be boolean/);
});

test('RBAC grants exactly list and watch on what KubeSource watches, get on the kube-proxy DaemonSet, nothing else', () => {
  const role = byKind<V1ClusterRole>('ClusterRole');
  const granted = new Set<string>();
  for (const r of role.rules ?? []) {
    assert.equal(r.nonResourceURLs, undefined);
    const names = r.resourceNames ? `[${[...r.resourceNames].sort().join(',')}]` : '';
    for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) granted.add(`${g}/${res}${names}:${v}`);
  }
  const used = new Set([
    ...WATCHED_RESOURCES.flatMap((w) => w.verbs.map((v) => `${w.group}/${w.resource}:${v}`)),
    ...API_ACCESS.flatMap((a) => a.verbs.map((v) => `${a.group}/${a.resource}[${[...a.resourceNames].sort().join(',')}]:${v}`)),
  ]);
  assert.deepEqual([...granted].sort(), [...used].sort());
  assert.ok(![...granted].some((g) => g.includes('*')), 'no wildcards');

  const binding = byKind<V1ClusterRoleBinding>('ClusterRoleBinding');
  const sa = byKind<V1ServiceAccount>('ServiceAccount');
  assert.deepEqual(plain(binding.roleRef), { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata?.name });
  assert.deepEqual(plain(binding.subjects), [{ kind: 'ServiceAccount', name: sa.metadata?.name, namespace: sa.metadata?.namespace }]);
});

test('the DaemonSet: host network, privileged, bpffs/cgroup2/modules mounts, runs on every node, no teardown hook', () => {
  const ds = byKind<V1DaemonSet>('DaemonSet');
  const sa = byKind<V1ServiceAccount>('ServiceAccount');
  assert.equal(ds.metadata?.namespace, 'kube-system');
  assert.deepEqual(plain(ds.spec?.selector.matchLabels), plain(ds.spec?.template.metadata?.labels));
  const pod = ds.spec!.template.spec!;
  assert.equal(pod.serviceAccountName, sa.metadata?.name);
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.deepEqual(plain(pod.tolerations), [{ operator: 'Exists' }]);
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0]!;
  assert.equal(c.securityContext?.privileged, true);
  assert.equal(c.lifecycle, undefined, 'SIGTERM leaves the dataplane pinned: no preStop teardown');
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v.hostPath?.path]));
  const mounts = new Map((c.volumeMounts ?? []).map((m) => [volumes.get(m.name), m]));
  assert.equal(mounts.get('/sys/fs/bpf')?.mountPropagation, 'Bidirectional');
  assert.equal(mounts.get('/lib/modules')?.readOnly, true);
  const cg = mounts.get('/sys/fs/cgroup');
  assert.ok(cg, 'the cgroup2 root is mounted');
  assert.ok(c.args?.includes(`--cgroup=${cg.mountPath}`), 'and the connect-time LB attaches there');
  assert.ok(c.args?.includes('--node-name=$(NODE_NAME)'));
  assert.equal(c.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
  const port = c.ports?.find((p) => p.name === 'metrics')?.containerPort;
  assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
  assert.equal(c.readinessProbe?.httpGet?.port, port);
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
  assert.ok(c.args?.includes(`--metrics-address=:${port}`));
});
