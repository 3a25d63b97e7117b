// cli/explain: `weir explain <src> <dst> <port>/<proto>`: what weir would do to such a
// packet now, read-only from the live maps (src/dataplane/explain.ts). The options say
// what the packet is beyond its tuple: TCP flags, ICMP type and the quote of an error.

import { execFileSync } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import type { Command } from 'commander';
import { codecFor, typedMap, type BpfMap } from '../bpf/index.js';
import { familyServiceMaps, policyMaps } from '../dataplane/loader.js';
import { linkedProgramIds, rodataU32 } from '../dataplane/live-knobs.js';
import { directionText } from '../dataplane/policy-verdict.js';
import type { PolicyReadMaps } from '../dataplane/policy-view.js';
import type { HostExplainMaps, HostExplanation } from '../dataplane/explain-host.js';
import { hostPolicyReadMaps, mapSetLookup, planFromMaps, type HostPolicyReadMaps } from '../dataplane/host-policy-view.js';
import { ifindexOf } from '../bpf/index.js';
import { IDENTITY_HOST } from '../model/policy/identities.js';
import {
  explain,
  TCP,
  type ExplainMaps,
  type MaglevReadMaps,
  type ServiceReadMaps,
  type ExplainQuery,
  type Explanation,
  type Flow,
  type Rewrite,
} from '../dataplane/explain.js';
import { backendFlags, frontendFlags, protocolName, protocolNumber, tcpFlagString } from './decode.js';
import { canonicalIp, type IpFamily } from '../bpf/ip.js';
import { CliError, outputOption, render, type OutputFormat } from './output.js';
import { pinDirOf, stateOptions, withOpenMaps, type StateOptions } from './state.js';

/** --icmp-type names per family, and the error types a --quote goes with */
const ICMP_TYPES: Record<IpFamily, Record<string, number>> = {
  4: { 'echo-reply': 0, 'dest-unreachable': 3, 'echo-request': 8, 'time-exceeded': 11, 'parameter-problem': 12 },
  6: { 'dest-unreachable': 1, 'packet-too-big': 2, 'time-exceeded': 3, 'parameter-problem': 4, 'echo-request': 128, 'echo-reply': 129 },
};
const ICMP_ERRORS: Record<IpFamily, readonly number[]> = { 4: [3, 11, 12], 6: [1, 2, 3, 4] };
const ICMP_PROTO: Record<IpFamily, number> = { 4: 1, 6: 58 };
const isIcmp = (p: number) => p === 1 || p === 58;
/** `address:port`, an IPv6 address in brackets */
const hostPort = (address: string, port: number | string) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

export interface ExplainOptions {
  sport?: string;
  from?: string;
  tcpFlags?: string;
  icmpType?: string;
  quote?: string;
  iface?: string;
}

/** A pod address has a host route to a workload interface (`podIP dev vethX`, as CNIs install). */
function looksLikeLocalPod(ip: string): boolean {
  try {
    const text = execFileSync('ip', ['-j', 'route', 'show', 'exact', `${ip}/32`], { encoding: 'utf8' });
    const routes = JSON.parse(text) as Array<{ dev?: string; gateway?: string }>;
    return routes.some((r) => r.dev && !r.gateway);
  } catch {
    return false;
  }
}

function port(v: string, what: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new CliError(`${what} ${v}: 0..65535`);
  return n;
}

function parseTcpFlags(v: string): number {
  let bits = 0;
  if (v === 'none') return 0;
  for (const name of v.split(/[,|+]/)) {
    const bit = TCP[name.trim().toLowerCase() as keyof typeof TCP];
    if (bit === undefined) throw new CliError(`--tcp-flags ${v}: a list of ${Object.keys(TCP).join(', ')} (e.g. syn,ack), or none`);
    bits |= bit;
  }
  return bits;
}

function parseIcmpType(v: string, family: IpFamily): number {
  const n = ICMP_TYPES[family][v] ?? (/^\d+$/.test(v) ? Number(v) : NaN);
  if (!(n >= 0 && n < 256)) throw new CliError(`--icmp-type ${v}: ${Object.keys(ICMP_TYPES[family]).join(', ')} or a number`);
  return n;
}

