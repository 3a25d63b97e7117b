// cli/services: the service maps as an operator reads them: `weir services` (frontends and
// their backend slots), `weir ct list|flush` (conntrack, with NAT origin, state, age),
// `weir affinity list`. Read straight from a node's pinned maps, both families (the IPv6
// maps where pinned) through one code path: rows carry a `family`, IPv6 endpoints print as
// `[address]:port`.

import type { Command } from 'commander';
import { enums, typedMap, codecFor } from '../bpf/index.js';
import { canonicalIp, ipBytes, ipFamilyOf, IPPROTO, type IpFamily } from '../bpf/ip.js';
import type { CtKey, CtValue } from '../dataplane/conntrack-gc.js';
import { addressPort, type BackendKey, type BackendValue, type FrontendKey, type FrontendValue } from '../dataplane/frontend-entries.js';
import { readLbStats } from '../dataplane/lb-stats.js';
import { FAMILY_SERVICE_MAPS, type FamilyServiceMapRole } from '../dataplane/loader.js';
import type { WeirAffinity4, WeirAffinity4Key } from '../bpf/index.js';
import {
  ageSeconds,
  backendFlags,
  ctFlags,
  ctForward,
  endpoint,
  familyName,
  frontendFlags,
  protocolName,
  protocolNumber,
  scopeName,
  tcpFlagString,
} from './decode.js';
import { CliError, outputOption, print, type OutputFormat } from './output.js';
import { openMap, pinnedMapNames, stateOptions, type StateOptions } from './state.js';

export interface Common extends StateOptions {
  output: OutputFormat;
}

export function common(cmd: Command): Command {
  return stateOptions(cmd).addOption(outputOption());
}

export function withMap<K, V, R>(o: StateOptions, name: string, keyType: string, valueType: string, f: (entries: Array<[K, V]>, del: (k: K) => void) => R): R {
  const map = openMap(o, name);
  try {
    const typed = typedMap(map, codecFor(keyType as never) as never, codecFor(valueType as never) as never);
    const entries = [...(typed.entries() as Iterable<[K, V]>)];
    return f(entries, (k) => typed.delete(k as never));
  } finally {
    map.close();
  }
}

/**
 * The families whose `role` map is pinned: IPv4 always (a missing IPv4 map is an error
 * openMap reports), IPv6 where the daemon's objects have its maps.
 */
export function pinnedFamilies(o: StateOptions, role: FamilyServiceMapRole): IpFamily[] {
  const pinned = pinnedMapNames(o);
  return ([4, 6] as const).filter((f) => f === 4 || pinned.includes(FAMILY_SERVICE_MAPS[f][role][0]));
}

/** withMap over one family's map of a role (the *4 and *6 maps have one shape, addresses as text). */
export function withFamilyMap<K, V, R>(
  o: StateOptions,
  family: IpFamily,
  role: FamilyServiceMapRole,
  f: (entries: Array<[K, V]>, del: (k: K) => void) => R,
): R {
  const [name, key, value] = FAMILY_SERVICE_MAPS[family][role];
  if (value === null) throw new Error(`${name} holds flags, not entries to list`);
  return withMap(o, name, key, value, f);
}

export interface ServiceRow {
  /** IPv4 or IPv6: which family's maps hold the frontend */
  family: string;
  /** `198.19.0.10:80`, `[2001:2::10]:80` */
  frontend: string;
  protocol: string;
  scope: string;
  id: number;
  flags: string[];
  affinityTimeout: number;
  /** how new flows pick a backend: random, maglev, or maglev-no-table (random until the table is written) */
  algorithm: 'random' | 'maglev' | 'maglev-no-table';
  backends: Array<{ slot: number; address: string; port: number; flags: string[]; newConnections: number }>;
  /** new connections to backends no longer in the slots (removed or terminating) */
  otherNewConnections: number;
}

