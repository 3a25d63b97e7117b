// bench: NetworkPolicy speed (issue 13). 1,000 policies over 5,000 pods (bench/peers/policy-cluster.ts):
// - control plane: weir's PolicySync (what the daemon runs: buildPolicyModel -> desiredPolicyMaps ->
//   PolicyWriter) into real pinned maps from nothing, and single pod relabels end to end (store
//   object replaced -> the apply's end, the maps checked); the same policies as kube-router-style
//   ipset + iptables-restore (nft and legacy) and as one nftables table, programmed from nothing
//   and changed (set elements, rewritten chains) in a lab netns;
// - per packet: weir's from_pod / from_host through BPF_PROG_TEST_RUN with the policy maps loaded,
//   policy on against off, a new flow and an established one; and every contestant in a lab
//   (client and server pods of the generated cluster, real connections) with its policy on and off.

import { writeFileSync as writeFile } from 'node:fs';
import { join } from 'node:path';
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { type BpfProgram, BpfObject, codecFor, type TcAttachment, typedMap } from '../src/bpf/index.js';
import { loadDataplane, type LoadedDataplane } from '../src/dataplane/loader.js';
import { PolicySync, type PolicyInputsView, type PolicySyncReport } from '../src/dataplane/policy-sync.js';
import type { Logger } from '../src/log.js';
import { buildPolicyModel } from '../src/model/policy/network-policy.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../test/lib/bpffs.js';
import { Lab, type LabNode, type Netns, type Pod } from '../test/lib/lab.js';
import { eth } from '../test/lib/packet.js';
import { pct, type Percentiles } from './controlplane.js';
import type { IptablesVariant } from './peers/iptables.js';
import {
  appOf,
  httpPortOf,
  nsName,
  POLICY_CLUSTER,
  podLabels,
  podObject,
  policyCluster,
  type GeneratedPod,
  type PolicyCluster,
} from './peers/policy-cluster.js';
import { applyIptablesChange, clearIptablesPolicy, iptablesChange, iptablesPolicyJump, programIptablesPolicy } from './peers/policy-iptables.js';
import { clearNftPolicy, nftChange, nftPolicyDispatch, programNftPolicy } from './peers/policy-nftables.js';
import { planCounts, policyPlan, type PolicyPlan } from './peers/policy-plan.js';
import { floorObject, runClient, startServer, type TcpbenchResult } from './tools.js';

export const POLICY_CONTESTANTS = ['weir', 'iptables-nft', 'iptables-legacy', 'nftables'] as const;
export type PolicyContestant = (typeof POLICY_CONTESTANTS)[number];
export const POLICY_LABEL: Record<PolicyContestant, string> = {
  weir: 'weir (PolicySync → BPF maps)',
  'iptables-nft': 'ipset + iptables-nft-restore',
  'iptables-legacy': 'ipset + iptables-legacy-restore',
  nftables: 'nftables (nft -f, sets + vmaps)',
};

/** The lab's pods are pods of the generated cluster (ns-24: the middle of every per-pod list). */
export const LAB = {
  nodeAddress: `${POLICY_CLUSTER.localNodeAddress}/24`,
  client: { ip: '198.18.64.200', ns: 24, j: 37 },
  server: { ip: '198.18.64.201', ns: 24, j: 36 },
  /** a backend pod of ns-24: no policy lets it reach the server */
  denied: { ip: '198.18.64.202', ns: 24, j: 43 },
} as const;
/** a pod of ns-24 on another node allowed into the server (from_host's ingress case) */
const REMOTE_CLIENT = { ns: 24, j: 1 };

/** The generated cluster with the lab's three pods moved onto the local node at the lab's addresses. */
export function benchCluster(allLocal = false): PolicyCluster {
  const c = policyCluster({ allLocal });
  for (const spec of [LAB.client, LAB.server, LAB.denied]) {
    const i = spec.ns * POLICY_CLUSTER.podsPerNamespace + spec.j;
    const p: GeneratedPod = { ...c.podInfo[i]!, ip: spec.ip, node: POLICY_CLUSTER.localNode };
    c.podInfo[i] = p;
    c.pods[i] = podObject(p);
  }
  return c;
}
const podAt = (c: PolicyCluster, s: { ns: number; j: number }) => c.podInfo[s.ns * POLICY_CLUSTER.podsPerNamespace + s.j]!;

// ---- the store PolicySync reads --------------------------------------------------------------

