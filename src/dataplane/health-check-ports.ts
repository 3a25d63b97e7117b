// dataplane/health-check-ports: kube-proxy's service health servers (pkg/proxy/healthcheck/
// service_health.go). Every proxied Service of type LoadBalancer with externalTrafficPolicy
// Local has a healthCheckNodePort; on it the node answers HTTP, any path, 200 while it has
// ready local endpoints and 503 while it has none, so a cloud load balancer sends traffic only
// to nodes that can serve it. Fed from the store and the node context after each sync (the
// daemon calls flush); listeners open, close and move with the services, a port already in
// use is logged (weir_errors_total{kind="healthcheck"}) and retried on the next sync.

import { createServer, type Server } from 'node:http';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { errText, type Logger } from '../log.js';
import { collectEndpoints } from '../model/endpoints.js';
import { affectedServiceKeys, skipReason } from '../model/services.js';
import type { NodeContext, ServiceInputs } from '../model/service-types.js';

/** One service health server's desired state. */
export interface HealthCheckService {
  /** 'ns/name' */
  key: string;
  namespace: string;
  name: string;
  port: number;
  /** ready endpoints on this node, each address once (kube-proxy's LocalReadyEndpoints) */
  localEndpoints: number;
}

/**
 * The health server a Service needs on this node, or null. Like kube-proxy: proxied services
 * of type LoadBalancer with eTP=Local and a valid healthCheckNodePort; the count is the
 * distinct addresses of this node's ready endpoints over every port of the service's slices
 * (serving-but-terminating ones do not count: a draining node must fail the check).
 */
export function healthCheckService(svc: V1Service, slices: Iterable<V1EndpointSlice>, node: NodeContext): HealthCheckService | null {
  const spec = svc.spec;
  const port = spec?.healthCheckNodePort;
  if (spec?.type !== 'LoadBalancer' || spec.externalTrafficPolicy !== 'Local') return null;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  if (skipReason(svc, node.proxyName) !== null) return null;
  const namespace = svc.metadata?.namespace || 'default';
  const name = svc.metadata?.name ?? '';
  const mine = [...slices].filter((s) => (s.metadata?.namespace || 'default') === namespace);
  const local = new Set<string>();
  for (const byFamily of collectEndpoints(mine, node.nodeName).values())
    for (const e of [...byFamily[4], ...byFamily[6]]) if (e.backend.isLocal && e.backend.ready) local.add(e.backend.address);
  return { key: `${namespace}/${name}`, namespace, name, port, localEndpoints: local.size };
}

/** Every health server the inputs need, by service key. */
export function healthCheckServices(inputs: ServiceInputs, node: NodeContext): Map<string, HealthCheckService> {
  const out = new Map<string, HealthCheckService>();
  for (const [key, svc] of inputs.services) {
    const h = healthCheckService(svc, inputs.slicesForService(key), node);
    if (h) out.set(key, h);
  }
  return out;
}

/** kube-proxy's answer: status and the JSON body byte for byte (its dedented template, tabs). */
export function serviceHealthAnswer(namespace: string, name: string, localEndpoints: number, proxyHealthy: boolean): { status: number; body: string } {
  const body = [
    '{',
    '\t"service": {',
    `\t\t"namespace": ${JSON.stringify(namespace)},`,
    `\t\t"name": ${JSON.stringify(name)}`,
    '\t},',
    `\t"localEndpoints": ${localEndpoints},`,
    `\t"serviceProxyHealthy": ${proxyHealthy}`,
    '}',
  ].join('\n');
  return { status: localEndpoints !== 0 && proxyHealthy ? 200 : 503, body };
}

export interface HealthCheckPortsOptions {
  log: Logger;
  /** the node health server's verdict (serviceProxyHealthy) */
  proxyHealthy?: () => boolean;
}

interface Listening {
  port: number;
  /** the addresses it listens on, joined ('' = all) */
  where: string;
  servers: Server[];
}

