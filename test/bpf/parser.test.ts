// The bounds-safe parser (bpf-c/lib/parse.h), checked two ways on the same fixtures:
// inside the kernel through the probe's BPF_PROG_TEST_RUN (verdict, untouched output,
// exact counters), and built for the host under ASan/UBSan, which also takes the
// frames a test run refuses and a few thousand mutated packets (test/fuzz runs millions
// through every program).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { BpfObject } from '../../src/bpf/index.js';
import { counterTotals, readCounters, resetCounters, reasonNames } from '../../src/dataplane/counters.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { repoRoot } from '../lib/paths.js';
import { parserCases } from '../fixtures/packets/parser.js';
import { formatIPv6, parseIPv6 } from '../lib/packet/addr.js';
import { prng } from '../lib/packet/fuzz.js';

const HARNESS = join(repoRoot, 'build', 'test-native', 'parse_harness');
const ETH_HLEN = 14;

interface HarnessResult {
  reason: number;
  l3_proto: number;
  l4_proto: number;
  flags: number;
  l3_off: number;
  l4_off: number;
  l3_len: number;
  sport: number;
  dport: number;
  saddr: string;
  daddr: string;
}

/** Runs packets through the host build of the parser; throws if it crashes (ASan aborts). */
function parseOnHost(packets: Buffer[]): HarnessResult[] {
  const input = Buffer.concat(
    packets.flatMap((p) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(p.length);
      return [len, p];
    }),
  );
  const out = execFileSync(HARNESS, { input, maxBuffer: 256 << 20, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });
  const lines = out.toString().trim().split('\n').filter(Boolean);
  assert.equal(lines.length, packets.length, 'the host parser answered every packet');
  return lines.map((l) => JSON.parse(l) as HarnessResult);
}

const reasonOf = (n: number) => reasonNames.get(n) ?? `reason_${n}`;

/** BPF_PROG_TEST_RUN on a TC program refuses (EINVAL) a frame shorter than Ethernet, and
 *  one whose ethertype says IPv4/IPv6 but which cannot hold the fixed IP header (the kernel
 *  pulls it before the program runs). Those frames are checked on the host build only. */
function kernelRefuses(p: Buffer): boolean {
  if (p.length < ETH_HLEN) return true;
  const ethertype = p.readUInt16BE(12);
  if (ethertype === 0x0800) return p.length < ETH_HLEN + 20;
  if (ethertype === 0x86dd) return p.length < ETH_HLEN + 40;
  return false;
}

/** IPv6 addresses compared in their canonical text form. */
const canon = (v: unknown) => (typeof v === 'string' && v.includes(':') ? formatIPv6(parseIPv6(v)) : v);

let bpffs: PrivateBpffs;
let probe: BpfObject;

before(() => {
  bpffs = mountPrivateBpffs('parser');
  probe = BpfObject.load(join(repoRoot, 'build', 'bpf', 'probe.o'), { pinDir: bpffs.path });
});

after(async () => {
  probe?.close();
  await bpffs?.cleanup();
});

test('the probe passes every fixture untouched and counts it under the expected reason', () => {
  const counters = probe.map('weir_counters');
  const prog = probe.program('weir_probe');
  const expected: Record<string, number> = {};
  for (const c of parserCases) {
    if (kernelRefuses(c.packet)) continue; // the kernel refuses these test inputs (below)
    resetCounters(counters);
    const r = prog.testRun({ data: c.packet });
    assert.equal(r.retval, 0, `${c.name}: verdict is pass`);
    assert.deepEqual(r.data, c.packet, `${c.name}: packet left untouched`);
    assert.deepEqual(counterTotals(readCounters(counters)), { probe: { [c.reason]: 1 } }, c.name);
    expected[c.reason] = (expected[c.reason] ?? 0) + 1;
  }
  // and a whole run adds up exactly, as Katran's fixture totals do
  resetCounters(counters);
  for (const c of parserCases) if (!kernelRefuses(c.packet)) prog.testRun({ data: c.packet });
  assert.deepEqual(counterTotals(readCounters(counters)), { probe: expected });
});