class BenchStore implements PolicyInputsView {
  readonly nodes = new Map<string, V1Node>();
  readonly pods = new Map<string, V1Pod>();
  readonly namespaces = new Map<string, V1Namespace>();
  readonly policies = new Map<string, V1NetworkPolicy>();
  constructor(c: PolicyCluster) {
    for (const n of c.nodes) this.nodes.set(n.metadata!.name!, n);
    for (const n of c.namespaces) this.namespaces.set(n.metadata!.name!, n);
    for (const p of c.pods) this.pods.set(`${p.metadata!.namespace}/${p.metadata!.name}`, p);
    for (const p of c.policies) this.policies.set(`${p.metadata!.namespace}/${p.metadata!.name}`, p);
  }
  map(kind: 'Pod'): ReadonlyMap<string, V1Pod>;
  map(kind: 'Namespace'): ReadonlyMap<string, V1Namespace>;
  map(kind: 'NetworkPolicy'): ReadonlyMap<string, V1NetworkPolicy>;
  map(kind: string): ReadonlyMap<string, unknown> {
    return kind === 'Pod' ? this.pods : kind === 'Namespace' ? this.namespaces : this.policies;
  }
}

// ---- the changes ------------------------------------------------------------------------------

interface Relabel {
  pod: GeneratedPod;
  /** the app label the pod gets (an existing identity of its namespace) */
  app: number;
  local: boolean;
}

/** `n` relabels: pairs (to app+1, then back) on different pods, local and remote pods alternating by pair. */
function changePlan(c: PolicyCluster, n: number): Relabel[] {
  const local = c.podInfo.filter((p) => p.node === POLICY_CLUSTER.localNode && !Object.values(LAB).some((l) => typeof l === 'object' && l.ip === p.ip));
  const remote = c.podInfo.filter((p) => p.node !== POLICY_CLUSTER.localNode);
  const out: Relabel[] = [];
  for (let k = 0; out.length < n; k++) {
    const isLocal = k % 2 === 0 || remote.length === 0;
    const pool = isLocal ? local : remote;
    const pod = pool[Math.floor((k * 7919) % pool.length)]!;
    out.push({ pod, app: (pod.app + 1) % POLICY_CLUSTER.apps, local: isLocal }, { pod, app: pod.app, local: isLocal });
  }
  return out.slice(0, n);
}

// ---- weir: control plane ------------------------------------------------------------------------

export interface WeirCpResult {
  layout: string;
  localPods: number;
  /** from nothing, each run in a fresh bpffs: wall ms of PolicySync.start (build + desired + write) */
  programMs: number[];
  buildMs: number[];
  writeMs: number[];
  writes: number;
  errors: number;
  counts: { identities: number; ipcache: number; endpoints: number; keys: number; policies: number };
  change?: Percentiles;
  changeBuild?: Percentiles;
  changeWrite?: Percentiles;
  changeWrites?: Percentiles;
  changeLocal?: Percentiles;
  changeRemote?: Percentiles;
  failures?: string[];
  /** relabels of a local pod whose endpoint the map had refused (all-local: more pods than weir_endpoints4 holds) */
  changesWithoutEndpoint?: number;
}

interface WeirSetup {
  /** the distinct 'map: error' of the writes the kernel refused (PolicySync logs them as warnings) */
  refused: Set<string>;
  bpffs: PrivateBpffs;
  dp: LoadedDataplane;
  sync: PolicySync;
  store: BenchStore;
  reports: PolicySyncReport[];
  close(): Promise<void>;
}

function weirSetup(c: PolicyCluster, instance = 'bench'): WeirSetup {
  const bpffs = mountPrivateBpffs('bench-policy');
  let dp: LoadedDataplane | undefined;
  try {
    dp = loadDataplane({ bpfRoot: bpffs.path, instance, sockLbMode: 'off', networkPolicy: true });
    const store = new BenchStore(c);
    const reports: PolicySyncReport[] = [];
    const refused = new Set<string>();
    const log: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (msg, f) => {
        if (msg === 'policy map write failed') refused.add(`${f?.map}: ${f?.error}`);
      },
      error: () => undefined,
    };
    const sync = new PolicySync(
      dp.maps.policy!,
      store,
      POLICY_CLUSTER.localNode,
      () => [POLICY_CLUSTER.localNodeAddress],
      log,
      (r) => reports.push(r),
    );
    const d = dp;
    return {
      refused,
      bpffs,
      dp: d,
      sync,
      store,
      reports,
      close: async () => {
        sync.stop();
        d.close();
        await bpffs.cleanup();
      },
    };
  } catch (e) {
    dp?.close();
    void bpffs.cleanup();
    throw e;
  }
}

