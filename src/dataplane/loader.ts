// dataplane/loader: loads the dataplane objects of the hook table (hooks.ts: build/bpf/
// {from_pod,to_pod,from_host,sock_lb}.o, in its order) with one pin directory per instance,
// <bpf-root>/weir/<instance>, so their maps are shared by name across objects and survive
// daemon restarts. Sets each object's .rodata knobs (the table's, those the object declares)
// and the configured map sizes (map-sizes.ts) before load.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { IpFamily } from '../bpf/ip.js';
import {
  Btf,
  BpfMap,
  BpfObject,
  codecFor,
  type ConstValue,
  netnsCookie,
  type TypedMap,
  typedMap,
  u8,
  u32,
  type WeirAffinity4,
  type WeirAffinity4Key,
  type WeirDsrOptout4Key,
  type WeirDsrOptout6Key,
  type WeirIface,
  type WeirMaglev4,
  type WeirMaglev4Key,
  type WeirNode4,
  type WeirNode4Key,
  type WeirNode6,
  type WeirNode6Key,
  type WeirTunnel4,
  type WeirTunnel4Key,
  type WeirTunnel6,
  type WeirTunnel6Key,
} from '../bpf/index.js';
import { packageRoot } from '../package-root.js';
import { preparePinDir } from './bpffs.js';
import type { CtMap } from './conntrack-gc.js';
import type { FamilyMaps } from './reconcile.js';
import { hostPolicyMaps, type HostPolicyMaps } from './host-policy-sync.js';
import { knobsFor, OBJECT_NAMES, OBJECTS, type ObjectSpec, type ExternalServiceMode, type KnobInputs, type ObjectName, type SockLbMode } from './hooks.js';
import { MAGLEV_DEFAULT_TABLE_SIZE } from './maglev.js';
import { resolveMaxEntries, type MapSizes } from './map-sizes.js';
import { MapUpgrade } from './map-upgrade.js';
import type { PodAddrMaps } from './pod-sources.js';
import type { PolicyMaps } from './policy-maps.js';

export { OBJECT_NAMES, type ObjectName, type SockLbMode } from './hooks.js';

export function defaultObjectDir(): string {
  return process.env.WEIR_BPF_DIR ?? join(packageRoot(), 'build', 'bpf');
}

// the pin directory and its checks live in bpffs.ts (root resolution, mounting)
export { mountTypeOf, preparePinDir } from './bpffs.js';

/** A weir_sock_destroy4 / weir_sock_destroy6 key (one shape: the address is text of the map's family). */
export interface SockDestroyKey {
  address: string;
  port: number;
  pad?: number;
}

/** The service maps of one address family: the ABI's *4 and *6 maps have one shape each, with
 *  addresses as text, so the reconciler and the clean-up take either family's alike. */
export interface FamilyServiceMaps extends FamilyMaps {
  affinity: TypedMap<WeirAffinity4Key, WeirAffinity4>;
  conntrack: CtMap;
  /** peers whose connected UDP sockets the iterator destroys; optional where the object lacks it */
  sockDestroy?: TypedMap<SockDestroyKey, number>;
  /** per-CPU new connections per {frontend id, backend} (lb-stats.ts); optional for fakes */
  lbStats?: BpfMap;
}

/** The pinned maps of each family's services, by role: `[pin name, BTF key type, BTF value type]`
 *  (null value: a __u8 flag). Maglev tables are one map for both families (weir_maglev4). */
export const FAMILY_SERVICE_MAPS = {
  4: {
    frontends: ['weir_frontend4', 'weir_frontend4_key', 'weir_frontend4'],
    backends: ['weir_backend4', 'weir_backend4_key', 'weir_backend4'],
    affinity: ['weir_affinity4', 'weir_affinity4_key', 'weir_affinity4'],
    conntrack: ['weir_ct4_v2', 'weir_ct4_key', 'weir_ct4'],
    sockDestroy: ['weir_sock_destroy4', 'weir_sock_destroy4_key', null],
    sourceRanges: ['weir_lb_src4', 'weir_lb_src4_key', null],
    lbStats: ['weir_lb_stats4', 'weir_lb_stats4_key', 'weir_lb_stats4'],
  },
  6: {
    frontends: ['weir_frontend6', 'weir_frontend6_key', 'weir_frontend6'],
    backends: ['weir_backend6', 'weir_backend6_key', 'weir_backend6'],
    affinity: ['weir_affinity6', 'weir_affinity6_key', 'weir_affinity6'],
    conntrack: ['weir_ct6', 'weir_ct6_key', 'weir_ct6'],
    sockDestroy: ['weir_sock_destroy6', 'weir_sock_destroy6_key', null],
    sourceRanges: ['weir_lb_src6', 'weir_lb_src6_key', null],
    lbStats: ['weir_lb_stats6', 'weir_lb_stats6_key', 'weir_lb_stats6'],
  },
} as const satisfies Record<IpFamily, Record<string, readonly [string, string, string | null]>>;

