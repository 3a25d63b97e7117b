// src/bpf: codecs between map bytes and plain JS values, built from BTF layouts only
// (abi.gen.ts at build time, or a live Btf at run time), so no offset is written by hand.
//
// Field kinds: host-endian integers (64-bit ones as bigint), typedef `__be16`/`__be32` as
// big-endian numbers (`__be64` bigint), `weir_ip4` as dotted quad, `weir_ip6` as IPv6 text,
// `weir_mac` as aa:bb:..; byte arrays as Buffer, other arrays as arrays; nested structs and
// unions as nested objects; enums as numbers; bitfields as numbers. Encoding starts from
// zeroed bytes, so padding and omitted fields are zero.

import { endianness } from 'node:os';
import { layouts, type LayoutTypes } from './abi.gen.js';
import { isStruct, type MemberLayout, type StructLayout, type TypeLayout } from './btf.js';
import { bytesToIp4, bytesToIp6, ip4ToBytes, ip6ToBytes } from './ip.js';

export interface Codec<T> {
  readonly size: number;
  encode(value: T): Buffer;
  /** Encodes into `size` zeroed bytes of `buf` at `off` (batch writes: one buffer, no per-entry allocation). */
  encodeInto(value: T, buf: Buffer, off: number): void;
  decode(bytes: Buffer): T;
  /** Decodes the `size` bytes of `buf` at `off` (a batch dump: one buffer, no per-entry Buffer). */
  decodeAt(buf: Buffer, off: number): T;
}

type Reader = (b: Buffer, off: number) => unknown;
type Writer = (b: Buffer, off: number, v: unknown) => void;
interface Field {
  read: Reader;
  write: Writer;
}

const LE = endianness() === 'LE';

function num(v: unknown, what: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new TypeError(`${what}: expected a number, got ${typeof v}`);
}

function big(v: unknown, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new TypeError(`${what}: expected a bigint, got ${typeof v}`);
}

function intField(size: number, signed: boolean, be: boolean, what: string): Field {
  if (size === 8) {
    const read = be
      ? signed
        ? (b: Buffer, o: number) => b.readBigInt64BE(o)
        : (b: Buffer, o: number) => b.readBigUInt64BE(o)
      : signed
        ? (b: Buffer, o: number) => b.readBigInt64LE(o)
        : (b: Buffer, o: number) => b.readBigUInt64LE(o);
    return {
      read,
      write: (b, o, v) => {
        const x = big(v, what);
        if (be && signed) b.writeBigInt64BE(x, o);
        else if (be) b.writeBigUInt64BE(x, o);
        else if (signed) b.writeBigInt64LE(x, o);
        else b.writeBigUInt64LE(x, o);
      },
    };
  }
  if (![1, 2, 4].includes(size)) throw new Error(`${what}: no codec for a ${size}-byte integer`);
  return {
    read: (b, o) => (be ? (signed ? b.readIntBE(o, size) : b.readUIntBE(o, size)) : signed ? b.readIntLE(o, size) : b.readUIntLE(o, size)),
    write: (b, o, v) => {
      const x = num(v, what);
      if (be && signed) b.writeIntBE(x, o, size);
      else if (be) b.writeUIntBE(x, o, size);
      else if (signed) b.writeIntLE(x, o, size);
      else b.writeUIntLE(x, o, size);
    },
  };
}

function fieldFor(t: TypeLayout, what: string): Field {
  switch (t.hint) {
    case '__be16':
    case '__be32':
    case '__be64':
      return intField(t.size, false, true, what);
    case 'weir_ip4':
      return { read: (b, o) => bytesToIp4(b, o), write: (b, o, v) => ip4ToBytes(String(v), b, o) };
    case 'weir_ip6':
      return { read: (b, o) => bytesToIp6(b, o), write: (b, o, v) => ip6ToBytes(String(v), b, o) };
    case 'weir_mac':
      return {
        read: (b, o) => [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':'),
        write: (b, o, v) =>
          String(v)
            .split(':')
            .forEach((h, i) => (b[o + i] = parseInt(h, 16))),
      };
  }
  switch (t.kind) {
    case 'int':
    case 'enum':
      return intField(t.size, t.signed ?? false, !LE, what);
    case 'array':
      return arrayField(t, what);
    case 'struct':
    case 'union': {
      const inner = structFields(t as StructLayout, what);
      return { read: (b, o) => inner.read(b, o), write: (b, o, v) => inner.write(b, o, v) };
    }
    default:
      throw new Error(`${what}: no codec for BTF kind '${t.kind}'`);
  }
}

function arrayField(t: TypeLayout, what: string): Field {
  const elem = t.elem!;
  const n = t.length ?? 0;
  if (elem.size === 1 && elem.kind === 'int') {
    return {
      read: (b, o) => Buffer.from(b.subarray(o, o + n)),
      write: (b, o, v) => {
        const src = v as Buffer;
        if (!Buffer.isBuffer(src) || src.length > n) throw new TypeError(`${what}: expected a Buffer of at most ${n} bytes`);
        src.copy(b, o);
      },
    };
  }
  const f = fieldFor(elem, `${what}[]`);
  return {
    read: (b, o) => Array.from({ length: n }, (_, i) => f.read(b, o + i * elem.size)),
    write: (b, o, v) => {
      const a = v as unknown[];
      if (!Array.isArray(a) || a.length > n) throw new TypeError(`${what}: expected an array of at most ${n} items`);
      a.forEach((x, i) => f.write(b, o + i * elem.size, x));
    },
  };
}