const dist = (xs: number[]): Percentiles => ({ count: xs.length, p50_ms: pct(xs, 50), p99_ms: pct(xs, 99), max_ms: Math.max(...xs) });

/** Program from nothing `reps` times (fresh maps each), then `changes` relabels on the last one; returns it still loaded. */
export async function weirControlPlane(
  layout: 'node' | 'all-local',
  reps: number,
  changes: number,
  log: (l: string) => void,
): Promise<{ r: WeirCpResult; setup: WeirSetup }> {
  const c = benchCluster(layout === 'all-local');
  const r: WeirCpResult = {
    layout,
    localPods: c.podInfo.filter((p) => p.node === POLICY_CLUSTER.localNode).length,
    programMs: [],
    buildMs: [],
    writeMs: [],
    writes: 0,
    errors: 0,
    counts: { identities: 0, ipcache: 0, endpoints: 0, keys: 0, policies: 0 },
  };
  let setup: WeirSetup | undefined;
  for (let i = 0; i < reps; i++) {
    await setup?.close();
    setup = weirSetup(c);
    const t0 = performance.now();
    const rep = setup.sync.start();
    r.programMs.push(performance.now() - t0);
    r.buildMs.push(rep.buildMs);
    r.writeMs.push(rep.result.ms);
    r.writes = rep.result.writes;
    r.errors = rep.result.errors;
    r.counts = {
      identities: rep.result.identities,
      ipcache: rep.result.ipcache,
      endpoints: rep.result.endpoints,
      keys: rep.result.keys,
      policies: setup.sync.current!.policies.size,
    };
    if (setup.refused.size) r.failures = [...setup.refused].slice(0, 3);
    log(
      `weir ${layout}: from nothing in ${r.programMs.at(-1)!.toFixed(0)} ms (build ${rep.buildMs.toFixed(0)}, write ` +
        `${rep.result.ms.toFixed(0)}), ${rep.result.writes} writes, ${rep.result.errors} errors`,
    );
  }
  const s = setup!;
  const maps = s.dp.maps.policy!;
  const lat: number[] = [];
  const build: number[] = [];
  const write: number[] = [];
  const writes: number[] = [];
  const local: number[] = [];
  const remote: number[] = [];
  for (const ch of changePlan(c, changes)) {
    const key = `${ch.pod.namespace}/${ch.pod.name}`;
    const before = s.reports.length;
    const t0 = performance.now();
    s.store.pods.set(key, podObject(ch.pod, podLabels(ch.app)));
    s.sync.changed({ kind: 'Pod' }, Date.now());
    while (s.reports.length === before) await new Promise<void>((res) => setImmediate(res));
    const ms = performance.now() - t0;
    const rep = s.reports.at(-1)!;
    // the maps hold the pod's new identity: the ipcache entry (and its endpoint when local)
    const model = s.sync.current!;
    const want = model.endpoints.get(key)!.identity;
    if (model.podIdentities.get(want)?.labels.app !== appOf(ch.app)) throw new Error(`${key}: the model's identity ${want} is not app ${appOf(ch.app)}`);
    const ipc = maps.ipcache.get({ prefixlen: 32, address: ch.pod.ip });
    if (ipc?.identity !== want) throw new Error(`${key}: ipcache says identity ${ipc?.identity}, the model ${want}`);
    // (a pod whose endpoint the full map refused has none: counted, not an error of the change)
    const ep = ch.local ? maps.endpoints.get({ address: ch.pod.ip }) : undefined;
    if (ch.local && !ep) r.changesWithoutEndpoint = (r.changesWithoutEndpoint ?? 0) + 1;
    else if (ep && ep.identity !== want) throw new Error(`${key}: endpoint says identity ${ep.identity}, the model ${want}`);
    lat.push(ms);
    build.push(rep.buildMs);
    write.push(rep.result.ms);
    writes.push(rep.result.writes);
    (ch.local ? local : remote).push(ms);
  }
  r.change = dist(lat);
  r.changeBuild = dist(build);
  r.changeWrite = dist(write);
  r.changeWrites = dist(writes);
  if (local.length) r.changeLocal = dist(local);
  if (remote.length) r.changeRemote = dist(remote);
  log(
    `weir ${layout}: ${lat.length} relabels p50 ${r.change.p50_ms.toFixed(1)} ms p99 ${r.change.p99_ms.toFixed(1)} ms (build p50 ` +
      `${r.changeBuild.p50_ms.toFixed(1)}, write p50 ${r.changeWrite.p50_ms.toFixed(2)})`,
  );
  return { r, setup: s };
}

