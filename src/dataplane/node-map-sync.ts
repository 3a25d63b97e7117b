// dataplane/node-map-sync: the daemon's end of the node maps (node-maps.ts). Store changes
// of Nodes and EndpointSlices -> desiredNodeMaps (per family) -> NodeMapWriter (one per
// family's pair of maps), batched to one apply per turn of the event loop, with the skips and
// conflicts logged when they change.

import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import { buildNodeTable } from '../model/nodes.js';
import { type Logger, errText } from '../log.js';
import {
  desiredNodeMaps,
  NodeMapWriter,
  sliceLocations,
  type DesiredNodeMaps,
  type EndpointLocation,
  type NodeMapResult,
  type NodeMaps,
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
  /** slice key -> its locations, to replan only when an endpoint moved */
  private readonly locations = new Map<string, EndpointLocation[]>();
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
    const adopted = this.writers.map((w) => w.adopt());
    for (const [key, slice] of this.inputs.map('EndpointSlice')) this.locations.set(key, sliceLocations(slice));
    const r = this.apply((w, want) => w.apply(want));
    this.log.info('node maps', {
      reason: 'start',
      adoptedPeers: adopted.reduce((n, a) => n + a.nodes, 0),
      adoptedPrefixes: adopted.reduce((n, a) => n + a.prefixes, 0),
      ...this.summary(r),
    });
    return r;
  }

  /** A store change (any kind); only Nodes and EndpointSlices matter. */
  changed(change: { kind: string; key: string; current: unknown }): void {
    if (!this.started) return;
    if (change.kind === 'EndpointSlice') {
      const now = sliceLocations(change.current as V1EndpointSlice | undefined);
      const before = this.locations.get(change.key) ?? [];
      if (now.length === 0) this.locations.delete(change.key);
      else this.locations.set(change.key, now);
      if (JSON.stringify(now) === JSON.stringify(before)) return;
    } else if (change.kind !== 'Node') return;
    if (this.timer || this.stopped) return;
    this.timer = setImmediate(() => {
      this.timer = undefined;
      try {
        const r = this.apply((w, want) => w.apply(want));
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

  private plan(): DesiredNodeMaps[] {
    const table = buildNodeTable(this.inputs.nodes.values());
    const locations = [...this.locations.values()].flat();
    const wants = this.writers.map((w) => desiredNodeMaps(table, this.thisNode, locations, { family: w.family, underlay: this.underlay }));
    this.last = wants;
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
    return wants;
  }

  private summary(r: NodeMapResult): Record<string, unknown> {
    const skipped = this.last.flatMap((w) => [...w.skipped].map(([k, v]) => `${this.last.length > 1 ? `ipv${w.family}:` : ''}${k}:${v}`)).join(',');
    return { writes: r.writes, errors: r.errors, peers: r.peers, prefixes: r.prefixes, skipped: skipped || undefined };
  }
}
