// cli/nodes: `weir nodes`, the other nodes as the forwarding stage sees them, read straight
// from the pinned weir_nodes4 (peers whose tunnel packets are accepted) and weir_tunnel4 (pod
// prefixes on other nodes -> the node they are tunnelled to): one row per peer with the pod
// CIDRs and endpoint /32s routed to it, and the prefixes routed to an address that is no peer.

import type { Command } from 'commander';
import { enums, type WeirNode4, type WeirNode4Key, type WeirTunnel4, type WeirTunnel4Key } from '../bpf/index.js';
import { ipBytes } from '../bpf/ip.js';
import { nodeFlags } from './decode.js';
import { json, table } from './output.js';
import { common, withMap, type Common } from './services.js';
import type { StateOptions } from './state.js';

export interface NodeRow {
  address: string;
  flags: string[];
  /** prefixes with WEIR_TUNNEL_POD_CIDR routed to this node */
  podCIDRs: string[];
  /** the other prefixes routed to it, as addresses when they are /32s */
  endpoints: string[];
}

export interface OrphanPrefix {
  cidr: string;
  nodeIp: string;
  kind: 'podCIDR' | 'endpoint';
}

export interface NodesView {
  nodes: NodeRow[];
  orphanPrefixes: OrphanPrefix[];
}

/** IPv4 text or `address/prefix` in numeric order (address, then prefix length). */
function byAddress(a: string, b: string): number {
  const [aa, ap] = a.split('/');
  const [ba, bp] = b.split('/');
  const c = Buffer.compare(ipBytes(aa!) ?? Buffer.alloc(0), ipBytes(ba!) ?? Buffer.alloc(0));
  return c !== 0 ? c : Number(ap ?? 32) - Number(bp ?? 32);
}

export function nodesViewOf(nodes: ReadonlyArray<[WeirNode4Key, WeirNode4]>, tunnel: ReadonlyArray<[WeirTunnel4Key, WeirTunnel4]>): NodesView {
  const rows = new Map<string, NodeRow>();
  for (const [k, v] of nodes) rows.set(k.address, { address: k.address, flags: nodeFlags(v.flags), podCIDRs: [], endpoints: [] });
  const orphanPrefixes: OrphanPrefix[] = [];
  for (const [k, v] of tunnel) {
    const cidr = `${k.address}/${k.prefixlen}`;
    const podCIDR = (v.flags & enums.weir_tunnel_flags.WEIR_TUNNEL_POD_CIDR) !== 0;
    const row = rows.get(v.node_ip);
    if (!row) orphanPrefixes.push({ cidr, nodeIp: v.node_ip, kind: podCIDR ? 'podCIDR' : 'endpoint' });
    else if (podCIDR) row.podCIDRs.push(cidr);
    else row.endpoints.push(k.prefixlen === 32 ? k.address : cidr);
  }
  for (const r of rows.values()) {
    r.podCIDRs.sort(byAddress);
    r.endpoints.sort(byAddress);
  }
  return {
    nodes: [...rows.values()].sort((a, b) => byAddress(a.address, b.address)),
    orphanPrefixes: orphanPrefixes.sort((a, b) => byAddress(a.cidr, b.cidr) || byAddress(a.nodeIp, b.nodeIp)),
  };
}

export function nodesView(o: StateOptions): NodesView {
  const nodes = withMap<WeirNode4Key, WeirNode4, Array<[WeirNode4Key, WeirNode4]>>(o, 'weir_nodes4', 'weir_node4_key', 'weir_node4', (e) => e);
  const tunnel = withMap<WeirTunnel4Key, WeirTunnel4, Array<[WeirTunnel4Key, WeirTunnel4]>>(o, 'weir_tunnel4', 'weir_tunnel4_key', 'weir_tunnel4', (e) => e);
  return nodesViewOf(nodes, tunnel);
}

/** A list for a table cell: all of it when short, else the first few and the count. */
function cell(items: string[], max = 4): string {
  if (items.length === 0) return '-';
  if (items.length <= max) return items.join(' ');
  return `${items.slice(0, max - 1).join(' ')} … (${items.length})`;
}

export function nodesText(v: NodesView): string {
  const out = [
    table(
      v.nodes.map((n) => ({ node: n.address, flags: n.flags.join(',') || '-', podCIDRs: cell(n.podCIDRs), endpoints: cell(n.endpoints) })),
      ['node', 'flags', 'podCIDRs', 'endpoints'],
    ),
  ];
  if (v.orphanPrefixes.length > 0)
    out.push(
      '',
      `${v.orphanPrefixes.length} prefix(es) routed to an address that is not a peer in weir_nodes4 (its tunnel packets are not accepted):`,
      table(v.orphanPrefixes, ['cidr', 'nodeIp', 'kind']),
    );
  return out.join('\n');
}

export function registerNodesCommand(program: Command): void {
  common(program.command('nodes').description('the other nodes (weir_nodes4) and the pod prefixes tunnelled to each (weir_tunnel4)')).action((o: Common) => {
    const v = nodesView(o);
    process.stdout.write(`${o.output === 'json' ? json(v) : nodesText(v)}\n`);
  });
}
