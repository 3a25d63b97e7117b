// model/validate: pure parsers and checks for addresses, ports, protocols and the Service /
// EndpointSlice fields the model reads. Used by the sources at their boundary (reject and count
// bad objects) and by the model itself, which re-parses every address so that a malformed
// object from any source can never reach the dataplane.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

export type IPFamily = 4 | 6;
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface ParsedIP {
  family: IPFamily;
  /** Canonical text: dotted quad without leading zeros, or RFC 5952 IPv6 (lowercase, `::`). */
  address: string;
}

export interface ParsedCIDR {
  family: IPFamily;
  /** Canonical network address (host bits cleared). */
  address: string;
  prefix: number;
}

const PROTOCOLS: ReadonlySet<string> = new Set(['TCP', 'UDP', 'SCTP']);

export function isProtocol(p: unknown): p is Protocol {
  return typeof p === 'string' && PROTOCOLS.has(p);
}

/** A port number an L4 header can carry and Kubernetes accepts (1..65535, integer). */
export function isValidPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

// Hand-rolled (no split/regex): the model parses every endpoint address of every slice.
function parseIPv4Octets(s: string, out: number[] = [0, 0, 0, 0]): number[] | null {
  let part = 0;
  let val = 0;
  let digits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part === 3) return null;
      out[part++] = val;
      val = 0;
      digits = 0;
      continue;
    }
    if (c < 48 || c > 57) return null;
    // Leading zeros are ambiguous (octal in some parsers); Go's net.ParseIP rejects them.
    if (digits > 0 && val === 0) return null;
    val = val * 10 + (c - 48);
    if (++digits > 3 || val > 255) return null;
  }
  if (part !== 3 || digits === 0) return null;
  out[3] = val;
  return out;
}

function parseIPv6Groups(s: string): number[] | null {
  if (s.length < 2 || s.length > 45 || s.includes('%')) return null;
  let head = s;
  let v4tail: number[] | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) !== -1) {
    v4tail = parseIPv4Octets(s.slice(lastColon + 1));
    if (!v4tail) return null;
    head = s.slice(0, lastColon + 1);
    // "::1.2.3.4" keeps its "::"; "a:b:1.2.3.4" becomes "a:b".
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const want = v4tail ? 6 : 8;
  const dbl = head.indexOf('::');
  if (dbl !== -1 && head.indexOf('::', dbl + 1) !== -1) return null;
  const parseGroups = (t: string): number[] | null => {
    if (t === '') return [];
    const gs = t.split(':');
    const out: number[] = [];
    for (const g of gs) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl === -1) {
    const g = parseGroups(head);
    if (!g || g.length !== want) return null;
    groups = g;
  } else {
    const left = parseGroups(head.slice(0, dbl));
    const right = parseGroups(head.slice(dbl + 2));
    if (!left || !right) return null;
    const fill = want - left.length - right.length;
    if (fill < 1) return null;
    groups = [...left, ...new Array<number>(fill).fill(0), ...right];
  }
  if (v4tail) groups.push((v4tail[0]! << 8) | v4tail[1]!, (v4tail[2]! << 8) | v4tail[3]!);
  return groups;
}

