// model/policy/diff: old model → new model as the map writes that turn one into the other:
// identities, ipcache entries and endpoints added/removed/changed, and per endpoint and direction
// the policy keys to add and to delete. The writer applies additions before deletions per endpoint
// (a key briefly allowed twice is harmless; a gap would drop a flow that both models allow).

import type { IpcacheEntry } from './ipcache.js';
import type { Endpoint, PolicyKey, PolicyModel } from './policy-types.js';

export interface DirectionDiff {
  added: PolicyKey[];
  removed: PolicyKey[];
  /** Isolation changed (the endpoint map's bit for this direction). */
  isolated?: { from: boolean; to: boolean };
}

export interface EndpointDiff {
  pod: string;
  /** Identity, IPs or node changed (the endpoint map entry is rewritten). */
  changed: boolean;
  ingress: DirectionDiff;
  egress: DirectionDiff;
}

export interface PolicyModelDiff {
  identities: { added: number[]; removed: number[] };
  ipcache: { upserted: IpcacheEntry[]; removed: string[] };
  endpoints: { added: Endpoint[]; removed: string[]; changed: EndpointDiff[] };
}

export function keyText(k: PolicyKey): string {
  return `${k.peer}/${k.protocol}/${k.port}-${k.endPort}`;
}

function diffKeys(a: readonly PolicyKey[], b: readonly PolicyKey[]): { added: PolicyKey[]; removed: PolicyKey[] } {
  const same = (k: PolicyKey, o: PolicyKey): boolean => k.peer === o.peer && k.protocol === o.protocol && k.port === o.port && k.endPort === o.endPort;
  if (a === b || (a.length === b.length && a.every((k, i) => same(k, b[i]!)))) return { added: [], removed: [] };
  const before = new Map(a.map((k) => [keyText(k), k]));
  const after = new Map(b.map((k) => [keyText(k), k]));
  return {
    added: [...after].filter(([t]) => !before.has(t)).map(([, k]) => k),
    removed: [...before].filter(([t]) => !after.has(t)).map(([, k]) => k),
  };
}

/** Endpoints of one identity share their key lists, so each (old, new) pair is diffed once. */
function memoDiff(): (a: readonly PolicyKey[], b: readonly PolicyKey[]) => { added: PolicyKey[]; removed: PolicyKey[] } {
  const memo = new Map<readonly PolicyKey[], Map<readonly PolicyKey[], { added: PolicyKey[]; removed: PolicyKey[] }>>();
  return (a, b) => {
    let m = memo.get(a);
    if (!m) memo.set(a, (m = new Map()));
    let d = m.get(b);
    if (!d) m.set(b, (d = diffKeys(a, b)));
    return { added: d.added, removed: d.removed };
  };
}

function sameEntry(a: IpcacheEntry, b: IpcacheEntry): boolean {
  if (a.identity !== b.identity || a.cidrIdentity !== b.cidrIdentity || a.source.kind !== b.source.kind) return false;
  if (a.source.kind === 'pod') return b.source.kind === 'pod' && a.source.pod === b.source.pod;
  return a.source.kind !== 'node' || (b.source.kind === 'node' && a.source.node === b.source.node);
}

function ids(m: PolicyModel): Set<number> {
  return new Set([...m.podIdentities.keys(), ...m.cidrIdentities.keys()]);
}

/** What changed from `old` to `next`. An unchanged model gives empty lists everywhere. */
export function diffPolicyModels(old: PolicyModel, next: PolicyModel): PolicyModelDiff {
  const oldIds = ids(old);
  const newIds = ids(next);
  const out: PolicyModelDiff = {
    identities: {
      added: [...newIds].filter((i) => !oldIds.has(i)).sort((a, b) => a - b),
      removed: [...oldIds].filter((i) => !newIds.has(i)).sort((a, b) => a - b),
    },
    ipcache: { upserted: [], removed: [] },
    endpoints: { added: [], removed: [], changed: [] },
  };
  for (const [cidr, e] of next.ipcache) {
    const o = old.ipcache.get(cidr);
    if (!o || !sameEntry(o, e)) out.ipcache.upserted.push(e);
  }
  for (const cidr of old.ipcache.keys()) if (!next.ipcache.has(cidr)) out.ipcache.removed.push(cidr);
  const keysDiff = memoDiff();
  for (const [pod, ep] of next.endpoints) {
    const o = old.endpoints.get(pod);
    if (!o) {
      out.endpoints.added.push(ep);
      continue;
    }
    const changed = o.identity !== ep.identity || o.node !== ep.node || o.ips.join() !== ep.ips.join();
    const ingress: DirectionDiff = keysDiff(o.ingress.keys, ep.ingress.keys);
    const egress: DirectionDiff = keysDiff(o.egress.keys, ep.egress.keys);
    if (o.ingress.isolated !== ep.ingress.isolated) ingress.isolated = { from: o.ingress.isolated, to: ep.ingress.isolated };
    if (o.egress.isolated !== ep.egress.isolated) egress.isolated = { from: o.egress.isolated, to: ep.egress.isolated };
    const moved = (d: DirectionDiff): boolean => d.added.length > 0 || d.removed.length > 0 || d.isolated !== undefined;
    if (changed || moved(ingress) || moved(egress)) out.endpoints.changed.push({ pod, changed, ingress, egress });
  }
  for (const pod of old.endpoints.keys()) if (!next.endpoints.has(pod)) out.endpoints.removed.push(pod);
  return out;
}

/** The number of policy keys written (added + removed) by a diff: the update cost to bench. */
export function keyWrites(d: PolicyModelDiff): number {
  let n = 0;
  for (const e of d.endpoints.added) n += e.ingress.keys.length + e.egress.keys.length;
  for (const c of d.endpoints.changed) n += c.ingress.added.length + c.ingress.removed.length + c.egress.added.length + c.egress.removed.length;
  return n;
}
