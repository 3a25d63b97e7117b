// bench: `make bench-cpu`. CPU seconds per GB moved by one iperf3 TCP stream (1) from a client pod
// to the ClusterIP and (2) from an external client on the underlay to the node's NodePort, both to
// a backend pod on the same node, for weir's TC path (plus from_host on the node's uplink for the
// NodePort), weir's connect-time LB (ClusterIP only: an external client never meets it),
// kube-proxy's iptables (nft, legacy) and nftables rules, and the direct path, in one run, in the
// data-plane bench's labs (bench/dataplane.ts: a node netns, CNI ptp pods, the service set of size
// N with the target written last; the target's iperf port gets NodePort 30201). Writes
// bench/results/cpu-per-gb.{md,json} (--quick: cpu-per-gb-quick.*). Root only.
//
// What is counted, per stream: the cgroup cpu.stat usage_usec of the iperf3 client (its own lab
// cgroup, the pod's or the external client's) and of the iperf3 server (moved into one after start), plus the run time of the
// ksoftirqd threads (/proc/<pid>/schedstat). This kernel has no IRQ time accounting
// (CONFIG_IRQ_TIME_ACCOUNTING off), so the softirq work a veth transmit runs in the sending
// task's context (the receiving namespace's stack, netfilter, weir's TC programs) is in that
// task's usage; what the kernel deferred to ksoftirqd is in the second term. /proc/stat's
// softirq and system time of both CPUs over the run are recorded too (system-wide: other work
// on the machine included), not added in.
//
//   node dist/bench/cpu-per-gb.js [--quick] [--sizes 1,1000] [--rounds K] [--seconds S]

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitAfter } from '../test/lib/cleanup.js';
import { attachTc, BpfMap, BpfObject, codecFor, enums, typedMap, u32 } from '../src/bpf/index.js';
import { IPPROTO } from '../src/bpf/ip.js';
import { counterTotals, readCounters } from '../src/dataplane/counters.js';
import type { Cgroup, External } from '../test/lib/lab.js';
import { buildArena, CONTESTANTS, destroyArena, LABEL, program, unprogram, type Arena, type Contestant } from './dataplane.js';
import { benchServices, TARGET, targetIP } from './peers/services.js';
import { CPUS, median, minMax, pinSelf, ratioOfRounds, ROOT, unpinAll } from './tools.js';
import { OBJ_DIR } from './weir.js';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const quick = argv.includes('--quick');
const sizes = (opt('--sizes') ?? (quick ? '1' : '1,1000')).split(',').map(Number);
const rounds = Number(opt('--rounds') ?? (quick ? 1 : 5));
const seconds = Number(opt('--seconds') ?? (quick ? 1 : 3));
const RESULTS = join(ROOT, 'bench', 'results');
const OUT = quick ? 'cpu-per-gb-quick' : 'cpu-per-gb';
const REFERENCE: Contestant = 'iptables-nft';
const NODE_PORT = 30201;
const EXTERNAL_ADDRESS = '198.18.0.100/24';
const PATHS = ['clusterip', 'nodeport'] as const;
type Path = (typeof PATHS)[number];
const PATH_TITLE: Record<Path, string> = {
  clusterip: 'pod -> ClusterIP',
  nodeport: 'external client -> NodePort (node address:30201)',
};

const usageUs = (cg: Cgroup) => Number(/usage_usec (\d+)/.exec(readFileSync(join(cg.path, 'cpu.stat'), 'utf8'))![1]);
const ksoftirqd = readdirSync('/proc')
  .filter((p) => /^\d+$/.test(p))
  .filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').startsWith('ksoftirqd/');
    } catch {
      return false;
    }
  });
const ksoftirqdNs = () => ksoftirqd.reduce((a, p) => a + Number(readFileSync(`/proc/${p}/schedstat`, 'utf8').split(' ')[0]), 0);
/** /proc/stat, all CPUs: [system, softirq] in seconds (USER_HZ ticks) */
const HZ = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
function procStat(): [number, number] {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return [f[2]! / HZ, f[6]! / HZ];
}

interface Sample {
  path: Path;
  contestant: Contestant;
  n: number;
  round: number;
  bytes: number;
  gbits: number;
  clientS: number;
  serverS: number;
  ksoftirqdS: number;
  /** (client + server + ksoftirqd) seconds per 1e9 bytes received */
  cpuSPerGB: number;
  procSystemS: number;
  procSoftirqS: number;
}

interface Contest {
  a: Arena;
  client: Cgroup;
  server: Cgroup;
  external: External & { cgroup: Cgroup };
  /** weir: from_host, loaded into the arena's pin directory (NodePorts) */
  fromHost?: BpfObject;
}

/** weir: from_host at TC ingress of the node's uplink, as the daemon attaches it on host interfaces,
 *  and the pods' interfaces in weir_ifaces (WORKLOAD), as the daemon writes them: a service flow to
 *  a local backend is redirected interface to interface both ways (lib/forward.h). Without that
 *  the stack would drop a NodePort reply, reverse NATed to the node's own address, as a martian. */
