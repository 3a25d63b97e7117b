// test/lib/chaos-lab: the cluster the chaos campaign runs in (bench/chaos.ts, `make chaos`, and
// its short variant test/lab/chaos.test.ts). Two lab nodes with CNI ptp pods and routed pod
// subnets, `weir daemon --kubeconfig` on each against the fake API server (its own process in
// an `api` namespace on the underlay), each daemon's socket LB attached to its node's own
// cgroup, where that node's client pods run; the external clients have cgroups of their own.
// node1 forwards NodePort flows to node2 in tunnel mode, node2 to node1 in DSR: one lab covers
// both forwarding modes. Each NodePort frontend has an external client (an address) of its own:
// weir keeps the client's address on forwarded NodePort flows, so one client reusing a source
// port towards two frontends that pick the same backend gives that backend two connections with
// one 4-tuple, and the older one dies (`sharedClient` builds that case: see docs/operations.md,
// Chaos). The cluster's objects are built here; chaos-campaign.ts changes them.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FakeKind, KubeObject } from '../k8s/fake-apiserver.js';
import { RemoteApiServer } from '../k8s/remote-apiserver.js';
import { Lab, type External, type LabNode, type Pod } from './lab.js';
import { endpointSlice, k8sNamespace, k8sPod, networkPolicy, node, service, WeirNode, type PortSpec } from './weir-node.js';

const TOKEN = 'weir-chaos-token';
const API_ADDRESS = '198.18.0.100';
export const WEB_IP = '198.19.0.10';
/** NodePort A: backend be1 on node1; NodePort B: backend be2 on node2 */
export const NODEPORT_A = 30101;
export const NODEPORT_B = 30102;
/** a Service with no real backend whose endpoint the API phase rewrites (map convergence only) */
export const CANARY_IP = '198.19.0.20';
export const BACKEND_PORT = 8080;

const WEB_PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: BACKEND_PORT, protocol: 'TCP' }];
const portsA: PortSpec[] = [{ name: 'http', port: 80, targetPort: BACKEND_PORT, protocol: 'TCP', nodePort: NODEPORT_A }];
const portsB: PortSpec[] = [{ name: 'http', port: 80, targetPort: BACKEND_PORT, protocol: 'TCP', nodePort: NODEPORT_B }];

/** The NodePort frontends the external clients dial: node1's and node2's NodePort A and B. */
export type ExternalPath = 'node1-local' | 'node2-local' | 'node1-tunnel' | 'node2-dsr';
const EXTERNAL_PATHS: ExternalPath[] = ['node1-local', 'node2-local', 'node1-tunnel', 'node2-dsr'];

/** What the faults may change in the cluster; everything else stays as built. */
export interface ChaosState {
  /** be3 (node2) is an endpoint of `web` as well */
  be3InWeb: boolean;
  /** the name of the (always equivalent) policy that admits the clients to app=web */
  policyName: string;
  /** the canary Service's one endpoint (not a real pod: only the maps are compared) */
  canaryBackend: string;
}

export interface ChaosLab {
  lab: Lab;
  nodes: [LabNode, LabNode];
  weirs: [WeirNode, WeirNode];
  server: RemoteApiServer;
  /** the external client of each NodePort frontend (one shared client with `sharedClient`) */
  clients: Record<ExternalPath, External>;
  pods: Record<'be1' | 'be2' | 'be3' | 'cl1' | 'cl2' | 'intruder', Pod>;
  state: ChaosState;
  /** the cluster's objects for `state` */
  objects(state: ChaosState): KubeObject[];
  /** writes `next` into the API server (changed objects, the old policy deleted when renamed) */
  change(next: ChaosState): Promise<void>;
}

const asKube = (o: object) => o as KubeObject;

