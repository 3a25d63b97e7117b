// sources/manifests: a directory of YAML/JSON manifests as a source (standalone use, the demo,
// tests). Loads every file, emits the objects and 'synced', then follows edits with fs.watch:
// a file renamed into place or removed is read at once (an atomic replace, as kubelet's
// ConfigMap volumes and `mv` do, is complete when it appears); a file written in place is read
// once its writes have been quiet for a debounce (100 ms), so a half-written file is not
// applied. A periodic rescan is the safety net for missed or coalesced notifications.
//
// Policy choices, so a bad edit never blackholes traffic:
// - An object is identified by kind + namespace + name. If two files define it, the
//   lexically last path wins (the same file loading order gives at start) and a warning says so.
// - A rejected object (invalid field) keeps its last good version from the same file.
// - A file with a document that cannot be identified (YAML syntax error, no kind or name) still
//   applies its good objects, but deletes nothing on that load: we cannot tell what it still holds.
// - A file that cannot be read keeps its objects; a removed file deletes them.
// - A file over MAX_FILE_BYTES is not read (counted and logged as too-large, its objects kept):
//   each of its documents is bounded too (manifest-parse.ts), this bounds how many there are.

import { createHash } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { parseManifest, type ParsedObject, type RejectReason } from './manifest-parse.js';
import type { ObjectEvent, Source, SourceSink } from './types.js';

export interface ManifestsOptions {
  dir: string;
  log: Logger;
  /** Periodic full rescan; 0 disables. Default 2000 ms. */
  rescanIntervalMs?: number;
  /** Quiet time after a watch notification before files are read. Default 100 ms. */
  debounceMs?: number;
  /** Files larger than this are not read. Default MAX_FILE_BYTES (tests make it small). */
  maxFileBytes?: number;
  /** Clock for observedAt (tests). */
  now?: () => number;
}

/** Read by metrics. Counters only grow. */
export interface ManifestCounters {
  /** Successful (re)loads of a file whose content changed. */
  filesLoaded: number;
  /** upsert + delete events emitted. */
  objectsApplied: number;
  /** Rejected files, documents and objects, by reason. */
  rejected: Map<RejectReason, number>;
  /** Objects defined in more than one file (warned; the last file wins). */
  duplicates: number;
}

interface FileState {
  statKey: string;
  hash: string;
  objects: Map<string, ParsedObject>;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/** The largest file read: room for 100,000 Services with their EndpointSlices in one file. */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;

export class ManifestsSource implements Source {
  readonly counters: ManifestCounters = { filesLoaded: 0, objectsApplied: 0, rejected: new Map(), duplicates: 0 };
  private readonly files = new Map<string, FileState>();
  /** identity → paths defining it. */
  private readonly owners = new Map<string, Set<string>>();
  /** identity → the object last emitted and the file it came from. */
  private readonly emitted = new Map<string, { obj: ParsedObject; origin: string }>();
  private sink: SourceSink | null = null;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  /** path → time of the first rename notification not yet processed */
  private readonly renamed = new Map<string, number>();
  /** path → time of the first notification not yet processed (observedAt). */
  private readonly dirty = new Map<string, number>();
  private dirtyAll = false;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly opts: ManifestsOptions) {
    this.now = opts.now ?? Date.now;
  }

  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    await readdir(this.opts.dir); // a missing directory at start is a configuration error
    await this.enqueue(() => this.scan(true));
    sink({ type: 'synced', origin: this.opts.dir, observedAt: this.now() });
    this.startWatcher();
    const every = this.opts.rescanIntervalMs ?? 2000;
    if (every > 0) {
      this.timer = setInterval(() => void this.rescan(), every);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = this.debounce = this.immediate = null;
    await this.queue;
  }

  /** Rescan the directory now (the periodic safety net; also useful on SIGHUP). */
  rescan(): Promise<void> {
    if (!this.watcher && !this.stopped) this.startWatcher();
    return this.enqueue(() => this.scan(false));
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch((e: unknown) => this.opts.log.warn('manifests: update failed', { dir: this.opts.dir, error: String(e) }));
    return this.queue;
  }

