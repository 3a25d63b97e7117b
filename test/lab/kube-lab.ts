// Shared by the test/lab/kube-*.test.ts files: a lab node running `weir daemon` against the fake
// API server, which runs as its own process in an `api` namespace on the underlay (a control
// plane the node reaches over the network, as in a cluster). Fixtures use 198.19.0.0/16
// ClusterIPs and backends, clear of the underlay's 198.18.0.0/24. Map readers turn the pinned
// service maps into `clusterIP:port/proto → backends`, and the same view is computed from the
// server's objects, so "the maps equal the server's state" is one deepEqual.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, codecFor, typedMap } from '../../src/bpf/index.js';
import type { KubeObject } from '../k8s/fake-apiserver.js';
import { RemoteApiServer } from '../k8s/remote-apiserver.js';
import { Lab, type External, type LabNode } from '../lib/lab.js';
import { sleep } from '../lib/proc.js';
import { WeirNode, type WeirNodeOptions } from '../lib/weir-node.js';

export const TOKEN = 'weir-lab-token';
export const API_ADDRESS = '198.18.0.100';
export const API_PORT = 6443;
/** the API server's and node1's IPv6 underlay addresses with `ipv6: true` */
export const API_ADDRESS6 = '2001:2::100';
export const NODE_ADDRESS6 = '2001:2::1';

/** ClusterIP of service i: 198.19.0.0/17. */
export const svcIp = (i: number) => `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}`;
/** Backend j (0..3) of service i: 198.19.128.0/17. */
export const beIp = (i: number, j: number) => {
  const n = i * 4 + j;
  return `198.19.${128 + Math.floor(n / 250)}.${(n % 250) + 1}`;
};

export function service(ns: string, name: string, ip: string, port = 80, targetPort = 8080): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'], ports: [{ name: 'http', port, protocol: 'TCP', targetPort }] },
  };
}

/** nodeName null: none (the API server's own `kubernetes` slice has none). */
export function endpointSlice(ns: string, svc: string, name: string, addresses: string[], port = 8080, nodeName: string | null = 'node1'): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true, serving: true, terminating: false }, ...(nodeName ? { nodeName } : {}) })),
    ports: [{ name: 'http', port, protocol: 'TCP' }],
  };
}

export interface KubeLab {
  lab: Lab;
  node: LabNode;
  api: External;
  server: RemoteApiServer;
  kubeconfig: string;
  weir: WeirNode;
}

/**
 * Lab, node1, the API server in `api`, a kubeconfig, a WeirNode on it (not started). With
 * `ipv6`, node1 and `api` are dual-stack (pods too) and the API server listens on its IPv6
 * address only.
 */
export async function kubeLab(
  name: string,
  opts: { weir?: WeirNodeOptions; certIps?: string[]; kubeconfigServer?: string; ipv6?: boolean } = {},
): Promise<KubeLab> {
  const lab = await Lab.create({ name });
  const v6 = opts.ipv6 === true;
  const node = await lab.node('node1', {
    address: '198.18.0.1/24',
    podSubnet: '198.18.1.0/24',
    ...(v6 ? { address6: `${NODE_ADDRESS6}/64`, podSubnet6: '2001:2:1::/64' } : {}),
  });
  const api = await lab.external('api', { address: `${API_ADDRESS}/24`, ...(v6 ? { address6: `${API_ADDRESS6}/64` } : {}) });
  const server = await RemoteApiServer.start(api.ns, lab.dir, {
    tls: true,
    token: TOKEN,
    host: v6 ? API_ADDRESS6 : API_ADDRESS,
    port: API_PORT,
    ...(opts.certIps ? { certIps: opts.certIps } : {}),
  });
  const kubeconfig = join(lab.dir, 'kubeconfig');
  writeFileSync(kubeconfig, server.kubeconfigYaml(TOKEN, opts.kubeconfigServer));
  const weir = await WeirNode.create(lab, node, { kubeconfig, metricsAddress: '127.0.0.1:9745', connectTimeLb: 'off', ...opts.weir });
  return { lab, node, api, server, kubeconfig, weir };
}

const sortKeys = <T>(o: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** The pinned service maps as `ip:port/proto → sorted backends` (internal scope). */
export function mapsView(pinDir: string): Record<string, string[]> {
  const fe = typedMap(BpfMap.openPinned(join(pinDir, 'weir_frontend4')), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
  const be = typedMap(BpfMap.openPinned(join(pinDir, 'weir_backend4')), codecFor('weir_backend4_key'), codecFor('weir_backend4'));
  try {
    const byId = new Map<number, Map<number, string>>();
    for (const [k, v] of be.entries()) {
      const key = k as { frontend_id: number; slot: number };
      const val = v as { address: string; port: number };
      if (!byId.has(key.frontend_id)) byId.set(key.frontend_id, new Map());
      byId.get(key.frontend_id)!.set(key.slot, `${val.address}:${val.port}`);
    }
    const out: Record<string, string[]> = {};
    for (const [k, v] of fe.entries()) {
      const key = k as { address: string; port: number; protocol: number; scope: number };
      const val = v as { id: number; backend_count: number };
      if (key.scope !== 0) continue;
      const slots = byId.get(val.id) ?? new Map<number, string>();
      const backends: string[] = [];
      for (let s = 0; s < val.backend_count; s++) backends.push(slots.get(s) ?? `missing-slot-${s}`);
      out[`${key.address}:${key.port}/${key.protocol}`] = backends.sort();
    }
    return sortKeys(out);
  } finally {
    fe.map.close();
    be.map.close();
  }
}

/** The same view computed from the server's Services and EndpointSlices (ready endpoints). */
export async function serverView(server: RemoteApiServer): Promise<Record<string, string[]>> {
  const services = await server.objects('Service');
  const slices = Object.values(await server.objects('EndpointSlice'));
  const out: Record<string, string[]> = {};
  for (const [key, s] of Object.entries(services)) {
    const spec = s.spec as { clusterIP: string; ports: { name: string; port: number; protocol: string }[] };
    for (const p of spec.ports) {
      const backends: string[] = [];
      for (const sl of slices) {
        const meta = sl.metadata as { namespace: string; labels: Record<string, string> };
        if (`${meta.namespace}/${meta.labels['kubernetes.io/service-name']}` !== key) continue;
        const port = (sl.ports as { name: string; port: number }[]).find((x) => x.name === p.name)?.port;
        if (port === undefined) continue;
        for (const ep of sl.endpoints as { addresses: string[]; conditions: { ready: boolean } }[])
          if (ep.conditions.ready) backends.push(`${ep.addresses[0]}:${port}`);
      }
      out[`${spec.clusterIP}:${p.port}/${p.protocol === 'UDP' ? 17 : 6}`] = [...new Set(backends)].sort();
    }
  }
  return sortKeys(out);
}

/** Polls `f` until it returns true; fails with `what()` after timeoutMs. */
export async function until(f: () => boolean | Promise<boolean>, what: () => string, timeoutMs = 5000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await sleep(everyMs);
  }
}

export const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
