// dataplane/node-maps: weir_nodes4 and weir_tunnel4 (bpf-c/include/weir/tunnel.h), the other
// nodes of the cluster as the forwarding stage sees them. Node objects and EndpointSlices in
// the store -> desiredNodeMaps (pure) -> NodeMapWriter (the least writes against a mirror of
// the pinned maps) -> the BPF, which encapsulates a flow to a remote backend to the node
// weir_tunnel4 names and decapsulates only from the addresses in weir_nodes4. The daemon's
// end, following store changes, is node-map-sync.ts.

import type { V1EndpointSlice } from '@kubernetes/client-node';
import { enums, type TypedMap, type WeirNode4, type WeirNode4Key, type WeirTunnel4, type WeirTunnel4Key } from '../bpf/index.js';
import { canonicalIp, parseCidr, parseIp4Octets } from '../bpf/ip.js';
import { LABEL_HEADLESS } from '../model/endpoints.js';
import type { NodeTable } from '../model/nodes.js';
import { type Logger, errText } from '../log.js';

export const NODE_PEER = enums.weir_node_flags.WEIR_NODE_PEER;
export const TUNNEL_POD_CIDR = enums.weir_tunnel_flags.WEIR_TUNNEL_POD_CIDR;
export const TUNNEL_ENDPOINT = enums.weir_tunnel_flags.WEIR_TUNNEL_ENDPOINT;

/** Where an EndpointSlice says one endpoint address runs ('' when it has no nodeName). */
export interface EndpointLocation {
  address: string;
  nodeName: string;
}

export interface TunnelTarget {
  nodeIp: string;
  flags: number;
}

/** Why something of the Node objects or EndpointSlices has no entry. */
export type NodeMapSkip =
  | 'node_no_ipv4' // another node without an IPv4 InternalIP (its pod CIDRs and endpoints get nothing)
  | 'node_same_address' // another node with this node's own IPv4 InternalIP
  | 'ipv6_pod_cidr' // no IPv6 maps yet
  | 'own_pod_cidr' // another node claims one of this node's pod CIDRs
  | 'pod_cidr_conflict' // two other nodes claim the same pod CIDR: the first name keeps it
  | 'ipv6_endpoint'
  | 'endpoint_local' // on this node: nothing to tunnel
  | 'endpoint_no_node_name'
  | 'endpoint_unknown_node'; // nodeName is no Node in the store

/** A conflict between objects, said once when it appears (weir_errors_total{kind="model"}). */
export interface NodeMapIssue {
  /** endpoint_conflict: two nodeNames for one address in different slices (the first name keeps it) */
  reason: 'node_same_address' | 'own_pod_cidr' | 'pod_cidr_conflict' | 'endpoint_conflict';
  detail: string;
}

export interface DesiredNodeMaps {
  /** peer IPv4 address -> weir_node4.flags */
  nodes: Map<string, number>;
  /** `address/prefix` (host bits cleared) -> where it is tunnelled */
  tunnel: Map<string, TunnelTarget>;
  skipped: Map<NodeMapSkip, number>;
  issues: NodeMapIssue[];
  /** endpoints of other nodes that get no entry because their node is unknown or has no IPv4 address */
  unplaced: EndpointLocation[];
}

/**
 * What weir_nodes4 and weir_tunnel4 should hold on node `thisNode`: every other node with an
 * IPv4 InternalIP is a peer; its IPv4 pod CIDRs route to it, and so does a /32 for each of
 * its endpoints outside them (nodeName is authoritative, even inside another node's CIDR).
 * Never an entry for this node's own pod CIDRs or endpoints. Deterministic whatever the order.
 */
