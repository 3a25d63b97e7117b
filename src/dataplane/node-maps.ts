// dataplane/node-maps: weir_nodes4/6 and weir_tunnel4/6 (bpf-c/include/weir/tunnel.h), the
// other nodes of the cluster as the forwarding stage sees them, one pair of maps per family.
// Node objects and EndpointSlices in the store -> desiredNodeMaps (pure, the family a value)
// -> NodeMapWriter (the least writes against a mirror of the pinned maps) -> the BPF, which
// encapsulates a flow to a remote backend to the node weir_tunnel4/6 names and decapsulates
// only from the addresses in weir_nodes4/6. The daemon's end, following store changes, is
// node-map-sync.ts.
//
// Which underlay an IPv6 flow takes to a node (--tunnel-underlay, default ipv4): the preferred
// family when both this node and the peer have an InternalIP of it, else the other family
// when both have that, else the peer's own address of either (the IPv4 maps always use IPv4:
// weir_tunnel4 holds IPv4 addresses). An IPv4 underlay address goes into weir_tunnel6
// v4-mapped (::ffff:a.b.c.d), which tells the BPF to build an outer IPv4 header. Both ends
// must have an address of the family: the peer accepts a tunnel packet only from an address
// in its weir_nodes4/6, which is this node's InternalIP of that family.

import type { V1EndpointSlice } from '@kubernetes/client-node';
import { enums, type TypedMap } from '../bpf/index.js';
import { canonicalIp, ipBytes, parseCidr, parseIp4Octets, type IpFamily } from '../bpf/ip.js';
import { LABEL_HEADLESS } from '../model/endpoints.js';
import type { NodeInfo, NodeTable } from '../model/nodes.js';
import { type Logger, errText } from '../log.js';
import { addressFamily, EndpointIndex } from './endpoint-index.js';

export const NODE_PEER = enums.weir_node_flags.WEIR_NODE_PEER;
export const TUNNEL_POD_CIDR = enums.weir_tunnel_flags.WEIR_TUNNEL_POD_CIDR;
export const TUNNEL_ENDPOINT = enums.weir_tunnel_flags.WEIR_TUNNEL_ENDPOINT;

/** --tunnel-underlay: the family of the outer header IPv6 flows prefer. */
export type TunnelUnderlay = 'ipv4' | 'ipv6';
export const TUNNEL_UNDERLAYS: readonly TunnelUnderlay[] = ['ipv4', 'ipv6'];

/** Where an EndpointSlice says one endpoint address runs ('' when it has no nodeName). */
export interface EndpointLocation {
  address: string;
  nodeName: string;
}

export interface TunnelTarget {
  /** the node's underlay address: IPv4 in the IPv4 maps; IPv6 or v4-mapped in the IPv6 ones */
  nodeIp: string;
  flags: number;
}

/** Why something of the Node objects or EndpointSlices has no entry in one family's maps. */
export type NodeMapSkip =
  | 'node_no_ipv4' // IPv4 maps: another node without an IPv4 InternalIP (its pod CIDRs and endpoints get nothing)
  | 'node_no_underlay' // IPv6 maps: another node without an InternalIP of either family
  | 'node_same_address' // another node with this node's own InternalIP
  | 'own_pod_cidr' // another node claims one of this node's pod CIDRs
  | 'pod_cidr_conflict' // two other nodes claim the same pod CIDR: the first name keeps it
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
  family: IpFamily;
  /** peer underlay address of the family -> weir_node4/6.flags */
  nodes: Map<string, number>;
  /** `address/prefix` (host bits cleared) of the family -> where it is tunnelled */
  tunnel: Map<string, TunnelTarget>;
  skipped: Map<NodeMapSkip, number>;
  issues: NodeMapIssue[];
  /** endpoints of other nodes that get no entry because their node is unknown or has no usable address */
  unplaced: EndpointLocation[];
}

export interface NodeMapPlanOptions {
  /** the family of the maps planned (of the pod addresses); default 4 */
  family?: IpFamily;
  /** the underlay IPv6 flows prefer (--tunnel-underlay); default ipv4 */
  underlay?: TunnelUnderlay;
}