/** frontend id -> "address:port" -> new connections, from weir_lb_stats4/6 (those pinned). */
function lbStatsById(o: StateOptions): Map<number, Map<string, number>> {
  const out = new Map<number, Map<string, number>>();
  const pinned = pinnedMapNames(o);
  for (const f of [4, 6] as const) {
    const name = FAMILY_SERVICE_MAPS[f].lbStats[0];
    if (!pinned.includes(name)) continue;
    const map = openMap(o, name);
    try {
      for (const r of readLbStats(map)) {
        let m = out.get(r.frontendId);
        if (!m) out.set(r.frontendId, (m = new Map()));
        m.set(`${r.backend}:${r.port}`, Number(r.newConnections));
      }
    } finally {
      map.close();
    }
  }
  return out;
}

/** Frontend ids with a Maglev table, both families (empty when weir_maglev4 is not pinned: an older release). */
function maglevIds(o: StateOptions): Set<number> {
  const out = new Set<number>();
  if (!pinnedMapNames(o).includes('weir_maglev4')) return out;
  const map = openMap(o, 'weir_maglev4');
  try {
    for (const k of map.keys()) out.add(k.readUInt32LE(0));
  } finally {
    map.close();
  }
  return out;
}

/** Orders rows by family, then address (numerically), then port. */
function addressOrder(a: { family: IpFamily; address: string; port: number }, b: { family: IpFamily; address: string; port: number }): number {
  return a.family - b.family || Buffer.compare(ipBytes(a.address) ?? Buffer.alloc(0), ipBytes(b.address) ?? Buffer.alloc(0)) || a.port - b.port;
}

/** One family's frontends with their backend slots. */
function familyServiceRows(o: StateOptions, family: IpFamily, stats: Map<number, Map<string, number>>, tables: Set<number>) {
  const backends = withFamilyMap<BackendKey, BackendValue, Map<number, ServiceRow['backends']>>(o, family, 'backends', (entries) => {
    const byId = new Map<number, ServiceRow['backends']>();
    for (const [k, v] of entries) {
      let list = byId.get(k.frontend_id);
      if (!list) byId.set(k.frontend_id, (list = []));
      list.push({ slot: k.slot, address: v.address, port: v.port, flags: backendFlags(v.flags), newConnections: 0 });
    }
    return byId;
  });
  return withFamilyMap<FrontendKey, FrontendValue, Array<{ row: ServiceRow; order: { family: IpFamily; address: string; port: number } }>>(
    o,
    family,
    'frontends',
    (entries) =>
      entries.map(([k, v]) => {
        const counts = new Map(stats.get(v.id) ?? []);
        const slots = (backends.get(v.id) ?? []).filter((b) => b.slot < v.backend_count).sort((a, b) => a.slot - b.slot);
        for (const b of slots) {
          const id = `${b.address}:${b.port}`;
          b.newConnections = counts.get(id) ?? 0;
          counts.delete(id);
        }
        const row: ServiceRow = {
          family: familyName(family),
          frontend: addressPort(family, k.address, k.port),
          protocol: protocolName(k.protocol),
          scope: scopeName(k.scope),
          id: v.id,
          flags: frontendFlags(v.flags),
          affinityTimeout: v.affinity_timeout,
          algorithm: !(v.flags & enums.weir_frontend_flags.WEIR_FRONTEND_MAGLEV) ? 'random' : tables.has(v.id) ? 'maglev' : 'maglev-no-table',
          backends: slots,
          otherNewConnections: [...counts.values()].reduce((a, b) => a + b, 0),
        };
        return { row, order: { family, address: k.address, port: k.port } };
      }),
  );
}

/** Frontends of both families with their backend slots, sorted by family, address and port. */
export function serviceRows(o: StateOptions): ServiceRow[] {
  const stats = lbStatsById(o);
  const tables = maglevIds(o);
  return pinnedFamilies(o, 'frontends')
    .flatMap((f) => familyServiceRows(o, f, stats, tables))
    .sort((a, b) => addressOrder(a.order, b.order) || a.row.protocol.localeCompare(b.row.protocol) || a.row.scope.localeCompare(b.row.scope))
    .map((x) => x.row);
}

