// cli/nat: `weir nat list`, one row per NAT'd flow. The conntrack map holds one entry per
// direction (docs/dataplane.md); this pairs each original-direction entry with the reply
// entry its rewrite implies and shows the flow as an operator thinks of it: client ->
// frontend -> backend (plus the translated source for hairpin/SNAT), a TCP state from the
// flags both directions saw, age, packets and bytes each way. Read from the pinned maps of
// both families (weir_ct4_v2, weir_ct6 where pinned), one code path: rows carry a `family`.

import type { Command } from 'commander';
import { IPPROTO, type IpFamily } from '../bpf/ip.js';
import type { CtKey, CtValue } from '../dataplane/conntrack-gc.js';
import { addressPort } from '../dataplane/frontend-entries.js';
import { ageSeconds, ctFlags, ctForward, familyName, protocolName, tcpFlagString } from './decode.js';
import { CliError, print } from './output.js';
import { common, ctFamilies, ctFilterFrom, withFamilyMap, type Common, type CtFilter } from './services.js';
import type { StateOptions } from './state.js';

export interface NatRow {
  /** IPv4 or IPv6: which family's conntrack map holds the flow */
  family: string;
  protocol: string;
  client: string;
  frontend: string;
  backend: string;
  /** the source the backend sees when it is not the client (hairpin, SNAT); else '' */
  translatedSource: string;
  flags: string[];
  /** where the client's packets go from this node (the forward stage): `tunnel→NODE`,
   *  `dsr→NODE`, `redirect→ifindex N` or `stack` (decode.ts ctForward) */
  forward: string;
  /** TCP: syn_sent, syn_recv, established, closing, closed, reset; '' otherwise */
  state: string;
  tcpOriginal: string;
  tcpReply: string;
  frontendId: number;
  ageS: number;
  idleS: number;
  packetsOut: bigint;
  packetsIn: bigint;
  bytesOut: bigint;
  bytesIn: bigint;
  /** false when the reply entry is gone (LRU eviction, a hand flush): the row is half a flow */
  paired: boolean;
}

const SYN = 0x02,
  FIN = 0x01,
  RST = 0x04,
  ACK = 0x10;

/** A summary of a TCP flow from the flags each direction has seen. */
export function tcpState(orig: number, reply: number): string {
  if ((orig | reply) & RST) return 'reset';
  if (orig & FIN && reply & FIN) return 'closed';
  if ((orig | reply) & FIN) return 'closing';
  if (reply & SYN && reply & ACK) return orig & ACK ? 'established' : 'syn_recv';
  return 'syn_sent';
}

const tuple = (k: { saddr: string; daddr: string; sport: number; dport: number; protocol: number }) =>
  `${k.saddr}:${k.sport}>${k.daddr}:${k.dport}/${k.protocol}`;

function matches(f: CtFilter, protocol: number, addresses: string[], ports: number[]): boolean {
  if (f.protocol !== undefined && protocol !== f.protocol) return false;
  if (f.address && !addresses.includes(f.address)) return false;
  if (f.port !== undefined && !ports.includes(f.port)) return false;
  return true;
}

/** Pairs one family's conntrack entries into flows; entries whose original direction is gone are left out. */
export function natRowsOf(entries: ReadonlyArray<[CtKey, CtValue]>, f: CtFilter = {}, now = process.hrtime.bigint(), family: IpFamily = 4): NatRow[] {
  const at = (address: string, port: number) => addressPort(family, address, port);
  const REPLY = 'reply';
  const byTuple = new Map(entries.map(([k, v]) => [tuple(k), v]));
  const rows: NatRow[] = [];
  for (const [k, v] of entries) {
    const flags = ctFlags(v.flags);
    if (flags.includes(REPLY)) continue;
    if (!flags.includes('dnat') && !flags.includes('snat')) continue; // tracked only (ct_track_all): not a NAT'd flow
    const reply = byTuple.get(tuple({ saddr: v.nat_daddr, daddr: v.nat_saddr, sport: v.nat_dport, dport: v.nat_sport, protocol: k.protocol }));
    const snat = v.nat_saddr !== k.saddr || v.nat_sport !== k.sport;
    if (!matches(f, k.protocol, [k.saddr, k.daddr, v.nat_daddr, v.nat_saddr], [k.sport, k.dport, v.nat_dport, v.nat_sport])) continue;
    const tcp = k.protocol === IPPROTO.TCP;
    rows.push({
      family: familyName(family),
      protocol: protocolName(k.protocol),
      client: at(k.saddr, k.sport),
      frontend: at(k.daddr, k.dport),
      backend: at(v.nat_daddr, v.nat_dport),
      translatedSource: snat ? at(v.nat_saddr, v.nat_sport) : '',
      flags: flags.filter((x) => x !== 'dnat' && x !== 'snat'),
      forward: ctForward(v),
      state: tcp ? tcpState(v.tcp_flags_seen, reply?.tcp_flags_seen ?? 0) : '',
      tcpOriginal: tcp ? tcpFlagString(v.tcp_flags_seen) : '',
      tcpReply: tcp ? tcpFlagString(reply?.tcp_flags_seen ?? 0) : '',
      frontendId: v.frontend_id,
      ageS: ageSeconds(v.created_ns, now),
      idleS: ageSeconds(reply && reply.last_seen_ns > v.last_seen_ns ? reply.last_seen_ns : v.last_seen_ns, now),
      packetsOut: v.packets,
      packetsIn: reply?.packets ?? 0n,
      bytesOut: v.bytes,
      bytesIn: reply?.bytes ?? 0n,
      paired: reply !== undefined,
    });
  }
  return rows.sort((a, b) => a.client.localeCompare(b.client) || a.frontend.localeCompare(b.frontend));
}

/** The NAT'd flows of both families (IPv4 first). */
export function natRows(o: StateOptions, f: CtFilter = {}): NatRow[] {
  const now = process.hrtime.bigint();
  return ctFamilies(o, f).flatMap((family) => withFamilyMap<CtKey, CtValue, NatRow[]>(o, family, 'conntrack', (entries) => natRowsOf(entries, f, now, family)));
}

export function registerNatCommand(program: Command): void {
  const nat = program.command('nat').description("NAT'd flows (the conntrack map, both directions paired)");
  common(
    nat
      .command('list')
      .description('one row per flow: client -> frontend -> backend, translated source, TCP state, age, packets both ways')
      .option('--address <ip>', 'flows with this address (client, frontend, backend or translated source)')
      .option('--port <port>', 'flows with this port')
      .option('--protocol <proto>', 'tcp, udp, icmp, icmpv6, sctp or a number'),
  ).action((o: Common & { address?: string; port?: string; protocol?: string }) => {
    let rows: NatRow[];
    try {
      rows = natRows(o, ctFilterFrom(o));
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw new CliError(`reading the conntrack maps: ${(e as Error).message.split('\n')[0]}`);
    }
    if (o.output !== 'table') return print(o.output, rows);
    print(
      'table',
      rows.map((r) => ({
        ...r,
        backend: r.translatedSource ? `${r.backend} (from ${r.translatedSource})` : r.backend,
        flags: r.flags.join(',') || '-',
        packets: `${r.packetsOut}/${r.packetsIn}`,
      })),
      ['protocol', 'client', 'frontend', 'backend', 'state', 'flags', 'forward', 'ageS', 'idleS', 'packets'],
    );
  });
}