/** A prefix as a number (IPv4) or a bigint (IPv6): the endpoint loop runs for every endpoint of the cluster. */
export interface NumPrefix {
  net: number | bigint;
  mask: number | bigint;
}

/** The part of a plan that depends only on the Node objects: kept while no Node changes. */
export interface NodePlan extends Omit<DesiredNodeMaps, 'unplaced'> {
  /** peers by name: only these get tunnel entries */
  peers: Map<string, { nodeIp: string; cidrs: NumPrefix[] }>;
  /** the pod CIDR entries alone (an endpoint entry may cover a /32 one; its removal restores it) */
  cidrs: ReadonlyMap<string, TunnelTarget>;
  thisNode: string;
}

/**
 * What weir_nodes<family> and weir_tunnel<family> should hold on node `thisNode`: every other
 * node with an InternalIP of the family is a peer (its packets with an outer header of that
 * family are accepted); its pod CIDRs of the family route to it over the underlay the rule in
 * the file comment picks, and so does a /32 (/128) for each of its endpoints outside them
 * (nodeName is authoritative, even inside another node's CIDR). Never an entry for this
 * node's own pod CIDRs or endpoints. Deterministic whatever the order. With an EndpointIndex
 * the cost is the nodes' and the other nodes' endpoints: this node's are only counted.
 */
export function desiredNodeMaps(
  table: NodeTable,
  thisNode: string,
  endpoints: Iterable<EndpointLocation> | EndpointIndex,
  opts: NodeMapPlanOptions = {},
): DesiredNodeMaps {
  return placeEndpoints(planNodes(table, thisNode, opts), endpoints instanceof EndpointIndex ? endpoints : EndpointIndex.of(endpoints));
}

/** The Node objects' part of desiredNodeMaps: peers, their addresses and pod CIDRs. */
export function planNodes(table: NodeTable, thisNode: string, opts: NodeMapPlanOptions = {}): NodePlan {
  const family = opts.family ?? 4;
  const out: NodePlan = { family, nodes: new Map(), tunnel: new Map(), skipped: new Map(), issues: [], peers: new Map(), cidrs: new Map(), thisNode };
  const skip = (r: NodeMapSkip) => out.skipped.set(r, (out.skipped.get(r) ?? 0) + 1);
  const self = table.nodes.get(thisNode);
  const ownCidrs = new Set((self?.podCIDRs ?? []).map((c) => c.cidr));
  // the underlay families an IPv6 flow may take, preferred first; IPv4 flows only IPv4
  const underlays: IpFamily[] = family === 4 ? [4] : opts.underlay === 'ipv6' ? [6, 4] : [4, 6];
  for (const info of [...table.nodes.values()].sort((a, b) => cmp(a.name, b.name))) {
    if (info.name === thisNode) continue;
    const own = info.internalIP[family];
    if (own !== null && own !== self?.internalIP[family]) out.nodes.set(own, NODE_PEER);
    const u = underlayOf(info, self, underlays);
    if (u === null) {
      skip(family === 4 ? 'node_no_ipv4' : 'node_no_underlay');
      continue;
    }
    const ip = info.internalIP[u]!;
    if (ip === self?.internalIP[u]) {
      skip('node_same_address');
      out.issues.push({ reason: 'node_same_address', detail: `node ${info.name} has this node's InternalIP ${ip}` });
      continue;
    }
    const peer = { nodeIp: u === family ? ip : v4Mapped(ip), cidrs: [] as NumPrefix[] };
    out.peers.set(info.name, peer);
    for (const c of info.podCIDRs) {
      if (c.family !== family) continue; // the other family's maps
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
      out.tunnel.set(c.cidr, { nodeIp: peer.nodeIp, flags: TUNNEL_POD_CIDR });
      peer.cidrs.push(numPrefix(c.cidr.slice(0, c.cidr.indexOf('/')), c.prefix, family));
    }
  }
  out.cidrs = new Map(out.tunnel);
  return out;
}