function formatIPv6(groups: readonly number[]): string {
  // RFC 5952: compress the longest run (≥ 2) of zero groups, leftmost on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parse an IPv4 or IPv6 address (no zone, no prefix). Returns null when invalid. */
export function parseIP(s: unknown): ParsedIP | null {
  if (typeof s !== 'string') return null;
  if (s.includes(':')) {
    const g = parseIPv6Groups(s);
    return g ? { family: 6, address: formatIPv6(g) } : null;
  }
  // A strictly parsed dotted quad is already canonical.
  return parseIPv4Octets(s, scratch) ? { family: 4, address: s } : null;
}

const scratch = [0, 0, 0, 0];

/**
 * Canonical text of an address of the given family, or null (wrong family or invalid). The
 * allocation-free path the model uses for every endpoint address.
 */
export function canonicalIP(s: unknown, family: IPFamily): string | null {
  if (typeof s !== 'string') return null;
  if (family === 4) return parseIPv4Octets(s, scratch) ? s : null;
  if (!s.includes(':')) return null;
  const g = parseIPv6Groups(s);
  return g ? formatIPv6(g) : null;
}

/** Parse "addr/prefix" (surrounding whitespace tolerated, as kube-proxy does for source ranges). */
export function parseCIDR(s: unknown): ParsedCIDR | null {
  if (typeof s !== 'string') return null;
  const t = s.trim();
  const slash = t.indexOf('/');
  if (slash === -1) return null;
  const ipText = t.slice(0, slash);
  const prefixText = t.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (ipText.includes(':')) {
    const g = parseIPv6Groups(ipText);
    if (!g || prefix > 128) return null;
    const masked = g.map((v, i) => {
      const bits = Math.max(0, Math.min(16, prefix - i * 16));
      return bits === 0 ? 0 : v & ((0xffff << (16 - bits)) & 0xffff);
    });
    return { family: 6, address: formatIPv6(masked), prefix };
  }
  const o = parseIPv4Octets(ipText);
  if (!o || prefix > 32) return null;
  const masked = o.map((v, i) => {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    return bits === 0 ? 0 : v & ((0xff << (8 - bits)) & 0xff);
  });
  return { family: 4, address: masked.join('.'), prefix };
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
    out.push({ field, reason: `invalid targetPort ${JSON.stringify(tp)}` });
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
  if (!SERVICE_TYPES.has(type)) out.push({ field: 'spec.type', reason: `unknown type ${JSON.stringify(type)}` });
  const ports = spec.ports ?? [];
  if (!Array.isArray(ports)) return [...out, { field: 'spec.ports', reason: 'not a list' }];
  const names = new Set<string>();
  ports.forEach((p, i) => {
    const f = `spec.ports[${i}]`;
    if (!p || typeof p !== 'object') {
      out.push({ field: f, reason: 'not an object' });
      return;
    }
    if (!isValidPort(p.port)) out.push({ field: `${f}.port`, reason: `invalid port ${JSON.stringify(p.port)}` });
    if (p.protocol !== undefined && !isProtocol(p.protocol)) {
      out.push({ field: `${f}.protocol`, reason: `unknown protocol ${JSON.stringify(p.protocol)}` });
    }
    if (p.nodePort !== undefined && p.nodePort !== null && p.nodePort !== 0 && !isValidPort(p.nodePort)) {
      out.push({ field: `${f}.nodePort`, reason: `invalid nodePort ${JSON.stringify(p.nodePort)}` });
    }
    checkTargetPort(p.targetPort, `${f}.targetPort`, out);
    const name = p.name ?? '';
    if (typeof name !== 'string') out.push({ field: `${f}.name`, reason: 'not a string' });
    else if (names.has(name)) out.push({ field: `${f}.name`, reason: `duplicate port name ${JSON.stringify(name)}` });
    else names.add(name);
    if (ports.length > 1 && name === '') out.push({ field: `${f}.name`, reason: 'multi-port services must name every port' });
  });
  const checkIP = (v: unknown, field: string, allowNone: boolean): void => {
    if (v === undefined || v === null || v === '') return;
    if (allowNone && v === 'None') return;
    if (!parseIP(v)) out.push({ field, reason: `invalid IP ${JSON.stringify(v)}` });
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
    out.push({ field: 'spec.sessionAffinity', reason: `unknown value ${JSON.stringify(spec.sessionAffinity)}` });
  }
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  if (timeout !== undefined && timeout !== null && !(Number.isInteger(timeout) && timeout >= 1 && timeout <= 86400)) {
    out.push({ field: 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', reason: `must be 1..86400, got ${JSON.stringify(timeout)}` });
  }
  const hc = spec.healthCheckNodePort;
  if (hc !== undefined && hc !== null && hc !== 0 && !isValidPort(hc)) {
    out.push({ field: 'spec.healthCheckNodePort', reason: `invalid port ${JSON.stringify(hc)}` });
  }
  for (const [field, v] of [
    ['spec.externalTrafficPolicy', spec.externalTrafficPolicy],
    ['spec.internalTrafficPolicy', spec.internalTrafficPolicy],
  ] as const) {
    if (v !== undefined && v !== null && v !== 'Cluster' && v !== 'Local') out.push({ field, reason: `unknown value ${JSON.stringify(v)}` });
  }
  return out;
}

const ADDRESS_TYPES = new Set(['IPv4', 'IPv6', 'FQDN']);

/** Check an EndpointSlice: addressType, every address against it, ports and protocols. */
export function validateEndpointSlice(slice: V1EndpointSlice): FieldProblem[] {
  const out: FieldProblem[] = [];
  const at = slice.addressType;
  if (!ADDRESS_TYPES.has(at)) out.push({ field: 'addressType', reason: `unknown addressType ${JSON.stringify(at)}` });
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
      const ip = parseIP(a);
      const want = at === 'IPv6' ? 6 : 4;
      if (!ip) out.push({ field: `${f}.addresses[${j}]`, reason: `invalid address ${JSON.stringify(a)}` });
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
      out.push({ field: `${f}.port`, reason: `invalid port ${JSON.stringify(p.port)}` });
    }
    if (p.protocol !== undefined && p.protocol !== null && !isProtocol(p.protocol)) {
      out.push({ field: `${f}.protocol`, reason: `unknown protocol ${JSON.stringify(p.protocol)}` });
    }
  });
  return out;
}
