// bench: the control plane. For N services x M endpoints:
// - weir end to end: the Services and EndpointSlices written as manifest files, a fresh
//   `weir daemon` started on them in a lab node (test/lib/weir-node.ts), timed from process
//   start to `event=ready` (wall clock, and the daemon's own ms=), peak RSS (VmHWM) of the
//   daemon after ready; then one EndpointSlice change at a time (an atomic rename of that
//   slice's file) timed from the write to the new backend count in the pinned weir_frontend4.
// - the peers: kube-proxy's iptables input through iptables-nft-restore and
//   iptables-legacy-restore, its nftables transaction through nft -f, each from nothing into
//   a lab netns (the data-plane bench's appliers), then one endpoint change at a time as
//   kube-proxy syncs it: iptables a KEP-3453 partial restore (every top-level chain, i.e.
//   KUBE-SERVICES with all N rules, plus the changed service's KUBE-SVC/KUBE-SEP chains),
//   nftables a partial sync (the `list chains` / `list sets` it runs on every sync, then a
//   transaction re-creating only the changed service's chains; kube-proxy's
//   pkg/proxy/nftables/proxier.go syncProxyRules with tryPartialSync).
// The changes alternate: remove the last endpoint of a service, then put it back; each pair
// on another service. Every contestant sees the same sequence.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, codecFor, enums, type TypedMap, typedMap, type WeirFrontend4, type WeirFrontend4Key } from '../src/bpf/index.js';
import { Lab, type Netns } from '../test/lib/lab.js';
import { endpointSlice, service, WeirNode } from '../test/lib/weir-node.js';
import { nftChainName } from './peers/hash.js';
import { applyIptables, iptablesRestoreInput, ruleCount, type IptablesVariant } from './peers/iptables.js';
import { applyNftables, nftablesInput, nftCounts } from './peers/nftables.js';
import { CLUSTER, fillerServices, type BenchService } from './peers/services.js';
import { CPUS, pinSelf, unpinAll } from './tools.js';

export const CP_CONTESTANTS = ['weir', 'nftables', 'iptables-nft', 'iptables-legacy'] as const;
export type CpContestant = (typeof CP_CONTESTANTS)[number];
export const CP_LABEL: Record<CpContestant, string> = {
  weir: 'weir daemon (end to end)',
  nftables: 'kube-proxy nftables (nft -f)',
  'iptables-nft': 'kube-proxy iptables (iptables-nft-restore)',
  'iptables-legacy': 'kube-proxy iptables (iptables-legacy-restore)',
};

