// The hostile-packet campaign (issue 16): every packet program of bpf-c/ loaded as in
// production (maps shared by pin name in a private bpffs), real state programmed (frontends,
// backends, peer nodes, tunnel routes, and conntrack entries made by running the first packets
// of flows), then a seeded stream of generated and mutated packets (test/lib/packet/fuzz.ts)
// through each program by the native runner (test/fixtures/native/fuzz_runner.c), in a netns
// of its own, judged packet by packet (oracles.ts). Packets that match no state run first in
// each chunk, against the seeded state only; the kernel log is read before and after.
// The sock_lb programs are cgroup socket hooks: they take no packets, so they are not here.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, withNetns, type TypedMap } from '../../src/bpf/index.js';
import { counterTotals, readCounters } from '../../src/dataplane/counters.js';
import { onCleanup } from '../lib/cleanup.js';
import { repoRoot } from '../lib/paths.js';
import { FUZZ_WORLD, fuzzStream, stateless } from '../lib/packet/fuzz.js';
import { eth } from '../lib/packet/build.js';
import { addService, loadServiceDataplane, type ProgramKey, type ServiceDataplane } from '../bpf/service-fixture.js';
import { codecFor, typedMap } from '../../src/bpf/index.js';
import { F_SAME, RESULT_SIZE, judge, type Failure, type ProgramResult, type ProgramSpec } from './oracles.js';

const RUNNER = join(repoRoot, 'build', 'test-native', 'fuzz_runner');
const RECORD_OBJ = join(repoRoot, 'build', 'test-bpf', 'parse_record.o');
const PROBE_OBJ = join(repoRoot, 'build', 'bpf', 'probe.o');
// host endpoint policy's programs (issue 17): no host endpoint here (the shared maps would put
// from_host under it too), so they parse, look the interface up and pass
const HOST_OBJS = { xdpPrefilter: 'xdp_prefilter.o', toHost: 'to_host.o' } as const;
export const PROGRAMS: ProgramSpec[] = [
  { name: 'from_pod', key: 'fromPod', prog: 'weir_from_pod', hook: 1, hookName: 'from_pod', family: 4 },
  { name: 'from_pod6', key: 'fromPod6', prog: 'weir_from_pod6', hook: 1, hookName: 'from_pod', family: 6 },
  { name: 'from_host', key: 'fromHost', prog: 'weir_from_host', hook: 3, hookName: 'from_host', family: 4 },
  { name: 'from_host6', key: 'fromHost6', prog: 'weir_from_host6', hook: 3, hookName: 'from_host', family: 6 },
  { name: 'to_pod', key: 'toPod', prog: 'weir_to_pod', hook: 2, hookName: 'to_pod', family: 'none' },
  { name: 'probe', key: 'probe', prog: 'weir_probe', hook: 0, hookName: 'probe', family: 'all' },
  { name: 'probe_xdp', key: 'probe', prog: 'weir_probe_xdp', hook: 0, hookName: 'probe', family: 'all', xdp: true },
  { name: 'xdp_prefilter', key: 'xdpPrefilter', prog: 'weir_xdp_prefilter', hook: 7, hookName: 'xdp', family: 'none', xdp: true },
  { name: 'to_host', key: 'toHost', prog: 'weir_to_host', hook: 4, hookName: 'to_host', family: 'none' },
];

export interface CampaignResult {
  seed: number;
  count: number;
  kernel: string;
  generateSeconds: number;
  programs: ProgramResult[];
  failures: Failure[];
  kinds: Record<string, number>;
  mutations: Record<string, number>;
  dmesgNew: string[];
}

