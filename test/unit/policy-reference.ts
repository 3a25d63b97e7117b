// A NetworkPolicy reference evaluator written straight from the spec (kubernetes.io network-policies
// docs + the networking.k8s.io/v1 API reference), sharing no code with src/model/policy: it walks the
// raw objects for every question (no identities, no keys, no ipcache). The differential tests hold the
// model (and later the BPF programs through BPF_PROG_TEST_RUN) against it. Valid input only: what the
// API server would reject is the model's business (reported and failing closed), not the spec's.

import type { V1LabelSelector, V1Namespace, V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort, V1Pod } from '@kubernetes/client-node';

export interface RefCluster {
  policies: V1NetworkPolicy[];
  pods: V1Pod[];
  namespaces: V1Namespace[];
  /** node name -> every address of the node (InternalIP and the rest), for "a pod and its own node always talk" */
  nodeAddresses?: Record<string, string[]>;
}

export type RefParty = { pod: string } | { ip: string };

/** An address as (family, integer); written here again on purpose (no shared parser with the model). */
function ipValue(ip: string): { v6: boolean; value: bigint } {
  if (!ip.includes(':')) return { v6: false, value: ip.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n) };
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return { v6: true, value: groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

function inCidr(ip: string, cidr: string): boolean {
  const [net, len] = cidr.split('/') as [string, string];
  const a = ipValue(ip);
  const n = ipValue(net);
  if (a.v6 !== n.v6) return false;
  const shift = BigInt((a.v6 ? 128 : 32) - Number(len));
  return a.value >> shift === n.value >> shift;
}

function selects(sel: V1LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]!);
    if (e.operator === 'In' && !inValues) return false;
    if (e.operator === 'NotIn' && inValues) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

interface Party {
  pod: V1Pod | null;
  ip: string;
}

function nsLabels(c: RefCluster, ns: string): Record<string, string> {
  const o = c.namespaces.find((n) => n.metadata?.name === ns);
  return { ...(o?.metadata?.labels ?? {}), 'kubernetes.io/metadata.name': ns };
}

function peerMatches(c: RefCluster, policyNs: string, peer: V1NetworkPolicyPeer, p: Party): boolean {
  if (peer.ipBlock) return inCidr(p.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((e) => inCidr(p.ip, e));
  if (!p.pod) return false;
  const ns = p.pod.metadata!.namespace!;
  if (peer.namespaceSelector ? !selects(peer.namespaceSelector, nsLabels(c, ns)) : ns !== policyNs) return false;
  return !peer.podSelector || selects(peer.podSelector, p.pod.metadata!.labels ?? {});
}

function portMatches(ports: V1NetworkPolicyPort[] | undefined, dst: Party, proto: string, port: number): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((pp) => {
    if ((pp.protocol ?? 'TCP') !== proto) return false;
    if (pp.port === undefined) return true;
    if (typeof pp.port === 'number') return port >= pp.port && port <= (pp.endPort ?? pp.port);
    // a named port: the destination pod's container port of that name and protocol
    if (!dst.pod) return false;
    return (dst.pod.spec?.containers ?? []).some((ct) =>
      (ct.ports ?? []).some((cp) => cp.name === pp.port && (cp.protocol ?? 'TCP') === proto && cp.containerPort === port),
    );
  });
}

function types(np: V1NetworkPolicy): string[] {
  const t = np.spec?.policyTypes;
  if (t && t.length > 0) return t;
  return (np.spec?.egress ?? []).length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

function side(c: RefCluster, self: V1Pod, dir: 'Ingress' | 'Egress', other: Party, dst: Party, proto: string, port: number): boolean {
  // "traffic to and from the node where a Pod is running is always allowed, regardless of the IP address of the Pod or the node"
  if (!other.pod && (c.nodeAddresses?.[self.spec?.nodeName ?? ''] ?? []).includes(other.ip)) return true;
  const ns = self.metadata!.namespace!;
  const mine = c.policies.filter(
    (np) => np.metadata?.namespace === ns && types(np).includes(dir) && selects(np.spec?.podSelector ?? {}, self.metadata!.labels ?? {}),
  );
  if (mine.length === 0) return true;
  return mine.some((np) => {
    const rules = dir === 'Ingress' ? (np.spec?.ingress ?? []) : (np.spec?.egress ?? []);
    return rules.some((r) => {
      const peers = dir === 'Ingress' ? (r as { from?: V1NetworkPolicyPeer[] }).from : (r as { to?: V1NetworkPolicyPeer[] }).to;
      const peerOk = !peers || peers.length === 0 || peers.some((pe) => peerMatches(c, ns, pe, other));
      return peerOk && portMatches(r.ports, dst, proto, port);
    });
  });
}

function ipsOf(p: V1Pod): string[] {
  return (p.status?.podIPs ?? []).map((x) => x.ip).concat(p.status?.podIP ?? []);
}

/** A side; a pod given by name talks with its address of `v6`'s family (the family of the other side). */
function party(c: RefCluster, p: RefParty, v6: boolean): Party {
  if ('pod' in p) {
    const pod = c.pods.find((x) => `${x.metadata?.namespace}/${x.metadata?.name}` === p.pod)!;
    return { pod, ip: ipsOf(pod).find((ip) => ip.includes(':') === v6) ?? pod.status!.podIP! };
  }
  return { pod: c.pods.find((x) => ipsOf(x).includes(p.ip)) ?? null, ip: p.ip };
}

/** Each half of the question "may src open a connection to dst on proto/port?": null where that side is no pod. */
export function referenceSides(c: RefCluster, src: RefParty, dst: RefParty, proto: string, port: number): { egress: boolean | null; ingress: boolean | null } {
  const given = 'ip' in src ? src.ip : 'ip' in dst ? dst.ip : '';
  const v6 = given.includes(':');
  const s = party(c, src, v6);
  const d = party(c, dst, v6);
  return {
    egress: s.pod ? side(c, s.pod, 'Egress', d, d, proto, port) : null,
    ingress: d.pod ? side(c, d.pod, 'Ingress', s, d, proto, port) : null,
  };
}

/** May src open a connection to dst on proto/port? Egress of the source pod AND ingress of the destination pod. */
export function referenceAllowed(c: RefCluster, src: RefParty, dst: RefParty, proto: string, port: number): boolean {
  const r = referenceSides(c, src, dst, proto, port);
  return r.egress !== false && r.ingress !== false;
}