export type FamilyServiceMapRole = keyof (typeof FAMILY_SERVICE_MAPS)[4];

/** The IPv4 service maps and the node-wide ones; `ipv6` once the objects declare the IPv6 maps. */
export interface ServiceMaps extends FamilyServiceMaps {
  sockDestroy: TypedMap<SockDestroyKey, number>;
  /** the IPv6 service maps; absent with objects of a release before them (its frontends are skipped) */
  ipv6?: FamilyServiceMaps;
  /** Maglev tables per frontend id, both families (maglev-tables.ts); optional for fakes */
  maglev?: TypedMap<WeirMaglev4Key, WeirMaglev4>;
  /** the workload interfaces of this node, for the forward stage (iface-table.ts); optional for fakes */
  ifaces?: TypedMap<number, WeirIface>;
  /** clients that keep tunnel mode under DSR (dsr-optout.ts); optional for fakes */
  dsrOptout?: TypedMap<WeirDsrOptout4Key, number>;
  /** the other nodes' underlay addresses, for decapsulation (node-maps.ts); optional for fakes */
  nodes?: TypedMap<WeirNode4Key, WeirNode4>;
  /** pod prefixes on other nodes -> that node, for encapsulation (node-maps.ts); optional for fakes */
  tunnel?: TypedMap<WeirTunnel4Key, WeirTunnel4>;
  /** the IPv6 tunnel's: weir_dsr_optout6, weir_nodes6, weir_tunnel6 (tunnel6.h); optional for fakes */
  dsrOptout6?: TypedMap<WeirDsrOptout6Key, number>;
  nodes6?: TypedMap<WeirNode6Key, WeirNode6>;
  tunnel6?: TypedMap<WeirTunnel6Key, WeirTunnel6>;
  /** the NetworkPolicy maps (policy-maps.ts); optional for fakes */
  policy?: PolicyMaps;
  /** each pod address -> the interface it may send from, per family (pod-sources.ts); optional for fakes */
  podAddrs?: PodAddrMaps;
}

/** A typed view of one of a family's service maps. */
function typedRole(family: IpFamily, role: FamilyServiceMapRole, m: (name: string) => BpfMap): TypedMap<never, never> {
  const [name, key, value] = FAMILY_SERVICE_MAPS[family][role];
  return typedMap(m(name), codecFor(key) as never, (value === null ? u8 : codecFor(value)) as never);
}

/**
 * Typed views of one family's service maps, through `m` (a map by name) where `has` says the
 * map exists; null when its frontend, backend, affinity or conntrack map is missing (objects
 * or pins of a release before that family's maps).
 */
export function familyServiceMaps(family: IpFamily, m: (name: string) => BpfMap, has: (name: string) => boolean): FamilyServiceMaps | null {
  const abi = FAMILY_SERVICE_MAPS[family];
  if (!(['frontends', 'backends', 'affinity', 'conntrack'] as const).every((r) => has(abi[r][0]))) return null;
  const t = (role: FamilyServiceMapRole) => typedRole(family, role, m);
  const out: FamilyServiceMaps = { frontends: t('frontends'), backends: t('backends'), affinity: t('affinity'), conntrack: t('conntrack') };
  if (has(abi.sockDestroy[0])) out.sockDestroy = t('sockDestroy');
  if (has(abi.sourceRanges[0])) out.sourceRanges = t('sourceRanges');
  if (has(abi.lbStats[0])) out.lbStats = m(abi.lbStats[0]);
  return out;
}

/** Each family with service maps, and its maps: the family as a value, one code path. */
export function serviceFamilies(maps: ServiceMaps): Array<[IpFamily, FamilyServiceMaps]> {
  return maps.ipv6
    ? [
        [4, maps],
        [6, maps.ipv6],
      ]
    : [[4, maps]];
}

