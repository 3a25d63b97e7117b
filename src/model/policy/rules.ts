// model/policy/rules: one NetworkPolicy object → its compiled form (selectors compiled, policyTypes
// defaulted, peers and ports validated), with what was rejected. No pods involved yet: this is the
// per-policy step, so a policy change recompiles one policy. network-policy.ts joins the result with pods.

import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { ipBytes, parseCidr, type ParsedCidr } from '../../bpf/ip.js';
import { isProtocol, isValidPort, type Protocol } from '../validate.js';
import { compileSelector, EVERYTHING, NOTHING, type Selector } from './selectors.js';

/** A peer that selects pods: by namespace name (a `podSelector` alone) or by namespace labels. */
export interface PodPeer {
  kind: 'pods';
  /** The policy's namespace when the peer has no namespaceSelector; null when it has one. */
  namespace: string | null;
  namespaceSelector: Selector;
  podSelector: Selector;
}

export interface IpBlockPeer {
  kind: 'ipBlock';
  cidr: ParsedCidr;
  except: ParsedCidr[];
}

export type Peer = PodPeer | IpBlockPeer;

/** A port match: a numeric range ([port, port] for one port, [0, 65535] for all), or a named port. */
export type PortMatch = { protocol: Protocol; kind: 'range'; port: number; endPort: number } | { protocol: Protocol; kind: 'named'; name: string };

export interface CompiledRule {
  /** Index in spec.ingress / spec.egress, for explain ("allowed by NAME ingress[1]"). */
  index: number;
  /** 'all' when `from`/`to` is absent or empty: every peer, pods and addresses alike. */
  peers: 'all' | Peer[];
  /** 'all' when `ports` is absent or empty: every protocol and port. */
  ports: 'all' | PortMatch[];
}

export interface CompiledPolicy {
  /** 'ns/name'. */
  key: string;
  namespace: string;
  name: string;
  podSelector: Selector;
  /** policyTypes (or its default): whether the policy isolates its pods for the direction. */
  ingress: boolean;
  egress: boolean;
  ingressRules: CompiledRule[];
  egressRules: CompiledRule[];
}

export type PolicyIssueReason =
  | 'no_name'
  | 'no_spec'
  | 'invalid_selector'
  | 'invalid_peer'
  | 'invalid_cidr'
  | 'invalid_port'
  | 'unknown_protocol'
  | 'unknown_policy_type'
  | 'named_port_to_ipblock';

/** Something in a NetworkPolicy that was left out, and why (a log line and a metric label). */
export interface PolicyIssue {
  policy: string;
  reason: PolicyIssueReason;
  field: string;
  detail: string;
}

const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

function list(v: unknown): unknown[] | null {
  return Array.isArray(v) ? v : null;
}

function cidrText(c: ParsedCidr): string {
  return `${c.address}/${c.prefix}`;
}

/** `inner` is a strict subset of `outer` (same family, longer prefix, inside). */
export function cidrStrictlyInside(inner: ParsedCidr, outer: ParsedCidr): boolean {
  return inner.family === outer.family && inner.prefix > outer.prefix && cidrCovers(outer, inner);
}

const cidrValues = new WeakMap<ParsedCidr, bigint>();

/** The network address as an integer (cached per parsed CIDR: select() compares every block with every prefix). */
function cidrValue(c: ParsedCidr): bigint {
  let v = cidrValues.get(c);
  if (v === undefined) {
    v = 0n;
    for (const b of ipBytes(c.address) ?? []) v = (v << 8n) | BigInt(b);
    cidrValues.set(c, v);
  }
  return v;
}

/** `outer` contains every address of `inner` (same family, prefix no longer). */
export function cidrCovers(outer: ParsedCidr, inner: ParsedCidr): boolean {
  if (outer.family !== inner.family || outer.prefix > inner.prefix) return false;
  const shift = BigInt((outer.family === 4 ? 32 : 128) - outer.prefix);
  return cidrValue(outer) >> shift === cidrValue(inner) >> shift;
}

type Report = (reason: PolicyIssueReason, field: string, detail: string) => void;

