// cli/explain: `weir explain <src> <dst> <port>/<proto>`: what weir would do to such a
// packet now, read-only from the live maps (src/dataplane/explain.ts).

import { execFileSync } from 'node:child_process';
import type { Command } from 'commander';
import { codecFor, type BpfMap } from '../bpf/index.js';
import { canonicalIp } from '../bpf/ip.js';
import { explain, type ExplainMaps, type ExplainQuery, type Explanation } from '../dataplane/explain.js';
import { backendFlags, frontendFlags, protocolName, protocolNumber } from './decode.js';
import { CliError, json, parseFormat, type OutputFormat } from './output.js';
import { openMap, type StateOptions } from './state.js';


/** A pod address has a host route to a workload interface (`podIP dev vethX`, as CNIs install). */
function looksLikeLocalPod(ip: string): boolean {
  try {
    const routes = JSON.parse(execFileSync('ip', ['-j', 'route', 'show', 'exact', `${ip}/32`], { encoding: 'utf8' })) as Array<{ dev?: string; gateway?: string }>;
    return routes.some((r) => r.dev && !r.gateway);
  } catch {
    return false;
  }
}

export function parseQuery(src: string, dst: string, portProto: string, o: { sport?: string; from?: string }): ExplainQuery {
  if (canonicalIp(src, 4) === null) throw new CliError(`source ${src}: an IPv4 address`);
  if (canonicalIp(dst, 4) === null) throw new CliError(`destination ${dst}: an IPv4 address`);
  const m = /^(\d+)(?:\/(\w+))?$/.exec(portProto);
  const port = m ? Number(m[1]) : NaN;
  if (!m || port > 65535) throw new CliError(`${portProto}: use PORT/PROTO, e.g. 80/tcp`);
  const protocol = protocolNumber(m[2] ?? 'tcp');
  if (protocol === undefined) throw new CliError(`${portProto}: protocol tcp, udp, sctp or icmp`);
  let sport: number | undefined;
  if (o.sport !== undefined) {
    sport = Number(o.sport);
    if (!Number.isInteger(sport) || sport < 0 || sport > 65535) throw new CliError(`--sport ${o.sport}: 0..65535`);
  }
  const from = o.from ?? 'auto';
  if (!['pod', 'external', 'auto'].includes(from)) throw new CliError(`--from ${from}: pod, external or auto`);
  return { src, dst, dport: port, protocol, ...(sport !== undefined ? { sport } : {}), from: from === 'auto' ? (looksLikeLocalPod(src) ? 'pod' : 'external') : (from as 'pod' | 'external') };
}

function describe(q: ExplainQuery, e: Explanation): string {
  const lines: string[] = [];
  lines.push(`packet ${q.src}${q.sport !== undefined ? `:${q.sport}` : ''} -> ${q.dst}:${q.dport}/${protocolName(q.protocol)}, first met by ${e.hook} (${q.from === 'pod' ? 'from a local pod' : 'from outside the node'})`);
  if (e.frontend) {
    const f = e.frontend;
    lines.push(`frontend  ${f.address}:${f.port}/${protocolName(f.protocol)} scope=${f.scope} id=${f.id} backends=${f.backendCount} flags=${frontendFlags(f.flags).join(',') || '-'}`);
    for (const c of e.candidates) lines.push(`  slot ${c.slot}  ${c.address}:${c.port}  ${backendFlags((c.local ? 1 : 0) | (c.terminating ? 2 : 0)).join(',') || 'remote'}`);
  } else lines.push('frontend  none');
  if (e.affinity) lines.push(`affinity  ${e.affinity.backend}:${e.affinity.port} idle ${e.affinity.idleS.toFixed(1)} s${e.affinity.fresh ? '' : ' (expired)'}`);
  for (const f of e.flows) lines.push(`flow      :${f.sport} -> ${f.backend}:${f.backendPort} (conntrack)`);
  const target = e.verdict === 'established' ? ` to ${e.rewrite!.daddr}:${e.rewrite!.dport}` : e.verdict === 'dnat' ? ` to ${e.affinity?.fresh ? `${e.affinity.backend}:${e.affinity.port}` : `one of ${e.candidates.length}`}` : '';
  lines.push(`verdict   ${e.verdict}${target}`);
  for (const n of e.notes) lines.push(`  - ${n}`);
  return lines.join('\n');
}

export function registerExplainCommand(program: Command): void {
  program
    .command('explain')
    .description('what weir would do to a packet, read-only from the live maps: frontend, eligible backends, affinity, conntrack, verdict')
    .argument('<src>', 'source address')
    .argument('<dst>', 'destination address (a ClusterIP, node address, externalIP, ...)')
    .argument('<port/proto>', 'destination port and protocol, e.g. 80/tcp')
    .option('--sport <port>', 'source port of a flow under way (looks up its conntrack entry)')
    .option('--from <where>', 'pod, external, or auto (a source with a host route to a workload interface is a pod)', 'auto')
    .option('--bpf-root <dir>', 'bpffs mount holding weir/<instance>', '/sys/fs/bpf')
    .option('--instance <name>', 'weir instance on this node', 'default')
    .option('--pin-dir <dir>', 'pin directory (overrides --bpf-root/--instance)')
    .option('-o, --output <format>', 'table or json', parseFormat, 'table' as OutputFormat)
    .action((src: string, dst: string, portProto: string, o: StateOptions & { sport?: string; from?: string; output: OutputFormat }) => {
      const q = parseQuery(src, dst, portProto, o);
      const opened: BpfMap[] = [];
      const open = (name: string) => {
        const m = openMap(o, name);
        opened.push(m);
        return m;
      };
      try {
        const maps: ExplainMaps = {
          frontends: open('weir_frontend4').typed(codecFor('weir_frontend4_key'), codecFor('weir_frontend4')),
          backends: open('weir_backend4').typed(codecFor('weir_backend4_key'), codecFor('weir_backend4')),
          affinity: open('weir_affinity4').typed(codecFor('weir_affinity4_key'), codecFor('weir_affinity4')),
          conntrack: open('weir_ct4_v2').typed(codecFor('weir_ct4_key'), codecFor('weir_ct4')),
        };
        const e = explain(maps, q);
        process.stdout.write((o.output === 'json' ? json({ query: q, ...e }) : describe(q, e)) + '\n');
      } finally {
        for (const m of opened) m.close();
      }
    });
}