/** Typed views of the service maps of a loaded object set (any object holding them). */
export function serviceMaps(objects: Record<ObjectName, BpfObject>): ServiceMaps {
  const m = (name: string) => mapOf(objects, name);
  const has = (name: string) => Object.values(objects).some((o) => o.mapNames().includes(name));
  const four = familyServiceMaps(4, m, has);
  if (!four?.sockDestroy) throw new Error('the loaded objects lack the IPv4 service maps (run make build)');
  const ipv6 = familyServiceMaps(6, m, has);
  return {
    ...four,
    sockDestroy: four.sockDestroy,
    ...(ipv6 ? { ipv6 } : {}),
    maglev: typedMap(m('weir_maglev4'), codecFor('weir_maglev4_key'), codecFor('weir_maglev4')),
    ifaces: typedMap(m('weir_ifaces'), u32, codecFor('weir_iface')),
    dsrOptout: typedMap(m('weir_dsr_optout4'), codecFor('weir_dsr_optout4_key'), u8),
    nodes: typedMap(m('weir_nodes4'), codecFor('weir_node4_key'), codecFor('weir_node4')),
    tunnel: typedMap(m('weir_tunnel4'), codecFor('weir_tunnel4_key'), codecFor('weir_tunnel4')),
    ...(has('weir_tunnel6') ? ipv6TunnelMaps(m) : {}),
    policy: policyMaps(m),
    ...(has('weir_pod_addrs4') ? { podAddrs: podAddrMaps(m) } : {}),
  };
}

/** Typed views of the source check's maps (include/weir/pod_source.h). */
export function podAddrMaps(m: (name: string) => BpfMap): PodAddrMaps {
  return {
    4: typedMap(m('weir_pod_addrs4'), codecFor('weir_pod_addr4_key'), codecFor('weir_pod_addr')),
    6: typedMap(m('weir_pod_addrs6'), codecFor('weir_pod_addr6_key'), codecFor('weir_pod_addr')),
  };
}

/** The IPv6 tunnel's maps (tunnel6.h; objects of a release before it have none). */
function ipv6TunnelMaps(m: (name: string) => BpfMap): Pick<ServiceMaps, 'dsrOptout6' | 'nodes6' | 'tunnel6'> {
  return {
    dsrOptout6: typedMap(m('weir_dsr_optout6'), codecFor('weir_dsr_optout6_key'), u8),
    nodes6: typedMap(m('weir_nodes6'), codecFor('weir_node6_key'), codecFor('weir_node6')),
    tunnel6: typedMap(m('weir_tunnel6'), codecFor('weir_tunnel6_key'), codecFor('weir_tunnel6')),
  };
}

/** Typed views of the NetworkPolicy maps (include/weir/policy.h). */
export function policyMaps(m: (name: string) => BpfMap, has: (name: string) => boolean = () => true): PolicyMaps {
  // the optional ones only where `has` says so (the CLI on pins of a release without them)
  const opt = <T>(name: string, f: () => T): T | undefined => (has(name) ? f() : undefined);
  const maps: PolicyMaps = {
    ipcache: typedMap(m('weir_ipcache4'), codecFor('weir_ipcache4_key'), codecFor('weir_ipcache4')),
    endpoints: typedMap(m('weir_endpoints4'), codecFor('weir_endpoint4_key'), codecFor('weir_endpoint4')),
    policy: typedMap(m('weir_policy4'), codecFor('weir_policy4_key'), codecFor('weir_policy4')),
    names: typedMap(m('weir_policy_names'), u32, codecFor('weir_policy_name')),
    identities: typedMap(m('weir_identities'), u32, codecFor('weir_identity_key')),
  };
  const ipcacheHosts = opt('weir_ipcache4_hosts', () => typedMap(m('weir_ipcache4_hosts'), codecFor('weir_ipcache4_host_key'), codecFor('weir_ipcache4')));
  const ipv6 = opt('weir_ipcache6', () => ({
    ipcache: typedMap(m('weir_ipcache6'), codecFor('weir_ipcache6_key'), codecFor('weir_ipcache6')),
    endpoints: typedMap(m('weir_endpoints6'), codecFor('weir_endpoint6_key'), codecFor('weir_endpoint6')),
    ipcacheHosts: typedMap(m('weir_ipcache6_hosts'), codecFor('weir_ipcache6_host_key'), codecFor('weir_ipcache6')),
  }));
  const selects = opt('weir_policy_selects', () => typedMap(m('weir_policy_selects'), codecFor('weir_policy_select_key'), codecFor('weir_policy_select')));
  const stats = opt('weir_policy_stats', () => m('weir_policy_stats'));
  return { ...maps, ...(ipcacheHosts && { ipcacheHosts }), ...(ipv6 && { ipv6 }), ...(selects && { selects }), ...(stats && { stats }) };
}

