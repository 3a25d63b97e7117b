// cli/nodes: `weir nodes`, the other nodes as the forwarding stage sees them, read straight
// from the pinned weir_nodes4/6 (peers whose tunnel packets are accepted) and weir_tunnel4/6
// (pod prefixes on other nodes -> the node they are tunnelled to; weir_nodes6/weir_tunnel6
// where pinned): one row per peer with the pod CIDRs and endpoints of both families routed to
// it, and the prefixes routed to an address that is no peer. An IPv6 prefix tunnelled over the
// IPv4 underlay names its node v4-mapped (::ffff:a.b.c.d): it is listed under that IPv4 peer.

import type { Command } from 'commander';
import { enums } from '../bpf/index.js';
import { ipBytes, unmapIp4, type IpFamily } from '../bpf/ip.js';
import { familyName, nodeFlags } from './decode.js';
import { render, table } from './output.js';
import { common, withMap, type Common } from './services.js';
import { pinnedMapNames, type StateOptions } from './state.js';

export interface NodeRow {
  /** IPv4 or IPv6: the underlay family of the peer address (weir_nodes4 or weir_nodes6) */
  family: string;
  address: string;
  flags: string[];
  /** prefixes with WEIR_TUNNEL_POD_CIDR routed to this node, both families */
  podCIDRs: string[];
  /** the other prefixes routed to it, as addresses when they are /32s (/128s) */
  endpoints: string[];
}

export interface OrphanPrefix {
  /** IPv4 or IPv6: the family of the prefix (weir_tunnel4 or weir_tunnel6) */
  family: string;
  cidr: string;
  nodeIp: string;
  kind: 'podCIDR' | 'endpoint';
}

export interface NodesView {
  nodes: NodeRow[];
  orphanPrefixes: OrphanPrefix[];
}

/** One family's weir_nodes and weir_tunnel entries (the *4 and *6 maps decode to one shape). */
export interface FamilyNodeEntries {
  family: IpFamily;
  nodes: ReadonlyArray<[{ address: string }, { flags: number }]>;
  tunnel: ReadonlyArray<[{ prefixlen: number; address: string }, { node_ip: string; flags: number }]>;
}

const NODE_MAPS = {
  4: ['weir_nodes4', 'weir_node4_key', 'weir_node4', 'weir_tunnel4', 'weir_tunnel4_key', 'weir_tunnel4'],
  6: ['weir_nodes6', 'weir_node6_key', 'weir_node6', 'weir_tunnel6', 'weir_tunnel6_key', 'weir_tunnel6'],
} as const;

const familyOfText = (s: string): IpFamily => (s.includes(':') ? 6 : 4);

/** Address or `address/prefix` text: family, then address (numerically), then prefix length. */
function byAddress(a: string, b: string): number {
  const [aa, ap] = a.split('/');
  const [ba, bp] = b.split('/');
  return (
    familyOfText(aa!) - familyOfText(ba!) ||
    Buffer.compare(ipBytes(aa!) ?? Buffer.alloc(0), ipBytes(ba!) ?? Buffer.alloc(0)) ||
    Number(ap ?? 128) - Number(bp ?? 128)
  );
}

export function nodesViewOf(families: readonly FamilyNodeEntries[]): NodesView {
  const rows = new Map<string, NodeRow>();
  for (const f of families)
    for (const [k, v] of f.nodes)
      rows.set(k.address, { family: familyName(f.family), address: k.address, flags: nodeFlags(v.flags), podCIDRs: [], endpoints: [] });
  const orphanPrefixes: OrphanPrefix[] = [];
  for (const f of families)
    for (const [k, v] of f.tunnel) {
      const cidr = `${k.address}/${k.prefixlen}`;
      const podCIDR = (v.flags & enums.weir_tunnel_flags.WEIR_TUNNEL_POD_CIDR) !== 0;
      // an IPv4 underlay node in weir_tunnel6 is v4-mapped: the peer is in weir_nodes4
      const nodeIp = (f.family === 6 ? unmapIp4(v.node_ip) : null) ?? v.node_ip;
      const row = rows.get(nodeIp);
      if (!row) orphanPrefixes.push({ family: familyName(f.family), cidr, nodeIp, kind: podCIDR ? 'podCIDR' : 'endpoint' });
      else if (podCIDR) row.podCIDRs.push(cidr);
      else row.endpoints.push(k.prefixlen === (f.family === 4 ? 32 : 128) ? k.address : cidr);
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

/** The pinned maps of both families (IPv6 where from_pod6/from_host6 pinned them). */
export function nodesView(o: StateOptions): NodesView {
  const pinned = pinnedMapNames(o);
  const families = ([4, 6] as const)
    .filter((f) => f === 4 || (pinned.includes(NODE_MAPS[6][0]) && pinned.includes(NODE_MAPS[6][3])))
    .map((family): FamilyNodeEntries => {
      const [nodes, nodeKey, node, tunnel, tunnelKey, tunnelValue] = NODE_MAPS[family];
      return {
        family,
        nodes: withMap<{ address: string }, { flags: number }, FamilyNodeEntries['nodes']>(o, nodes, nodeKey, node, (e) => e),
        tunnel: withMap<{ prefixlen: number; address: string }, { node_ip: string; flags: number }, FamilyNodeEntries['tunnel']>(
          o,
          tunnel,
          tunnelKey,
          tunnelValue,
          (e) => e,
        ),
      };
    });
  return nodesViewOf(families);
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
      `${v.orphanPrefixes.length} prefix(es) routed to an address that is not a peer in weir_nodes4/6 (its tunnel packets are not accepted):`,
      table(v.orphanPrefixes, ['cidr', 'nodeIp', 'kind']),
    );
  return out.join('\n');
}

export function registerNodesCommand(program: Command): void {
  common(
    program.command('nodes').description('the other nodes (weir_nodes4/6) and the pod prefixes of both families tunnelled to each (weir_tunnel4/6)'),
  ).action((o: Common) => {
    const v = nodesView(o);
    process.stdout.write(`${render(o.output, v, () => nodesText(v))}\n`);
  });
}
