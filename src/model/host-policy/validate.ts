// model/host-policy/validate: a GlobalNetworkPolicy or HostEndpoint as the sources store it (a
// plain object) -> a typed, checked object, or the list of what is wrong with it (Calico's API
// validation and CEL rules, libcalico-go lib/validator/v3 and api/.../v3/globalnetworkpolicy.go).
// compile.ts reads only what passed; what did not goes to plan.errors.

import { parseCidr, parseIp, protocolNumber, type IpFamily } from '../../bpf/ip.js';
import { parseSelector, type Selector } from './selector.js';
import type { CalicoAction } from './types.js';

/** Tier orders Calico gives its built-in tiers (api/.../v3/tier.go) and their default actions. */
export const TIER_DEFAULT = 'default';
export const KNOWN_TIERS: ReadonlyMap<string, { order: number; defaultAction: 'Deny' | 'Pass' }> = new Map([
  ['kube-admin', { order: 1_000, defaultAction: 'Pass' as const }],
  ['default', { order: 1_000_000, defaultAction: 'Deny' as const }],
  ['kube-baseline', { order: 10_000_000, defaultAction: 'Pass' as const }],
]);

/** The profile that allows everything (what Calico gives automatic host endpoints). */
export const PROFILE_DEFAULT_ALLOW = 'projectcalico-default-allow';

const PORT_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 132]);
/** Calico's protocol names (case as Calico spells them; matched case-insensitively). */
const PROTOCOL_NAMES: ReadonlyMap<string, number> = new Map([
  ['tcp', 6],
  ['udp', 17],
  ['icmp', 1],
  ['icmpv6', 58],
  ['sctp', 132],
  ['udplite', 136],
]);

export interface PortRange {
  lo: number;
  hi: number;
}

export interface ValidEntityRule {
  /** canonical CIDRs (a bare address as /32 or /128) */
  nets: string[];
  notNets: string[];
  selector?: Selector;
  notSelector?: Selector;
  namespaceSelector?: Selector;
  /** numeric ports and ranges; with namedPorts empty too = any port */
  ports: PortRange[];
  /** named ports: resolved per endpoint (pods' container ports, HostEndpoints' spec.ports) by compile.ts */
  namedPorts: string[];
}

export interface ValidRule {
  /** index in the policy's ingress or egress list */
  index: number;
  action: CalicoAction;
  protocol?: number;
  /** the rule names addresses of one family only (nets, or ipVersion) */
  family?: IpFamily;
  source: ValidEntityRule;
  destination: ValidEntityRule;
}

export interface ValidPolicy {
  name: string;
  tier: string;
  /** +Infinity when absent (sorts last) */
  order: number;
  selector: Selector;
  ingressType: boolean;
  egressType: boolean;
  ingress: ValidRule[];
  egress: ValidRule[];
  applyOnForward: boolean;
  preDNAT: boolean;
  doNotTrack: boolean;
}

export interface ValidHostEndpoint {
  name: string;
  node: string;
  /** '' = none (expectedIPs pick the interface), '*' = every host interface */
  interfaceName: string;
  /** canonical addresses */
  expectedIPs: string[];
  profiles: string[];
  labels: Record<string, string>;
  ports: Array<{ name: string; protocol: number; port: number }>;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; name: string; errors: string[] };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nameOf(obj: unknown): string {
  const n = isObject(obj) && isObject(obj.metadata) ? obj.metadata.name : undefined;
  return typeof n === 'string' ? n : '';
}

function labelsOf(v: unknown, field: string, errors: string[]): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) {
    errors.push(`${field}: not a map`);
    return {};
  }
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === 'string') out[k] = x;
    else errors.push(`${field}[${k}]: not a string`);
  }
  return out;
}

function selectorOf(v: unknown, field: string, errors: string[]): Selector | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') {
    errors.push(`${field}: not a string`);
    return undefined;
  }
  const r = parseSelector(v);
  if (!r.ok) errors.push(`${field}: ${r.error}`);
  return r.ok ? r.selector : undefined;
}

/** Rule fields weir does not implement: rejected, since ignoring one would widen the rule. */
const UNSUPPORTED_RULE_FIELDS = ['notProtocol', 'icmp', 'notICMP', 'http', 'serviceAccounts', 'services'];
const UNSUPPORTED_ENTITY_FIELDS = ['notPorts', 'serviceAccounts', 'services'];

