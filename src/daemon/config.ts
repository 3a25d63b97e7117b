// daemon/config: the daemon's settings and the checks that turn a bad flag into one
// readable error before anything is loaded. No I/O beyond reading /proc/mounts and stat.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { BpfRootResolution } from '../dataplane/bpffs.js';
import type { SockLbMode } from '../dataplane/loader.js';
import type { ExternalServiceMode } from '../dataplane/hooks.js';
import type { TunnelUnderlay } from '../dataplane/node-maps.js';
import { parseCidr } from '../bpf/ip.js';
import { tableSizeProblem } from '../dataplane/maglev.js';
import type { LbAlgorithm } from '../model/service-types.js';
import type { BootstrapConfig } from '../sources/kube-bootstrap.js';
import type { LogFormat, LogLevel } from '../log.js';
import type { MapSizes } from '../dataplane/map-sizes.js';
import type { FailsafeEntry } from '../model/host-policy/types.js';
import { parseFailsafes } from './failsafe-ports.js';

/** Where Services and EndpointSlices come from. */
export type SourceConfig =
  | { kind: 'manifests'; dir: string }
  /** the API server: a kubeconfig file, or the pod's service account when undefined */
  | { kind: 'kube'; kubeconfig?: string; outageBoundMs: number };

export interface DaemonConfig {
  nodeName: string;
  source: SourceConfig;
  /** the synthetic `kubernetes` Service programmed before the API answers (API source only) */
  bootstrap?: BootstrapConfig;
  /** /metrics, /healthz, /readyz listen address (host:port, [v6]:port, :port); null = off */
  metricsAddress: string | null;
  /** kube-proxy's node health server (/healthz, /livez as kube-proxy answers them); null = off */
  healthzAddress: string | null;
  instance: string;
  bpfRoot: string;
  /** how the default --bpf-root was found (and whether weir mounted it); unset when the flag was given */
  bpfRootFound?: BpfRootResolution;
  /** cgroup2 directory the socket LB is attached to (null with --connect-time-lb off) */
  cgroup: string | null;
  /** --host-proc: the node's /proc (its PID namespace), where pods' processes are found */
  hostProc: string;
  /** host interfaces by name; [] = discover (see interfaces.ts) */
  hostInterfaces: string[];
  /** CIDRs (or 'primary'); [] = every node address */
  nodePortAddresses: string[];
  sockLb: SockLbMode;
  /** count new connections per service backend in BPF and export them per service port (--service-stats, default on) */
  serviceStats: boolean;
  /** --service-stats backend: also export a series per backend (thousands per node on a large cluster) */
  serviceStatsBackends?: boolean;
  /** --lb-algorithm: backend choice of services without the service.weir.dev/lb-algorithm annotation */
  lbAlgorithm: LbAlgorithm;
  /** --maglev-table-size: M of every Maglev table (a prime; the same on every node) */
  maglevTableSize: number;
  /** --tunnel-port: VXLAN UDP port to and from other nodes (the same on every node) */
  tunnelPort: number;
  /** --external-service-mode: how flows through the tunnel return */
  externalServiceMode: ExternalServiceMode;
  /** --dsr-optout-cidrs: clients (IPv4 and IPv6 prefixes, canonical) that keep tunnel mode under dsr */
  dsrOptoutCidrs: string[];
  /** --tunnel-underlay: the outer header IPv6 flows through the tunnel prefer (node-maps.ts); default ipv4 */
  tunnelUnderlay?: TunnelUnderlay;
  /** --network-policy: enforce NetworkPolicy in BPF (default on; implies conntrack of every flow) */
  networkPolicy: boolean;
  /** --policy-stats: count allowed/denied flows per policy in BPF and export them (default on) */
  policyStats: boolean;
  /** --pod-source-check: drop a pod's packets from an address not its own (default on) */
  podSourceCheck?: boolean;
  /** --monitor: whether `weir monitor` may make the programs emit events (default on) */
  monitor?: boolean;
  /** --host-policy: enforce Calico GlobalNetworkPolicy / HostEndpoint on the host interfaces (default on) */
  hostPolicy?: boolean;
  /** --auto-host-endpoints: the node's automatic `<node>-auto-hep` (interface `*`, default allow) */
  autoHostEndpoints?: boolean;
  /** --failsafe-inbound-host-ports / --failsafe-outbound-host-ports, parsed (the metrics port is added by the daemon) */
  failsafes?: FailsafeEntry[];
  /** --xdp-mode: how the XDP prefilter attaches (auto: native, else generic, else TC does its work) */
  xdpMode?: XdpMode;
  resyncIntervalMs: number;
  ctGcIntervalMs: number;
  /** service.kubernetes.io/service-proxy-name this instance answers to */
  proxyName?: string;
  logLevel: LogLevel;
  /** --log-format: logfmt (default) or JSON lines */
  logFormat: LogFormat;
  /** --ct-map-size, --frontend-map-size, ... given: max_entries of those maps, both families;
   *  the others keep a pinned map's size or get the default (map-sizes.ts) */
  mapSizes: Partial<MapSizes>;
  /** remove kube-proxy's iptables/nftables state once weir is programmed (default on) */
  kubeProxyCleanup: boolean;
  /** where the BPF objects are (default build/bpf of the package) */
  objectDir?: string;
}

export type XdpMode = 'auto' | 'native' | 'generic' | 'off';

export function parseXdpMode(text: string): XdpMode {
  if (text === 'auto' || text === 'native' || text === 'generic' || text === 'off') return text;
  throw new Error(`bad --xdp-mode ${JSON.stringify(text)}: use auto, native, generic or off`);
}

