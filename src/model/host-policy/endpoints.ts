// model/host-policy/endpoints: what rule selectors pick, cluster-wide: pods (grouped by namespace
// and labels, with their status.podIPs) and host endpoints (explicit ones, and every node's
// automatic one with the node's labels and addresses), and the selector -> addresses resolution
// compile.ts turns into address sets.

import type { V1Namespace, V1Node, V1Pod } from '@kubernetes/client-node';
import { parseIp } from '../../bpf/ip.js';
import { LabelIndex } from './label-index.js';
import { matches, type Labels, type Selector } from './selector.js';
import { PROFILE_DEFAULT_ALLOW, type ValidHostEndpoint } from './validate.js';

/** The label Calico puts on a pod for its namespace (selectors may name it). */
export const LABEL_CALICO_NAMESPACE = 'projectcalico.org/namespace';
/** The label Calico's kube-controllers put on automatic host endpoints. */
export const LABEL_CREATED_BY = 'projectcalico.org/created-by';

/** A named port of an endpoint (a pod's container port, a HostEndpoint's spec.ports entry). */
export interface NamedPort {
  name: string;
  protocol: number;
  port: number;
}

/** Pods with the same namespace, labels and named ports: one selector test for all of them. */
export interface PodGroup {
  labels: Labels;
  namespace: string;
  namedPorts: NamedPort[];
  ips: string[];
}

export interface AddressUniverse {
  podGroups: PodGroup[];
  namespaceLabels: Map<string, Labels>;
  hostEndpoints: ValidHostEndpoint[];
  /** podGroups' labels, indexed: a selector tests only the groups that can match */
  podIndex: LabelIndex;
}

interface ParsedPod {
  key: string;
  namespace: string;
  labels: Labels;
  namedPorts: NamedPort[];
  ips: string[];
}

const PROTOCOLS: Readonly<Record<string, number>> = { TCP: 6, UDP: 17, SCTP: 132 };

function podNamedPorts(p: V1Pod): NamedPort[] {
  const out: NamedPort[] = [];
  for (const c of p.spec?.containers ?? [])
    for (const cp of c?.ports ?? []) {
      const protocol = PROTOCOLS[cp?.protocol ?? 'TCP'];
      if (typeof cp?.name === 'string' && cp.name !== '' && protocol !== undefined && Number.isInteger(cp.containerPort))
        out.push({ name: cp.name, protocol, port: cp.containerPort });
    }
  return out;
}

// pods are replaced, not mutated, on change (the store's contract): parse each object once
const podCache = new WeakMap<V1Pod, ParsedPod | null>();

