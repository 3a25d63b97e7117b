// model/host-policy/selector: Calico's selector expressions (libcalico-go lib/selector: tokenizer.go,
// parser.go), parsed once per text into an AST and matched against label sets. What
// GlobalNetworkPolicy selectors, rule selectors and namespaceSelectors compile through.

export type Labels = Readonly<Record<string, string>>;

/** The selector AST. Leaves test one label; `global` is true only for non-namespaced endpoints. */
export type SelectorNode =
  | { op: 'all' }
  | { op: 'global' }
  | { op: 'has'; key: string }
  | { op: '==' | '!=' | 'contains' | 'starts with' | 'ends with'; key: string; value: string }
  | { op: 'in' | 'not in'; key: string; values: ReadonlySet<string> }
  | { op: '!'; arg: SelectorNode }
  | { op: '&&' | '||'; args: SelectorNode[] };

export interface Selector {
  /** the text it was parsed from */
  text: string;
  root: SelectorNode;
  /** the expression mentions global() (a namespaceSelector that can pick host endpoints) */
  usesGlobal: boolean;
}

export type ParseResult = { ok: true; selector: Selector } | { ok: false; error: string; position: number };

/** Label characters as Calico's tokenizer takes them. */
const LABEL_CHAR = /[A-Za-z0-9_./-]/;

class ParseError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
  }
}

/** A recursive-descent parser over the text; precedence (loosest first): ||, &&, !, operations and parens. */
class Parser {
  pos = 0;
  usesGlobal = false;
  constructor(readonly text: string) {}

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  private peek(s: string): boolean {
    this.skipSpace();
    return this.text.startsWith(s, this.pos);
  }

  /** A keyword: the text, then no further label character (so `in` does not eat `inside`). */
  private peekWord(word: string): boolean {
    this.skipSpace();
    if (!this.text.startsWith(word, this.pos)) return false;
    const next = this.text[this.pos + word.length];
    return next === undefined || !LABEL_CHAR.test(next);
  }

  private expect(s: string, what: string): void {
    if (!this.peek(s)) throw new ParseError(`expected ${what}`, this.pos);
    this.pos += s.length;
  }

  private label(): string {
    this.skipSpace();
    const start = this.pos;
    while (this.pos < this.text.length && LABEL_CHAR.test(this.text[this.pos]!)) this.pos++;
    if (this.pos === start) throw new ParseError('expected a label key', start);
    return this.text.slice(start, this.pos);
  }

  private quoted(): string {
    this.skipSpace();
    const q = this.text[this.pos];
    if (q !== "'" && q !== '"') throw new ParseError('expected a quoted value', this.pos);
    const end = this.text.indexOf(q, this.pos + 1);
    if (end === -1) throw new ParseError('unterminated string', this.pos);
    const v = this.text.slice(this.pos + 1, end);
    this.pos = end + 1;
    return v;
  }

  private set(): Set<string> {
    this.expect('{', "'{'");
    const values = new Set<string>();
    if (this.peek('}')) {
      this.pos++;
      return values;
    }
    for (;;) {
      values.add(this.quoted());
      if (this.peek('}')) {
        this.pos++;
        return values;
      }
      this.expect(',', "',' or '}'");
    }
  }

  parse(): SelectorNode {
    this.skipSpace();
    if (this.pos === this.text.length) return { op: 'all' }; // Calico: the empty selector is all()
    const root = this.or();
    this.skipSpace();
    if (this.pos !== this.text.length) throw new ParseError("expected '&&', '||' or the end", this.pos);
    return root;
  }

  private or(): SelectorNode {
    const args = [this.and()];
    while (this.peek('||')) {
      this.pos += 2;
      args.push(this.and());
    }
    return args.length === 1 ? args[0]! : { op: '||', args };
  }

  private and(): SelectorNode {
    const args = [this.unary()];
    while (this.peek('&&')) {
      this.pos += 2;
      args.push(this.unary());
    }
    return args.length === 1 ? args[0]! : { op: '&&', args };
  }

  private unary(): SelectorNode {
    if (this.peek('!') && !this.peek('!=')) {
      this.pos++;
      return { op: '!', arg: this.unary() };
    }
    if (this.peek('(')) {
      this.pos++;
      const e = this.or();
      this.expect(')', "')'");
      return e;
    }
    return this.operation();
  }

