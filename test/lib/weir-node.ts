// A lab helper: `bin/weir daemon` running inside a lab node's network namespace, on a
// manifests directory of its own, pinning into the lab's private bpffs and attaching the
// socket LB to a lab child cgroup. Writes/replaces/deletes manifest files, waits for logfmt
// events, kills (-9) and restarts the daemon, and builds Service / EndpointSlice objects.
// Processes are stopped and pins vanish with the lab (cleanup runs even on failure).

import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BpfMap } from '../../src/bpf/index.js';
import { counterTotals, readCounters } from '../../src/dataplane/counters.js';
import { findCgroup2Mount, type Cgroup, type Lab, type LabNode, type ManagedProcess, type Netns } from './lab.js';
import { runSync, sleep, spawnManaged } from './proc.js';
import { binWeir, repoRoot } from './paths.js';
import type { FlowResult, SpreadResult } from './svc-client.js';

export type { FlowResult, SpreadResult } from './svc-client.js';

export const SVC_CLIENT_JS = join(repoRoot, 'dist', 'test', 'lib', 'svc-client.js');

/** The daemon command, as an operator runs it; `releaseDir`: another release's build tree. */
function daemonArgv(releaseDir?: string): [string, string[]] {
  return [releaseDir ? join(releaseDir, 'bin', 'weir') : binWeir, ['daemon']];
}

/** One parsed logfmt line. */
export type LogLine = Record<string, string>;