function parsePod(p: V1Pod): ParsedPod | null {
  // host-network pods share the node's addresses and are no endpoints of their own (Calico too)
  if (p.spec?.hostNetwork === true || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') return null;
  const raw = Array.isArray(p.status?.podIPs) && p.status.podIPs.length > 0 ? p.status.podIPs.map((x) => x?.ip) : [p.status?.podIP];
  const ips: string[] = [];
  for (const r of raw) {
    const ip = parseIp(r);
    if (ip && !ips.includes(ip.address)) ips.push(ip.address);
  }
  if (ips.length === 0) return null;
  const namespace = p.metadata?.namespace || 'default';
  const labels: Record<string, string> = { ...(p.metadata?.labels ?? {}), [LABEL_CALICO_NAMESPACE]: namespace };
  const sorted = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join('\u0000');
  const namedPorts = podNamedPorts(p);
  const portsKey = namedPorts.map((n) => `${n.name}/${n.protocol}/${n.port}`).join(',');
  return { key: `${namespace}\u0001${sorted}\u0001${portsKey}`, namespace, labels, namedPorts, ips };
}

/** A node's automatic host endpoint (Calico kube-controllers' `<node>-auto-hep`). */
export function autoHostEndpoint(node: V1Node): ValidHostEndpoint | null {
  const name = node.metadata?.name;
  if (typeof name !== 'string' || name === '') return null;
  const expectedIPs: string[] = [];
  for (const a of node.status?.addresses ?? []) {
    if (a?.type !== 'InternalIP' && a?.type !== 'ExternalIP') continue;
    const ip = parseIp(a.address);
    if (ip && !expectedIPs.includes(ip.address)) expectedIPs.push(ip.address);
  }
  return {
    name: `${name}-auto-hep`,
    node: name,
    interfaceName: '*',
    expectedIPs,
    profiles: [PROFILE_DEFAULT_ALLOW],
    labels: { ...(node.metadata?.labels ?? {}), [LABEL_CREATED_BY]: 'calico-kube-controllers' },
    ports: [],
  };
}

export function buildUniverse(pods: Iterable<V1Pod>, namespaces: Iterable<V1Namespace>, hostEndpoints: ValidHostEndpoint[]): AddressUniverse {
  const groups = new Map<string, PodGroup>();
  for (const p of pods) {
    let parsed = podCache.get(p);
    if (parsed === undefined) {
      parsed = parsePod(p);
      podCache.set(p, parsed);
    }
    if (!parsed) continue;
    const g = groups.get(parsed.key);
    if (g) g.ips.push(...parsed.ips);
    else groups.set(parsed.key, { labels: parsed.labels, namespace: parsed.namespace, namedPorts: parsed.namedPorts, ips: [...parsed.ips] });
  }
  const namespaceLabels = new Map<string, Labels>();
  for (const ns of namespaces) {
    const name = ns.metadata?.name;
    if (name) namespaceLabels.set(name, { 'kubernetes.io/metadata.name': name, ...(ns.metadata?.labels ?? {}) });
  }
  const podGroups = [...groups.values()];
  return { podGroups, namespaceLabels, hostEndpoints, podIndex: new LabelIndex(podGroups.map((g) => g.labels)) };
}

const NO_LABELS: Labels = {};

/**
 * Calls `visit` with the addresses and named ports of every pod group and host endpoint a rule's
 * selector and namespaceSelector pick. A namespaceSelector limits the selector to pods of the
 * namespaces it matches; it picks host endpoints (not namespaced) only through global() (Calico:
 * `global()` in namespaceSelector). No selector with a namespaceSelector = every pod of those
 * namespaces; neither = every endpoint.
 */
export function forEachSelected(
  u: AddressUniverse,
  selector: Selector | undefined,
  namespaceSelector: Selector | undefined,
  visit: (ips: readonly string[], namedPorts: readonly NamedPort[]) => void,
): void {
  const nsMatch = new Map<string, boolean>();
  const inNamespace = (ns: string): boolean => {
    let ok = nsMatch.get(ns);
    if (ok === undefined) {
      ok = matches(namespaceSelector!, u.namespaceLabels.get(ns) ?? { 'kubernetes.io/metadata.name': ns }, false);
      nsMatch.set(ns, ok);
    }
    return ok;
  };
  const visitGroup = (g: PodGroup): void => {
    if (selector && !matches(selector, g.labels, false)) return;
    if (namespaceSelector && !inNamespace(g.namespace)) return;
    visit(g.ips, g.namedPorts);
  };
  const candidates = selector ? u.podIndex.candidates(selector.root) : undefined;
  if (candidates) for (const i of candidates) visitGroup(u.podGroups[i]!);
  else for (const g of u.podGroups) visitGroup(g);
  const hepsToo = !namespaceSelector || (namespaceSelector.usesGlobal && matches(namespaceSelector, NO_LABELS, true));
  if (hepsToo)
    for (const h of u.hostEndpoints) {
      if (selector && !matches(selector, h.labels, true)) continue;
      visit(h.expectedIPs, h.ports);
    }
}

/** The addresses of the pods and host endpoints a rule's selector and namespaceSelector pick. */
export function resolveAddresses(u: AddressUniverse, selector: Selector | undefined, namespaceSelector: Selector | undefined): string[] {
  const out: string[] = [];
  forEachSelected(u, selector, namespaceSelector, (ips) => out.push(...ips));
  return out;
}

/** A named port resolved over the endpoints picked: "protocol/port" -> the addresses of the endpoints that name it so. */
export function resolveNamedPort(
  u: AddressUniverse,
  selector: Selector | undefined,
  namespaceSelector: Selector | undefined,
  name: string,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  forEachSelected(u, selector, namespaceSelector, (ips, namedPorts) => {
    for (const np of namedPorts) {
      if (np.name !== name) continue;
      const k = `${np.protocol}/${np.port}`;
      const list = out.get(k);
      if (list) list.push(...ips);
      else out.set(k, [...ips]);
    }
  });
  return out;
}