/** Both failsafe flags; throws naming the flag and every bad entry. */
export function parseFailsafeFlags(inbound: string, outbound: string): FailsafeEntry[] {
  const out: FailsafeEntry[] = [];
  for (const [flag, text, dir] of [
    ['--failsafe-inbound-host-ports', inbound, 'in'],
    ['--failsafe-outbound-host-ports', outbound, 'out'],
  ] as const) {
    const r = parseFailsafes(text, dir);
    if (r.errors.length) throw new Error(`bad ${flag}: ${r.errors.join('; ')}`);
    out.push(...r.entries);
  }
  return out;
}

export function parseLbAlgorithm(text: string): LbAlgorithm {
  if (text === 'random' || text === 'maglev') return text;
  throw new Error(`bad --lb-algorithm ${JSON.stringify(text)}: use random or maglev`);
}

/** --maglev-table-size: a prime in 251..16381 (weir_maglev4's array length). */
export function parseMaglevTableSize(text: string): number {
  const m = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  const problem = tableSizeProblem(m);
  if (problem) throw new Error(`bad --maglev-table-size ${JSON.stringify(text)}: ${problem} (e.g. 251, 1021, 4093, 16381)`);
  return m;
}

/** --dsr-optout-cidrs: comma-separated CIDRs (a bare address is a /32 or /128), each into its
 *  family's map (dsr-optout.ts). Throws naming the bad entry. */
export function parseDsrOptoutCidrs(text: string): string[] {
  const out: string[] = [];
  for (const raw of text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)) {
    const withLen = raw.includes('/') ? raw : `${raw}/${raw.includes(':') ? 128 : 32}`;
    const p = parseCidr(withLen);
    if (!p) throw new Error(`bad --dsr-optout-cidrs entry ${JSON.stringify(raw)}: a CIDR (198.18.0.0/24) or an address`);
    const c = `${p.address}/${p.prefix}`;
    if (!out.includes(c)) out.push(c);
  }
  return out;
}

/** --tunnel-port: a UDP port, 1..65535. */
export function parseTunnelPort(text: string): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`bad --tunnel-port ${JSON.stringify(text)}: a UDP port, 1..65535 (default 4789)`);
  return n;
}

/** '30s', '5m', '250ms', '1h', or a bare number of seconds, as milliseconds; `flag` names it in the error. */
export function parseDuration(text: string, flag?: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new Error(`bad ${flag ?? 'duration'} ${JSON.stringify(text)}: use e.g. 500ms, 30s, 5m, 1h`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!;
  if (!Number.isFinite(ms)) throw new Error(`bad duration ${JSON.stringify(text)}`);
  return Math.round(ms);
}

/** `check()`, its error naming `flag` (so config-sources.ts can say where the value came from). */
export function checkFlag<T>(flag: string, check: () => T): T {
  try {
    return check();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw msg.includes(flag) ? e : new Error(`bad ${flag}: ${msg}`, { cause: e });
  }
}

/** A comma- or space-separated list, empties dropped. */
export function parseList(text: string | undefined): string[] {
  return (text ?? '')
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** The first cgroup2 mount point in /proc/mounts. */
export function cgroup2Root(mounts = readFileSync('/proc/mounts', 'utf8')): string | undefined {
  for (const line of mounts.split('\n')) {
    const [, point, type] = line.split(' ');
    if (type === 'cgroup2' && point) return point.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}

/** Where the daemon mounts cgroup2 itself when none is visible (see resolveCgroupDir). */
export const OWN_CGROUP2_MOUNT = '/run/weir/cgroup2';

/**
 * The cgroup2 directory for --cgroup. `ip netns exec` remounts /sys in a private mount
 * namespace, which hides a cgroup2 mount under /sys/fs/cgroup; then the daemon mounts the
 * hierarchy itself at OWN_CGROUP2_MOUNT (a mount in that private namespace only; the
 * cgroup links it attaches belong to the cgroup, not to the mount). A relative --cgroup is
 * resolved against the cgroup2 root, so the same flag works with and without that remount.
 */
export function resolveCgroupDir(arg: string | undefined, mounts = readFileSync('/proc/mounts', 'utf8')): string {
  if (arg && isAbsolute(arg)) return arg;
  let root = cgroup2Root(mounts);
  if (!root) {
    mkdirSync(OWN_CGROUP2_MOUNT, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'cgroup2', 'none', OWN_CGROUP2_MOUNT], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new Error(
        `no cgroup2 mount in /proc/mounts and mounting one at ${OWN_CGROUP2_MOUNT} failed (${(e as Error).message.split('\n')[0]}); pass --cgroup DIR or --connect-time-lb off`,
        { cause: e },
      );
    }
    root = OWN_CGROUP2_MOUNT;
  }
  return arg ? join(root, arg) : root;
}

/** Throws a readable error unless `dir` is a cgroup2 directory. */
export function checkCgroupDir(dir: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--cgroup ${dir} is not a directory`);
  if (!existsSync(`${dir}/cgroup.procs`) || !existsSync(`${dir}/cgroup.controllers`))
    throw new Error(`--cgroup ${dir} is not a cgroup2 directory (no cgroup.procs / cgroup.controllers)`);
}

/** Throws a readable error unless `dir` is a proc mount (it has `self`). */
export function checkHostProc(dir: string): string {
  if (!existsSync(join(dir, 'self', 'ns')))
    throw new Error(`--host-proc ${dir} is not a /proc mount (no ${join(dir, 'self', 'ns')}): mount the node's /proc there`);
  return dir;
}

export function parseSockLbMode(text: string): SockLbMode {
  if (text === 'on' || text === 'host-only' || text === 'off') return text;
  throw new Error(`bad --connect-time-lb ${JSON.stringify(text)}: use on, host-only or off`);
}
