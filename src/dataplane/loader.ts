// dataplane/loader: loads the service dataplane objects (build/bpf/{from_pod,to_pod,
// from_host,sock_lb}.o) with one pin directory per instance, <bpf-root>/weir/<instance>,
// so their maps are shared by name across objects and survive daemon restarts. Sets the
// .rodata knobs (socket-LB mode, host netns cookie, per-backend stats on/off) before load.

import { existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BpfMap,
  BpfObject,
  codecFor,
  enums,
  u8,
  type ConstValue,
  type TypedMap,
  type WeirAffinity4,
  type WeirAffinity4Key,
  type WeirBackend4,
  type WeirBackend4Key,
  type WeirCt4,
  type WeirCt4Key,
  type WeirFrontend4,
  type WeirFrontend4Key,
  type WeirSockDestroy4Key,
} from '../bpf/index.js';
import { MapUpgrade } from './map-upgrade.js';
import { netnsCookie } from './native-extras.js';

export type SockLbMode = 'on' | 'host-only' | 'off';

export const OBJECT_NAMES = ['from_pod', 'to_pod', 'from_host', 'sock_lb'] as const;
export type ObjectName = (typeof OBJECT_NAMES)[number];

/** The repository (package) root: the nearest directory above this file holding package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export function defaultObjectDir(): string {
  return process.env.WEIR_BPF_DIR ?? join(packageRoot(), 'build', 'bpf');
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The filesystem type `path` lives on, from /proc/mounts (longest mount point prefix). */
export function mountTypeOf(path: string, mounts = readFileSync('/proc/mounts', 'utf8')): string | undefined {
  let best: { point: string; type: string } | undefined;
  for (const line of mounts.split('\n')) {
    const [, p, type] = line.split(' ');
    if (!p || !type) continue;
    const point = unescapeMount(p);
    const inside = path === point || path.startsWith(point.endsWith(sep) ? point : point + sep) || point === '/';
    if (inside && (!best || point.length >= best.point.length)) best = { point, type };
  }
  return best?.type;
}

/** <bpfRoot>/weir/<instance>, created; throws a readable error unless bpfRoot is on a bpffs. */
export function preparePinDir(bpfRoot: string, instance: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(instance)) throw new Error(`bad --instance ${JSON.stringify(instance)}: use letters, digits, '-', '_', '.'`);
  if (!existsSync(bpfRoot)) throw new Error(`--bpf-root ${bpfRoot} does not exist (mount a bpffs there: mount -t bpf bpf ${bpfRoot})`);
  const real = realpathSync(bpfRoot);
  const type = mountTypeOf(real);
  if (type !== 'bpf') throw new Error(`--bpf-root ${bpfRoot} is not a bpffs mount (it is on ${type ?? 'an unknown filesystem'}); mount one: mount -t bpf bpf ${bpfRoot}`);
  const dir = join(real, 'weir', instance);
  mkdirSync(join(dir, 'links'), { recursive: true });
  return dir;
}

export interface ServiceMaps {
  frontends: TypedMap<WeirFrontend4Key, WeirFrontend4>;
  backends: TypedMap<WeirBackend4Key, WeirBackend4>;
  affinity: TypedMap<WeirAffinity4Key, WeirAffinity4>;
  conntrack: TypedMap<WeirCt4Key, WeirCt4>;
  sockDestroy: TypedMap<WeirSockDestroy4Key, number>;
  /** per-CPU new connections per {frontend id, backend} (lb-stats.ts); optional for fakes */
  lbStats?: BpfMap;
}

/** Typed views of the service maps of a loaded object set (any object holding them). */
export function serviceMaps(objects: { from_pod: BpfObject; sock_lb: BpfObject }): ServiceMaps {
  const m = (name: string) => objects.from_pod.map(name);
  return {
    frontends: m('weir_frontend4').typed(codecFor('weir_frontend4_key'), codecFor('weir_frontend4')),
    backends: m('weir_backend4').typed(codecFor('weir_backend4_key'), codecFor('weir_backend4')),
    affinity: m('weir_affinity4').typed(codecFor('weir_affinity4_key'), codecFor('weir_affinity4')),
    conntrack: m('weir_ct4_v2').typed(codecFor('weir_ct4_key'), codecFor('weir_ct4')),
    sockDestroy: objects.sock_lb.map('weir_sock_destroy4').typed(codecFor('weir_sock_destroy4_key'), u8),
    lbStats: m('weir_lb_stats4'),
  };
}

export interface LoadOptions {
  bpfRoot: string;
  instance: string;
  sockLbMode: SockLbMode;
  /** count new connections per backend in weir_lb_stats4 (--service-stats); default true */
  serviceStats?: boolean;
  /** default: build/bpf of the package */
  objectDir?: string;
}

export interface LoadedDataplane {
  pinDir: string;
  objects: Record<ObjectName, BpfObject>;
  maps: ServiceMaps;
  hostNetnsCookie: bigint;
  /** the earlier run's pinned state brought to this release's layouts (map-upgrade.ts):
   *  converted at load; the caller runs finish() once the programs are swapped on the links */
  upgrade: MapUpgrade;
  close(): void;
}

/** Loads the four objects into the instance's pin directory. Maps already pinned there are adopted. */
export function loadDataplane(opts: LoadOptions): LoadedDataplane {
  const plan = planLoad(opts);
  const upgrade = MapUpgrade.prepare(plan.pinDir, plan.objects.map((o) => o.path));
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
  const upgrade = MapUpgrade.prepare(plan.pinDir, plan.objects.map((o) => o.path));
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
  objects: { name: ObjectName; path: string; consts: Record<string, ConstValue> }[];
}

function planLoad(opts: LoadOptions): LoadPlan {
  const pinDir = preparePinDir(opts.bpfRoot, opts.instance);
  const dir = opts.objectDir ?? defaultObjectDir();
  // the netns this daemon runs in is "the host" for the socket LB's host-only mode
  const hostNetnsCookie = netnsCookie();
  const objects = OBJECT_NAMES.map((name) => {
    const path = join(dir, `${name}.o`);
    if (!existsSync(path)) throw new Error(`BPF object ${path} is missing (run make build)`);
    const consts: Record<string, ConstValue> = {};
    // every object that picks backends (includes lib/lb.h) has the stats knob
    if (name !== 'to_pod') consts.lb_stats_enabled = opts.serviceStats === false ? 0 : 1;
    if (name === 'sock_lb') {
      consts.sock_lb_mode = opts.sockLbMode === 'host-only' ? enums.weir_sock_lb_mode.WEIR_SOCK_LB_HOST_ONLY : enums.weir_sock_lb_mode.WEIR_SOCK_LB_ALL_NETNS;
      consts.host_netns_cookie = hostNetnsCookie;
    }
    return { name, path, consts };
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
    close: () => {
      upgrade.close();
      for (const o of Object.values(objects)) o.close();
    },
  };
}
