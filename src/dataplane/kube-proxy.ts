// dataplane/kube-proxy: taking over from kube-proxy on this node. Finds what kube-proxy left
// in the current network namespace (KUBE-* iptables chains for both iptables backends and
// both families, the `ip kube-proxy` / `ip6 kube-proxy` nftables tables, a running
// kube-proxy process) and removes exactly that state once weir's own dataplane is
// programmed (docs/kube-proxy.md).
//
// Removal never rebuilds a built-in chain: the jump rules into KUBE-* chains are deleted by
// their exact rule spec (`-D` lines taken from iptables-save), then the KUBE-* chains are
// flushed and deleted, as one `iptables-restore --noflush` input per table, so every other
// rule (and its counters) stays. Established flows that kube-proxy NATed keep their netfilter
// conntrack entries and their translation after the rules are gone.
//
// Nothing here throws past the caller: a missing tool is "not present", a failed command
// is an error string in the result.

import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import type { IpFamily } from '../bpf/ip.js';
import type { Logger } from '../log.js';

export type IptablesBackend = 'nft' | 'legacy';

/**
 * KUBE-* chains that kubelet owns (KEP-3178): other components read KUBE-IPTABLES-HINT to
 * tell which iptables backend the node uses, and kubelet watches its canary. Not kube-proxy's.
 */
export const KUBELET_CHAINS: ReadonlySet<string> = new Set(['KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY']);

export function isKubeProxyChain(name: string): boolean {
  return name.startsWith('KUBE-') && !KUBELET_CHAINS.has(name);
}

/** kube-proxy's chains in one table of one backend and family. */
export interface IptablesTableState {
  backend: IptablesBackend;
  family: IpFamily;
  table: string;
  /** KUBE-* chains (kubelet's excepted), in save order */
  chains: string[];
  /** rules of other chains that jump (-j/-g) to one of them, as iptables-save prints them */
  jumps: Array<{ chain: string; rule: string }>;
}

export interface KubeProxyProcess {
  pid: number;
  comm: string;
  cmdline: string;
}

export interface KubeProxyReport {
  iptables: IptablesTableState[];
  /** nftables tables kube-proxy's nftables mode owns: 'ip kube-proxy', 'ip6 kube-proxy' */
  nftables: string[];
  processes: KubeProxyProcess[];
  /** iptables/nft tools not installed here (their state cannot exist or be seen) */
  missingTools: string[];
  /** commands that failed */
  errors: string[];
}

export interface CleanupResult {
  dryRun: boolean;
  /** the nft table that keeps conntrack and NAT hooks alive for connections kube-proxy set up */
  keeper?: string;
  /** `<backend>/ipv<family>/<table>: N chains, M jumps`, one per table cleaned (or to clean) */
  iptables: Array<{ backend: IptablesBackend; family: IpFamily; table: string; chains: number; jumps: number; input: string }>;
  nftables: string[];
  errors: string[];
}

const NFT_TABLES: ReadonlyArray<{ family: 'ip' | 'ip6'; name: string }> = [
  { family: 'ip', name: 'kube-proxy' },
  { family: 'ip6', name: 'kube-proxy' },
];

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
  /** ENOENT: the tool is not installed */
  missing: boolean;
}

function exec(cmd: string, args: string[], input?: string, timeoutMs = 30_000): Promise<Exec> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 512 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: string | number }) | null;
      if (e && e.code === 'ENOENT') return resolve({ code: null, stdout: '', stderr: '', missing: true });
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : (child.exitCode ?? 1)) : 0, stdout, stderr: stderr || (e ? e.message : ''), missing: false });
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

const firstLine = (s: string) => s.trim().split('\n')[0] ?? '';

function tool(backend: IptablesBackend, family: IpFamily, what: 'save' | 'restore'): string {
  return `${family === 6 ? 'ip6' : 'ip'}tables-${backend}-${what}`;
}

/** Splits an iptables-save rule line into words, keeping "quoted strings" as one word. */
export function splitRule(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1] : m[2]!);
  return out;
}

/** The -j / -g target of a rule, if any. */
function ruleTarget(words: string[]): string | undefined {
  for (let i = 0; i < words.length - 1; i++) if (words[i] === '-j' || words[i] === '-g' || words[i] === '--jump' || words[i] === '--goto') return words[i + 1];
  return undefined;
}

