// dataplane/policy-maps: the NetworkPolicy maps (bpf-c/include/weir/policy.h) as the daemon
// writes them. A built PolicyModel (src/model/policy) -> what this node's maps should hold
// (desiredPolicyMaps, pure) -> PolicyWriter, which writes only the difference to what the maps
// hold, in an order that never opens a gap: names, identities, policy keys and ipcache entries
// first, endpoints (which switch a pod to its new identity or isolation) next, deletions last.
//
// Policy keys are written per local *identity*, not per pod: pods sharing an identity share
// their rules (the model guarantees it), so a pod relabelled into an identity this node
// already has costs one endpoint write, and a scale-up of a workload costs none.

import type {
  BpfMap,
  TypedMap,
  WeirEndpoint4,
  WeirEndpoint4Key,
  WeirEndpoint6,
  WeirEndpoint6Key,
  WeirIdentityKey,
  WeirIpcache4,
  WeirIpcache4HostKey,
  WeirIpcache4Key,
  WeirPolicy4,
  WeirPolicy4Key,
  WeirPolicyName,
  WeirPolicySelect,
  WeirPolicySelectKey,
} from '../bpf/index.js';
import { IPPROTO, parseCidr } from '../bpf/ip.js';
import { errText } from '../log.js';
import { FIRST_CIDR_IDENTITY, IDENTITY_HOST, IDENTITY_WORLD } from '../model/policy/identities.js';
import type { IpcacheEntry } from '../model/policy/ipcache.js';
import type { AllowRule, DirectionPolicy, PolicyModel } from '../model/policy/policy-types.js';
import { portPrefixes } from '../model/policy/port-ranges.js';

/** The maps, typed (loader.ts policyMaps). */
export interface PolicyMaps {
  ipcache: TypedMap<WeirIpcache4Key, WeirIpcache4>;
  endpoints: TypedMap<WeirEndpoint4Key, WeirEndpoint4>;
  policy: TypedMap<WeirPolicy4Key, WeirPolicy4>;
  names: TypedMap<number, WeirPolicyName>;
  identities: TypedMap<number, WeirIdentityKey>;
  /** the /32 entries of the ipcache again, as a hash the programs look up first (an accelerator) */
  ipcacheHosts?: TypedMap<WeirIpcache4HostKey, WeirIpcache4>;
  /** IPv6 fails closed until IPv6 policy exists: this node's pods' IPv6 addresses (isolation) and its own (host) */
  endpoints6?: TypedMap<WeirEndpoint6Key, WeirEndpoint6>;
  /** which policies select each local identity (for `weir policy`; the programs never read it) */
  selects?: TypedMap<WeirPolicySelectKey, WeirPolicySelect>;
  /** per-CPU weir_policy_stats, read by the metrics */
  stats?: BpfMap;
}

export const POLICY_INGRESS = 0;
export const POLICY_EGRESS = 1;
/** identity + peer + direction: the bits every key matches exactly (WEIR_POLICY4_FIXED_BITS) */
export const POLICY_FIXED_BITS = 72;
export const EP_INGRESS_ISOLATED = 1;
export const EP_EGRESS_ISOLATED = 2;
export const EP_HOST = 4;
export const SELECT_INGRESS = 1;
export const SELECT_EGRESS = 2;
export const POLICY_NAME_LEN = 320;
export const IDENTITY_KEY_LEN = 1024;
/** weir_policy_names / weir_policy_stats slots (WEIR_POLICY_SLOTS); slot 0 is "none" */
export const POLICY_SLOTS = 4096;

/** One weir_policy4 entry. */
export interface PolicyBlock {
  key: WeirPolicy4Key;
  value: WeirPolicy4;
}

export interface DesiredPolicyMaps {
  /** canonical IPv4 `address/prefix` -> identities */
  ipcache: Map<string, WeirIpcache4>;
  /** local pod IPv4 address -> endpoint (policy slots resolved by the writer) */
  endpoints: Map<string, { identity: number; flags: number; ingressPolicy: string | null; egressPolicy: string | null }>;
  /** local identity -> its two directions (shared objects: unchanged ones are skipped by reference) */
  policy: Map<number, { ingress: DirectionPolicy; egress: DirectionPolicy }>;
  /** identity -> its key (pods: the label key, CIDRs: the canonical prefix) */
  identities: Map<number, string>;
  /** the policies ('ns/name') that select this node's pods: slots are given to these */
  policies: string[];
  /** IPv6 address -> flags (isolation of a local pod, or EP_HOST): IPv6 fails closed (weir_endpoints6) */
  endpoints6: Map<string, number>;
  /** what had no place in these IPv4 maps (IPv6 addresses: issue 14) */
  skipped: { ipv6Addresses: number };
}

