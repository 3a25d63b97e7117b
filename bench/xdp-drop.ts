// bench: `make bench-xdp`. Packets per second, and per core of the receiving side, that a filter
// drops: weir's XDP prefilter (build/bpf/xdp_prefilter.o, or --object PATH), an iptables `raw` PREROUTING DROP (iptables-nft and -legacy) and
// an nftables `netdev` ingress chain, with the same N rules (source /24 + UDP port) in one run.
// Writes bench/results/xdp-drop.{md,json} (--quick: xdp-drop-quick.*). Root only.
//
//   node dist/bench/xdp-drop.js [--quick] [--sizes 1,10,100] [--rounds K] [--seconds S] [--object PATH] [--out NAME]
// --out: write bench/results/NAME.{md,json} instead

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { exitAfter } from '../test/lib/cleanup.js';
import { Lab, type Netns } from '../test/lib/lab.js';
import { sleep } from '../test/lib/proc.js';
import { attachXdp, BpfObject, codecFor, enums, type TypedMap, typedMap, u32, u8, type XdpAttachment } from '../src/bpf/index.js';
import { IPPROTO } from '../src/bpf/ip.js';
import { BUILD_DIR, CPUS, median, minMax, ratioOfRounds, ROOT } from './tools.js';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const quick = argv.includes('--quick');
const sizes = (opt('--sizes') ?? (quick ? '1,100' : '1,10,100')).split(',').map(Number);
const rounds = Number(opt('--rounds') ?? (quick ? 1 : 5));
const seconds = Number(opt('--seconds') ?? (quick ? 1 : 2));
const WARMUP_S = 0.3;
const DPORT = 9999;
const DST = '198.18.0.2';
const RESULTS = join(ROOT, 'bench', 'results');
const OUT = opt('--out') ?? (quick ? 'xdp-drop-quick' : 'xdp-drop');

const CONTESTANTS = ['weir-xdp', 'weir-xdp-set', 'nft-netdev', 'nft-netdev-set', 'iptables-nft-raw', 'iptables-legacy-raw'] as const;
type Contestant = (typeof CONTESTANTS)[number];
const LABEL: Record<Contestant, string> = {
  'weir-xdp': 'weir XDP prefilter',
  'weir-xdp-set': 'weir XDP prefilter, one rule, N nets',
  'nft-netdev': 'nftables netdev ingress',
  'nft-netdev-set': 'nftables netdev ingress, one set',
  'iptables-nft-raw': 'iptables raw PREROUTING (nft)',
  'iptables-legacy-raw': 'iptables raw PREROUTING (legacy)',
};
/** the ratios' reference: the iptables kube-proxy and Calico's iptables mode write on Debian's default */
const REFERENCE: Contestant = 'iptables-nft-raw';

/** rule i: source 198.19.<i>.0/24, UDP destination port DPORT (flood.c sends from these) */
const cidr = (i: number) => `198.19.${i}.0/24`;

function compile(src: string, out: string, cmd: (src: string, obj: string) => [string, string[]]): string {
  const obj = join(BUILD_DIR, out);
  if (!existsSync(obj) || statSync(obj).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(BUILD_DIR, { recursive: true });
    const [c, a] = cmd(src, obj);
    execFileSync(c, a, { stdio: 'inherit' });
  }
  return obj;
}
// the XDP lab's flooder (make builds it at -O2, no sanitizers), sources cycling through the N rules' /24s
const floodBinary = () => compile(join(ROOT, 'test', 'fixtures', 'native', 'flood.c'), 'flood', (s, o) => ['cc', ['-O2', '-Wall', '-Wextra', '-o', o, s]]);
function xdpObject(): { path: string; which: 'weir' | 'other' } {
  const explicit = opt('--object');
  if (explicit) return { path: explicit, which: explicit.endsWith('xdp_prefilter.o') ? 'weir' : 'other' };
  const real = join(ROOT, 'build', 'bpf', 'xdp_prefilter.o');
  if (!existsSync(real)) throw new Error(`${real} is missing: make build`);
  return { path: real, which: 'weir' };
}

