// log: the small structured logger every layer logs through (the sources, the dataplane, the daemon, the CLI).
// Lines read `level msg key=value ...`; values with spaces or quotes are JSON-quoted. The daemon
// logs logfmt (`ts=… level=… event=…`) or JSON lines (--log-format), at --log-level and above.

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  /** weir failed at something it does (a map write, an attach, the API): not the input's fault */
  error(msg: string, fields?: LogFields): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

/** --log-format: logfmt (`ts=… level=… event=… k=v`) or JSON lines (`{"time","level","msg",…}`). */
export type LogFormat = 'logfmt' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['logfmt', 'json'];

/** A Logger of the four levels, each line through `emit` when at `level` or above. */
function leveled(level: LogLevel, emit: (l: LogLevel, msg: string, fields?: LogFields) => void): Logger {
  const at = (l: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[l] >= RANK[level]) emit(l, msg, fields);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export function formatLine(level: LogLevel, msg: string, fields?: LogFields): string {
  let line = `${level} ${msg}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      const s = String(v);
      line += ` ${k}=${s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    }
  }
  return line;
}

/** A logger writing one line per entry to `write` (default: stderr), at `level` and above. */
export function createLogger(level: LogLevel = 'info', write: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Logger {
  return leveled(level, (l, msg, fields) => write(formatLine(l, msg, fields)));
}

/** Collects lines in memory (tests). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, ...createLogger('debug', (l) => lines.push(l)) };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** logfmt (the daemon's format): `ts=… level=info event=<msg> key=value …`, one line per event. */
export function formatLogfmt(level: LogLevel, msg: string, fields?: LogFields, now = new Date()): string {
  const q = (s: string) => (s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s);
  let line = `ts=${now.toISOString()} level=${level} event=${q(msg)}`;
  for (const [k, v] of Object.entries(fields ?? {})) if (v !== undefined) line += ` ${k}=${q(String(v))}`;
  return line;
}

export function createLogfmtLogger(level: LogLevel = 'info', write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Logger {
  return leveled(level, (l, msg, fields) => write(formatLogfmt(l, msg, fields)));
}

/** A JSON line: `{"time","level","msg",…fields}`; numbers, booleans and null stay typed. A field
 *  named like one of the three keeps its value under `_<name>` rather than replacing it. */
export function formatJsonLine(level: LogLevel, msg: string, fields?: LogFields, now = new Date()): string {
  const out: Record<string, string | number | boolean | null> = { time: now.toISOString(), level, msg };
  for (const [k, v] of Object.entries(fields ?? {})) {
    if (v === undefined) continue;
    out[k in out ? `_${k}` : k] = typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
  }
  return JSON.stringify(out);
}

/** The daemon's logger: `format` lines to stdout (default) at `level` and above. */
export function createDaemonLogger(level: LogLevel, format: LogFormat, write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Logger {
  const fmt = format === 'json' ? formatJsonLine : formatLogfmt;
  return leveled(level, (l, msg, fields) => write(fmt(l, msg, fields)));
}

export function isLogLevel(s: string): s is LogLevel {
  return Object.hasOwn(RANK, s);
}

export function isLogFormat(s: string): s is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(s);
}

/** An error as a log field or a one-line message: its message, or the value as text. */
export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** errText's first line: for errors that carry a verifier log or a command's output below it. */
export function errLine(e: unknown): string {
  return errText(e).split('\n')[0]!;
}