export function desiredNodeMaps(table: NodeTable, thisNode: string, endpoints: Iterable<EndpointLocation>): DesiredNodeMaps {
  const out: DesiredNodeMaps = { nodes: new Map(), tunnel: new Map(), skipped: new Map(), issues: [], unplaced: [] };
  const skip = (r: NodeMapSkip) => out.skipped.set(r, (out.skipped.get(r) ?? 0) + 1);
  const self = table.nodes.get(thisNode);
  const ownCidrs = new Set((self?.podCIDRs ?? []).map((c) => c.cidr));
  const selfIp = self?.internalIP[4] ?? null;
  /** peers by name: only these get tunnel entries */
  const peers = new Map<string, { ip: string; cidrs: { net: number; mask: number }[] }>();
  for (const info of [...table.nodes.values()].sort((a, b) => cmp(a.name, b.name))) {
    if (info.name === thisNode) continue;
    const ip = info.internalIP[4];
    if (ip === null) {
      skip('node_no_ipv4');
      continue;
    }
    if (ip === selfIp) {
      skip('node_same_address');
      out.issues.push({ reason: 'node_same_address', detail: `node ${info.name} has this node's InternalIP ${ip}` });
      continue;
    }
    const peer = { ip, cidrs: [] as { net: number; mask: number }[] };
    peers.set(info.name, peer);
    out.nodes.set(ip, NODE_PEER);
    for (const c of info.podCIDRs) {
      if (c.family !== 4) {
        skip('ipv6_pod_cidr');
        continue;
      }
      if (ownCidrs.has(c.cidr)) {
        skip('own_pod_cidr');
        out.issues.push({ reason: 'own_pod_cidr', detail: `node ${info.name} claims ${c.cidr}, a pod CIDR of this node` });
        continue;
      }
      const held = out.tunnel.get(c.cidr);
      if (held) {
        skip('pod_cidr_conflict');
        out.issues.push({ reason: 'pod_cidr_conflict', detail: `node ${info.name} claims ${c.cidr}, already routed to ${held.nodeIp}` });
        continue;
      }
      out.tunnel.set(c.cidr, { nodeIp: ip, flags: TUNNEL_POD_CIDR });
      // as numbers: the endpoint loop below runs for every endpoint of the cluster
      const mask = c.prefix === 0 ? 0 : (~0 << (32 - c.prefix)) >>> 0;
      peer.cidrs.push({ net: ((ip4Number(c.cidr.slice(0, c.cidr.indexOf('/'))) ?? 0) & mask) >>> 0, mask });
    }
  }
  // address -> the node names the slices give it (a pod is in as many slices as services select it)
  const byAddress = new Map<string, Set<string>>();
  for (const e of endpoints) {
    let s = byAddress.get(e.address);
    if (!s) byAddress.set(e.address, (s = new Set()));
    s.add(e.nodeName);
  }
  for (const [address, names] of byAddress) {
    let nodeName = names.values().next().value!;
    if (names.size > 1) {
      // a slice without nodeName does not contradict one with it
      const sorted = [...names].filter((n) => n !== '').sort(cmp);
      nodeName = sorted[0]!;
      if (sorted.length > 1) out.issues.push({ reason: 'endpoint_conflict', detail: `endpoint ${address} is on ${sorted.join(' and ')} in different slices` });
    }
    const a = ip4Number(address);
    if (a === null) skip('ipv6_endpoint');
    else if (nodeName === '') skip('endpoint_no_node_name');
    else if (nodeName === thisNode) skip('endpoint_local');
    else {
      const peer = peers.get(nodeName);
      if (!peer) {
        skip('endpoint_unknown_node');
        out.unplaced.push({ address, nodeName });
      } else if (!peer.cidrs.some((c) => (a & c.mask) >>> 0 === c.net)) {
        out.tunnel.set(`${address}/32`, { nodeIp: peer.ip, flags: TUNNEL_ENDPOINT });
      }
    }
  }
  out.issues.sort((x, y) => cmp(x.reason, y.reason) || cmp(x.detail, y.detail));
  out.unplaced.sort((x, y) => cmp(x.address, y.address));
  return out;
}