/** The family of an address, and its canonical text (what the maps' codecs print); null: not an address. */
function addressOf(v: string): { family: IpFamily; address: string } | null {
  for (const family of [4, 6] as const) {
    const address = canonicalIp(v, family);
    if (address !== null) return { family, address };
  }
  return null;
}

/** `SRC:SPORT,DST:DPORT/PROTO` (IPv6: `[SRC]:SPORT,[DST]:DPORT/PROTO`), the quoted packet of an ICMP error (ICMP quotes: the echo identifier as both ports). */
function parseQuote(v: string, family: IpFamily): Flow {
  const m = /^\[?([\da-fA-F.:]+?)\]?:(\d+),\[?([\da-fA-F.:]+?)\]?:(\d+)\/(\w+)$/.exec(v);
  let protocol = m ? protocolNumber(m[5]!) : undefined;
  if (protocol === 1 && family === 6) protocol = 58;
  const src = m ? canonicalIp(m[1]!, family) : null;
  const dst = m ? canonicalIp(m[3]!, family) : null;
  if (!m || src === null || dst === null || protocol === undefined)
    throw new CliError(
      `--quote ${v}: use SRC:SPORT,DST:DPORT/PROTO in the packet's family, e.g. 198.18.1.10:40000,198.18.2.20:8080/tcp or [2001:2::10]:40000,[2001:2:1::20]:8080/tcp`,
    );
  return { src, sport: port(m[2]!, '--quote port'), dst, dport: port(m[4]!, '--quote port'), protocol };
}

export function parseQuery(src: string, dst: string, portProto: string, o: ExplainOptions): ExplainQuery {
  const s = addressOf(src);
  const d = addressOf(dst);
  if (!s) throw new CliError(`source ${src}: an IPv4 or IPv6 address`);
  if (!d) throw new CliError(`destination ${dst}: an IPv4 or IPv6 address`);
  if (s.family !== d.family) throw new CliError(`${src} -> ${dst}: source and destination of one family`);
  const family = d.family;
  const m = /^(\d+)(?:\/(\w+))?$/.exec(portProto);
  const dport = m ? Number(m[1]) : NaN;
  if (!m || dport > 65535) throw new CliError(`${portProto}: use PORT/PROTO, e.g. 80/tcp`);
  let protocol = protocolNumber(m[2] ?? 'tcp');
  if (protocol === undefined) throw new CliError(`${portProto}: protocol tcp, udp, sctp or icmp`);
  if (family === 6 && protocol === 1) protocol = 58; // icmp of an IPv6 packet is ICMPv6
  const from = o.from ?? 'auto';
  if (!['pod', 'external', 'auto'].includes(from)) throw new CliError(`--from ${from}: pod, external or auto`);
  const q: ExplainQuery = {
    src: s.address,
    dst: d.address,
    dport,
    protocol,
    from: from === 'auto' ? (looksLikeLocalPod(s.address) ? 'pod' : 'external') : (from as 'pod' | 'external'),
  };
  if (o.iface !== undefined) {
    if (q.from !== 'external') throw new CliError('--iface: only for a packet from outside the node (--from external)');
    q.iface = o.iface;
  }
  if (o.sport !== undefined) q.sport = port(o.sport, '--sport');
  if (o.tcpFlags !== undefined) {
    if (protocol !== 6) throw new CliError('--tcp-flags: only for tcp');
    q.tcpFlags = parseTcpFlags(o.tcpFlags);
  }
  if (o.icmpType !== undefined) {
    if (protocol !== ICMP_PROTO[family]) throw new CliError('--icmp-type: only for icmp');
    q.icmpType = parseIcmpType(o.icmpType, family);
  }
  if (o.quote !== undefined) {
    if (!ICMP_ERRORS[family].includes(q.icmpType ?? -1))
      throw new CliError(
        `--quote: only with --icmp-type dest-unreachable, time-exceeded${family === 6 ? ', parameter-problem or packet-too-big' : ' or parameter-problem'}`,
      );
    q.quote = parseQuote(o.quote, family);
  }
  return q;
}