export interface LoadOptions {
  bpfRoot: string;
  instance: string;
  sockLbMode: SockLbMode;
  /** count new connections per backend in weir_lb_stats4 (--service-stats); default true */
  serviceStats?: boolean;
  /** conntrack for every flow (the ct_track_all knob); default false until NetworkPolicy needs it */
  ctTrackAll?: boolean;
  /** M of the Maglev tables (the maglev_table_size knob); default MAGLEV_DEFAULT_TABLE_SIZE */
  maglevTableSize?: number;
  /** the tunnel's UDP port (the tunnel_port knob); default TUNNEL_DEFAULT_PORT */
  tunnelPort?: number;
  /** the external_service_mode knob; default 'tunnel' */
  externalServiceMode?: ExternalServiceMode;
  /** enforce NetworkPolicy (the policy_enabled knob; implies ctTrackAll, as hostPolicy does); default false */
  networkPolicy?: boolean;
  /** per-policy counts (the policy_stats_enabled knob); default true */
  policyStats?: boolean;
  /** drop what a pod sends from an address not its own (the pod_source_check knob); default false */
  podSourceCheck?: boolean;
  /** map sizes given (--ct-map-size, ...; map-sizes.ts), each for both families: a pinned map of
   *  another size is resized. Unset: a pinned map keeps its size, a new one gets the default */
  mapSizes?: Partial<MapSizes>;
  /** default: build/bpf of the package */
  objectDir?: string;
  /** --host-policy: load the host policy objects (hooks.ts `hostPolicy`); default false */
  hostPolicy?: boolean;
}

export interface LoadedDataplane {
  pinDir: string;
  objects: Record<ObjectName, BpfObject>;
  maps: ServiceMaps;
  hostNetnsCookie: bigint;
  /** the host policy maps (host-policy-sync.ts); absent when no loaded object declares them */
  hostPolicy?: HostPolicyMaps;
  /** host policy objects asked for (--host-policy on) whose files are missing: not loaded, logged loudly */
  missingObjects: string[];
  /** knobs the hook table gives an object whose file does not declare them (not set) */
  missingKnobs: { object: ObjectName; knob: string }[];
  /** the earlier run's pinned state brought to this release's layouts (map-upgrade.ts):
   *  converted at load; the caller runs finish() once the programs are swapped on the links */
  upgrade: MapUpgrade;
  close(): void;
}

/** Loads the four objects into the instance's pin directory. Maps already pinned there are adopted. */
export function loadDataplane(opts: LoadOptions): LoadedDataplane {
  const plan = planLoad(opts);
  const upgrade = MapUpgrade.prepare(
    plan.pinDir,
    plan.objects.map((o) => o.path),
    undefined,
    plan.maxEntries,
  );
  const loaded: BpfObject[] = [];
  try {
    for (const o of plan.objects) loaded.push(BpfObject.load(o.path, { pinDir: plan.pinDir, consts: o.consts, maxEntries: plan.maxEntries }));
    return assemble(plan, loaded, upgrade);
  } catch (e) {
    upgrade.close();
    for (const o of loaded) o.close();
    throw e;
  }
}

/**
 * loadDataplane with each object's load (the verifier: ~0.7 s in all) on a worker thread,
 * so the caller can read its source meanwhile. The objects still load one after another:
 * the first creates the pinned maps the others reuse.
 */
export async function loadDataplaneAsync(opts: LoadOptions): Promise<LoadedDataplane> {
  const plan = planLoad(opts);
  const upgrade = MapUpgrade.prepare(
    plan.pinDir,
    plan.objects.map((o) => o.path),
    undefined,
    plan.maxEntries,
  );
  const loaded: BpfObject[] = [];
  try {
    for (const o of plan.objects) loaded.push(await BpfObject.loadAsync(o.path, { pinDir: plan.pinDir, consts: o.consts, maxEntries: plan.maxEntries }));
    return assemble(plan, loaded, upgrade);
  } catch (e) {
    upgrade.close();
    for (const o of loaded) o.close();
    throw e;
  }
}

