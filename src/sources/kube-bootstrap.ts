// sources/kube-bootstrap: the `default/kubernetes` Service before the API answers. Replacing
// kube-proxy is a chicken-and-egg problem: the API server sits behind the `kubernetes`
// ClusterIP, which only works once weir has programmed it, which weir only learns from the API
// server. So the daemon programs a synthetic Service + EndpointSlice from two environment
// variables (KUBERNETES_SERVICE_IPS_PORTS, KUBERNETES_APISERVER_ENDPOINTS) before the API
// source starts. They carry the same names as the objects the API server itself maintains
// (Service `kubernetes`, EndpointSlice `kubernetes`), so the real ones replace them in the
// store under the same keys and, with the same frontend keys, the reconciler writes only what
// differs: no gap. Pure parsing and object building; no I/O.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { canonicalIp } from '../bpf/ip.js';
import { keyOf, type ObjectEvent } from './types.js';

export const BOOTSTRAP_ENV = { serviceIpsPorts: 'KUBERNETES_SERVICE_IPS_PORTS', apiserverEndpoints: 'KUBERNETES_APISERVER_ENDPOINTS' } as const;

/** Marks the objects made here (they are not in the API server until it answers). */
export const BOOTSTRAP_ANNOTATION = 'weir.io/bootstrap';
export const BOOTSTRAP_ORIGIN = 'bootstrap';
const SERVICE_NAME = 'kubernetes';
const NAMESPACE = 'default';
const SERVICE_LABEL = 'kubernetes.io/service-name';

export interface HostPort {
  ip: string;
  port: number;
}

export interface BootstrapConfig {
  /** the `kubernetes` Service's ClusterIPs and ports */
  service: HostPort[];
  /** every API server endpoint */
  endpoints: HostPort[];
}

/** `ip:port` or `[v6]:port`; throws a readable error naming the variable. */
export function parseHostPort(text: string, what: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  // IPv4 bare, IPv6 in brackets
  const ip = m ? canonicalIp(m[1] ?? m[2], m[1] !== undefined ? 6 : 4) : null;
  if (!m || port < 1 || port > 65535 || ip === null) throw new Error(`${what}: bad address ${JSON.stringify(text)}: use ip:port or [ipv6]:port`);
  return { ip, port };
}

function parseHostPorts(text: string, what: string): HostPort[] {
  const out = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => parseHostPort(s, what));
  return out.filter((a, i) => out.findIndex((b) => b.ip === a.ip && b.port === a.port) === i);
}

/**
 * The bootstrap settings from the environment: undefined when neither variable is set; a
 * readable error when only one is, or an address is malformed.
 */
export function bootstrapFromEnv(env: NodeJS.ProcessEnv = process.env): BootstrapConfig | undefined {
  const s = env[BOOTSTRAP_ENV.serviceIpsPorts]?.trim();
  const e = env[BOOTSTRAP_ENV.apiserverEndpoints]?.trim();
  if (!s && !e) return undefined;
  if (!s || !e)
    throw new Error(
      `API server bootstrap needs both ${BOOTSTRAP_ENV.serviceIpsPorts} and ${BOOTSTRAP_ENV.apiserverEndpoints} (only ${s ? BOOTSTRAP_ENV.serviceIpsPorts : BOOTSTRAP_ENV.apiserverEndpoints} is set)`,
    );
  const service = parseHostPorts(s, BOOTSTRAP_ENV.serviceIpsPorts);
  const endpoints = parseHostPorts(e, BOOTSTRAP_ENV.apiserverEndpoints);
  if (service.length === 0 || endpoints.length === 0)
    throw new Error(`API server bootstrap: ${BOOTSTRAP_ENV.serviceIpsPorts} and ${BOOTSTRAP_ENV.apiserverEndpoints} must each name at least one ip:port`);
  return { service, endpoints };
}

const family = (ip: string) => (ip.includes(':') ? 'IPv6' : 'IPv4');

