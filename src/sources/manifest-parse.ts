// sources/manifest-parse: one manifest file's text → the valid objects in it and the rejects,
// each with a reason code (bounded set, used as a counter label) and a readable detail.
// No I/O: the manifests source reads files and feeds this.
//
// Hostile text is bounded before it costs: a document over MAX_DOCUMENT_CHARS is not parsed, and
// a document whose aliases expand it past its own size (a "billion laughs" bomb: ten aliases to
// ten aliases, nine deep, is a 700-character document of 10^9 values) is refused once the walk
// that counts its values passes the bound, before anything else walks it (issue 16, break 6:
// the model's and the source's JSON walks of such a value took 2 GB and 38 s).

// js-yaml is the parser client-node's loadYaml wraps. Objects are not run through client-node's
// ObjectSerializer (plain-object.ts: it would turn the metadata timestamps into Dates, done
// there, rename a few fields and drop unknown ones, at ~40% of the parse cost and ~0.5 s of
// module loading, docs/daemon.md, start-up).
import { load as loadYaml } from 'js-yaml';
import { clip } from '../model/k8s-names.js';
import { withDates } from './plain-object.js';
import { invalidObject, type InvalidReason } from './validate.js';
import { API_VERSIONS, CLUSTER_SCOPED, isObjectKind, keyOf, type KindMap, type ObjectKind } from './types.js';

export type RejectReason =
  | 'read-error'
  | 'too-large'
  | 'yaml-syntax'
  | 'yaml-aliases'
  | 'not-an-object'
  | 'missing-kind'
  | 'unknown-kind'
  | 'missing-name'
  | InvalidReason
  | 'invalid-object';

export interface ParsedObject {
  kind: ObjectKind;
  key: string;
  /** `${kind}/${key}`: how objects are identified across files. */
  identity: string;
  object: KindMap[ObjectKind];
  /** 1-based document number in the file (list items share their list's number). */
  doc: number;
}

export interface ParseReject {
  reason: RejectReason;
  detail: string;
  doc: number;
  /** Set when the object could be identified (kind and name known). */
  identity?: string;
}

export interface ParsedFile {
  objects: ParsedObject[];
  rejects: ParseReject[];
  /**
   * Some document could not be identified (syntax error, no kind or name): the caller cannot tell
   * which previously loaded objects it held, so it must not delete any of them on this load.
   */
  incomplete: boolean;
}

/**
 * The largest document read, in characters: the API server's request limit (3 MiB), so nothing a
 * cluster could hold is refused. A List counts as one document: split a bigger one into several
 * documents (`---`) or files.
 */
export const MAX_DOCUMENT_CHARS = 3 * 1024 * 1024;

/**
 * What aliases may add to a document: values beyond one per character of its text. A document
 * without aliases never has more values than characters (every value takes at least one), so
 * anchors used as intended (a shared block repeated a few times) pass, and an expansion is
 * bounded by the document size limit, whatever its nesting.
 */
export const MAX_ALIAS_EXPANSION = 100_000;

interface RawDoc {
  text: string;
  /** 1-based line of the document's first line. */
  line: number;
}

