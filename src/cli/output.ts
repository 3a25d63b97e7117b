// cli/output: how every `weir` command prints. Tables for people, `-o json` and `-o yaml` for
// scripts (one document, the YAML the same data as the JSON), and errors as one readable line
// with a non-zero exit (no stack trace).

import { Option } from 'commander';
import { dump } from 'js-yaml';

export type OutputFormat = 'table' | 'json' | 'yaml';
/** The machine-readable formats: the same document in either. */
export type DocumentFormat = Exclude<OutputFormat, 'table'>;

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'yaml'];

/** An error the user can act on: printed as one line, exit code 1. */
export class CliError extends Error {}

/** Exit status when no weir state exists for the instance (no pins): distinct from diff's 2. */
export const EXIT_NO_STATE = 3;

/** No weir state where the command looked: one line, exit EXIT_NO_STATE (docs/cli.md). */
export class NoStateError extends CliError {}

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

/**
 * YAML of exactly the JSON document: the value goes through json() first, so bigints,
 * undefined fields and toJSON() come out as they do in `-o json`.
 */
export function yaml(value: unknown): string {
  const doc: unknown = JSON.parse(json(value) ?? 'null');
  return dump(doc, { noRefs: true, lineWidth: -1 }).trimEnd();
}

/** The document in a machine-readable format. */
export function document(format: DocumentFormat, value: unknown): string {
  return format === 'json' ? json(value) : yaml(value);
}

/** The document in a machine-readable format, or `text()` for the table format. */
export function render(format: OutputFormat, value: unknown, text: () => string): string {
  return format === 'table' ? text() : document(format, value);
}

/** `-o, --output table|json|yaml` (its choices are what shell completion offers). */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table');
}

export function print(format: OutputFormat, rows: ReadonlyArray<object>, columns?: string[]): void {
  process.stdout.write(render(format, rows, () => table(rows, columns)) + '\n');
}