export interface Percentiles {
  count: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

export interface CpMeasurement {
  contestant: CpContestant;
  services: number;
  endpointsPerService: number;
  /** weir: wall clock from spawning `weir daemon` to its ready line; peers: restore / nft -f from nothing */
  programMs?: number;
  /** weir: the daemon's own `event=ready ms=` (from its start() to ready, node's boot excluded) */
  readyMs?: number;
  /** weir: the daemon's first full sync (`event=sync reason=start ms=`: model and map writes), ms */
  startSyncMs?: number;
  /** weir: VmHWM of the daemon process after ready, MiB */
  rssMiB?: number;
  /** one endpoint change: write → visible (weir) / the sync's commands (peers) */
  change?: Percentiles;
  /** weir: the daemon's own `event=sync reason=change ms=` (model + map writes); nft: the transaction alone */
  changeInner?: Percentiles;
  /** how the change was applied */
  changeHow?: string;
  programmed?: string;
  note?: string;
  error?: string;
  skipped?: string;
}

export interface ControlplaneOptions {
  sizes: number[];
  /** endpoint changes per contestant and size */
  changes: number;
  tmp: string;
  /** skip a peer at a size when its programming time, projected quadratically from the previous size, exceeds this */
  programBudgetMs: number;
  /** cut the number of changes so that one contestant's changes take about this long at most */
  changeBudgetMs: number;
  log: (line: string) => void;
  /** only these contestants (default all) */
  contestants?: readonly CpContestant[];
}

/** weir_backend4 holds 262,144 entries: 50k services get 5 endpoints, as in the data-plane bench */
export const endpointsFor = (n: number) => (n * 10 > 250_000 ? 5 : 10);

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const dist = (xs: number[]): Percentiles => ({ count: xs.length, p50_ms: pct(xs, 50), p99_ms: pct(xs, 99), max_ms: Math.max(...xs) });

/** The k-th change: which service, and whether it loses (even k) or regains (odd k) its last endpoint. */
function changePlan(n: number, changes: number): { index: number; remove: boolean }[] {
  const pairs = Math.ceil(changes / 2);
  return Array.from({ length: changes }, (_, k) => ({ index: Math.floor(((k >> 1) * n) / pairs + (k >> 1)) % n, remove: k % 2 === 0 }));
}

/** The service set after change k was applied (only the changed service differs from `base`). */
function withChange(base: BenchService[], c: { index: number; remove: boolean }): BenchService {
  const s = base[c.index]!;
  return c.remove ? { ...s, endpoints: s.endpoints.slice(0, -1) } : s;
}

// ---- weir -----------------------------------------------------------------------------

const svcObj = (s: BenchService) =>
  service({
    name: s.name,
    namespace: s.namespace,
    clusterIP: s.clusterIP,
    ports: [{ name: s.portName, port: s.port, targetPort: s.endpoints[0]?.port ?? 8080 }],
  });
const sliceObj = (s: BenchService) =>
  endpointSlice({
    name: `${s.name}-a`,
    service: s.name,
    namespace: s.namespace,
    ports: [{ name: s.portName, port: s.port, targetPort: 8080 }],
    endpoints: s.endpoints.map((e) => ({ ip: e.ip, node: 'node' })),
  });
const yaml = (objs: object[]) => objs.map((o) => JSON.stringify(o)).join('\n---\n') + '\n';

/** Peak RSS (VmHWM) of the daemon: the largest among the process and its descendants (nsenter, bash exec node). */
function peakRssMiB(pid: number): number {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      /* gone */
    }
  }
  let best = 0;
  const walk = (p: number) => {
    try {
      const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
      best = Math.max(best, kb);
    } catch {
      /* gone */
    }
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return best / 1024;
}