const OCTETS = [0, 0, 0, 0];
/** A dotted quad as an unsigned 32-bit number, null for anything else (IPv6). */
function ip4Number(s: string): number | null {
  const o = parseIp4Octets(s, OCTETS);
  return o ? ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0 : null;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The endpoint addresses of one EndpointSlice with their nodeName (the first address, as the model uses; headless slices have no backends). */
export function sliceLocations(slice: V1EndpointSlice | undefined): EndpointLocation[] {
  if (!slice || slice.metadata?.labels?.[LABEL_HEADLESS] !== undefined) return [];
  const family = slice.addressType === 'IPv4' ? 4 : slice.addressType === 'IPv6' ? 6 : 0;
  if (family === 0 || !Array.isArray(slice.endpoints)) return [];
  const out: EndpointLocation[] = [];
  for (const ep of slice.endpoints) {
    const address = canonicalIp(ep?.addresses?.[0], family);
    if (address !== null) out.push({ address, nodeName: typeof ep.nodeName === 'string' ? ep.nodeName : '' });
  }
  return out;
}

export interface NodeMaps {
  nodes: TypedMap<WeirNode4Key, WeirNode4>;
  tunnel: TypedMap<WeirTunnel4Key, WeirTunnel4>;
}

export interface NodeMapStats {
  applies: number;
  writes: number;
  /** writes made by resync(): drift something else caused */
  repairs: number;
  /** failed map operations, each logged `node map write failed` */
  errors: number;
}

export interface NodeMapResult {
  writes: number;
  errors: number;
  peers: number;
  prefixes: number;
}

function tunnelKey(cidr: string): WeirTunnel4Key {
  const c = parseCidr(cidr);
  if (!c || c.family !== 4) throw new Error(`not an IPv4 prefix: ${cidr}`);
  return { prefixlen: c.prefix, address: c.address };
}

/**
 * Applies a DesiredNodeMaps to the two maps with the fewest writes: a mirror of what they hold
 * (read once at adopt, re-read by resync) is compared with the desired state; only changed
 * entries are written and only stale ones deleted, so a restart with the same objects writes
 * nothing. A refused write (a full map) is logged and counted and the rest goes on; the
 * mirror keeps what the map really holds, so the next apply retries it.
 */
export class NodeMapWriter {
  readonly stats: NodeMapStats = { applies: 0, writes: 0, repairs: 0, errors: 0 };
  private nodes = new Map<string, number>();
  private tunnel = new Map<string, TunnelTarget>();
  private adopted = false;

  constructor(
    private readonly maps: NodeMaps,
    private readonly log: Logger,
  ) {}

  /** Reads what the pinned maps hold (a restart's starting point). Returns the entry counts. */
  adopt(): { nodes: number; prefixes: number } {
    const nodes = new Map<string, number>();
    const tunnel = new Map<string, TunnelTarget>();
    for (const [k, v] of this.maps.nodes.entries()) nodes.set(k.address, v.flags);
    for (const [k, v] of this.maps.tunnel.entries()) {
      // the trie matches only the prefix's bits: a key written with host bits set is the same entry
      const c = parseCidr(`${k.address}/${k.prefixlen}`);
      if (c) tunnel.set(`${c.address}/${c.prefix}`, { nodeIp: v.node_ip, flags: v.flags });
    }
    this.nodes = nodes;
    this.tunnel = tunnel;
    this.adopted = true;
    return { nodes: nodes.size, prefixes: tunnel.size };
  }

  apply(want: Pick<DesiredNodeMaps, 'nodes' | 'tunnel'>): NodeMapResult {
    if (!this.adopted) this.adopt();
    this.stats.applies++;
    const before = { writes: this.stats.writes, errors: this.stats.errors };
    // peers first and gone last: a prefix never routes to a node whose packets we would refuse.
    // A write a full map refused is tried again once this apply's deletes made room (only
    // then: each attempt the kernel refuses counts in weir_map_write_failures_total).
    const refused: Array<{ map: string; key: string; w: () => void; mirror: () => void; error: unknown }> = [];
    const write = (map: string, key: string, w: () => void, mirror: () => void) => {
      const error = this.op(map, key, w, mirror, false);
      if (error !== undefined) refused.push({ map, key, w, mirror, error });
    };
    for (const [address, flags] of want.nodes)
      if (this.nodes.get(address) !== flags)
        write(
          'weir_nodes4',
          address,
          () => this.maps.nodes.set({ address }, { flags }),
          () => this.nodes.set(address, flags),
        );
    for (const [cidr, t] of want.tunnel) {
      const have = this.tunnel.get(cidr);
      if (have?.nodeIp === t.nodeIp && have.flags === t.flags) continue;
      write(
        'weir_tunnel4',
        cidr,
        () => this.maps.tunnel.set(tunnelKey(cidr), { node_ip: t.nodeIp, flags: t.flags }),
        () => this.tunnel.set(cidr, t),
      );
    }
    const beforeDeletes = this.stats.writes;
    for (const cidr of [...this.tunnel.keys()])
      if (!want.tunnel.has(cidr))
        this.op(
          'weir_tunnel4',
          cidr,
          () => void this.maps.tunnel.delete(tunnelKey(cidr)),
          () => this.tunnel.delete(cidr),
        );
    for (const address of [...this.nodes.keys()])
      if (!want.nodes.has(address))
        this.op(
          'weir_nodes4',
          address,
          () => void this.maps.nodes.delete({ address }),
          () => this.nodes.delete(address),
        );
    const deleted = this.stats.writes > beforeDeletes;
    for (const r of refused) {
      if (deleted) this.op(r.map, r.key, r.w, r.mirror, true);
      else this.failed(r.map, r.key, r.error);
    }
    return {
      writes: this.stats.writes - before.writes,
      errors: this.stats.errors - before.errors,
      peers: this.nodes.size,
      prefixes: this.tunnel.size,
    };
  }

  /** Re-reads the maps and rewrites what differs from `want` (each write a repair). */
  resync(want: Pick<DesiredNodeMaps, 'nodes' | 'tunnel'>): NodeMapResult {
    try {
      this.adopt();
    } catch (e) {
      this.stats.errors++;
      this.log.warn('node map read failed', { error: errText(e) });
      return { writes: 0, errors: 1, peers: this.nodes.size, prefixes: this.tunnel.size };
    }
    const r = this.apply(want);
    this.stats.repairs += r.writes;
    return r;
  }

  /** One map operation; the error when the kernel refused it (logged and counted when `final`). */
  private op(map: string, key: string, write: () => void, mirror: () => void, final = true): unknown {
    try {
      write();
      mirror();
      this.stats.writes++;
      return undefined;
    } catch (e) {
      if (final) this.failed(map, key, e);
      return e ?? new Error('refused');
    }
  }

  private failed(map: string, key: string, e: unknown): void {
    this.stats.errors++;
    this.log.warn('node map write failed', { map, key, error: errText(e) });
  }
}
