// cli/services: the service maps as an operator reads them: `weir services` (frontends and
// their backend slots), `weir ct list|flush` (conntrack, with NAT origin, state, age),
// `weir affinity list`. Read straight from a node's pinned maps.

import type { Command } from 'commander';
import {
  codecFor,
  enums,
  typedMap,
  type WeirAffinity4,
  type WeirAffinity4Key,
  type WeirBackend4,
  type WeirBackend4Key,
  type WeirCt4,
  type WeirCt4Key,
  type WeirFrontend4,
  type WeirFrontend4Key,
} from '../bpf/index.js';
import { canonicalIp, IPPROTO } from '../bpf/ip.js';
import { ageSeconds, backendFlags, ctFlags, ctForward, frontendFlags, protocolName, protocolNumber, scopeName, tcpFlagString } from './decode.js';
import { CliError, parseFormat, print, type OutputFormat } from './output.js';
import { readLbStats } from '../dataplane/lb-stats.js';
import { openMap, pinnedMapNames, stateOptions, type StateOptions } from './state.js';

export interface Common extends StateOptions {
  output: OutputFormat;
}

export function common(cmd: Command): Command {
  return stateOptions(cmd).option('-o, --output <format>', 'table or json', parseFormat, 'table' as OutputFormat);
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

export interface ServiceRow {
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

/** frontend id -> "address:port" -> new connections, from weir_lb_stats4 (empty when not pinned). */
function lbStatsById(o: StateOptions): Map<number, Map<string, number>> {
  const out = new Map<number, Map<string, number>>();
  if (!pinnedMapNames(o).includes('weir_lb_stats4')) return out;
  const map = openMap(o, 'weir_lb_stats4');
  try {
    for (const r of readLbStats(map)) {
      let m = out.get(r.frontendId);
      if (!m) out.set(r.frontendId, (m = new Map()));
      m.set(`${r.backend}:${r.port}`, Number(r.newConnections));
    }
  } finally {
    map.close();
  }
  return out;
}

/** Frontend ids with a Maglev table (empty when weir_maglev4 is not pinned: an older release). */
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

/** Frontends with their backend slots, sorted by address and port. */
export function serviceRows(o: StateOptions): ServiceRow[] {
  const backends = withMap<WeirBackend4Key, WeirBackend4, Map<number, ServiceRow['backends']>>(
    o,
    'weir_backend4',
    'weir_backend4_key',
    'weir_backend4',
    (entries) => {
      const byId = new Map<number, ServiceRow['backends']>();
      for (const [k, v] of entries) {
        let list = byId.get(k.frontend_id);
        if (!list) byId.set(k.frontend_id, (list = []));
        list.push({ slot: k.slot, address: v.address, port: v.port, flags: backendFlags(v.flags), newConnections: 0 });
      }
      return byId;
    },
  );
  const stats = lbStatsById(o);
  const tables = maglevIds(o);
  return withMap<WeirFrontend4Key, WeirFrontend4, ServiceRow[]>(o, 'weir_frontend4', 'weir_frontend4_key', 'weir_frontend4', (entries) =>
    entries
      .map(([k, v]) => {
        const counts = new Map(stats.get(v.id) ?? []);
        const slots = (backends.get(v.id) ?? []).filter((b) => b.slot < v.backend_count).sort((a, b) => a.slot - b.slot);
        for (const b of slots) {
          const id = `${b.address}:${b.port}`;
          b.newConnections = counts.get(id) ?? 0;
          counts.delete(id);
        }
        return {
          frontend: `${k.address}:${k.port}`,
          protocol: protocolName(k.protocol),
          scope: scopeName(k.scope),
          id: v.id,
          flags: frontendFlags(v.flags),
          affinityTimeout: v.affinity_timeout,
          algorithm: (!(v.flags & enums.weir_frontend_flags.WEIR_FRONTEND_MAGLEV)
            ? 'random'
            : tables.has(v.id)
              ? 'maglev'
              : 'maglev-no-table') as ServiceRow['algorithm'],
          backends: slots,
          otherNewConnections: [...counts.values()].reduce((a, b) => a + b, 0),
        };
      })
      .sort((a, b) => ipOrder(a.frontend, b.frontend) || a.protocol.localeCompare(b.protocol) || a.scope.localeCompare(b.scope)),
  );
}

function ipOrder(a: string, b: string): number {
  const num = (s: string) => {
    const [ip, port] = s.split(':');
    return ip!.split('.').reduce((n, x) => n * 256 + Number(x), 0) * 65536 + Number(port);
  };
  return num(a) - num(b);
}

export interface CtFilter {
  address?: string;
  port?: number;
  protocol?: number;
}

export interface CtRow {
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

function ctMatches(k: WeirCt4Key, v: WeirCt4, f: CtFilter): boolean {
  if (f.protocol !== undefined && k.protocol !== f.protocol) return false;
  if (f.address && ![k.saddr, k.daddr, v.nat_saddr, v.nat_daddr].includes(f.address)) return false;
  if (f.port !== undefined && ![k.sport, k.dport, v.nat_sport, v.nat_dport].includes(f.port)) return false;
  return true;
}

function ctRow(k: WeirCt4Key, v: WeirCt4, now: bigint): CtRow {
  const flags = ctFlags(v.flags);
  const nat: string[] = [];
  if (flags.includes('snat')) nat.push(`src→${v.nat_saddr}:${v.nat_sport}`);
  if (flags.includes('dnat')) nat.push(`dst→${v.nat_daddr}:${v.nat_dport}`);
  return {
    protocol: protocolName(k.protocol),
    source: `${k.saddr}:${k.sport}`,
    destination: `${k.daddr}:${k.dport}`,
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
    const address = canonicalIp(o.address, 4);
    if (address === null) throw new CliError(`--address ${o.address}: an IPv4 address`);
    f.address = address;
  }
  if (o.port !== undefined) {
    const p = Number(o.port);
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new CliError(`--port ${o.port}: 0..65535`);
    f.port = p;
  }
  if (o.protocol !== undefined) {
    const p = protocolNumber(o.protocol);
    if (p === undefined) throw new CliError(`--protocol ${o.protocol}: tcp, udp, icmp, sctp or a number`);
    f.protocol = p;
  }
  return f;
}

export function conntrackRows(o: StateOptions, f: CtFilter = {}): CtRow[] {
  const now = process.hrtime.bigint();
  return withMap<WeirCt4Key, WeirCt4, CtRow[]>(o, 'weir_ct4_v2', 'weir_ct4_key', 'weir_ct4', (entries) =>
    entries
      .filter(([k, v]) => ctMatches(k, v, f))
      .map(([k, v]) => ctRow(k, v, now))
      .sort((a, b) => a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination)),
  );
}

/** Deletes the matching conntrack entries; returns how many. */
export function flushConntrack(o: StateOptions, f: CtFilter = {}): number {
  return withMap<WeirCt4Key, WeirCt4, number>(o, 'weir_ct4_v2', 'weir_ct4_key', 'weir_ct4', (entries, del) => {
    let n = 0;
    for (const [k, v] of entries)
      if (ctMatches(k, v, f)) {
        try {
          del(k);
          n++;
        } catch (e) {
          if ((e as { code?: string }).code !== 'ENOENT') throw e; // gone meanwhile (LRU, GC)
        }
      }
    return n;
  });
}

export function registerServiceCommands(program: Command): void {
  common(program.command('services').description('frontends (ClusterIP, NodePort, externalIP, LB addresses) and their backend slots')).action((o: Common) => {
    const rows = serviceRows(o);
    if (o.output === 'json') return print('json', rows);
    print(
      'table',
      rows.map((r) => ({
        frontend: `${r.frontend}/${r.protocol}`,
        scope: r.scope,
        id: r.id,
        flags: r.flags.join(',') || '-',
        lb: r.algorithm,
        backends: r.backends.map((b) => `${b.address}:${b.port}${b.flags.length ? `(${b.flags.join(',')})` : ''}`).join(' ') || '-',
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
      .option('--protocol <proto>', 'tcp, udp, icmp, sctp or a number');
  common(filters(ct.command('list').description('conntrack entries: tuple on the wire, NAT rewrite, flags, age'))).action(
    (o: Common & { address?: string; port?: string; protocol?: string }) => {
      const rows = conntrackRows(o, ctFilterFrom(o));
      if (o.output === 'json') return print('json', rows);
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

  common(program.command('affinity').command('list').description('ClientIP session affinity entries')).action((o: Common) => {
    const now = process.hrtime.bigint();
    const rows = withMap<WeirAffinity4Key, WeirAffinity4, object[]>(o, 'weir_affinity4', 'weir_affinity4_key', 'weir_affinity4', (entries) =>
      entries.map(([k, v]) => ({ client: k.client, frontendId: k.frontend_id, backend: `${v.backend}:${v.port}`, idleS: ageSeconds(v.last_used_ns, now) })),
    );
    print(o.output, rows);
  });
}