export function parseLogfmt(line: string): LogLine | undefined {
  const out: LogLine = {};
  const re = /(\w[\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
  return out.event ? out : undefined;
}

export interface WeirNodeOptions {
  /** --connect-time-lb (default on) */
  connectTimeLb?: 'on' | 'host-only' | 'off';
  /** the socket-LB cgroup (default: a new lab cgroup `weir-<node>`) */
  cgroup?: Cgroup;
  instance?: string;
  extraArgs?: string[];
  /** --resync-interval (default: weir's own, 60 s). Only drift tests shorten it: a frequent
   *  resync quietly repairs what a missed incremental sync got wrong */
  resyncInterval?: string;
  logLevel?: 'debug' | 'info' | 'warn';
  /** how the daemon enters the node: nsenter --net (default), or `ip netns exec`, which
   *  also remounts /sys and so hides the cgroup2 and any bpffs mounted under it */
  launcher?: 'nsenter' | 'ip-netns-exec';
  /** read the cluster from an API server through this kubeconfig instead of the manifests dir */
  kubeconfig?: string;
  /** --metrics-address (default off, so that lab nodes do not all claim :9745) */
  metricsAddress?: string;
  /** extra environment of the daemon (e.g. the API server bootstrap variables) */
  env?: Record<string, string>;
  /** run the daemon itself inside its socket-LB cgroup, as a hostNetwork pod sits under the
   *  cgroup2 root where the socket LB is attached: its own connects are load-balanced */
  daemonInCgroup?: boolean;
  /** run another release's `bin/weir` (a tree scripts/build-release.sh built); default: this one */
  releaseDir?: string;
  /** a command the daemon's command line is appended to (inside the node's netns), e.g. one
   *  that gives it namespaces of its own as a container runtime does */
  wrapper?: string[];
}

export class WeirNode {
  private proc: ManagedProcess | undefined;
  /** lines of every run so far (each restart appends) */
  private readonly past: string[] = [];

  private constructor(
    readonly lab: Lab,
    readonly node: LabNode,
    readonly cgroup: Cgroup,
    readonly manifests: string,
    private opts: WeirNodeOptions,
  ) {}

  /** GET http://<metrics address><path> from inside the node (the daemon's netns). */
  async http(path: string, opts: { timeoutMs?: number } = {}): Promise<{ status: number; body: string }> {
    const addr = this.opts.metricsAddress;
    if (!addr || addr === 'off') throw new Error('no --metrics-address configured');
    const hostPort = addr.startsWith(':') ? `127.0.0.1${addr}` : addr;
    const r = await this.ns.exec(
      'curl',
      ['-sS', '-m', String((opts.timeoutMs ?? 3000) / 1000), '-o', '-', '-w', '\n%{http_code}', `http://${hostPort}${path}`],
      { check: false, timeoutMs: (opts.timeoutMs ?? 3000) + 2000 },
    );
    const i = r.stdout.lastIndexOf('\n');
    const status = Number(r.stdout.slice(i + 1));
    return { status: Number.isFinite(status) ? status : 0, body: r.stdout.slice(0, Math.max(0, i)) };
  }

  /** Changes flags for the next start(). */
  configure(opts: Partial<WeirNodeOptions>): void {
    this.opts = { ...this.opts, ...opts };
  }

  static async create(lab: Lab, node: LabNode, opts: WeirNodeOptions = {}): Promise<WeirNode> {
    const cgroup = opts.cgroup ?? (await lab.cgroup(`weir-${node.name}`));
    const dir = join(lab.dir, `manifests-${node.name}`);
    mkdirSync(dir, { recursive: true });
    return new WeirNode(lab, node, cgroup, dir, opts);
  }

  get ns(): Netns {
    return this.node.ns;
  }
  get instance(): string {
    return this.opts.instance ?? this.node.name;
  }
  get pinDir(): string {
    return join(this.lab.bpffs, 'weir', this.instance);
  }
  get process(): ManagedProcess | undefined {
    return this.proc;
  }

  args(): string[] {
    const o = this.opts;
    return [
      '--node-name',
      this.node.name,
      ...(o.kubeconfig ? ['--kubeconfig', o.kubeconfig] : ['--manifests', this.manifests]),
      '--metrics-address',
      o.metricsAddress ?? 'off',
      '--instance',
      this.instance,
      '--bpf-root',
      this.lab.bpffs,
      // relative to the cgroup2 root: valid whichever mount namespace the daemon sees
      '--cgroup',
      relative(findCgroup2Mount()!, this.cgroup.path),
      '--connect-time-lb',
      o.connectTimeLb ?? 'on',
      ...(o.resyncInterval ? ['--resync-interval', o.resyncInterval] : []),
      '--log-level',
      o.logLevel ?? 'debug',
      ...(o.extraArgs ?? []),
    ];
  }

  /** Starts the daemon and waits for `event=ready`; returns the ready line. */
  async start(timeoutMs = 15_000): Promise<LogLine> {
    if (this.proc?.running) throw new Error(`weir on ${this.node.name} is already running`);
    if (this.proc) this.past.push(...this.runLines());
    const [bin, binArgs] = daemonArgv(this.opts.releaseDir);
    const [cmd, pre] = this.opts.wrapper?.length ? [this.opts.wrapper[0]!, [...this.opts.wrapper.slice(1), bin, ...binArgs]] : [bin, binArgs];
    const label = `weir daemon [${this.node.name}]`;
    this.proc =
      this.opts.launcher === 'ip-netns-exec'
        ? spawnManaged('ip', ['netns', 'exec', this.ns.name, cmd, ...pre, ...this.args()], { label: `${label} via ip netns exec`, killAfterMs: 3000 })
        : this.ns.spawn(cmd, [...pre, ...this.args()], {
            label,
            killAfterMs: 3000,
            ...(this.opts.env ? { env: this.opts.env } : {}),
            ...(this.opts.daemonInCgroup ? { cgroup: this.cgroup } : {}),
          });
    return this.waitFor('ready', {}, timeoutMs);
  }

  /** Log lines of the current run. */
  runLines(): string[] {
    return (this.proc?.stdout ?? '').split('\n').filter((l) => l.length > 0);
  }

  /** Parsed events of the current run, optionally only `event`. */
  events(event?: string): LogLine[] {
    return this.runLines()
      .map(parseLogfmt)
      .filter((l): l is LogLine => l !== undefined && (event === undefined || l.event === event));
  }

  /** How many events of the current run there are now (a mark for waitFor's `after`). */
  mark(): number {
    return this.events().length;
  }

  /** Waits for an event of the current run whose fields include `fields`, after the first `after` events. */
  async waitFor(event: string, fields: Record<string, string | number> = {}, timeoutMs = 10_000, after = 0): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events()
        .slice(after)
        .find((l) => l.event === event && Object.entries(fields).every(([k, v]) => l[k] === String(v)));
      if (hit) return hit;
      const p = this.proc;
      if (!p || !p.running)
        throw (p ?? { failure: (s: string) => new Error(s) }).failure(`weir exited before logging event=${event} ${JSON.stringify(fields)}`);
      if (Date.now() > deadline) throw p.failure(`no event=${event} ${JSON.stringify(fields)} within ${timeoutMs} ms`);
      await sleep(25);
    }
  }

  /** kill -9: nothing of weir's shutdown runs. */
  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    p.signalGroup('SIGKILL');
    await p.exited;
  }

  /** SIGTERM; returns the exit status. */
  async terminate(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const p = this.proc;
    if (!p) throw new Error('not started');
    p.signalGroup('SIGTERM');
    const t = setTimeout(() => p.signalGroup('SIGKILL'), 5000);
    const exit = await p.exited;
    clearTimeout(t);
    return exit;
  }

  /** Writes a manifest file atomically (rename): objects as YAML documents (JSON text,
   *  `---` between them: name the file .yaml), or text as given. */
  writeManifest(name: string, content: string | object[]): void {
    if (typeof content !== 'string' && content.length > 1 && name.endsWith('.json')) throw new Error(`${name}: several objects need a .yaml file`);
    const text = typeof content === 'string' ? content : content.map((o) => JSON.stringify(o, null, 1)).join('\n---\n');
    const tmp = join(this.manifests, `.${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(this.manifests, name));
  }

  removeManifest(name: string): void {
    rmSync(join(this.manifests, name), { force: true });
  }

  /** Writes a manifest and waits for the daemon's sync of it (event=sync reason=change). */
  async apply(name: string, content: string | object[], timeoutMs = 5000): Promise<LogLine> {
    const m = this.mark();
    this.writeManifest(name, content);
    return this.waitFor('sync', { reason: 'change' }, timeoutMs, m);
  }

  /** Many new connections from `ns` to host:port (svc-client spread). */
  async spread(
    ns: Netns,
    host: string,
    port: number,
    opts: { proto?: 'tcp' | 'udp'; count?: number; concurrency?: number; cgroup?: Cgroup } = {},
  ): Promise<SpreadResult> {
    const count = opts.count ?? 100;
    const args = [
      SVC_CLIENT_JS,
      'spread',
      '--proto',
      opts.proto ?? 'tcp',
      '--host',
      host,
      '--port',
      String(port),
      '--count',
      String(count),
      '--concurrency',
      String(opts.concurrency ?? 16),
    ];
    const r = await ns.exec(process.execPath, args, { timeoutMs: 60_000, ...(opts.cgroup ? { cgroup: opts.cgroup } : {}) });
    return JSON.parse(r.stdout) as SpreadResult;
  }

  /** One long-lived flow from `ns`, started now; await the result. `seconds: 0` runs it until
   *  stop(), so that it spans the test's event however slow the machine is. */
  flow(ns: Netns, host: string, port: number, opts: { proto?: 'tcp' | 'udp'; seconds?: number; interval?: number; cgroup?: Cgroup } = {}): Flow {
    const seconds = opts.seconds ?? 3;
    const args = [SVC_CLIENT_JS, 'flow', '--proto', opts.proto ?? 'tcp', '--host', host, '--port', String(port)];
    args.push('--seconds', String(seconds), '--interval', String(opts.interval ?? 50));
    const proc = ns.spawn(process.execPath, args, { label: `svc-client flow ${host}:${port}`, ...(opts.cgroup ? { cgroup: opts.cgroup } : {}) });
    const result = proc.exited.then((e) => {
      if (e.code !== 0) throw proc.failure(`exit ${JSON.stringify(e)}`);
      return JSON.parse(proc.stdout.trim().split('\n').at(-1)!) as FlowResult;
    });
    result.catch(() => undefined); // awaited by the test; never an unhandled rejection meanwhile
    const lines = () => proc.stdout.split('\n');
    const replies = () => lines().filter((l) => l.startsWith('reply ')).length;
    return {
      proc,
      result,
      replies,
      backends: () =>
        lines()
          .filter((l) => l.startsWith('reply '))
          .map((l) => l.split(' ')[2]!),
      async waitLine(re: RegExp, timeoutMs = 10_000): Promise<string> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const hit = lines().find((l) => re.test(l));
          if (hit) return hit;
          if (!proc.running) throw proc.failure(`flow ended without a line matching ${re}`);
          if (Date.now() > deadline) throw proc.failure(`no line matching ${re} within ${timeoutMs} ms`);
          await sleep(20);
        }
      },
      async waitReplies(n: number, timeoutMs = 10_000): Promise<void> {
        const deadline = Date.now() + timeoutMs;
        while (replies() < n) {
          if (!proc.running) throw proc.failure(`flow ended with ${replies()} of ${n} replies`);
          if (Date.now() > deadline) throw proc.failure(`only ${replies()} of ${n} replies within ${timeoutMs} ms`);
          await sleep(20);
        }
      },
      async connectedBackend(): Promise<string> {
        await this.waitReplies(5);
        const all = this.backends();
        const used = all[0]!;
        assert.ok(
          all.every((b) => b === used),
          `a connected socket talks to one backend: ${all.join(',')}`,
        );
        return used;
      },
      async stop(): Promise<FlowResult> {
        if (seconds === 0 && proc.running) proc.signalGroup('SIGUSR2');
        return result;
      },
    };
  }

  /** weir_counters now, {hook: {reason: packets}} (non-zero slots), read from the pins. */
  counters(): Record<string, Record<string, number>> {
    const m = BpfMap.openPinned(join(this.pinDir, 'weir_counters'));
    try {
      return counterTotals(readCounters(m));
    } finally {
      m.close();
    }
  }

  /** `weir ARGS -o json` as an operator runs it on this node (inside its netns, on its pins),
   *  parsed; a non-zero exit throws with weir's stderr. */
  cli<T = unknown>(...args: string[]): T {
    const r = runSync('nsenter', [`--net=${this.ns.path}`, binWeir, ...args, '--pin-dir', this.pinDir, '-o', 'json'], { check: false });
    if (r.code !== 0) throw new Error(`weir ${args.join(' ')} on ${this.node.name}: exit ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** One counter now (0 when the slot is zero), e.g. counter('sock', 'sock_lb_translated'). */
  counter(hook: string, reason: string): number {
    return this.counters()[hook]?.[reason] ?? 0;
  }

  /** One reason summed over every hook (the IPv4 and IPv6 programs of a position count in
   *  the same hook slot or in their own; a test about the family need not care which) */
  reasonTotal(reason: string): number {
    return Object.values(this.counters()).reduce((n, byReason) => n + (byReason[reason] ?? 0), 0);
  }

  /** Entries the periodic resyncs of every run so far found wrong and rewrote (weir logs
   *  `event=resync repairs=N`): a missed incremental sync shows here, nowhere else. */
  repairs(): number {
    const lines = [...this.past, ...this.runLines()].map(parseLogfmt);
    return lines.reduce((n, l) => n + (l?.event === 'resync' ? Number(l.repairs ?? 0) : 0), 0);
  }
}

/** A running svc-client flow (WeirNode.flow). */
export interface Flow {
  proc: ManagedProcess;
  result: Promise<FlowResult>;
  /** replies so far (until-stopped flows only) */
  replies(): number;
  /** the backend of each reply so far, in order (until-stopped flows only) */
  backends(): string[];
  /** waits for an output line (until-stopped flows print `reply N backend` and `error MESSAGE`) */
  waitLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** waits until `n` replies in all have come back */
  waitReplies(n: number, timeoutMs?: number): Promise<void>;
  /** a connected socket's flow (UDP through the socket LB): waits for 5 replies, checks they all
   *  came from one backend, and returns it */
  connectedBackend(): Promise<string>;
  /** ends an until-stopped flow (SIGUSR2) and returns its result */
  stop(): Promise<FlowResult>;
}

// ---- manifest builders -------------------------------------------------------------

export interface PortSpec {
  name?: string;
  port: number;
  targetPort?: number;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  nodePort?: number;
}

export type IpFamilyName = 'IPv4' | 'IPv6';

/** The family of an address as the API names it. */
export const familyOf = (ip: string): IpFamilyName => (ip.includes(':') ? 'IPv6' : 'IPv4');

export interface ServiceSpec {
  name: string;
  namespace?: string;
  /** one ClusterIP, or the clusterIPs of a dual-stack Service in ipFamilies order */
  clusterIP: string | readonly string[];
  /** default: the families of the ClusterIPs, in their order */
  ipFamilies?: IpFamilyName[];
  /** default: SingleStack for one ClusterIP, RequireDualStack for two */
  ipFamilyPolicy?: 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
  ports: PortSpec[];
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  externalIPs?: string[];
  affinityTimeout?: number;
  externalTrafficPolicy?: 'Cluster' | 'Local';
}

/** A Service as the API server shows it: clusterIPs with ipFamilies and ipFamilyPolicy filled in. */
export function service(s: ServiceSpec): object {
  const clusterIPs = typeof s.clusterIP === 'string' ? [s.clusterIP] : [...s.clusterIP];
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace ?? 'default' },
    spec: {
      type: s.type ?? 'ClusterIP',
      clusterIP: clusterIPs[0],
      clusterIPs,
      ipFamilies: s.ipFamilies ?? clusterIPs.map(familyOf),
      ipFamilyPolicy: s.ipFamilyPolicy ?? (clusterIPs.length > 1 ? 'RequireDualStack' : 'SingleStack'),
      ports: s.ports.map((p) => ({
        name: p.name ?? `p${p.port}`,
        port: p.port,
        protocol: p.protocol ?? 'TCP',
        targetPort: p.targetPort ?? p.port,
        ...(p.nodePort ? { nodePort: p.nodePort } : {}),
      })),
      ...(s.externalIPs ? { externalIPs: s.externalIPs } : {}),
      ...(s.externalTrafficPolicy ? { externalTrafficPolicy: s.externalTrafficPolicy } : {}),
      ...(s.affinityTimeout ? { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: s.affinityTimeout } } } : {}),
    },
  };
}