async function attachFromHost(c: Contest): Promise<void> {
  c.fromHost = BpfObject.load(join(OBJ_DIR, 'from_host.o'), { pinDir: c.a.lab.bpffs });
  c.a.attachments.push(attachTc(c.fromHost.program('weir_from_host'), c.a.node.ifname, 'ingress', { netns: c.a.node.ns.name }));
  const ifaces = typedMap(c.fromHost.map('weir_ifaces'), u32, codecFor('weir_iface'));
  for (const p of [c.a.client, ...c.a.backends]) ifaces.set(await c.a.node.ns.ifindex(p.hostIfname), { flags: enums.weir_iface_flags.WEIR_IFACE_WORKLOAD });
}

/** weir: the NodePort frontend of the target's iperf port (programWeir writes ClusterIPs only): the
 *  node address, the same frontend id (its backend slots are written), flagged NODEPORT. */
function writeNodePort(a: Arena, targetId: number): void {
  const fe = typedMap(a.weir!.objects.from_pod!.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
  fe.set(
    { address: a.node.address, port: NODE_PORT, protocol: IPPROTO.TCP, scope: enums.weir_frontend_scope.WEIR_SCOPE_INTERNAL },
    { id: targetId, backend_count: 1, flags: enums.weir_frontend_flags.WEIR_FRONTEND_NODEPORT, affinity_timeout: 0, pad: 0 },
  );
}

/** the service set, the target's iperf port with a NodePort */
function services(a: Arena, n: number) {
  return benchServices(
    n,
    a.backends.map((b) => b.ip),
    10,
    4,
  ).map((s) => (s.namespace === 'bench' && s.portName === 'iperf' ? { ...s, nodePort: NODE_PORT } : s));
}

/** The arena's iperf3 server (started by buildArena in backend 0) moved into a cgroup of its own. */
async function serverCgroup(a: Arena): Promise<Cgroup> {
  // the lab's teardown removes the cgroup with cgroup.kill, before it would stop the server
  const cg = await a.lab.cgroup('iperf-server');
  const pids = execFileSync('ip', ['netns', 'pids', a.backends[0]!.ns.name], { encoding: 'utf8' })
    .split('\n')
    .filter((p) => p && readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'iperf3');
  if (pids.length !== 1) throw new Error(`${a.contestant}: expected one iperf3 server in ${a.backends[0]!.ns.name}, found ${pids.length}`);
  writeFileSync(join(cg.path, 'cgroup.procs'), pids[0]!);
  return cg;
}

async function measure(c: Contest, path: Path, n: number, round: number): Promise<Sample> {
  const { a } = c;
  const direct = a.contestant === 'direct';
  const host = direct ? a.backends[0]!.ip : path === 'clusterip' ? targetIP(4) : a.node.address;
  const port = path === 'nodeport' && !direct ? NODE_PORT : TARGET.iperfPort;
  const [ns, client] = path === 'clusterip' ? [a.client.ns, c.client] : [c.external.ns, c.external.cgroup];
  const c0 = usageUs(client);
  const s0 = usageUs(c.server);
  const k0 = ksoftirqdNs();
  const p0 = procStat();
  const r = await ns.iperfClient(host, { port, seconds, cpu: CPUS.iperfClient, cgroup: client }).catch((e: unknown) => {
    // CPU_DEBUG=1: weir's counters when a stream fails (where its packets went)
    if (process.env.CPU_DEBUG && a.weir) {
      const m = BpfMap.openPinned(join(a.lab.bpffs, 'weir_counters'));
      console.log(JSON.stringify(counterTotals(readCounters(m))));
      m.close();
    }
    throw e;
  });
  const p1 = procStat();
  const k1 = ksoftirqdNs();
  const s1 = usageUs(c.server);
  const c1 = usageUs(client);
  const bytes = Number(r.raw.end?.sum_received?.bytes ?? 0);
  if (!bytes) throw new Error(`${a.contestant}: iperf3 moved nothing: ${JSON.stringify(r.raw.error ?? r.raw).slice(0, 200)}`);
  const clientS = (c1 - c0) / 1e6;
  const serverS = (s1 - s0) / 1e6;
  const ksoftirqdS = (k1 - k0) / 1e9;
  return {
    path,
    contestant: a.contestant,
    n,
    round,
    bytes,
    gbits: r.receivedBitsPerSecond / 1e9,
    clientS,
    serverS,
    ksoftirqdS,
    cpuSPerGB: (clientS + serverS + ksoftirqdS) / (bytes / 1e9),
    procSystemS: p1[0] - p0[0],
    procSoftirqS: p1[1] - p0[1],
  };
}

const f3 = (x: number) => x.toFixed(3);

function markdown(samples: Sample[], info: Record<string, string>): string {
  const lines = [
    `# CPU seconds per GB, one iperf3 stream (${quick ? 'quick' : 'full'} run)`,
    '',
    ...Object.entries(info).map(([k, v]) => `- ${k}: ${v}`),
    '',
    'CPU s/GB: (iperf3 client + iperf3 server cgroup usage + ksoftirqd run time) ÷ GB received (10^9 bytes), median over',
    'rounds (min-max); below 1.00× in the ratio favours the contestant. The split columns are medians of their own.',
    '/proc/stat softirq is what the kernel sampled system-wide (ticks, other work included): a cross-check, not added in.',
  ];
  for (const path of PATHS) {
    lines.push(
      '',
      `## ${PATH_TITLE[path]}`,
      '',
      '| services | path | CPU s/GB | ÷ iptables-nft | Gbit/s | client s | server s | ksoftirqd s | /proc/stat softirq s |',
      '|---:|---|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const n of sizes) {
      const ref = samples.filter((s) => s.path === path && s.n === n && s.contestant === REFERENCE).map((s) => s.cpuSPerGB);
      for (const c of CONTESTANTS) {
        const ss = samples.filter((s) => s.path === path && s.n === n && s.contestant === c);
        if (!ss.length) continue;
        const v = ss.map((s) => s.cpuSPerGB);
        const ratio = ref.length && c !== REFERENCE ? ratioOfRounds(v, ref) : '';
        const m = (k: keyof Sample) => median(ss.map((s) => s[k] as number));
        lines.push(
          `| ${n} | ${LABEL[c]} | **${f3(median(v))}**${minMax(v, f3)} | ${ratio} | ${m('gbits').toFixed(1)} | ${m('clientS').toFixed(2)} | ` +
            `${m('serverS').toFixed(2)} | ${m('ksoftirqdS').toFixed(2)} | ${m('procSoftirqS').toFixed(2)} |`,
        );
      }
    }
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('bench-cpu needs root (namespaces, BPF, cgroups)');
    return 2;
  }
  const t0 = Date.now();
  const load0 = loadavg()[0]!.toFixed(1);
  const tmp = mkdtempSync(join(tmpdir(), 'weir-bench-cpu-'));
  const contests: Contest[] = [];
  pinSelf(String(CPUS.programmer));
  try {
    for (const c of CONTESTANTS) {
      const a = await buildArena(c, 4);
      // weir-sock's client cgroup carries the socket programs: the stream runs there; the others get one
      const client = a.cgroup ?? (await a.lab.cgroup('client'));
      const ext = await a.lab.external('ext', { address: EXTERNAL_ADDRESS, cgroup: true });
      const contest: Contest = { a, client, server: await serverCgroup(a), external: { ...ext, cgroup: ext.cgroup! } };
      contests.push(contest);
      if (a.weir) await attachFromHost(contest);
    }
    const samples: Sample[] = [];
    for (const n of sizes) {
      try {
        for (const c of contests) {
          const svcs = services(c.a, n);
          const p = await program(c.a, svcs, tmp);
          if (c.a.weir) writeNodePort(c.a, svcs.length); // programWeir numbers the services from 1, the iperf target last
          console.log(`N=${n} ${LABEL[c.a.contestant]}: programmed ${p.what} in ${p.ms.toFixed(0)} ms`);
        }
        for (let round = 0; round < rounds; round++)
          for (let j = 0; j < contests.length; j++) {
            const c = contests[(j + round) % contests.length]!;
            for (const path of PATHS) {
              if (path === 'nodeport' && c.a.contestant === 'weir-sock') continue; // the socket LB is not on an external client's path
              const s = await measure(c, path, n, round);
              samples.push(s);
              console.log(
                `N=${n} ${path} round ${round + 1}/${rounds} ${LABEL[c.a.contestant].padEnd(30)} ${f3(s.cpuSPerGB)} CPU s/GB, ${s.gbits.toFixed(1)} Gbit/s ` +
                  `(client ${s.clientS.toFixed(2)} s, server ${s.serverS.toFixed(2)} s, ksoftirqd ${s.ksoftirqdS.toFixed(2)} s)`,
              );
            }
          }
      } finally {
        for (const c of contests) await unprogram(c.a).catch((e) => console.error(`unprogram ${c.a.contestant}: ${(e as Error).message}`));
      }
    }
    const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
    const info = {
      date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
      machine: `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), kernel ${kernel}, load average ${load0} at the start`,
      stream:
        `iperf3 -t ${seconds}, client pod on CPU ${CPUS.iperfClient}, server (backend 0) on CPU ${CPUS.iperfServer} (iperf3 -A), ` +
        `the bench process on CPU ${CPUS.programmer}`,
      rounds: `${rounds} per path and size, each round starting one path later; ${((Date.now() - t0) / 1000).toFixed(0)} s in all`,
    };
    mkdirSync(RESULTS, { recursive: true });
    const md = markdown(samples, info);
    writeFileSync(join(RESULTS, `${OUT}.md`), md);
    writeFileSync(join(RESULTS, `${OUT}.json`), JSON.stringify({ info, sizes, rounds, seconds, samples }, null, 1) + '\n');
    console.log('\n' + md);
    return 0;
  } finally {
    for (const c of contests) {
      await destroyArena(c.a).catch((e) => console.error(`teardown ${c.a.contestant}: ${(e as Error).message}`));
      c.fromHost?.close();
    }
    unpinAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await exitAfter(main);