/** A bitfield, read and written little-endian through the bytes it spans. */
function bitField(m: MemberLayout, what: string): Field {
  const start = Math.floor(m.bitOffset / 8);
  const shift = BigInt(m.bitOffset % 8);
  const span = Math.ceil(((m.bitOffset % 8) + m.bitSize) / 8);
  const mask = (1n << BigInt(m.bitSize)) - 1n;
  const get = (b: Buffer, o: number) => {
    let x = 0n;
    for (let i = span - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[o + start + i]!);
    return x;
  };
  return {
    read: (b, o) => Number((get(b, o) >> shift) & mask),
    write: (b, o, v) => {
      let x = get(b, o) & ~(mask << shift);
      x |= (BigInt(num(v, what)) & mask) << shift;
      for (let i = 0; i < span; i++) b[o + start + i] = Number((x >> BigInt(8 * i)) & 0xffn);
    },
  };
}

/**
 * A struct reader that builds its object as one literal (`{frontend_id: r0(b, o + 0), slot:
 * r1(b, o + 4)}`): every object gets its final shape at once, ~3x faster than adding the
 * fields one by one, which a dump of 600,000 backends at a restart pays per entry. The code
 * is generated from the BTF layout's member names and offsets, nothing else.
 */
function literalReader(fields: ReadonlyArray<{ name: string; read: Reader; off: number }>): Reader {
  const body = fields.map((x, i) => `${JSON.stringify(x.name)}: r[${i}](b, o + ${x.off})`).join(', ');
  return new Function('r', `return (b, o) => ({ ${body} });`)(fields.map((x) => x.read)) as Reader;
}

function structFields(t: StructLayout, what: string): Field {
  const name = t.name ?? what;
  const fields = t.members.map((m, i) => {
    const label = `${name}.${m.name || `#${i}`}`;
    const f = m.bitSize ? bitField(m, label) : fieldFor(m.type, label);
    // an anonymous struct/union member spreads its members into the parent
    const anon = !m.name && isStruct(m.type);
    return { m, f, anon, off: m.bitSize ? 0 : m.offset };
  });
  const readLoop: Reader = (b, o) => {
    const out: Record<string, unknown> = {};
    for (const { m, f, anon, off } of fields) {
      const v = f.read(b, o + off);
      if (anon) Object.assign(out, v);
      else out[m.name] = v;
    }
    return out;
  };
  return {
    read: fields.some((x) => x.anon) ? readLoop : literalReader(fields.map((x) => ({ name: x.m.name, read: x.f.read, off: x.off }))),
    write: (b, o, v) => {
      if (typeof v !== 'object' || v === null) throw new TypeError(`${name}: expected an object`);
      const obj = v as Record<string, unknown>;
      for (const { m, f, anon, off } of fields) {
        if (anon) {
          f.write(b, o + off, obj);
          continue;
        }
        if (obj[m.name] !== undefined) f.write(b, o + off, obj[m.name]);
      }
    },
  };
}

/** A codec for any BTF type: a struct becomes an object, an int a number, and so on. */
export function typeCodec<T = unknown>(t: TypeLayout): Codec<T> {
  const f = fieldFor(t, t.name ?? t.hint ?? t.kind);
  const size = t.size;
  return {
    size,
    encode: (v) => {
      const b = Buffer.alloc(size);
      f.write(b, 0, v);
      return b;
    },
    encodeInto: (v, b, off) => f.write(b, off, v),
    decode: (b) => {
      if (b.length < size) throw new RangeError(`${t.name ?? t.kind}: need ${size} bytes, got ${b.length}`);
      return f.read(b, 0) as T;
    },
    decodeAt: (b, off) => {
      if (b.length < off + size) throw new RangeError(`${t.name ?? t.kind}: need ${size} bytes at ${off}, got ${b.length}`);
      return f.read(b, off) as T;
    },
  };
}

export function structCodec<T = Record<string, unknown>>(layout: StructLayout): Codec<T> {
  return typeCodec<T>(layout);
}

/** The codec for an ABI struct named in abi.gen.ts, typed by its generated interface. */
export function codecFor<N extends keyof LayoutTypes & keyof typeof layouts>(name: N): Codec<LayoutTypes[N]> {
  return structCodec<LayoutTypes[N]>(layouts[name] as StructLayout);
}

function intCodec(size: number, signed: boolean, be: boolean): Codec<number> {
  return typeCodec<number>({ kind: 'int', size, signed, ...(be ? { hint: `__be${size * 8}` } : {}) });
}

export const u8 = intCodec(1, false, false);
export const u16 = intCodec(2, false, false);
export const u32 = intCodec(4, false, false);
export const s32 = intCodec(4, true, false);
export const be16 = intCodec(2, false, true);
export const be32 = intCodec(4, false, true);
export const u64: Codec<bigint> = typeCodec<bigint>({ kind: 'int', size: 8, signed: false });
export const ip4: Codec<string> = typeCodec<string>({ kind: 'int', size: 4, hint: 'weir_ip4' });
export const ip6: Codec<string> = typeCodec<string>({
  kind: 'array',
  size: 16,
  hint: 'weir_ip6',
  length: 16,
  elem: { kind: 'int', size: 1 },
});

/** Raw bytes of a fixed size, for maps whose layout has no codec yet. */
export function bytes(size: number): Codec<Buffer> {
  return {
    size,
    encode: (v) => {
      if (v.length !== size) throw new RangeError(`expected ${size} bytes, got ${v.length}`);
      return v;
    },
    encodeInto: (v, b, off) => {
      if (v.length !== size) throw new RangeError(`expected ${size} bytes, got ${v.length}`);
      v.copy(b, off);
    },
    decode: (b) => Buffer.from(b.subarray(0, size)),
    decodeAt: (b, off) => Buffer.from(b.subarray(off, off + size)),
  };
}