function compilePeer(p: unknown, field: string, namespace: string, report: Report): Peer | null {
  if (typeof p !== 'object' || p === null) return (void report('invalid_peer', field, 'not an object'), null);
  const { podSelector, namespaceSelector, ipBlock } = p as Record<string, unknown>;
  const hasPod = podSelector !== undefined && podSelector !== null;
  const hasNs = namespaceSelector !== undefined && namespaceSelector !== null;
  const hasIp = ipBlock !== undefined && ipBlock !== null;
  if (hasIp && (hasPod || hasNs)) return (void report('invalid_peer', field, 'ipBlock may not be combined with selectors'), null);
  if (hasIp) {
    const b = ipBlock as Record<string, unknown>;
    const cidr = parseCidr(b.cidr);
    if (!cidr) return (void report('invalid_cidr', `${field}.ipBlock.cidr`, `invalid CIDR ${JSON.stringify(b.cidr)}`), null);
    const except: ParsedCidr[] = [];
    const ex = b.except === undefined || b.except === null ? [] : list(b.except);
    if (!ex) return (void report('invalid_cidr', `${field}.ipBlock.except`, 'not a list'), null);
    for (const [i, e] of ex.entries()) {
      const c = parseCidr(e);
      // apimachinery's ValidateIPBlock: each except must parse and be a strict subset of cidr
      if (!c || !cidrStrictlyInside(c, cidr)) {
        const why = c ? `${JSON.stringify(e)} is not a strict subset of ${cidrText(cidr)}` : `invalid CIDR ${JSON.stringify(e)}`;
        return (void report('invalid_cidr', `${field}.ipBlock.except[${i}]`, why), null);
      }
      except.push(c);
    }
    return { kind: 'ipBlock', cidr, except };
  }
  if (!hasPod && !hasNs) return (void report('invalid_peer', field, 'a peer needs podSelector, namespaceSelector or ipBlock'), null);
  const pod = hasPod ? compileSelector(podSelector, `${field}.podSelector`) : { selector: EVERYTHING, problems: [] };
  const ns = hasNs ? compileSelector(namespaceSelector, `${field}.namespaceSelector`) : { selector: EVERYTHING, problems: [] };
  const problems = [...pod.problems, ...ns.problems];
  for (const pr of problems) report('invalid_selector', pr.field, pr.reason);
  if (problems.length > 0) return null;
  return { kind: 'pods', namespace: hasNs ? null : namespace, namespaceSelector: ns.selector, podSelector: pod.selector };
}

function compilePort(p: unknown, field: string, report: Report): PortMatch | null {
  if (typeof p !== 'object' || p === null) return (void report('invalid_port', field, 'not an object'), null);
  const { protocol: rawProto, port, endPort } = p as Record<string, unknown>;
  const protocol = rawProto === undefined || rawProto === null ? 'TCP' : rawProto;
  if (!isProtocol(protocol)) return (void report('unknown_protocol', `${field}.protocol`, `unsupported protocol ${JSON.stringify(rawProto)}`), null);
  const hasEnd = endPort !== undefined && endPort !== null;
  if (port === undefined || port === null) {
    if (hasEnd) return (void report('invalid_port', `${field}.endPort`, 'endPort without port'), null);
    return { protocol, kind: 'range', port: 0, endPort: 65535 };
  }
  if (typeof port === 'string') {
    if (hasEnd) return (void report('invalid_port', `${field}.endPort`, 'endPort with a named port'), null);
    if (!IANA_SVC_NAME.test(port)) return (void report('invalid_port', `${field}.port`, `invalid port name ${JSON.stringify(port)}`), null);
    return { protocol, kind: 'named', name: port };
  }
  if (!isValidPort(port)) return (void report('invalid_port', `${field}.port`, `invalid port ${JSON.stringify(port)}`), null);
  if (!hasEnd) return { protocol, kind: 'range', port, endPort: port };
  if (!isValidPort(endPort) || endPort < port)
    return (void report('invalid_port', `${field}.endPort`, `endPort ${JSON.stringify(endPort)} must be ${port}..65535`), null);
  return { protocol, kind: 'range', port, endPort };
}