function entityOf(v: unknown, field: string, errors: string[]): ValidEntityRule {
  const e: ValidEntityRule = { nets: [], notNets: [], ports: [], namedPorts: [] };
  if (v === undefined || v === null) return e;
  if (!isObject(v)) {
    errors.push(`${field}: not an object`);
    return e;
  }
  for (const f of UNSUPPORTED_ENTITY_FIELDS) if (v[f] !== undefined) errors.push(`${field}.${f}: not supported by weir`);
  for (const key of ['nets', 'notNets'] as const) {
    const list = v[key];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      errors.push(`${field}.${key}: not a list`);
      continue;
    }
    for (const n of list) {
      const c = typeof n === 'string' ? (n.includes('/') ? parseCidr(n) : toHostCidr(n)) : null;
      if (!c) errors.push(`${field}.${key}: ${JSON.stringify(n)} is not a CIDR`);
      else e[key].push(`${c.address}/${c.prefix}`);
    }
  }
  const s = selectorOf(v.selector, `${field}.selector`, errors);
  if (s) e.selector = s;
  const ns = selectorOf(v.notSelector, `${field}.notSelector`, errors);
  if (ns) e.notSelector = ns;
  const nss = selectorOf(v.namespaceSelector, `${field}.namespaceSelector`, errors);
  if (nss) e.namespaceSelector = nss;
  const ports = v.ports;
  if (ports !== undefined && ports !== null) {
    if (!Array.isArray(ports)) errors.push(`${field}.ports: not a list`);
    else
      for (const p of ports) {
        const r = portOf(p);
        if (typeof r === 'string') errors.push(`${field}.ports: ${r}`);
        else if ('named' in r) e.namedPorts.push(r.named);
        else e.ports.push(r);
      }
  }
  return e;
}

function toHostCidr(ip: string): { address: string; prefix: number } | null {
  const p = parseIp(ip);
  return p ? { address: p.address, prefix: p.family === 4 ? 32 : 128 } : null;
}

/** An IANA service name, as Kubernetes container port names (validation.IsValidPortName). */
const PORT_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

function portOf(p: unknown): PortRange | { named: string } | string {
  if (typeof p === 'number') return Number.isInteger(p) && p >= 0 && p <= 65535 ? { lo: p, hi: p } : `${p} is not a port (0-65535)`;
  if (typeof p !== 'string') return `${JSON.stringify(p)} is not a port`;
  if (PORT_NAME.test(p) && !p.includes('--')) return { named: p };
  const m = /^([0-9]{1,5})(?::([0-9]{1,5}))?$/.exec(p.trim());
  if (!m) return `${JSON.stringify(p)} is not a port, a lo:hi range or a port name`;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535 || lo > hi) return `${JSON.stringify(p)} is not a port range (lo:hi, 0-65535, lo <= hi)`;
  return { lo, hi };
}

function familyOfCidr(c: string): IpFamily {
  return c.includes(':') ? 6 : 4;
}