/** One contestant's filter in its own receiving namespace: rules in, dropped packets out. */
interface Filter {
  program(n: number): Promise<void>;
  dropped(): Promise<number>;
}

async function iptablesFilter(ns: Netns, variant: 'nft' | 'legacy'): Promise<Filter> {
  const restore = `iptables-${variant}-restore`;
  return {
    async program(n) {
      const rules = Array.from({ length: n }, (_, i) => `-A PREROUTING -s ${cidr(i)} -p udp -m udp --dport ${DPORT} -j DROP`);
      await ns.exec(restore, [], { input: ['*raw', ':PREROUTING ACCEPT [0:0]', ...rules, 'COMMIT', ''].join('\n') });
    },
    async dropped() {
      const out = (await ns.exec(`iptables-${variant}`, ['-t', 'raw', '-nvxL', 'PREROUTING'])).stdout;
      return out
        .split('\n')
        .filter((l) => /\bDROP\b/.test(l))
        .reduce((a, l) => a + Number(l.trim().split(/\s+/)[0]), 0);
    },
  };
}

/** `set`: one rule matching an interval set of the N CIDRs, as one would write it in nft */
function nftFilter(ns: Netns, ifname: string, set: boolean): Filter {
  return {
    async program(n) {
      const all = Array.from({ length: n }, (_, i) => cidr(i));
      const rules = set ? [`    ip saddr @sources udp dport ${DPORT} counter drop`] : all.map((c) => `    ip saddr ${c} udp dport ${DPORT} counter drop`);
      const script = [
        'table netdev weirbench',
        'delete table netdev weirbench',
        'table netdev weirbench {',
        ...(set ? [`  set sources { type ipv4_addr; flags interval; elements = { ${all.join(', ')} } }`] : []),
        `  chain ingress { type filter hook ingress device "${ifname}" priority -500; policy accept;`,
        ...rules,
        '  }',
        '}',
        '',
      ].join('\n');
      await ns.exec('nft', ['-f', '-'], { input: script });
    },
    async dropped() {
      const j = JSON.parse((await ns.exec('nft', ['-j', 'list', 'table', 'netdev', 'weirbench'])).stdout) as {
        nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[];
      };
      let sum = 0;
      for (const o of j.nftables) for (const e of o.rule?.expr ?? []) if (e.counter) sum += e.counter.packets;
      return sum;
    },
  };
}

/** weir: the ABI maps written as the daemon's host-policy writer would for N untracked deny
 *  rules (one per CIDR) on the interface's host endpoint, and Felix's default inbound failsafes;
 *  `set`: one deny rule whose source nets are the N CIDRs (one set: a Calico rule with N nets). */
