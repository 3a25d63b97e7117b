// Shared fixture for the service dataplane tests (service-*.test.ts): loads from_pod,
// from_host and to_pod into one private bpffs (their maps are shared by pin name, as in
// production), encodes map entries with codecs built from the objects' BTF, runs
// packets through BPF_PROG_TEST_RUN and sums the per-CPU counters.
//
// It talks to the raw addon (src/bpf/native.ts) because the typed layer (BpfObject,
// src/bpf/abi.gen.ts) was not written yet; switch to those when they land: the tests
// only use the functions exported here.

import { join } from 'node:path';
import { addon, type RawBtf, type RawMap, type RawObject, type RawType } from '../../src/bpf/native.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { formatIPv4, parseIPv4 } from '../lib/packet.js';

export const OBJ_DIR = join(process.cwd(), 'build', 'bpf');

export const IPPROTO = { icmp: 1, tcp: 6, udp: 17, sctp: 132 } as const;
export const TC = { pass: 0, drop: 2, redirect: 7 } as const;

export type Fields = Record<string, string | number | bigint>;

/** Encoder/decoder of one ABI struct, laid out from BTF: weir_ip4 fields take dotted
 * quads, __be16 fields port numbers (written big-endian), integers numbers or bigints,
 * arrays and absent fields zero. */
export class Codec {
  constructor(
    readonly name: string,
    readonly type: RawType,
  ) {}

  get size(): number {
    return this.type.size;
  }

  encode(fields: Fields): Buffer {
    const buf = Buffer.alloc(this.type.size);
    const known = new Set((this.type.members ?? []).map((m) => m.name));
    for (const k of Object.keys(fields)) {
      if (!known.has(k)) throw new Error(`${this.name} has no field ${k}; fields: ${[...known].join(', ')}`);
    }
    for (const m of this.type.members ?? []) {
      const v = fields[m.name];
      if (v === undefined) continue;
      if (m.type.hint === 'weir_ip4') parseIPv4(String(v)).copy(buf, m.offset);
      else if (m.type.hint === '__be16') buf.writeUInt16BE(Number(v), m.offset);
      else if (m.size === 8) buf.writeBigUInt64LE(BigInt(v), m.offset);
      else if (m.size === 4) buf.writeUInt32LE(Number(v), m.offset);
      else if (m.size === 2) buf.writeUInt16LE(Number(v), m.offset);
      else if (m.size === 1) buf.writeUInt8(Number(v), m.offset);
      else throw new Error(`${this.name}.${m.name}: cannot encode a ${m.type.kind} of ${m.size} bytes`);
    }
    return buf;
  }

  decode(buf: Buffer): Record<string, string | number | bigint> {
    const out: Record<string, string | number | bigint> = {};
    for (const m of this.type.members ?? []) {
      if (m.type.kind === 'array' || m.name.startsWith('pad')) continue;
      if (m.type.hint === 'weir_ip4') out[m.name] = formatIPv4(buf.subarray(m.offset, m.offset + 4));
      else if (m.type.hint === '__be16') out[m.name] = buf.readUInt16BE(m.offset);
      else if (m.size === 8) out[m.name] = buf.readBigUInt64LE(m.offset);
      else if (m.size === 4) out[m.name] = buf.readUInt32LE(m.offset);
      else if (m.size === 2) out[m.name] = buf.readUInt16LE(m.offset);
      else if (m.size === 1) out[m.name] = buf.readUInt8(m.offset);
    }
    return out;
  }
}

function codec(btf: RawBtf, name: string): Codec {
  return new Codec(name, btf.struct(name));
}

/** A map with a key and a value codec. */
export class TypedMap {
  constructor(
    readonly raw: RawMap,
    readonly key: Codec,
    readonly value: Codec,
  ) {}
  update(key: Fields, value: Fields): void {
    this.raw.update(this.key.encode(key), this.value.encode(value));
  }
  lookup(key: Fields): Record<string, string | number | bigint> | null {
    const v = this.raw.lookup(this.key.encode(key));
    return v ? this.value.decode(v) : null;
  }
  delete(key: Fields): boolean {
    return this.raw.delete(this.key.encode(key));
  }
  /** every entry, decoded */
  entries(): { key: Record<string, string | number | bigint>; value: Record<string, string | number | bigint> }[] {
    const out = [];
    for (let k = this.raw.nextKey(null); k; k = this.raw.nextKey(k)) {
      const v = this.raw.lookup(k);
      if (v) out.push({ key: this.key.decode(k), value: this.value.decode(v) });
    }
    return out;
  }
  clear(): void {
    for (let k = this.raw.nextKey(null); k; k = this.raw.nextKey(null)) this.raw.delete(k);
  }
}

export interface ServiceDataplane {
  bpffs: PrivateBpffs;
  objects: Record<'fromPod' | 'fromHost' | 'toPod', RawObject>;
  frontends: TypedMap;
  backends: TypedMap;
  affinity: TypedMap;
  conntrack: TypedMap;
  /** enum weir_reason / weir_hook / weir_frontend_flags / weir_ct_flags, from BTF */
  reason: Record<string, number>;
  hook: Record<string, number>;
  frontendFlag: Record<string, number>;
  ctFlag: Record<string, number>;
  run(prog: 'fromPod' | 'fromHost' | 'toPod', data: Buffer): { retval: number; data: Buffer };
  /** counters summed over CPUs, as {hook: {reason: packets}} for non-zero slots only */
  counters(): Record<string, Record<string, number>>;
  resetCounters(): void;
  /** empty every service map (frontends, backends, affinity, conntrack) and the counters */
  reset(): void;
  close(): Promise<void>;
}

