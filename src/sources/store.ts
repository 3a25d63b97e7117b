// sources/store: the current objects per kind, fed by source events, read by the model.
// Plain Maps keyed like the events ('ns/name' or 'name'), plus an index of EndpointSlices by
// the Service they are labelled for, so one Service's slices are found without a scan.

import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { GlobalNetworkPolicy, HostEndpoint } from '../model/host-policy/types.js';
import type { KindMap, ObjectEvent, ObjectKind } from './types.js';

const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';

/** What applying an event did: the object before and after (undefined = absent). */
export interface StoreChange<K extends ObjectKind = ObjectKind> {
  kind: K;
  key: string;
  previous: KindMap[K] | undefined;
  current: KindMap[K] | undefined;
}

function sliceServiceKey(slice: V1EndpointSlice): string | undefined {
  const svc = slice.metadata?.labels?.[LABEL_SERVICE_NAME];
  return svc ? `${slice.metadata?.namespace || 'default'}/${svc}` : undefined;
}

export class Store {
  private readonly maps: { [K in ObjectKind]: Map<string, KindMap[K]> } = {
    Service: new Map(),
    EndpointSlice: new Map(),
    Pod: new Map(),
    Namespace: new Map(),
    Node: new Map(),
    NetworkPolicy: new Map(),
    GlobalNetworkPolicy: new Map(),
    HostEndpoint: new Map(),
  };
  /** serviceKey → sliceKey → slice. */
  private readonly slicesByService = new Map<string, Map<string, V1EndpointSlice>>();

  /** Services keyed 'ns/name' (the model's ServiceInputs view). */
  get services(): ReadonlyMap<string, V1Service> {
    return this.maps.Service;
  }

  /** Node objects keyed by name (the model reads this node's zone label). */
  get nodes(): ReadonlyMap<string, V1Node> {
    return this.maps.Node;
  }

  /** Calico GlobalNetworkPolicies keyed by name (the host policy model's input). */
  get globalNetworkPolicies(): ReadonlyMap<string, GlobalNetworkPolicy> {
    return this.maps.GlobalNetworkPolicy;
  }

  /** Calico HostEndpoints keyed by name (the host policy model's input). */
  get hostEndpoints(): ReadonlyMap<string, HostEndpoint> {
    return this.maps.HostEndpoint;
  }

  map<K extends ObjectKind>(kind: K): ReadonlyMap<string, KindMap[K]> {
    return this.maps[kind];
  }

  get<K extends ObjectKind>(kind: K, key: string): KindMap[K] | undefined {
    return this.maps[kind].get(key);
  }

  size(kind: ObjectKind): number {
    return this.maps[kind].size;
  }

  slicesForService(serviceKey: string): Iterable<V1EndpointSlice> {
    return this.slicesByService.get(serviceKey)?.values() ?? [];
  }

  /** Apply an upsert or delete. Returns null when nothing changed (delete of an absent key). */
  apply(event: ObjectEvent): StoreChange | null {
    const m = this.maps[event.kind] as Map<string, KindMap[ObjectKind]>;
    const previous = m.get(event.key);
    if (event.type === 'delete') {
      if (previous === undefined) return null;
      m.delete(event.key);
    } else {
      m.set(event.key, event.object);
    }
    const current = event.type === 'delete' ? undefined : event.object;
    if (event.kind === 'EndpointSlice') this.indexSlice(event.key, previous as V1EndpointSlice | undefined, current as V1EndpointSlice | undefined);
    return { kind: event.kind, key: event.key, previous, current } as StoreChange;
  }

  private indexSlice(key: string, previous: V1EndpointSlice | undefined, current: V1EndpointSlice | undefined): void {
    const before = previous ? sliceServiceKey(previous) : undefined;
    if (before !== undefined) {
      const s = this.slicesByService.get(before);
      s?.delete(key);
      if (s && s.size === 0) this.slicesByService.delete(before);
    }
    const after = current ? sliceServiceKey(current) : undefined;
    if (after !== undefined && current) {
      let s = this.slicesByService.get(after);
      if (!s) this.slicesByService.set(after, (s = new Map()));
      s.set(key, current);
    }
  }
}