export interface EndpointSpec {
  ip: string;
  node: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

/** An EndpointSlice; addressType is the endpoints' family (IPv4 when there is none) unless given. */
export function endpointSlice(s: {
  name: string;
  service: string;
  namespace?: string;
  addressType?: IpFamilyName;
  ports: PortSpec[];
  endpoints: EndpointSpec[];
}): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: s.name, namespace: s.namespace ?? 'default', labels: { 'kubernetes.io/service-name': s.service } },
    addressType: s.addressType ?? (s.endpoints[0] ? familyOf(s.endpoints[0].ip) : 'IPv4'),
    ports: s.ports.map((p) => ({ name: p.name ?? `p${p.port}`, port: p.targetPort ?? p.port, protocol: p.protocol ?? 'TCP' })),
    endpoints: s.endpoints.map((e) => ({
      addresses: [e.ip],
      nodeName: e.node,
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
    })),
  };
}

export interface NodeSpec {
  name: string;
  /** status.addresses InternalIP(s), in order (the first of each family is the node's) */
  internalIP?: string | string[];
  podCIDRs?: string[];
  /** the topology.kubernetes.io/zone label */
  zone?: string;
}

/** A Node object as the API shows it: InternalIP addresses, spec.podCIDRs (and podCIDR), the zone label. */
export function node(s: NodeSpec): object {
  const ips = s.internalIP === undefined ? [] : Array.isArray(s.internalIP) ? s.internalIP : [s.internalIP];
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: s.name, labels: { 'kubernetes.io/hostname': s.name, ...(s.zone ? { 'topology.kubernetes.io/zone': s.zone } : {}) } },
    spec: s.podCIDRs?.length ? { podCIDR: s.podCIDRs[0], podCIDRs: s.podCIDRs } : {},
    status: { addresses: [...ips.map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: s.name }] },
  };
}

