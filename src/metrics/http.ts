// metrics/http: the node's HTTP endpoint: /metrics (Prometheus text), /healthz = /livez
// (liveness: does the daemon make progress; 200, or 503 naming what is stuck) and /readyz
// (readiness: the first full sync is in the maps, the API server answers, nothing refused;
// 503 naming what is missing). docs/health.md says what each probe means.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.js';

export interface Health {
  /** what a restart would fix (the liveness probe), each one readable line; empty = live */
  problems(): string[];
  /** why the node is not ready (yet, or any more); empty = ready */
  notReady(): string[];
}

export interface HttpEndpoint {
  server: Server;
  address: string;
  port: number;
  close(): Promise<void>;
}

/** host:port, [v6]:port or :port (all addresses). */
export function parseListenAddress(addr: string): { host?: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new Error(`bad listen address ${JSON.stringify(addr)}: use host:port, [v6]:port or :port`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`bad listen address ${JSON.stringify(addr)}: port above 65535`);
  const host = m[1] ?? m[2];
  return { ...(host ? { host } : {}), port };
}

export async function startHttp(addr: string, metrics: Metrics, health: Health): Promise<HttpEndpoint> {
  const { host, port } = parseListenAddress(addr);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const text = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'method not allowed\n');
    if (path === '/metrics') {
      metrics.text().then(
        (body) => text(200, body, metrics.contentType),
        (e: unknown) => text(500, `metrics: ${(e as Error).message}\n`),
      );
      return;
    }
    if (path === '/healthz' || path === '/livez') {
      const p = health.problems();
      return p.length ? text(503, p.map((l) => `unhealthy: ${l}`).join('\n') + '\n') : text(200, 'ok\n');
    }
    if (path === '/readyz') {
      const p = health.notReady();
      return p.length ? text(503, p.map((l) => `not ready: ${l}`).join('\n') + '\n') : text(200, 'ok\n');
    }
    text(404, 'not found: try /metrics, /healthz, /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    server,
    address: a.address,
    port: a.port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