  private startWatcher(): void {
    try {
      this.watcher = watch(this.opts.dir, (event, filename) => {
        const t = this.now();
        if (filename === null) {
          this.dirtyAll = true;
        } else if (event === 'rename') {
          // a file renamed into place (or removed) is complete: read it at once
          if (!this.renamed.has(filename.toString())) this.renamed.set(filename.toString(), t);
          this.immediate ??= setImmediate(() => this.flushRenamed());
          return;
        } else if (!this.dirty.has(filename.toString())) {
          this.dirty.set(filename.toString(), t);
        }
        if (this.debounce) clearTimeout(this.debounce);
        this.debounce = setTimeout(() => this.flushDirty(), this.opts.debounceMs ?? 100);
      });
      this.watcher.on('error', (e) => {
        this.opts.log.warn('manifests: watch failed, relying on rescans', { dir: this.opts.dir, error: String(e) });
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (e) {
      this.opts.log.warn('manifests: cannot watch, relying on rescans', { dir: this.opts.dir, error: String(e) });
      this.watcher = null;
    }
  }

  /** Files that appeared or vanished (atomic renames, creations, deletions). */
  private flushRenamed(): void {
    this.immediate = null;
    if (this.stopped) return;
    const names = new Map(this.renamed);
    this.renamed.clear();
    void this.enqueue(() => this.loadNames(names));
  }

  /** Files written in place, once they have been quiet for the debounce. */
  private flushDirty(): void {
    this.debounce = null;
    if (this.stopped) return;
    const all = this.dirtyAll;
    const names = new Map(this.dirty);
    this.dirty.clear();
    this.dirtyAll = false;
    void this.enqueue(async () => (all ? this.scan(false) : this.loadNames(names)));
  }

  private async loadNames(names: Map<string, number>): Promise<void> {
    for (const [name, t] of [...names].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (MANIFEST_FILE.test(name) && !name.startsWith('.')) await this.loadPath(join(this.opts.dir, name), t, true);
    }
  }

  private async scan(initial: boolean): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.opts.dir)).filter((n) => MANIFEST_FILE.test(n) && !n.startsWith('.')).sort();
    } catch (e) {
      // A vanished directory is more likely a transient mount problem than "delete everything".
      this.opts.log.warn('manifests: cannot list directory, keeping current objects', { dir: this.opts.dir, error: String(e) });
      return;
    }
    const t = this.now();
    const present = new Set(names.map((n) => join(this.opts.dir, n)));
    for (const path of [...this.files.keys()].sort()) if (!present.has(path)) this.removeFile(path, t);
    for (const path of [...present]) {
      await this.loadPath(path, t, initial);
      // the reads are synchronous: let the event loop turn between files (timers, the
      // daemon's BPF loads finishing on their worker threads)
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** (Re)load one path; `force` re-reads even if stat looks unchanged (a watch notification). */
  private async loadPath(path: string, observedAt: number, force: boolean): Promise<void> {
    // Synchronous reads: a manifest is a local file read in well under a millisecond, and the
    // three thread-pool round trips of the async calls cost more than the read (~1 ms per file,
    // most of a change's latency; docs/daemon.md). The loads are sequential either way.
    let statKey: string;
    let size: number;
    try {
      const st = statSync(path);
      if (!st.isFile()) return;
      size = st.size;
      statKey = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') this.removeFile(path, observedAt);
      else this.reject(path, 'read-error', String(e));
      return;
    }
    const prev = this.files.get(path);
    if (prev && !force && prev.statKey === statKey) return;
    const maxBytes = this.opts.maxFileBytes ?? MAX_FILE_BYTES;
    if (size > maxBytes) {
      // once per version of the file, not on every rescan
      if (prev?.statKey !== statKey) this.reject(path, 'too-large', `${size} bytes, more than ${maxBytes}: not read, its objects are kept`);
      if (prev) prev.statKey = statKey;
      else this.files.set(path, { statKey, hash: '', objects: new Map() });
      return;
    }
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') this.removeFile(path, observedAt);
      else this.reject(path, 'read-error', String(e));
      return;
    }
    const hash = createHash('sha256').update(text).digest('hex');
    if (prev && prev.hash === hash) {
      prev.statKey = statKey;
      return;
    }
    this.applyFile(path, text, statKey, hash, observedAt);
  }