function weirFilter(obj: BpfObject, netns: string, ifindex: number, set: boolean): Filter & { close(): void } {
  const hep = 1;
  const ifaces = typedMap(obj.map('weir_hep_ifaces'), codecFor('weir_hep_iface_key'), codecFor('weir_hep_iface'));
  const chains = typedMap(obj.map('weir_hep_chains'), codecFor('weir_hep_chain_key'), codecFor('weir_hep_chain'));
  const rules = typedMap(obj.map('weir_host_rules'), u32, codecFor('weir_host_rule'));
  const sets = typedMap(obj.map('weir_host_sets4'), codecFor('weir_host_set4_key'), u8);
  const failsafes = typedMap(obj.map('weir_failsafe4'), codecFor('weir_failsafe4_key'), u8);
  const stats: TypedMap<number, { packets: bigint; bytes: bigint }> = typedMap(obj.map('weir_host_rule_stats'), u32, codecFor('weir_host_rule_stats'));
  const F = enums.weir_host_rule_flags;
  for (const [proto, port] of [
    ['TCP', 22],
    ['UDP', 68],
    ['TCP', 179],
    ['TCP', 2379],
    ['TCP', 2380],
    ['TCP', 5473],
    ['TCP', 6443],
    ['TCP', 6666],
    ['TCP', 6667],
  ] as const)
    // 32 fixed bits (direction, protocol, port), then 0.0.0.0/0: the entry names no CIDR
    failsafes.set({ prefixlen: 32, direction: enums.weir_failsafe_direction.WEIR_FAILSAFE_IN, protocol: IPPROTO[proto], port, address: '0.0.0.0' }, 1);
  ifaces.set({ ifindex }, { hep, flags: enums.weir_hep_iface_flags.WEIR_HEP_XDP_ATTACHED });
  let written = 0;
  let rulesWritten = 0;
  let link: XdpAttachment | undefined;
  return {
    async program(n) {
      const setOf = (i: number) => (set ? 1 : i + 1);
      for (let i = 0; i < written; i++) sets.delete({ prefixlen: 32 + 24, set: setOf(i), address: `198.19.${i}.0` });
      for (let i = 0; i < n; i++) sets.set({ prefixlen: 32 + 24, set: setOf(i), address: `198.19.${i}.0` }, 1);
      const nRules = set ? 1 : n;
      for (let i = 0; i < nRules; i++) {
        rules.set(i, {
          action: enums.weir_host_rule_action.WEIR_HOST_DENY,
          protocol: IPPROTO.UDP,
          flags: F.WEIR_HOST_RULE_PROTOCOL | F.WEIR_HOST_RULE_DPORTS | F.WEIR_HOST_RULE_IPV4,
          jump: 0,
          sport_min: 0,
          sport_max: 0,
          dport_min: DPORT,
          dport_max: DPORT,
          src_set: setOf(i),
          src_not_set: 0,
          dst_set: 0,
          dst_not_set: 0,
          policy: 1,
          rule: i,
        });
      }
      written = n;
      rulesWritten = nRules;
      chains.set({ hep, kind: enums.weir_hep_chain_kind.WEIR_CHAIN_UNTRACKED_IN }, { first: 0, count: nRules });
      link ??= attachXdp(obj.program('weir_xdp_prefilter'), ifindex, { mode: 'native', netns });
    },
    async dropped() {
      let sum = 0n;
      for (let i = 0; i < rulesWritten; i++) sum += stats.sumPerCpu(i)?.packets ?? 0n;
      return Number(sum);
    },
    close() {
      link?.link.close();
      obj.close();
    },
  };
}

interface Receiver {
  contestant: Contestant;
  ns: Netns;
  ifname: string;
  senderIf: string;
  mac: string;
  filter: Filter;
  /** pids of the interface's threaded-NAPI kthreads, pinned to CPUS.iperfServer */
  napi: number[];
}

/** threaded NAPI on the receiving veth (GRO on makes veth poll with NAPI), its kthread pinned to
 *  the receiving core: the filter then runs there, apart from the sender, and its CPU time is
 *  that thread's. */
async function threadedNapi(ns: Netns, ifname: string): Promise<number[]> {
  await ns.exec('ethtool', ['-K', ifname, 'gro', 'on']);
  await ns.exec('ip', ['netns', 'exec', ns.name, 'sh', '-c', `echo 1 > /sys/class/net/${ifname}/threaded`]);
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').trim().startsWith(`napi/${ifname}-`)) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  if (!pids.length) throw new Error(`no napi/${ifname}-* kthread: threaded NAPI did not start`);
  for (const pid of pids) execFileSync('taskset', ['-p', '-c', String(CPUS.iperfServer), String(pid)], { stdio: 'ignore' });
  return pids;
}