async function runWeir(n: number, o: ControlplaneOptions, m: CpMeasurement): Promise<void> {
  const M = m.endpointsPerService;
  const base = fillerServices(n, M);
  const plan = changePlan(n, o.changes);
  const own = new Set(plan.map((c) => c.index));
  const lab = await Lab.create({ name: 'bench-cp-weir' });
  try {
    const node = await lab.node('node', { address: CLUSTER.nodeAddress, podSubnet: CLUSTER.podSubnet });
    // resync (a full read-back of the maps) off for the measurement: it is not what is timed
    // the daemon on CPUS.programmer, as the peers' commands; this process (it polls the maps) on the other core
    const weir = await WeirNode.create(lab, node, {
      connectTimeLb: 'off',
      logLevel: 'info',
      resyncInterval: '3600s',
      wrapper: ['taskset', '-c', String(CPUS.programmer)],
    });
    // Services and EndpointSlices in files of 1,000 services each; the slices that will
    // change sit in files of their own, so a change rewrites one small file
    const CHUNK = 1000;
    for (let i = 0; i < n; i += CHUNK) {
      const part = base.slice(i, i + CHUNK);
      writeFileSync(join(weir.manifests, `services-${String(i / CHUNK).padStart(3, '0')}.yaml`), yaml(part.map(svcObj)));
      writeFileSync(join(weir.manifests, `slices-${String(i / CHUNK).padStart(3, '0')}.yaml`), yaml(part.filter((_, j) => !own.has(i + j)).map(sliceObj)));
    }
    for (const i of own) writeFileSync(join(weir.manifests, `slice-${base[i]!.name}.yaml`), yaml([sliceObj(base[i]!)]));

    const t0 = performance.now();
    const ready = await weir.start(600_000);
    m.programMs = performance.now() - t0;
    m.readyMs = Number(ready.ms);
    m.rssMiB = peakRssMiB(weir.process!.pid);
    m.startSyncMs = Number(weir.events('sync').find((l) => l.reason === 'start')?.ms);
    m.programmed = `${ready.frontends} frontends, ${n * M} backends (${ready.writes} map writes)`;
    if (Number(ready.frontends) !== n) throw new Error(`ready with ${ready.frontends} frontends, want ${n}`);
    o.log(
      `N=${n} weir: ready in ${m.programMs.toFixed(0)} ms wall (daemon ms=${m.readyMs}, of which the first full sync ${m.startSyncMs} ms), VmHWM ${m.rssMiB.toFixed(0)} MiB`,
    );

    const fe: TypedMap<WeirFrontend4Key, WeirFrontend4> = typedMap(
      BpfMap.openPinned(join(weir.pinDir, 'weir_frontend4')),
      codecFor('weir_frontend4_key'),
      codecFor('weir_frontend4'),
    );
    const lat: number[] = [];
    const inner: number[] = [];
    try {
      const started = performance.now();
      for (const c of plan) {
        const s = withChange(base, c);
        const key: WeirFrontend4Key = { address: s.clusterIP, port: s.port, protocol: 6, scope: enums.weir_frontend_scope.WEIR_SCOPE_INTERNAL };
        const mark = weir.mark();
        const t = performance.now();
        weir.writeManifest(`slice-${s.name}.yaml`, yaml([sliceObj(s)]));
        // polled as fast as the event loop turns (a timer's 1 ms would dominate a sub-ms change)
        for (;;) {
          if (fe.get(key)?.backend_count === s.endpoints.length) break;
          if (performance.now() - t > 10_000)
            throw new Error(`${s.name}: backend_count ${fe.get(key)?.backend_count}, want ${s.endpoints.length}, 10 s after the write`);
          await new Promise<void>((r) => setImmediate(r));
        }
        lat.push(performance.now() - t);
        const sync = await weir.waitFor('sync', { reason: 'change' }, 10_000, mark);
        inner.push(Number(sync.ms));
        if (performance.now() - started > o.changeBudgetMs && lat.length >= 4 && lat.length % 2 === 0) break;
      }
    } finally {
      fe.map.close();
    }
    m.change = dist(lat);
    m.changeInner = dist(inner);
    m.changeHow =
      'EndpointSlice file renamed into the manifests dir → backend_count in the pinned weir_frontend4 (includes the manifests watch debounce, 100 ms, and the change debounce, 10 ms)';
    o.log(
      `N=${n} weir: ${lat.length} changes p50 ${m.change.p50_ms.toFixed(1)} ms p99 ${m.change.p99_ms.toFixed(1)} ms; daemon sync ms p50 ${m.changeInner.p50_ms} p99 ${m.changeInner.p99_ms}`,
    );
    await weir.terminate();
  } finally {
    await lab.destroy();
  }
}

// ---- peers ----------------------------------------------------------------------------

const TOP_NAT = new Set(['KUBE-NODEPORTS', 'KUBE-SERVICES', 'KUBE-MARK-MASQ', 'KUBE-POSTROUTING']);

/**
 * kube-proxy's partial restore (KEP-3453, GA 1.28) after `changed` changed: the whole filter
 * table, the top-level nat chains in full (KUBE-SERVICES holds one rule per service), and the
 * changed service's own KUBE-SVC/KUBE-SEP chains; every other service's chains are left out
 * of the input, so --noflush leaves them alone. A removed endpoint's KUBE-SEP chain stays:
 * in large-cluster mode (> 1,000 endpoints) stale chains are only swept once per syncPeriod.
 */