/** kube-proxy's state in one iptables-save output (all tables). Pure. */
export function parseIptablesSave(text: string, backend: IptablesBackend, family: IpFamily): IptablesTableState[] {
  const out: IptablesTableState[] = [];
  let cur: IptablesTableState | undefined;
  const rules: Array<{ chain: string; rule: string; target?: string }> = [];
  const finish = () => {
    if (!cur) return;
    const kube = new Set(cur.chains);
    for (const r of rules) if (r.target && kube.has(r.target) && !kube.has(r.chain)) cur.jumps.push({ chain: r.chain, rule: r.rule });
    if (cur.chains.length || cur.jumps.length) out.push(cur);
    cur = undefined;
    rules.length = 0;
  };
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      finish();
      cur = { backend, family, table: line.slice(1), chains: [], jumps: [] };
    } else if (line === 'COMMIT') finish();
    else if (cur && line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/)[0]!;
      if (isKubeProxyChain(name)) cur.chains.push(name);
    } else if (cur && line.startsWith('-A ')) {
      const words = splitRule(line);
      const target = ruleTarget(words);
      rules.push({ chain: words[1]!, rule: line, ...(target ? { target } : {}) });
    }
  }
  finish();
  return out;
}

/**
 * The `iptables-restore --noflush` input that removes kube-proxy's state from one table:
 * the jump rules by their exact spec (-D), then every KUBE-* chain flushed (a declaration
 * flushes an existing chain under --noflush) and deleted. One COMMIT: all or nothing.
 */
export function cleanupRestoreInput(t: IptablesTableState): string {
  return [
    `*${t.table}`,
    ...t.jumps.map((j) => `-D ${j.rule.slice(3)}`),
    ...t.chains.map((c) => `:${c} - [0:0]`),
    ...t.chains.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ].join('\n');
}

/**
 * Processes named kube-proxy on this node: those of `procRoot`'s PID namespace, the node's
 * when weir runs in a pod with the node's /proc mounted (--host-proc); pids as it numbers them.
 */
