// dataplane/node-map-sync: the daemon's end of the node maps (node-maps.ts). Store changes
// of Nodes and EndpointSlices -> desiredNodeMaps -> NodeMapWriter, batched to one apply per
// turn of the event loop, with the skips and conflicts logged when they change.

import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import { buildNodeTable } from '../model/nodes.js';
import { type Logger, errText } from '../log.js';
import { desiredNodeMaps, NodeMapWriter, sliceLocations, type DesiredNodeMaps, type EndpointLocation, type NodeMapResult, type NodeMaps } from './node-maps.js';

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
  readonly writer: NodeMapWriter;
  private started = false;
  private stopped = false;
  private timer: NodeJS.Immediate | undefined;
  /** slice key -> its locations, to replan only when an endpoint moved */
  private readonly locations = new Map<string, EndpointLocation[]>();
  private last: DesiredNodeMaps | undefined;
  private loggedIssues = '';
  private loggedUnplaced = '';

  constructor(
    maps: NodeMaps,
    private readonly inputs: NodeMapInputs,
    private readonly thisNode: string,
    private readonly log: Logger,
  ) {
    this.writer = new NodeMapWriter(maps, log);
  }

  /** Adopts the pinned maps and writes the difference to the store's state. */
  start(): NodeMapResult {
    this.started = true;
    const adopted = this.writer.adopt();
    for (const [key, slice] of this.inputs.map('EndpointSlice')) this.locations.set(key, sliceLocations(slice));
    const r = this.writer.apply(this.plan());
    this.log.info('node maps', { reason: 'start', adoptedPeers: adopted.nodes, adoptedPrefixes: adopted.prefixes, ...this.summary(r) });
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
        const r = this.writer.apply(this.plan());
        if (r.writes > 0 || r.errors > 0) this.log.info('node maps', { reason: 'change', ...this.summary(r) });
      } catch (e) {
        this.log.warn('sync failed', { pipeline: 'node maps', error: errText(e) });
      }
    });
  }

  /** The periodic resync: re-read both maps, repair drift. */
  resync(): NodeMapResult | undefined {
    if (!this.started) return undefined;
    const r = this.writer.resync(this.plan());
    this.log[r.writes ? 'warn' : 'debug']('node maps resync', { repairs: r.writes, ...this.summary(r) });
    return r;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
  }

  private plan(): DesiredNodeMaps {
    const table = buildNodeTable(this.inputs.nodes.values());
    const want = desiredNodeMaps(table, this.thisNode, [...this.locations.values()].flat());
    this.last = want;
    const issues = want.issues.map((i) => `${i.reason}:${i.detail}`).join('\n');
    if (issues !== this.loggedIssues) {
      this.loggedIssues = issues;
      for (const i of want.issues) this.log.warn('node map conflict', { reason: i.reason, detail: i.detail });
    }
    const unplaced = want.unplaced.map((u) => `${u.address}@${u.nodeName}`).join(',');
    if (unplaced !== this.loggedUnplaced) {
      this.loggedUnplaced = unplaced;
      if (unplaced) this.log.debug('endpoints on unknown nodes', { count: want.unplaced.length, endpoints: unplaced.slice(0, 500) });
    }
    return want;
  }

  private summary(r: NodeMapResult): Record<string, unknown> {
    const skipped = [...(this.last?.skipped ?? [])].map(([k, v]) => `${k}:${v}`).join(',');
    return { writes: r.writes, errors: r.errors, peers: r.peers, prefixes: r.prefixes, skipped: skipped || undefined };
  }
}
