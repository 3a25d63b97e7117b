// daemon/host-policy: the daemon's end of host protection (issue 17). Store changes of
// GlobalNetworkPolicies, HostEndpoints, Nodes, Pods and Namespaces, and changes of the host
// interfaces or of where the XDP prefilter is attached -> compileHostPolicy (the model) ->
// HostPolicyWriter (dataplane/host-policy-sync.ts), batched to one apply per turn of the event
// loop. The plan's errors (an object that cannot be used) and the writer's failures are logged
// one line each, named, and counted by reason.

import type { V1Namespace, V1Node, V1Pod } from '@kubernetes/client-node';
import { hepIfaces, HostPolicyWriter, type HostIface, type HostPolicyMaps, type HostPolicyWriteResult } from '../dataplane/host-policy-sync.js';
import { type Logger, errText } from '../log.js';
import type { FailsafeEntry, GlobalNetworkPolicy, HostEndpoint, HostPolicyPlan } from '../model/host-policy/types.js';

/** What compileHostPolicy (src/model/host-policy/compile.ts) is given. */
export interface HostPolicyInput {
  nodeName: string;
  nodes: V1Node[];
  pods: V1Pod[];
  namespaces: V1Namespace[];
  globalNetworkPolicies: GlobalNetworkPolicy[];
  hostEndpoints: HostEndpoint[];
  failsafes: FailsafeEntry[];
  autoHostEndpoints: boolean;
  /** the last plan: its host endpoint ids, set ids and policy slots are kept */
  previous?: HostPolicyPlan;
}

export type HostPolicyCompile = (input: HostPolicyInput) => HostPolicyPlan;

/** The store as HostPolicySync reads it: the Calico kinds may not be store kinds yet (read defensively). */
export interface HostPolicyInputsView {
  readonly nodes: ReadonlyMap<string, V1Node>;
  map(kind: string): ReadonlyMap<string, unknown> | undefined;
}

export interface HostPolicySyncOptions {
  nodeName: string;
  failsafes: FailsafeEntry[];
  autoHostEndpoints: boolean;
  compile: HostPolicyCompile;
  /** this node's host interfaces (interfaces.ts, the 'host' class) */
  hosts: () => readonly HostIface[];
  /** ifindexes where the XDP prefilter is attached */
  xdpAttached: () => ReadonlySet<number>;
  /** a counted error (weir_host_policy_errors_total{reason}) */
  onError?: (reason: string) => void;
}

export interface HostPolicySyncReport {
  reason: 'start' | 'change' | 'resync';
  result: HostPolicyWriteResult;
  endpoints: number;
  planErrors: number;
  compileMs: number;
}

const KINDS = new Set(['GlobalNetworkPolicy', 'HostEndpoint', 'Node', 'Pod', 'Namespace']);

export class HostPolicySync {
  readonly writer: HostPolicyWriter;
  private started = false;
  private stopped = false;
  private timer: NodeJS.Immediate | undefined;
  private loggedErrors = new Set<string>();
  private last: HostPolicySyncReport | undefined;
  private plan: HostPolicyPlan | undefined;
  /** after a restart: the ids the maps hold, the compiler's `previous` until it has a plan of its own */
  private adoptedIds: HostPolicyPlan | undefined;

  constructor(
    maps: HostPolicyMaps,
    private readonly inputs: HostPolicyInputsView,
    private readonly opts: HostPolicySyncOptions,
    private readonly log: Logger,
  ) {
    this.writer = new HostPolicyWriter(maps);
  }

  /** The plan last written (the CLI reads the maps; tests read this). */
  get current(): HostPolicyPlan | undefined {
    return this.plan;
  }

  /** Host endpoints and rules in force, for the metrics. */
  figures(): { endpoints: number; rules: number } | undefined {
    return this.last && { endpoints: this.last.endpoints, rules: this.last.result.rules };
  }

  start(): HostPolicySyncReport {
    this.started = true;
    const adopted = this.writer.adopt();
    this.adoptedIds = this.writer.adoptedPlan();
    const r = this.apply('start');
    this.log.info('host policy', { reason: 'start', adoptedChains: adopted.chains, adoptedRules: adopted.rules, ...this.summary(r) });
    return r;
  }