// ---- peers: control plane -----------------------------------------------------------------------

export interface PeerCpResult {
  contestant: Exclude<PolicyContestant, 'weir'>;
  layout: string;
  programmed: string;
  /** from nothing: the commands' wall time (ms), per repetition */
  programMs: number[];
  /** ipset restore alone, within programMs (iptables peers) */
  ipsetMs?: number[];
  change?: Percentiles;
  /** set lines / chains a change wrote (p50) */
  changeWhat?: string;
  error?: string;
}

function planOf(store: { pods: Iterable<V1Pod>; namespaces: Iterable<V1Namespace>; policies: Iterable<V1NetworkPolicy> }): PolicyPlan {
  const model = buildPolicyModel({ policies: store.policies, pods: [], namespaces: store.namespaces });
  return policyPlan(model.policies.values(), store.pods, store.namespaces, POLICY_CLUSTER.localNode);
}

async function peerControlPlane(
  contestant: Exclude<PolicyContestant, 'weir'>,
  ns: Netns,
  layout: 'node' | 'all-local',
  reps: number,
  changes: number,
  tmp: string,
  changeBudgetMs: number,
  log: (l: string) => void,
): Promise<PeerCpResult> {
  const c = benchCluster(layout === 'all-local');
  const plan = planOf(c);
  const k = planCounts(plan);
  const r: PeerCpResult = { contestant, layout, programmed: '', programMs: [] };
  const file = join(tmp, `policy-${contestant}.rules`);
  const v = contestant.startsWith('iptables-') ? (contestant.slice('iptables-'.length) as IptablesVariant) : undefined;
  const clear = () => (v ? clearIptablesPolicy(ns, v) : clearNftPolicy(ns));
  try {
    for (let i = 0; i < reps; i++) {
      await clear();
      if (v) {
        const p = await programIptablesPolicy(ns, v, plan, file);
        r.programMs.push(p.ms);
        (r.ipsetMs ??= []).push(p.ipsetMs);
        r.programmed = `${k.sets} ipsets (${k.members} entries), ${k.policyChains} policy + ${k.podChains} pod chains, ${p.rules} rules`;
      } else {
        const p = await programNftPolicy(ns, plan, file);
        r.programMs.push(p.ms);
        r.programmed = `${k.sets} sets (${k.members} elements), ${p.chains} chains, ${p.rules} rules`;
      }
      log(`${POLICY_LABEL[contestant]} ${layout}: from nothing in ${r.programMs.at(-1)!.toFixed(0)} ms (${r.programmed})`);
    }
    const lat: number[] = [];
    const what: number[] = [];
    const pods = [...c.pods];
    let current = plan;
    const started = performance.now();
    for (const ch of changePlan(c, changes)) {
      const i = c.podInfo.indexOf(ch.pod);
      pods[i] = podObject(ch.pod, podLabels(ch.app));
      // the peer's own compute (selectors against every pod) is not timed: only its commands are
      const next = planOf({ pods, namespaces: c.namespaces, policies: c.policies });
      if (v) {
        const d = iptablesChange(current, next);
        const t0 = performance.now();
        await applyIptablesChange(ns, v, d, `${file}.change`);
        lat.push(performance.now() - t0);
        what.push(d.setLines * 1000 + d.chains);
      } else {
        const d = nftChange(current, next);
        writeFile(`${file}.change`, d.text);
        const t0 = performance.now();
        await ns.exec('nft', ['-f', `${file}.change`]);
        lat.push(performance.now() - t0);
        what.push(d.lines);
      }
      current = next;
      if (performance.now() - started > changeBudgetMs && lat.length >= 4 && lat.length % 2 === 0) break;
    }
    r.change = dist(lat);
    const w = pct(what, 50);
    r.changeWhat = v ? `${Math.floor(w / 1000)} ipset lines, ${w % 1000} chains rewritten (p50)` : `${w} transaction lines (p50)`;
    log(
      `${POLICY_LABEL[contestant]} ${layout}: ${lat.length} relabels p50 ${r.change.p50_ms.toFixed(1)} ms p99 ` +
        `${r.change.p99_ms.toFixed(1)} ms (${r.changeWhat})`,
    );
  } catch (e) {
    r.error = (e as Error).message.split('\n').slice(0, 3).join(' ');
    log(`${POLICY_LABEL[contestant]} ${layout}: FAILED ${r.error}`);
  } finally {
    await clear().catch(() => undefined);
  }
  return r;
}

