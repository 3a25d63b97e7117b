// model/nodes: Node objects → plain node data (InternalIP per family, pod CIDRs, zone, the
// cluster autoscaler's deletion taint), and which node a backend runs on. Pure: what the node
// map (cross-node forwarding), the node health server and topology routing read.

import type { V1Node } from '@kubernetes/client-node';
import { canonicalIp, cidrContains, parseCidr, type IpFamily } from '../bpf/ip.js';

export const LABEL_ZONE = 'topology.kubernetes.io/zone';
/** The taint the cluster autoscaler puts on a node it is about to delete (kube-proxy's /livez and /healthz read it). */
export const TAINT_TO_BE_DELETED = 'ToBeDeletedByClusterAutoscaler';

export interface NodeInfo {
  name: string;
  /** The first `InternalIP` of each family in `status.addresses`, canonical; null when there is none. */
  internalIP: { 4: string | null; 6: string | null };
  /** `spec.podCIDRs` (else `spec.podCIDR`) as canonical `address/prefix`, host bits cleared, invalid ones left out. */
  podCIDRs: { family: IpFamily; cidr: string; prefix: number }[];
  /** The `topology.kubernetes.io/zone` label, '' when absent. */
  zone: string;
  /** Tainted ToBeDeletedByClusterAutoscaler (any effect). */
  toBeDeleted: boolean;
}

/** Something in a Node object that was left out, and why (for a log line and a metric). */
export interface NodeIssue {
  node: string;
  reason: 'no_name' | 'bad_address' | 'bad_pod_cidr' | 'no_internal_ip';
  detail: string;
}

/** The zone label of a Node object, '' when it has none (no topology filtering then). */
export function nodeZone(node: V1Node | undefined): string {
  const z = node?.metadata?.labels?.[LABEL_ZONE];
  return typeof z === 'string' ? z : '';
}

/** One Node object → NodeInfo (null without a name), with what was skipped. Never throws. */
export function nodeInfo(node: V1Node): { info: NodeInfo | null; issues: NodeIssue[] } {
  const name = node?.metadata?.name;
  if (typeof name !== 'string' || name === '') return { info: null, issues: [{ node: '', reason: 'no_name', detail: 'Node without metadata.name' }] };
  const issues: NodeIssue[] = [];
  const internalIP: NodeInfo['internalIP'] = { 4: null, 6: null };
  const addresses = Array.isArray(node.status?.addresses) ? node.status.addresses : [];
  for (const a of addresses) {
    if (a?.type !== 'InternalIP') continue;
    const v4 = canonicalIp(a.address, 4);
    const v6 = v4 === null ? canonicalIp(a.address, 6) : null;
    if (v4 !== null) internalIP[4] ??= v4;
    else if (v6 !== null) internalIP[6] ??= v6;
    else issues.push({ node: name, reason: 'bad_address', detail: `InternalIP ${JSON.stringify(a.address)}` });
  }
  if (internalIP[4] === null && internalIP[6] === null)
    issues.push({ node: name, reason: 'no_internal_ip', detail: 'no usable InternalIP in status.addresses' });
  const rawCidrs = Array.isArray(node.spec?.podCIDRs) && node.spec.podCIDRs.length > 0 ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
  const podCIDRs: NodeInfo['podCIDRs'] = [];
  for (const c of rawCidrs) {
    const p = parseCidr(c);
    if (!p) {
      issues.push({ node: name, reason: 'bad_pod_cidr', detail: `podCIDR ${JSON.stringify(c)}` });
      continue;
    }
    const cidr = `${p.address}/${p.prefix}`;
    if (!podCIDRs.some((x) => x.cidr === cidr)) podCIDRs.push({ family: p.family, cidr, prefix: p.prefix });
  }
  const taints = Array.isArray(node.spec?.taints) ? node.spec.taints : [];
  return {
    info: { name, internalIP, podCIDRs, zone: nodeZone(node), toBeDeleted: taints.some((t) => t?.key === TAINT_TO_BE_DELETED) },
    issues,
  };
}

/** Every node by name, and what was skipped. A duplicate name keeps the first. */
export interface NodeTable {
  nodes: Map<string, NodeInfo>;
  issues: NodeIssue[];
}

export function buildNodeTable(nodes: Iterable<V1Node>): NodeTable {
  const table: NodeTable = { nodes: new Map(), issues: [] };
  for (const n of nodes) {
    const { info, issues } = nodeInfo(n);
    table.issues.push(...issues);
    if (info && !table.nodes.has(info.name)) table.nodes.set(info.name, info);
  }
  return table;
}

/** How a backend's node was found. */
export type NodeSource = 'nodeName' | 'podCIDR';

/**
 * The node a backend runs on: the EndpointSlice endpoint's `nodeName` when set (even for a node
 * not in the table: the caller then has no address for it), else the node whose pod CIDR holds
 * the address (the longest prefix, then the first name, if CIDRs overlap). null when neither.
 */
export function backendNode(
  table: NodeTable,
  backend: { address: string; nodeName: string },
): { node: string; info: NodeInfo | null; source: NodeSource } | null {
  if (backend.nodeName !== '') return { node: backend.nodeName, info: table.nodes.get(backend.nodeName) ?? null, source: 'nodeName' };
  let best: NodeInfo | null = null;
  let bestPrefix = -1;
  for (const info of table.nodes.values()) {
    for (const c of info.podCIDRs) {
      if (c.prefix < bestPrefix || !cidrContains(c.cidr, backend.address)) continue;
      if (c.prefix === bestPrefix && best !== null && best.name <= info.name) continue;
      best = info;
      bestPrefix = c.prefix;
    }
  }
  return best ? { node: best.name, info: best, source: 'podCIDR' } : null;
}
