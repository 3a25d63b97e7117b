// test/k8s/fake-apiserver: a stand-in kube-apiserver for the eight kinds weir watches, speaking
// the real list/watch protocol so the real @kubernetes/client-node informers talk to it
// unmodified. What it models, as the real server does it:
// - one global, monotonically increasing resourceVersion (etcd's revision); every write bumps it;
// - list: `{kind: 'ServiceList', apiVersion, metadata: {resourceVersion, continue?}, items}`,
//   items without kind/apiVersion; `limit` + `continue` paging where every page shows the state
//   at the first page's resourceVersion; a continue token older than the compaction point → 410;
// - watch (`?watch=true`): a chunked 200 stream of `{"type","object"}` lines starting after the
//   requested resourceVersion from a bounded event history; a version older than the history →
//   one `ERROR` event carrying a 410 `Expired` Status, then the stream ends (what the real watch
//   cache answers); `allowWatchBookmarks` → periodic BOOKMARK events, and one before a
//   `timeoutSeconds` end; no resourceVersion (or "0") → synthetic ADDED for the current state;
// - controls for tests: apply/delete, dropWatches (clean end or an abrupt reset),
//   compactHistory, stop/restart on the same port (same or new state), a request log;
// - a group that is not served (Calico's projectcalico.org without its CRDs: `serveGroup`):
//   404 on its paths (the plain-text `404 page not found` of the server's catch-all, not a
//   Status) and absent from discovery, as the real server answers for a missing CRD;
//   uninstalling it ends its watches and drops its objects (as deleting a CRD deletes its CRs).
// Optional TLS (a self-signed certificate made with the openssl CLI) and bearer-token auth, so
// in-cluster configuration is exercised as well.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type FakeKind = 'Service' | 'EndpointSlice' | 'Pod' | 'Namespace' | 'Node' | 'NetworkPolicy' | 'GlobalNetworkPolicy' | 'HostEndpoint';

interface ResourceInfo {
  kind: FakeKind;
  /** '' for the core group */
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

export const FAKE_RESOURCES: readonly ResourceInfo[] = [
  { kind: 'Service', group: '', version: 'v1', plural: 'services', namespaced: true },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespaced: true },
  { kind: 'Pod', group: '', version: 'v1', plural: 'pods', namespaced: true },
  { kind: 'Namespace', group: '', version: 'v1', plural: 'namespaces', namespaced: false },
  { kind: 'Node', group: '', version: 'v1', plural: 'nodes', namespaced: false },
  { kind: 'NetworkPolicy', group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies', namespaced: true },
  { kind: 'GlobalNetworkPolicy', group: 'projectcalico.org', version: 'v3', plural: 'globalnetworkpolicies', namespaced: false },
  { kind: 'HostEndpoint', group: 'projectcalico.org', version: 'v3', plural: 'hostendpoints', namespaced: false },
];

const apiVersionOf = (r: ResourceInfo) => (r.group ? `${r.group}/${r.version}` : r.version);

/** A stored object: plain JSON as the server would return it. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface HistoryEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  kind: FakeKind;
  namespace: string;
  object: KubeObject;
}

interface OpenWatch {
  res: ServerResponse;
  resource: ResourceInfo;
  namespace: string | undefined;
  bookmarks: boolean;
  timers: NodeJS.Timeout[];
  /** resourceVersion of the last event sent */
  sentRv: number;
}

interface ListSnapshot {
  rv: number;
  items: KubeObject[];
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
  /** 'list' | 'watch' | 'get' | 'discovery' | 'other' */
  verb: string;
  kind?: FakeKind;
}