// ---- weir: per packet (BPF_PROG_TEST_RUN) --------------------------------------------------------

export interface PolicyPerPacketRow {
  case: string;
  program: string;
  method: string;
  /** ns per packet by variant: policy on, policy off (conntrack of every flow kept), both off */
  on: number;
  ctOnly: number;
  off: number;
  onMedian?: number;
  ctOnlyMedian?: number;
  offMedian?: number;
}

const tcp = (src: string, dst: string, sport: number, dport: number, flags: ('syn' | 'ack' | 'fin')[]) =>
  eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src, dst }).tcp({ sport, dport, flags }).payload('x'.repeat(64)).build();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function weirPerPacket(
  onSetup: WeirSetup,
  o: { repeat: number; rounds: number; singles: number },
  log: (l: string) => void,
): Promise<{ rows: PolicyPerPacketRow[]; floor: number; checks: string[] }> {
  const c = benchCluster(false);
  const client = LAB.client.ip;
  const server = LAB.server.ip;
  const remote = podAt(c, REMOTE_CLIENT).ip;
  const denied = LAB.denied.ip;
  const port = httpPortOf(podAt(c, LAB.server).app);
  // the other two variants in the same bpffs, instances of their own (own conntrack maps)
  const ctOnly = loadDataplane({ bpfRoot: onSetup.bpffs.path, instance: 'ct-only', sockLbMode: 'off', ctTrackAll: true });
  const off = loadDataplane({ bpfRoot: onSetup.bpffs.path, instance: 'off', sockLbMode: 'off' });
  const floorObj = BpfObject.load(floorObject());
  const checks: string[] = [];
  try {
    const variants = [onSetup.dp, ctOnly, off];
    const progs = (name: 'from_pod' | 'from_host') => variants.map((d) => d.objects[name].program(`weir_${name}`));
    const run = (p: BpfProgram, data: Buffer, repeat?: number) => p.testRun(repeat ? { data, repeat } : { data });
    const TC_ACT_OK = 0;
    const TC_ACT_SHOT = 2;
    // the policy is real: the allowed flows pass, the denied one is dropped with policy on only
    const fp = progs('from_pod');
    const fh = progs('from_host');
    const expect = (what: string, got: number, want: number) => {
      if (got !== want) throw new Error(`${what}: verdict ${got}, expected ${want}`);
      checks.push(`${what}: verdict ${got}`);
    };
    expect('from_pod, policy on: denied pod to server SYN', run(fp[0]!, tcp(denied, server, 30000, port, ['syn'])).retval, TC_ACT_SHOT);
    expect('from_pod, policy off: denied pod to server SYN', run(fp[1]!, tcp(denied, server, 30000, port, ['syn'])).retval, TC_ACT_OK);
    expect(
      'from_host, policy on: remote ns-24 app-9 to server SYN',
      run(fh[0]!, tcp(podAt(c, { ns: 24, j: 9 }).ip, server, 30000, port, ['syn'])).retval,
      TC_ACT_SHOT,
    );
    const ct = typedMap(onSetup.dp.objects.from_pod.map('weir_ct4_v2'), codecFor('weir_ct4_key'), codecFor('weir_ct4'));

    interface Case {
      case: string;
      progs: BpfProgram[];
      data: Buffer;
      setup?: Buffer;
    }
    const repeated: Case[] = [
      {
        case: 'established: pod to local pod (conntrack hit)',
        progs: fp,
        data: tcp(client, server, 40001, port, ['ack']),
        setup: tcp(client, server, 40001, port, ['syn']),
      },
      {
        case: 'established: remote pod to local pod (conntrack hit)',
        progs: fh,
        data: tcp(remote, server, 40002, port, ['ack']),
        setup: tcp(remote, server, 40002, port, ['syn']),
      },
      // SYN+FIN: the SYN-reopen rule deletes the pair the run before made, so the new-flow path repeats
      { case: 'new flow, repeatable (SYN+FIN): pod to local pod', progs: fp, data: tcp(client, server, 40003, port, ['syn', 'fin']) },
      { case: 'new flow, repeatable (SYN+FIN): remote pod to local pod', progs: fh, data: tcp(remote, server, 40004, port, ['syn', 'fin']) },
    ];
    for (const k of repeated)
      for (const p of k.progs) {
        const s = run(p, k.setup ?? k.data);
        const m = run(p, k.data);
        if (s.retval !== TC_ACT_OK || m.retval !== TC_ACT_OK) throw new Error(`${k.case} (${p.name}): verdict ${s.retval}/${m.retval}, expected pass`);
      }
    const est = ct.get({ saddr: client, daddr: server, sport: 40001, dport: port, protocol: 6 });
    if (!est || est.policy === 0) throw new Error(`established case: conntrack entry ${JSON.stringify(est)} carries no policy verdict`);
    checks.push(`established entry carries the verdict (policy=${est.policy})`);
    const again = ct.get({ saddr: client, daddr: server, sport: 40003, dport: port, protocol: 6 });
    if (!again || again.packets !== 1n) throw new Error(`repeatable new flow made no fresh entry (${again?.packets} packets)`);
    checks.push('repeatable new flow recreates its entry each run');

    const floorProg = floorObj.program('bench_floor');
    const floorData = tcp(client, server, 40000, port, ['ack']);
    const floors: number[] = [];
    const rounds = repeated.map(() => [[], [], []] as number[][]);
    let seed = 0x9e3779b9;
    const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const order = () => [0, 1, 2].sort(() => rand() - 0.5);
    for (let r = 0; r < o.rounds; r++) {
      floors.push(run(floorProg, floorData, o.repeat).durationNs);
      repeated.forEach((k, j) => {
        for (const v of order()) rounds[j]![v]!.push(run(k.progs[v]!, k.data, o.repeat).durationNs);
      });
    }
    const singleCases = [
      { case: 'new flow (SYN): pod to local pod', progs: fp, packet: (i: number) => tcp(client, server, 1024 + (i % 60000), port, ['syn']) },
      { case: 'new flow (SYN): remote pod to local pod', progs: fh, packet: (i: number) => tcp(remote, server, 1024 + (i % 60000), port, ['syn']) },
    ];
    const singles = singleCases.map(() => [[], [], []] as number[][]);
    for (let n = 0; n < o.singles; n++)
      singleCases.forEach((k, j) => {
        for (const v of order()) {
          const res = run(k.progs[v]!, k.packet(n));
          if (res.retval !== TC_ACT_OK) throw new Error(`${k.case}: verdict ${res.retval}`);
          singles[j]![v]!.push(res.durationNs);
        }
      });
    const rows: PolicyPerPacketRow[] = [];
    repeated.forEach((k, j) => {
      const [a, b, d] = rounds[j]!;
      rows.push({
        case: k.case,
        program: k.progs[0]!.name.replace(/^weir_/, ''),
        method: `fastest of ${o.rounds} × repeat ${o.repeat}`,
        on: Math.min(...a!),
        ctOnly: Math.min(...b!),
        off: Math.min(...d!),
        onMedian: median(a!),
        ctOnlyMedian: median(b!),
        offMedian: median(d!),
      });
    });
    singleCases.forEach((k, j) => {
      const [a, b, d] = singles[j]!;
      rows.push({
        case: k.case,
        program: k.progs[0]!.name.replace(/^weir_/, ''),
        method: `median of ${o.singles} single runs`,
        on: median(a!),
        ctOnly: median(b!),
        off: median(d!),
      });
    });
    for (const row of rows) log(`per packet ${row.case} (${row.program}): on ${row.on} ns, policy off ${row.ctOnly}, all off ${row.off}`);
    return { rows, floor: Math.min(...floors), checks };
  } finally {
    floorObj.close();
    ctOnly.close();
    off.close();
  }
}

