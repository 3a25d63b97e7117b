// test/k8s/remote-apiserver: the fake API server running in a lab network namespace
// (fake-apiserver-main.ts), driven from the test process over its unix control socket. Same
// verbs as FakeApiServer, asynchronous. The process belongs to the lab: it stops with it.

import { request } from 'node:http';
import { join } from 'node:path';
import type { Netns } from '../lib/lab.js';
import type { ManagedProcess } from '../lib/proc.js';
import { repoRoot } from '../lib/paths.js';
import type { FakeApiServerOptions, FakeCounters, FakeKind, KubeObject } from './fake-apiserver.js';

const MAIN_JS = join(repoRoot, 'dist', 'test', 'k8s', 'fake-apiserver-main.js');

export class RemoteApiServer {
  private constructor(
    readonly proc: ManagedProcess,
    private readonly control: string,
    /** https://<host>:<port> */
    readonly url: string,
    readonly caPem: string | undefined,
  ) {}

  /** Starts the fake API server in `ns`, listening on opts.host. */
  static async start(ns: Netns, dir: string, opts: FakeApiServerOptions): Promise<RemoteApiServer> {
    const control = join(dir, `apiserver-${ns.short}.sock`);
    const proc = ns.spawn(process.execPath, ['--enable-source-maps', MAIN_JS, JSON.stringify(opts), control], { label: `fake apiserver [${ns.short}]` });
    const m = await proc.waitForOutput(/^listening (\S+)$/m, 10_000);
    const probe = new RemoteApiServer(proc, control, m[1]!, undefined);
    const info = await probe.info();
    return new RemoteApiServer(proc, control, m[1]!, info.caPem);
  }

  private call<T>(op: string, args?: unknown): Promise<T> {
    const payload = JSON.stringify({ op, args });
    return new Promise<T>((resolve, reject) => {
      const req = request(
        { socketPath: this.control, path: '/', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const r = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { result?: T; error?: string };
            if (r.error !== undefined) reject(new Error(`fake apiserver ${op}: ${r.error}`));
            else resolve(r.result as T);
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Creates or replaces objects (in one control call, in order); returns the new resourceVersion. */
  apply(objects: KubeObject[]): Promise<string> {
    return this.call('apply', objects);
  }
  delete(items: { kind: FakeKind; namespace?: string; name: string }[]): Promise<boolean[]> {
    return this.call('delete', items);
  }
  dropWatches(how: 'clean' | 'abrupt' = 'clean'): Promise<number> {
    return this.call('dropWatches', how);
  }
  expireOpenWatches(): Promise<number> {
    return this.call('expireOpenWatches');
  }
  compactHistory(): Promise<void> {
    return this.call('compactHistory');
  }
  /** Installs or removes an API group (its CRDs): FakeApiServer.serveGroup. */
  serveGroup(group: string, served: boolean): Promise<void> {
    return this.call('serveGroup', { group, served });
  }
  stop(): Promise<void> {
    return this.call('stop');
  }
  restart(opts: { state?: KubeObject[]; keepHistory?: boolean } = {}): Promise<void> {
    return this.call('restart', opts);
  }
  /** Several calls in one turn of the server's event loop (e.g. drop watches + changes + compact). */
  batch(calls: { op: 'apply' | 'delete' | 'dropWatches' | 'expireOpenWatches' | 'compactHistory'; args?: unknown }[]): Promise<unknown[]> {
    return this.call('batch', calls);
  }
  /** kind → key → resourceVersion */
  state(): Promise<Record<string, Record<string, string>>> {
    return this.call('state');
  }
  objects(kind: FakeKind): Promise<Record<string, KubeObject>> {
    return this.call('objects', kind);
  }
  info(): Promise<{ url: string; resourceVersion: string; openWatches: number; counters: FakeCounters; listening: boolean; caPem?: string }> {
    return this.call('info');
  }

  /** A kubeconfig file for this server (token auth, its CA), dialing `server` (default its URL). */
  kubeconfigYaml(token: string, server = this.url): string {
    const ca = this.caPem ? `    certificate-authority-data: ${Buffer.from(this.caPem).toString('base64')}\n` : '    insecure-skip-tls-verify: true\n';
    return `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: ${server}\n${ca}users:\n- name: weir\n  user:\n    token: ${token}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: weir\ncurrent-context: fake\n`;
  }
}
