// log: the small structured logger every layer logs through (the sources, the dataplane, the daemon, the CLI).
// Lines read `level msg key=value ...`; values with spaces or quotes are JSON-quoted.

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
}

export type LogLevel = 'debug' | 'info' | 'warn';
const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2 };

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
  const at = (l: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[l] >= RANK[level]) write(formatLine(l, msg, fields));
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn') };
}

/** Collects lines in memory (tests). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, ...createLogger('debug', (l) => lines.push(l)) };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

/** logfmt (the daemon's format): `ts=… level=info event=<msg> key=value …`, one line per event. */
export function formatLogfmt(level: LogLevel, msg: string, fields?: LogFields, now = new Date()): string {
  const q = (s: string) => (s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s);
  let line = `ts=${now.toISOString()} level=${level} event=${q(msg)}`;
  for (const [k, v] of Object.entries(fields ?? {})) if (v !== undefined) line += ` ${k}=${q(String(v))}`;
  return line;
}

export function createLogfmtLogger(level: LogLevel = 'info', write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Logger {
  const at = (l: LogLevel) => (msg: string, fields?: LogFields) => {
    if (RANK[l] >= RANK[level]) write(formatLogfmt(l, msg, fields));
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn') };
}

export function isLogLevel(s: string): s is LogLevel {
  return s in RANK;
}

/** An error as a log field or a one-line message: its message, or the value as text. */
export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** errText's first line: for errors that carry a verifier log or a command's output below it. */
export function errLine(e: unknown): string {
  return errText(e).split('\n')[0]!;
}
