// model/validate-object: every object a source hands on, checked against Kubernetes' own limits
// (names, namespaces, labels, annotations, ports, list sizes) before the store keeps it. Both
// sources call it (manifests: manifest-parse.ts; the API: kube.ts), so one bad object is one log
// line and one count and is skipped, whichever way it came. Lists are bounded before they are
// walked, so an object with a million endpoints costs one comparison, not a million parses.

import type { V1EndpointSlice, V1NetworkPolicy, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { annotationProblems, dns1035Label, dns1123Label, dns1123Subdomain, labelProblems, show, type NameCheck } from './k8s-names.js';
import { isProtocol, isValidPort, validateEndpointSlice, validateService, type FieldProblem } from './validate.js';

export type ValidatedKind = 'Service' | 'EndpointSlice' | 'Pod' | 'Namespace' | 'Node' | 'NetworkPolicy';

/** Endpoints per EndpointSlice, ports per slice, addresses per endpoint: the API server's maxima. */
export const SLICE_MAX_ENDPOINTS = 1000;
export const SLICE_MAX_PORTS = 100;
export const ENDPOINT_MAX_ADDRESSES = 100;
/**
 * Any other list one object carries (a Service's ports, externalIPs, ingress IPs and source
 * ranges; a pod's containers and their ports; a policy's rules). The API server has no count
 * here, only its 1.5 MiB object size; 1,000 is far past any real object, and keeps one object
 * from turning into millions of frontends or rules.
 */
export const OBJECT_MAX_LIST = 1000;

/** The name rule of each kind, as the API server applies it. */
const NAME_RULES: Readonly<Record<ValidatedKind, NameCheck>> = {
  Service: dns1035Label,
  EndpointSlice: dns1123Subdomain,
  Pod: dns1123Subdomain,
  Namespace: dns1123Label,
  Node: dns1123Subdomain,
  NetworkPolicy: dns1123Subdomain,
};

const CLUSTER_SCOPED: ReadonlySet<ValidatedKind> = new Set(['Namespace', 'Node']);
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

interface Meta {
  name?: unknown;
  namespace?: unknown;
  labels?: unknown;
  annotations?: unknown;
}

/** A list longer than `max` (or not a list): one problem, and the caller does not walk it. */
function listTooLong(v: unknown, max: number, field: string, out: FieldProblem[]): boolean {
  if (v === undefined || v === null) return false;
  if (!Array.isArray(v)) {
    out.push({ field, reason: 'not a list' });
    return true;
  }
  if (v.length <= max) return false;
  out.push({ field, reason: `${v.length} items, more than ${max}` });
  return true;
}

function metadataProblems(kind: ValidatedKind, meta: Meta | undefined, out: FieldProblem[]): void {
  const name = NAME_RULES[kind](meta?.name);
  if (name !== null) out.push({ field: 'metadata.name', reason: name });
  if (!CLUSTER_SCOPED.has(kind) && meta?.namespace !== undefined) {
    const ns = dns1123Label(meta.namespace);
    if (ns !== null) out.push({ field: 'metadata.namespace', reason: ns });
  }
  for (const reason of labelProblems(meta?.labels)) out.push({ field: 'metadata.labels', reason });
  for (const reason of annotationProblems(meta?.annotations)) out.push({ field: 'metadata.annotations', reason });
}

function serviceProblems(svc: V1Service, out: FieldProblem[]): void {
  const spec = svc.spec;
  let bounded = true;
  for (const [field, v] of [
    ['spec.ports', spec?.ports],
    ['spec.externalIPs', spec?.externalIPs],
    ['spec.loadBalancerSourceRanges', spec?.loadBalancerSourceRanges],
    ['status.loadBalancer.ingress', svc.status?.loadBalancer?.ingress],
  ] as const) {
    if (listTooLong(v, OBJECT_MAX_LIST, field, out)) bounded = false;
  }
  if (listTooLong(spec?.clusterIPs, 2, 'spec.clusterIPs', out)) bounded = false;
  if (!bounded) return;
  for (const reason of labelProblems(spec?.selector)) out.push({ field: 'spec.selector', reason });
  spec?.ports?.forEach((p, i) => {
    if (p && typeof p === 'object' && typeof p.name === 'string' && p.name !== '') {
      const r = dns1123Label(p.name);
      if (r !== null) out.push({ field: `spec.ports[${i}].name`, reason: r });
    }
  });
  out.push(...validateService(svc));
}

function sliceProblems(slice: V1EndpointSlice, out: FieldProblem[]): void {
  const endpoints = slice.endpoints as unknown;
  const longEndpoints = listTooLong(endpoints, SLICE_MAX_ENDPOINTS, 'endpoints', out);
  if (listTooLong(slice.ports, SLICE_MAX_PORTS, 'ports', out) || longEndpoints) return;
  let bounded = true;
  (endpoints as V1EndpointSlice['endpoints'] | undefined)?.forEach((ep, i) => {
    if (!ep || typeof ep !== 'object') return; // validateEndpointSlice names it
    if (listTooLong(ep.addresses, ENDPOINT_MAX_ADDRESSES, `endpoints[${i}].addresses`, out)) bounded = false;
    if (ep.nodeName !== undefined && ep.nodeName !== null) {
      const r = dns1123Subdomain(ep.nodeName);
      if (r !== null) out.push({ field: `endpoints[${i}].nodeName`, reason: r });
    }
    if (ep.hostname !== undefined && ep.hostname !== null) {
      const r = dns1123Label(ep.hostname);
      if (r !== null) out.push({ field: `endpoints[${i}].hostname`, reason: r });
    }
  });
  if (!bounded) return;
  slice.ports?.forEach((p, i) => {
    if (p && typeof p === 'object' && typeof p.name === 'string' && p.name !== '') {
      const r = dns1123Label(p.name);
      if (r !== null) out.push({ field: `ports[${i}].name`, reason: r });
    }
  });
  out.push(...validateEndpointSlice(slice));
}

function podProblems(pod: V1Pod, out: FieldProblem[]): void {
  const spec = pod.spec;
  if (spec?.nodeName !== undefined && spec.nodeName !== null && spec.nodeName !== '') {
    const r = dns1123Subdomain(spec.nodeName);
    if (r !== null) out.push({ field: 'spec.nodeName', reason: r });
  }
  listTooLong(pod.status?.podIPs, 2, 'status.podIPs', out);
  for (const list of ['containers', 'initContainers'] as const) {
    const containers = spec?.[list];
    if (listTooLong(containers, OBJECT_MAX_LIST, `spec.${list}`, out)) continue;
    containers?.forEach((c, i) => {
      const f = `spec.${list}[${i}].ports`;
      if (!c || typeof c !== 'object' || listTooLong(c.ports, OBJECT_MAX_LIST, f, out)) return;
      c.ports?.forEach((p, j) => {
        if (!p || typeof p !== 'object') {
          out.push({ field: `${f}[${j}]`, reason: 'not an object' });
          return;
        }
        if (!isValidPort(p.containerPort)) out.push({ field: `${f}[${j}].containerPort`, reason: `invalid port ${show(p.containerPort)}` });
        if (p.protocol !== undefined && p.protocol !== null && !isProtocol(p.protocol)) {
          out.push({ field: `${f}[${j}].protocol`, reason: `unknown protocol ${show(p.protocol)}` });
        }
        if (p.name !== undefined && p.name !== null && (typeof p.name !== 'string' || !IANA_SVC_NAME.test(p.name))) {
          out.push({ field: `${f}[${j}].name`, reason: `${show(p.name)} is not an IANA service name (15 characters)` });
        }
      });
    });
  }
}

function nodeProblems(node: V1Node, out: FieldProblem[]): void {
  listTooLong(node.spec?.podCIDRs, 2, 'spec.podCIDRs', out);
  listTooLong(node.status?.addresses, OBJECT_MAX_LIST, 'status.addresses', out);
  listTooLong(node.spec?.taints, OBJECT_MAX_LIST, 'spec.taints', out);
}

function policyProblems(np: V1NetworkPolicy, out: FieldProblem[]): void {
  for (const dir of ['ingress', 'egress'] as const) {
    const rules = np.spec?.[dir] as unknown;
    if (listTooLong(rules, OBJECT_MAX_LIST, `spec.${dir}`, out)) continue;
    (rules as Record<string, unknown>[] | undefined)?.forEach((r, i) => {
      if (!r || typeof r !== 'object') return;
      for (const f of ['from', 'to', 'ports'] as const) listTooLong(r[f], OBJECT_MAX_LIST, `spec.${dir}[${i}].${f}`, out);
    });
  }
}

/** What is wrong with an object of `kind` by Kubernetes' rules; [] when it may be kept (a
 *  Namespace has nothing to check beyond its metadata). */
export function validateObject(kind: ValidatedKind, obj: unknown): FieldProblem[] {
  const out: FieldProblem[] = [];
  const o = obj as { metadata?: Meta };
  metadataProblems(kind, o.metadata, out);
  switch (kind) {
    case 'Service':
      serviceProblems(obj as V1Service, out);
      break;
    case 'EndpointSlice':
      sliceProblems(obj as V1EndpointSlice, out);
      break;
    case 'Pod':
      podProblems(obj as V1Pod, out);
      break;
    case 'Node':
      nodeProblems(obj as V1Node, out);
      break;
    case 'NetworkPolicy':
      policyProblems(obj as V1NetworkPolicy, out);
      break;
  }
  return out;
}

/** Problems as one line for a log: the first few, and how many more. */
export function describeProblems(problems: readonly FieldProblem[], first = 5): string {
  const shown = problems.slice(0, first).map((p) => `${p.field}: ${p.reason}`);
  if (problems.length > first) shown.push(`and ${problems.length - first} more`);
  return shown.join('; ');
}