/** Builds the lab, starts the API server and both daemons (ready), and the backends. */
export async function chaosLab(name: string, opts: { logLevel?: 'debug' | 'info'; sharedClient?: boolean } = {}): Promise<ChaosLab> {
  const lab = await Lab.create({ name });
  const n1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
  const n2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
  await lab.routePodSubnets();
  const api = await lab.external('api', { address: `${API_ADDRESS}/24` });
  const clients = {} as Record<ExternalPath, External>;
  for (const [i, path] of EXTERNAL_PATHS.entries())
    clients[path] = opts.sharedClient && i > 0 ? clients['node1-local'] : await lab.external(`c-${path}`, { address: `198.18.0.${101 + i}/24`, cgroup: true });
  const server = await RemoteApiServer.start(api.ns, lab.dir, { tls: true, token: TOKEN, host: API_ADDRESS, port: 6443 });
  const kubeconfig = join(lab.dir, 'kubeconfig');
  writeFileSync(kubeconfig, server.kubeconfigYaml(TOKEN));

  const pods = {
    be1: await lab.pod(n1, 'be1'),
    be2: await lab.pod(n2, 'be2'),
    be3: await lab.pod(n2, 'be3'),
    cl1: await lab.pod(n1, 'cl1'),
    cl2: await lab.pod(n2, 'cl2'),
    intruder: await lab.pod(n1, 'intruder'),
  };
  for (const be of [pods.be1, pods.be2, pods.be3]) await be.ns.echoServer({ name: be.name, port: BACKEND_PORT, tcp: true });
  const labels: Record<keyof typeof pods, Record<string, string>> = {
    be1: { app: 'web' },
    be2: { app: 'web' },
    be3: { app: 'web' },
    cl1: { role: 'client' },
    cl2: { role: 'client' },
    intruder: { role: 'intruder' },
  };

  const ep = (p: Pod) => ({ ip: p.ip, node: p.node.name });
  const objects = (s: ChaosState): KubeObject[] =>
    [
      node({ name: 'node1', internalIP: n1.address, podCIDRs: [n1.podSubnet!] }),
      node({ name: 'node2', internalIP: n2.address, podCIDRs: [n2.podSubnet!] }),
      k8sNamespace({ name: 'default' }),
      ...Object.entries(pods).map(([name, p]) => k8sPod({ name, ip: p.ip, node: p.node.name, labels: labels[name as keyof typeof pods] })),
      service({ name: 'web', clusterIP: WEB_IP, ports: WEB_PORTS }),
      endpointSlice({ name: 'web-1', service: 'web', ports: WEB_PORTS, endpoints: [pods.be1, pods.be2, ...(s.be3InWeb ? [pods.be3] : [])].map(ep) }),
      service({ name: 'np-a', type: 'NodePort', clusterIP: '198.19.0.11', ports: portsA }),
      endpointSlice({ name: 'np-a-1', service: 'np-a', ports: portsA, endpoints: [ep(pods.be1)] }),
      service({ name: 'np-b', type: 'NodePort', clusterIP: '198.19.0.12', ports: portsB }),
      endpointSlice({ name: 'np-b-1', service: 'np-b', ports: portsB, endpoints: [ep(pods.be2)] }),
      service({ name: 'canary', clusterIP: CANARY_IP, ports: WEB_PORTS }),
      endpointSlice({ name: 'canary-1', service: 'canary', ports: WEB_PORTS, endpoints: [{ ip: s.canaryBackend, node: 'node2' }] }),
      // app=web admits the client pods and the underlay (the external client; the nodes are
      // always admitted): the intruder pod is denied, on its own node and across
      networkPolicy({
        name: s.policyName,
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          policyTypes: ['Ingress'],
          ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }, { ipBlock: { cidr: '198.18.0.0/24' } }] }],
        },
      }),
    ].map(asKube);

  const state: ChaosState = { be3InWeb: false, policyName: 'web-ingress', canaryBackend: '198.19.128.1' };
  await server.apply(objects(state));
  const kubeOpts = { kubeconfig, metricsAddress: '127.0.0.1:9745', logLevel: opts.logLevel ?? 'info' } as const;
  const w1 = await WeirNode.create(lab, n1, { ...kubeOpts, extraArgs: ['--external-service-mode', 'tunnel'] });
  const w2 = await WeirNode.create(lab, n2, { ...kubeOpts, extraArgs: ['--external-service-mode', 'dsr'] });
  await Promise.all([w1.start(30_000), w2.start(30_000)]);

  const c: ChaosLab = {
    lab,
    nodes: [n1, n2],
    weirs: [w1, w2],
    server,
    clients,
    pods,
    state,
    objects,
    async change(next: ChaosState): Promise<void> {
      const deletes: { kind: FakeKind; namespace?: string; name: string }[] = [];
      if (next.policyName !== c.state.policyName) deletes.push({ kind: 'NetworkPolicy', namespace: 'default', name: c.state.policyName });
      // the new policy first, then the old one goes: the pair is never unselected
      await server.apply(objects(next).filter((o) => ['EndpointSlice', 'NetworkPolicy'].includes(o.kind ?? '')));
      if (deletes.length) await server.delete(deletes);
      c.state = next;
    },
  };
  return c;
}
