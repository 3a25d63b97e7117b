// dataplane/node-map-sync: the daemon's end of the node maps (node-maps.ts). Store changes
// of Nodes and EndpointSlices -> an EndpointIndex (endpoint-index.ts) and the Node objects'
// plan (per family) -> NodeMapWriter (one per family's pair of maps), batched to one apply per
// turn of the event loop: a Node change replans, an endpoint move writes only the addresses
// that moved. The skips and conflicts are logged when they change.

import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import { buildNodeTable } from '../model/nodes.js';
import { type Logger, errText } from '../log.js';
import { EndpointIndex, addressFamily } from './endpoint-index.js';
import {
  endpointEntry,
  endpointIssues,
  endpointKey,
  endpointSkips,
  NodeMapWriter,
  placeEndpoints,
  planNodes,
  sliceLocations,
  type DesiredNodeMaps,
  type NodeMapResult,
  type NodeMaps,
  type NodePlan,
  type TunnelUnderlay,
} from './node-maps.js';

/** The store as NodeMapSync reads it. */
export interface NodeMapInputs {
  readonly nodes: ReadonlyMap<string, V1Node>;
  map(kind: 'EndpointSlice'): ReadonlyMap<string, V1EndpointSlice>;
}

/**
 * The daemon's end: after start() (once the store holds the source's whole state), every
 * Node change and every EndpointSlice change that moves an endpoint between nodes replans
 * and applies on the next turn of the event loop (a burst of events lands in one apply).
 * Skips and conflicts are logged when they change, not on every apply.
 */
export class NodeMapSync {
  /** one per family whose maps are pinned: the IPv4 pair first */
  readonly writers: NodeMapWriter[];
  private started = false;
  private stopped = false;
  private timer: NodeJS.Immediate | undefined;
  /**
   * every slice's endpoints by address and node: a replan reads only other nodes' ones. Built
   * when the first peer appears: with no other node (a single node, or no Node objects) no
   * endpoint can get an entry, and reading the cluster's endpoints would cost start-up for nothing.
   */
  readonly index = new EndpointIndex();
  private indexed = false;
  /** the Node objects' plan per writer, until a Node changes */
  private plans: NodePlan[] | undefined;
  private last: DesiredNodeMaps[] = [];
  private loggedIssues = '';
  private loggedUnplaced = '';

  constructor(
    maps: NodeMaps | readonly NodeMaps[],
    private readonly inputs: NodeMapInputs,
    private readonly thisNode: string,
    private readonly log: Logger,
    /** --tunnel-underlay */
    private readonly underlay: TunnelUnderlay = 'ipv4',
  ) {
    this.writers = (Array.isArray(maps) ? maps : [maps as NodeMaps]).map((m) => new NodeMapWriter(m, log));
  }

  /** The IPv4 pair's writer (the one every node has). */
  get writer(): NodeMapWriter {
    return this.writers[0]!;
  }

  /** Adopts the pinned maps and writes the difference to the store's state. */
  start(): NodeMapResult {
    this.started = true;
    const t0 = performance.now();
    const adopted = this.writers.map((w) => w.adopt());
    const r = this.apply((w, want) => w.apply(want));
    this.log.info('node maps', {
      reason: 'start',
      adoptedPeers: adopted.reduce((n, a) => n + a.nodes, 0),
      adoptedPrefixes: adopted.reduce((n, a) => n + a.prefixes, 0),
      ...this.summary(r),
      endpoints: this.indexed ? this.index.size : 'not read: no peer',
      ms: Math.round(performance.now() - t0),
    });
    return r;
  }

  /** A store change (any kind); only Nodes and EndpointSlices matter. */
  changed(change: { kind: string; key: string; current: unknown }): void {
    if (!this.started) return;
    if (change.kind === 'EndpointSlice') {
      if (!this.indexed || !this.index.setSlice(change.key, sliceLocations(change.current as V1EndpointSlice | undefined))) return;
    } else if (change.kind === 'Node') this.plans = undefined;
    else return;
    if (this.timer || this.stopped) return;
    this.timer = setImmediate(() => {
      this.timer = undefined;
      try {
        const r = this.plans ? this.applyMoved() : this.apply((w, want) => w.apply(want));
        if (r.writes > 0 || r.errors > 0) this.log.info('node maps', { reason: 'change', ...this.summary(r) });
      } catch (e) {
        this.log.warn('sync failed', { pipeline: 'node maps', error: errText(e) });
      }
    });
  }