function ruleOf(v: unknown, index: number, field: string, errors: string[]): ValidRule | null {
  if (!isObject(v)) {
    errors.push(`${field}: not an object`);
    return null;
  }
  const before = errors.length;
  for (const f of UNSUPPORTED_RULE_FIELDS) if (v[f] !== undefined) errors.push(`${field}.${f}: not supported by weir`);
  const action = v.action;
  if (action === 'Log') errors.push(`${field}.action: Log is not supported by weir`);
  else if (action !== 'Allow' && action !== 'Deny' && action !== 'Pass') errors.push(`${field}.action: ${JSON.stringify(action)} is not Allow, Deny or Pass`);
  let protocol: number | undefined;
  if (v.protocol !== undefined && v.protocol !== null) {
    const p = v.protocol;
    const n = typeof p === 'number' ? p : typeof p === 'string' ? (PROTOCOL_NAMES.get(p.toLowerCase()) ?? protocolNumber(p)) : undefined;
    if (n === undefined || !Number.isInteger(n) || n < 1 || n > 255)
      errors.push(`${field}.protocol: ${JSON.stringify(p)} is not TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255`);
    else protocol = n;
  }
  const source = entityOf(v.source, `${field}.source`, errors);
  const destination = entityOf(v.destination, `${field}.destination`, errors);
  if ((source.ports.length > 0 || destination.ports.length > 0) && (protocol === undefined || !PORT_PROTOCOLS.has(protocol)))
    errors.push(`${field}: ports need protocol TCP, UDP or SCTP`);
  if ((source.namedPorts.length > 0 || destination.namedPorts.length > 0) && protocol !== undefined && !PORT_PROTOCOLS.has(protocol))
    errors.push(`${field}: named ports need protocol TCP, UDP, SCTP or none`);
  const nets = [...source.nets, ...source.notNets, ...destination.nets, ...destination.notNets];
  const families = new Set(nets.map(familyOfCidr));
  if (families.size > 1) errors.push(`${field}: nets mix IPv4 and IPv6`);
  let family: IpFamily | undefined = families.size === 1 ? [...families][0] : undefined;
  if (v.ipVersion !== undefined && v.ipVersion !== null) {
    if (v.ipVersion !== 4 && v.ipVersion !== 6) errors.push(`${field}.ipVersion: ${JSON.stringify(v.ipVersion)} is not 4 or 6`);
    else if (family !== undefined && family !== v.ipVersion) errors.push(`${field}.ipVersion: ${v.ipVersion} but the nets are IPv${family}`);
    else family = v.ipVersion;
  }
  if (errors.length > before) return null;
  const rule: ValidRule = { index, action: action as CalicoAction, source, destination };
  if (protocol !== undefined) rule.protocol = protocol;
  if (family !== undefined) rule.family = family;
  return rule;
}

function rulesOf(v: unknown, field: string, errors: string[]): ValidRule[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    errors.push(`${field}: not a list`);
    return [];
  }
  const out: ValidRule[] = [];
  v.forEach((r, i) => {
    const rule = ruleOf(r, i, `${field}[${i}]`, errors);
    if (rule) out.push(rule);
  });
  return out;
}

/** A GlobalNetworkPolicy object -> ValidPolicy, or every problem found (the whole object is refused, as the API server would). */
export function validateGlobalNetworkPolicy(obj: unknown): Validated<ValidPolicy> {
  const name = nameOf(obj);
  const errors: string[] = [];
  if (name === '') errors.push('metadata.name: missing');
  const spec = isObject(obj) ? obj.spec : undefined;
  if (!isObject(spec)) return { ok: false, name, errors: [...errors, 'spec: missing or not an object'] };
  let tier = TIER_DEFAULT;
  if (spec.tier !== undefined && spec.tier !== null && spec.tier !== '') {
    if (typeof spec.tier !== 'string') errors.push('spec.tier: not a string');
    else tier = spec.tier;
  }
  let order = Infinity;
  if (spec.order !== undefined && spec.order !== null) {
    if (typeof spec.order !== 'number' || !Number.isFinite(spec.order)) errors.push(`spec.order: ${JSON.stringify(spec.order)} is not a number`);
    else order = spec.order;
  }
  const sel = spec.selector === undefined || spec.selector === null ? parseSelector('') : parseSelector(String(spec.selector));
  if (typeof spec.selector !== 'string' && spec.selector !== undefined && spec.selector !== null) errors.push('spec.selector: not a string');
  if (!sel.ok) errors.push(`spec.selector: ${sel.error}`);
  const ingress = rulesOf(spec.ingress, 'spec.ingress', errors);
  const egress = rulesOf(spec.egress, 'spec.egress', errors);
  const hasIngress = Array.isArray(spec.ingress) && spec.ingress.length > 0;
  const hasEgress = Array.isArray(spec.egress) && spec.egress.length > 0;
  let ingressType: boolean;
  let egressType: boolean;
  if (spec.types === undefined || spec.types === null || (Array.isArray(spec.types) && spec.types.length === 0)) {
    // Calico's defaulting (api/pkg/defaults/networkpolicy.go): egress rules only -> Egress; else Ingress, plus Egress with egress rules
    ingressType = hasIngress || !hasEgress;
    egressType = hasEgress;
  } else if (!Array.isArray(spec.types) || spec.types.some((t) => t !== 'Ingress' && t !== 'Egress')) {
    errors.push(`spec.types: ${JSON.stringify(spec.types)} is not a list of Ingress / Egress`);
    ingressType = egressType = false;
  } else {
    ingressType = spec.types.includes('Ingress');
    egressType = spec.types.includes('Egress');
  }
  const flag = (k: string): boolean => {
    const v = spec[k];
    if (v !== undefined && v !== null && typeof v !== 'boolean') errors.push(`spec.${k}: not a boolean`);
    return v === true;
  };
  const applyOnForward = flag('applyOnForward');
  const preDNAT = flag('preDNAT');
  const doNotTrack = flag('doNotTrack');
  if (preDNAT && doNotTrack) errors.push('spec: preDNAT and doNotTrack cannot both be true');
  if (preDNAT && hasEgress) errors.push('spec.egress: a preDNAT policy cannot have egress rules');
  if (preDNAT && Array.isArray(spec.types) && spec.types.includes('Egress')) errors.push('spec.types: a preDNAT policy cannot have the Egress type');
  if ((preDNAT || doNotTrack) && !applyOnForward) errors.push('spec.applyOnForward: must be true for preDNAT and doNotTrack policies');
  if (errors.length > 0 || !sel.ok) return { ok: false, name, errors };
  return { ok: true, value: { name, tier, order, selector: sel.selector, ingressType, egressType, ingress, egress, applyOnForward, preDNAT, doNotTrack } };
}

