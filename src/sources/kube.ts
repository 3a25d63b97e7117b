// sources/kube: the Kubernetes API as a source. One @kubernetes/client-node ListWatch (informer)
// per kind; emits the same normalized events as the manifests source (origin 'api'), 'synced'
// once every informer has listed, then changes. What this file adds around the library:
// - lists in pages (`limit` + `continue`); an expired continue token restarts that list;
// - watches ask for bookmarks and a server-side timeout (the library asks for neither);
// - list items and watch objects are plain objects as parsed, metadata dates as Date
//   (plain-object.ts), not run through the library's typing: both paths and the manifests
//   source hand the model the same shapes, under the JSON field names;
// - every object is cut down to the fields weir reads (slim.ts) before anything keeps it, a watch
//   change that leaves the slim object as it was emits nothing, and finished pods are not asked
//   for (WATCHED_RESOURCES' field selectors);
// - the library relists by itself on 410 Gone (HTTP status or ERROR event) and, on a relist,
//   deletes what vanished while disconnected; on any other error it stops, and this source
//   restarts it with exponential backoff and jitter (resuming the watch from the last version);
// - a custom resource whose CRD is not installed (Calico's kinds in a cluster without Calico:
//   WATCHED_RESOURCES' mayBeAbsent) answers 404: the kind is empty (what was held is deleted),
//   counts as listed for 'synced', is logged once, and is listed again with backoff, so
//   installing the CRDs later needs no restart;
// - counters, and a connectivity view: when did we last hear from the API server, and is that
//   longer ago than the configured outage bound (then the node is not ready; never unhealthy:
//   a restart does not bring the API server back). An idle probe (GET /version) keeps that
//   honest on a quiet cluster where no watch event arrives for a while.

import { ListWatch, VersionApi, Watch, type KubeConfig, type KubernetesObject, type V1ListMeta } from '@kubernetes/client-node';
import { listCall, WATCHED_RESOURCES, type ListCall, type ListPage } from './kube-resources.js';
import { withDates } from './plain-object.js';
import { shareEqualParts, slimObject } from './slim.js';
import { Backoff, errorLine, errorStatus, withTimeout } from './kube-retry.js';
import { invalidObject, type InvalidReason } from './validate.js';
import type { Logger } from '../log.js';
import { API_VERSIONS, keyOf, OBJECT_KINDS, type ObjectEvent, type ObjectKind, type Source, type SourceSink } from './types.js';

export { loadKubeConfig } from './kube-config.js';
export { WATCHED_RESOURCES, type WatchedResource } from './kube-resources.js';
export { Backoff, errorStatus } from './kube-retry.js';

export interface BackoffOptions {
  /** First retry delay. Default 500 ms. */
  initialMs?: number;
  /** Cap. Default 30 s. */
  maxMs?: number;
}

export interface KubeSourceOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** Kinds to watch. Default all six. */
  kinds?: readonly ObjectKind[];
  /** Items per list page, every kind. Default: the kind's WATCHED_RESOURCES pageSize, else 500 (client-go's pager). */
  pageSize?: number;
  /** Server-side watch timeout; each watch gets this plus up to 100% jitter. Default 300 s. */
  watchTimeoutSeconds?: number;
  /** A list page that takes longer fails (and is retried with backoff). Default 60 s. */
  listTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** No contact with the API server for longer than this is an outage (readiness). Default 60 s. */
  outageBoundMs?: number;
  /** Probe GET /version when nothing was heard for this long. Default min(10 s, bound / 3). */
  idleProbeMs?: number;
  /** Keep objects whole instead of slim (slim.ts): only to measure what slimming saves (bench/memory.ts).
   *  Default: the environment's WEIR_KUBE_KEEP_WHOLE_OBJECTS=1. */
  keepWholeObjects?: boolean;
  now?: () => number;
  random?: () => number;
}

export interface KindCounters {
  upserts: number;
  deletes: number;
  /** watch changes to fields weir does not keep: taken as bookmarks, no event */
  unchanged: number;
  /** completed lists (the first one and every relist) */
  lists: number;
}

