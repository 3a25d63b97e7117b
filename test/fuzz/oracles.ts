// The oracles of the hostile-packet campaign (campaign.ts), applied to what the native runner
// (test/fixtures/native/fuzz_runner.c) says about one packet through one program: (a) safe,
// (b) no misparse (kernel parse = host parse, and the program acts on it), (c) no rewrite
// without state, and rewrites keep checksums. docs/dataplane.md "Hostile packets" defines them.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { reasonNames } from '../../src/dataplane/counters.js';
import { decodePacket } from '../lib/packet/decode.js';
import { VXLAN_PORT } from '../lib/packet/fuzz.js';
import type { ProgramKey } from '../bpf/service-fixture.js';

export const RESULT_SIZE = 24; // struct fuzz_result
export const F_SAME = 1;
const F_PARSE_AGREE = 2;
const F_KERNEL_REFUSED = 4;
const F_COUNTED = 8;
/** the fields of struct packet the runner compares, in the order of its mismatch bits */
export const PARSE_FIELDS = [
  'reason',
  'l3_proto',
  'l4_proto',
  'flags',
  'l3_off',
  'l4_off',
  'len',
  'l3_len',
  'saddr',
  'daddr',
  'sport',
  'dport',
  'tcp_flags',
  'icmp',
  'ttl',
];
const TC_VERDICTS = new Set([-1, 0, 2, 7]); // TCX_NEXT, PASS, DROP, REDIRECT: all weir returns
const XDP_VERDICTS = new Set([0, 1, 2, 3, 4]);
const TERMINAL = new Set(['not_ip', 'fragment', 'malformed_eth', 'malformed_ipv4_hdr', 'malformed_ipv4_len', 'malformed_ipv6', 'malformed_l4']);
const ETH_P_IPV6 = 0x86dd;
const WEIR_VNI = 0x574549;

export interface ProgramSpec {
  name: string;
  /** the object and program: the service dataplane's, or the probe's */
  key: ProgramKey | 'probe' | 'xdpPrefilter' | 'toHost';
  prog: string;
  hook: number;
  hookName: string;
  /** the family the program handles; the other is handed on (TCX_NEXT) */
  family: 4 | 6 | 'all' | 'none';
  xdp?: boolean;
}

export interface ProgramResult {
  program: string;
  packets: number;
  /** BPF_PROG_TEST_RUN refused the frame (shorter than the headers the kernel pulls) */
  refused: number;
  parseCompared: number;
  parseAgree: number;
  decisionChecked: number;
  decisionAgree: number;
  stateless: number;
  statelessRewritten: number;
  unsafe: number;
  /** packets passed or redirected changed whose checksums all held going in */
  rewrittenChecked: number;
  /** ... of which a checksum no longer holds coming out */
  checksumsBroken: number;
  verdicts: Record<string, number>;
  /** the reasons the program counted, from weir_counters (NAT paths taken show here) */
  reasons: Record<string, number>;
  runSeconds: number;
}

export interface Failure {
  program: string;
  index: number;
  oracle: 'safe' | 'parse' | 'decision' | 'stateless' | 'checksums';
  detail: string;
  file: string;
}

/** What a failure file names: the seed that replays it, and where it goes. */
export interface JudgeContext {
  seed: number;
  failureDir: string;
}

/** Whether @p is weir's VXLAN (UDP to the tunnel port, the I flag and weir's VNI), from the host parse's L4 offset. */
export function weirVxlan(p: Buffer, l4Proto: number, l4Off: number): boolean {
  if (l4Proto !== 17 || l4Off + 16 > p.length) return false;
  return p.readUInt16BE(l4Off + 2) === VXLAN_PORT && (p[l4Off + 8]! & 0x08) !== 0 && p.readUInt32BE(l4Off + 12) >>> 8 === WEIR_VNI;
}

