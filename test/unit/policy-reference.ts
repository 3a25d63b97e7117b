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
}

export type RefParty = { pod: string } | { ip: string };

function ipToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

/** IPv4 only: the generator stays in 198.18.0.0/15. */
function inCidr(ip: string, cidr: string): boolean {
  const [net, len] = cidr.split('/') as [string, string];
  const bits = Number(len);
  if (bits === 0) return true;
  const size = 2 ** (32 - bits);
  return Math.floor(ipToInt(ip) / size) === Math.floor(ipToInt(net) / size);
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

function party(c: RefCluster, p: RefParty): Party {
  if ('pod' in p) {
    const pod = c.pods.find((x) => `${x.metadata?.namespace}/${x.metadata?.name}` === p.pod)!;
    return { pod, ip: pod.status!.podIP! };
  }
  return { pod: c.pods.find((x) => x.status?.podIP === p.ip) ?? null, ip: p.ip };
}

/** May src open a connection to dst on proto/port? Egress of the source pod AND ingress of the destination pod. */
export function referenceAllowed(c: RefCluster, src: RefParty, dst: RefParty, proto: string, port: number): boolean {
  const s = party(c, src);
  const d = party(c, dst);
  if (s.pod && !side(c, s.pod, 'Egress', d, d, proto, port)) return false;
  if (d.pod && !side(c, d.pod, 'Ingress', s, d, proto, port)) return false;
  return true;
}