const napiNs = (pids: number[]) => pids.reduce((a, p) => a + Number(readFileSync(`/proc/${p}/schedstat`, 'utf8').split(' ')[0]), 0);
/** /proc/stat of the receiving core: [busy, total] jiffies (busy: all but idle and iowait) */
function cpuStat(cpu: number): [number, number] {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `))!;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return [total - f[3]! - f[4]!, total];
}

interface Sample {
  contestant: Contestant;
  n: number;
  round: number;
  /** dropped per second, by the filter's own counter */
  pps: number;
  /** frames the sender handed to its veth per second */
  sentPps: number;
  /** share of a core the receiving NAPI thread used (0-1) */
  core: number;
  /** dropped per second of that thread's CPU time */
  ppsPerCore: number;
  /** the receiving CPU's busy share in /proc/stat (other work on the machine included) */
  cpuBusy: number;
}

async function measure(r: Receiver, sender: Netns, n: number, round: number): Promise<Sample> {
  const flood = sender.exec(
    'taskset',
    ['-c', String(CPUS.iperfClient), floodBinary(), r.senderIf, r.mac, `rules:${n}`, DST, String(DPORT), `${WARMUP_S + seconds + 0.3}s`],
    {
      timeoutMs: (seconds + 10) * 1000,
    },
  );
  await sleep(WARMUP_S * 1000);
  const d0 = await r.filter.dropped();
  const n0 = napiNs(r.napi);
  const s0 = cpuStat(CPUS.iperfServer);
  const t0 = process.hrtime.bigint();
  await sleep(seconds * 1000);
  const d1 = await r.filter.dropped();
  const n1 = napiNs(r.napi);
  const s1 = cpuStat(CPUS.iperfServer);
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  const out = JSON.parse((await flood).stdout.trim().split('\n').at(-1)!) as { sent: number; seconds: number };
  const dropped = d1 - d0;
  const napiS = (n1 - n0) / 1e9;
  return {
    contestant: r.contestant,
    n,
    round,
    pps: dropped / dt,
    sentPps: out.sent / out.seconds,
    core: napiS / dt,
    ppsPerCore: napiS > 0 ? dropped / napiS : 0,
    cpuBusy: (s1[0] - s0[0]) / Math.max(1, s1[1] - s0[1]),
  };
}

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();
const M = (x: number) => (x / 1e6).toFixed(2);
const range = (xs: number[]) => minMax(xs, M);

function markdown(samples: Sample[], info: Record<string, string>): string {
  const lines = [
    `# XDP prefilter drop rate (${quick ? 'quick' : 'full'} run)`,
    '',
    ...Object.entries(info).map(([k, v]) => `- ${k}: ${v}`),
    '',
    "Mpps: median over rounds (min-max). **per core**: dropped packets per second of the receiving NAPI thread's CPU time",
    '(/proc/<pid>/schedstat), the figure to compare; **pps**: dropped per second of wall time (capped by the sender);',
    "**core**: the share of CPU 1 that thread used. Ratio: per-core median ÷ iptables-nft's, with the range its rounds",
    'allow (min ÷ max, max ÷ min); ≈ when that range holds 1.00×.',
    '',
    '| rules | filter | per core, Mpps | dropped, Mpps | core | sent, Mpps | per core ÷ iptables-nft |',
    '|---:|---|---:|---:|---:|---:|---:|',
  ];
  for (const n of sizes) {
    const ref = samples.filter((s) => s.n === n && s.contestant === REFERENCE).map((s) => s.ppsPerCore);
    for (const c of CONTESTANTS) {
      const ss = samples.filter((s) => s.n === n && s.contestant === c);
      if (!ss.length) continue;
      const pc = ss.map((s) => s.ppsPerCore);
      const ratio = ref.length && c !== REFERENCE ? ratioOfRounds(pc, ref) : '';
      lines.push(
        `| ${n} | ${LABEL[c]} | **${M(median(pc))}**${range(pc)} | ${M(median(ss.map((s) => s.pps)))}${range(ss.map((s) => s.pps))} | ` +
          `${(median(ss.map((s) => s.core)) * 100).toFixed(0)}% | ${M(median(ss.map((s) => s.sentPps)))} | ${ratio} |`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('bench-xdp needs root (namespaces, BPF)');
    return 2;
  }
  const xdp = xdpObject();
  floodBinary();
  const lab = await Lab.create({ name: 'bench-xdp' });
  const t0 = Date.now();
  const load0 = loadavg()[0]!.toFixed(1);
  const receivers: Receiver[] = [];
  const closers: (() => void)[] = [];
  try {
    const sender = await lab.netns('snd');
    for (const [k, c] of CONTESTANTS.entries()) {
      const ns = await lab.netns(`rcv${k}`);
      // kthread names carry the interface name: the lab id keeps them apart from other labs'
      const ifname = `xr${lab.id}${k}`.slice(0, 15);
      const senderIf = `xs${lab.id}${k}`.slice(0, 15);
      await lab.veth(sender, senderIf, ns, ifname);
      // veth hands a frame to the peer's NAPI (where native XDP and threaded NAPI live) only when
      // the sender has no TSO or the receiver forwards UDP GRO; the latter would merge the flood
      await sender.exec('ethtool', ['-K', senderIf, 'tso', 'off']);
      await ns.addAddr(ifname, `${DST}/24`);
      const mac = await ns.mac(ifname);
      const ifindex = await ns.ifindex(ifname);
      let filter: Filter;
      if (c === 'weir-xdp' || c === 'weir-xdp-set') {
        // a pin directory each: weir's objects share maps by pin name
        const pinDir = join(lab.bpffs, c);
        mkdirSync(pinDir);
        const obj = BpfObject.load(xdp.path, { pinDir });
        const f = weirFilter(obj, ns.path, ifindex, c === 'weir-xdp-set');
        closers.push(() => f.close());
        filter = f;
      } else if (c === 'nft-netdev' || c === 'nft-netdev-set') filter = nftFilter(ns, ifname, c === 'nft-netdev-set');
      else filter = await iptablesFilter(ns, c === 'iptables-nft-raw' ? 'nft' : 'legacy');
      const napi = await threadedNapi(ns, ifname);
      receivers.push({ contestant: c, ns, ifname, senderIf, mac, filter, napi });
    }
    const samples: Sample[] = [];
    for (const n of sizes) {
      for (const r of receivers) await r.filter.program(n);
      for (let round = 0; round < rounds; round++) {
        // each round starts one contestant later: drift of the shared machine hits them alike
        for (let j = 0; j < receivers.length; j++) {
          const r = receivers[(j + round) % receivers.length]!;
          const s = await measure(r, sender, n, round);
          if (s.pps <= 0) throw new Error(`${r.contestant} dropped nothing at N=${n} (sent ${s.sentPps.toFixed(0)} pps)`);
          samples.push(s);
          console.log(
            `N=${n} round ${round + 1}/${rounds} ${LABEL[r.contestant].padEnd(34)} per core ${M(s.ppsPerCore)} Mpps, ` +
              `dropped ${M(s.pps)} Mpps, core ${(s.core * 100).toFixed(0)}%, sent ${M(s.sentPps)} Mpps`,
          );
        }
      }
    }
    const info = {
      date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
      machine: `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), kernel ${sh('uname', '-r')}, load average ${load0} at the start`,
      'XDP object': `${xdp.which === 'weir' ? "weir's" : 'another object,'} \`${xdp.path.replace(ROOT + '/', '')}\` (native XDP on the receiving veth)`,
      tools: `${sh('iptables-nft', '--version')}, ${sh('nft', '--version')}`,
      traffic:
        `flood (test/fixtures/native/flood.c): 60-byte UDP frames to ${DST}:${DPORT}, sources cycling through the N rules' /24s, ` +
        `AF_PACKET + PACKET_QDISC_BYPASS, sendmmsg of 64, on CPU ${CPUS.iperfClient}`,
      receiver: `veth with GRO on and threaded NAPI, its napi/* kthread pinned to CPU ${CPUS.iperfServer}: every filter runs in that thread`,
      rounds: `${rounds} × ${seconds} s per filter and size (after ${WARMUP_S} s of warm-up), ${((Date.now() - t0) / 1000).toFixed(0)} s in all`,
    };
    mkdirSync(RESULTS, { recursive: true });
    const md = markdown(samples, info);
    writeFileSync(join(RESULTS, `${OUT}.md`), md);
    writeFileSync(join(RESULTS, `${OUT}.json`), JSON.stringify({ info, sizes, rounds, seconds, samples }, null, 1) + '\n');
    console.log('\n' + md);
    return 0;
  } finally {
    for (const c of closers) c();
    await lab.destroy();
  }
}

await exitAfter(main);