/** The map value of each model ipcache entry (entries are reused between builds while unchanged). */
const ipcacheValues = new WeakMap<IpcacheEntry, WeirIpcache4>();

/**
 * What this node's maps should hold for `model`. `hostAddresses`: every address of this node
 * (not only its InternalIP: the gateway addresses of its pod interfaces too), so that a pod's
 * traffic to any of them is node-local and always allowed.
 */
export function desiredPolicyMaps(model: PolicyModel, localNode: string, hostAddresses: Iterable<string> = []): DesiredPolicyMaps {
  const out: DesiredPolicyMaps = {
    ipcache: new Map(),
    endpoints: new Map(),
    policy: new Map(),
    identities: new Map(),
    policies: [],
    endpoints6: new Map(),
    skipped: { ipv6Addresses: 0 },
  };
  for (const [cidr, e] of model.ipcache) {
    if (e.family !== 4) {
      out.skipped.ipv6Addresses++;
      continue;
    }
    let v = ipcacheValues.get(e);
    if (!v) ipcacheValues.set(e, (v = { identity: e.identity, cidr_identity: e.cidrIdentity }));
    out.ipcache.set(cidr, v);
  }
  const hosts = [...hostAddresses];
  for (const a of hosts) {
    const c6 = parseCidr(`${a}/128`);
    if (c6?.family === 6) out.endpoints6.set(c6.address, EP_HOST);
  }
  for (const a of hosts) {
    const c = parseCidr(`${a}/32`);
    if (!c || c.family !== 4) continue;
    const key = `${c.address}/32`;
    const have = out.ipcache.get(key);
    // a pod's own address wins (host-network pods have none); the node's InternalIP is already HOST
    if (have && have.identity !== IDENTITY_HOST && have.identity < FIRST_CIDR_IDENTITY) continue;
    const cidrIdentity = have?.cidr_identity ?? cidrIdentityOf(model, c.address);
    out.ipcache.set(key, { identity: IDENTITY_HOST, cidr_identity: cidrIdentity });
  }
  for (const ep of model.endpoints.values()) {
    if (ep.node !== localNode) continue;
    let v4 = false;
    for (const ip of ep.ips) {
      if (ip.includes(':')) {
        out.skipped.ipv6Addresses++;
        const flags = (ep.ingress.isolated ? EP_INGRESS_ISOLATED : 0) | (ep.egress.isolated ? EP_EGRESS_ISOLATED : 0);
        if (flags) out.endpoints6.set(ip, flags);
        continue;
      }
      v4 = true;
      out.endpoints.set(ip, {
        identity: ep.identity,
        flags: (ep.ingress.isolated ? EP_INGRESS_ISOLATED : 0) | (ep.egress.isolated ? EP_EGRESS_ISOLATED : 0),
        ingressPolicy: ep.ingress.policies[0] ?? null,
        egressPolicy: ep.egress.policies[0] ?? null,
      });
    }
    if (v4 && !out.policy.has(ep.identity)) out.policy.set(ep.identity, { ingress: ep.ingress, egress: ep.egress });
  }
  // slots only for the policies this node's keys and endpoints name: bounded by what selects
  // its pods, not by the cluster's policy count
  const named = new Set<string>();
  for (const { ingress, egress } of out.policy.values())
    for (const d of [ingress, egress]) {
      for (const p of d.policies) named.add(p);
      for (const r of d.rules) named.add(r.policy);
    }
  out.policies = [...named].sort();
  for (const [key, id] of model.podIdentityIds) out.identities.set(id, key);
  for (const [cidr, id] of model.cidrIdentityIds) out.identities.set(id, cidr);
  return out;
}

/** The identity of the longest ipBlock prefix holding `address` in the model's ipcache. */
function cidrIdentityOf(model: PolicyModel, address: string): number {
  for (let len = 32; len >= 0; len--) {
    const net = parseCidr(`${address}/${len}`);
    const e = net ? model.ipcache.get(`${net.address}/${len}`) : undefined;
    if (e && e.source.kind === 'cidr') return e.identity;
  }
  return IDENTITY_WORLD;
}