/** The state of FUZZ_WORLD in the maps: services, peers, tunnel routes. */
function programState(dp: ServiceDataplane): void {
  let id = 1;
  for (const w of [FUZZ_WORLD.v4, FUZZ_WORLD.v6])
    for (const fe of w.frontends)
      for (const scope of ['internal', 'external'] as const)
        addService(dp, { id: id++, address: fe.address, port: fe.port, protocol: fe.protocol, scope, backends: fe.empty ? [] : w.backends });
  type CodecName = Parameters<typeof codecFor>[0];
  const map = (name: string, k: CodecName, v: CodecName) => typedMap(dp.objects.fromHost6.map(name), codecFor(k), codecFor(v)) as TypedMap<unknown, unknown>;
  for (const peer of FUZZ_WORLD.v4.peers) map('weir_nodes4', 'weir_node4_key', 'weir_node4').set({ address: peer }, { flags: 1 });
  for (const peer of FUZZ_WORLD.v6.peers) map('weir_nodes6', 'weir_node6_key', 'weir_node6').set({ address: peer }, { flags: 1 });
  map('weir_tunnel4', 'weir_tunnel4_key', 'weir_tunnel4').set({ prefixlen: 24, address: '198.18.2.0' }, { node_ip: FUZZ_WORLD.v4.peers[0], flags: 1 });
  map('weir_tunnel6', 'weir_tunnel6_key', 'weir_tunnel6').set({ prefixlen: 64, address: '2001:2:0:2::' }, { node_ip: FUZZ_WORLD.v6.peers[0], flags: 1 });
}

/** The fuzz netns's underlay: a veth pair (both ends inside) on the peers' subnets, so the encapsulation's
 *  FIB lookups find a route to the peer (and go on to bpf_skb_adjust_room and the redirect)
 *  instead of stopping at tunnel_failed. Test runs see the netns's lo as their device. */