function compileRules(raw: unknown, dir: 'ingress' | 'egress', namespace: string, report: Report): CompiledRule[] {
  const rules = list(raw) ?? [];
  const peerField = dir === 'ingress' ? 'from' : 'to';
  const out: CompiledRule[] = [];
  rules.forEach((r, index) => {
    const f = `spec.${dir}[${index}]`;
    const rule = typeof r === 'object' && r !== null ? (r as Record<string, unknown>) : {};
    // client-node's ObjectSerializer (the API source deserializes every object with it) names
    // the ingress rule's `from` `_from` (a reserved word in its generator): read either, or a
    // rule from the API would lose its peers and allow every one
    const rawPeers = list(rule[peerField] ?? (dir === 'ingress' ? rule._from : undefined));
    const rawPorts = list(rule.ports);
    // A bad entry is dropped, but a list that had entries never becomes "all": an empty result matches nothing.
    const peers: CompiledRule['peers'] =
      rawPeers === null || rawPeers.length === 0 ? 'all' : rawPeers.flatMap((p, i) => compilePeer(p, `${f}.${peerField}[${i}]`, namespace, report) ?? []);
    const ports: CompiledRule['ports'] =
      rawPorts === null || rawPorts.length === 0 ? 'all' : rawPorts.flatMap((p, i) => compilePort(p, `${f}.ports[${i}]`, report) ?? []);
    if (dir === 'egress' && peers !== 'all' && ports !== 'all' && peers.some((p) => p.kind === 'ipBlock') && ports.some((p) => p.kind === 'named'))
      report(
        'named_port_to_ipblock',
        f,
        'a named port resolves on destination pods: towards an ipBlock it matches only pods whose identity lies wholly inside the block',
      );
    out.push({ index, peers, ports });
  });
  return out;
}

/** Compile one NetworkPolicy. Never throws; `policy` is null only without a name or spec. */
export function compilePolicy(np: V1NetworkPolicy): { policy: CompiledPolicy | null; issues: PolicyIssue[] } {
  const namespace = np?.metadata?.namespace || 'default';
  const name = np?.metadata?.name;
  const key = `${namespace}/${name ?? ''}`;
  const issues: PolicyIssue[] = [];
  const report: Report = (reason, field, detail) => issues.push({ policy: key, reason, field, detail });
  if (typeof name !== 'string' || name === '') return (report('no_name', 'metadata.name', 'NetworkPolicy without a name'), { policy: null, issues });
  const spec = np.spec as Record<string, unknown> | undefined;
  if (typeof spec !== 'object' || spec === null) return (report('no_spec', 'spec', 'missing spec'), { policy: null, issues });
  // spec.podSelector is required by the API; an absent one serialises as {} (every pod of the namespace)
  const ps =
    spec.podSelector === undefined || spec.podSelector === null
      ? { selector: EVERYTHING, problems: [] }
      : compileSelector(spec.podSelector, 'spec.podSelector');
  for (const pr of ps.problems) report('invalid_selector', pr.field, `${pr.reason}; the policy selects no pod`);
  const podSelector = ps.problems.length > 0 ? NOTHING : ps.selector;
  const egressList = list(spec.egress) ?? [];
  let ingress = true;
  let egress = egressList.length > 0;
  const types = list(spec.policyTypes);
  if (types && types.length > 0) {
    ingress = types.includes('Ingress');
    egress = types.includes('Egress');
    types.forEach((t, i) => {
      if (t !== 'Ingress' && t !== 'Egress') report('unknown_policy_type', `spec.policyTypes[${i}]`, `unknown policy type ${JSON.stringify(t)}`);
    });
  }
  return {
    policy: {
      key,
      namespace,
      name,
      podSelector,
      ingress,
      egress,
      ingressRules: ingress ? compileRules(spec.ingress, 'ingress', namespace, report) : [],
      egressRules: egress ? compileRules(spec.egress, 'egress', namespace, report) : [],
    },
    issues,
  };
}