const PROTO_OF: Readonly<Record<string, number>> = { TCP: IPPROTO.TCP, UDP: IPPROTO.UDP, SCTP: IPPROTO.SCTP };

function blockText(k: WeirPolicy4Key): string {
  return `${k.identity}/${k.direction}/${k.peer}/${k.protocol}/${k.port}/${k.prefixlen}`;
}

/** Rules of a direction by `${peer}/${protocol}` (0 = any), in rule order: which rule a key came from. */
function ruleIndex(dir: DirectionPolicy): Map<string, AllowRule[]> {
  const idx = new Map<string, AllowRule[]>();
  for (const r of dir.rules) {
    const proto = r.protocol === 'any' ? 0 : (PROTO_OF[r.protocol] ?? -1);
    for (const peer of r.peer.kind === 'any' ? [0] : r.peer.identities) {
      const t = `${peer}/${proto}`;
      let l = idx.get(t);
      if (!l) idx.set(t, (l = []));
      l.push(r);
    }
  }
  return idx;
}

/**
 * The weir_policy4 entries of one local identity's direction: each key's port range as aligned
 * blocks (an LPM prefix of the port), "every protocol" as a key that ends before the protocol.
 * Each entry names a rule that allows it (policy slot, rule index) for the CLI and the counts.
 */
export function directionBlocks(identity: number, direction: number, dir: DirectionPolicy, slotOf: (policy: string) => number): Map<string, PolicyBlock> {
  const out = new Map<string, PolicyBlock>();
  if (!dir.isolated) return out;
  const idx = ruleIndex(dir);
  const put = (peer: number, protocol: number, port: number, prefixlen: number, rule: AllowRule | undefined): void => {
    const key: WeirPolicy4Key = { prefixlen, identity, peer, direction, protocol, port };
    out.set(blockText(key), { key, value: { policy: rule ? slotOf(rule.policy) : 0, rule: rule?.rule ?? 0 } });
  };
  for (const k of dir.keys) {
    const rules = idx.get(`${k.peer}/${k.protocol}`) ?? [];
    if (k.protocol === 0 && k.port === 0 && k.endPort === 65535) {
      put(k.peer, 0, 0, POLICY_FIXED_BITS, rules[0]);
      continue;
    }
    // "every protocol" on a port range does not occur (a rule without ports has no protocol);
    // should it, it stands for the three protocols policy ports exist for
    const protos = k.protocol === 0 ? [IPPROTO.TCP, IPPROTO.UDP, IPPROTO.SCTP] : [k.protocol];
    for (const proto of protos)
      for (const b of portPrefixes(k.port, k.endPort)) {
        const rule = rules.find((r) => r.port <= b.port && b.port <= r.endPort) ?? rules[0];
        put(k.peer, proto, b.port, POLICY_FIXED_BITS + 8 + b.prefixLen, rule);
      }
  }
  return out;
}

/** A NUL-terminated string in a fixed-size buffer; null when it does not fit (never cut silently). */
function cString(text: string, size: number): Buffer | null {
  const b = Buffer.from(text, 'utf8');
  if (b.length >= size) return null;
  const out = Buffer.alloc(size);
  b.copy(out);
  return out;
}

/** The text of a NUL-terminated buffer. */
export function fromCString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}

export interface PolicyWriteResult {
  writes: number;
  errors: number;
  endpoints: number;
  identities: number;
  ipcache: number;
  keys: number;
  ms: number;
}

/** What the adopted maps say about ids, for the first build after a restart (PolicyInputs.previous). */
export interface AdoptedIds {
  podIdentities: Map<string, number>;
  cidrIdentities: Map<string, number>;
}

type EndpointValue = WeirEndpoint4;

/**
 * Writes DesiredPolicyMaps into the maps as differences to what they hold (read back once,
 * by adopt(), so a restart changes nothing that is already right: enforcement never pauses).
 */