/** The tunnel entry of one endpoint address placed on `nodeName` (undefined: none of its own). */
export function endpointEntry(plan: NodePlan, address: string, nodeName: string): TunnelTarget | undefined {
  const peer = plan.peers.get(nodeName);
  if (!peer) return undefined;
  const a = addressNumber(address, plan.family);
  if (a === null || peer.cidrs.some((c) => inPrefix(a, c))) return undefined;
  return { nodeIp: peer.nodeIp, flags: TUNNEL_ENDPOINT };
}

/** The key of an endpoint's own entry in weir_tunnel4/6. */
export const endpointKey = (address: string, family: IpFamily): string => `${address}/${family === 4 ? 32 : 128}`;

/**
 * A NodePlan with the endpoints placed: a copy of its maps, the other nodes' endpoints added,
 * the skips and conflicts of endpoints counted from the index (this node's and unnamed ones
 * by set size, not one by one).
 */
export function placeEndpoints(plan: NodePlan, index: EndpointIndex): DesiredNodeMaps {
  const family = plan.family;
  const out: DesiredNodeMaps = { family, nodes: plan.nodes, tunnel: new Map(plan.tunnel), skipped: new Map(), issues: [...plan.issues], unplaced: [] };
  for (const [nodeName, addresses] of index.nodes(family)) {
    if (!plan.peers.has(nodeName)) continue;
    for (const address of addresses) {
      const t = endpointEntry(plan, address, nodeName);
      if (t) out.tunnel.set(endpointKey(address, family), t);
    }
  }
  out.skipped = endpointSkips(plan, index);
  Object.assign(out, endpointIssues(plan, index));
  return out;
}

/** The plan's issues with the endpoints' conflicts added, and the endpoints on nodes that are no peer (sorted). */
export function endpointIssues(plan: NodePlan, index: EndpointIndex): Pick<DesiredNodeMaps, 'issues' | 'unplaced'> {
  const issues = [...plan.issues];
  const unplaced: EndpointLocation[] = [];
  for (const [nodeName, addresses] of index.nodes(plan.family))
    if (nodeName !== '' && nodeName !== plan.thisNode && !plan.peers.has(nodeName)) for (const address of addresses) unplaced.push({ address, nodeName });
  for (const address of index.conflicts)
    if (addressFamily(address) === plan.family)
      issues.push({ reason: 'endpoint_conflict', detail: `endpoint ${address} is on ${index.namesOf(address).join(' and ')} in different slices` });
  issues.sort((x, y) => cmp(x.reason, y.reason) || cmp(x.detail, y.detail));
  unplaced.sort((x, y) => cmp(x.address, y.address));
  return { issues, unplaced };
}

/** The plan's node skips and the endpoint skips of the index, from the sizes of its per-node sets. */
export function endpointSkips(plan: NodePlan, index: EndpointIndex): Map<NodeMapSkip, number> {
  const skipped = new Map(plan.skipped);
  const add = (r: NodeMapSkip, n: number) => skipped.set(r, (skipped.get(r) ?? 0) + n);
  for (const [nodeName, addresses] of index.nodes(plan.family)) {
    if (nodeName === '') add('endpoint_no_node_name', addresses.size);
    else if (nodeName === plan.thisNode) add('endpoint_local', addresses.size);
    else if (!plan.peers.has(nodeName)) add('endpoint_unknown_node', addresses.size);
  }
  return skipped;
}

/** The underlay family toward `peer`: the first of `order` both nodes have an InternalIP of, else the first the peer has. */
function underlayOf(peer: NodeInfo, self: NodeInfo | undefined, order: readonly IpFamily[]): IpFamily | null {
  const shared = order.find((u) => peer.internalIP[u] !== null && (self?.internalIP[u] ?? null) !== null);
  return shared ?? order.find((u) => peer.internalIP[u] !== null) ?? null;
}

/** ::ffff:a.b.c.d as the codecs print it (an IPv4 underlay address in weir_tunnel6). */
export function v4Mapped(ip4: string): string {
  return canonicalIp(`::ffff:${ip4}`, 6)!;
}