/** The options that give `q` back through parseQuery (tests check every fixture is expressible). */
export function queryArgs(q: ExplainQuery): string[] {
  const proto = protocolName(q.protocol);
  const args = [q.src, q.dst, `${q.dport}/${proto}`, '--from', q.from];
  if (q.iface !== undefined) args.push('--iface', q.iface);
  if (q.sport !== undefined) args.push('--sport', String(q.sport));
  if (q.tcpFlags !== undefined)
    args.push(
      '--tcp-flags',
      Object.entries(TCP)
        .filter(([, b]) => q.tcpFlags! & b)
        .map(([n]) => n)
        .join(',') || 'none',
    );
  if (q.icmpType !== undefined) args.push('--icmp-type', String(q.icmpType));
  if (q.quote) args.push('--quote', `${hostPort(q.quote.src, q.quote.sport)},${hostPort(q.quote.dst, q.quote.dport)}/${protocolName(q.quote.protocol)}`);
  return args;
}

function describe(q: ExplainQuery, e: Explanation): string {
  // no --sport: any source port, which the rewrite keeps ("*")
  const sportOf = (r: Rewrite) => (q.sport === undefined && !isIcmp(q.protocol) && r.sport === 0 ? '*' : r.sport);
  const tuple = (r: Rewrite) => `${hostPort(r.saddr, sportOf(r))} -> ${hostPort(r.daddr, r.dport)}`;
  const lines: string[] = [];
  const what =
    q.protocol === 6 ? ` [${tcpFlagString(q.tcpFlags ?? TCP.syn)}]` : isIcmp(q.protocol) ? ` type ${q.icmpType ?? (q.protocol === 1 ? 8 : 128)}` : '';
  const from = q.from === 'pod' ? 'from a local pod' : 'from outside the node';
  const src = q.sport !== undefined ? hostPort(q.src, q.sport) : q.src;
  lines.push(`packet ${src} -> ${hostPort(q.dst, q.dport)}/${protocolName(q.protocol)}${what}, first met by ${e.hook} (${from})`);
  if (e.frontend) {
    const f = e.frontend;
    const flags = frontendFlags(f.flags).join(',') || '-';
    lines.push(`frontend  ${hostPort(f.address, f.port)}/${protocolName(f.protocol)} scope=${f.scope} id=${f.id} backends=${f.backendCount} flags=${flags}`);
    for (const c of e.candidates)
      lines.push(
        `  slot ${c.slot}  ${hostPort(c.address, c.port)}  ${backendFlags((c.local ? 1 : 0) | (c.terminating ? 2 : 0)).join(',') || 'remote'}${c.tunnelTo ? `  via tunnel to ${c.tunnelTo}` : ''}`,
      );
  } else lines.push('frontend  none');
  if (e.affinity)
    lines.push(`affinity  ${hostPort(e.affinity.backend, e.affinity.port)} idle ${e.affinity.idleS.toFixed(1)} s${e.affinity.fresh ? '' : ' (expired)'}`);
  for (const f of e.flows) lines.push(`flow      :${f.sport} -> ${hostPort(f.backend, f.backendPort)} (conntrack)`);
  for (const h of e.host ?? []) lines.push(...hostLines(h));
  if (e.policy) lines.push(...policyLines(q, e));
  // a drop in the XDP prefilter happens before any TC program
  const hook = e.host?.length === 1 && e.host[0]!.droppedIn === 'xdp' ? 'xdp' : 'tc';
  lines.push(`verdict   ${e.verdict}${e.tc ? ` (${hook} ${e.tc}, counted as ${e.reason})` : ''}`);
  for (const o of e.outcomes.length > 1 || !e.tc ? e.outcomes : []) {
    const slot = o.backend ? `slot ${o.backend.slot ?? '-'}: ` : '';
    lines.push(`  ${slot}tc ${o.tc}, counted as ${o.reason}${o.rewrite ? `, leaves as ${tuple(o.rewrite)}` : ''}`);
  }
  if (e.rewrite) lines.push(`leaves as ${tuple(e.rewrite)}`);
  const quote = e.outcomes[0]?.quote;
  if (quote) lines.push(`quote as  ${hostPort(quote.saddr, quote.sport)} -> ${hostPort(quote.daddr, quote.dport)}`);
  for (const n of e.notes) lines.push(`  - ${n}`);
  return lines.join('\n');
}

