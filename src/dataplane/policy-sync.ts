// dataplane/policy-sync: the daemon's end of NetworkPolicy. Store changes of NetworkPolicies,
// Pods, Namespaces and Nodes -> buildPolicyModel (incremental: the last model is handed on)
// -> desiredPolicyMaps -> PolicyWriter, batched to one apply per turn of the event loop. The
// policy and pod issues (an invalid CIDR, an unknown named port, ...) are logged when they
// change and exported as a gauge by reason.

import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { type Logger, errText } from '../log.js';
import { buildNodeTable } from '../model/nodes.js';
import { buildPolicyModel } from '../model/policy/network-policy.js';
import type { PolicyModel } from '../model/policy/policy-types.js';
import { desiredPolicyMaps, PolicyWriter, type AdoptedIds, type PolicyMaps, type PolicyWriteResult } from './policy-maps.js';

/** The store as PolicySync reads it. */
export interface PolicyInputsView {
  readonly nodes: ReadonlyMap<string, V1Node>;
  map(kind: 'Pod'): ReadonlyMap<string, V1Pod>;
  map(kind: 'Namespace'): ReadonlyMap<string, V1Namespace>;
  map(kind: 'NetworkPolicy'): ReadonlyMap<string, V1NetworkPolicy>;
}

export interface PolicySyncReport {
  reason: 'start' | 'change' | 'resync';
  result: PolicyWriteResult;
  buildMs: number;
  /** when the oldest change in this apply was observed (ms since epoch), for the latency metric */
  observedAt: number[];
  issues: { policy: Map<string, number>; pod: Map<string, number> };
}

const KINDS = new Set(['NetworkPolicy', 'Pod', 'Namespace', 'Node']);

export class PolicySync {
  readonly writer: PolicyWriter;
  private started = false;
  private stopped = false;
  private timer: NodeJS.Immediate | undefined;
  private model: PolicyModel | undefined;
  private adoptedIds: AdoptedIds | undefined;
  private observed: number[] = [];
  private loggedIssues = new Set<string>();

  constructor(
    maps: PolicyMaps,
    private readonly inputs: PolicyInputsView,
    private readonly thisNode: string,
    private readonly hostAddresses: () => Iterable<string>,
    private readonly log: Logger,
    private readonly onApplied: (r: PolicySyncReport) => void = () => undefined,
  ) {
    this.writer = new PolicyWriter(maps);
  }

  /** The model the maps were last written from (the CLI's explain reads the maps, tests read this). */
  get current(): PolicyModel | undefined {
    return this.model;
  }

  /** Adopts the pinned maps (their ids kept) and writes the difference to the store's state. */
  start(): PolicySyncReport {
    this.started = true;
    this.adoptedIds = this.writer.adopt();
    const r = this.apply('start');
    this.log.info('policy', {
      reason: 'start',
      adoptedIdentities: this.adoptedIds.podIdentities.size + this.adoptedIds.cidrIdentities.size,
      ...this.summary(r),
    });
    return r;
  }

  /** A store change (any kind); NetworkPolicies, Pods, Namespaces and Nodes matter. */
  changed(change: { kind: string }, observedAt?: number): void {
    if (!this.started || !KINDS.has(change.kind)) return;
    if (observedAt !== undefined) this.observed.push(observedAt);
    this.schedule();
  }

  /** This node's addresses changed (they are the host identity). */
  hostAddressesChanged(): void {
    if (this.started) this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setImmediate(() => {
      this.timer = undefined;
      try {
        const r = this.apply('change');
        if (r.result.writes > 0 || r.result.errors > 0) this.log.info('policy', { reason: 'change', ...this.summary(r) });
      } catch (e) {
        this.log.warn('sync failed', { pipeline: 'policy', error: errText(e) });
      }
    });
  }

  /** The periodic resync: re-read the maps, repair drift (a write the kernel refused, an entry removed by hand). */
  resync(): PolicySyncReport | undefined {
    if (!this.started) return undefined;
    this.writer.adopt();
    const r = this.apply('resync');
    this.log[r.result.writes ? 'warn' : 'debug']('policy resync', { repairs: r.result.writes, ...this.summary(r) });
    return r;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
  }

  private apply(reason: PolicySyncReport['reason']): PolicySyncReport {
    const t0 = performance.now();
    const previous = this.model;
    const model = buildPolicyModel({
      policies: this.inputs.map('NetworkPolicy').values(),
      pods: this.inputs.map('Pod').values(),
      namespaces: this.inputs.map('Namespace').values(),
      nodes: buildNodeTable(this.inputs.nodes.values()).nodes.values(),
      localNode: this.thisNode,
      ...(previous ? { previousModel: previous } : this.adoptedIds ? { previous: this.adoptedIds } : {}),
    });
    const buildMs = performance.now() - t0;
    this.model = model;
    const result = this.writer.apply(desiredPolicyMaps(model, this.thisNode, this.hostAddresses()));
    for (const f of this.writer.takeFailures().slice(0, 10)) this.log.warn('policy map write failed', f);
    const observedAt = this.observed;
    this.observed = [];
    const r: PolicySyncReport = { reason, result, buildMs, observedAt, issues: this.issues(model) };
    this.onApplied(r);
    return r;
  }

  /** Issues by reason; each distinct one logged once while it lasts. */
  private issues(model: PolicyModel): PolicySyncReport['issues'] {
    const policy = new Map<string, number>();
    const pod = new Map<string, number>();
    const now = new Set<string>();
    for (const i of model.policyIssues) {
      policy.set(i.reason, (policy.get(i.reason) ?? 0) + 1);
      const t = `policy\0${i.policy}\0${i.reason}\0${i.field}\0${i.detail}`;
      now.add(t);
      if (!this.loggedIssues.has(t)) this.log.warn('policy issue', { policy: i.policy, reason: i.reason, field: i.field, detail: i.detail });
    }
    for (const i of model.podIssues) {
      pod.set(i.reason, (pod.get(i.reason) ?? 0) + 1);
      const t = `pod\0${i.pod}\0${i.reason}\0${i.detail}`;
      now.add(t);
      if (!this.loggedIssues.has(t)) this.log.warn('policy pod issue', { pod: i.pod, reason: i.reason, detail: i.detail });
    }
    this.loggedIssues = now;
    return { policy, pod };
  }

  private summary(r: PolicySyncReport): Record<string, unknown> {
    const m = this.model;
    return {
      writes: r.result.writes,
      errors: r.result.errors || undefined,
      policies: m?.policies.size,
      endpoints: r.result.endpoints,
      identities: r.result.identities,
      ipcache: r.result.ipcache,
      keys: r.result.keys,
      buildMs: Math.round(r.buildMs),
      writeMs: Math.round(r.result.ms),
    };
  }
}