export class PolicyWriter {
  readonly stats = { applies: 0, writes: 0, errors: 0 };
  private adopted = false;
  private slots = new Map<string, number>();
  private identities = new Map<number, string>();
  private ipcache = new Map<string, WeirIpcache4>();
  private endpoints = new Map<string, EndpointValue>();
  /** identity -> direction -> written blocks, and the DirectionPolicy they were written from */
  private blocks = new Map<number, [Map<string, PolicyBlock>, Map<string, PolicyBlock>]>();
  private writtenFrom = new Map<number, [DirectionPolicy | null, DirectionPolicy | null]>();
  private endpoints6 = new Map<string, number>();
  /** address -> value, as in weir_ipcache4_hosts */
  private hosts = new Map<string, WeirIpcache4>();
  /** `${identity}/${slot}` -> select flags, as in weir_policy_selects */
  private selects = new Map<string, number>();
  /** failures by map since the last take (a metric and a log line) */
  private failures: { map: string; key: string; error: string }[] = [];

  constructor(private readonly maps: PolicyMaps) {}

  /** Reads the pinned maps. Returns the ids they hold, for the first build after a restart. */
  adopt(): AdoptedIds {
    const ids: AdoptedIds = { podIdentities: new Map(), cidrIdentities: new Map() };
    this.slots.clear();
    this.identities.clear();
    this.ipcache.clear();
    this.endpoints.clear();
    this.blocks.clear();
    this.writtenFrom.clear();
    this.selects.clear();
    this.endpoints6.clear();
    this.hosts.clear();
    if (this.maps.ipcacheHosts) for (const [k, v] of this.maps.ipcacheHosts.entries()) this.hosts.set(k.address, v);
    if (this.maps.endpoints6) for (const [k, v] of this.maps.endpoints6.entries()) this.endpoints6.set(k.address, v.flags);
    if (this.maps.selects) for (const [k, v] of this.maps.selects.entries()) this.selects.set(`${k.identity}/${k.policy}`, v.flags);
    for (const [slot, v] of this.maps.names.entries()) this.slots.set(fromCString(v.name), slot);
    for (const [id, v] of this.maps.identities.entries()) {
      const key = fromCString(v.key);
      this.identities.set(id, key);
      if (id >= FIRST_CIDR_IDENTITY) ids.cidrIdentities.set(key, id);
      else ids.podIdentities.set(key, id);
    }
    for (const [k, v] of this.maps.ipcache.entries()) {
      const c = parseCidr(`${k.address}/${k.prefixlen}`);
      if (c) this.ipcache.set(`${c.address}/${c.prefix}`, v);
    }
    for (const [k, v] of this.maps.endpoints.entries()) this.endpoints.set(k.address, v);
    for (const [k, v] of this.maps.policy.entries()) this.blocksOf(k.identity)[k.direction === POLICY_EGRESS ? 1 : 0].set(blockText(k), { key: k, value: v });
    this.adopted = true;
    return ids;
  }

  /** Policy slot by 'ns/name' (0: none). */
  slotOf(policy: string | null): number {
    return policy === null ? 0 : (this.slots.get(policy) ?? 0);
  }

  /** Slot -> policy name, as written. */
  names(): Map<number, string> {
    return new Map([...this.slots].map(([n, s]) => [s, n]));
  }

  takeFailures(): { map: string; key: string; error: string }[] {
    const f = this.failures;
    this.failures = [];
    return f;
  }

  private blocksOf(identity: number): [Map<string, PolicyBlock>, Map<string, PolicyBlock>] {
    let b = this.blocks.get(identity);
    if (!b) this.blocks.set(identity, (b = [new Map(), new Map()]));
    return b;
  }

  private op(map: string, key: string, f: () => void): boolean {
    try {
      f();
      this.stats.writes++;
      return true;
    } catch (e) {
      this.stats.errors++;
      this.failures.push({ map, key, error: errText(e) });
      return false;
    }
  }