/** The policy stage's part: per new flow, both directions as the program decides them. */
function policyLines(q: ExplainQuery, e: Explanation): string[] {
  const p = e.policy!;
  if (p.stage === 'cached') return ['policy    conntrack has the flow: the verdict cached when it started holds'];
  if (p.stage === 'none' && e.host?.length === 1 && e.host[0]!.verdict === 'drop') return ['policy    not reached: host policy dropped the packet'];
  if (p.stage === 'none')
    return ['policy    not decided: the policy stage does not see this packet (an ICMP error, a reject, a mid-stream segment to a Service)'];
  const lines: string[] = [];
  for (const d of p.decisions) {
    const to = d.backend ? `${d.backend.slot !== undefined ? `slot ${d.backend.slot} ` : ''}${hostPort(d.dst, d.backend.port)}` : hostPort(d.dst, q.dport);
    lines.push(`policy    ${to}/${protocolName(d.protocol)}: ${d.verdict}${d.reason ? ` (${d.reason})` : ''}`);
    for (const [name, dir] of [
      ['egress ', d.egress],
      ['ingress', d.ingress],
    ] as const) {
      const who = dir.identity !== undefined ? `${dir.endpoint} ${dir.name} (${dir.identity})` : dir.endpoint;
      lines.push(`  ${name}  ${who}: ${directionText(dir)}`);
    }
  }
  return lines;
}

/** The host policy stage of one host endpoint, a line per step. */
function hostLines(h: HostExplanation): string[] {
  const lines = [`host      endpoint ${h.endpoint.name} (id ${h.endpoint.id}) on ${h.interfaces.join(', ') || 'no interface'}`];
  for (const s of h.steps) {
    for (const p of s.passed ?? []) lines.push(`  ${s.stage.padEnd(9)} rule #${p.index} ${p.policy ?? ''} ${p.rule ?? ''}: pass (next tier)`);
    lines.push(`  ${s.stage.padEnd(9)} ${s.text}`);
  }
  const end = h.verdict === 'drop' ? `drop in ${h.droppedIn === 'xdp' ? 'XDP' : 'TC'}` : 'allow';
  lines.push(`  host policy: ${end}${h.reason ? ` (${h.reason})` : ''}`);
  return lines;
}

/** The host policy maps for explain: the plan read back, set lookups in the maps, the endpoints of --iface (or every one). */
function hostExplainMaps(maps: HostPolicyReadMaps, q: ExplainQuery, policy: PolicyReadMaps | undefined): HostExplainMaps {
  const plan = planFromMaps(maps);
  let heps = [...new Set(plan.hepOfIfindex.values())].sort((a, b) => a - b);
  if (q.iface !== undefined) {
    let ifindex: number;
    try {
      ifindex = ifindexOf(q.iface);
    } catch {
      throw new CliError(`--iface ${q.iface}: no such interface here`);
    }
    const hep = plan.hepOfIfindex.get(ifindex);
    if (hep === undefined) throw new CliError(`--iface ${q.iface}: no host endpoint covers it (weir_hep_ifaces has no ifindex ${ifindex})`);
    heps = [hep];
  }
  // this host: its endpoints' expectedIPs, the addresses of the interfaces here (explain runs on the node), the ipcache's host entries
  const addresses = new Set(plan.endpoints.flatMap((e) => e.expectedIPs));
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) addresses.add(a.address);
  const ipcacheHost = (a: string) => {
    const m = a.includes(':') ? policy?.ipv6?.ipcache : policy?.ipcache;
    return m?.get({ prefixlen: a.includes(':') ? 128 : 32, address: a })?.identity === IDENTITY_HOST;
  };
  return { plan, inSet: mapSetLookup(maps), isHost: (a) => addresses.has(a) || ipcacheHost(a), heps };
}