export interface CtFilter {
  address?: string;
  port?: number;
  protocol?: number;
}

export interface CtRow {
  /** IPv4 or IPv6: which family's conntrack map holds the entry */
  family: string;
  protocol: string;
  source: string;
  destination: string;
  /** what the entry rewrites this direction into */
  nat: string;
  flags: string[];
  /** where this direction goes (the forward stage): `tunnel→NODE` (VXLAN to that node; DSR
   *  flows say `dsr→NODE`), `redirect→ifindex N` (interface to interface), or `stack` */
  forward: string;
  tcp: string;
  frontendId: number;
  ageS: number;
  idleS: number;
  packets: bigint;
  bytes: bigint;
}

function ctMatches(k: CtKey, v: CtValue, f: CtFilter): boolean {
  if (f.protocol !== undefined && k.protocol !== f.protocol) return false;
  if (f.address && ![k.saddr, k.daddr, v.nat_saddr, v.nat_daddr].includes(f.address)) return false;
  if (f.port !== undefined && ![k.sport, k.dport, v.nat_sport, v.nat_dport].includes(f.port)) return false;
  return true;
}

function ctRow(family: IpFamily, k: CtKey, v: CtValue, now: bigint): CtRow {
  const flags = ctFlags(v.flags);
  const nat: string[] = [];
  if (flags.includes('snat')) nat.push(`src→${addressPort(family, v.nat_saddr, v.nat_sport)}`);
  if (flags.includes('dnat')) nat.push(`dst→${addressPort(family, v.nat_daddr, v.nat_dport)}`);
  return {
    family: familyName(family),
    protocol: protocolName(k.protocol),
    source: addressPort(family, k.saddr, k.sport),
    destination: addressPort(family, k.daddr, k.dport),
    nat: nat.join(' '),
    flags,
    forward: ctForward(v),
    tcp: k.protocol === IPPROTO.TCP ? tcpFlagString(v.tcp_flags_seen) : '',
    frontendId: v.frontend_id,
    ageS: ageSeconds(v.created_ns, now),
    idleS: ageSeconds(v.last_seen_ns, now),
    packets: v.packets,
    bytes: v.bytes,
  };
}

export function ctFilterFrom(o: { address?: string; port?: string; protocol?: string }): CtFilter {
  const f: CtFilter = {};
  if (o.address) {
    const family = ipFamilyOf(o.address);
    const address = family === null ? null : canonicalIp(o.address, family);
    if (address === null) throw new CliError(`--address ${o.address}: an IPv4 or IPv6 address`);
    f.address = address;
  }
  if (o.port !== undefined) {
    const p = Number(o.port);
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new CliError(`--port ${o.port}: 0..65535`);
    f.port = p;
  }
  if (o.protocol !== undefined) {
    const p = protocolNumber(o.protocol);
    if (p === undefined) throw new CliError(`--protocol ${o.protocol}: tcp, udp, icmp, icmpv6, sctp or a number`);
    f.protocol = p;
  }
  return f;
}

/** The conntrack families to read for a filter: an address filter names its family. */
export function ctFamilies(o: StateOptions, f: CtFilter): IpFamily[] {
  const only = f.address ? ipFamilyOf(f.address) : null;
  return pinnedFamilies(o, 'conntrack').filter((x) => only === null || x === only);
}

export function conntrackRows(o: StateOptions, f: CtFilter = {}): CtRow[] {
  const now = process.hrtime.bigint();
  return ctFamilies(o, f).flatMap((family) =>
    withFamilyMap<CtKey, CtValue, CtRow[]>(o, family, 'conntrack', (entries) =>
      entries
        .filter(([k, v]) => ctMatches(k, v, f))
        .map(([k, v]) => ctRow(family, k, v, now))
        .sort((a, b) => a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination)),
    ),
  );
}