/** The oracles on one packet's result; a failure is written out as hex (the first 20 per program and oracle). */
export function judge(
  spec: ProgramSpec,
  r: ProgramResult,
  p: Buffer,
  index: number,
  res: Buffer,
  after: Buffer | undefined,
  isFree: boolean,
  failures: Failure[],
  o: JudgeContext,
): void {
  const retval = res.readInt32LE(0);
  const err = res.readInt32LE(4);
  const flags = res[12]!;
  const hostReason = reasonNames.get(res[13]!) ?? `reason_${res[13]}`;
  const l4Proto = res[15]!;
  const l3Proto = res.readUInt16LE(16);
  const l4Off = res.readUInt16LE(18);
  const mismatch = res.readUInt32LE(20);
  r.packets++;
  const fail = (oracle: Failure['oracle'], detail: string) => {
    if (failures.filter((f) => f.program === spec.name && f.oracle === oracle).length >= 20) return; // the first 20 of each kind
    const file = join(o.failureDir, `${spec.name}-seed${o.seed}-${index}.hex`);
    const replay = `# replay: make fuzz SEED=${o.seed} COUNT=${index + 1}, or this packet alone: make fuzz PACKET=${file}`;
    writeFileSync(file, `# ${spec.name} ${oracle}: ${detail}\n${replay}\n${p.toString('hex')}\n`);
    failures.push({ program: spec.name, index, oracle, detail, file });
  };

  // (a) the run returned with a verdict the hook knows; the kernel refuses only frames too short for it
  if (err) {
    const short = p.length < 14 || (l3Proto === 0x0800 && p.length < 34) || (l3Proto === ETH_P_IPV6 && p.length < 54);
    if (err === 22 && short) r.refused++;
    else {
      r.unsafe++;
      fail('safe', `test run failed: errno ${err}`);
    }
    return;
  }
  r.verdicts[String(retval)] = (r.verdicts[String(retval)] ?? 0) + 1;
  if (!(spec.xdp ? XDP_VERDICTS : TC_VERDICTS).has(retval)) {
    r.unsafe++;
    fail('safe', `verdict ${retval}`);
  }

  // (b) kernel and host parse agree field by field (the record program refuses what the TC run refuses)
  if (!(flags & F_KERNEL_REFUSED)) {
    r.parseCompared++;
    if (flags & F_PARSE_AGREE) r.parseAgree++;
    else fail('parse', `fields differ: ${PARSE_FIELDS.filter((_, b) => mismatch & (1 << b)).join(', ')}`);
  }
  // ... and the program acts on the parse it was given
  const decision = expectedDecision(spec, hostReason, l3Proto, p, l4Proto, l4Off);
  if (decision) {
    r.decisionChecked++;
    const ok = decision === 'next' ? retval === -1 : decision === 'counted' ? (flags & F_COUNTED) !== 0 : (flags & F_COUNTED) !== 0 && retval === 0;
    if (ok) r.decisionAgree++;
    else fail('decision', `expected ${decision} for ${hostReason}, got verdict ${retval}${flags & F_COUNTED ? ', counted' : ', not counted'}`);
  }

  // a rewrite keeps every checksum right that was right (the quote's transport checksum is
  // left alone by design: icmp_error.h)
  if (after && (retval === 0 || retval === 7)) {
    const before = checksums(p);
    if (before.length && before.every(Boolean)) {
      r.rewrittenChecked++;
      const now = checksums(after);
      if (!now.every(Boolean)) {
        r.checksumsBroken++;
        fail('checksums', `verdict ${retval}, checksums ${JSON.stringify(before)} -> ${JSON.stringify(now)}; out ${after.toString('hex')}`);
      }
    }
  }

  // (c) no rewrite of a packet that matches no state
  if (isFree && spec.family !== 'none') {
    r.stateless++;
    const same = (flags & F_SAME) !== 0;
    const allowed = same && (retval === 0 || retval === -1 || (spec.xdp && retval === 2) || (retval === 2 && weirVxlan(p, l4Proto, l4Off)));
    if (!allowed) {
      r.statelessRewritten++;
      fail('stateless', `verdict ${retval}, ${same ? 'bytes unchanged' : `rewritten (${res.readUInt32LE(8)} bytes out)`}, parse ${hostReason}`);
    }
  }
}

/** The checksums of @p that can be checked: IPv4 header, transport (TCP, UDP, ICMP, ICMPv6), an
 *  ICMP error's quoted IPv4 header, and those of the packet inside a VXLAN frame (decapsulation
 *  hands it on as it came); true where one holds. A zero UDP checksum of VXLAN over IPv6 holds:
 *  weir sends it (RFC 6935, lib/tunnel6.h). */
function checksums(p: Buffer, depth = 0): boolean[] {
  let d;
  try {
    d = decodePacket(p, { from: depth ? 'ip' : 'eth' });
  } catch {
    return [];
  }
  if (d.errors.length) return [];
  const quoted = d.l4 && 'embedded' in d.l4 ? d.l4.embedded?.ipv4?.checksumValid : null;
  const vxlan = d.udp?.dport === VXLAN_PORT;
  const l4 = vxlan && d.ipv6 && d.udp!.checksum === 0 ? true : d.l4?.checksumValid;
  const out = [d.ipv4?.checksumValid, l4, quoted].filter((v): v is boolean => typeof v === 'boolean');
  if (vxlan && depth === 0) {
    const l3 = d.eth?.vlan ? 18 : 14;
    const udp = d.ipv4 ? l3 + d.ipv4.ihl * 4 : l3 + 40 + (d.ipv6?.ext ?? []).reduce((n, e) => n + e.length, 0);
    // from the inner IP header: decapsulation keeps the outer Ethernet header and parses what
    // follows the inner one, whatever the inner ethertype says
    if (p.length > udp + 16 + 14 + 20) out.push(...checksums(p.subarray(udp + 16 + 14), 1));
  }
  return out;
}

/** What the program must do with a packet, given the host parse: 'next' (the other family's
 *  program gets it), 'counted-pass' (counted the parse reason and passed it), 'counted'
 *  (the probes count every reason), or undefined when the parse does not decide it alone. */
function expectedDecision(spec: ProgramSpec, reason: string, l3Proto: number, p: Buffer, l4Proto: number, l4Off: number): string | undefined {
  if (spec.family === 'all') return 'counted';
  if (spec.family === 'none') return undefined;
  const mine = spec.family === 6 ? l3Proto === ETH_P_IPV6 : l3Proto !== ETH_P_IPV6;
  if (!mine) {
    // from_host6 takes weir's tunnel packets under an IPv4 outer header (IPv6 inside)
    if (spec.name === 'from_host6' && weirVxlan(p, l4Proto, l4Off)) return undefined;
    return 'next';
  }
  return TERMINAL.has(reason) ? 'counted-pass' : undefined;
}
