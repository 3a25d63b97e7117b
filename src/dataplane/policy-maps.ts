// dataplane/policy-maps: the NetworkPolicy maps (bpf-c/include/weir/policy.h) as the daemon
// writes them. What they should hold comes from policy-entries.ts (desiredPolicyMaps, pure);
// PolicyWriter writes only the difference to what the maps hold, in an order that never opens
// a gap: names, identities, policy keys and ipcache entries first, endpoints (which switch a
// pod to its new identity or isolation) next, deletions last.
//
// Policy keys are written per local *identity*, not per pod: pods sharing an identity share
// their rules (the model guarantees it), so a pod relabelled into an identity this node
// already has costs one endpoint write, and a scale-up of a workload costs none.

import type {
  BpfMap,
  TypedMap,
  WeirEndpoint4,
  WeirEndpoint4Key,
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
import type { IpFamily } from '../bpf/ip.js';
import { parseCidr } from '../bpf/ip.js';
import { errText } from '../log.js';
import { FIRST_CIDR_IDENTITY } from '../model/policy/identities.js';
import type { DirectionPolicy } from '../model/policy/policy-types.js';
import {
  blockText,
  cString,
  directionBlocks,
  fromCString,
  IDENTITY_KEY_LEN,
  POLICY_EGRESS,
  POLICY_INGRESS,
  POLICY_NAME_LEN,
  POLICY_SLOTS,
  SELECT_EGRESS,
  SELECT_INGRESS,
  familyOf,
  hostPrefix,
  type DesiredPolicyMaps,
  type PolicyBlock,
} from './policy-entries.js';

export * from './policy-entries.js';

/**
 * One family's address maps: the ipcache (LPM), its host entries again as a hash the programs
 * look up first (an accelerator), and this node's endpoints. The IPv4 and IPv6 maps have one
 * shape (16-byte addresses as text), so one code path writes and reads both.
 */
export interface AddressMaps {
  ipcache: TypedMap<WeirIpcache4Key, WeirIpcache4>;
  endpoints: TypedMap<WeirEndpoint4Key, WeirEndpoint4>;
  ipcacheHosts?: TypedMap<WeirIpcache4HostKey, WeirIpcache4>;
}

/** The maps, typed (loader.ts policyMaps): IPv4's address maps, the family-neutral ones, IPv6's address maps. */
export interface PolicyMaps extends AddressMaps {
  policy: TypedMap<WeirPolicy4Key, WeirPolicy4>;
  names: TypedMap<number, WeirPolicyName>;
  identities: TypedMap<number, WeirIdentityKey>;
  /** weir_ipcache6, weir_ipcache6_hosts, weir_endpoints6 (absent on the pins of a release without IPv6 policy) */
  ipv6?: AddressMaps;
  /** which policies select each local identity (for `weir policy`; the programs never read it) */
  selects?: TypedMap<WeirPolicySelectKey, WeirPolicySelect>;
  /** per-CPU weir_policy_stats, read by the metrics */
  stats?: BpfMap;
}

/** The address maps of `family`, with the names they are pinned (and logged) under; undefined when absent. */
export function addressMaps(
  maps: Pick<PolicyMaps, 'ipcache' | 'endpoints' | 'ipcacheHosts' | 'ipv6'>,
  family: IpFamily,
): (AddressMaps & { names: { ipcache: string; hosts: string; endpoints: string } }) | undefined {
  const m = family === 4 ? maps : maps.ipv6;
  if (!m) return undefined;
  const ipcacheHosts = m.ipcacheHosts;
  const names = { ipcache: `weir_ipcache${family}`, hosts: `weir_ipcache${family}_hosts`, endpoints: `weir_endpoints${family}` };
  return { ipcache: m.ipcache, endpoints: m.endpoints, ...(ipcacheHosts && { ipcacheHosts }), names };
}

export const FAMILIES: readonly IpFamily[] = [4, 6];

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
  /** canonical `address/prefix` of either family -> value, as in weir_ipcache4 / weir_ipcache6 */
  private ipcache = new Map<string, WeirIpcache4>();
  /** address of either family -> value, as in weir_endpoints4 / weir_endpoints6 */
  private endpoints = new Map<string, EndpointValue>();
  /** identity -> direction -> written blocks, and the DirectionPolicy they were written from */
  private blocks = new Map<number, [Map<string, PolicyBlock>, Map<string, PolicyBlock>]>();
  private writtenFrom = new Map<number, [DirectionPolicy | null, DirectionPolicy | null]>();
  /** address -> value, as in weir_ipcache4_hosts and weir_ipcache6_hosts */
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
    this.hosts.clear();
    for (const family of FAMILIES) {
      const m = addressMaps(this.maps, family);
      if (!m) continue;
      if (m.ipcacheHosts) for (const [k, v] of m.ipcacheHosts.entries()) this.hosts.set(k.address, v);
      for (const [k, v] of m.ipcache.entries()) {
        const c = parseCidr(`${k.address}/${k.prefixlen}`);
        if (c) this.ipcache.set(`${c.address}/${c.prefix}`, v);
      }
      for (const [k, v] of m.endpoints.entries()) this.endpoints.set(k.address, v);
    }
    if (this.maps.selects) for (const [k, v] of this.maps.selects.entries()) this.selects.set(`${k.identity}/${k.policy}`, v.flags);
    for (const [slot, v] of this.maps.names.entries()) this.slots.set(fromCString(v.name), slot);
    for (const [id, v] of this.maps.identities.entries()) {
      const key = fromCString(v.key);
      this.identities.set(id, key);
      if (id >= FIRST_CIDR_IDENTITY) ids.cidrIdentities.set(key, id);
      else ids.podIdentities.set(key, id);
    }
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
        const written = have[d]!;
        ok =
          this.writeBatch(
            this.maps.policy,
            'weir_policy4',
            add.map((b) => [b.key, b.value] as const),
            blockText,
            (key, value) => written.set(blockText(key), { key, value }),
          ) && ok;
        keys += add.length;
      }
      if (ok) this.writtenFrom.set(identity, [dirs.ingress, dirs.egress]);
      else this.writtenFrom.delete(identity);
    }
    for (const [identity, b] of this.blocks) if (!want.policy.has(identity)) for (const m of b) stale.push(...m.values());

    // which policies select each local identity (the CLI's view only)
    const wantSelects = new Map<string, number>();
    for (const [identity, dirs] of want.policy)
      for (const [d, flag] of [
        [dirs.ingress, SELECT_INGRESS],
        [dirs.egress, SELECT_EGRESS],
      ] as const)
        for (const p of d.policies) {
          const t = `${identity}/${this.slotOf(p)}`;
          wantSelects.set(t, (wantSelects.get(t) ?? 0) | flag);
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

    // 4. ipcache upserts, each address into its family's map
    for (const [cidr, v] of want.ipcache) {
      const h = this.ipcache.get(cidr);
      if (h && h.identity === v.identity && h.cidr_identity === v.cidr_identity) continue;
      const c = parseCidr(cidr)!;
      const m = addressMaps(this.maps, c.family);
      if (!m) continue; // the CLI's maps of a release without IPv6 policy: nothing to write into
      if (this.op(m.names.ipcache, cidr, () => m.ipcache.set({ prefixlen: c.prefix, address: c.address }, v))) this.ipcache.set(cidr, v);
    }

    // the host entries again in the hash the programs look up first (before the endpoints, as the trie's)
    for (const family of FAMILIES) {
      const m = addressMaps(this.maps, family);
      const hostMap = m?.ipcacheHosts;
      if (!m || !hostMap) continue;
      const suffix = `/${hostPrefix(family)}`;
      const add: [{ address: string }, WeirIpcache4][] = [];
      for (const [cidr, v] of want.ipcache) {
        if (!cidr.endsWith(suffix) || familyOf(cidr) !== family) continue;
        const address = cidr.slice(0, -suffix.length);
        const h = this.hosts.get(address);
        if (!h || h.identity !== v.identity || h.cidr_identity !== v.cidr_identity) add.push([{ address }, v]);
      }
      this.writeBatch(
        hostMap,
        m.names.hosts,
        add,
        (k) => k.address,
        (k, v) => this.hosts.set(k.address, v),
      );
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
      const m = addressMaps(this.maps, familyOf(address));
      if (m && this.op(m.names.endpoints, address, () => m.endpoints.set({ address }, v))) this.endpoints.set(address, v);
    }

    // 6. deletions: endpoints, ipcache entries, stale keys, identities, names
    for (const address of [...this.endpoints.keys()]) {
      const m = addressMaps(this.maps, familyOf(address));
      if (!want.endpoints.has(address) && m && this.op(m.names.endpoints, address, () => m.endpoints.delete({ address }))) this.endpoints.delete(address);
    }
    for (const cidr of [...this.ipcache.keys()]) {
      if (want.ipcache.has(cidr)) continue;
      const c = parseCidr(cidr)!;
      const m = addressMaps(this.maps, c.family);
      if (m && this.op(m.names.ipcache, cidr, () => m.ipcache.delete({ prefixlen: c.prefix, address: c.address }))) this.ipcache.delete(cidr);
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
    for (const address of [...this.hosts.keys()]) {
      const family = familyOf(address);
      const hostMap = addressMaps(this.maps, family)?.ipcacheHosts;
      if (
        hostMap &&
        !want.ipcache.has(`${address}/${hostPrefix(family)}`) &&
        this.op(`weir_ipcache${family}_hosts`, address, () => hostMap.delete({ address }))
      )
        this.hosts.delete(address);
    }
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

  /**
   * Writes `add` into `map` in one batch (element by element where the kernel has no batch op,
   * as for tries), calling `written` for each entry written. On a full map or a partial batch
   * it goes element by element, so what fits is written and the rest named. False if any failed.
   */
  private writeBatch<K, V>(map: TypedMap<K, V>, name: string, add: (readonly [K, V])[], text: (k: K) => string, written: (k: K, v: V) => void): boolean {
    if (add.length === 0) return true;
    try {
      map.setMany(add);
      for (const [k, v] of add) written(k, v);
      this.stats.writes += add.length;
      return true;
    } catch {
      let ok = true;
      for (const [k, v] of add) {
        if (this.op(name, text(k), () => map.set(k, v))) written(k, v);
        else ok = false;
      }
      return ok;
    }
  }
}
