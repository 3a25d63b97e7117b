// sources/kube-retry: the API source's error handling helpers: the HTTP status of a
// client-node error, one readable line for the log, a timeout for calls that take no signal,
// and the backoff between retries.

/** HTTP status of a client-node error: ApiException.code (lists) or statusCode (watches). */
export function errorStatus(e: unknown): number | undefined {
  const x = e as { code?: unknown; statusCode?: unknown } | null;
  if (typeof x?.statusCode === 'number') return x.statusCode;
  if (typeof x?.code === 'number') return x.code;
  return undefined;
}

/** One line: status, message, and the network cause (ECONNREFUSED, ...) when there is one. */
export function errorLine(e: unknown): string {
  const status = errorStatus(e);
  const msg = e instanceof Error ? (e.message.split('\n')[0] ?? e.message) : String(e);
  const cause = (e as { cause?: { code?: string; message?: string } } | null)?.cause;
  const detail = cause?.code ?? cause?.message;
  return [status !== undefined && !msg.includes(String(status)) ? `HTTP ${status}` : '', msg, detail ? `(${detail})` : ''].filter(Boolean).join(' ');
}

/** Rejects after `ms` (the call itself is not aborted: client-node's typed calls take no signal). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    t.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** Exponential backoff with equal jitter: the n-th delay is in [d/2, d], d = min(max, initial·2^n). */
export class Backoff {
  private n = 0;
  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}
  next(): number {
    const d = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.n++, 30));
    return Math.round(d / 2 + (this.random() * d) / 2);
  }
  reset(): void {
    this.n = 0;
  }
}