/** A Namespace object; the API server's own `kubernetes.io/metadata.name` label is added. */
export function k8sNamespace(s: { name: string; labels?: Record<string, string> }): object {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: s.name, labels: { ...(s.labels ?? {}), 'kubernetes.io/metadata.name': s.name } } };
}

export interface PodSpec {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  /** status.podIP(s) */
  ip: string | string[];
  node: string;
  /** container ports (named ports resolve from these) */
  ports?: { name?: string; containerPort: number; protocol?: 'TCP' | 'UDP' | 'SCTP' }[];
  hostNetwork?: boolean;
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
}

/** A Pod object as the API shows a running pod: nodeName, podIP(s), labels, container ports. */
export function k8sPod(s: PodSpec): object {
  const ips = Array.isArray(s.ip) ? s.ip : [s.ip];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: s.name, namespace: s.namespace ?? 'default', labels: s.labels ?? {} },
    spec: {
      nodeName: s.node,
      ...(s.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'c', image: 'weir.invalid/echo', ports: (s.ports ?? []).map((p) => ({ ...p, protocol: p.protocol ?? 'TCP' })) }],
    },
    status: { phase: s.phase ?? 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
  };
}

/** A networking.k8s.io/v1 NetworkPolicy with the given spec. */
export function networkPolicy(s: { name: string; namespace?: string; spec: object }): object {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: s.name, namespace: s.namespace ?? 'default' }, spec: s.spec };
}