  /** A store change (any kind); the host policy inputs matter. */
  changed(change: { kind: string }): void {
    if (this.started && KINDS.has(change.kind)) this.schedule();
  }

  /** The host interfaces or the XDP attachments changed: weir_hep_ifaces follows. */
  interfacesChanged(): void {
    if (this.started) this.schedule();
  }

  /** A scheduled apply, now (the daemon before `ready`: the XDP flags of a first attach in place). */
  flush(): void {
    if (!this.timer) return;
    clearImmediate(this.timer);
    this.timer = undefined;
    this.applyLogged();
  }

  resync(): HostPolicySyncReport | undefined {
    if (!this.started) return undefined;
    this.writer.adopt();
    const r = this.apply('resync');
    this.log[r.result.writes ? 'warn' : 'debug']('host policy resync', { repairs: r.result.writes, ...this.summary(r) });
    return r;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setImmediate(() => {
      this.timer = undefined;
      this.applyLogged();
    });
  }

  private applyLogged(): void {
    try {
      const r = this.apply('change');
      if (r.result.writes > 0 || r.result.errors > 0) this.log.info('host policy', { reason: 'change', ...this.summary(r) });
    } catch (e) {
      this.log.warn('sync failed', { pipeline: 'host policy', error: errText(e) });
    }
  }

  private list<T>(kind: string): T[] {
    return [...(this.inputs.map(kind)?.values() ?? [])] as T[];
  }

  private apply(reason: HostPolicySyncReport['reason']): HostPolicySyncReport {
    const t0 = performance.now();
    const plan = this.opts.compile({
      nodeName: this.opts.nodeName,
      nodes: [...this.inputs.nodes.values()],
      pods: this.list<V1Pod>('Pod'),
      namespaces: this.list<V1Namespace>('Namespace'),
      globalNetworkPolicies: this.list<GlobalNetworkPolicy>('GlobalNetworkPolicy'),
      hostEndpoints: this.list<HostEndpoint>('HostEndpoint'),
      failsafes: this.opts.failsafes,
      autoHostEndpoints: this.opts.autoHostEndpoints,
      ...((this.plan ?? this.adoptedIds) && { previous: this.plan ?? this.adoptedIds }),
    });
    const compileMs = performance.now() - t0;
    this.plan = plan;
    this.planErrors(plan);
    const result = this.writer.apply(plan, hepIfaces(plan, this.opts.hosts(), this.opts.xdpAttached()));
    for (const f of this.writer.takeFailures()) {
      this.opts.onError?.(f.reason);
      this.log.warn('host policy write failed', { ...f });
    }
    const r: HostPolicySyncReport = { reason, result, endpoints: plan.endpoints.length, planErrors: plan.errors.length, compileMs };
    this.last = r;
    return r;
  }

  /** Each object that cannot be used: logged and counted once while it lasts. */
  private planErrors(plan: HostPolicyPlan): void {
    const now = new Set<string>();
    for (const e of plan.errors) {
      const t = `${e.kind}\0${e.name}\0${e.message}`;
      now.add(t);
      if (this.loggedErrors.has(t)) continue;
      this.opts.onError?.(`plan_${e.kind === 'GlobalNetworkPolicy' ? 'policy' : 'host_endpoint'}`);
      this.log.warn('host policy object not used', { kind: e.kind, name: e.name, error: e.message });
    }
    this.loggedErrors = now;
  }

  private summary(r: HostPolicySyncReport): Record<string, unknown> {
    return {
      writes: r.result.writes,
      errors: r.result.errors || undefined,
      planErrors: r.planErrors || undefined,
      endpoints: r.endpoints,
      ifaces: r.result.ifaces,
      chains: r.result.chains,
      rules: r.result.rules,
      half: r.result.half,
      compileMs: Math.round(r.compileMs),
      writeMs: Math.round(r.result.ms),
    };
  }
}
