// src/bpf: BTF as typed layouts. Layouts come from an object's BTF, an ELF file, or the
// kernel by id (so a pinned map can be read with no object file at hand), and they are the
// only place codec.ts learns offsets from.

import { native } from './errors.js';
import { addon, type RawBtf, type RawType } from './native.js';

/** A type resolved through typedef/const/volatile; `hint` is the first typedef name seen. */
export interface TypeLayout {
  readonly kind: string; // 'int' | 'enum' | 'float' | 'ptr' | 'array' | 'struct' | 'union' | 'void' | ...
  readonly name?: string;
  readonly size: number;
  readonly hint?: string;
  readonly signed?: boolean;
  readonly bits?: number;
  readonly length?: number;
  readonly elem?: TypeLayout;
  readonly members?: readonly MemberLayout[];
}

export interface MemberLayout {
  readonly name: string;
  /** byte offset (bitOffset / 8) */
  readonly offset: number;
  readonly bitOffset: number;
  /** 0 unless a bitfield */
  readonly bitSize: number;
  readonly size: number;
  readonly type: TypeLayout;
}

export interface StructLayout extends TypeLayout {
  readonly members: readonly MemberLayout[];
}

export interface DatasecVar {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly type: TypeLayout;
}

/** Drops BTF type ids (they differ between objects) so equal layouts compare equal. */
export function normalizeType(t: RawType): TypeLayout {
  const out: { -readonly [K in keyof TypeLayout]: TypeLayout[K] } = { kind: t.kind, size: t.size };
  if (t.name !== undefined) out.name = t.name;
  if (t.hint !== undefined) out.hint = t.hint;
  if (t.signed !== undefined) out.signed = t.signed;
  if (t.bits !== undefined) out.bits = t.bits;
  if (t.length !== undefined) out.length = t.length;
  if (t.elem !== undefined) out.elem = normalizeType(t.elem);
  if (t.members !== undefined)
    out.members = t.members.map((m) => ({
      name: m.name,
      offset: m.offset,
      bitOffset: m.bitOffset,
      bitSize: m.bitSize,
      size: m.size,
      type: normalizeType(m.type),
    }));
  return out;
}

export function isStruct(t: TypeLayout): t is StructLayout {
  return (t.kind === 'struct' || t.kind === 'union') && t.members !== undefined;
}

export class Btf {
  constructor(
    private readonly raw: RawBtf,
    readonly label: string,
  ) {}

  static fromFile(path: string): Btf {
    return new Btf(
      native(() => addon.Btf.fromFile(path)),
      `BTF of ${path}`,
    );
  }

  static fromKernelId(id: number): Btf {
    return new Btf(
      native(() => addon.Btf.fromKernelId(id)),
      `kernel BTF id ${id}`,
    );
  }

  /** A struct or union by name; throws ENOENT when absent. */
  struct(name: string): StructLayout {
    const t = normalizeType(native(() => this.raw.struct(name)));
    if (!isStruct(t)) throw new Error(`${this.label}: ${name} is not a struct`);
    return t;
  }

  /** An enum's values by name; throws ENOENT when absent. */
  enum(name: string): Record<string, number> {
    return { ...native(() => this.raw.enum(name)).values };
  }

  /** The type with this id, resolved. */
  type(id: number): TypeLayout {
    return normalizeType(native(() => this.raw.describe(id)));
  }

  /** A type id by name (and kind: 'struct', 'enum', 'typedef', ...), or null. */
  find(name: string, kind?: string): number | null {
    return native(() => this.raw.find(name, kind));
  }

  /** The variables of a data section ('.rodata', '.bss', ...). */
  datasec(name: string): DatasecVar[] {
    return native(() => this.raw.datasec(name)).map((v) => ({ ...v, type: normalizeType(v.type) }));
  }

  /** Every named type of one kind. */
  names(kind: string): string[] {
    return native(() => this.raw.names(kind));
  }
}