/** The open health servers, following the desired set on every flush. */
export class HealthCheckPorts {
  /** desired state, updated synchronously: requests read their count from here */
  private readonly desired = new Map<string, HealthCheckService>();
  private readonly listening = new Map<string, Listening>();
  /** last failure logged per service (`port error`), so a retry that fails the same way stays quiet */
  private readonly failures = new Map<string, string>();
  private readonly pending = new Set<string>();
  /** null: every address (kube-proxy without --nodeport-addresses) */
  private addresses: readonly string[] | null = null;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: HealthCheckPortsOptions) {}

  /** Addresses to listen on (the node's nodePortAddresses), or null for all. Applied at the next flush. */
  setAddresses(addresses: readonly string[] | null): void {
    this.addresses = addresses === null ? null : [...addresses].sort();
  }

  /** A store change: the services it touches are recomputed at the next flush. */
  changed(kind: string, previous: unknown, current: unknown): void {
    for (const k of affectedServiceKeys(kind, previous as never, current as never)) this.pending.add(k);
  }

  /** Recompute the touched services (or all with `full`), then open/close listeners to match. */
  flush(inputs: ServiceInputs, node: NodeContext, full = false): Promise<void> {
    if (full) {
      this.pending.clear();
      this.desired.clear();
      for (const [k, h] of healthCheckServices(inputs, node)) this.desired.set(k, h);
    } else {
      for (const key of this.pending) {
        const svc = inputs.services.get(key);
        const h = svc ? healthCheckService(svc, inputs.slicesForService(key), node) : null;
        if (h) this.desired.set(key, h);
        else this.desired.delete(key);
      }
      this.pending.clear();
    }
    this.chain = this.chain.then(() => this.apply());
    return this.chain;
  }

  /** What is served now: service key -> port, local endpoints, listening or not. */
  snapshot(): { key: string; port: number; localEndpoints: number; listening: boolean }[] {
    return [...this.desired.values()]
      .map((h) => ({ key: h.key, port: h.port, localEndpoints: h.localEndpoints, listening: this.listening.has(h.key) }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Closes every listener; later flushes do nothing. */
  async close(): Promise<void> {
    this.closed = true;
    this.desired.clear();
    this.chain = this.chain.then(() => this.apply());
    await this.chain;
  }

  private async apply(): Promise<void> {
    const where = this.addresses === null ? '' : this.addresses.join(',');
    // close first: a port that moves between services must be free before it is opened again
    for (const [key, l] of [...this.listening]) {
      const want = this.desired.get(key);
      if (want && want.port === l.port && l.where === where) continue;
      this.listening.delete(key);
      await closeAll(l.servers);
      this.opts.log.info('health check port closed', { service: key, port: l.port });
    }
    if (this.closed) return;
    for (const [key, h] of this.desired) {
      if (this.listening.has(key)) continue;
      try {
        const servers = await this.listen(h);
        this.listening.set(key, { port: h.port, where, servers });
        this.failures.delete(key);
        this.opts.log.info('health check port listening', { service: key, port: h.port, addresses: where || 'all', localEndpoints: h.localEndpoints });
      } catch (e) {
        const error = errText(e);
        const what = `${h.port} ${(e as NodeJS.ErrnoException).code ?? error}`;
        if (this.failures.get(key) !== what) {
          this.failures.set(key, what);
          this.opts.log.warn('health check port failed', { service: key, port: h.port, addresses: where || 'all', error, retry: 'next sync' });
        }
      }
    }
  }

  /** One server per address (or one on all); on any failure the ones opened are closed again. */
  private async listen(h: HealthCheckService): Promise<Server[]> {
    const servers: Server[] = [];
    try {
      for (const host of this.addresses ?? [undefined]) {
        const server = createServer((_req, res) => {
          // the count is read per request: a sync changes it without touching the listener
          const now = this.desired.get(h.key);
          const a = serviceHealthAnswer(h.namespace, h.name, now?.localEndpoints ?? 0, this.opts.proxyHealthy?.() ?? true);
          res.writeHead(a.status, {
            'content-type': 'application/json',
            'x-content-type-options': 'nosniff',
            'x-load-balancing-endpoint-weight': String(now?.localEndpoints ?? 0),
          });
          res.end(a.body);
        });
        servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(h.port, host, () => {
            server.off('error', reject);
            server.on('error', () => undefined);
            resolve();
          });
        });
      }
      return servers;
    } catch (e) {
      await closeAll(servers);
      throw e;
    }
  }
}

function closeAll(servers: readonly Server[]): Promise<void> {
  return Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((r) => {
          if (!s.listening) return r();
          s.close(() => r());
          s.closeAllConnections();
        }),
    ),
  ).then(() => undefined);
}