export function findKubeProxyProcesses(procRoot = '/proc'): KubeProxyProcess[] {
  const out: KubeProxyProcess[] = [];
  let pids: string[];
  let self: string | undefined;
  try {
    pids = readdirSync(procRoot).filter((n) => /^\d+$/.test(n));
  } catch {
    return out;
  }
  try {
    self = readlinkSync(`${procRoot}/self`); // our own pid as that namespace numbers it
  } catch {
    /* not a proc mount: nothing of it is us */
  }
  for (const p of pids) {
    const pid = Number(p);
    if (p === self) continue;
    try {
      const comm = readFileSync(`${procRoot}/${p}/comm`, 'utf8').trim();
      const argv = readFileSync(`${procRoot}/${p}/cmdline`, 'utf8')
        .split('\0')
        .filter((a) => a.length > 0);
      // comm is cut at 15 characters; argv[0] is what was executed
      if (comm === 'kube-proxy' || (argv[0] !== undefined && basename(argv[0]) === 'kube-proxy')) out.push({ pid, comm, cmdline: argv.join(' ') });
    } catch {
      /* exited while we looked */
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/** What kube-proxy state exists in the current network namespace. Never throws. */
export async function detectKubeProxy(opts: { procRoot?: string } = {}): Promise<KubeProxyReport> {
  const report: KubeProxyReport = { iptables: [], nftables: [], processes: [], missingTools: [], errors: [] };
  const saves = await Promise.all(
    (['nft', 'legacy'] as const).flatMap((backend) =>
      ([4, 6] as const).map(async (family) => {
        const cmd = tool(backend, family, 'save');
        const r = await exec(cmd, []);
        return { backend, family, cmd, r };
      }),
    ),
  );
  for (const { backend, family, cmd, r } of saves) {
    if (r.missing) report.missingTools.push(cmd);
    else if (r.code !== 0) report.errors.push(`${cmd}: exit ${r.code}: ${firstLine(r.stderr)}`);
    else report.iptables.push(...parseIptablesSave(r.stdout, backend, family));
  }
  const nft = await exec('nft', ['-j', 'list', 'tables']);
  if (nft.missing) report.missingTools.push('nft');
  else if (nft.code !== 0) report.errors.push(`nft -j list tables: exit ${nft.code}: ${firstLine(nft.stderr)}`);
  else {
    try {
      const items = (JSON.parse(nft.stdout || '{"nftables":[]}') as { nftables: Array<{ table?: { family: string; name: string } }> }).nftables;
      for (const it of items) {
        const t = it.table;
        if (t && NFT_TABLES.some((k) => k.family === t.family && k.name === t.name)) report.nftables.push(`${t.family} ${t.name}`);
      }
    } catch (e) {
      report.errors.push(`nft -j list tables: unreadable JSON: ${(e as Error).message}`);
    }
  }
  report.processes = findKubeProxyProcesses(opts.procRoot);
  return report;
}

/** true when kube-proxy left rules or tables here. */
export function hasKubeProxyState(r: KubeProxyReport): boolean {
  return r.iptables.length > 0 || r.nftables.length > 0;
}

/** One line naming the state, e.g. `iptables-nft ipv4 nat: 12 chains, 3 jumps; nft ip kube-proxy`. */
export function describeState(r: Pick<KubeProxyReport, 'iptables' | 'nftables'>): string {
  const parts = r.iptables.map((t) => `iptables-${t.backend} ipv${t.family} ${t.table}: ${t.chains.length} chains, ${t.jumps.length} jumps`);
  for (const n of r.nftables) parts.push(`nft ${n}`);
  return parts.join('; ') || 'none';
}

/**
 * Connections kube-proxy NATed before the takeover live on in the kernel's conntrack, but
 * a conntrack binding is only applied while something in the netns holds conntrack and
 * the NAT hooks: kube-proxy's own rules did (DNAT targets, `-m conntrack` matches, its nft
 * nat chains). Removing them all can turn both off, and those connections then stall
 * (seen in the lab: a flow stopped the moment both the nat and filter KUBE-* chains were
 * gone). This table keeps both on: empty nat base chains register the NAT hooks, and a
 * `ct state` rule holds conntrack. It filters nothing (counters only).
 */
export const CONNTRACK_KEEPER_TABLE = 'weir-conntrack-keeper';
export function conntrackKeeperInput(family: 'ip' | 'ip6'): string {
  const t = `${family} ${CONNTRACK_KEEPER_TABLE}`;
  return [
    `add table ${t}`,
    `add chain ${t} track { type filter hook prerouting priority -150 ; policy accept ; }`,
    `add chain ${t} track-out { type filter hook output priority -150 ; policy accept ; }`,
    `add chain ${t} nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; }`,
    `add chain ${t} nat-input { type nat hook input priority 100 ; policy accept ; }`,
    `add chain ${t} nat-output { type nat hook output priority -100 ; policy accept ; }`,
    `add chain ${t} nat-postrouting { type nat hook postrouting priority 100 ; policy accept ; }`,
    `flush chain ${t} track`,
    `flush chain ${t} track-out`,
    `add rule ${t} track ct state invalid counter`,
    `add rule ${t} track-out ct state invalid counter`,
    '',
  ].join('\n');
}

/**
 * Removes kube-proxy's state found in `report`: per table, one atomic restore; then the
 * nftables tables. Before that, the conntrack keeper table (above) so the connections
 * kube-proxy set up keep their translation. Idempotent (state already gone is not an
 * error); never throws.
 */
export async function cleanupKubeProxy(report: KubeProxyReport, opts: { dryRun?: boolean } = {}): Promise<CleanupResult> {
  const dryRun = opts.dryRun ?? false;
  const res: CleanupResult = { dryRun, iptables: [], nftables: [], errors: [] };
  if (!dryRun && hasKubeProxyState(report)) {
    const families = new Set<'ip' | 'ip6'>(['ip']);
    for (const t of report.iptables) if (t.family === 6) families.add('ip6');
    for (const n of report.nftables) if (n.startsWith('ip6 ')) families.add('ip6');
    for (const f of families) {
      const r = await exec('nft', ['-f', '-'], conntrackKeeperInput(f));
      if (r.code === 0) res.keeper = `${[...families].join('+')} ${CONNTRACK_KEEPER_TABLE}`;
      else res.errors.push(`nft ${f} ${CONNTRACK_KEEPER_TABLE}: exit ${r.code}${r.missing ? ' (nft not installed)' : ''}: ${firstLine(r.stderr)}`);
    }
  }
  for (const t of report.iptables) {
    const input = cleanupRestoreInput(t);
    const entry = { backend: t.backend, family: t.family, table: t.table, chains: t.chains.length, jumps: t.jumps.length, input };
    if (dryRun) {
      res.iptables.push(entry);
      continue;
    }
    const cmd = tool(t.backend, t.family, 'restore');
    const r = await exec(cmd, ['--noflush', '-w', '5'], input);
    if (r.missing) res.errors.push(`${cmd}: not installed`);
    else if (r.code !== 0) res.errors.push(`${cmd} (${t.table}): exit ${r.code}: ${firstLine(r.stderr)}`);
    else res.iptables.push(entry);
  }
  for (const n of report.nftables) {
    if (dryRun) {
      res.nftables.push(n);
      continue;
    }
    const [family, name] = n.split(' ') as [string, string];
    const r = await exec('nft', ['delete', 'table', family, name]);
    // gone already (ENOENT from the kernel): idempotent
    if (r.code === 0 || /No such file or directory/.test(r.stderr)) res.nftables.push(n);
    else res.errors.push(`nft delete table ${n}: exit ${r.code}: ${firstLine(r.stderr)}`);
  }
  return res;
}

export interface TakeoverOptions {
  /** remove kube-proxy's state (the default); off: leave it and warn */
  cleanup: boolean;
  log: Logger;
  /** the node's /proc to scan for a kube-proxy process (--host-proc) */
  procRoot?: string;
}

export interface TakeoverResult {
  report: KubeProxyReport;
  /** set when cleanup ran */
  cleanup?: CleanupResult;
}

/**
 * The daemon's takeover step, called once weir's dataplane is programmed: detect, then
 * remove (cleanup on) or warn naming what is left (cleanup off). Warns whenever a
 * kube-proxy process still runs: it rewrites its rules at its next sync. Never throws.
 */
export async function takeOverKubeProxy(opts: TakeoverOptions): Promise<TakeoverResult> {
  const { log } = opts;
  let report: KubeProxyReport;
  try {
    report = await detectKubeProxy(opts.procRoot ? { procRoot: opts.procRoot } : {});
  } catch (e) {
    log.warn('kube-proxy-detect-failed', { error: (e as Error).message });
    return { report: { iptables: [], nftables: [], processes: [], missingTools: [], errors: [(e as Error).message] } };
  }
  for (const err of report.errors) log.warn('kube-proxy-detect-error', { error: err });
  if (report.processes.length)
    log.warn('kube-proxy-running', {
      pids: report.processes.map((p) => p.pid).join(','),
      message: 'kube-proxy is still running on this node and will restore its rules; remove its DaemonSet (or stop it) when weir replaces it',
    });
  if (!hasKubeProxyState(report)) {
    log.info('kube-proxy-state', { found: 'none' });
    return { report };
  }
  if (!opts.cleanup) {
    const chains = [...new Set(report.iptables.flatMap((t) => t.chains))];
    log.warn('kube-proxy-state-left', {
      cleanup: 'off',
      state: describeState(report),
      // named, so an operator can grep for them; a large cluster's thousands are cut short
      chains: chains.length > 40 ? `${chains.slice(0, 40).join(',')},...(${chains.length - 40} more)` : chains.join(','),
      nftables: report.nftables.join(',') || undefined,
    });
    return { report };
  }
  const cleanup = await cleanupKubeProxy(report);
  log.info('kube-proxy-cleanup', {
    removed: describeState({
      iptables: report.iptables.filter((t) => cleanup.iptables.some((c) => c.backend === t.backend && c.family === t.family && c.table === t.table)),
      nftables: cleanup.nftables,
    }),
    errors: cleanup.errors.length,
  });
  for (const err of cleanup.errors) log.warn('kube-proxy-cleanup-error', { error: err });
  return { report, cleanup };
}
