// model/validate: pure checks for ports, protocols and the Service / EndpointSlice fields the
// model reads. Used by the sources at their boundary (reject and count bad objects) and by the
// model itself, which re-parses every address (with the one IP parser, src/bpf/ip.ts) so that a
// malformed object from any source can never reach the dataplane.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { parseIp } from '../bpf/ip.js';
import { show } from './k8s-names.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

const PROTOCOLS: ReadonlySet<string> = new Set(['TCP', 'UDP', 'SCTP']);

export function isProtocol(p: unknown): p is Protocol {
  return typeof p === 'string' && PROTOCOLS.has(p);
}

/** A port number an L4 header can carry and Kubernetes accepts (1..65535, integer). */
export function isValidPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

/** A single problem found in an object: the field path and what is wrong with it. */
export interface FieldProblem {
  field: string;
  reason: string;
}

const SERVICE_TYPES = new Set(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']);
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

function checkTargetPort(tp: unknown, field: string, out: FieldProblem[]): void {
  if (tp === undefined || tp === null) return;
  if (typeof tp === 'number') {
    if (!isValidPort(tp)) out.push({ field, reason: `invalid targetPort ${tp}` });
  } else if (typeof tp !== 'string' || !IANA_SVC_NAME.test(tp)) {
    out.push({ field, reason: `invalid targetPort ${show(tp)}` });
  }
}

/**
 * Check the Service fields the dataplane depends on. Returns [] when usable. Stricter than
 * needed in places (e.g. a non-numeric port) because the API server would refuse the same object.
 */
export function validateService(svc: V1Service): FieldProblem[] {
  const out: FieldProblem[] = [];
  const spec = svc.spec;
  if (!spec) return [{ field: 'spec', reason: 'missing spec' }];
  const type = spec.type ?? 'ClusterIP';
  if (!SERVICE_TYPES.has(type)) out.push({ field: 'spec.type', reason: `unknown type ${show(type)}` });
  const ports = spec.ports ?? [];
  if (!Array.isArray(ports)) return [...out, { field: 'spec.ports', reason: 'not a list' }];
  const names = new Set<string>();
  ports.forEach((p, i) => {
    const f = `spec.ports[${i}]`;
    if (!p || typeof p !== 'object') {
      out.push({ field: f, reason: 'not an object' });
      return;
    }
    if (!isValidPort(p.port)) out.push({ field: `${f}.port`, reason: `invalid port ${show(p.port)}` });
    if (p.protocol !== undefined && !isProtocol(p.protocol)) {
      out.push({ field: `${f}.protocol`, reason: `unknown protocol ${show(p.protocol)}` });
    }
    if (p.nodePort !== undefined && p.nodePort !== null && p.nodePort !== 0 && !isValidPort(p.nodePort)) {
      out.push({ field: `${f}.nodePort`, reason: `invalid nodePort ${show(p.nodePort)}` });
    }
    checkTargetPort(p.targetPort, `${f}.targetPort`, out);
    const name = p.name ?? '';
    if (typeof name !== 'string') out.push({ field: `${f}.name`, reason: 'not a string' });
    else if (names.has(name)) out.push({ field: `${f}.name`, reason: `duplicate port name ${show(name)}` });
    else names.add(name);
    if (ports.length > 1 && name === '') out.push({ field: `${f}.name`, reason: 'multi-port services must name every port' });
  });
  const checkIP = (v: unknown, field: string, allowNone: boolean): void => {
    if (v === undefined || v === null || v === '') return;
    if (allowNone && v === 'None') return;
    if (!parseIp(v)) out.push({ field, reason: `invalid IP ${show(v)}` });
  };
  checkIP(spec.clusterIP, 'spec.clusterIP', true);
  if (spec.clusterIPs !== undefined) {
    if (!Array.isArray(spec.clusterIPs)) out.push({ field: 'spec.clusterIPs', reason: 'not a list' });
    else spec.clusterIPs.forEach((ip, i) => checkIP(ip, `spec.clusterIPs[${i}]`, true));
  }
  if (spec.externalIPs !== undefined) {
    if (!Array.isArray(spec.externalIPs)) out.push({ field: 'spec.externalIPs', reason: 'not a list' });
    else spec.externalIPs.forEach((ip, i) => checkIP(ip, `spec.externalIPs[${i}]`, false));
  }
  const ingress = svc.status?.loadBalancer?.ingress;
  if (Array.isArray(ingress)) ingress.forEach((ing, i) => checkIP(ing?.ip, `status.loadBalancer.ingress[${i}].ip`, false));
  if (spec.sessionAffinity !== undefined && spec.sessionAffinity !== 'None' && spec.sessionAffinity !== 'ClientIP') {
    out.push({ field: 'spec.sessionAffinity', reason: `unknown value ${show(spec.sessionAffinity)}` });
  }
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  if (timeout !== undefined && timeout !== null && !(Number.isInteger(timeout) && timeout >= 1 && timeout <= 86400)) {
    out.push({ field: 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', reason: `must be 1..86400, got ${show(timeout)}` });
  }
  const hc = spec.healthCheckNodePort;
  if (hc !== undefined && hc !== null && hc !== 0 && !isValidPort(hc)) {
    out.push({ field: 'spec.healthCheckNodePort', reason: `invalid port ${show(hc)}` });
  }
  for (const [field, v] of [
    ['spec.externalTrafficPolicy', spec.externalTrafficPolicy],
    ['spec.internalTrafficPolicy', spec.internalTrafficPolicy],
  ] as const) {
    if (v !== undefined && v !== null && v !== 'Cluster' && v !== 'Local') out.push({ field, reason: `unknown value ${show(v)}` });
  }
  return out;
}

const ADDRESS_TYPES = new Set(['IPv4', 'IPv6', 'FQDN']);

/** Check an EndpointSlice: addressType, every address against it, ports and protocols. */
export function validateEndpointSlice(slice: V1EndpointSlice): FieldProblem[] {
  const out: FieldProblem[] = [];
  const at = slice.addressType;
  if (!ADDRESS_TYPES.has(at)) out.push({ field: 'addressType', reason: `unknown addressType ${show(at)}` });
  const endpoints = slice.endpoints ?? [];
  if (!Array.isArray(endpoints)) return [...out, { field: 'endpoints', reason: 'not a list' }];
  endpoints.forEach((ep, i) => {
    const f = `endpoints[${i}]`;
    if (!ep || typeof ep !== 'object' || !Array.isArray(ep.addresses) || ep.addresses.length === 0) {
      out.push({ field: `${f}.addresses`, reason: 'missing addresses' });
      return;
    }
    if (at === 'FQDN') return;
    ep.addresses.forEach((a, j) => {
      const ip = parseIp(a);
      const want = at === 'IPv6' ? 6 : 4;
      if (!ip) out.push({ field: `${f}.addresses[${j}]`, reason: `invalid address ${show(a)}` });
      else if (ADDRESS_TYPES.has(at) && ip.family !== want) {
        out.push({ field: `${f}.addresses[${j}]`, reason: `address ${a} does not match addressType ${at}` });
      }
    });
  });
  const ports = slice.ports ?? [];
  if (!Array.isArray(ports)) return [...out, { field: 'ports', reason: 'not a list' }];
  ports.forEach((p, i) => {
    const f = `ports[${i}]`;
    if (!p || typeof p !== 'object') {
      out.push({ field: f, reason: 'not an object' });
      return;
    }
    if (p.port !== undefined && p.port !== null && !isValidPort(p.port)) {
      out.push({ field: `${f}.port`, reason: `invalid port ${show(p.port)}` });
    }
    if (p.protocol !== undefined && p.protocol !== null && !isProtocol(p.protocol)) {
      out.push({ field: `${f}.protocol`, reason: `unknown protocol ${show(p.protocol)}` });
    }
  });
  return out;
}