const PROGRAMS = { fromPod: ['from_pod', 'weir_from_pod'], fromHost: ['from_host', 'weir_from_host'], toPod: ['to_pod', 'weir_to_pod'] } as const;

function enumValues(btf: RawBtf, name: string, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(btf.enum(name).values)) {
    if (!k.endsWith('__MAX')) out[k.slice(prefix.length).toLowerCase()] = v;
  }
  return out;
}

/** @consts .rodata knobs set before load in the objects that have them (e.g. lb_stats_enabled) */
export function loadServiceDataplane(consts: Record<string, Buffer> = {}): ServiceDataplane {
  const bpffs = mountPrivateBpffs('service');
  const objects = {} as ServiceDataplane['objects'];
  for (const [key, [file]] of Object.entries(PROGRAMS) as [keyof typeof PROGRAMS, readonly [string, string]][]) {
    const obj = addon.Object.open(join(OBJ_DIR, `${file}.o`), bpffs.path);
    if (file !== 'to_pod') for (const [name, value] of Object.entries(consts)) obj.setConst(name, value);
    obj.load();
    objects[key] = obj;
  }
  const btf = objects.fromPod.btf();
  const ncpu = addon.numPossibleCpus();
  const map = (name: string, key: string, value: string) =>
    new TypedMap(objects.fromPod.map(name), codec(btf, key), codec(btf, value));
  const frontends = map('weir_frontend4', 'weir_frontend4_key', 'weir_frontend4');
  const backends = map('weir_backend4', 'weir_backend4_key', 'weir_backend4');
  const affinity = map('weir_affinity4', 'weir_affinity4_key', 'weir_affinity4');
  const conntrack = map('weir_ct4_v2', 'weir_ct4_key', 'weir_ct4');
  const counterMap = objects.fromPod.map('weir_counters');
  const reason = enumValues(btf, 'weir_reason', 'WEIR_REASON_');
  const hook = enumValues(btf, 'weir_hook', 'WEIR_HOOK_');
  const reasonMax = btf.enum('weir_reason').values['WEIR_REASON__MAX']!;
  const slots = btf.enum('weir_hook').values['WEIR_HOOK__MAX']! * reasonMax;
  const hookName = Object.fromEntries(Object.entries(hook).map(([k, v]) => [v, k]));
  const reasonName = Object.fromEntries(Object.entries(reason).map(([k, v]) => [v, k]));

  const slotKey = (i: number) => {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(i);
    return k;
  };
  const dp: ServiceDataplane = {
    bpffs,
    objects,
    frontends,
    backends,
    affinity,
    conntrack,
    reason,
    hook,
    frontendFlag: enumValues(btf, 'weir_frontend_flags', 'WEIR_FRONTEND_'),
    ctFlag: enumValues(btf, 'weir_ct_flags', 'WEIR_CT_'),
    run(prog, data) {
      const p = objects[prog].program(PROGRAMS[prog][1]);
      const r = p.testRun({ data, dataSizeOut: data.length + 256 });
      return { retval: r.retval, data: r.dataOut };
    },
    counters() {
      const out: Record<string, Record<string, number>> = {};
      for (let i = 0; i < slots; i++) {
        const v = counterMap.lookup(slotKey(i));
        if (!v) continue;
        let packets = 0n;
        for (let c = 0; c < ncpu; c++) packets += v.readBigUInt64LE(c * 16);
        if (packets === 0n) continue;
        const h = hookName[Math.floor(i / reasonMax)] ?? String(Math.floor(i / reasonMax));
        const r = reasonName[i % reasonMax] ?? String(i % reasonMax);
        (out[h] ??= {})[r] = Number(packets);
      }
      return out;
    },
    resetCounters() {
      const zero = Buffer.alloc(ncpu * 16);
      for (let i = 0; i < slots; i++) counterMap.update(slotKey(i), zero);
    },
    reset() {
      frontends.clear();
      backends.clear();
      affinity.clear();
      conntrack.clear();
      dp.resetCounters();
    },
    async close() {
      for (const o of Object.values(objects)) o.close();
      await bpffs.cleanup();
    },
  };
  return dp;
}

export interface ServiceSpec {
  id: number;
  address: string;
  port: number;
  protocol?: number;
  scope?: 'internal' | 'external';
  flags?: string[];
  affinityTimeout?: number;
  backends: { address: string; port: number }[];
}

/** Program one frontend and its backend slots, as the reconciler would (slots, then count). */
export function addService(dp: ServiceDataplane, s: ServiceSpec): void {
  s.backends.forEach((b, slot) => dp.backends.update({ frontend_id: s.id, slot }, { address: b.address, port: b.port }));
  const flags = (s.flags ?? []).reduce((bits, f) => {
    const bit = dp.frontendFlag[f];
    if (bit === undefined) throw new Error(`unknown frontend flag ${f}`);
    return bits | bit;
  }, 0);
  dp.frontends.update(
    { address: s.address, port: s.port, protocol: s.protocol ?? IPPROTO.tcp, scope: s.scope === 'external' ? 1 : 0 },
    { id: s.id, backend_count: s.backends.length, flags, affinity_timeout: s.affinityTimeout ?? 0 },
  );
}
