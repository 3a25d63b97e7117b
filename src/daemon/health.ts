// daemon/health: what /healthz (liveness) and /readyz (readiness) say about a running daemon,
// and the error counts behind weir_errors_total. Errors are observed where they are already
// logged: a Logger wrapper maps each warn event that is an error to a kind (one log line, one
// count), and keeps the last attach failure so /readyz can say which program on which interface.
// Liveness fails only on what a restart fixes: periodic work that stopped making progress
// (docs/health.md). Readiness: the source listed everything and reaches the API server (its
// outage bound), the first full sync is in the maps, the programs are attached, the last sync
// wrote every entry (a full map or a refused attach is not fixed by a restart: not ready,
// logged and counted, retried).

import type { Metrics } from '../metrics/metrics.js';
import type { LogFields, Logger } from '../log.js';
import type { MapWriteSink } from './map-writes.js';

/** Warn events that are errors, by weir_errors_total kind. */
const ERROR_KINDS: Record<string, string> = {
  'attach failed': 'attach',
  'detach failed': 'attach',
  'remove stale link pin failed': 'attach',
  'map update failed': 'map_write',
  'services not programmed': 'map_write',
  'map dump failed': 'map_read',
  'sync failed': 'sync',
  'periodic task failed': 'periodic',
  'netlink dump failed': 'netlink',
  'affinity cleanup failed': 'cleanup',
  'conntrack cleanup failed': 'cleanup',
  'socket destroy failed': 'cleanup',
  'kube: list/watch failed, retrying': 'api',
  'kube: applying an event failed': 'source',
  'kube: invalid object skipped': 'source',
  'manifests: rejected': 'source',
  'frontend skipped': 'model',
  'invalid source range ignored': 'model',
  'sysctl record unavailable': 'sysctl',
  'sysctl change not recorded': 'sysctl',
  'sysctl record prune failed': 'sysctl',
  'health check port failed': 'healthcheck',
  'weir_ifaces read failed': 'iface_table',
  'weir_ifaces write failed': 'iface_table',
  'weir_ifaces delete failed': 'iface_table',
  'dsr optout write failed': 'map_write',
  'healthz listen failed': 'healthcheck',
  'node map write failed': 'node_map',
  'node map read failed': 'node_map',
  'node map conflict': 'model',
  'host proc blind': 'host_proc',
  'host proc unreadable': 'host_proc',
  'cgroup members unknown': 'host_proc',
  'pod namespaces unreadable': 'host_proc',
  'socket iterator failed': 'cleanup',
};

/** Kinds of ERROR_KINDS that are the input's fault (a rejected manifest, a skipped frontend):
 *  logged at warn; every other kind is weir failing at its work and logs at error. */
const INPUT_KINDS = new Set(['source', 'model']);

export interface SourceHealth {
  notReady(): string[];
}

/** A periodic task's pass may be this late, beyond 3 intervals, before liveness fails. */
export const PROGRESS_SLACK_MS = 30_000;

/** A periodic task the watchdog expects to complete every `everyMs`. */
interface Progress {
  everyMs: number;
  /** the last completed pass (registration counts as one) */
  lastAt: number;
}

export class DaemonHealth implements MapWriteSink {
  sourceSynced = false;
  fullSynced = false;
  attached = false;
  source: SourceHealth | undefined;
  /** the last refused map write since the last clean sync */
  private mapFailure: { map: string; op: string; code: string; message: string; count: number } | undefined;
  private mapProblem: string | undefined;
  private attachProblem: string | undefined;
  private lastAttachFailure: string | undefined;
  /** while a resync runs, writes are repairs */
  inResync = false;
  private readonly progress = new Map<string, Progress>();

