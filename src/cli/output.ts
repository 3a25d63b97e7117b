// cli/output: how every `weir` command prints. Tables for people, `-o json` for scripts,
// and errors as one readable line with a non-zero exit (no stack trace).

export type OutputFormat = 'table' | 'json';

export function parseFormat(v: string): OutputFormat {
  if (v === 'table' || v === 'json') return v;
  throw new CliError(`-o ${v}: use table or json`);
}

/** An error the user can act on: printed as one line, exit code 1. */
export class CliError extends Error {}

/** Columns padded to their widest cell; numbers right-aligned. */
export function table(objects: ReadonlyArray<object>, columns?: string[]): string {
  const rows = objects as ReadonlyArray<Record<string, unknown>>;
  if (rows.length === 0) return '(none)';
  const cols = columns ?? Object.keys(rows[0]!);
  const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const cells = rows.map((r) => cols.map((c) => cell(r[c])));
  const numeric = cols.map((_, i) => rows.every((r) => typeof r[cols[i]!] === 'number' || typeof r[cols[i]!] === 'bigint'));
  const width = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (numeric[i] ? v.padStart(width[i]!) : v.padEnd(width[i]!)))
      .join('  ')
      .trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

/** JSON with bigints as numbers when they fit, strings otherwise. */
export function json(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v), 2);
}

export function print(format: OutputFormat, rows: ReadonlyArray<object>, columns?: string[]): void {
  process.stdout.write((format === 'json' ? json(rows) : table(rows, columns)) + '\n');
}