interface LoadPlan {
  pinDir: string;
  /** max_entries by pin name, the same in every object (they share the pins) */
  maxEntries: Record<string, number>;
  hostNetnsCookie: bigint;
  objects: { name: ObjectName; path: string; consts: Record<string, ConstValue>; missingKnobs: string[] }[];
  missingObjects: string[];
}

/** The `.rodata` variable names of an object file, read from its BTF (none without a .rodata). */
export function rodataNames(path: string): Set<string> {
  const btf = Btf.fromFile(path);
  if (btf.find('.rodata', 'datasec') === null) return new Set();
  return new Set(btf.datasec('.rodata').map((v) => v.name));
}

function planLoad(opts: LoadOptions): LoadPlan {
  const pinDir = preparePinDir(opts.bpfRoot, opts.instance);
  const dir = opts.objectDir ?? defaultObjectDir();
  // the netns this daemon runs in is "the host" for the socket LB's host-only mode
  const hostNetnsCookie = netnsCookie();
  const inputs: KnobInputs = {
    serviceStats: opts.serviceStats !== false,
    sockLbMode: opts.sockLbMode,
    hostNetnsCookie,
    // policy (pod or host) decides each flow once and caches the verdict: every flow needs
    // conntrack (host policy: replies of flows into the node must not meet to_host's chains)
    ctTrackAll: opts.ctTrackAll === true || opts.networkPolicy === true || opts.hostPolicy === true,
    networkPolicy: opts.networkPolicy === true,
    policyStats: opts.policyStats !== false,
    podSourceCheck: opts.podSourceCheck === true,
    maglevTableSize: opts.maglevTableSize ?? MAGLEV_DEFAULT_TABLE_SIZE,
    ...(opts.tunnelPort !== undefined ? { tunnelPort: opts.tunnelPort } : {}),
    ...(opts.externalServiceMode !== undefined ? { externalServiceMode: opts.externalServiceMode } : {}),
  };
  const missingObjects: string[] = [];
  const objects = OBJECT_NAMES.flatMap((name) => {
    const path = join(dir, `${name}.o`);
    const spec: ObjectSpec = OBJECTS[name];
    if (spec.hostPolicy && !opts.hostPolicy) return [];
    // a host policy object not built (a tree without its sources): host policy off, said loudly by the daemon
    if (spec.hostPolicy && !existsSync(path)) {
      missingObjects.push(path);
      return [];
    }
    if (!existsSync(path)) throw new Error(`BPF object ${path} is missing (run make build)`);
    const { consts, missing } = knobsFor(name, inputs, rodataNames(path));
    return [{ name, path, consts, missingKnobs: missing }];
  });
  return { pinDir, hostNetnsCookie, objects, missingObjects, maxEntries: resolveMaxEntries(pinDir, opts.mapSizes ?? {}) };
}

/** The loaded object that declares a pinned map (they share it through the pin). */
export function mapOf(objects: Record<ObjectName, BpfObject>, name: string): BpfMap {
  const o = Object.values(objects).find((x) => x.mapNames().includes(name));
  if (!o) throw new Error(`no loaded object declares map ${name}`);
  return o.map(name);
}

/** The host policy maps when a loaded object declares them. */
function hostPolicyOf(objects: Record<ObjectName, BpfObject>): { hostPolicy?: HostPolicyMaps } {
  const has = (name: string) => Object.values(objects).some((o) => o.mapNames().includes(name));
  if (!has('weir_hep_ifaces')) return {};
  return { hostPolicy: hostPolicyMaps((name) => mapOf(objects, name), has) };
}

function assemble(plan: LoadPlan, loaded: BpfObject[], upgrade: MapUpgrade): LoadedDataplane {
  const objects = Object.fromEntries(plan.objects.map((o, i) => [o.name, loaded[i]!])) as Record<ObjectName, BpfObject>;
  upgrade.convert((name) => mapOf(objects, name));
  return {
    upgrade,
    pinDir: plan.pinDir,
    objects,
    maps: serviceMaps(objects),
    ...hostPolicyOf(objects),
    missingObjects: plan.missingObjects,
    hostNetnsCookie: plan.hostNetnsCookie,
    missingKnobs: plan.objects.flatMap((o) => o.missingKnobs.map((knob) => ({ object: o.name, knob }))),
    close: () => {
      upgrade.close();
      for (const o of Object.values(objects)) o.close();
    },
  };
}
