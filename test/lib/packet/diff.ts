// Field-level packet comparison: what a test prints when a program's output is not the
// packet it expected. Expectations are either a whole packet (bytes or a builder; every
// field compared) or a partial object shaped like DecodedPacket (only the fields given
// compared, plus, unless turned off, that checksums are valid and the decode was clean).

import { AssertionError } from 'node:assert';
import { PacketBuilder } from './build.js';
import { decodePacket } from './decode.js';
import type { DecodedPacket, DecodeOptions, L4Layer } from './layers.js';
import { toBuffer, type Bytes } from './spec.js';

type Expectation<T> = T extends Uint8Array
  ? Bytes
  : T extends readonly (infer U)[]
    ? readonly Expectation<U>[]
    : T extends object
      ? { [K in keyof T]?: Expectation<T[K]> }
      : T;

/** The fields a test cares about, shaped like DecodedPacket; byte fields take Bytes. */
export type PacketExpectation = Expectation<DecodedPacket>;

export interface DiffOptions extends DecodeOptions {
  /** partial expectations: require every checksum in the packet to be valid (default true) */
  checksums?: boolean;
  /** partial expectations: require an empty `errors` list (default true) */
  cleanDecode?: boolean;
}

/** One line per differing field: `layer.field: expected X, got Y`. Empty when they match. */
export function diffPackets(actual: Uint8Array, expected: Uint8Array | PacketBuilder | PacketExpectation, opts: DiffOptions = {}): string[] {
  const got = decodePacket(actual, opts);
  if (expected instanceof Uint8Array || expected instanceof PacketBuilder) {
    const want = expected instanceof PacketBuilder ? expected.build() : expected;
    const out: string[] = [];
    compare('', decodePacket(want, opts), got, true, out);
    if (out.length === 0 && !Buffer.from(want).equals(Buffer.from(actual))) out.push(bytesDiff('bytes', want, actual));
    return out;
  }
  const out: string[] = [];
  compare('', expected, got, false, out);
  if (opts.checksums ?? true) out.push(...checksumProblems(expected, got));
  if ((opts.cleanDecode ?? true) && expected.errors === undefined && got.errors.length) {
    out.push(`errors: expected none, got ${got.errors.join('; ')}`);
  }
  return out;
}

/** Throws an AssertionError listing every differing field, and what the packet actually was. */
export function assertPacket(actual: Uint8Array, expected: Uint8Array | PacketBuilder | PacketExpectation, opts: DiffOptions = {}): void {
  const diffs = diffPackets(actual, expected, opts);
  if (diffs.length === 0) return;
  const message = [
    `packet differs in ${diffs.length} field${diffs.length === 1 ? '' : 's'}:`,
    ...diffs.map((d) => `  ${d}`),
    `  actual: ${describePacket(decodePacket(actual, opts))}`,
  ].join('\n');
  throw new AssertionError({ message, operator: 'assertPacket' });
}

/** One line, tcpdump-like: `eth 02:..:01 > 02:..:02 ipv4 198.18.0.1 > 198.19.0.10 ttl 64 tcp 40000 > 80 [syn] len 2`. */
export function describePacket(d: DecodedPacket): string {
  const parts: string[] = [];
  if (d.eth) parts.push(`eth ${d.eth.src} > ${d.eth.dst}${d.eth.vlan ? ` vlan ${d.eth.vlan.id}` : ''}`);
  if (d.ipv4) parts.push(`ipv4 ${d.ipv4.src} > ${d.ipv4.dst} ttl ${d.ipv4.ttl}`);
  if (d.ipv6) parts.push(`ipv6 ${d.ipv6.src} > ${d.ipv6.dst} hlim ${d.ipv6.hopLimit}`);
  const l4 = d.l4;
  if (l4?.proto === 'tcp') parts.push(`tcp ${l4.sport} > ${l4.dport} [${(l4.flags ?? []).join(',')}]`);
  if (l4?.proto === 'udp') parts.push(`udp ${l4.sport} > ${l4.dport}`);
  if (l4?.proto === 'icmp' || l4?.proto === 'icmpv6') parts.push(`${l4.proto} ${l4.typeName ?? l4.type}/${l4.code}`);
  parts.push(`len ${d.payload.length}`);
  if (d.errors.length) parts.push(`errors: ${d.errors.join('; ')}`);
  return parts.join(' ');
}