// ---- every contestant in a lab: real connections, policy on and off -------------------------------

export interface LabResult {
  contestant: PolicyContestant;
  on?: { crr: TcpbenchResult; rr: TcpbenchResult };
  off?: { crr: TcpbenchResult; rr: TcpbenchResult };
  /** the denied pod could not connect with policy on, and could with it off */
  enforced?: boolean;
  error?: string;
}

interface Arena {
  contestant: PolicyContestant;
  lab: Lab;
  node: LabNode;
  client: Pod;
  server: Pod;
  denied: Pod;
  toggle(on: boolean): Promise<void>;
  close(): Promise<void>;
}

async function buildArena(contestant: PolicyContestant, port: number, tmp: string): Promise<Arena> {
  const lab = await Lab.create({ name: `bench-pol-${contestant.slice(0, 8)}` });
  const closers: (() => Promise<void> | void)[] = [];
  try {
    const node = await lab.node('node', { address: LAB.nodeAddress, podSubnet: POLICY_CLUSTER.localPodSubnet });
    const pod = async (name: string, ip: string) => {
      const p = await lab.pod(node, name, { rangeStart: ip, rangeEnd: ip });
      if (p.ip !== ip) throw new Error(`pod ${name}: got ${p.ip}, want ${ip}`);
      return p;
    };
    const client = await pod('client', LAB.client.ip);
    const server = await pod('server', LAB.server.ip);
    const denied = await pod('denied', LAB.denied.ip);
    await client.ns.sysctl('net.ipv4.ip_local_port_range', '1024 65535');
    startServer(server.ns, port);
    await client.ns.waitForPort(port, { host: server.ip, timeoutMs: 5000 });
    const c = benchCluster(false);
    let toggle: (on: boolean) => Promise<void>;
    if (contestant === 'weir') {
      const s = weirSetup(c, 'lab');
      closers.push(() => s.close());
      s.sync.start();
      const ctOnly = loadDataplane({ bpfRoot: s.bpffs.path, instance: 'ct-only', sockLbMode: 'off', ctTrackAll: true });
      closers.push(() => ctOnly.close());
      const atts: TcAttachment[] = [];
      closers.push(() => atts.forEach((a) => a.detach()));
      const { attachTc } = await import('../src/bpf/index.js');
      for (const p of [client, server, denied]) {
        atts.push(attachTc(s.dp.objects.from_pod.program('weir_from_pod'), p.hostIfname, 'ingress', { netns: node.ns.name }));
        atts.push(attachTc(s.dp.objects.to_pod.program('weir_to_pod'), p.hostIfname, 'egress', { netns: node.ns.name }));
      }
      toggle = async (on) => {
        for (let i = 0; i < atts.length; i += 2) {
          atts[i]!.replace((on ? s.dp : ctOnly).objects.from_pod.program('weir_from_pod'));
          atts[i + 1]!.replace((on ? s.dp : ctOnly).objects.to_pod.program('weir_to_pod'));
        }
      };
    } else {
      const plan = planOf(c);
      const file = join(tmp, `lab-${contestant}.rules`);
      if (contestant === 'nftables') {
        await programNftPolicy(node.ns, plan, file);
        toggle = (on) => nftPolicyDispatch(node.ns, on, `${file}.toggle`);
      } else {
        const v = contestant.slice('iptables-'.length) as IptablesVariant;
        await programIptablesPolicy(node.ns, v, plan, file);
        let isOn = true;
        toggle = async (on) => {
          if (on !== isOn) await iptablesPolicyJump(node.ns, v, on);
          isOn = on;
        };
      }
    }
    return {
      contestant,
      lab,
      node,
      client,
      server,
      denied,
      toggle,
      close: async () => {
        for (const f of closers.reverse()) await f();
        await lab.destroy();
      },
    };
  } catch (e) {
    for (const f of closers.reverse()) await Promise.resolve(f()).catch(() => undefined);
    await lab.destroy().catch(() => undefined);
    throw e;
  }
}

