// deploy/weir.yaml: parses as Kubernetes objects, every field is one the API knows (a round
// trip through client-node's typed models loses nothing), the values validate against the
// Kubernetes JSON schemas (kubernetes-models, when installed), the RBAC rules grant exactly the
// list/watch on the resources src/sources/kube.ts watches, and the DaemonSet has what a
// dataplane agent needs (docs/deploy.md): Linux nodes only, capabilities instead of
// privileged, init containers that mount bpffs and cgroup2 on the node, the node's /proc at
// /nodeproc passed as --host-proc, probes and the scrape on 9745, the weir-config ConfigMap.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  loadAllYaml,
  type V1ClusterRole,
  type V1ClusterRoleBinding,
  type V1ConfigMap,
  type V1Container,
  type V1DaemonSet,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
// the YAML parser client-node's loadAllYaml uses, for the raw documents
import * as jsYaml from 'js-yaml';
import { WATCHED_RESOURCES } from '../../src/sources/kube.js';
import { API_ACCESS } from '../../src/sources/kube-resources.js';
import { Command } from 'commander';
import { registerDaemonCommand } from '../../src/cli/daemon.js';
import { parseConfigFile } from '../../src/daemon/config-file.js';
import { flagSpecs } from '../../src/daemon/config-sources.js';

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
  ConfigMap: 'V1ConfigMap',
  DaemonSet: 'V1DaemonSet',
};