  apply(want: DesiredPolicyMaps): PolicyWriteResult {
    const t0 = performance.now();
    if (!this.adopted) this.adopt();
    this.stats.applies++;
    const before = { writes: this.stats.writes, errors: this.stats.errors };
    let keys = 0;

    // 1. names of new policies (their slots appear in keys and endpoints)
    const used = new Set(this.slots.values());
    let next = 1;
    for (const p of want.policies) {
      if (this.slots.has(p)) continue;
      while (used.has(next)) next++;
      if (next >= POLICY_SLOTS) break; // no slot: its keys name slot 0 ("a policy"), counts go unattributed
      const name = cString(p, POLICY_NAME_LEN);
      const slot = next;
      if (name && this.op('weir_policy_names', p, () => this.maps.names.set(slot, { name }))) {
        this.slots.set(p, slot);
        used.add(slot);
      }
    }

    // 2. identities (their keys: adopted after a restart)
    for (const [id, key] of want.identities) {
      if (this.identities.get(id) === key) continue;
      const b = cString(key, IDENTITY_KEY_LEN);
      if (!b) {
        // too long to keep: not adopted after a restart (a new id then), never wrong
        if (this.identities.has(id)) this.op('weir_identities', String(id), () => this.maps.identities.delete(id));
        this.identities.delete(id);
        continue;
      }
      if (this.op('weir_identities', String(id), () => this.maps.identities.set(id, { key: b }))) this.identities.set(id, key);
    }

    // 3. policy keys of every local identity: added (and changed) now, stale ones after the endpoints
    const stale: PolicyBlock[] = [];
    const slotOf = (p: string): number => this.slotOf(p);
    for (const [identity, dirs] of want.policy) {
      const from = this.writtenFrom.get(identity);
      if (from && from[0] === dirs.ingress && from[1] === dirs.egress) continue;
      const have = this.blocksOf(identity);
      const wantBlocks = [directionBlocks(identity, POLICY_INGRESS, dirs.ingress, slotOf), directionBlocks(identity, POLICY_EGRESS, dirs.egress, slotOf)];
      let ok = true;
      for (let d = 0; d < 2; d++) {
        const add: PolicyBlock[] = [];
        for (const [t, b] of wantBlocks[d]!) {
          const h = have[d]!.get(t);
          if (!h || h.value.policy !== b.value.policy || h.value.rule !== b.value.rule) add.push(b);
        }
        for (const [t, b] of have[d]!) if (!wantBlocks[d]!.has(t)) stale.push(b);
        ok = this.writeBlocks(add, have[d]!) && ok;
        keys += add.length;
      }
      if (ok) this.writtenFrom.set(identity, [dirs.ingress, dirs.egress]);
      else this.writtenFrom.delete(identity);
    }
    for (const [identity, b] of this.blocks) if (!want.policy.has(identity)) for (const m of b) stale.push(...m.values());

    // which policies select each local identity (the CLI's view only)
    const wantSelects = new Map<string, number>();
    for (const [identity, dirs] of want.policy) {
      for (const p of dirs.ingress.policies)
        wantSelects.set(`${identity}/${this.slotOf(p)}`, (wantSelects.get(`${identity}/${this.slotOf(p)}`) ?? 0) | SELECT_INGRESS);
      for (const p of dirs.egress.policies)
        wantSelects.set(`${identity}/${this.slotOf(p)}`, (wantSelects.get(`${identity}/${this.slotOf(p)}`) ?? 0) | SELECT_EGRESS);
    }
    const selects = this.maps.selects;
    if (selects) {
      for (const [t, flags] of wantSelects) {
        if (this.selects.get(t) === flags || t.endsWith('/0')) continue;
        const [identity, policy] = t.split('/').map(Number) as [number, number];
        if (this.op('weir_policy_selects', t, () => selects.set({ identity, policy }, { flags }))) this.selects.set(t, flags);
      }
      for (const t of [...this.selects.keys()]) {
        if (wantSelects.has(t)) continue;
        const [identity, policy] = t.split('/').map(Number) as [number, number];
        if (this.op('weir_policy_selects', t, () => selects.delete({ identity, policy }))) this.selects.delete(t);
      }
    }

    // 4. ipcache upserts
    for (const [cidr, v] of want.ipcache) {
      const h = this.ipcache.get(cidr);
      if (h && h.identity === v.identity && h.cidr_identity === v.cidr_identity) continue;
      const c = parseCidr(cidr)!;
      if (this.op('weir_ipcache4', cidr, () => this.maps.ipcache.set({ prefixlen: c.prefix, address: c.address }, v))) this.ipcache.set(cidr, v);
    }

    // the /32 entries again in the hash the programs look up first (before the endpoints, as the trie's)
    const hostMap = this.maps.ipcacheHosts;
    if (hostMap) {
      const add: [{ address: string }, WeirIpcache4][] = [];
      for (const [cidr, v] of want.ipcache) {
        if (!cidr.endsWith('/32')) continue;
        const address = cidr.slice(0, -3);
        const h = this.hosts.get(address);
        if (!h || h.identity !== v.identity || h.cidr_identity !== v.cidr_identity) add.push([{ address }, v]);
      }
      if (add.length > 0) {
        try {
          hostMap.setMany(add);
          for (const [k, v] of add) this.hosts.set(k.address, v);
          this.stats.writes += add.length;
        } catch {
          for (const [k, v] of add) if (this.op('weir_ipcache4_hosts', k.address, () => hostMap.set(k, v))) this.hosts.set(k.address, v);
        }
      }
    }

    // 5. endpoints: the switch to the new identity / isolation
    for (const [address, e] of want.endpoints) {
      const v: EndpointValue = {
        identity: e.identity,
        flags: e.flags,
        ingress_policy: this.slotOf(e.ingressPolicy),
        egress_policy: this.slotOf(e.egressPolicy),
      };
      const h = this.endpoints.get(address);
      if (h && h.identity === v.identity && h.flags === v.flags && h.ingress_policy === v.ingress_policy && h.egress_policy === v.egress_policy) continue;
      if (this.op('weir_endpoints4', address, () => this.maps.endpoints.set({ address }, v))) this.endpoints.set(address, v);
    }

    // IPv6 fails closed: isolation written as the IPv4 endpoints' is, lifted after them
    const e6 = this.maps.endpoints6;
    if (e6)
      for (const [address, flags] of want.endpoints6)
        if (this.endpoints6.get(address) !== flags && this.op('weir_endpoints6', address, () => e6.set({ address }, { flags })))
          this.endpoints6.set(address, flags);

    // 6. deletions: endpoints, ipcache entries, stale keys, identities, names
    if (e6)
      for (const address of [...this.endpoints6.keys()])
        if (!want.endpoints6.has(address) && this.op('weir_endpoints6', address, () => e6.delete({ address }))) this.endpoints6.delete(address);
    for (const address of [...this.endpoints.keys()])
      if (!want.endpoints.has(address) && this.op('weir_endpoints4', address, () => this.maps.endpoints.delete({ address }))) this.endpoints.delete(address);
    for (const cidr of [...this.ipcache.keys()]) {
      if (want.ipcache.has(cidr)) continue;
      const c = parseCidr(cidr)!;
      if (this.op('weir_ipcache4', cidr, () => this.maps.ipcache.delete({ prefixlen: c.prefix, address: c.address }))) this.ipcache.delete(cidr);
    }
    for (const b of stale) {
      if (this.op('weir_policy4', blockText(b.key), () => this.maps.policy.delete(b.key))) {
        const have = this.blocks.get(b.key.identity);
        have?.[b.key.direction === POLICY_EGRESS ? 1 : 0].delete(blockText(b.key));
        if (have && have[0].size === 0 && have[1].size === 0) this.blocks.delete(b.key.identity);
        keys++;
      }
    }
    for (const identity of [...this.writtenFrom.keys()]) if (!want.policy.has(identity)) this.writtenFrom.delete(identity);
    for (const id of [...this.identities.keys()])
      if (!want.identities.has(id) && this.op('weir_identities', String(id), () => this.maps.identities.delete(id))) this.identities.delete(id);
    const wanted = new Set(want.policies);
    if (hostMap)
      for (const address of [...this.hosts.keys()])
        if (!want.ipcache.has(`${address}/32`) && this.op('weir_ipcache4_hosts', address, () => hostMap.delete({ address }))) this.hosts.delete(address);
    for (const [p, slot] of [...this.slots]) if (!wanted.has(p) && this.op('weir_policy_names', p, () => this.maps.names.delete(slot))) this.slots.delete(p);

    return {
      writes: this.stats.writes - before.writes,
      errors: this.stats.errors - before.errors,
      endpoints: this.endpoints.size,
      identities: this.identities.size,
      ipcache: this.ipcache.size,
      keys,
      ms: performance.now() - t0,
    };
  }

  /** Batch-writes blocks (one syscall; element by element where the kernel has no batch op for tries). */
  private writeBlocks(add: PolicyBlock[], have: Map<string, PolicyBlock>): boolean {
    if (add.length === 0) return true;
    try {
      this.maps.policy.setMany(add.map((b) => [b.key, b.value] as const));
      for (const b of add) have.set(blockText(b.key), b);
      this.stats.writes += add.length;
      return true;
    } catch {
      // a full map or a partial batch: element by element, so what fits is written and the rest named
      let ok = true;
      for (const b of add) {
        if (this.op('weir_policy4', blockText(b.key), () => this.maps.policy.set(b.key, b.value))) have.set(blockText(b.key), b);
        else ok = false;
      }
      return ok;
    }
  }
}
