// metrics/proxy-health: kube-proxy's node health server (pkg/proxy/healthcheck/proxy_health.go)
// on --healthz-address (default 0.0.0.0:10256): /healthz and /livez answer kube-proxy's JSON,
// which cloud load balancers probe for `externalTrafficPolicy: Cluster` services. The daemon
// marks a change queued when the source delivers one and updated when a sync has handled it;
// the node is unhealthy once a queued change has waited longer than the bound. /healthz also
// fails while the Node object says the node is going away (cluster autoscaler drain).

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import { parseListenAddress } from './http.js';

/** kube-proxy's default --healthz-bind-address. */
export const DEFAULT_HEALTHZ_ADDRESS = '0.0.0.0:10256';

/** The cluster autoscaler's taint on a node it is about to delete (kube-proxy's ToBeDeletedTaint). */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

export type FamilyName = 'IPv4' | 'IPv6';

/** Go's zero time.Time, as encoding/json writes it (kube-proxy's lastUpdated before the first sync). */
const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

const iso = (ms: number | undefined) => (ms === undefined ? GO_ZERO_TIME : new Date(ms).toISOString());

/** What the node health server knows; `now` is injectable so tests run on a fake clock. */
export class ProxyHealth {
  private lastUpdated: number | undefined;
  private oldestQueued: number | undefined;
  /** true while starting and whenever the daemon has no Node object (kube-proxy's start-up default) */
  nodeEligible = true;
  /** the families the one pipeline programs (kube-proxy reports each proxier under `status`) */
  families: FamilyName[] = ['IPv4'];

  constructor(
    /** how long a queued change may wait for a sync before the node is unhealthy */
    readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A source change that needs a sync arrived (only the oldest pending one counts). */
  queued(): void {
    this.oldestQueued ??= this.now();
  }

  /** A sync handled everything queued so far. */
  updated(): void {
    this.oldestQueued = undefined;
    this.lastUpdated = this.now();
  }

  /** Healthy unless a queued change has waited timeoutMs or longer (node eligibility aside). */
  healthy(): boolean {
    return this.oldestQueued === undefined || this.now() - this.oldestQueued < this.timeoutMs;
  }

  /** Eligibility from the Node object: not being deleted, no ToBeDeletedByClusterAutoscaler taint. */
  syncNode(node: { metadata?: { deletionTimestamp?: unknown }; spec?: { taints?: { key?: string }[] } } | undefined): void {
    if (!node) {
      this.nodeEligible = true;
      return;
    }
    this.nodeEligible = !node.metadata?.deletionTimestamp && !(node.spec?.taints ?? []).some((t) => t?.key === TO_BE_DELETED_TAINT);
  }

  /**
   * The answer to /healthz or /livez: kube-proxy's status code and JSON (encoding/json of its
   * ProxyHealth: lastUpdated, currentTime, nodeEligible on /healthz only, healthy, status per
   * family). As kube-proxy does, a healthy answer reports lastUpdated = currentTime.
   */
  answer(path: '/healthz' | '/livez'): { status: number; body: string } {
    const now = this.now();
    const healthy = this.healthy();
    const ok = healthy && (path === '/livez' || this.nodeEligible);
    const status: Record<string, { lastUpdated: string; healthy: boolean }> = {};
    if (this.lastUpdated !== undefined) for (const f of this.families) status[f] = { lastUpdated: iso(this.lastUpdated), healthy };
    const body = {
      lastUpdated: iso(ok ? now : this.lastUpdated),
      currentTime: iso(now),
      ...(path === '/healthz' ? { nodeEligible: this.nodeEligible } : {}),
      healthy,
      ...(Object.keys(status).length > 0 ? { status } : {}),
    };
    return { status: ok ? 200 : 503, body: JSON.stringify(body) };
  }
}

export interface ProxyHealthServer {
  server: Server;
  address: string;
  port: number;
  close(): Promise<void>;
}

/** kube-proxy's counters of /healthz and /livez answers, by status code (same names as kube-proxy). */
export function proxyHealthCounters(registry: Registry): { healthz: Counter<'code'>; livez: Counter<'code'> } {
  return {
    healthz: new Counter({
      name: 'kubeproxy_proxy_healthz_total',
      help: 'Node health server /healthz answers by status code (kube-proxy name).',
      labelNames: ['code'],
      registers: [registry],
    }),
    livez: new Counter({
      name: 'kubeproxy_proxy_livez_total',
      help: 'Node health server /livez answers by status code (kube-proxy name).',
      labelNames: ['code'],
      registers: [registry],
    }),
  };
}

/**
 * Listens on `addr` (host:port, [v6]:port, :port). A wildcard host (0.0.0.0, ::, empty) listens
 * on every address of both families, as Go does for kube-proxy's 0.0.0.0:10256.
 */
export async function startProxyHealthServer(addr: string, health: ProxyHealth, counters?: ReturnType<typeof proxyHealthCounters>): Promise<ProxyHealthServer> {
  const { host, port } = parseListenAddress(addr);
  const wildcard = host === undefined || host === '0.0.0.0' || host === '::';
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/healthz' && path !== '/livez') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
      res.end('404 page not found\n');
      return;
    }
    const a = health.answer(path);
    (path === '/healthz' ? counters?.healthz : counters?.livez)?.inc({ code: String(a.status) });
    res.writeHead(a.status, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' });
    res.end(a.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, wildcard ? undefined : host, () => {
      server.off('error', reject);
      // a later socket error must not become an uncaught exception in the daemon
      server.on('error', () => undefined);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return { server, address: a.address, port: a.port, close };
}
