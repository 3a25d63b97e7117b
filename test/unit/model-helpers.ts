// Fixture builders for the service model tests: readable Services and EndpointSlices with
// addresses from 198.18.0.0/15 and 2001:2::/48 only.

import type { V1EndpointSlice, V1Service, V1ServicePort, V1ServiceSpec } from '@kubernetes/client-node';
import type { NodeContext, ServiceInputs } from '../../src/model/service-types.js';

export const NODE: NodeContext = { nodeName: 'node-a', nodeAddresses: ['198.18.0.1', '2001:2::1'], zone: 'zone-1' };

export function svc(
  name: string,
  spec: Partial<V1ServiceSpec> = {},
  extra: { namespace?: string; labels?: Record<string, string>; lb?: { ip?: string; ipMode?: string; hostname?: string }[] } = {},
): V1Service {
  const ports: V1ServicePort[] = spec.ports ?? [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 as never }];
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: extra.namespace ?? 'default', ...(extra.labels ? { labels: extra.labels } : {}) },
    spec: { type: 'ClusterIP', clusterIP: '198.19.0.10', ...spec, ports },
    ...(extra.lb ? { status: { loadBalancer: { ingress: extra.lb } } } : {}),
  };
}

export interface Ep {
  ip: string;
  node?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  zone?: string;
  zoneHints?: string[];
  nodeHints?: string[];
}

export function slice(
  name: string,
  service: string,
  endpoints: Ep[],
  opts: {
    ports?: { name?: string; port?: number; protocol?: string }[];
    addressType?: string;
    namespace?: string;
    labels?: Record<string, string>;
  } = {},
): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: opts.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': service, ...opts.labels },
    },
    addressType: opts.addressType ?? (endpoints[0]?.ip.includes(':') ? 'IPv6' : 'IPv4'),
    ports: (opts.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }]) as V1EndpointSlice['ports'],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ...(e.ready !== undefined ? { ready: e.ready } : {}),
        ...(e.serving !== undefined ? { serving: e.serving } : {}),
        ...(e.terminating !== undefined ? { terminating: e.terminating } : {}),
      },
      ...(e.node !== undefined ? { nodeName: e.node } : {}),
      ...(e.zone !== undefined ? { zone: e.zone } : {}),
      ...(e.zoneHints || e.nodeHints
        ? {
            hints: {
              ...(e.zoneHints ? { forZones: e.zoneHints.map((z) => ({ name: z })) } : {}),
              ...(e.nodeHints ? { forNodes: e.nodeHints.map((n) => ({ name: n })) } : {}),
            },
          }
        : {}),
    })),
  };
}

/** A ServiceInputs over plain arrays (the model's view, without the sources' Store). */
export function inputs(services: V1Service[], slices: V1EndpointSlice[]): ServiceInputs {
  const map = new Map(services.map((s) => [`${s.metadata!.namespace ?? 'default'}/${s.metadata!.name}`, s]));
  return {
    services: map,
    slicesForService: (key) => slices.filter((s) => `${s.metadata!.namespace ?? 'default'}/${s.metadata!.labels?.['kubernetes.io/service-name']}` === key),
  };
}