/** Read by metrics. Counters only grow. */
export interface KubeCounters {
  events: Record<ObjectKind, KindCounters>;
  /** lists after a kind's first one (410 Gone, or a restart that lost the version) */
  relists: number;
  /** objects deleted by a relist because they vanished while disconnected */
  relistDeletes: number;
  listPages: number;
  /** 410 Gone seen: expired watch version (event or status) or expired continue token */
  expired: number;
  /** list or watch failures reported by the library */
  errors: number;
  /** informer restarts after an error (each after a backoff delay) */
  reconnects: number;
  /** watch requests made */
  watches: number;
  /** ms since the epoch of the last successful exchange with the API server, or null */
  lastContactAt: number | null;
  /** objects skipped as invalid (sources/validate.ts), by reason */
  rejected: Map<InvalidReason, number>;
  /** lists answered 404 for a kind that may be absent (its CRD is not installed), per kind */
  notServed: Partial<Record<ObjectKind, number>>;
}

export interface KubeHealth {
  /** the last exchange with the API server succeeded */
  apiReachable: boolean;
  /** reachable and serving us: the last exchange reached it and the last success is within the bound */
  connected: boolean;
  /** ms since the last successful exchange (since start when there was none) */
  sinceLastContactMs: number;
  /** sinceLastContactMs is above the configured bound */
  outage: boolean;
  outageBoundMs: number;
  /** every informer has completed its first list */
  synced: boolean;
  /** the last error, one line */
  lastError?: string;
  /** kinds that may be absent and are not served now (their CRDs are not installed) */
  notServed: ObjectKind[];
}

interface Informer {
  kind: ObjectKind;
  lw: ListWatch<KubernetesObject>;
  backoff: Backoff;
  listed: boolean;
  /** true between a list's return and the library applying it (its deletes are relist deletes) */
  applyingList: boolean;
  retry: NodeJS.Timeout | undefined;
  /** a mayBeAbsent kind whose last list was a 404: held empty, listed again after a backoff delay */
  notServed: boolean;
}

export class KubeSource implements Source {
  readonly counters: KubeCounters;
  private readonly informers: Informer[] = [];
  private readonly kinds: readonly ObjectKind[];
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly boundMs: number;
  private readonly startedAt: number;
  private readonly keepWhole: boolean;
  private sink: SourceSink | null = null;
  private stopped = false;
  private synced = false;
  private reachable = false;
  private lastError: string | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private resolveStart: (() => void) | undefined;

  constructor(private readonly opts: KubeSourceOptions) {
    this.kinds = opts.kinds ?? OBJECT_KINDS;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.boundMs = opts.outageBoundMs ?? 60_000;
    this.startedAt = this.now();
    this.keepWhole = opts.keepWholeObjects ?? process.env.WEIR_KUBE_KEEP_WHOLE_OBJECTS === '1';
    const events = {} as Record<ObjectKind, KindCounters>;
    for (const k of OBJECT_KINDS) events[k] = { upserts: 0, deletes: 0, unchanged: 0, lists: 0 };
    this.counters = {
      events,
      relists: 0,
      relistDeletes: 0,
      listPages: 0,
      expired: 0,
      errors: 0,
      reconnects: 0,
      watches: 0,
      lastContactAt: null,
      rejected: new Map(),
      notServed: {},
    };
  }