/** A `---` (optionally with a comment) or `...` line: where one document ends. */
const SEPARATOR = /^(?:---[^\S\n]*(?:#[^\n]*)?|\.\.\.[^\S\n]*)$/gm;

/**
 * Split YAML text into documents on `---` separator lines (as kubectl's YAML reader does). The
 * documents are slices of the text, not lines joined again: a 50 MB file of 100,000 documents
 * is split without an array of its lines (a quarter of the parse time at 50,000 services).
 */
export function splitYamlDocuments(text: string): RawDoc[] {
  const docs: RawDoc[] = [];
  let start = 0;
  let line = 1;
  let counted = 0;
  const linesBefore = (at: number): number => {
    for (let i = text.indexOf('\n', counted); i !== -1 && i < at; i = text.indexOf('\n', i + 1)) line++;
    counted = at;
    return line;
  };
  for (const m of text.matchAll(SEPARATOR)) {
    docs.push({ text: text.slice(start, m.index), line: linesBefore(start) });
    start = m.index + m[0].length + 1;
  }
  docs.push({ text: start <= text.length ? text.slice(start) : '', line: linesBefore(Math.min(start, text.length)) });
  return docs;
}

/** Only blank and comment lines: some line's first non-blank character is not '#'. */
function isBlank(text: string): boolean {
  return !/^[^\S\n]*[^\s#]/m.test(text);
}

/** The number of values in `root`, counting every path to a shared (aliased) value again, is at most `budget`. */
function expandsWithin(root: unknown, budget: number): boolean {
  const stack: unknown[] = [root];
  let seen = 1;
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || v instanceof Date) continue;
    const children: unknown[] = Array.isArray(v) ? v : Object.values(v);
    seen += children.length;
    if (seen > budget) return false;
    for (const c of children) stack.push(c);
  }
  return true;
}

class AliasBomb extends Error {}

/**
 * One document → its value. A document that is a
 * JSON object takes JSON.parse; anything else, or JSON.parse refusing it (YAML flow mappings
 * such as `{a: b}` are not JSON), goes through js-yaml, whose errors name the line.
 */
function parseDocument(text: string): unknown {
  const first = /\S/.exec(text);
  if (first && text[first.index] === '{') {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (value !== undefined) return withDates(value);
  }
  const value = loadYaml(text);
  // only YAML has aliases, and only a document with a '*' can hold one
  if (text.includes('*') && !expandsWithin(value, text.length + MAX_ALIAS_EXPANSION)) {
    throw new AliasBomb(
      `aliases expand the document past ${text.length + MAX_ALIAS_EXPANSION} values (its ${text.length} characters + ${MAX_ALIAS_EXPANSION})`,
    );
  }
  return withDates(value);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parse a manifest file. `json` parses the whole text as one document (a .json file). */
export function parseManifest(text: string, json: boolean): ParsedFile {
  const out: ParsedFile = { objects: [], rejects: [], incomplete: false };
  const docs = json ? [{ text, line: 1 }] : splitYamlDocuments(text);
  docs.forEach((d, i) => {
    const doc = i + 1;
    if (d.text.length > MAX_DOCUMENT_CHARS) {
      out.rejects.push({ reason: 'too-large', detail: `line ${d.line}: ${d.text.length} characters, more than ${MAX_DOCUMENT_CHARS}`, doc });
      out.incomplete = true;
      return;
    }
    if (isBlank(d.text)) return;
    let value: unknown;
    try {
      value = parseDocument(d.text);
    } catch (e) {
      if (e instanceof AliasBomb) {
        out.rejects.push({ reason: 'yaml-aliases', detail: `line ${d.line}: ${e.message}`, doc });
        out.incomplete = true;
        return;
      }
      const err = e as { mark?: { line?: number }; reason?: string; message?: string };
      const line = err.mark?.line !== undefined ? d.line + err.mark.line : d.line;
      out.rejects.push({ reason: 'yaml-syntax', detail: `line ${line}: ${err.reason ?? String(err.message).split('\n')[0]}`, doc });
      out.incomplete = true;
      return;
    }
    if (value === null || value === undefined) return;
    if (isRecord(value) && Array.isArray(value.items) && typeof value.kind === 'string' && value.kind.endsWith('List')) {
      value.items.forEach((item, j) => addObject(item, doc, `items[${j}]`, true, out));
    } else {
      addObject(value, doc, '', false, out);
    }
  });
  return out;
}

function addObject(value: unknown, doc: number, where: string, raw: boolean, out: ParsedFile): void {
  const at = where ? `${where}: ` : '';
  if (!isRecord(value)) {
    out.rejects.push({ reason: 'not-an-object', detail: `${at}document is not a mapping`, doc });
    out.incomplete = true;
    return;
  }
  const kind = value.kind;
  if (typeof kind !== 'string' || kind === '') {
    out.rejects.push({ reason: 'missing-kind', detail: `${at}no kind`, doc });
    out.incomplete = true;
    return;
  }
  if (!isObjectKind(kind)) {
    out.rejects.push({ reason: 'unknown-kind', detail: `${at}kind ${clip(kind)} is not one weir reads`, doc });
    return;
  }
  const meta = value.metadata;
  const name = isRecord(meta) ? meta.name : undefined;
  if (typeof name !== 'string' || name === '') {
    out.rejects.push({ reason: 'missing-name', detail: `${at}${kind} without metadata.name`, doc });
    out.incomplete = true;
    return;
  }
  if (isRecord(meta) && meta.namespace !== undefined && typeof meta.namespace !== 'string') {
    out.rejects.push({ reason: 'invalid-object', detail: `${at}${kind} ${clip(name)}: metadata.namespace is not a string`, doc });
    out.incomplete = true;
    return;
  }
  // Dates as the API source sets them (plain-object.ts). List items and objects without apiVersion are still raw.
  let obj = value as unknown as KindMap[ObjectKind];
  if (raw || typeof value.apiVersion !== 'string') {
    obj = withDates({ ...value, apiVersion: typeof value.apiVersion === 'string' ? value.apiVersion : API_VERSIONS[kind] }) as KindMap[ObjectKind];
  }
  if (!CLUSTER_SCOPED.has(kind)) {
    obj.metadata = { ...obj.metadata, namespace: obj.metadata?.namespace || 'default' };
  }
  const key = keyOf(kind, obj.metadata);
  const identity = `${kind}/${key}`;
  const invalid = invalidObject(kind, key, obj);
  if (invalid) {
    out.rejects.push({ reason: invalid.reason, detail: `${at}${invalid.detail}`, doc, identity });
    return;
  }
  out.objects.push({ kind, key, identity, object: obj, doc });
}
