// test/k8s/harness: fixtures (plain JSON as a client would POST them; addresses from
// 198.18.0.0/15 and 2001:2::/48 only), a KubeSource wired to a fake API server and a Store, and
// the comparison "the store holds exactly what the server holds".

import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeSource, type KubeSourceOptions } from '../../src/sources/kube.js';
import { memoryLogger } from '../../src/log.js';
import { Store } from '../../src/sources/store.js';
import { OBJECT_KINDS, type ObjectEvent, type SourceEvent } from '../../src/sources/types.js';
import type { FakeApiServer, KubeObject } from './fake-apiserver.js';

/** ClusterIP of service i: 198.18.x.y, never .0. */
export const clusterIp = (i: number) => `198.18.${(i + 1) >> 8}.${(i + 1) & 255}`;
/** Backend j of service i: 198.19.x.y. */
export const backendIp = (i: number, j: number) => {
  const n = i * 4 + j + 1;
  return `198.19.${(n >> 8) & 255}.${n & 255}`;
};

export function service(ns: string, name: string, ip: string, port = 80): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels: { app: name } },
    spec: {
      type: 'ClusterIP',
      clusterIP: ip,
      clusterIPs: [ip],
      ipFamilies: [ip.includes(':') ? 'IPv6' : 'IPv4'],
      ports: [{ name: 'http', port, protocol: 'TCP', targetPort: 8080 }],
    },
  };
}

export function endpointSlice(ns: string, svc: string, name: string, addresses: string[], ready = true): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: ns,
      labels: { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: addresses[0]?.includes(':') ? 'IPv6' : 'IPv4',
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready, serving: ready, terminating: false }, nodeName: 'node-a' })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

export const namespace = (name: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels: { 'kubernetes.io/metadata.name': name } },
});

export const node = (name: string, ip: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels: { 'kubernetes.io/hostname': name } },
  spec: { podCIDR: '198.18.128.0/24' },
  status: { addresses: [{ type: 'InternalIP', address: ip }] },
});

export const pod = (ns: string, name: string, ip: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels: { app: name } },
  spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'example.invalid/echo' }] },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
});

export const networkPolicy = (ns: string, name: string): KubeObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name, namespace: ns },
  spec: {
    podSelector: { matchLabels: { app: 'web' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ ipBlock: { cidr: '198.18.0.0/15', except: ['198.18.9.0/24'] } }] }],
  },
});

/** A Calico GlobalNetworkPolicy: allow SSH from the lab range to the hosts labelled role=edge. */
export const globalNetworkPolicy = (name: string, order = 100): KubeObject => ({
  apiVersion: 'projectcalico.org/v3',
  kind: 'GlobalNetworkPolicy',
  metadata: { name, labels: { team: 'infra' } },
  spec: {
    order,
    selector: "role == 'edge'",
    types: ['Ingress'],
    ingress: [{ action: 'Allow', protocol: 'TCP', source: { nets: ['198.18.0.0/15'] }, destination: { ports: [22, '8000:8100'] } }],
  },
});

/** A Calico HostEndpoint of a node's interface. */
export const hostEndpoint = (name: string, nodeName: string, iface: string, ip: string): KubeObject => ({
  apiVersion: 'projectcalico.org/v3',
  kind: 'HostEndpoint',
  metadata: { name, labels: { role: 'edge' } },
  spec: { node: nodeName, interfaceName: iface, expectedIPs: [ip], profiles: ['projectcalico-default-allow'] },
});

/** A KubeConfig for the fake server (token auth; its CA when it serves TLS). */
export function kubeConfigFor(server: FakeApiServer, token = 'weir-test-token'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // client-node refuses plain http unless skipTLSVerify is set
    clusters: [{ name: 'fake', server: server.url, ...(server.caPem ? { caData: Buffer.from(server.caPem).toString('base64') } : { skipTLSVerify: true }) }],
    users: [{ name: 'weir', token }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'weir' }],
    currentContext: 'fake',
  });
  return kc;
}

export interface Harness {
  source: KubeSource;
  store: Store;
  events: SourceEvent[];
  log: ReturnType<typeof memoryLogger>;
  /** resolves with the first event for which `pred` holds (events already seen count) */
  waitFor(pred: (e: SourceEvent) => boolean, timeoutMs?: number): Promise<SourceEvent>;
  stop(): Promise<void>;
}

export function harness(kubeConfig: KubeConfig, opts: Partial<KubeSourceOptions> = {}): Harness {
  const log = memoryLogger();
  const store = new Store();
  const events: SourceEvent[] = [];
  const waiters: { pred: (e: SourceEvent) => boolean; resolve: (e: SourceEvent) => void }[] = [];
  const source = new KubeSource({ kubeConfig, log, backoff: { initialMs: 50, maxMs: 400 }, ...opts });
  const sink = (e: SourceEvent) => {
    events.push(e);
    if (e.type !== 'synced') store.apply(e as ObjectEvent);
    for (const w of [...waiters]) {
      if (w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  };
  void source.start(sink);
  return {
    source,
    store,
    events,
    log,
    waitFor(pred, timeoutMs = 5000) {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (e: SourceEvent) => (clearTimeout(t), resolve(e)) };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching event in ${timeoutMs} ms; last log lines:\n${log.lines.slice(-10).join('\n')}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    stop: () => source.stop(),
  };
}

/** Poll until `cond` holds (or fail with `what` after `timeoutMs`). */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000, everyMs = 10): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Per kind: the store's keys → resourceVersion, to compare with the server's. */
export function storeVersions(store: Store): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const k of OBJECT_KINDS) {
    out[k] = Object.fromEntries([...store.map(k)].map(([key, o]) => [key, o.metadata?.resourceVersion ?? '']).sort());
  }
  return out;
}

export function serverVersions(server: FakeApiServer): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const k of OBJECT_KINDS) {
    out[k] = Object.fromEntries([...server.state(k)].map(([key, o]) => [key, String(o.metadata?.resourceVersion ?? '')]).sort());
  }
  return out;
}

export function assertStoreEqualsServer(store: Store, server: FakeApiServer): void {
  assert.deepEqual(storeVersions(store), serverVersions(server));
}

export const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