/** Deletes the matching conntrack entries of every family; returns how many. */
export function flushConntrack(o: StateOptions, f: CtFilter = {}): number {
  let n = 0;
  for (const family of ctFamilies(o, f))
    withFamilyMap<CtKey, CtValue, void>(o, family, 'conntrack', (entries, del) => {
      for (const [k, v] of entries)
        if (ctMatches(k, v, f)) {
          try {
            del(k);
            n++;
          } catch (e) {
            if ((e as { code?: string }).code !== 'ENOENT') throw e; // gone meanwhile (LRU, GC)
          }
        }
    });
  return n;
}

export interface AffinityRow {
  family: string;
  client: string;
  frontendId: number;
  backend: string;
  idleS: number;
}

/** ClientIP affinity entries of both families. */
export function affinityRows(o: StateOptions): AffinityRow[] {
  const now = process.hrtime.bigint();
  return pinnedFamilies(o, 'affinity').flatMap((family) =>
    withFamilyMap<WeirAffinity4Key, WeirAffinity4, AffinityRow[]>(o, family, 'affinity', (entries) =>
      entries.map(([k, v]) => ({
        family: familyName(family),
        client: k.client,
        frontendId: k.frontend_id,
        backend: addressPort(family, v.backend, v.port),
        idleS: ageSeconds(v.last_used_ns, now),
      })),
    ),
  );
}

export function registerServiceCommands(program: Command): void {
  common(program.command('services').description('frontends (ClusterIP, NodePort, externalIP, LB addresses) and their backend slots')).action((o: Common) => {
    const rows = serviceRows(o);
    if (o.output !== 'table') return print(o.output, rows);
    print(
      'table',
      rows.map((r) => ({
        frontend: `${r.frontend}/${r.protocol}`,
        scope: r.scope,
        id: r.id,
        flags: r.flags.join(',') || '-',
        lb: r.algorithm,
        backends: r.backends.map((b) => `${endpoint(b.address, b.port)}${b.flags.length ? `(${b.flags.join(',')})` : ''}`).join(' ') || '-',
        // new connections per backend, in the backends' order (+ those to backends gone from the slots)
        conns: [...r.backends.map((b) => String(b.newConnections)), ...(r.otherNewConnections ? [`other:${r.otherNewConnections}`] : [])].join(' ') || '-',
      })),
    );
  });

  const ct = program.command('ct').description('the conntrack map');
  const filters = (c: Command) =>
    c
      .option('--address <ip>', 'entries with this address (either side, before or after NAT)')
      .option('--port <port>', 'entries with this port')
      .option('--protocol <proto>', 'tcp, udp, icmp, icmpv6, sctp or a number');
  common(filters(ct.command('list').description('conntrack entries: tuple on the wire, NAT rewrite, flags, age'))).action(
    (o: Common & { address?: string; port?: string; protocol?: string }) => {
      const rows = conntrackRows(o, ctFilterFrom(o));
      if (o.output !== 'table') return print(o.output, rows);
      print(
        'table',
        rows.map((r) => ({ ...r, flags: r.flags.join(',') })),
        ['protocol', 'source', 'destination', 'nat', 'flags', 'forward', 'tcp', 'ageS', 'idleS', 'packets', 'bytes'],
      );
    },
  );
  common(filters(ct.command('flush').description('delete conntrack entries (all, or those matching the filters)'))).action(
    (o: Common & { address?: string; port?: string; protocol?: string }) => {
      const deleted = flushConntrack(o, ctFilterFrom(o));
      print(o.output, [{ deleted }]);
    },
  );

  const affinity = program.command('affinity').description('ClientIP session affinity: which backend each client sticks to');
  common(affinity.command('list').description('ClientIP session affinity entries (both families)')).action((o: Common) => {
    print(o.output, affinityRows(o));
  });
}
