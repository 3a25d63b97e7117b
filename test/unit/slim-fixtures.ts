// test/unit/slim-fixtures: Kubernetes objects as a real API server returns them (managedFields,
// kubectl's last-applied-configuration, owner references, container specs with probes, env and
// mounts, status conditions and container statuses), made from a few parameters. slim.test.ts
// feeds them whole and slim to the model; bench/memory.ts fills the fake API server with them.
// Addresses are the caller's (198.18.0.0/15 only).

import type { KubeObject } from '../k8s/fake-apiserver.js';

const T0 = '2026-11-02T09:14:07Z';
const T1 = '2026-11-02T09:14:31Z';

/** A deterministic uid-shaped string (the fixtures are reproducible). */
export function uid(seed: string): string {
  let h = 2166136261;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619) >>> 0;
  const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
  const a = hex(h);
  const b = hex(Math.imul(h, 2654435761));
  const c = hex(Math.imul(h ^ 0x5bd1e995, 40503));
  return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-a${c.slice(1, 4)}-${c.slice(4)}${a.slice(0, 4)}`;
}

function managedFields(manager: string, operation: string, fields: Record<string, unknown>, subresource?: string): Record<string, unknown> {
  return { apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: fields, manager, operation, time: T1, ...(subresource ? { subresource } : {}) };
}

/** `f:` keys for every field of a plain object, as the server writes managedFields. */
function fieldsOf(o: unknown): Record<string, unknown> {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return {};
  const out: Record<string, unknown> = { '.': {} };
  for (const [k, v] of Object.entries(o)) out[`f:${k}`] = fieldsOf(v);
  return out;
}

export interface PodFixture {
  namespace: string;
  name: string;
  /** the app label (and Deployment / ReplicaSet name) */
  app: string;
  node: string;
  ip: string;
  /** a second address (dual stack: status.podIPs holds both, status.podIP the first) */
  ip6?: string;
  phase?: string;
  hostNetwork?: boolean;
}

/** A Deployment's pod: an app container with a named port, probes, env and mounts, an Envoy-like sidecar, an init container. */
export function fatPod(p: PodFixture): KubeObject {
  const hash = uid(p.app).slice(0, 10).replace(/-/g, '');
  const labels = { app: p.app, 'app.kubernetes.io/name': p.app, 'app.kubernetes.io/part-of': p.namespace, 'pod-template-hash': hash, tier: 'backend' };
  const annotations = {
    'kubectl.kubernetes.io/restartedAt': T0,
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': '9090',
    'checksum/config': 'a3f1c2d4e5b6a7980f1e2d3c4b5a69788f7e6d5c4b3a29180f1e2d3c4b5a6978',
    'cluster-autoscaler.kubernetes.io/safe-to-evict': 'true',
  };
  const app = {
    name: 'app',
    image: `registry.example.invalid/${p.namespace}/${p.app}:v1.24.3`,
    imagePullPolicy: 'IfNotPresent',
    args: ['--listen=:8080', '--metrics=:9090', '--log-format=json', `--service-name=${p.app}`],
    ports: [
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
      { name: 'GOMAXPROCS', valueFrom: { resourceFieldRef: { containerName: 'app', divisor: '0', resource: 'limits.cpu' } } },
      { name: 'UPSTREAM', value: `http://${p.app}-upstream.${p.namespace}.svc.cluster.local:8080` },
    ],
    resources: { limits: { cpu: '1', memory: '512Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
    livenessProbe: {
      httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP' },
      initialDelaySeconds: 10,
      periodSeconds: 10,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    },
    readinessProbe: {
      httpGet: { path: '/readyz', port: 'http', scheme: 'HTTP' },
      periodSeconds: 5,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    },
    volumeMounts: [
      { name: 'config', mountPath: '/etc/app', readOnly: true },
      { name: 'kube-api-access-x7k2p', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true },
    ],
    securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 65532 },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
  };
  const sidecar = {
    name: 'proxy',
    image: 'registry.example.invalid/mesh/proxyv2:1.22.1',
    args: ['proxy', 'sidecar', '--domain', `${p.namespace}.svc.cluster.local`, '--proxyLogLevel=warning', '--log_output_level=default:info'],
    ports: [{ name: 'http-envoy-prom', containerPort: 15090, protocol: 'TCP' }],
    env: [
      { name: 'PILOT_CERT_PROVIDER', value: 'istiod' },
      { name: 'CA_ADDR', value: 'istiod.istio-system.svc:15012' },
      { name: 'ISTIO_META_WORKLOAD_NAME', value: p.app },
      { name: 'ISTIO_META_OWNER', value: `kubernetes://apis/apps/v1/namespaces/${p.namespace}/deployments/${p.app}` },
    ],
    resources: { limits: { cpu: '2', memory: '1Gi' }, requests: { cpu: '10m', memory: '40Mi' } },
    readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021, scheme: 'HTTP' }, periodSeconds: 15, timeoutSeconds: 3, failureThreshold: 4 },
    volumeMounts: [
      { name: 'istio-envoy', mountPath: '/etc/istio/proxy' },
      { name: 'istio-data', mountPath: '/var/lib/istio/data' },
      { name: 'kube-api-access-x7k2p', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true },
    ],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
  };
  const init = { name: 'init-config', image: 'registry.example.invalid/tools/busybox:1.36', command: ['sh', '-c', 'cp /defaults/* /etc/app/'], resources: {} };
  const spec = {
    nodeName: p.node,
    ...(p.hostNetwork ? { hostNetwork: true } : {}),
    containers: [app, sidecar],
    initContainers: [init],
    volumes: [
      { name: 'config', configMap: { name: `${p.app}-config`, defaultMode: 420 } },
      { name: 'istio-envoy', emptyDir: { medium: 'Memory' } },
      { name: 'istio-data', emptyDir: {} },
      {
        name: 'kube-api-access-x7k2p',
        projected: {
          defaultMode: 420,
          sources: [
            { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
            { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
          ],
        },
      },
    ],
    dnsPolicy: 'ClusterFirst',
    enableServiceLinks: true,
    preemptionPolicy: 'PreemptLowerPriority',
    priority: 0,
    restartPolicy: 'Always',
    schedulerName: 'default-scheduler',
    securityContext: { fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
    serviceAccount: p.app,
    serviceAccountName: p.app,
    terminationGracePeriodSeconds: 30,
    tolerations: [
      { effect: 'NoExecute', key: 'node.kubernetes.io/not-ready', operator: 'Exists', tolerationSeconds: 300 },
      { effect: 'NoExecute', key: 'node.kubernetes.io/unreachable', operator: 'Exists', tolerationSeconds: 300 },
    ],
    topologySpreadConstraints: [
      { labelSelector: { matchLabels: { app: p.app } }, maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' },
    ],
  };
  const containerStatus = (name: string, image: string) => ({
    containerID: `containerd://${uid(`${p.name}/${name}`).replace(/-/g, '')}${uid(name).replace(/-/g, '')}`,
    image,
    imageID: `${image.split(':')[0]}@sha256:${uid(image).replace(/-/g, '')}${uid(`${image}2`).replace(/-/g, '')}`,
    lastState: {},
    name,
    ready: true,
    restartCount: 0,
    started: true,
    state: { running: { startedAt: T1 } },
  });
  const status = {
    phase: p.phase ?? 'Running',
    conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({
      type,
      status: 'True',
      lastProbeTime: null,
      lastTransitionTime: T1,
    })),
    hostIP: '198.18.0.1',
    hostIPs: [{ ip: '198.18.0.1' }],
    podIP: p.ip,
    podIPs: [{ ip: p.ip }, ...(p.ip6 ? [{ ip: p.ip6 }] : [])],
    qosClass: 'Burstable',
    startTime: T0,
    containerStatuses: [containerStatus('app', app.image), containerStatus('proxy', sidecar.image)],
    initContainerStatuses: [
      {
        ...containerStatus('init-config', init.image),
        ready: true,
        started: false,
        state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: T0, finishedAt: T0 } },
      },
    ],
  };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      namespace: p.namespace,
      generateName: `${p.app}-${hash}-`,
      uid: uid(`${p.namespace}/${p.name}`),
      creationTimestamp: T0,
      labels,
      annotations,
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${p.app}-${hash}`, uid: uid(`rs/${p.app}`), controller: true, blockOwnerDeletion: true },
      ],
      managedFields: [
        managedFields('kube-controller-manager', 'Update', {
          'f:metadata': { 'f:labels': fieldsOf(labels), 'f:annotations': fieldsOf(annotations) },
          'f:spec': fieldsOf(spec),
        }),
        managedFields('kubelet', 'Update', { 'f:status': fieldsOf(status) }, 'status'),
      ],
    },
    spec,
    status,
  };
}

export function fatNamespace(name: string, labels: Record<string, string> = {}): KubeObject {
  const all = { 'kubernetes.io/metadata.name': name, 'istio-injection': 'enabled', team: name.split('-')[0] ?? name, ...labels };
  const lastApplied = JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { annotations: {}, labels: all, name } });
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      uid: uid(`ns/${name}`),
      creationTimestamp: T0,
      labels: all,
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `${lastApplied}\n` },
      managedFields: [managedFields('kubectl-client-side-apply', 'Update', { 'f:metadata': { 'f:labels': fieldsOf(all) } })],
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

export interface NodeFixture {
  name: string;
  ip: string;
  podCIDR: string;
  zone: string;
  /** the cluster autoscaler's ToBeDeletedByClusterAutoscaler taint */
  toBeDeleted?: boolean;
  /** metadata.deletionTimestamp set (being deleted) */
  deleting?: boolean;
}

export function fatNode(n: NodeFixture): KubeObject {
  const labels = {
    'beta.kubernetes.io/arch': 'amd64',
    'beta.kubernetes.io/instance-type': 'm6i.2xlarge',
    'beta.kubernetes.io/os': 'linux',
    'failure-domain.beta.kubernetes.io/region': 'eu-west-1',
    'failure-domain.beta.kubernetes.io/zone': n.zone,
    'kubernetes.io/arch': 'amd64',
    'kubernetes.io/hostname': n.name,
    'kubernetes.io/os': 'linux',
    'node.kubernetes.io/instance-type': 'm6i.2xlarge',
    'topology.kubernetes.io/region': 'eu-west-1',
    'topology.kubernetes.io/zone': n.zone,
    'node-pool': 'general',
  };
  const images = Array.from({ length: 24 }, (_, i) => ({
    names: [
      `registry.example.invalid/img-${i}@sha256:${uid(`img${i}`).replace(/-/g, '')}${uid(`img${i}b`).replace(/-/g, '')}`,
      `registry.example.invalid/img-${i}:v${i}`,
    ],
    sizeBytes: 10_000_000 + i * 1_234_567,
  }));
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      uid: uid(`node/${n.name}`),
      creationTimestamp: T0,
      ...(n.deleting ? { deletionTimestamp: T1 } : {}),
      labels,
      annotations: {
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
        'csi.volume.kubernetes.io/nodeid': JSON.stringify({ 'ebs.csi.aws.com': `i-${uid(n.name).slice(0, 17).replace(/-/g, '')}` }),
      },
      managedFields: [
        managedFields('kubelet', 'Update', { 'f:metadata': { 'f:labels': fieldsOf(labels) } }),
        managedFields('kubelet', 'Update', { 'f:status': { '.': {} } }, 'status'),
      ],
    },
    spec: {
      podCIDR: n.podCIDR,
      podCIDRs: [n.podCIDR],
      providerID: `aws:///eu-west-1a/i-${uid(n.name).slice(0, 17).replace(/-/g, '')}`,
      ...(n.toBeDeleted ? { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1764000000', effect: 'NoSchedule' }] } : {}),
    },
    status: {
      addresses: [
        { type: 'InternalIP', address: n.ip },
        { type: 'Hostname', address: n.name },
        { type: 'InternalDNS', address: `${n.name}.eu-west-1.compute.internal` },
      ],
      allocatable: { cpu: '7910m', 'ephemeral-storage': '95491281146', memory: '31482428Ki', pods: '110' },
      capacity: { cpu: '8', 'ephemeral-storage': '104845292Ki', memory: '32044604Ki', pods: '110' },
      conditions: ['MemoryPressure', 'DiskPressure', 'PIDPressure', 'Ready'].map((type) => ({
        type,
        status: type === 'Ready' ? 'True' : 'False',
        lastHeartbeatTime: T1,
        lastTransitionTime: T0,
        reason: type === 'Ready' ? 'KubeletReady' : `KubeletHasNo${type}`,
        message: type === 'Ready' ? 'kubelet is posting ready status' : `kubelet has no ${type}`,
      })),
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      images,
      nodeInfo: {
        architecture: 'amd64',
        bootID: uid(`boot/${n.name}`),
        containerRuntimeVersion: 'containerd://1.7.22',
        kernelVersion: '6.18.0',
        kubeProxyVersion: '',
        kubeletVersion: 'v1.34.1',
        machineID: uid(`machine/${n.name}`).replace(/-/g, ''),
        operatingSystem: 'linux',
        osImage: 'Ubuntu 24.04.3 LTS',
        systemUUID: uid(`sys/${n.name}`),
      },
    },
  };
}