test('deploy/weir.yaml holds the ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap and DaemonSet', () => {
  assert.deepEqual(
    raw.map((d) => `${d.apiVersion} ${d.kind} ${d.metadata.name}`),
    [
      'v1 ServiceAccount weir',
      'rbac.authorization.k8s.io/v1 ClusterRole weir',
      'rbac.authorization.k8s.io/v1 ClusterRoleBinding weir',
      'v1 ConfigMap weir-config',
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
    ConfigMap: 'kubernetes-models/v1/ConfigMap',
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

const daemonSet = () => byKind<V1DaemonSet>('DaemonSet');
const podSpec = () => daemonSet().spec!.template.spec!;
/** hostPath of each volume mounted by `c`, by mount path */
const hostPaths = (c: V1Container) => {
  const volumes = new Map((podSpec().volumes ?? []).map((v) => [v.name, v]));
  return new Map((c.volumeMounts ?? []).map((m) => [m.mountPath, { mount: m, hostPath: volumes.get(m.name)?.hostPath?.path, volume: volumes.get(m.name) }]));
};
const METRICS_PORT = 9745;

test('the DaemonSet: host network, Linux nodes, every node, no teardown hook', () => {
  const ds = daemonSet();
  const sa = byKind<V1ServiceAccount>('ServiceAccount');
  assert.equal(ds.metadata?.namespace, 'kube-system');
  assert.deepEqual(plain(ds.spec?.selector.matchLabels), plain(ds.spec?.template.metadata?.labels));
  const pod = podSpec();
  assert.equal(pod.serviceAccountName, sa.metadata?.name);
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.hostPID, undefined, "no host PID namespace: the node's /proc is mounted instead");
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.deepEqual(plain(pod.nodeSelector), { 'kubernetes.io/os': 'linux' });
  assert.deepEqual(plain(pod.tolerations), [{ operator: 'Exists' }]);
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0]!;
  assert.equal(c.lifecycle, undefined, 'SIGTERM leaves the dataplane pinned: no preStop teardown');
  assert.ok(c.args?.includes('--node-name=$(NODE_NAME)'));
  assert.equal(c.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
  // Calico's optional ConfigMap of the API server's address (KUBERNETES_SERVICE_HOST/PORT)
  assert.deepEqual(plain(c.envFrom), [{ configMapRef: { name: 'kubernetes-services-endpoint', optional: true } }]);
});

test('capabilities instead of privileged, in every container', () => {
  const pod = podSpec();
  const caps = (c: V1Container) => c.securityContext?.capabilities;
  for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
    assert.equal(c.securityContext?.privileged, undefined, `${c.name}: not privileged`);
    assert.deepEqual(caps(c)?.drop, ['ALL'], `${c.name}: drops every capability it does not add`);
    assert.equal(c.securityContext?.appArmorProfile?.type, 'Unconfined', `${c.name}: the container AppArmor profile denies mount and /sys/fs/bpf writes`);
  }
  const weir = pod.containers[0]!;
  assert.deepEqual([...(caps(weir)?.add ?? [])].sort(), ['BPF', 'NET_ADMIN', 'NET_RAW', 'PERFMON', 'SYS_ADMIN', 'SYS_PTRACE', 'SYS_RESOURCE']);
  for (const c of pod.initContainers ?? []) assert.deepEqual([...(caps(c)?.add ?? [])].sort(), ['SYS_ADMIN', 'SYS_CHROOT', 'SYS_PTRACE'], c.name);
});

test("init containers mount bpffs and cgroup2 in the node's mount namespace when it lacks them, where weir's mounts find them", () => {
  const pod = podSpec();
  const weir = pod.containers[0]!;
  const init = new Map((pod.initContainers ?? []).map((c) => [c.name, c]));
  assert.deepEqual([...init.keys()], ['mount-bpf-fs', 'mount-cgroup']);
  const script = (name: string) => init.get(name)!.command!.join(' ');
  // entered through the node's /proc (no hostPID), only when the node's mount table lacks it
  assert.match(script('mount-bpf-fs'), /\$5 == "\/sys\/fs\/bpf" && \/ - bpf \/' \/nodeproc\/1\/mountinfo/);
  assert.match(script('mount-bpf-fs'), /nsenter --mount=\/nodeproc\/1\/ns\/mnt -- mount -t bpf bpf \/sys\/fs\/bpf/);
  assert.match(script('mount-cgroup'), /\$5 == "\/run\/weir\/cgroupv2" && \/ - cgroup2 \/' \/nodeproc\/1\/mountinfo/);
  // the node's cgroup namespace too: a cgroup2 mounted from the container's would be rooted at its cgroup
  assert.match(
    script('mount-cgroup'),
    /nsenter --mount=\/nodeproc\/1\/ns\/mnt --cgroup=\/nodeproc\/1\/ns\/cgroup -- mount -t cgroup2 none \/run\/weir\/cgroupv2/,
  );
  for (const c of init.values()) assert.equal(hostPaths(c).get('/nodeproc')?.hostPath, '/proc', `${c.name} sees the node's /proc`);
  assert.equal(hostPaths(init.get('mount-cgroup')!).get('/run/weir/cgroupv2')?.volume?.hostPath?.type, 'DirectoryOrCreate', 'the mount point exists');
  // weir sees what the init containers mounted on the node (no Bidirectional: that needs privileged)
  const mounts = hostPaths(weir);
  assert.deepEqual(mounts.get('/sys/fs/bpf') && { h: mounts.get('/sys/fs/bpf')!.hostPath, p: mounts.get('/sys/fs/bpf')!.mount.mountPropagation }, {
    h: '/sys/fs/bpf',
    p: 'HostToContainer',
  });
  const cg = mounts.get('/run/weir/cgroupv2');
  assert.equal(cg?.hostPath, '/run/weir/cgroupv2');
  assert.equal(cg?.mount.mountPropagation, 'HostToContainer');
  assert.ok(weir.args?.includes(`--cgroup=${cg.mount.mountPath}`), 'and the connect-time LB attaches there');
  assert.equal(mounts.get('/lib/modules')?.mount.readOnly, true);
});

test("the node's /proc at /nodeproc is weir's --host-proc; its net sysctls writable under it", () => {
  const weir = podSpec().containers[0]!;
  const mounts = hostPaths(weir);
  const proc = mounts.get('/nodeproc');
  assert.equal(proc?.hostPath, '/proc');
  assert.equal(proc?.mount.readOnly, true);
  assert.ok(weir.args?.includes(`--host-proc=${proc.mount.mountPath}`), '--host-proc names the mount');
  const net = mounts.get(`${proc.mount.mountPath}/sys/net`);
  assert.equal(net?.hostPath, '/proc/sys/net');
  assert.notEqual(net?.mount.readOnly, true, 'weir writes accept_local through it');
});

test('probes and the Prometheus scrape on 9745, the metrics address of weir-config', () => {
  const ds = daemonSet();
  const weir = podSpec().containers[0]!;
  assert.deepEqual(plain(ds.spec?.template.metadata?.annotations), { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(METRICS_PORT) });
  assert.equal(weir.ports?.find((p) => p.name === 'metrics')?.containerPort, METRICS_PORT);
  assert.equal(weir.startupProbe?.httpGet?.path, '/healthz');
  assert.equal(weir.startupProbe?.httpGet?.port, METRICS_PORT);
  const startupSeconds = (weir.startupProbe?.periodSeconds ?? 10) * (weir.startupProbe?.failureThreshold ?? 3);
  assert.ok(startupSeconds >= 180, `a slow first start (programs verified, API server awaited) has ${startupSeconds} s`);
  assert.equal(weir.livenessProbe?.httpGet?.path, '/healthz');
  assert.equal(weir.livenessProbe?.httpGet?.port, METRICS_PORT);
  assert.equal(weir.livenessProbe?.initialDelaySeconds, undefined, 'the startup probe covers the start');
  assert.equal(weir.readinessProbe?.httpGet?.path, '/readyz');
  assert.equal(weir.readinessProbe?.httpGet?.port, METRICS_PORT);
  assert.ok(!weir.args?.some((a) => a.startsWith('--metrics-address')), 'the address comes from weir-config');
  assert.equal(configFile().metricsAddress, `:${METRICS_PORT}`);
});

/** weir-config's config.yaml, parsed. */
const configFile = () => jsYaml.load(byKind<V1ConfigMap>('ConfigMap').data!['config.yaml']!) as Record<string, unknown>;

test('weir-config: a WeirConfiguration mounted and passed with --config', () => {
  const cm = byKind<V1ConfigMap>('ConfigMap');
  assert.equal(cm.metadata?.namespace, 'kube-system');
  const file = configFile();
  assert.equal(file.apiVersion, 'weir.dev/v1alpha1');
  assert.equal(file.kind, 'WeirConfiguration');
  const weir = podSpec().containers[0]!;
  const mount = [...hostPaths(weir).values()].find((m) => m.volume?.configMap?.name === cm.metadata?.name);
  assert.ok(mount, 'weir-config is mounted');
  assert.equal(mount.mount.readOnly, true);
  assert.ok(weir.args?.includes(`--config=${mount.mount.mountPath}/config.yaml`));
  // keys are daemon flags in camelCase
  for (const k of Object.keys(file).filter((k) => k !== 'apiVersion' && k !== 'kind')) assert.match(k, /^[a-z][A-Za-z]+$/);
  // and weir's own reader takes the file as the manifest ships it (unknown keys and wrong types would throw)
  const program = new Command();
  registerDaemonCommand(program);
  const daemon = program.commands.find((c) => c.name() === 'daemon')!;
  const settings = parseConfigFile('weir-config/config.yaml', cm.data!['config.yaml']!, flagSpecs(daemon));
  assert.equal(settings.size, Object.keys(file).length - 2, `every key is a setting: ${[...settings.keys()].join(', ')}`);
});