async function connects(from: Pod, host: string, port: number): Promise<boolean> {
  try {
    await runClient(from.ns, 'crr', host, port, { seconds: 0.2, warmup: 0 }).then((r) => {
      if (!r.count) throw new Error('no connection');
    });
    return true;
  } catch {
    return false;
  }
}

export async function labPerPacket(
  o: { rounds: number; crrSeconds: number; rrSeconds: number; warmup: number; tmp: string; contestants: readonly PolicyContestant[] },
  log: (l: string) => void,
): Promise<LabResult[]> {
  const c = benchCluster(false);
  const port = httpPortOf(podAt(c, LAB.server).app);
  const out: LabResult[] = [];
  for (const contestant of o.contestants) {
    const res: LabResult = { contestant };
    out.push(res);
    let a: Arena | undefined;
    try {
      a = await buildArena(contestant, port, o.tmp);
      await a.toggle(true);
      const deniedOn = await connects(a.denied, a.server.ip, port);
      const allowedOn = await connects(a.client, a.server.ip, port);
      await a.toggle(false);
      const deniedOff = await connects(a.denied, a.server.ip, port);
      res.enforced = !deniedOn && allowedOn && deniedOff;
      if (!res.enforced) throw new Error(`policy not as expected: denied pod connects with policy on ${deniedOn}, off ${deniedOff}; client on ${allowedOn}`);
      const on = { crr: [] as TcpbenchResult[], rr: [] as TcpbenchResult[] };
      const off = { crr: [] as TcpbenchResult[], rr: [] as TcpbenchResult[] };
      for (let r = 0; r < o.rounds; r++)
        for (const state of r % 2 === 0 ? [true, false] : [false, true]) {
          await a.toggle(state);
          const d = state ? on : off;
          // client and server on one core (taskset), as the tunnel bench does: fewer cross-core wake-ups in the figure
          d.crr.push(await runClient(a.client.ns, 'crr', a.server.ip, port, { seconds: o.crrSeconds, warmup: o.warmup, cpu: 0 }));
          d.rr.push(await runClient(a.client.ns, 'rr', a.server.ip, port, { seconds: o.rrSeconds, warmup: o.warmup, cpu: 0 }));
        }
      const pick = (xs: TcpbenchResult[]) => xs.sort((x, y) => x.rate - y.rate)[Math.floor(xs.length / 2)]!;
      res.on = { crr: pick(on.crr), rr: pick(on.rr) };
      res.off = { crr: pick(off.crr), rr: pick(off.rr) };
      log(
        `lab ${POLICY_LABEL[contestant]}: conn/s on ${Math.round(res.on.crr.rate)} off ${Math.round(res.off.crr.rate)}; connect p50 on ` +
          `${res.on.crr.connect?.p50_us} off ${res.off.crr.connect?.p50_us} µs; req/s on ${Math.round(res.on.rr.rate)} off ${Math.round(res.off.rr.rate)}`,
      );
    } catch (e) {
      res.error = (e as Error).message.split('\n').slice(0, 3).join(' ');
      log(`lab ${POLICY_LABEL[contestant]}: FAILED ${res.error}`);
    } finally {
      await a?.close().catch((e) => log(`teardown ${contestant}: ${(e as Error).message}`));
    }
  }
  return out;
}