export interface FakeApiServerOptions {
  /** Serve HTTPS with a fresh self-signed certificate for 127.0.0.1. */
  tls?: boolean;
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
  /** Watch events kept for resuming watches (the watch cache's window). Default 10,000. */
  historyLimit?: number;
  /** Period of BOOKMARK events on watches that allow them; 0 = only before a timeout end. Default 0. */
  bookmarkIntervalMs?: number;
  /**
   * How an expired watch resourceVersion is answered: 'event' (default, what the real server
   * does: 200 + an ERROR event with a 410 Status) or 'status' (an HTTP 410 response).
   */
  expiredWatch?: 'event' | 'status';
  /** Listen address. Default 127.0.0.1 (a lab namespace's address to serve the lab). */
  host?: string;
  /** Port to listen on. Default: any free one. */
  port?: number;
  /** More IP addresses for the certificate (a ClusterIP the clients dial). */
  certIps?: string[];
  /** API groups not served at start (a cluster without those CRDs); `serveGroup` installs them. */
  unservedGroups?: string[];
  /** Kinds the client may not list or watch (RBAC without them): 403 Forbidden; `forbid` changes it. */
  forbidden?: FakeKind[];
}

export interface FakeCounters {
  lists: number;
  listPages: number;
  watches: number;
  watchEvents: number;
  bookmarks: number;
  expired: number;
  dropped: number;
}

const STATUS_KIND = { kind: 'Status', apiVersion: 'v1', metadata: {} };

function status(code: number, reason: string, message: string): KubeObject {
  return { ...STATUS_KIND, status: 'Failure', message, reason, code };
}