  /** The periodic resync: re-read both maps, repair drift. */
  resync(): NodeMapResult | undefined {
    if (!this.started) return undefined;
    const r = this.apply((w, want) => w.resync(want));
    this.log[r.writes ? 'warn' : 'debug']('node maps resync', { repairs: r.writes, ...this.summary(r) });
    return r;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
  }

  /** Plans every family and applies each plan with `f`; the results summed. */
  private apply(f: (w: NodeMapWriter, want: DesiredNodeMaps) => NodeMapResult): NodeMapResult {
    const wants = this.plan();
    const sum: NodeMapResult = { writes: 0, errors: 0, peers: 0, prefixes: 0 };
    this.writers.forEach((w, i) => {
      const r = f(w, wants[i]!);
      sum.writes += r.writes;
      sum.errors += r.errors;
      sum.peers += r.peers;
      sum.prefixes += r.prefixes;
    });
    return sum;
  }

  /**
   * Endpoints moved and no Node changed: the last plans are patched at the addresses that
   * moved and only those keys written (an address's key falls back to a pod CIDR entry of
   * the same prefix when it has none of its own).
   */
  private applyMoved(): NodeMapResult {
    const moved = this.index.takeDirty();
    const sum: NodeMapResult = { writes: 0, errors: 0, peers: 0, prefixes: 0 };
    this.writers.forEach((w, i) => {
      const plan = this.plans![i]!;
      const want = this.last[i]!;
      const keys = new Set<string>();
      for (const address of moved) {
        if (addressFamily(address) !== plan.family) continue;
        const key = endpointKey(address, plan.family);
        const nodeName = this.index.placedOn(address);
        const t = (nodeName !== undefined ? endpointEntry(plan, address, nodeName) : undefined) ?? plan.cidrs.get(key);
        if (t) want.tunnel.set(key, t);
        else want.tunnel.delete(key);
        keys.add(key);
      }
      want.skipped = endpointSkips(plan, this.index);
      const r = w.apply(want, keys);
      sum.writes += r.writes;
      sum.errors += r.errors;
      sum.peers += r.peers;
      sum.prefixes += r.prefixes;
    });
    this.logIssues(this.plans!.map((p) => endpointIssues(p, this.index)));
    return sum;
  }

  private plan(): DesiredNodeMaps[] {
    this.index.takeDirty();
    if (!this.plans) {
      const table = buildNodeTable(this.inputs.nodes.values());
      this.plans = this.writers.map((w) => planNodes(table, this.thisNode, { family: w.family, underlay: this.underlay }));
      if (!this.indexed && this.plans.some((p) => p.peers.size > 0)) {
        for (const [key, slice] of this.inputs.map('EndpointSlice')) this.index.setSlice(key, sliceLocations(slice));
        this.indexed = true;
        this.index.takeDirty();
      }
    }
    const wants = this.plans.map((p) => placeEndpoints(p, this.index));
    this.last = wants;
    this.logIssues(wants);
    return wants;
  }

  /** Conflicts and unplaced endpoints, logged when they differ from what was said last. */
  private logIssues(wants: readonly Pick<DesiredNodeMaps, 'issues' | 'unplaced'>[]): void {
    // a conflict between Node objects shows in each family's plan: said once
    const all = [...new Map(wants.flatMap((w) => w.issues).map((i) => [`${i.reason}:${i.detail}`, i])).values()];
    const issues = all.map((i) => `${i.reason}:${i.detail}`).join('\n');
    if (issues !== this.loggedIssues) {
      this.loggedIssues = issues;
      for (const i of all) this.log.warn('node map conflict', { reason: i.reason, detail: i.detail });
    }
    const unplacedAll = wants.flatMap((w) => w.unplaced);
    const unplaced = unplacedAll.map((u) => `${u.address}@${u.nodeName}`).join(',');
    if (unplaced !== this.loggedUnplaced) {
      this.loggedUnplaced = unplaced;
      if (unplaced) this.log.debug('endpoints on unknown nodes', { count: unplacedAll.length, endpoints: unplaced.slice(0, 500) });
    }
  }

  private summary(r: NodeMapResult): Record<string, unknown> {
    const skipped = this.last.flatMap((w) => [...w.skipped].map(([k, v]) => `${this.last.length > 1 ? `ipv${w.family}:` : ''}${k}:${v}`)).join(',');
    return { writes: r.writes, errors: r.errors, peers: r.peers, prefixes: r.prefixes, skipped: skipped || undefined };
  }
}