// ---- the whole part --------------------------------------------------------------------------------

export interface PolicyBenchOptions {
  quick: boolean;
  tmp: string;
  log: (l: string) => void;
}

export interface PolicyBenchResult {
  weir: WeirCpResult[];
  peers: PeerCpResult[];
  perPacket: PolicyPerPacketRow[];
  floor: number;
  checks: string[];
  lab: LabResult[];
  options: Record<string, unknown>;
}

export async function runPolicyBench(o: PolicyBenchOptions): Promise<PolicyBenchResult> {
  const q = o.quick;
  const opts = {
    reps: q ? 1 : 3,
    changes: q ? 20 : 200,
    peerReps: q ? 1 : 3,
    peerChanges: q ? 6 : 100,
    changeBudgetMs: q ? 5_000 : 60_000,
    perPacket: q ? { repeat: 100_000, rounds: 3, singles: 1000 } : { repeat: 1_000_000, rounds: 9, singles: 20_000 },
    lab: q ? { rounds: 2, crrSeconds: 0.5, rrSeconds: 0.3, warmup: 0.1 } : { rounds: 6, crrSeconds: 2, rrSeconds: 1, warmup: 0.3 },
  };
  const weir: WeirCpResult[] = [];
  const peers: PeerCpResult[] = [];

  // weir: the realistic node first, in a cold process (its first run is what a daemon's start pays: nothing
  // compiled by the JIT yet); the per-packet part reads its maps; then the all-local worst case
  const node = await weirControlPlane('node', opts.reps, opts.changes, o.log);
  weir.push(node.r);
  const { rows: perPacket, floor, checks } = await weirPerPacket(node.setup, opts.perPacket, o.log).finally(() => node.setup.close());
  if (!q) weir.push((await weirControlPlane('all-local', opts.reps, opts.changes, o.log).then(async (x) => (await x.setup.close(), x))).r);

  const peerLab = await Lab.create({ name: 'bench-pol-cp' });
  try {
    const peerContestants = q ? (['iptables-nft', 'nftables'] as const) : (['iptables-nft', 'iptables-legacy', 'nftables'] as const);
    let i = 0;
    for (const layout of q ? (['node'] as const) : (['node', 'all-local'] as const))
      for (const c of peerContestants) {
        // a node netns of its own per peer and layout: nothing inherited from the one before
        const n = await peerLab.node(`p${i}`, { address: `198.18.0.${100 + i++}/24` });
        peers.push(await peerControlPlane(c, n.ns, layout, opts.peerReps, opts.peerChanges, o.tmp, opts.changeBudgetMs, o.log));
      }
  } finally {
    await peerLab.destroy();
  }

  const lab = await labPerPacket({ ...opts.lab, tmp: o.tmp, contestants: q ? ['weir', 'iptables-nft', 'nftables'] : POLICY_CONTESTANTS }, o.log);
  return { weir, peers, perPacket, floor, checks, lab, options: opts };
}

export { appOf, nsName };
