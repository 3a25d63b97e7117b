// dataplane/loader: loads the dataplane objects of the hook table (hooks.ts: build/bpf/
// {from_pod,to_pod,from_host,sock_lb}.o, in its order) with one pin directory per instance,
// <bpf-root>/weir/<instance>, so their maps are shared by name across objects and survive
// daemon restarts. Sets each object's .rodata knobs (the table's, those the object declares)
// before load.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
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
  type WeirBackend4,
  type WeirBackend4Key,
  type WeirCt4,
  type WeirCt4Key,
  type WeirDsrOptout4Key,
  type WeirDsrOptout6Key,
  type WeirFrontend4,
  type WeirFrontend4Key,
  type WeirIface,
  type WeirLbSrc4Key,
  type WeirMaglev4,
  type WeirMaglev4Key,
  type WeirNode4,
  type WeirNode4Key,
  type WeirNode6,
  type WeirNode6Key,
  type WeirSockDestroy4Key,
  type WeirTunnel4,
  type WeirTunnel4Key,
  type WeirTunnel6,
  type WeirTunnel6Key,
} from '../bpf/index.js';
import { packageRoot } from '../package-root.js';
import { preparePinDir } from './bpffs.js';
import { knobsFor, OBJECT_NAMES, type ExternalServiceMode, type KnobInputs, type ObjectName, type SockLbMode } from './hooks.js';
import { MAGLEV_DEFAULT_TABLE_SIZE } from './maglev.js';
import { MapUpgrade } from './map-upgrade.js';
import type { PolicyMaps } from './policy-maps.js';

export { OBJECT_NAMES, type ObjectName, type SockLbMode } from './hooks.js';

export function defaultObjectDir(): string {
  return process.env.WEIR_BPF_DIR ?? join(packageRoot(), 'build', 'bpf');
}

// the pin directory and its checks live in bpffs.ts (root resolution, mounting)
export { mountTypeOf, preparePinDir } from './bpffs.js';

export interface ServiceMaps {
  frontends: TypedMap<WeirFrontend4Key, WeirFrontend4>;
  backends: TypedMap<WeirBackend4Key, WeirBackend4>;
  affinity: TypedMap<WeirAffinity4Key, WeirAffinity4>;
  conntrack: TypedMap<WeirCt4Key, WeirCt4>;
  sockDestroy: TypedMap<WeirSockDestroy4Key, number>;
  /** loadBalancerSourceRanges prefixes per frontend id (weir_lb_src4); optional for fakes */
  sourceRanges?: TypedMap<WeirLbSrc4Key, number>;
  /** Maglev tables per frontend id (maglev-tables.ts); optional for fakes */
  maglev?: TypedMap<WeirMaglev4Key, WeirMaglev4>;
  /** per-CPU new connections per {frontend id, backend} (lb-stats.ts); optional for fakes */
  lbStats?: BpfMap;
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
}

/** Typed views of the service maps of a loaded object set (any object holding them). */
export function serviceMaps(objects: { from_pod: BpfObject; sock_lb: BpfObject; from_host6?: BpfObject }): ServiceMaps {
  const m = (name: string) => objects.from_pod.map(name);
  return {
    frontends: typedMap(m('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4')),
    backends: typedMap(m('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4')),
    affinity: typedMap(m('weir_affinity4'), codecFor('weir_affinity4_key'), codecFor('weir_affinity4')),
    conntrack: typedMap(m('weir_ct4_v2'), codecFor('weir_ct4_key'), codecFor('weir_ct4')),
    sockDestroy: typedMap(objects.sock_lb.map('weir_sock_destroy4'), codecFor('weir_sock_destroy4_key'), u8),
    maglev: typedMap(m('weir_maglev4'), codecFor('weir_maglev4_key'), codecFor('weir_maglev4')),
    lbStats: m('weir_lb_stats4'),
    sourceRanges: typedMap(m('weir_lb_src4'), codecFor('weir_lb_src4_key'), u8),
    ifaces: typedMap(m('weir_ifaces'), u32, codecFor('weir_iface')),
    dsrOptout: typedMap(m('weir_dsr_optout4'), codecFor('weir_dsr_optout4_key'), u8),
    nodes: typedMap(m('weir_nodes4'), codecFor('weir_node4_key'), codecFor('weir_node4')),
    tunnel: typedMap(m('weir_tunnel4'), codecFor('weir_tunnel4_key'), codecFor('weir_tunnel4')),
    ...ipv6TunnelMaps(objects.from_host6),
    policy: policyMaps(m),
  };
}