  /** Starts every informer; resolves once all have listed and 'synced' was emitted (or on stop). */
  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    const done = new Promise<void>((r) => (this.resolveStart = r));
    for (const kind of this.kinds) this.informers.push(this.makeInformer(kind));
    for (const inf of this.informers) void this.run(inf, false);
    const every = this.opts.idleProbeMs ?? Math.min(10_000, Math.max(100, Math.floor(this.boundMs / 3)));
    this.probeTimer = setInterval(() => void this.probeIfIdle(every), Math.max(50, Math.floor(every / 2)));
    this.probeTimer.unref();
    await done;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    for (const inf of this.informers) {
      if (inf.retry) clearTimeout(inf.retry);
      await inf.lw.stop();
    }
    this.resolveStart?.();
  }

  health(): KubeHealth {
    const since = this.now() - (this.counters.lastContactAt ?? this.startedAt);
    return {
      apiReachable: this.reachable,
      connected: this.reachable && this.counters.lastContactAt !== null && since <= this.boundMs,
      sinceLastContactMs: since,
      outage: since > this.boundMs,
      outageBoundMs: this.boundMs,
      synced: this.synced,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      notServed: this.informers.filter((i) => i.notServed).map((i) => i.kind),
    };
  }

  /** /readyz lines: the API outage past the bound, and the kinds whose first list has not completed. */
  notReady(): string[] {
    const h = this.health();
    const s = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
    const out = h.outage
      ? [`kubernetes API unreachable for ${s(h.sinceLastContactMs)} (bound ${s(h.outageBoundMs)})${h.lastError ? `: ${h.lastError}` : ''}`]
      : [];
    const waiting = this.informers.filter((i) => !i.listed).map((i) => i.kind);
    if (waiting.length) out.push(`kubernetes informers not synced: ${waiting.join(', ')}`);
    return out;
  }

  // ---- informers ----

  private makeInformer(kind: ObjectKind): Informer {
    const res = WATCHED_RESOURCES.find((r) => r.kind === kind)!;
    const list = listCall(this.opts.kubeConfig, kind, { ...(res.fieldSelector ? { fieldSelector: res.fieldSelector } : {}), slim: !this.keepWhole });
    const watch = new SourceWatch(this.opts.kubeConfig, this, kind, this.opts.watchTimeoutSeconds ?? 300, res.mayBeAbsent ?? false);
    const b = this.opts.backoff ?? {};
    const inf: Informer = {
      kind,
      lw: undefined as unknown as ListWatch<KubernetesObject>,
      backoff: new Backoff(b.initialMs ?? 500, b.maxMs ?? 30_000, this.random),
      listed: false,
      applyingList: false,
      retry: undefined,
      notServed: false,
    };
    const pageSize = this.opts.pageSize ?? res.pageSize ?? 500;
    const listFn = res.mayBeAbsent ? () => this.listMaybeAbsent(inf, list, pageSize) : () => this.listAll(inf, list, pageSize);
    inf.lw = new ListWatch<KubernetesObject>(res.path, watch, listFn, false, undefined, res.fieldSelector);
    inf.lw.on('add', (o) => this.emit(inf, 'upsert', o));
    inf.lw.on('update', (o) => this.emit(inf, 'upsert', o));
    inf.lw.on('delete', (o) => this.emit(inf, 'delete', o));
    inf.lw.on('error', (e) => this.onError(inf, e));
    return inf;
  }

  private async run(inf: Informer, restart: boolean): Promise<void> {
    if (this.stopped) return;
    if (restart) this.counters.reconnects++;
    try {
      await inf.lw.start();
    } catch (e) {
      // the library reports list/watch failures through 'error'; a throw here is unexpected
      this.onError(inf, e);
    }
  }

  /** The library stopped this informer after an error: restart it after a backoff delay. */
  private onError(inf: Informer, e: unknown): void {
    if (this.stopped) return;
    if (inf.notServed && e === NOT_SERVED) {
      // not an error: the kind is held empty until a later list finds it served
      this.retryLater(inf, inf.backoff.next());
      return;
    }
    this.counters.errors++;
    const line = errorLine(e);
    this.lastError = `${inf.kind}: ${line}`;
    // A refusal (401/403/404) means the server answers but does not serve us: reachable, yet
    // no contact, so a bad token or missing RBAC becomes an outage after the bound.
    const status = errorStatus(e);
    this.reachable = status !== undefined && status < 500 && status !== 429;
    const delay = inf.backoff.next();
    this.opts.log.warn('kube: list/watch failed, retrying', { kind: inf.kind, error: line, retryInMs: delay });
    this.retryLater(inf, delay);
  }

  private retryLater(inf: Informer, delay: number): void {
    if (inf.retry) clearTimeout(inf.retry);
    inf.retry = setTimeout(() => {
      inf.retry = undefined;
      void this.run(inf, true);
    }, delay);
    inf.retry.unref();
  }

  /**
   * The list of a kind that may be absent: a 404 (its CRD is not installed) is an empty list, so
   * the library deletes what it held and the kind counts as listed; the watch that follows is not
   * made (SourceWatch ends it at once) and the informer lists again after a backoff delay.
   * Logged once per change between served and not served.
   */
  private async listMaybeAbsent(inf: Informer, list: ListCall, limit: number): Promise<{ metadata: V1ListMeta; items: KubernetesObject[] }> {
    try {
      const out = await this.listAll(inf, list, limit);
      if (inf.notServed) {
        inf.notServed = false;
        this.opts.log.info('kube: kind served now', { kind: inf.kind, objects: out.items.length });
      }
      return out;
    } catch (e) {
      // 404: the group is not installed. 403: the ClusterRole does not grant it (a weir upgraded
      // without applying the new deploy/weir.yaml): host protection is off either way, which must
      // not keep the services from syncing. (Contact and reachability are left to the other kinds.)
      const status = errorStatus(e);
      if ((status !== 404 && status !== 403) || this.stopped) throw e;
      this.counters.notServed[inf.kind] = (this.counters.notServed[inf.kind] ?? 0) + 1;
      if (!inf.notServed) {
        inf.notServed = true;
        const res = WATCHED_RESOURCES.find((r) => r.kind === inf.kind)!;
        this.opts.log.warn('kube: kind not served, treated as empty and retried', {
          kind: inf.kind,
          path: res.path,
          error: errorLine(e),
          hint:
            status === 404
              ? `no ${res.group} API: Calico's API server or CRDs are not installed (without Calico: deploy/calico-crds.yaml)`
              : `forbidden: weir's ClusterRole lacks list/watch on ${res.group} ${res.resource} (apply deploy/weir.yaml)`,
        });
      }
      this.listed(inf, 0, '', 0, true);
      return { metadata: { resourceVersion: '' }, items: [] };
    }
  }

  /** Whether the watch of a kind should not be made: its list found it not served. */
  isNotServed(kind: ObjectKind): boolean {
    return this.informers.find((i) => i.kind === kind)?.notServed ?? false;
  }

  /** The list function given to the library: every page of a consistent list. */
  private async listAll(inf: Informer, list: ListCall, limit: number): Promise<{ metadata: V1ListMeta; items: KubernetesObject[] }> {
    const timeout = this.opts.listTimeoutMs ?? 60_000;
    let items: KubernetesObject[] = [];
    let cont: string | undefined;
    let restarts = 0;
    const t0 = this.now();
    for (;;) {
      let page: ListPage;
      try {
        page = await withTimeout(list({ limit, ...(cont ? { _continue: cont } : {}) }), timeout, `list ${inf.kind}`);
      } catch (e) {
        if (errorStatus(e) === 410 && cont !== undefined && restarts < 3) {
          // the continue token outlived the server's compaction: start this list again
          restarts++;
          this.counters.expired++;
          this.contact();
          this.opts.log.info('kube: list continue token expired, listing again', { kind: inf.kind, itemsSoFar: items.length });
          items = [];
          cont = undefined;
          continue;
        }
        throw e;
      }
      if (this.stopped) throw new Error('stopped');
      this.counters.listPages++;
      this.contact();
      // (list items are slim already: listCall's middleware cut them before they were typed)
      for (const o of page.items ?? []) items.push(this.normalize(inf.kind, o, false));
      cont = page.metadata?._continue || undefined;
      if (cont === undefined) {
        const resourceVersion = page.metadata?.resourceVersion ?? '';
        this.listed(inf, items.length, resourceVersion, this.now() - t0);
        return { metadata: { resourceVersion }, items };
      }
    }
  }

  /** After the list returns, the library applies it synchronously (deletes, then adds/updates). */
  private listed(inf: Informer, objects: number, resourceVersion: string, ms: number, notServed = false): void {
    const relist = inf.listed;
    inf.applyingList = true;
    const deletesBefore = this.counters.relistDeletes;
    setImmediate(() => {
      inf.applyingList = false;
      if (notServed) {
        // the empty list of a kind not served: its retries back off (no reset) and are not relists
        inf.listed = true;
        this.maybeSynced();
        return;
      }
      inf.backoff.reset();
      this.counters.events[inf.kind].lists++;
      if (relist) {
        this.counters.relists++;
        this.opts.log.info('kube: relisted', { kind: inf.kind, objects, removed: this.counters.relistDeletes - deletesBefore, resourceVersion, ms });
      } else {
        this.opts.log.debug('kube: listed', { kind: inf.kind, objects, resourceVersion, ms });
      }
      inf.listed = true;
      this.maybeSynced();
    });
  }

  private maybeSynced(): void {
    if (this.synced || this.stopped || !this.informers.every((i) => i.listed)) return;
    this.synced = true;
    const objects = this.kinds.map((k) => `${k}:${this.informers.find((i) => i.kind === k)!.lw.list().length}`).join(',');
    this.opts.log.info('kube: synced', { objects, ms: this.now() - this.startedAt });
    this.sink?.({ type: 'synced', origin: 'api', observedAt: this.now() });
    this.resolveStart?.();
  }

  private emit(inf: Informer, type: 'upsert' | 'delete', obj: KubernetesObject): void {
    if (this.stopped) return;
    const key = keyOf(inf.kind, obj.metadata);
    if (type === 'upsert') {
      // The API server validates what it stores; a fake, a proxy or a bug must still not hand
      // the model a 200,000-character name. A skipped change leaves the last valid version in
      // the store (as the manifests source does); a delete always passes.
      const invalid = invalidObject(inf.kind, key, obj as never);
      if (invalid) {
        this.counters.rejected.set(invalid.reason, (this.counters.rejected.get(invalid.reason) ?? 0) + 1);
        this.opts.log.warn('kube: invalid object skipped', { kind: inf.kind, reason: invalid.reason, detail: invalid.detail });
        return;
      }
    }
    const c = this.counters.events[inf.kind];
    if (type === 'upsert') c.upserts++;
    else {
      c.deletes++;
      if (inf.applyingList) this.counters.relistDeletes++;
    }
    const event = { type, kind: inf.kind, key, object: obj, origin: 'api', observedAt: this.now() } as ObjectEvent;
    try {
      this.sink?.(event);
    } catch (e) {
      this.opts.log.warn('kube: applying an event failed', { kind: inf.kind, key: event.key, error: errorLine(e) });
    }
  }

  /** Slim plain objects with kind and apiVersion set, whether they came from a list (dates set,
   *  and slim already) or a watch (raw JSON). */
  normalize(kind: ObjectKind, obj: KubernetesObject, raw: boolean): KubernetesObject {
    const slim = raw && !this.keepWhole ? (slimObject(kind, obj as never) as KubernetesObject) : obj;
    const typed = raw ? withDates(slim) : slim;
    const o = this.keepWhole ? typed : (shareEqualParts(kind, typed as never) as KubernetesObject);
    o.kind ??= kind;
    o.apiVersion ??= API_VERSIONS[kind];
    return o;
  }

  /**
   * Whether a watched object equals the one held but for its resourceVersion (slim objects only);
   * if so the held object takes the new version, so a relist and the store's versions stay exact.
   */
  unchangedButVersion(kind: ObjectKind, o: KubernetesObject): boolean {
    if (this.keepWhole || !o.metadata?.name) return false;
    const held = this.informers.find((i) => i.kind === kind)?.lw.get(o.metadata.name, o.metadata.namespace);
    if (!held?.metadata || held === o) return false;
    const content = (x: KubernetesObject) => JSON.stringify({ ...x, metadata: { ...x.metadata, resourceVersion: undefined } });
    if (content(held) !== content(o)) return false;
    held.metadata.resourceVersion = o.metadata.resourceVersion;
    this.counters.events[kind].unchanged++;
    return true;
  }

  // ---- contact and health ----

  /** A successful exchange with the API server. */
  contact(): void {
    this.counters.lastContactAt = this.now();
    if (!this.reachable) {
      this.reachable = true;
      if (this.lastError !== undefined) this.opts.log.info('kube: API server reachable again', { after: this.lastError });
    }
  }

  /** Called by SourceWatch. */
  watchStarted(): void {
    this.counters.watches++;
  }

  watchEvent(kind: ObjectKind, phase: string, obj: { code?: number } | undefined): void {
    this.contact();
    if (phase === 'ERROR' && obj?.code === 410) {
      this.counters.expired++;
      this.opts.log.info('kube: watch version expired (410), relisting', { kind });
    }
  }

  watchEnded(kind: ObjectKind, err: unknown): void {
    if (err === null || err === undefined) {
      this.contact(); // the server ended the stream cleanly (timeoutSeconds, or a drop)
      return;
    }
    if (errorStatus(err) === 410) {
      this.counters.expired++;
      this.contact();
      this.opts.log.info('kube: watch version expired (410), relisting', { kind });
    }
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  private async probeIfIdle(idleMs: number): Promise<void> {
    if (this.stopped || this.probing) return;
    if (this.now() - (this.counters.lastContactAt ?? this.startedAt) < idleMs) return;
    // only a quiet cluster needs the probe; while an informer is failing, its retries tell
    // (and /version answering would hide a 401/403 on the resources we need)
    if (!this.synced || this.informers.some((i) => i.retry !== undefined)) return;
    this.probing = true;
    try {
      await withTimeout(this.opts.kubeConfig.makeApiClient(VersionApi).getCode(), Math.max(1000, idleMs), 'GET /version');
      if (!this.stopped) this.contact();
    } catch (e) {
      if (!this.stopped) {
        this.reachable = false;
        this.lastError = `probe: ${errorLine(e)}`;
      }
    } finally {
      this.probing = false;
    }
  }
}

