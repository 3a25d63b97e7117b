// test/unit: the layering of src/bpf, read from its sources: no import cycle among its files
// (type-only imports count: a lower object reaching up is the smell even when erased at
// runtime), nothing imported from the layers above it, and the raw addon (bpf/native.ts)
// imported by no file above it.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const BPF = join(root, 'src/bpf');

/** Module specifiers of every `import ... from` / `export ... from` / `import '...'` in a source. */
function importsOf(source: string): string[] {
  const out: string[] = [];
  const re = /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) out.push(m[1]!);
  return out;
}

/** One cycle in a graph (as a path that starts and ends on the same node), or undefined. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      const c = visit(m);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const n of graph.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return undefined;
}

function bpfGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of readdirSync(BPF).filter((n) => n.endsWith('.ts'))) {
    const local = importsOf(readFileSync(join(BPF, f), 'utf8'))
      .filter((s) => s.startsWith('./'))
      .map((s) => s.slice(2).replace(/\.js$/, '.ts'));
    graph.set(f, local);
  }
  return graph;
}

test('the import parser sees value, type, re-export and side-effect imports', () => {
  const src = [
    "import { a } from './a.js';",
    "import type { B } from './b.js';",
    'import {\n  c,\n  type D,\n} from "./c.js";',
    "export { e } from './e.js';",
    "export * from './f.js';",
    "import './g.js';",
    'const s = \'import x from "./not-an-import.js"\';',
  ].join('\n');
  assert.deepEqual(importsOf(src), ['./a.js', './b.js', './c.js', './e.js', './f.js', './g.js']);
});

test('findCycle finds a cycle through a type-only edge and none in a DAG', () => {
  assert.deepEqual(
    findCycle(
      new Map([
        ['program.ts', ['attach.ts']],
        ['attach.ts', ['link.ts']],
        ['link.ts', ['program.ts']],
      ]),
    ),
    ['program.ts', 'attach.ts', 'link.ts', 'program.ts'],
  );
  assert.equal(
    findCycle(
      new Map([
        ['attach.ts', ['link.ts', 'program.ts']],
        ['link.ts', ['program.ts']],
        ['program.ts', []],
      ]),
    ),
    undefined,
  );
});

test('src/bpf has no import cycle', () => {
  const graph = bpfGraph();
  assert.ok(graph.size >= 10 && graph.has('program.ts') && graph.has('attach.ts'), `read ${[...graph.keys()].join(', ')}`);
  const edges = [...graph.values()].reduce((n, e) => n + e.length, 0);
  console.log(`src/bpf: ${graph.size} files, ${edges} local imports`);
  const cycle = findCycle(graph);
  assert.equal(cycle, undefined, `import cycle: ${cycle?.join(' -> ')}`);
});

test('src/bpf imports nothing from the layers above it', () => {
  for (const f of readdirSync(BPF).filter((n) => n.endsWith('.ts'))) {
    for (const s of importsOf(readFileSync(join(BPF, f), 'utf8'))) {
      if (s.startsWith('./') || s.startsWith('node:')) continue;
      // the package root is layer-free (node:fs only): the addon is found from it
      assert.equal(s, '../package-root.js', `src/bpf/${f} imports ${s}`);
    }
  }
});

function sourcesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return sourcesUnder(p);
    return n.endsWith('.ts') ? [p] : [];
  });
}

test('no file above src/bpf touches the raw addon', () => {
  const above = sourcesUnder(join(root, 'src')).filter((p) => !p.startsWith(BPF + '/'));
  assert.ok(above.length > 40, `read ${above.length} files`);
  for (const p of above)
    for (const s of importsOf(readFileSync(p, 'utf8'))) assert.doesNotMatch(s, /(^|\/)bpf\/native\.js$/, `${p.slice(root.length)} imports ${s}`);
});