/**
 * The synthetic Service and EndpointSlices. Service ports: one per distinct port of the
 * service addresses (`https`, then `https-<port>`); EndpointSlices: one per address family and
 * API server port (a slice has one address type and one port list), the first named
 * `kubernetes` like the one the API server maintains.
 */
export function bootstrapObjects(cfg: BootstrapConfig): { service: V1Service; slices: V1EndpointSlice[] } {
  const ips = [...new Set(cfg.service.map((a) => a.ip))];
  const ports = [...new Set(cfg.service.map((a) => a.port))];
  const portName = (p: number, i: number) => (i === 0 ? 'https' : `https-${p}`);
  const annotations = { [BOOTSTRAP_ANNOTATION]: 'true' };
  const families = [...new Set(ips.map(family))];
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: SERVICE_NAME, namespace: NAMESPACE, labels: { component: 'apiserver', provider: 'kubernetes' }, annotations },
    spec: {
      type: 'ClusterIP',
      clusterIP: ips[0]!,
      clusterIPs: ips,
      ipFamilies: families,
      ipFamilyPolicy: families.length > 1 ? 'RequireDualStack' : 'SingleStack',
      sessionAffinity: 'None',
      ports: ports.map((p, i) => ({ name: portName(p, i), port: p, protocol: 'TCP', targetPort: p as never })),
    },
  };
  const groups = new Map<string, HostPort[]>();
  for (const ep of cfg.endpoints) {
    const k = `${family(ep.ip)}/${ep.port}`;
    groups.set(k, [...(groups.get(k) ?? []), ep]);
  }
  const slices: V1EndpointSlice[] = [...groups].map(([k, eps], i) => {
    const [fam, port] = k.split('/') as ['IPv4' | 'IPv6', string];
    return {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: i === 0 ? SERVICE_NAME : `${SERVICE_NAME}-${fam.toLowerCase()}-${port}`,
        namespace: NAMESPACE,
        labels: { [SERVICE_LABEL]: SERVICE_NAME, 'endpointslice.kubernetes.io/managed-by': 'weir.io/bootstrap' },
        annotations,
      },
      addressType: fam,
      endpoints: eps.map((ep) => ({ addresses: [ep.ip], conditions: { ready: true, serving: true, terminating: false } })),
      // every service port name maps to this group's API server port
      ports: ports.map((p, j) => ({ name: portName(p, j), port: Number(port), protocol: 'TCP' })),
    };
  });
  return { service, slices };
}

/** The synthetic objects as store events (origin 'bootstrap'). */
export function bootstrapEvents(cfg: BootstrapConfig, now = Date.now()): ObjectEvent[] {
  const { service, slices } = bootstrapObjects(cfg);
  return [
    { type: 'upsert', kind: 'Service', key: keyOf('Service', service.metadata), object: service, origin: BOOTSTRAP_ORIGIN, observedAt: now },
    ...slices.map((s): ObjectEvent => ({
      type: 'upsert',
      kind: 'EndpointSlice',
      key: keyOf('EndpointSlice', s.metadata),
      object: s,
      origin: BOOTSTRAP_ORIGIN,
      observedAt: now,
    })),
  ];
}

export function isBootstrapObject(o: { metadata?: { annotations?: Record<string, string> } } | undefined): boolean {
  return o?.metadata?.annotations?.[BOOTSTRAP_ANNOTATION] === 'true';
}

/**
 * An event from the API for the `kubernetes` service's EndpointSlices: the keys of synthetic
 * slices it makes obsolete (all of them but its own key, which the event itself replaces).
 * The real Service simply replaces the synthetic one (same key).
 */
export function obsoleteBootstrapSlices(e: ObjectEvent, syntheticSliceKeys: Iterable<string>): string[] {
  if (e.origin === BOOTSTRAP_ORIGIN || e.kind !== 'EndpointSlice' || e.type !== 'upsert') return [];
  const slice = e.object as V1EndpointSlice;
  if ((slice.metadata?.namespace || NAMESPACE) !== NAMESPACE || slice.metadata?.labels?.[SERVICE_LABEL] !== SERVICE_NAME) return [];
  return [...syntheticSliceKeys].filter((k) => k !== e.key);
}