/** What a watch of a kind that is not served ends with (not an error: see KubeSource.onError). */
const NOT_SERVED = new Error('kind not served');

/**
 * The library's Watch with what the informer does not ask for (bookmarks, a server-side
 * timeout), typed objects, and the source told about every request, event and end.
 */
class SourceWatch extends Watch {
  constructor(
    config: KubeConfig,
    private readonly source: KubeSource,
    private readonly kind: ObjectKind,
    private readonly timeoutSeconds: number,
    private readonly mayBeAbsent: boolean,
  ) {
    super(config);
  }

  /* eslint-disable @typescript-eslint/no-explicit-any -- the signature client-node's Watch.watch declares */
  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    /* eslint-enable @typescript-eslint/no-explicit-any */
    if (this.source.isNotServed(this.kind)) {
      // the kind's CRD is not installed: no watch; ending with NOT_SERVED makes the source list
      // it again after a backoff delay (KubeSource.onError)
      const c = new AbortController();
      c.abort();
      setImmediate(() => done(NOT_SERVED));
      return c;
    }
    if (this.source.isStopped) {
      // the library may start a watch after stop() when a list was in flight: do not connect
      const c = new AbortController();
      c.abort();
      return c;
    }
    this.source.watchStarted();
    // jittered, so the watches of many nodes do not all end and reconnect together
    const params = { ...queryParams, allowWatchBookmarks: true, timeoutSeconds: Math.round(this.timeoutSeconds * (1 + Math.random())) };
    return super.watch(
      path,
      params,
      (phase, obj, raw) => {
        this.source.watchEvent(this.kind, phase, obj as { code?: number });
        const typed = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED' ? this.source.normalize(this.kind, obj as KubernetesObject, true) : obj;
        // a change to fields weir does not keep (a pod's conditions, a node's heartbeat) only moves
        // the resourceVersion: the library takes it as a bookmark, nothing downstream recomputes
        if (phase === 'MODIFIED' && this.source.unchangedButVersion(this.kind, typed as KubernetesObject)) callback('BOOKMARK', typed, raw);
        else callback(phase, typed, raw);
      },
      (err) => {
        const status = errorStatus(err);
        if ((status === 404 || status === 403) && this.mayBeAbsent) {
          // the CRD (or the grant) went away under the watch: the library must list again (as on
          // 410), and that list finds the kind not served
          done(Object.assign(new Error('kind no longer served (404 on watch): listing again'), { statusCode: 410 }));
          return;
        }
        this.source.watchEnded(this.kind, err);
        done(err);
      },
    );
  }
}