function underlay(netns: string): void {
  const ip = (...args: string[]) => execFileSync('ip', ['-n', netns, ...args]);
  ip('link', 'set', 'lo', 'up');
  ip('link', 'add', 'fz0', 'type', 'veth', 'peer', 'name', 'fz1');
  ip('link', 'set', 'fz1', 'up');
  ip('addr', 'add', '198.18.200.1/24', 'dev', 'fz0');
  ip('-6', 'addr', 'add', '2001:2:0:a::1/64', 'dev', 'fz0', 'nodad');
  ip('link', 'set', 'fz0', 'up');
  // an ingress FIB lookup answers "forwarding disabled" unless the netns forwards
  for (const knob of ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']) execFileSync('ip', ['netns', 'exec', netns, 'sysctl', '-qw', knob]);
}

/** Conntrack entries made the real way: the first packets of flows from each client to each frontend. */
function openFlows(dp: ServiceDataplane): void {
  for (const [v6, w] of [[false, FUZZ_WORLD.v4] as const, [true, FUZZ_WORLD.v6] as const])
    for (const client of w.clients)
      for (const fe of w.frontends)
        for (let sport = 40000; sport < 40004; sport++) {
          const ip = v6 ? eth().ipv6({ src: client, dst: fe.address }) : eth().ipv4({ src: client, dst: fe.address });
          const pkt =
            fe.protocol === 6
              ? ip.tcp({ sport, dport: fe.port, flags: ['syn'] })
              : fe.protocol === 17
                ? ip.udp({ sport, dport: fe.port })
                : fe.protocol === 132
                  ? null
                  : v6
                    ? ip.icmpv6({ type: 'echo-request', id: sport, seq: 1 })
                    : ip.icmp({ type: 'echo-request', id: sport, seq: 1 });
          if (!pkt) continue;
          const key: ProgramKey = sport < 40002 ? (v6 ? 'fromPod6' : 'fromPod') : v6 ? 'fromHost6' : 'fromHost';
          dp.run(key, pkt.build());
        }
}

interface Snapshot {
  ct4: [unknown, unknown][];
  ct6: [unknown, unknown][];
}

function snapshot(dp: ServiceDataplane): Snapshot {
  return { ct4: [...dp.conntrack.entries()], ct6: [...dp.ipv6.conntrack.entries()] };
}

/** Back to the seeded conntrack: the entries a chunk's packets made are gone, the seeded ones as they were. */
function restore(dp: ServiceDataplane, s: Snapshot): void {
  for (const [m, entries] of [
    [dp.conntrack, s.ct4],
    [dp.ipv6.conntrack, s.ct6],
    [dp.affinity, []],
    [dp.ipv6.affinity, []],
  ] as [TypedMap<unknown, unknown>, [unknown, unknown][]][]) {
    m.deleteMany([...m.keys()]);
    if (entries.length) m.setMany(entries);
  }
}

/** The kernel log lines that would mean a program did something unsafe. */
function dmesgLines(): string[] {
  return execFileSync('dmesg', { maxBuffer: 64 << 20 })
    .toString()
    .split('\n');
}
const ALARM = /WARNING|BUG|Oops|KASAN|UBSAN|general protection|bpf|stack-protector|refcount/i;

export interface CampaignOptions {
  seed: number;
  count: number;
  /** packets per native run (one input file) */
  chunk?: number;
  /** where failing packets go, as hex */
  failureDir: string;
  log?: (line: string) => void;
  /** only these programs (names) */
  only?: string[];
  /** these packets instead of the seed's stream (one failing packet, read back from its hex file) */
  packets?: Buffer[];
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const log = o.log ?? (() => {});
  const chunk = o.chunk ?? 100_000;
  const netns = `weir-fuzz-${process.pid}`;
  execFileSync('ip', ['netns', 'add', netns]);
  const dropNetns = onCleanup(`delete netns ${netns}`, () => void execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' }));
  const dp = loadServiceDataplane();
  const probe = BpfObject.load(PROBE_OBJ, { pinDir: dp.bpffs.path });
  const host = {
    xdpPrefilter: BpfObject.load(join(repoRoot, 'build', 'bpf', HOST_OBJS.xdpPrefilter), { pinDir: dp.bpffs.path }),
    toHost: BpfObject.load(join(repoRoot, 'build', 'bpf', HOST_OBJS.toHost), { pinDir: dp.bpffs.path }),
  };
  const record = BpfObject.load(RECORD_OBJ, { pinDir: dp.bpffs.path });
  const work = join(o.failureDir, `.work-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const dmesgBefore = dmesgLines().length;
  try {
    underlay(netns);
    const pin = (name: string) => join(dp.bpffs.path, name);
    record.map('weir_fuzz_parse').pin(pin('fuzz_record_map'));
    record.program('weir_parse_record').pin(pin('fuzz_record_prog'));
    const programs = PROGRAMS.filter((p) => !o.only || o.only.includes(p.name));
    for (const p of programs)
      (p.key === 'probe' ? probe : p.key === 'xdpPrefilter' || p.key === 'toHost' ? host[p.key] : dp.objects[p.key]).program(p.prog).pin(pin(`fuzz_${p.name}`));
    withNetns(netns, () => {
      programState(dp);
      openFlows(dp);
    });
    const seeded = snapshot(dp);
    log(`# state: ${seeded.ct4.length} IPv4 and ${seeded.ct6.length} IPv6 conntrack entries from the first packets of flows`);

    const results = new Map<string, ProgramResult>(
      programs.map((p) => [
        p.name,
        {
          program: p.name,
          packets: 0,
          refused: 0,
          parseCompared: 0,
          parseAgree: 0,
          decisionChecked: 0,
          decisionAgree: 0,
          stateless: 0,
          statelessRewritten: 0,
          unsafe: 0,
          rewrittenChecked: 0,
          checksumsBroken: 0,
          verdicts: {},
          reasons: {},
          runSeconds: 0,
        },
      ]),
    );
    const failures: Failure[] = [];
    const kinds: Record<string, number> = {};
    const mutations: Record<string, number> = {};
    let generateSeconds = 0;
    const given = o.packets;
    const stream = given ? given.map((packet) => ({ kind: 'given', packet, how: 'given' }))[Symbol.iterator]() : fuzzStream(o.seed, o.count);
    for (let base = 0; base < o.count; base += chunk) {
      const t0 = performance.now();
      const n = Math.min(chunk, o.count - base);
      // stateless packets first: they meet the seeded state only, nothing a chunk's packets made
      const free: { i: number; p: Buffer }[] = [];
      const held: { i: number; p: Buffer }[] = [];
      for (let i = 0; i < n; i++) {
        const g = stream.next().value!;
        kinds[g.kind] = (kinds[g.kind] ?? 0) + 1;
        mutations[g.how] = (mutations[g.how] ?? 0) + 1;
        (stateless(g.packet) ? free : held).push({ i: base + i, p: g.packet });
      }
      const order = [...free, ...held];
      const input = Buffer.alloc(order.reduce((s, x) => s + 4 + x.p.length, 0));
      let at = 0;
      for (const x of order) {
        input.writeUInt32LE(x.p.length, at);
        x.p.copy(input, at + 4);
        at += 4 + x.p.length;
      }
      const inFile = join(work, 'packets.bin');
      writeFileSync(inFile, input);
      generateSeconds += (performance.now() - t0) / 1000;

      for (const spec of programs) {
        const r = results.get(spec.name)!;
        withNetns(netns, () => restore(dp, seeded));
        const countersBefore = counterTotals(readCounters(dp.objects.fromPod.map('weir_counters')))[spec.hookName] ?? {};
        const outFile = join(work, `results-${spec.name}.bin`);
        const rewFile = join(work, `rewritten-${spec.name}.bin`);
        const t1 = performance.now();
        execFileSync(
          'ip',
          [
            'netns',
            'exec',
            netns,
            RUNNER,
            pin(`fuzz_${spec.name}`),
            pin('fuzz_record_prog'),
            pin('fuzz_record_map'),
            pin('weir_counters'),
            String(spec.hook),
            inFile,
            outFile,
            rewFile,
          ],
          { env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' }, stdio: ['ignore', 'ignore', 'pipe'] },
        );
        r.runSeconds += (performance.now() - t1) / 1000;
        const countersAfter = counterTotals(readCounters(dp.objects.fromPod.map('weir_counters')))[spec.hookName] ?? {};
        for (const [why, v] of Object.entries(countersAfter)) {
          const d = v - (countersBefore[why] ?? 0);
          if (d) r.reasons[why] = (r.reasons[why] ?? 0) + d;
        }
        const out = readFileSync(outFile);
        if (out.length !== order.length * RESULT_SIZE) throw new Error(`fuzz_runner answered ${out.length / RESULT_SIZE} of ${order.length} packets`);
        const rewritten = readFileSync(rewFile);
        let rat = 0;
        order.forEach((x, k) => {
          const res = out.subarray(k * RESULT_SIZE, (k + 1) * RESULT_SIZE);
          let after: Buffer | undefined;
          if (res.readInt32LE(4) === 0 && !(res[12]! & F_SAME)) {
            const len = rewritten.readUInt32LE(rat);
            after = rewritten.subarray(rat + 4, rat + 4 + len);
            rat += 4 + len;
          }
          judge(spec, r, x.p, x.i, res, after, k < free.length, failures, o);
        });
      }
      log(`# ${base + n} of ${o.count} packets through ${programs.length} programs (${free.length} stateless in this chunk)`);
    }
    const dmesgNew = dmesgLines()
      .slice(dmesgBefore)
      .filter((l) => ALARM.test(l));
    const kernel = execFileSync('uname', ['-r']).toString().trim();
    return { seed: o.seed, count: o.count, kernel, generateSeconds, programs: [...results.values()], failures, kinds, mutations, dmesgNew };
  } finally {
    record.close();
    probe.close();
    host.xdpPrefilter.close();
    host.toHost.close();
    await dp.close();
    await dropNetns();
    execFileSync('rm', ['-rf', work]);
  }
}