/** weir_maglev4 and the maglev_table_size of the programs on the pinned links (absent when none is attached). */
function maglevMaps(map: BpfMap, pinDir: string): MaglevReadMaps {
  const tableSize = rodataU32(linkedProgramIds(pinDir), 'maglev_table_size');
  return { tables: typedMap(map, codecFor('weir_maglev4_key'), codecFor('weir_maglev4')), ...(tableSize ? { tableSize } : {}) };
}

export function registerExplainCommand(program: Command): void {
  stateOptions(program.command('explain'))
    .description('what weir would do to a packet, read-only from the live maps: frontend, eligible backends, affinity, conntrack, verdict, counter, rewrite')
    .argument('<src>', 'source address')
    .argument('<dst>', 'destination address (a ClusterIP, node address, externalIP, ...)')
    .argument('<port/proto>', 'destination port and protocol, e.g. 80/tcp; for icmp the echo identifier, e.g. 4242/icmp')
    .option('--sport <port>', 'source port of a flow under way (looks up its conntrack entry)')
    .option('--from <where>', 'pod (hook from_pod), external (hook from_host), or auto (a source with a host route to a workload interface is a pod)', 'auto')
    .option('--tcp-flags <list>', 'TCP flags of the packet, e.g. syn, ack, syn,ack, fin,ack, none (default syn: a new connection)')
    .option(
      '--icmp-type <type>',
      'icmp: echo-request (default), echo-reply, dest-unreachable, time-exceeded, parameter-problem, packet-too-big (IPv6) or a number',
    )
    .option('--iface <name>', 'external: the host interface the packet arrives on (host policy: its host endpoint; default: every host endpoint)')
    .option('--quote <tuple>', 'ICMP errors: the quoted packet, SRC:SPORT,DST:DPORT/PROTO (IPv6: [SRC]:SPORT,[DST]:DPORT/PROTO)')
    .addOption(outputOption())
    .action((src: string, dst: string, portProto: string, o: StateOptions & ExplainOptions & { output: OutputFormat }) => {
      const q = parseQuery(src, dst, portProto, o);
      withOpenMaps(o, (open, pinned) => {
        // each family's service maps by the one table (loader.FAMILY_SERVICE_MAPS), IPv6 where pinned
        const has = (n: string) => pinned.has(n);
        const read = (f: IpFamily): ServiceReadMaps | null => {
          const m = familyServiceMaps(f, open, has);
          return m?.sourceRanges
            ? { frontends: m.frontends, backends: m.backends, affinity: m.affinity, conntrack: m.conntrack, sourceRanges: m.sourceRanges }
            : null;
        };
        const four = read(4);
        if (!four) throw new CliError(`the IPv4 service maps are not all pinned at ${pinDirOf(o)} (weir state from another version, or not started yet)`);
        const six = read(6);
        // the IPv6 tunnel's map (a release before it has none): which node a remote IPv6 backend is on
        if (six && pinned.has('weir_tunnel6')) six.tunnel = typedMap(open('weir_tunnel6'), codecFor('weir_tunnel6_key'), codecFor('weir_tunnel6'));
        const maps: ExplainMaps = {
          ...four,
          ...(pinned.has('weir_tunnel4') ? { tunnel: typedMap(open('weir_tunnel4'), codecFor('weir_tunnel4_key'), codecFor('weir_tunnel4')) } : {}),
          ...(six ? { ipv6: six } : {}),
          // both families' Maglev tables, and the M the attached programs index them with (their .rodata)
          ...(pinned.has('weir_maglev4') ? { maglev: maglevMaps(open('weir_maglev4'), pinDirOf(o)) } : {}),
          ...(pinned.has('weir_endpoints4') ? { policy: policyMaps(open, (n) => pinned.has(n)) } : {}),
        };
        const hostMaps = hostPolicyReadMaps(open, has);
        if (hostMaps) maps.host = hostExplainMaps(hostMaps, q, maps.policy);
        else if (q.iface !== undefined) throw new CliError(`--iface: no host policy maps are pinned at ${pinDirOf(o)}`);
        const e = explain(maps, q);
        process.stdout.write(render(o.output, { query: q, ...e }, () => describe(q, e)) + '\n');
      });
    });
}
