// sources/validate-calico: the structural check of Calico's projectcalico.org/v3 objects before
// the store keeps them (sources/validate.ts calls it): names, shapes and sizes only, so a
// hostile object cannot make the model walk a million rules or log a 200,000-character
// selector. What the fields mean (actions, selectors, nets, ports) is the model's check
// (model/host-policy/validate.ts), which names the object and field in the plan's errors.

import { annotationProblems, dns1123Subdomain, labelProblems } from '../model/k8s-names.js';
import type { FieldProblem } from '../model/validate.js';
import { OBJECT_MAX_LIST } from '../model/validate-object.js';

/** A selector or a net is text the model parses; Calico's own selectors are far shorter. */
export const CALICO_MAX_STRING = 4096;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `v` at `field` must be absent or a string of at most CALICO_MAX_STRING characters. */
function str(v: unknown, field: string, out: FieldProblem[], required = false): void {
  if (v === undefined || v === null) {
    if (required) out.push({ field, reason: 'required' });
    return;
  }
  if (typeof v !== 'string') out.push({ field, reason: 'not a string' });
  else if (v.length > CALICO_MAX_STRING) out.push({ field, reason: `${v.length} characters, more than ${CALICO_MAX_STRING}` });
}

/** `v` must be absent or a list of at most OBJECT_MAX_LIST items, each passing `item`. */
function list(v: unknown, field: string, out: FieldProblem[], item: (x: unknown, field: string) => void): void {
  if (v === undefined || v === null) return;
  if (!Array.isArray(v)) {
    out.push({ field, reason: 'not a list' });
    return;
  }
  if (v.length > OBJECT_MAX_LIST) {
    out.push({ field, reason: `${v.length} items, more than ${OBJECT_MAX_LIST}` });
    return;
  }
  v.forEach((x, i) => item(x, `${field}[${i}]`));
}

/** a port: a number, or a string ("80", "1000:2000", a named port) */
function port(v: unknown, field: string, out: FieldProblem[]): void {
  if (typeof v === 'number') return;
  str(v, field, out, true);
}

function entity(v: unknown, field: string, out: FieldProblem[]): void {
  if (v === undefined || v === null) return;
  if (!isObj(v)) return void out.push({ field, reason: 'not an object' });
  for (const f of ['selector', 'notSelector', 'namespaceSelector'] as const) str(v[f], `${field}.${f}`, out);
  for (const f of ['nets', 'notNets'] as const) list(v[f], `${field}.${f}`, out, (x, at) => str(x, at, out, true));
  for (const f of ['ports', 'notPorts'] as const) list(v[f], `${field}.${f}`, out, (x, at) => port(x, at, out));
}

function rule(v: unknown, field: string, out: FieldProblem[]): void {
  if (!isObj(v)) return void out.push({ field, reason: 'not an object' });
  str(v.action, `${field}.action`, out, true);
  if (typeof v.protocol !== 'number') str(v.protocol, `${field}.protocol`, out);
  entity(v.source, `${field}.source`, out);
  entity(v.destination, `${field}.destination`, out);
}

function gnpSpec(spec: Obj, out: FieldProblem[]): void {
  str(spec.tier, 'spec.tier', out);
  str(spec.selector, 'spec.selector', out);
  if (spec.order !== undefined && spec.order !== null && typeof spec.order !== 'number') out.push({ field: 'spec.order', reason: 'not a number' });
  list(spec.types, 'spec.types', out, (x, at) => str(x, at, out, true));
  for (const dir of ['ingress', 'egress'] as const) list(spec[dir], `spec.${dir}`, out, (x, at) => rule(x, at, out));
  for (const f of ['applyOnForward', 'preDNAT', 'doNotTrack'] as const) {
    if (spec[f] !== undefined && spec[f] !== null && typeof spec[f] !== 'boolean') out.push({ field: `spec.${f}`, reason: 'not a boolean' });
  }
}

function hepSpec(spec: Obj, out: FieldProblem[]): void {
  str(spec.node, 'spec.node', out, true);
  str(spec.interfaceName, 'spec.interfaceName', out);
  list(spec.expectedIPs, 'spec.expectedIPs', out, (x, at) => str(x, at, out, true));
  list(spec.profiles, 'spec.profiles', out, (x, at) => str(x, at, out, true));
  list(spec.ports, 'spec.ports', out, (x, at) => {
    if (!isObj(x)) return void out.push({ field: at, reason: 'not an object' });
    str(x.name, `${at}.name`, out, true);
    str(x.protocol, `${at}.protocol`, out, true);
    if (typeof x.port !== 'number') out.push({ field: `${at}.port`, reason: 'not a number' });
  });
}

/** What is structurally wrong with a GlobalNetworkPolicy or HostEndpoint; [] when the store may keep it. */
export function calicoProblems(kind: 'GlobalNetworkPolicy' | 'HostEndpoint', obj: unknown): FieldProblem[] {
  const out: FieldProblem[] = [];
  const o = isObj(obj) ? obj : {};
  const meta = isObj(o.metadata) ? o.metadata : {};
  // Calico's names are DNS-1123 subdomains (a GlobalNetworkPolicy of a tier is `<tier>.<name>`)
  const name = dns1123Subdomain(meta.name);
  if (name !== null) out.push({ field: 'metadata.name', reason: name });
  for (const reason of labelProblems(meta.labels)) out.push({ field: 'metadata.labels', reason });
  for (const reason of annotationProblems(meta.annotations)) out.push({ field: 'metadata.annotations', reason });
  if (!isObj(o.spec)) {
    // the API server always stores one (defaulted); the model reads spec without asking
    out.push({ field: 'spec', reason: o.spec === undefined || o.spec === null ? 'required' : 'not an object' });
    return out;
  }
  if (kind === 'GlobalNetworkPolicy') gnpSpec(o.spec, out);
  else hepSpec(o.spec, out);
  return out;
}