function checksumProblems(expected: PacketExpectation, got: DecodedPacket): string[] {
  const out: string[] = [];
  const check = (name: string, layer: { checksumValid?: boolean | null } | undefined, mentioned: boolean): void => {
    if (layer && !mentioned && 'checksumValid' in layer && layer.checksumValid !== true) {
      out.push(`${name}.checksumValid: expected true, got ${String(layer.checksumValid)}`);
    }
  };
  check('ipv4', got.ipv4, expected.ipv4?.checksumValid !== undefined);
  const l4: L4Layer | undefined = got.l4;
  if (l4) {
    const mentioned = expected.l4?.checksumValid !== undefined || expected[l4.proto]?.checksumValid !== undefined;
    check(l4.proto, l4, mentioned);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function compare(path: string, want: unknown, got: unknown, full: boolean, out: string[]): void {
  const key = path.slice(path.lastIndexOf('.') + 1);
  if (want === undefined && !full) return;
  if (got instanceof Uint8Array && (typeof want === 'string' || want instanceof Uint8Array || Array.isArray(want))) {
    const w = toBuffer(want as Bytes);
    if (!w.equals(Buffer.from(got))) out.push(bytesDiff(path, w, got));
    return;
  }
  if (Array.isArray(want) && Array.isArray(got) && want.every((x) => typeof x === 'string') && key === 'flags') {
    const [w, g] = [[...want].sort().join(','), [...got].sort().join(',')];
    if (w !== g) out.push(`${path}: expected [${want.join(',')}], got [${got.join(',')}]`);
    return;
  }
  if (Array.isArray(want) && Array.isArray(got)) {
    if (want.length !== got.length) out.push(`${path}.length: expected ${want.length}, got ${got.length}`);
    for (let i = 0; i < Math.min(want.length, got.length); i++) compare(`${path}[${i}]`, want[i], got[i], full, out);
    return;
  }
  if (isPlainObject(want) && isPlainObject(got)) {
    const keys = new Set([...Object.keys(want), ...(full ? Object.keys(got) : [])]);
    // `l4` repeats the transport layer; a whole-packet comparison would report it twice
    for (const k of keys) if (!(full && k === 'l4')) compare(path ? `${path}.${k}` : k, want[k], got[k], full, out);
    return;
  }
  if (want === got) return;
  if (isPlainObject(want) && got === undefined) {
    out.push(`${path}: expected ${describeLayer(want)}, got (absent)`);
  } else if (want === undefined && isPlainObject(got)) {
    out.push(`${path}: expected (absent), got ${describeLayer(got)}`);
  } else {
    out.push(`${path}: expected ${show(path, want)}, got ${show(path, got)}`);
  }
}

const HEX_FIELDS = new Set(['checksum', 'tpid', 'rest']);

function show(path: string, v: unknown): string {
  const key = path.slice(path.lastIndexOf('.') + 1);
  if (v === undefined) return '(absent)';
  if (typeof v === 'number' && (HEX_FIELDS.has(key) || path === 'eth.type' || path.endsWith('.eth.type'))) {
    return `0x${v.toString(16).padStart(4, '0')}`;
  }
  if (Array.isArray(v)) return `[${v.map((x) => show(path, x)).join(',')}]`;
  if (v instanceof Uint8Array) return hexOf(v);
  if (isPlainObject(v)) return describeLayer(v);
  return String(v);
}

function describeLayer(v: Record<string, unknown>): string {
  const fields = Object.entries(v)
    .filter(([, x]) => !isPlainObject(x))
    .map(([k, x]) => `${k}: ${show(k, x)}`);
  return `{${fields.join(', ')}}`;
}

function hexOf(b: Uint8Array): string {
  const buf = Buffer.from(b);
  const text = buf.toString('latin1');
  const printable = buf.length > 0 && /^[\x20-\x7e]*$/.test(text);
  const hex = buf.length > 32 ? `${buf.subarray(0, 32).toString('hex')}…` : buf.toString('hex');
  return `${buf.length} bytes ${hex || '(empty)'}${printable && buf.length <= 32 ? ` "${text}"` : ''}`;
}

function bytesDiff(path: string, want: Uint8Array, got: Uint8Array): string {
  let i = 0;
  while (i < want.length && i < got.length && want[i] === got[i]) i++;
  return `${path}: expected ${hexOf(want)}, got ${hexOf(got)} (first difference at offset ${i})`;
}