const OCTETS = [0, 0, 0, 0];
/** A dotted quad as an unsigned 32-bit number, an IPv6 address as a bigint; null for the other family. */
function addressNumber(s: string, family: IpFamily): number | bigint | null {
  if (family === 4) {
    const o = parseIp4Octets(s, OCTETS);
    return o ? ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0 : null;
  }
  if (!s.includes(':')) return null;
  const b = ipBytes(s);
  return b ? BigInt(`0x${b.toString('hex')}`) : null;
}

function numPrefix(address: string, prefix: number, family: IpFamily): NumPrefix {
  const a = addressNumber(address, family) ?? 0;
  if (typeof a === 'number') {
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    return { net: (a & mask) >>> 0, mask };
  }
  const mask = ((1n << BigInt(prefix)) - 1n) << BigInt(128 - prefix);
  return { net: a & mask, mask };
}

function inPrefix(a: number | bigint, c: NumPrefix): boolean {
  return typeof a === 'number' ? (a & (c.mask as number)) >>> 0 === c.net : (a & (c.mask as bigint)) === c.net;
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

/** One family's pair of maps: weir_nodes4/weir_tunnel4 or weir_nodes6/weir_tunnel6 (the same shapes once decoded). */
export interface NodeMaps {
  /** default 4 */
  family?: IpFamily;
  nodes: TypedMap<{ address: string }, { flags: number }>;
  tunnel: TypedMap<{ prefixlen: number; address: string }, { node_ip: string; flags: number }>;
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

function tunnelKey(cidr: string, family: IpFamily): { prefixlen: number; address: string } {
  const c = parseCidr(cidr);
  if (!c || c.family !== family) throw new Error(`not an IPv${family} prefix: ${cidr}`);
  return { prefixlen: c.prefix, address: c.address };
}

/**
 * Applies a DesiredNodeMaps to one family's two maps with the fewest writes: a mirror of what they hold
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
  readonly family: IpFamily;
  private readonly names: { nodes: string; tunnel: string };

  constructor(
    private readonly maps: NodeMaps,
    private readonly log: Logger,
  ) {
    this.family = maps.family ?? 4;
    this.names = { nodes: `weir_nodes${this.family}`, tunnel: `weir_tunnel${this.family}` };
  }

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

  /**
   * Writes what differs. `onlyTunnel`: the tunnel keys that may have changed (endpoints moved,
   * no Node changed): only these are compared, the peers left as they are.
   */
  apply(want: Pick<DesiredNodeMaps, 'nodes' | 'tunnel'>, onlyTunnel?: ReadonlySet<string>): NodeMapResult {
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
    for (const [address, flags] of onlyTunnel ? [] : want.nodes)
      if (this.nodes.get(address) !== flags)
        write(
          this.names.nodes,
          address,
          () => this.maps.nodes.set({ address }, { flags }),
          () => this.nodes.set(address, flags),
        );
    for (const [cidr, t] of onlyTunnel ? [...onlyTunnel].flatMap((k) => (want.tunnel.has(k) ? [[k, want.tunnel.get(k)!] as const] : [])) : want.tunnel) {
      const have = this.tunnel.get(cidr);
      if (have?.nodeIp === t.nodeIp && have.flags === t.flags) continue;
      write(
        this.names.tunnel,
        cidr,
        () => this.maps.tunnel.set(tunnelKey(cidr, this.family), { node_ip: t.nodeIp, flags: t.flags }),
        () => this.tunnel.set(cidr, t),
      );
    }
    const beforeDeletes = this.stats.writes;
    for (const cidr of onlyTunnel ? [...onlyTunnel].filter((k) => this.tunnel.has(k)) : [...this.tunnel.keys()])
      if (!want.tunnel.has(cidr))
        this.op(
          this.names.tunnel,
          cidr,
          () => void this.maps.tunnel.delete(tunnelKey(cidr, this.family)),
          () => this.tunnel.delete(cidr),
        );
    for (const address of onlyTunnel ? [] : [...this.nodes.keys()])
      if (!want.nodes.has(address))
        this.op(
          this.names.nodes,
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
      this.log.warn('node map read failed', { family: this.family, error: errText(e) });
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