/** The IPv6 tunnel's maps, from from_host6 (decapsulation; a release before it has none). */
function ipv6TunnelMaps(o: BpfObject | undefined): Pick<ServiceMaps, 'dsrOptout6' | 'nodes6' | 'tunnel6'> {
  if (!o) return {};
  const m = (name: string) => o.map(name);
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
  const endpoints6 = opt('weir_endpoints6', () => typedMap(m('weir_endpoints6'), codecFor('weir_endpoint6_key'), codecFor('weir_endpoint6')));
  const selects = opt('weir_policy_selects', () => typedMap(m('weir_policy_selects'), codecFor('weir_policy_select_key'), codecFor('weir_policy_select')));
  const stats = opt('weir_policy_stats', () => m('weir_policy_stats'));
  return { ...maps, ...(ipcacheHosts && { ipcacheHosts }), ...(endpoints6 && { endpoints6 }), ...(selects && { selects }), ...(stats && { stats }) };
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
  /** enforce NetworkPolicy (the policy_enabled knob; implies ctTrackAll); default false */
  networkPolicy?: boolean;
  /** per-policy counts (the policy_stats_enabled knob); default true */
  policyStats?: boolean;
  /** default: build/bpf of the package */
  objectDir?: string;
}

export interface LoadedDataplane {
  pinDir: string;
  objects: Record<ObjectName, BpfObject>;
  maps: ServiceMaps;
  hostNetnsCookie: bigint;
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
  );
  const loaded: BpfObject[] = [];
  try {
    for (const o of plan.objects) loaded.push(BpfObject.load(o.path, { pinDir: plan.pinDir, consts: o.consts }));
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
  );
  const loaded: BpfObject[] = [];
  try {
    for (const o of plan.objects) loaded.push(await BpfObject.loadAsync(o.path, { pinDir: plan.pinDir, consts: o.consts }));
    return assemble(plan, loaded, upgrade);
  } catch (e) {
    upgrade.close();
    for (const o of loaded) o.close();
    throw e;
  }
}

interface LoadPlan {
  pinDir: string;
  hostNetnsCookie: bigint;
  objects: { name: ObjectName; path: string; consts: Record<string, ConstValue>; missingKnobs: string[] }[];
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
    // policy decides each flow once and caches the verdict: every flow needs conntrack
    ctTrackAll: opts.ctTrackAll === true || opts.networkPolicy === true,
    networkPolicy: opts.networkPolicy === true,
    policyStats: opts.policyStats !== false,
    maglevTableSize: opts.maglevTableSize ?? MAGLEV_DEFAULT_TABLE_SIZE,
    ...(opts.tunnelPort !== undefined ? { tunnelPort: opts.tunnelPort } : {}),
    ...(opts.externalServiceMode !== undefined ? { externalServiceMode: opts.externalServiceMode } : {}),
  };
  const objects = OBJECT_NAMES.map((name) => {
    const path = join(dir, `${name}.o`);
    if (!existsSync(path)) throw new Error(`BPF object ${path} is missing (run make build)`);
    const { consts, missing } = knobsFor(name, inputs, rodataNames(path));
    return { name, path, consts, missingKnobs: missing };
  });
  return { pinDir, hostNetnsCookie, objects };
}

/** The loaded object that declares a pinned map (they share it through the pin). */
export function mapOf(objects: Record<ObjectName, BpfObject>, name: string): BpfMap {
  const o = Object.values(objects).find((x) => x.mapNames().includes(name));
  if (!o) throw new Error(`no loaded object declares map ${name}`);
  return o.map(name);
}

function assemble(plan: LoadPlan, loaded: BpfObject[], upgrade: MapUpgrade): LoadedDataplane {
  const objects = Object.fromEntries(plan.objects.map((o, i) => [o.name, loaded[i]!])) as Record<ObjectName, BpfObject>;
  upgrade.convert((name) => mapOf(objects, name));
  return {
    upgrade,
    pinDir: plan.pinDir,
    objects,
    maps: serviceMaps(objects),
    hostNetnsCookie: plan.hostNetnsCookie,
    missingKnobs: plan.objects.flatMap((o) => o.missingKnobs.map((knob) => ({ object: o.name, knob }))),
    close: () => {
      upgrade.close();
      for (const o of Object.values(objects)) o.close();
    },
  };
}