/** A HostEndpoint object -> ValidHostEndpoint, or every problem found. */
export function validateHostEndpoint(obj: unknown): Validated<ValidHostEndpoint> {
  const name = nameOf(obj);
  const errors: string[] = [];
  if (name === '') errors.push('metadata.name: missing');
  const labels = labelsOf(isObject(obj) && isObject(obj.metadata) ? obj.metadata.labels : undefined, 'metadata.labels', errors);
  const spec = isObject(obj) ? obj.spec : undefined;
  if (!isObject(spec)) return { ok: false, name, errors: [...errors, 'spec: missing or not an object'] };
  if (typeof spec.node !== 'string' || spec.node === '') errors.push('spec.node: missing');
  let interfaceName = '';
  if (spec.interfaceName !== undefined && spec.interfaceName !== null) {
    if (typeof spec.interfaceName !== 'string') errors.push('spec.interfaceName: not a string');
    else interfaceName = spec.interfaceName;
  }
  const expectedIPs: string[] = [];
  if (spec.expectedIPs !== undefined && spec.expectedIPs !== null) {
    if (!Array.isArray(spec.expectedIPs)) errors.push('spec.expectedIPs: not a list');
    else
      for (const ip of spec.expectedIPs) {
        const p = parseIp(ip);
        if (!p) errors.push(`spec.expectedIPs: ${JSON.stringify(ip)} is not an IP address`);
        else if (!expectedIPs.includes(p.address)) expectedIPs.push(p.address);
      }
  }
  if (interfaceName === '' && expectedIPs.length === 0) errors.push('spec: needs interfaceName or expectedIPs');
  const profiles: string[] = [];
  if (spec.profiles !== undefined && spec.profiles !== null) {
    if (!Array.isArray(spec.profiles) || spec.profiles.some((p) => typeof p !== 'string')) errors.push('spec.profiles: not a list of names');
    else profiles.push(...(spec.profiles as string[]));
  }
  const ports: ValidHostEndpoint['ports'] = [];
  if (spec.ports !== undefined && spec.ports !== null) {
    if (!Array.isArray(spec.ports)) errors.push('spec.ports: not a list');
    else
      spec.ports.forEach((p: unknown, i) => {
        const proto = isObject(p) && typeof p.protocol === 'string' ? PROTOCOL_NAMES.get(p.protocol.toLowerCase()) : undefined;
        if (!isObject(p) || typeof p.name !== 'string' || p.name === '') errors.push(`spec.ports[${i}]: needs a name`);
        else if (proto === undefined || !PORT_PROTOCOLS.has(proto)) errors.push(`spec.ports[${i}].protocol: not TCP, UDP or SCTP`);
        else if (typeof p.port !== 'number' || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) errors.push(`spec.ports[${i}].port: not 1-65535`);
        else ports.push({ name: p.name, protocol: proto, port: p.port });
      });
  }
  if (errors.length > 0) return { ok: false, name, errors };
  return { ok: true, value: { name, node: spec.node as string, interfaceName, expectedIPs, profiles, labels, ports } };
}