  private operation(): SelectorNode {
    for (const fn of ['all', 'global', 'has'] as const) {
      if (!this.peekWord(fn)) continue;
      const save = this.pos;
      this.pos += fn.length;
      if (!this.peek('(')) {
        this.pos = save; // a label named like a function: `has == 'x'`
        break;
      }
      this.pos++;
      if (fn === 'has') {
        const key = this.label();
        this.expect(')', "')' after the label in has()");
        return { op: 'has', key };
      }
      this.expect(')', `')' after ${fn}(`);
      if (fn === 'global') this.usesGlobal = true;
      return { op: fn };
    }
    const key = this.label();
    this.skipSpace();
    const opAt = this.pos;
    if (this.peek('==')) return this.binary('==', key, 2);
    if (this.peek('!=')) return this.binary('!=', key, 2);
    if (this.peekWord('contains')) return this.binary('contains', key, 'contains'.length);
    if (this.peekWord('startswith')) return this.binary('starts with', key, 'startswith'.length);
    if (this.peekWord('endswith')) return this.binary('ends with', key, 'endswith'.length);
    if (this.peekWord('starts')) return this.twoWords('starts', 'with', 'starts with', key);
    if (this.peekWord('ends')) return this.twoWords('ends', 'with', 'ends with', key);
    if (this.peekWord('in')) {
      this.pos += 2;
      return { op: 'in', key, values: this.set() };
    }
    if (this.peekWord('notin')) {
      this.pos += 5;
      return { op: 'not in', key, values: this.set() };
    }
    if (this.peekWord('not')) {
      this.pos += 3;
      if (!this.peekWord('in')) throw new ParseError("expected 'in' after 'not'", this.pos);
      this.pos += 2;
      return { op: 'not in', key, values: this.set() };
    }
    throw new ParseError(`expected an operator after label ${JSON.stringify(key)} (==, !=, in, not in, contains, starts with, ends with)`, opAt);
  }

  private binary(op: '==' | '!=' | 'contains' | 'starts with' | 'ends with', key: string, len: number): SelectorNode {
    this.pos += len;
    return { op, key, value: this.quoted() };
  }

  private twoWords(first: string, second: string, op: 'starts with' | 'ends with', key: string): SelectorNode {
    this.pos += first.length;
    if (!this.peekWord(second)) throw new ParseError(`expected '${second}' after '${first}'`, this.pos);
    this.pos += second.length;
    return { op, key, value: this.quoted() };
  }
}

const cache = new Map<string, ParseResult>();
const CACHE_MAX = 10_000;

/** Parse a selector (cached by text). Errors name the 0-based position and what was expected there. */
export function parseSelector(text: string): ParseResult {
  const hit = cache.get(text);
  if (hit) return hit;
  let result: ParseResult;
  const p = new Parser(text);
  try {
    const root = p.parse();
    result = { ok: true, selector: { text, root, usesGlobal: p.usesGlobal } };
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    result = { ok: false, position: e.position, error: `${e.message} at position ${e.position} of ${JSON.stringify(text)}` };
  }
  if (cache.size >= CACHE_MAX) cache.clear(); // bounded: selectors come from objects that churn
  cache.set(text, result);
  return result;
}

/** Whether `labels` satisfy the selector. `global`: the endpoint is not namespaced (global() holds). */
export function matches(selector: Selector, labels: Labels, global = false): boolean {
  return evalNode(selector.root, labels, global);
}

function evalNode(n: SelectorNode, labels: Labels, global: boolean): boolean {
  switch (n.op) {
    case 'all':
      return true;
    case 'global':
      return global;
    case 'has':
      return Object.prototype.hasOwnProperty.call(labels, n.key);
    case '==':
      return labelOf(labels, n.key) === n.value;
    case '!=':
      return labelOf(labels, n.key) !== n.value; // true when absent, as Calico
    case 'contains': {
      const v = labelOf(labels, n.key);
      return v !== undefined && v.includes(n.value);
    }
    case 'starts with': {
      const v = labelOf(labels, n.key);
      return v !== undefined && v.startsWith(n.value);
    }
    case 'ends with': {
      const v = labelOf(labels, n.key);
      return v !== undefined && v.endsWith(n.value);
    }
    case 'in': {
      const v = labelOf(labels, n.key);
      return v !== undefined && n.values.has(v);
    }
    case 'not in': {
      const v = labelOf(labels, n.key);
      return v === undefined || !n.values.has(v);
    }
    case '!':
      return !evalNode(n.arg, labels, global);
    case '&&':
      return n.args.every((a) => evalNode(a, labels, global));
    case '||':
      return n.args.some((a) => evalNode(a, labels, global));
  }
}

function labelOf(labels: Labels, key: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(labels, key) ? labels[key] : undefined;
}