test('a test run refuses frames shorter than Ethernet or than the IP header, so the host build checks those', () => {
  const prog = probe.program('weir_probe');
  assert.throws(() => prog.testRun({ data: Buffer.alloc(10) }), { code: 'EINVAL' });
  const short = parserCases.filter((c) => kernelRefuses(c.packet));
  for (const c of short) assert.throws(() => prog.testRun({ data: c.packet }), { code: 'EINVAL' }, c.name);
  assert.ok(short.filter((c) => c.packet.length < ETH_HLEN).length >= 2);
  for (const [i, r] of parseOnHost(short.map((c) => c.packet)).entries()) assert.equal(reasonOf(r.reason), short[i]!.reason, short[i]!.name);
});

test('the host build agrees with the kernel on every fixture, fields included', () => {
  const results = parseOnHost(parserCases.map((c) => c.packet));
  for (const [i, c] of parserCases.entries()) {
    const r = results[i]!;
    assert.equal(reasonOf(r.reason), c.reason, c.name);
    for (const [field, want] of Object.entries(c.fields ?? {})) assert.equal(canon(r[field as keyof HarnessResult]), canon(want), `${c.name}: ${field}`);
  }
});

function mutate(base: Buffer, rnd: () => number): Buffer {
  const p = Buffer.from(base);
  const kind = rnd();
  if (kind < 0.3) {
    // flip a few bytes in the headers, where the lengths and offsets live
    for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) p[Math.floor(rnd() * Math.min(p.length, 80))] = Math.floor(rnd() * 256);
    return p;
  }
  if (kind < 0.6) return p.subarray(0, Math.floor(rnd() * p.length));
  if (kind < 0.8) {
    // lie in a length field: IPv4 total length, IPv6 payload length, UDP length, TCP data offset
    const at = [16, 18, 38, 46, 54, 58][Math.floor(rnd() * 6)]!;
    if (at < p.length) p[at] = Math.floor(rnd() * 256);
    return p;
  }
  return Buffer.concat([p, Buffer.alloc(Math.floor(rnd() * 64), Math.floor(rnd() * 256))]);
}

test('mutated packets: no crash on the host, same verdict in the kernel, offsets inside the packet', () => {
  const seed = 20261123;
  const rnd = prng(seed);
  const bases = parserCases.filter((c) => c.packet.length >= 34).map((c) => c.packet);
  const packets = Array.from({ length: 4000 }, () => mutate(bases[Math.floor(rnd() * bases.length)]!, rnd));
  const host = parseOnHost(packets);
  const counters = probe.map('weir_counters');
  const prog = probe.program('weir_probe');
  let compared = 0;
  let refused = 0;
  // counter deltas per packet (one batch read each), not a reset of every slot per packet
  const totals = () => counterTotals(readCounters(counters));
  const delta = (a: Record<string, Record<string, number>>, b: Record<string, Record<string, number>>) => {
    const out: Record<string, Record<string, number>> = {};
    for (const [hook, reasons] of Object.entries(b))
      for (const [why, n] of Object.entries(reasons)) if (n !== (a[hook]?.[why] ?? 0)) (out[hook] ??= {})[why] = n - (a[hook]?.[why] ?? 0);
    return out;
  };
  resetCounters(counters);
  let before = totals();
  for (const [i, p] of packets.entries()) {
    const r = host[i]!;
    const reason = reasonOf(r.reason);
    if (reason.startsWith('parsed_') && reason !== 'parsed_other_l4') {
      assert.ok(r.l4_off + 8 <= p.length, `seed ${seed} packet ${i}: transport header inside the packet`);
      assert.ok(r.l3_off + r.l3_len <= p.length, `seed ${seed} packet ${i}: datagram inside the packet`);
    }
    if (kernelRefuses(p)) {
      refused++;
      continue;
    }
    const run = prog.testRun({ data: p });
    assert.equal(run.retval, 0);
    assert.deepEqual(run.data, p, `seed ${seed} packet ${i}: untouched`);
    const after = totals();
    assert.deepEqual(delta(before, after), { probe: { [reason]: 1 } }, `seed ${seed} packet ${i}`);
    before = after;
    compared++;
  }
  // every packet the kernel accepts for a test run (BPF_PROG_TEST_RUN refuses some lengths)
  console.log(`# compared ${compared} of ${packets.length} mutated packets with the kernel; ${refused} refused by BPF_PROG_TEST_RUN`);
  assert.equal(compared + refused, packets.length);
  assert.ok(compared > 3000, `compared ${compared} packets with the kernel`);
});