  constructor(
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {}

  /** `log` with every error-level event counted by kind (and attach failures remembered). */
  wrapLogger(log: Logger): Logger {
    const counted = (msg: string, fields: LogFields | undefined, asked: 'warn' | 'error') => {
      const kind = ERROR_KINDS[msg];
      if (kind) this.metrics.errors.inc({ kind });
      if (kind === 'attach' && fields) {
        const where =
          fields.ifname !== undefined ? `${String(fields.hook ?? 'program')} on ${String(fields.ifname)}` : String(fields.pin ?? fields.hook ?? 'program');
        this.lastAttachFailure = `${where}: ${String(fields.error ?? 'failed')}`;
      }
      // weir's own failures log at level error; bad input (source, model) stays a warning
      if (asked === 'error' || (kind && !INPUT_KINDS.has(kind))) log.error(msg, fields);
      else log.warn(msg, fields);
    };
    return {
      debug: (m, f) => log.debug(m, f),
      info: (m, f) => log.info(m, f),
      warn: (m, f) => counted(m, f, 'warn'),
      error: (m, f) => counted(m, f, 'error'),
    };
  }

  // ---- map writes (MapWriteSink) ----

  written(map: string, op: 'update' | 'delete', n: number): void {
    if (n <= 0) return;
    this.mapWritten?.(map);
    this.metrics.mapWrites.inc({ map, op }, n);
    if (this.inResync) this.metrics.resyncRepairs.inc({ map }, n);
  }

  /** told of every map weir wrote (the map census recounts it) */
  mapWritten: ((map: string) => void) | undefined;

  failed(map: string, op: 'update' | 'delete', code: string, message: string): void {
    this.metrics.mapWriteFailures.inc({ map, error: code });
    this.mapFailure = { map, op, code, message, count: (this.mapFailure?.count ?? 0) + 1 };
  }

  /** After each sync: failures make the dataplane unhealthy until a sync writes cleanly. */
  syncDone(errors: number): void {
    if (errors > 0 && this.mapFailure) {
      const f = this.mapFailure;
      this.mapProblem = `dataplane cannot be programmed: ${errors} map write(s) failed in the last sync (${f.map} ${f.op}: ${f.code}${f.code === 'E2BIG' ? ', map full' : ''})`;
    } else if (errors > 0) {
      this.mapProblem = `dataplane cannot be programmed: ${errors} map operation(s) failed in the last sync`;
    } else {
      this.mapProblem = undefined;
    }
    this.mapFailure = undefined;
  }

  /** After each attach pass: `newErrors` failures in it (AttachManager stats delta). */
  attachDone(newErrors: number): void {
    this.attachProblem =
      newErrors > 0 ? `dataplane cannot be programmed: attaching failed (${newErrors} error(s), last: ${this.lastAttachFailure ?? 'see log'})` : undefined;
    if (newErrors === 0) this.attached = true;
  }

  // ---- progress watchdog ----

  /** From now on `task` completes a pass every `everyMs`; /healthz fails once one is 3 intervals + slack overdue. */
  expect(task: string, everyMs: number): void {
    if (everyMs > 0) this.progress.set(task, { everyMs, lastAt: this.now() });
  }

  /** `task` completed a pass. */
  ran(task: string): void {
    const p = this.progress.get(task);
    if (p) p.lastAt = this.now();
  }

  /**
   * /healthz lines: only what a restart fixes. A periodic task that stopped completing (a
   * hung netlink dump holding the interface pass, a resync that throws on every run) is
   * stuck process state. An unreachable API server, a full map or an attach the kernel refuses
   * are the same after a restart: those are readiness (notReady).
   */
  problems(): string[] {
    const out: string[] = [];
    const now = this.now();
    for (const [task, p] of this.progress) {
      const late = now - p.lastAt;
      const bound = 3 * p.everyMs + PROGRESS_SLACK_MS;
      if (late > bound) out.push(`no progress: ${task} last completed ${(late / 1000).toFixed(1)}s ago (every ${p.everyMs / 1000}s, bound ${bound / 1000}s)`);
    }
    return out;
  }

  /** /readyz lines. */
  notReady(): string[] {
    const out = [...(this.source?.notReady() ?? [])];
    if (!this.sourceSynced && out.length === 0) out.push('source has not delivered its initial state');
    if (!this.fullSynced) out.push('first full sync not in the maps yet');
    if (!this.attached) out.push('programs not attached yet');
    if (this.mapProblem) out.push(this.mapProblem);
    if (this.attachProblem) out.push(this.attachProblem);
    return out;
  }
}
