// daemon/health: what /healthz and /readyz say about a running daemon, and the error counts
// behind weir_errors_total. Errors are observed where they are already logged: a Logger
// wrapper maps each warn event that is an error to a kind (one log line, one count), and
// keeps the last attach failure so /healthz can say which program on which interface.
// Readiness: the source listed everything, the first full sync is in the maps, the programs
// are attached. Health: the source's own problems (API outage past the bound), map writes
// the kernel refuses, attachments that fail.

import type { Metrics } from '../metrics/metrics.js';
import type { LogFields, Logger } from '../log.js';
import type { MapWriteSink } from './map-writes.js';

/** Warn events that are errors, by weir_errors_total kind. */
const ERROR_KINDS: Record<string, string> = {
  'attach failed': 'attach',
  'detach failed': 'attach',
  'remove stale link pin failed': 'attach',
  'map update failed': 'map_write',
  'map dump failed': 'map_read',
  'sync failed': 'sync',
  'periodic task failed': 'periodic',
  'netlink dump failed': 'netlink',
  'affinity cleanup failed': 'cleanup',
  'conntrack cleanup failed': 'cleanup',
  'socket destroy failed': 'cleanup',
  'kube: list/watch failed, retrying': 'api',
  'kube: applying an event failed': 'source',
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
};

/** Kinds of ERROR_KINDS that are the input's fault (a rejected manifest, a skipped frontend):
 *  logged at warn; every other kind is weir failing at its work and logs at error. */
const INPUT_KINDS = new Set(['source', 'model']);

export interface SourceHealth {
  problems(): string[];
  notReady(): string[];
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

  constructor(private readonly metrics: Metrics) {}

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
    this.metrics.mapWrites.inc({ map, op }, n);
    if (this.inResync) this.metrics.resyncRepairs.inc({ map }, n);
  }

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

  problems(): string[] {
    return [...(this.source?.problems() ?? []), ...(this.mapProblem ? [this.mapProblem] : []), ...(this.attachProblem ? [this.attachProblem] : [])];
  }

  notReady(): string[] {
    const out = [...(this.source?.notReady() ?? [])];
    if (!this.sourceSynced && out.length === 0) out.push('source has not delivered its initial state');
    if (!this.fullSynced) out.push('first full sync not in the maps yet');
    if (!this.attached) out.push('programs not attached yet');
    return out;
  }
}