  private applyFile(path: string, text: string, statKey: string, hash: string, observedAt: number): void {
    const parsed = parseManifest(text, /\.json$/i.test(path));
    const old = this.files.get(path)?.objects ?? new Map<string, ParsedObject>();
    const next = new Map<string, ParsedObject>();
    for (const o of parsed.objects) {
      if (next.has(o.identity)) this.opts.log.warn('manifests: object defined twice in one file, last wins', { file: path, object: o.identity });
      next.set(o.identity, o);
    }
    for (const r of parsed.rejects) {
      this.reject(path, r.reason, r.detail, r.doc);
      // Keep the last good version of an object whose new version is invalid.
      const kept = r.identity !== undefined ? old.get(r.identity) : undefined;
      if (kept && !next.has(kept.identity)) next.set(kept.identity, kept);
    }
    if (parsed.incomplete) for (const [id, o] of old) if (!next.has(id)) next.set(id, o);
    this.files.set(path, { statKey, hash, objects: next });
    this.counters.filesLoaded++;
    this.opts.log.debug('manifests: loaded', { file: path, objects: next.size, rejected: parsed.rejects.length });
    for (const id of old.keys()) if (!next.has(id)) this.owners.get(id)?.delete(path);
    for (const id of next.keys()) {
      let s = this.owners.get(id);
      if (!s) this.owners.set(id, (s = new Set()));
      if (!s.has(path)) {
        s.add(path);
        if (s.size > 1) {
          this.counters.duplicates++;
          this.opts.log.warn('manifests: object defined in several files, the last file wins', {
            object: id,
            files: [...s].sort().join(','),
          });
        }
      }
    }
    for (const id of new Set([...next.keys(), ...old.keys()])) this.resolve(id, observedAt);
  }

  private removeFile(path: string, observedAt: number): void {
    const st = this.files.get(path);
    if (!st) return;
    this.files.delete(path);
    this.opts.log.info('manifests: file removed', { file: path, objects: st.objects.size });
    for (const id of st.objects.keys()) {
      this.owners.get(id)?.delete(path);
      this.resolve(id, observedAt);
    }
  }

  /** Emit whatever the winning definition of `id` now is, if it differs from what was emitted. */
  private resolve(id: string, observedAt: number): void {
    const paths = this.owners.get(id);
    // (one file per object is the rule: no array to sort then)
    const winner = paths === undefined || paths.size === 0 ? undefined : paths.size === 1 ? paths.values().next().value! : [...paths].sort().at(-1)!;
    const obj = winner !== undefined ? this.files.get(winner)?.objects.get(id) : undefined;
    const before = this.emitted.get(id);
    if (!obj) {
      if (paths) this.owners.delete(id);
      if (!before) return;
      this.emitted.delete(id);
      const { kind, key, object } = before.obj;
      this.emit({ type: 'delete', kind, key, object, origin: before.origin, observedAt } as ObjectEvent);
      return;
    }
    // a rewrite of the same content is not a change. Compared on demand rather than keeping
    // each object's JSON (that copy was ~15% of the daemon's heap at 10k services)
    if (before && before.origin === winner && (before.obj === obj || JSON.stringify(before.obj.object) === JSON.stringify(obj.object))) return;
    this.emitted.set(id, { obj, origin: winner! });
    this.emit({ type: 'upsert', kind: obj.kind, key: obj.key, object: obj.object, origin: winner!, observedAt } as ObjectEvent);
  }

  private emit(e: ObjectEvent): void {
    this.counters.objectsApplied++;
    this.sink?.(e);
  }

  private reject(path: string, reason: RejectReason, detail: string, doc?: number): void {
    this.counters.rejected.set(reason, (this.counters.rejected.get(reason) ?? 0) + 1);
    this.opts.log.warn('manifests: rejected', { file: path, reason, doc, detail });
  }
}
