// bench: weir under test without its daemon: the committed objects loaded through the typed
// layer (src/bpf) into the lab's private bpffs, so they share their maps by pin name as in
// production; service map entries written the way the reconciler writes them (backend slots
// first, then the frontend with its count); from_pod / to_pod attached on every workload
// interface (TC path), plus the four socket programs on the client's cgroup (connect-time LB).
// IPv6: from_pod6 chained after from_pod (TCX), the IPv6 maps (weir_frontend6, weir_backend6:
// their keys and values have the IPv4 shapes with addresses as IPv6 text) and the *6 socket
// programs.

import { join } from 'node:path';
import {
  attachCgroup,
  attachTc,
  type BpfLink,
  BpfObject,
  codecFor,
  type ConstValue,
  enums,
  type TcAttachment,
  type TypedMap,
  typedMap,
  type WeirBackend4,
  type WeirBackend4Key,
  type WeirFrontend4,
  type WeirFrontend4Key,
} from '../src/bpf/index.js';
import { IPPROTO } from '../src/bpf/ip.js';
import type { BenchService, Family } from './peers/services.js';
import { ROOT } from './tools.js';

export const OBJ_DIR = join(ROOT, 'build', 'bpf');
export const SOCK_PROGRAMS = {
  4: ['weir_sock_connect4', 'weir_sock_sendmsg4', 'weir_sock_recvmsg4', 'weir_sock_getpeername4'],
  6: ['weir_sock_connect6', 'weir_sock_sendmsg6', 'weir_sock_recvmsg6', 'weir_sock_getpeername6'],
} as const;

export interface WeirMaps {
  frontends: TypedMap<WeirFrontend4Key, WeirFrontend4>;
  backends: TypedMap<WeirBackend4Key, WeirBackend4>;
}

export interface WeirInstance {
  objects: Record<string, BpfObject>;
  maps: WeirMaps;
  close(): void;
}

/** Load objects ('from_pod', 'from_pod6', 'to_pod', 'from_host', 'sock_lb') into one pin directory;
 *  `family` picks the service maps written (weir_frontend4/backend4 or weir_frontend6/backend6). */
export function loadWeir(pinDir: string, names: readonly string[], family: Family = 4): WeirInstance {
  const objects: Record<string, BpfObject> = {};
  try {
    for (const name of names) {
      const consts: Record<string, ConstValue> =
        name === 'sock_lb'
          ? // every netns (the client is a pod); host_netns_cookie only matters for host-only mode and affinity
            { sock_lb_mode: enums.weir_sock_lb_mode.WEIR_SOCK_LB_ALL_NETNS, host_netns_cookie: 0n }
          : {};
      objects[name] = BpfObject.load(join(OBJ_DIR, `${name}.o`), { pinDir, consts });
    }
  } catch (e) {
    for (const o of Object.values(objects)) o.close();
    throw e;
  }
  // the IPv6 maps are declared by the IPv6 programs' objects; the shapes match the IPv4 ones
  const any = objects[family === 6 ? 'from_pod6' : names[0]!]!;
  const maps: WeirMaps =
    family === 6
      ? {
          frontends: typedMap(any.map('weir_frontend6'), codecFor('weir_frontend6_key'), codecFor('weir_frontend6')),
          backends: typedMap(any.map('weir_backend6'), codecFor('weir_backend6_key'), codecFor('weir_backend6')),
        }
      : {
          frontends: typedMap(any.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4')),
          backends: typedMap(any.map('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4')),
        };
  return { objects, maps, close: () => Object.values(objects).forEach((o) => o.close()) };
}

export interface Programmed {
  frontendKeys: WeirFrontend4Key[];
  backendKeys: WeirBackend4Key[];
  /** wall time of the batched map writes */
  ms: number;
  /** endpoints per filler service actually written (less than asked when the backend map is too small) */
  endpointsPerFiller: number;
}

/**
 * Write every service (backends, then frontends, in batches) and return the keys written.
 * The backend map has a fixed capacity; when N x M does not fit, filler services get fewer
 * endpoints (reported) while the target services keep all of theirs.
 */
export function programWeir(maps: WeirMaps, services: readonly BenchService[], wantPerFiller: number): Programmed {
  const capacity = maps.backends.map.maxEntries;
  const targets = services.filter((s) => s.namespace === 'bench');
  const fillers = services.length - targets.length;
  const targetEps = targets.reduce((a, s) => a + s.endpoints.length, 0);
  const perFiller = fillers ? Math.min(wantPerFiller, Math.floor((capacity - targetEps) / fillers)) : wantPerFiller;
  const backends: [WeirBackend4Key, WeirBackend4][] = [];
  const frontends: [WeirFrontend4Key, WeirFrontend4][] = [];
  services.forEach((s, i) => {
    const id = i + 1;
    const eps = s.namespace === 'bench' ? s.endpoints : s.endpoints.slice(0, perFiller);
    eps.forEach((e, slot) =>
      backends.push([
        { frontend_id: id, slot },
        { address: e.ip, port: e.port, flags: 0 },
      ]),
    );
    frontends.push([
      {
        address: s.clusterIP,
        port: s.port,
        protocol: IPPROTO[s.protocol.toUpperCase() as Uppercase<BenchService['protocol']>],
        scope: enums.weir_frontend_scope.WEIR_SCOPE_INTERNAL,
      },
      { id, backend_count: eps.length, flags: 0, affinity_timeout: 0 },
    ]);
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < backends.length; i += 50_000) maps.backends.setMany(backends.slice(i, i + 50_000));
  for (let i = 0; i < frontends.length; i += 50_000) maps.frontends.setMany(frontends.slice(i, i + 50_000));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { frontendKeys: frontends.map(([k]) => k), backendKeys: backends.map(([k]) => k), ms, endpointsPerFiller: perFiller };
}

/** Remove what programWeir wrote: frontends first, so no reader sees a frontend without slots. */
export function unprogramWeir(maps: WeirMaps, p: Programmed): void {
  for (let i = 0; i < p.frontendKeys.length; i += 50_000) maps.frontends.deleteMany(p.frontendKeys.slice(i, i + 50_000));
  for (let i = 0; i < p.backendKeys.length; i += 50_000) maps.backends.deleteMany(p.backendKeys.slice(i, i + 50_000));
}

/** from_pod (and from_pod6 after it, when loaded) at TC ingress and to_pod at TC egress of each workload interface (host side). */
export function attachTcPath(w: WeirInstance, netns: string, ifnames: readonly string[]): TcAttachment[] {
  const out: TcAttachment[] = [];
  for (const ifname of ifnames) {
    out.push(attachTc(w.objects.from_pod!.program('weir_from_pod'), ifname, 'ingress', { netns }));
    if (w.objects.from_pod6) out.push(attachTc(w.objects.from_pod6.program('weir_from_pod6'), ifname, 'ingress', { netns, mode: 'tcx' }));
    out.push(attachTc(w.objects.to_pod!.program('weir_to_pod'), ifname, 'egress', { netns }));
  }
  return out;
}

export function attachSockLb(w: WeirInstance, cgroupDir: string, family: Family = 4): BpfLink[] {
  return SOCK_PROGRAMS[family].map((p) => attachCgroup(w.objects.sock_lb!.program(p), cgroupDir));
}
