// src/bpf: the one error type every BPF failure becomes: the kernel's errno code, what was
// attempted, and what libbpf and the verifier said.

export class BpfError extends Error {
  override name = 'BpfError';
  /** errno name: 'ENOENT', 'EPERM', 'E2BIG', 'EINVAL', ... */
  readonly code: string;
  readonly errno: number;
  /** what was attempted, with the path or name involved */
  readonly op: string;
  /** everything libbpf printed during the failed call (warnings and info) */
  readonly libbpfLog: string;
  /** the kernel verifier's log, when a program load failed */
  readonly verifierLog?: string;

  constructor(message: string, f: { code: string; errno: number; op: string; libbpfLog?: string; verifierLog?: string; cause?: unknown }) {
    super(message, f.cause === undefined ? undefined : { cause: f.cause });
    this.code = f.code;
    this.errno = f.errno;
    this.op = f.op;
    this.libbpfLog = f.libbpfLog ?? '';
    if (f.verifierLog !== undefined) this.verifierLog = f.verifierLog;
  }
}

/** A BpfError made in TypeScript (bad arguments, closed handles), in the addon's format. */
export function bpfError(code: string, errno: number, op: string, detail: string): BpfError {
  return new BpfError(`${op}: ${detail}`, { code, errno, op });
}

/** Turns an addon exception into a BpfError; anything else is rethrown as it is. */
export function wrapError(e: unknown): unknown {
  if (e instanceof BpfError || !(e instanceof Error)) return e;
  const r = e as Error & { code?: unknown; errno?: unknown; op?: unknown; libbpfLog?: string; verifierLog?: string };
  if (typeof r.code !== 'string' || typeof r.errno !== 'number' || typeof r.op !== 'string') return e;
  return new BpfError(r.message, {
    code: r.code,
    errno: r.errno,
    op: r.op,
    libbpfLog: r.libbpfLog,
    verifierLog: r.verifierLog,
  });
}

/** Runs an addon call, converting its errors to BpfError. */
export function native<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw wrapError(e);
  }
}