export interface ServiceFixture {
  namespace: string;
  name: string;
  clusterIP: string;
  /** weir's lb-algorithm annotation */
  lbAlgorithm?: string;
}

export function fatService(s: ServiceFixture): KubeObject {
  const spec = {
    clusterIP: s.clusterIP,
    clusterIPs: [s.clusterIP],
    internalTrafficPolicy: 'Cluster',
    ipFamilies: ['IPv4'],
    ipFamilyPolicy: 'SingleStack',
    ports: [
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 'http' },
      { name: 'metrics', port: 9090, protocol: 'TCP', targetPort: 9090 },
    ],
    selector: { app: s.name },
    sessionAffinity: 'None',
    type: 'ClusterIP',
  };
  const labels = { app: s.name, 'app.kubernetes.io/name': s.name, 'app.kubernetes.io/managed-by': 'Helm', 'helm.sh/chart': `${s.name}-1.4.2` };
  const lastApplied = JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { labels, name: s.name, namespace: s.namespace }, spec });
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: s.name,
      namespace: s.namespace,
      uid: uid(`svc/${s.namespace}/${s.name}`),
      creationTimestamp: T0,
      labels,
      annotations: {
        'kubectl.kubernetes.io/last-applied-configuration': `${lastApplied}\n`,
        'meta.helm.sh/release-name': s.name,
        'meta.helm.sh/release-namespace': s.namespace,
        ...(s.lbAlgorithm ? { 'service.weir.dev/lb-algorithm': s.lbAlgorithm } : {}),
      },
      managedFields: [managedFields('helm', 'Update', { 'f:metadata': { 'f:labels': fieldsOf(labels) }, 'f:spec': fieldsOf(spec) })],
    },
    spec,
    status: { loadBalancer: {} },
  };
}

