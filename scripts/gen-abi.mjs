#!/usr/bin/env node
// scripts/: generates src/bpf/abi.gen.ts from the BTF of the compiled BPF objects, so
// TypeScript never hand-copies an offset (DESIGN.md, "The ABI has one source").
//
//   node scripts/gen-abi.mjs build/bpf/*.o > src/bpf/abi.gen.ts
//
// Emits: `layouts` (every struct/union declared in bpf-c/include/weir/*.h, used as a map
// key or value, or reachable from weir_btf_anchor), `enums` (every enum named weir_*),
// `maps` (every non-internal map: type, key/value type names and sizes, which objects
// declare it), one interface per layout, and `LayoutTypes` for codecFor(). A struct or map
// that two objects declare differently fails the build.

import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = createRequire(import.meta.url)(join(root, 'build', 'Release', 'weir.node'));

const objects = process.argv.slice(2);
if (!objects.length) {
  console.error('usage: gen-abi.mjs OBJECT.o...');
  process.exit(2);
}

// Names the ABI headers declare: these are weir's public types.
const abiDir = join(root, 'bpf-c', 'include', 'weir');
const declared = new Set();
for (const f of readdirSync(abiDir)
  .filter((f) => f.endsWith('.h'))
  .sort()) {
  const text = readFileSync(join(abiDir, f), 'utf8');
  for (const m of text.matchAll(/\b(?:struct|union)\s+(\w+)\s*\{/g)) declared.add(m[1]);
}

/** Drop BTF ids: they differ between objects. Same shape as normalizeType() in btf.ts. */
function norm(t) {
  const out = { kind: t.kind, size: t.size };
  for (const k of ['name', 'hint', 'signed', 'bits', 'length']) if (t[k] !== undefined) out[k] = t[k];
  if (t.elem) out.elem = norm(t.elem);
  if (t.members)
    out.members = t.members.map((m) => ({
      name: m.name,
      offset: m.offset,
      bitOffset: m.bitOffset,
      bitSize: m.bitSize,
      size: m.size,
      type: norm(m.type),
    }));
  return out;
}

const layouts = new Map(); // name -> {layout, from}
const enums = new Map(); // name -> {values, from}
const maps = new Map(); // name -> entry
const problems = [];

function addLayout(t, from) {
  if (!t || (t.kind !== 'struct' && t.kind !== 'union') || !t.name) return;
  const layout = norm(t);
  const prev = layouts.get(t.name);
  if (prev && JSON.stringify(prev.layout) !== JSON.stringify(layout)) problems.push(`struct ${t.name} differs between ${prev.from} and ${from}`);
  if (!prev) layouts.set(t.name, { layout, from });
  for (const m of t.members ?? []) addLayout(m.type.kind === 'array' ? m.type.elem : m.type, from);
}

// structs by their tag; scalars by the typedef the C code wrote (__u32, weir_ip4)
function typeName(t) {
  return t.kind === 'struct' || t.kind === 'union' ? (t.name ?? t.kind) : (t.hint ?? t.name ?? t.kind);
}

for (const path of objects) {
  const from = basename(path);
  const obj = addon.Object.open(path);
  try {
    const btf = obj.btf();
    for (const name of declared) {
      const id = btf.find(name, 'struct') ?? btf.find(name, 'union');
      if (id !== null) addLayout(btf.describe(id), from);
    }
    for (const sec of ['.rodata', '.data', '.bss']) {
      if (btf.find(sec, 'datasec') === null) continue;
      for (const v of btf.datasec(sec)) if (v.name === 'weir_btf_anchor') addLayout(v.type, from);
    }
    for (const kind of ['enum', 'enum64']) {
      for (const name of btf.names(kind)) {
        if (!name.startsWith('weir_')) continue;
        const { values } = btf.enum(name);
        const prev = enums.get(name);
        if (prev && JSON.stringify(prev.values) !== JSON.stringify(values)) problems.push(`enum ${name} differs between ${prev.from} and ${from}`);
        if (!prev) enums.set(name, { values, from });
      }
    }
    for (const m of obj.maps()) {
      if (m.internal) continue;
      const key = m.btfKeyTypeId ? btf.describe(m.btfKeyTypeId) : undefined;
      const value = m.btfValueTypeId ? btf.describe(m.btfValueTypeId) : undefined;
      addLayout(key, from);
      addLayout(value, from);
      const entry = {
        type: m.type,
        keyType: key ? typeName(key) : null,
        valueType: value ? typeName(value) : null,
        keySize: m.keySize,
        valueSize: m.valueSize,
        maxEntries: m.maxEntries,
        objects: [from],
      };
      const prev = maps.get(m.name);
      if (prev) {
        const { objects: _a, ...p } = prev;
        const { objects: _b, ...e } = entry;
        if (JSON.stringify(p) !== JSON.stringify(e)) problems.push(`map ${m.name} differs between ${prev.objects.join(', ')} and ${from}`);
        prev.objects.push(from);
      } else maps.set(m.name, entry);
    }
  } finally {
    obj.close();
  }
}

if (problems.length) {
  console.error(`gen-abi: the objects disagree on the ABI:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}

const pascal = (s) =>
  s
    .split(/_+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');
const sorted = (m) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));

/** The TypeScript type a codec (src/bpf/codec.ts) decodes this BTF type to. */
function tsType(t, indent) {
  switch (t.hint) {
    case '__be16':
    case '__be32':
      return 'number';
    case '__be64':
      return 'bigint';
    case 'weir_ip4':
    case 'weir_ip6':
    case 'weir_mac':
      return 'string';
  }
  switch (t.kind) {
    case 'int':
    case 'enum':
      return t.size === 8 ? 'bigint' : 'number';
    case 'array':
      return t.elem.kind === 'int' && t.elem.size === 1 ? 'Buffer' : `${tsType(t.elem, indent)}[]`;
    case 'struct':
    case 'union':
      if (t.name && layouts.has(t.name)) return pascal(t.name);
      return `{\n${members(t, indent + '  ')}${indent}}`;
    default:
      return 'unknown';
  }
}

// Union members and padding are optional when encoding; decode always fills them.
function members(t, indent) {
  return t.members
    .map((m) => {
      const opt = t.kind === 'union' || /^(pad\d*|_.*)$/.test(m.name) ? '?' : '';
      return `${indent}${m.name}${opt}: ${tsType(m.type, indent)};\n`;
    })
    .join('');
}

const out = [];
out.push('// GENERATED by scripts/gen-abi.mjs from the BTF of the compiled BPF objects. Do not edit:');
out.push('// change bpf-c/include/weir/*.h and rebuild. codecs.test checks this file against the objects.');
out.push(`// Objects: ${objects.map((o) => basename(o)).join(', ')}`);
out.push('');
out.push("import type { StructLayout } from './btf.js';");
out.push('');
out.push('export const layouts = {');
for (const [name, { layout }] of sorted(layouts)) out.push(`  ${name}: ${JSON.stringify(layout)},`);
out.push('} as const satisfies Record<string, StructLayout>;');
out.push('');
out.push('export const enums = {');
for (const [name, { values }] of sorted(enums)) out.push(`  ${name}: ${JSON.stringify(values)},`);
out.push('} as const;');
out.push('');
out.push('export const maps = {');
for (const [name, entry] of sorted(maps)) out.push(`  ${name}: ${JSON.stringify(entry)},`);
out.push('} as const;');
out.push('');
for (const [name, { layout }] of sorted(layouts)) {
  out.push(`/** ${layout.kind} ${name} (${layout.size} bytes) */`);
  out.push(`export interface ${pascal(name)} {`);
  out.push(members(layout, '  ').trimEnd());
  out.push('}');
  out.push('');
}
out.push('/** Layout name -> decoded type, for codecFor(). */');
out.push('export interface LayoutTypes {');
for (const [name] of sorted(layouts)) out.push(`  ${name}: ${pascal(name)};`);
out.push('}');
process.stdout.write(out.join('\n') + '\n');
