// Lab helpers for transfers and refusals with real sockets, either family: bulk transfers
// whose integrity is a sha256 (bulk-transfer.py, python3 in the namespace), and the time one
// connect() takes to be refused, measured inside the namespace around the call itself (a
// fresh node process would add its own start-up to the figure).

import { join } from 'node:path';
import type { Cgroup, ManagedProcess, Netns } from './lab.js';
import { repoRoot } from './paths.js';

export const BULK_PY = join(repoRoot, 'test', 'lib', 'bulk-transfer.py');

export interface BulkResult {
  /** get: bytes received; put: bytes the server received (reply.bytes) */
  bytes?: number;
  sent?: number;
  sha256?: string;
  /** put: what the server counted and hashed */
  reply?: { bytes: number; sha256: string; peer: string };
  /** getpeername() of the client socket, `addr:port` */
  peer?: string;
  /** TCP_MAXSEG at the end of the transfer */
  mss?: number;
  seconds?: number;
  error?: string;
}

/** The bulk server on `port` (both families), serving `file` to GET and hashing PUTs. */
export async function bulkServer(ns: Netns, port: number, file: string): Promise<ManagedProcess> {
  const proc = ns.spawn('python3', [BULK_PY, 'serve', '--port', String(port), '--file', file], { label: `bulk-transfer serve :${port} [${ns.short}]` });
  await proc.waitForOutput(/listening tcp/);
  return proc;
}

async function client(ns: Netns, args: string[], timeoutS: number, cgroup?: Cgroup): Promise<BulkResult> {
  const r = await ns.exec('python3', [BULK_PY, ...args, '--timeout', String(timeoutS)], {
    check: false,
    timeoutMs: (timeoutS + 10) * 1000,
    ...(cgroup ? { cgroup } : {}),
  });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as BulkResult;
  } catch {
    return { error: `exit ${r.code}: ${r.stderr.trim() || line}` };
  }
}

/** Downloads the server's file through host:port. */
export function bulkGet(ns: Netns, host: string, port: number, o: { timeoutS?: number; cgroup?: Cgroup } = {}): Promise<BulkResult> {
  return client(ns, ['get', '--host', host, '--port', String(port)], o.timeoutS ?? 60, o.cgroup);
}

/** Uploads `file` through host:port; the server answers with what it counted and hashed. */
export function bulkPut(ns: Netns, host: string, port: number, file: string, o: { timeoutS?: number; cgroup?: Cgroup } = {}): Promise<BulkResult> {
  return client(ns, ['put', '--host', host, '--port', String(port), '--file', file], o.timeoutS ?? 60, o.cgroup);
}

const REFUSAL_PY = `
import json, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
t = time.perf_counter()
try:
    s.connect((host, port))
    outcome = 'connected'
except ConnectionRefusedError:
    outcome = 'refused'
except OSError as e:
    outcome = type(e).__name__ + ': ' + str(e)
print(json.dumps({'outcome': outcome, 'ms': (time.perf_counter() - t) * 1000}))
`;

/** One TCP connect() to host:port from `ns`: how it ended ('refused', 'connected', or the error) and how long it took. */
export async function connectOutcome(ns: Netns, host: string, port: number, cgroup?: Cgroup): Promise<{ outcome: string; ms: number }> {
  const r = await ns.exec('python3', ['-c', REFUSAL_PY, host, String(port)], { timeoutMs: 15_000, ...(cgroup ? { cgroup } : {}) });
  return JSON.parse(r.stdout.trim()) as { outcome: string; ms: number };
}