export interface SliceEndpoint {
  ip: string;
  pod: string;
  node: string;
  zone: string;
  ready?: boolean;
}

export function fatEndpointSlice(namespace: string, service: string, name: string, endpoints: SliceEndpoint[]): KubeObject {
  const labels = { 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io', 'kubernetes.io/service-name': service, app: service };
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace,
      generateName: `${service}-`,
      uid: uid(`eps/${namespace}/${name}`),
      creationTimestamp: T0,
      generation: 3,
      labels,
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': T1 },
      ownerReferences: [
        { apiVersion: 'v1', kind: 'Service', name: service, uid: uid(`svc/${namespace}/${service}`), controller: true, blockOwnerDeletion: true },
      ],
      managedFields: [
        {
          apiVersion: 'discovery.k8s.io/v1',
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:addressType': {}, 'f:endpoints': {}, 'f:metadata': { 'f:labels': fieldsOf(labels) }, 'f:ports': {} },
          manager: 'kube-controller-manager',
          operation: 'Update',
          time: T1,
        },
      ],
    },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.ready ?? true, terminating: false },
      nodeName: e.node,
      targetRef: { kind: 'Pod', name: e.pod, namespace, uid: uid(`${namespace}/${e.pod}`) },
      zone: e.zone,
    })),
    ports: [
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'metrics', port: 9090, protocol: 'TCP' },
    ],
  };
}

/** Ingress to `app` from pods of the same part-of namespace label, on the named port; egress to DNS. */
export function fatNetworkPolicy(namespace: string, name: string, app: string): KubeObject {
  const spec = {
    podSelector: { matchLabels: { app } },
    policyTypes: ['Ingress', 'Egress'],
    ingress: [
      {
        from: [{ namespaceSelector: { matchLabels: { team: namespace.split('-')[0] ?? namespace } }, podSelector: { matchLabels: { tier: 'backend' } } }],
        ports: [{ port: 'http', protocol: 'TCP' }],
      },
    ],
    egress: [{ to: [{ podSelector: { matchLabels: { app } } }], ports: [{ port: 'http', protocol: 'TCP' }] }, { ports: [{ port: 53, protocol: 'UDP' }] }],
  };
  const lastApplied = JSON.stringify({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec });
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name,
      namespace,
      uid: uid(`np/${namespace}/${name}`),
      creationTimestamp: T0,
      generation: 1,
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `${lastApplied}\n` },
      managedFields: [managedFields('kubectl-client-side-apply', 'Update', { 'f:spec': fieldsOf(spec) })],
    },
    spec,
  };
}