export function iptablesPartialInput(all: readonly BenchService[], changed: BenchService): string {
  const full = iptablesRestoreInput(all, { clusterCIDR: CLUSTER.clusterCIDR });
  const own = new Set(
    iptablesRestoreInput([changed], { clusterCIDR: CLUSTER.clusterCIDR })
      .split('*nat')[1]!
      .split('\n')
      .filter((l) => l.startsWith(':'))
      .map((l) => l.slice(1, l.indexOf(' ')))
      .filter((c) => !TOP_NAT.has(c)),
  );
  const [filter, nat] = full.split('*nat\n') as [string, string];
  const keep = (chain: string) => TOP_NAT.has(chain) || own.has(chain);
  const natLines = nat.split('\n').filter((l) => {
    if (l.startsWith(':')) return keep(l.slice(1, l.indexOf(' ')));
    if (l.startsWith('-A ')) return keep(l.slice(3, l.indexOf(' ', 3)));
    return true;
  });
  return `${filter}*nat\n${natLines.join('\n')}`;
}

/**
 * kube-proxy nftables' partial sync transaction for one changed service: its endpoint and
 * service chains added and flushed (ensureChain), their rules written again, map elements
 * unchanged (nftElementStorage skips them), a removed endpoint's chain flushed (deleted by a
 * later sync once stale for 1 s).
 */
export function nftPartialInput(changed: BenchService, removed: { ip: string; port: number } | undefined): string {
  const o = { clusterCIDR: CLUSTER.clusterCIDR, serviceCIDR: CLUSTER.serviceCIDR, nodePortIPs: [] };
  const lines = nftablesInput([changed], o).split('\n');
  const baseCount = nftablesInput([], o).split('\n').length - 1;
  const own = lines.slice(baseCount).filter((l) => l.length);
  const chains = own.filter((l) => l.startsWith('add chain')).map((l) => l.slice('add chain ip kube-proxy '.length));
  const out = [...chains.flatMap((c) => [`add chain ip kube-proxy ${c}`, `flush chain ip kube-proxy ${c}`]), ...own.filter((l) => l.startsWith('add rule'))];
  if (removed) {
    const stale = nftChainName('endpoint', `${changed.namespace}/${changed.name}/${changed.protocol}/${changed.portName}__${removed.ip}/${removed.port}`);
    out.push(`flush chain ip kube-proxy ${stale}`);
  }
  return out.join('\n') + '\n';
}

async function runPeer(c: Exclude<CpContestant, 'weir'>, ns: Netns, n: number, o: ControlplaneOptions, m: CpMeasurement): Promise<void> {
  const M = m.endpointsPerService;
  const base = fillerServices(n, M);
  const file = join(o.tmp, `cp-${c}.rules`);
  const nftOpts = { clusterCIDR: CLUSTER.clusterCIDR, serviceCIDR: CLUSTER.serviceCIDR, nodePortIPs: [CLUSTER.nodeAddress.split('/')[0]!] };
  if (c === 'nftables') {
    const input = nftablesInput(base, nftOpts);
    m.programMs = await applyNftables(ns, input, file);
    const k = nftCounts(input);
    m.programmed = `${k.chains} chains, ${k.rules} rules`;
  } else {
    const input = iptablesRestoreInput(base, { clusterCIDR: CLUSTER.clusterCIDR });
    m.programMs = await applyIptables(ns, c.slice('iptables-'.length) as IptablesVariant, input, file);
    m.programmed = `${ruleCount(input)} rules`;
  }
  o.log(`N=${n} ${CP_LABEL[c]}: programmed ${m.programmed} in ${m.programMs.toFixed(0)} ms`);

  const plan = changePlan(n, o.changes);
  const lat: number[] = [];
  const inner: number[] = [];
  const current = [...base];
  const started = performance.now();
  for (const ch of plan) {
    const s = withChange(base, ch);
    current[ch.index] = s;
    if (c === 'nftables') {
      const tx = nftPartialInput(s, ch.remove ? base[ch.index]!.endpoints.at(-1) : undefined);
      writeFileSync(`${file}.change`, tx);
      const t = performance.now();
      // every sync lists the table's chains and sets (stale chains, stale affinity sets)
      await ns.exec('nft', ['--json', 'list', 'chains', 'ip'], { timeoutMs: 600_000 });
      await ns.exec('nft', ['--json', 'list', 'sets', 'ip'], { timeoutMs: 600_000 });
      const tTx = performance.now();
      await ns.exec('nft', ['-f', `${file}.change`], { timeoutMs: 600_000 });
      const end = performance.now();
      lat.push(end - t);
      inner.push(end - tTx);
    } else {
      const v = c.slice('iptables-'.length) as IptablesVariant;
      writeFileSync(`${file}.change`, iptablesPartialInput(current, s));
      const t = performance.now();
      await ns.exec(`iptables-${v}-restore`, ['--noflush', '--counters', '-w', '5', `${file}.change`], { timeoutMs: 600_000 });
      lat.push(performance.now() - t);
    }
    if (performance.now() - started > o.changeBudgetMs && lat.length >= 2 && lat.length % 2 === 0) break;
  }
  m.change = dist(lat);
  if (inner.length) m.changeInner = dist(inner);
  m.changeHow =
    c === 'nftables'
      ? "partial sync: `nft --json list chains ip`, `nft --json list sets ip`, then `nft -f` of the changed service's chains (add + flush + rules); elements unchanged"
      : "partial restore (KEP-3453): `iptables-restore --noflush` of the filter table, KUBE-SERVICES (N rules) and the other top-level nat chains, and the changed service's KUBE-SVC/KUBE-SEP chains";
  if (lat.length < plan.length) m.note = `${lat.length} changes, not ${plan.length}: change budget ${o.changeBudgetMs / 1000} s`;
  o.log(`N=${n} ${CP_LABEL[c]}: ${lat.length} changes p50 ${m.change.p50_ms.toFixed(1)} ms p99 ${m.change.p99_ms.toFixed(1)} ms`);
}

