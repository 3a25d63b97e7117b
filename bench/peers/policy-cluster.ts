// bench/peers: the generated cluster of the policy bench (bench/policy.ts): 1,000 NetworkPolicies
// over 5,000 pods in 50 namespaces on 46 nodes (~110 pods each), 600 pod identities, ~500 ipBlock
// prefixes, named ports that differ per pod, port ranges, both directions. Deterministic (no
// randomness): every contestant and every run sees the same objects. Addresses from 198.18.0.0/15.

import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';

export const POLICY_CLUSTER = {
  namespaces: 50,
  podsPerNamespace: 100,
  policiesPerNamespace: 20,
  nodes: 46,
  apps: 12,
  /** the node the bench programs: node-00, pods in 198.18.64.0/24 */
  localNode: 'node-00',
  localNodeAddress: '198.18.0.10',
  localPodSubnet: '198.18.64.0/24',
} as const;

const TEAMS = ['red', 'blue', 'green', 'gold', 'gray'];
export const nsName = (i: number) => `ns-${String(i).padStart(2, '0')}`;
export const appOf = (k: number) => `app-${k % POLICY_CLUSTER.apps}`;
/** even apps serve `http` on 8080, odd ones on 8081: one named-port rule, two numbers */
export const httpPortOf = (app: number) => (app % 2 === 0 ? 8080 : 8081);

export interface GeneratedPod {
  /** 'ns/name' */
  key: string;
  namespace: string;
  name: string;
  app: number;
  ip: string;
  node: string;
}

export interface PolicyCluster {
  namespaces: V1Namespace[];
  nodes: V1Node[];
  pods: V1Pod[];
  policies: V1NetworkPolicy[];
  /** the pods as generated, in order (pods[i] belongs to podInfo[i]) */
  podInfo: GeneratedPod[];
}

export function podLabels(app: number): Record<string, string> {
  return { app: appOf(app), role: app < POLICY_CLUSTER.apps / 2 ? 'frontend' : 'backend', version: 'v1' };
}

export function podObject(p: GeneratedPod, labels: Record<string, string> = podLabels(p.app)): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: p.namespace, name: p.name, labels },
    spec: {
      nodeName: p.node,
      containers: [
        {
          name: 'c',
          ports: [
            { name: 'http', containerPort: httpPortOf(p.app), protocol: 'TCP' },
            { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
          ],
        },
      ],
    },
    status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
  };
}

/** The ipBlock of egress policy `x` (0..249): a /24 of 198.19.0.0/16 less its first /28. */
export const egressBlock = (x: number) => ({ cidr: `198.19.${x}.0/24`, except: [`198.19.${x}.0/28`] });

function policiesOf(i: number): V1NetworkPolicy[] {
  const ns = nsName(i);
  const out: V1NetworkPolicy[] = [];
  const pol = (name: string, spec: object) => out.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec });
  pol('default-deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });
  // one per app: its own clients in the namespace, and frontends of one team's namespaces
  for (let k = 0; k < POLICY_CLUSTER.apps; k++)
    pol(`allow-${appOf(k)}`, {
      podSelector: { matchLabels: { app: appOf(k) } },
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { app: appOf(k + 1) } } },
            {
              namespaceSelector: { matchLabels: { team: TEAMS[(i + k) % TEAMS.length] } },
              podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['frontend'] }] },
            },
          ],
          ports: [{ port: 'http' }, { protocol: 'TCP', port: 9090 }],
        },
      ],
    });
  // egress: to the outside through an ipBlock with except, and to the prod databases (a port range)
  for (let e = 0; e < 5; e++)
    pol(`egress-${e}`, {
      podSelector: { matchLabels: { role: e % 2 === 0 ? 'frontend' : 'backend' }, matchExpressions: [{ key: 'app', operator: 'NotIn', values: [appOf(e)] }] },
      policyTypes: ['Egress'],
      egress: [
        { to: [{ ipBlock: egressBlock((i * 5 + e) % 250) }], ports: [{ protocol: 'TCP', port: 443 }] },
        {
          to: [{ namespaceSelector: { matchLabels: { env: 'prod' } }, podSelector: { matchLabels: { role: 'backend', app: appOf(6 + e) } } }],
          ports: [{ protocol: 'TCP', port: 5432, endPort: 5440 }],
        },
        // within the namespace, and DNS on the first namespace's app-0
        { to: [{ podSelector: {} }] },
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': nsName(0) } }, podSelector: { matchLabels: { app: appOf(0) } } }],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
      ],
    });
  pol('allow-monitoring', {
    podSelector: {},
    policyTypes: ['Ingress'],
    ingress: [
      { from: [{ namespaceSelector: { matchLabels: { team: 'gold' } }, podSelector: { matchLabels: { app: appOf(11) } } }], ports: [{ port: 'metrics' }] },
    ],
  });
  pol('allow-same-namespace', { podSelector: { matchLabels: { role: 'backend' } }, ingress: [{ from: [{ podSelector: {} }] }] });
  return out;
}

/**
 * The cluster. `allLocal`: every pod on the local node (the worst case for one node's maps).
 * Pod p sits on node p % 46 at 198.18.(64 + p % 46).(2 + p / 46): inside its node's podCIDR.
 */
export function policyCluster(o: { allLocal?: boolean } = {}): PolicyCluster {
  const C = POLICY_CLUSTER;
  const namespaces: V1Namespace[] = [];
  const pods: V1Pod[] = [];
  const podInfo: GeneratedPod[] = [];
  const policies: V1NetworkPolicy[] = [];
  const nodes: V1Node[] = [];
  for (let k = 0; k < C.nodes; k++) {
    const name = `node-${String(k).padStart(2, '0')}`;
    nodes.push({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name },
      spec: { podCIDR: `198.18.${64 + k}.0/24`, podCIDRs: [`198.18.${64 + k}.0/24`] },
      status: { addresses: [{ type: 'InternalIP', address: `198.18.0.${10 + k}` }] },
    });
  }
  for (let i = 0; i < C.namespaces; i++) {
    const ns = nsName(i);
    namespaces.push({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns, team: TEAMS[i % TEAMS.length]!, env: i % 2 === 0 ? 'prod' : 'dev' } },
    });
    for (let j = 0; j < C.podsPerNamespace; j++) {
      const p = i * C.podsPerNamespace + j;
      const app = j % C.apps;
      const k = p % C.nodes;
      const info: GeneratedPod = {
        key: `${ns}/${appOf(app)}-${j}`,
        namespace: ns,
        name: `${appOf(app)}-${j}`,
        app,
        ip: `198.18.${64 + k}.${2 + Math.floor(p / C.nodes)}`,
        node: o.allLocal ? C.localNode : `node-${String(k).padStart(2, '0')}`,
      };
      podInfo.push(info);
      pods.push(podObject(info));
    }
    policies.push(...policiesOf(i));
  }
  return { namespaces, nodes, pods, policies, podInfo };
}