/** A self-signed certificate for 127.0.0.1 made with the openssl CLI. */
export function selfSignedCert(ips: string[] = ['127.0.0.1']): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'weir-fake-apiserver-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=fake-apiserver',
        '-addext',
        `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}`,
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'pipe' },
    );
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export class FakeApiServer {
  readonly requests: RequestRecord[] = [];
  readonly counters: FakeCounters = { lists: 0, listPages: 0, watches: 0, watchEvents: 0, bookmarks: 0, expired: 0, dropped: 0 };
  /** PEM of the server certificate (tls only): the client's CA. */
  readonly caPem: string | undefined;
  private readonly tlsKey: { key: string; cert: string } | undefined;
  private rv = 1;
  /** kind → 'ns/name' | 'name' → object */
  private objects = new Map<FakeKind, Map<string, KubeObject>>();
  private history: HistoryEvent[] = [];
  /** watches from a resourceVersion below this get 410 (the oldest event kept is compactedRv+1) */
  private compactedRv = 1;
  private readonly watches = new Set<OpenWatch>();
  private readonly snapshots = new Map<string, ListSnapshot>();
  private nextSnapshot = 1;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private port: number;
  private uidSeq = 0;
  private readonly unserved: Set<string>;
  private readonly forbidden: Set<FakeKind>;

  constructor(private readonly opts: FakeApiServerOptions = {}) {
    this.port = opts.port ?? 0;
    this.unserved = new Set(opts.unservedGroups ?? []);
    this.forbidden = new Set(opts.forbidden ?? []);
    for (const r of FAKE_RESOURCES) this.objects.set(r.kind, new Map());
    if (opts.tls) {
      this.tlsKey = selfSignedCert([...new Set(['127.0.0.1', opts.host ?? '127.0.0.1', ...(opts.certIps ?? [])])]);
      this.caPem = this.tlsKey.cert;
    }
  }

  /** The server URL, e.g. http://127.0.0.1:41234 (valid after start; kept across restart). */
  get url(): string {
    const h = this.opts.host ?? '127.0.0.1';
    return `${this.opts.tls ? 'https' : 'http'}://${h.includes(':') ? `[${h}]` : h}:${this.port}`;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get listening(): boolean {
    return this.server !== undefined;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    const server = this.tlsKey ? createHttpsServer({ key: this.tlsKey.key, cert: this.tlsKey.cert }, handler) : createHttpServer(handler);
    server.keepAliveTimeout = 60_000;
    // the raw TCP socket in both cases: destroying it resets TLS connections too
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.opts.host ?? '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Down: no listener, every connection reset (clients see errors, not clean ends). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of [...this.watches]) this.closeWatch(w, 'abrupt');
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    server.closeAllConnections();
    await closed;
  }

  /**
   * Up again on the same port. `state` replaces every object (a new cluster state: objects not
   * in it are gone, without DELETED events, as after an etcd restore). The watch history is
   * cleared unless `keepHistory`: a restarted server's watch cache starts at its current
   * revision, so clients resuming from an older one get 410 and relist.
   */
  async restart(opts: { state?: KubeObject[]; keepHistory?: boolean } = {}): Promise<void> {
    await this.stop();
    if (opts.state) {
      for (const m of this.objects.values()) m.clear();
      for (const o of opts.state) this.store(o, false);
    }
    if (!opts.keepHistory) this.compactHistory();
    await this.start();
  }

  /**
   * Install (true) or remove (false) an API group, as installing or deleting its CRDs does: while
   * removed its paths answer 404 and discovery omits it; removing it ends its open watches and
   * drops its objects (a CRD's deletion deletes its custom resources).
   */
  serveGroup(group: string, served: boolean): void {
    if (served) {
      this.unserved.delete(group);
      return;
    }
    this.unserved.add(group);
    for (const w of [...this.watches]) if (w.resource.group === group) this.closeWatch(w, 'clean');
    for (const r of FAKE_RESOURCES) if (r.group === group) this.objects.get(r.kind)!.clear();
  }

  /** Refuse (true) or allow (false) the client's requests on a kind, as an RBAC change does. */
  forbid(kind: FakeKind, forbidden: boolean): void {
    if (forbidden) this.forbidden.add(kind);
    else this.forbidden.delete(kind);
  }

  /** Whether a group is served (its CRDs installed). */
  serves(group: string): boolean {
    return !this.unserved.has(group);
  }

  /** Create or replace an object (its resourceVersion is assigned). Returns the stored object. */
  apply(obj: KubeObject): KubeObject {
    return this.store(obj, true);
  }

  /** Delete an object; false when it did not exist. */
  delete(kind: FakeKind, namespace: string | undefined, name: string): boolean {
    const r = this.resource(kind);
    const key = r.namespaced ? `${namespace || 'default'}/${name}` : name;
    const m = this.objects.get(kind)!;
    const old = m.get(key);
    if (!old) return false;
    m.delete(key);
    const rv = ++this.rv;
    // the DELETED event carries the object's last state at the deletion's revision
    const object = { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } };
    this.record({ rv, type: 'DELETED', kind, namespace: r.namespaced ? namespace || 'default' : '', object });
    return true;
  }

  /** The current objects of a kind, keyed 'ns/name' (namespaced) or 'name'. */
  state(kind: FakeKind): Map<string, KubeObject> {
    return new Map(this.objects.get(kind)!);
  }

  /** End every open watch: 'clean' ends the chunked stream, 'abrupt' resets the connection. */
  dropWatches(how: 'clean' | 'abrupt' = 'clean'): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) this.closeWatch(w, how);
    this.counters.dropped += n;
    return n;
  }

  /**
   * What the real server does when an open watch falls behind its window: send an ERROR event
   * with a 410 Expired Status on every open watch, then end it.
   */
  expireOpenWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) {
      this.counters.expired++;
      this.send(w, 'ERROR', status(410, 'Expired', `too old resource version: ${w.sentRv} (${this.rv})`), this.rv);
      this.closeWatch(w, 'clean');
    }
    return n;
  }

  /** Called after each list page is answered (tests use it to act between pages). */
  onListPage: ((kind: FakeKind, page: number) => void) | undefined;

  /** Forget the event history and expire continue tokens: the next resume or continue gets 410. */
  compactHistory(): void {
    this.history = [];
    this.compactedRv = this.rv;
    this.snapshots.clear();
  }

  get openWatches(): number {
    return this.watches.size;
  }

  requestsOf(verb: string, kind?: FakeKind): RequestRecord[] {
    return this.requests.filter((r) => r.verb === verb && (kind === undefined || r.kind === kind));
  }

  // ---- internals ----

  private resource(kind: FakeKind): ResourceInfo {
    return FAKE_RESOURCES.find((r) => r.kind === kind)!;
  }

  private store(obj: KubeObject, emit: boolean): KubeObject {
    const kind = obj.kind as FakeKind;
    const r = FAKE_RESOURCES.find((x) => x.kind === kind);
    if (!r) throw new Error(`fake apiserver: unknown kind ${String(obj.kind)}`);
    if (!this.serves(r.group)) throw new Error(`fake apiserver: ${kind} is not served (group ${r.group} not installed)`);
    const name = obj.metadata?.name;
    if (!name) throw new Error('fake apiserver: object without metadata.name');
    const namespace = r.namespaced ? obj.metadata?.namespace || 'default' : undefined;
    const key = namespace !== undefined ? `${namespace}/${name}` : name;
    const m = this.objects.get(kind)!;
    const old = m.get(key);
    const rv = ++this.rv;
    // deep copy: the caller may keep mutating its fixture
    const stored = JSON.parse(JSON.stringify(obj)) as KubeObject;
    stored.apiVersion = apiVersionOf(r);
    stored.metadata = {
      ...stored.metadata,
      name,
      ...(namespace !== undefined ? { namespace } : {}),
      uid: (old?.metadata?.uid as string | undefined) ?? `00000000-0000-4000-8000-${String(++this.uidSeq).padStart(12, '0')}`,
      resourceVersion: String(rv),
      creationTimestamp: (old?.metadata?.creationTimestamp as string | undefined) ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    m.set(key, stored);
    if (emit) this.record({ rv, type: old ? 'MODIFIED' : 'ADDED', kind, namespace: namespace ?? '', object: stored });
    return stored;
  }

  private record(ev: HistoryEvent): void {
    this.history.push(ev);
    const limit = this.opts.historyLimit ?? 10_000;
    if (this.history.length > limit) {
      const cut = this.history.length - limit;
      this.compactedRv = this.history[cut - 1]!.rv;
      this.history.splice(0, cut);
    }
    for (const w of this.watches) {
      if (w.resource.kind === ev.kind && (w.namespace === undefined || w.namespace === ev.namespace)) this.send(w, ev.type, ev.object, ev.rv);
    }
  }

  private send(w: OpenWatch, type: string, object: KubeObject, rv: number): void {
    if (w.res.writableEnded || w.res.destroyed) return;
    w.res.write(`${JSON.stringify({ type, object })}\n`);
    w.sentRv = rv;
    if (type === 'BOOKMARK') this.counters.bookmarks++;
    else if (type !== 'ERROR') this.counters.watchEvents++;
  }

  private closeWatch(w: OpenWatch, how: 'clean' | 'abrupt'): void {
    this.watches.delete(w);
    for (const t of w.timers) clearTimeout(t);
    if (how === 'abrupt') w.res.socket?.destroy();
    else if (!w.res.writableEnded) w.res.end();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    const rec: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query, status: 200, verb: 'other' };
    this.requests.push(rec);
    const reply = (code: number, body: unknown) => {
      rec.status = code;
      const text = JSON.stringify(body);
      res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (this.opts.token !== undefined && req.headers.authorization !== `Bearer ${this.opts.token}`) {
      return reply(401, status(401, 'Unauthorized', 'Unauthorized'));
    }
    if (req.method !== 'GET') return reply(405, status(405, 'MethodNotAllowed', `the fake apiserver only serves GET, not ${req.method}`));

    const discovery = this.discovery(url.pathname);
    if (discovery !== undefined) {
      rec.verb = 'discovery';
      return reply(200, discovery);
    }
    const route = this.route(url.pathname);
    if (!route) {
      // a resource of a group not served: recorded under its kind and verb (tests count the retries)
      const absent = this.route(url.pathname, true);
      if (absent) {
        rec.kind = absent.resource.kind;
        rec.verb = absent.name !== undefined ? 'get' : query.watch === 'true' || query.watch === '1' ? 'watch' : 'list';
        // a group the server does not know is answered by its catch-all: plain text, not a Status
        rec.status = 404;
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
        res.end('404 page not found\n');
        return;
      }
    }
    if (!route) return reply(404, status(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`));
    rec.kind = route.resource.kind;
    if (this.forbidden.has(route.resource.kind)) {
      rec.verb = route.name !== undefined ? 'get' : query.watch === 'true' || query.watch === '1' ? 'watch' : 'list';
      const r = route.resource;
      const message = `${r.plural}${r.group ? `.${r.group}` : ''} is forbidden: User "system:serviceaccount:kube-system:weir" cannot ${rec.verb} resource "${r.plural}" in API group "${r.group}" at the cluster scope`;
      return reply(403, { ...status(403, 'Forbidden', message), details: { group: r.group, kind: r.plural } });
    }
    if (route.name !== undefined) {
      rec.verb = 'get';
      const key = route.resource.namespaced ? `${route.namespace}/${route.name}` : route.name;
      const obj = this.objects.get(route.resource.kind)!.get(key);
      return obj ? reply(200, obj) : reply(404, status(404, 'NotFound', `${route.resource.plural} "${route.name}" not found`));
    }
    if (query.watch === 'true' || query.watch === '1') {
      rec.verb = 'watch';
      return this.watch(route.resource, route.namespace, query, res, rec);
    }
    rec.verb = 'list';
    const out = this.list(route.resource, route.namespace, query);
    reply(out.code, out.body);
    if (out.code === 200) this.onListPage?.(route.resource.kind, this.counters.listPages);
  }

  /** The resource a path names; `evenUnserved`: also one of a group not served now. */
  private route(path: string, evenUnserved = false): { resource: ResourceInfo; namespace?: string; name?: string } | undefined {
    // /api/v1[/namespaces/{ns}]/{plural}[/{name}] and /apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}]
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    if (!m) return undefined;
    const group = m[2] ?? '';
    const version = m[1] ?? m[3]!;
    const namespace = m[4];
    const name = m[6];
    const resource = FAKE_RESOURCES.find((r) => r.group === group && r.version === version && r.plural === m[5] && (evenUnserved || this.serves(r.group)));
    // a cluster-scoped resource has no namespaced path
    if (!resource || (!resource.namespaced && namespace !== undefined)) return undefined;
    return { resource, ...(namespace !== undefined ? { namespace } : {}), ...(name !== undefined ? { name } : {}) };
  }

  private discovery(path: string): unknown {
    if (path === '/version') return { major: '1', minor: '31', gitVersion: 'v1.31.0-weir-fake', platform: 'linux/amd64' };
    if (path === '/api')
      return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }] };
    const served = FAKE_RESOURCES.filter((r) => this.serves(r.group));
    if (path === '/apis') {
      const groups = [...new Map(served.filter((r) => r.group).map((r) => [r.group, r.version]))].map(([g, v]) => {
        const gv = { groupVersion: `${g}/${v}`, version: v };
        return { name: g, versions: [gv], preferredVersion: gv };
      });
      return { kind: 'APIGroupList', apiVersion: 'v1', groups };
    }
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(path);
    const inGroup = m ? served.filter((r) => r.group === (m[2] ?? '') && r.version === (m[1] ?? m[3])) : [];
    if (m && inGroup.length > 0) {
      const group = m[2] ?? '';
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: group ? `${group}/${inGroup[0]!.version}` : 'v1',
        resources: inGroup.map((r) => ({
          name: r.plural,
          singularName: r.kind.toLowerCase(),
          namespaced: r.namespaced,
          kind: r.kind,
          verbs: ['get', 'list', 'watch'],
        })),
      };
    }
    return undefined;
  }

  private current(r: ResourceInfo, namespace: string | undefined): KubeObject[] {
    const all = [...this.objects.get(r.kind)!.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, o]) => o);
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  private list(r: ResourceInfo, namespace: string | undefined, query: Record<string, string>): { code: number; body: unknown } {
    const limit = query.limit ? Number(query.limit) : 0;
    let snap: ListSnapshot;
    let offset = 0;
    let snapId: string | undefined;
    if (query.continue) {
      let token: { id: string; offset: number } | undefined;
      try {
        token = JSON.parse(Buffer.from(query.continue, 'base64url').toString('utf8')) as { id: string; offset: number };
      } catch {
        return { code: 400, body: status(400, 'BadRequest', 'continue key is not valid') };
      }
      const s = this.snapshots.get(token.id);
      if (!s) {
        this.counters.expired++;
        return {
          code: 410,
          body: status(
            410,
            'Expired',
            'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
          ),
        };
      }
      snap = s;
      snapId = token.id;
      offset = token.offset;
    } else {
      this.counters.lists++;
      snap = { rv: this.rv, items: this.current(r, namespace) };
    }
    this.counters.listPages++;
    const end = limit > 0 ? Math.min(snap.items.length, offset + limit) : snap.items.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(snap.rv) };
    if (end < snap.items.length) {
      if (snapId === undefined) {
        snapId = String(this.nextSnapshot++);
        this.snapshots.set(snapId, snap);
      }
      metadata.continue = Buffer.from(JSON.stringify({ id: snapId, offset: end })).toString('base64url');
      metadata.remainingItemCount = snap.items.length - end;
    } else if (snapId !== undefined) {
      this.snapshots.delete(snapId);
    }
    // list items carry no kind/apiVersion: the list's kind says what they are
    const items = snap.items.slice(offset, end).map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
    return { code: 200, body: { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata, items } };
  }

  private watch(r: ResourceInfo, namespace: string | undefined, query: Record<string, string>, res: ServerResponse, rec: RequestRecord): void {
    this.counters.watches++;
    const fromText = query.resourceVersion ?? '';
    const from = fromText === '' || fromText === '0' ? undefined : Number(fromText);
    if (from !== undefined && (!Number.isInteger(from) || from < 0)) {
      rec.status = 400;
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status(400, 'BadRequest', `invalid resource version ${JSON.stringify(fromText)}`)));
      return;
    }
    const expired = from !== undefined && from < this.compactedRv;
    if (expired && this.opts.expiredWatch === 'status') {
      this.counters.expired++;
      rec.status = 410;
      res.writeHead(410, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`)));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const w: OpenWatch = { res, resource: r, namespace, bookmarks: query.allowWatchBookmarks === 'true', timers: [], sentRv: from ?? this.rv };
    if (expired) {
      this.counters.expired++;
      this.send(w, 'ERROR', status(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`), this.rv);
      res.end();
      return;
    }
    const inScope = (kind: FakeKind, ns: string) => kind === r.kind && (namespace === undefined || namespace === ns);
    if (from === undefined) {
      for (const o of this.current(r, namespace)) this.send(w, 'ADDED', o, Number(o.metadata?.resourceVersion));
    } else {
      for (const ev of this.history) if (ev.rv > from && inScope(ev.kind, ev.namespace)) this.send(w, ev.type, ev.object, ev.rv);
    }
    this.watches.add(w);
    const bookmark = () => this.send(w, 'BOOKMARK', { kind: r.kind, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(this.rv) } }, this.rv);
    const every = this.opts.bookmarkIntervalMs ?? 0;
    if (w.bookmarks && every > 0) {
      const t = setInterval(bookmark, every);
      t.unref();
      w.timers.push(t);
    }
    const timeout = Number(query.timeoutSeconds ?? 0);
    if (timeout > 0) {
      const t = setTimeout(() => {
        if (w.bookmarks) bookmark();
        this.closeWatch(w, 'clean');
      }, timeout * 1000);
      t.unref();
      w.timers.push(t);
    }
    res.on('close', () => {
      this.watches.delete(w);
      for (const t of w.timers) clearTimeout(t);
    });
  }
}