export async function runControlplane(o: ControlplaneOptions): Promise<CpMeasurement[]> {
  const results: CpMeasurement[] = [];
  const contestants = o.contestants ?? CP_CONTESTANTS;
  const last = new Map<CpContestant, { n: number; ms: number }>();
  const err = (e: unknown) => (e as Error).message.split('\n').slice(0, 3).join(' ');
  for (const n of o.sizes) {
    const M = endpointsFor(n);
    if (contestants.includes('weir')) {
      const m: CpMeasurement = { contestant: 'weir', services: n, endpointsPerService: M };
      results.push(m);
      pinSelf(String(1 - CPUS.programmer));
      try {
        await runWeir(n, o, m);
      } catch (e) {
        m.error = err(e);
        o.log(`N=${n} weir: FAILED ${m.error}`);
      } finally {
        unpinAll();
      }
    }
    const peers = contestants.filter((c): c is Exclude<CpContestant, 'weir'> => c !== 'weir');
    if (!peers.length) continue;
    const lab = await Lab.create({ name: 'bench-cp-peers' });
    // the peers' commands inherit this process's CPU (no taskset exec inside their timed command)
    pinSelf(String(CPUS.programmer));
    try {
      for (const c of peers) {
        const m: CpMeasurement = { contestant: c, services: n, endpointsPerService: M };
        results.push(m);
        const prev = last.get(c);
        const projected = prev && prev.n >= 1000 ? prev.ms * (n / prev.n) ** 2 : 0;
        if (projected > o.programBudgetMs) {
          m.skipped = `not run: programming ${n} services projected at ${Math.round(projected / 1000)} s from ${(prev!.ms / 1000).toFixed(1)} s at ${prev!.n} (budget ${o.programBudgetMs / 1000} s)`;
          o.log(`N=${n} ${CP_LABEL[c]}: ${m.skipped}`);
          continue;
        }
        const ns = await lab.netns(`cp-${c}`);
        try {
          await runPeer(c, ns, n, o, m);
        } catch (e) {
          m.error = err(e);
          o.log(`N=${n} ${CP_LABEL[c]}: FAILED ${m.error}`);
        } finally {
          if (m.programMs !== undefined) last.set(c, { n, ms: m.programMs });
        }
      }
    } finally {
      unpinAll();
      await lab.destroy();
    }
  }
  return results;
}
