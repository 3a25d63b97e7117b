// test/bpf: C and TypeScript cannot drift. A fresh `scripts/gen-abi.mjs` run over the
// compiled objects must equal the committed src/bpf/abi.gen.ts; the conntrack layouts
// (versions 2 and 1) are checked against offsets written by hand from the C headers; every
// map of every compiled object is compared with the generated module through the objects'
// BTF, and the codecs built from those layouts round-trip every field kind byte for byte.

import assert from 'node:assert/strict';
import { execFileSync, type ExecFileSyncOptionsWithStringEncoding } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  abiMaps,
  BpfObject,
  Btf,
  bytesToIp4,
  bytesToIp6,
  codecFor,
  enums,
  ip6,
  ip4ToBytes,
  ip6ToBytes,
  isStruct,
  layouts,
  structCodec,
  type TypeLayout,
} from '../../src/bpf/index.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const objectsIn = (dir: string) =>
  readdirSync(join(root, dir))
    .filter((f) => f.endsWith('.o'))
    .sort()
    .map((f) => join(root, dir, f));
const weirObjects = objectsIn('build/bpf');
const testObjects = objectsIn('build/test-bpf');

const layoutOf = (name: string) => (layouts as Record<string, TypeLayout>)[name];
const typeLabel = (t: TypeLayout) => (t.kind === 'struct' || t.kind === 'union' ? t.name : (t.hint ?? t.name));

test('there are objects to check', () => {
  assert.ok(weirObjects.some((o) => o.endsWith('probe.o')));
  assert.ok(testObjects.some((o) => o.endsWith('maps.o')));
});

// make build regenerates abi.gen.ts in place, so comparing the module with the BTF it was
// just generated from cannot fail: the generator is run afresh here and its output compared
// with the file on disk and with the committed file (a stale commit fails a fresh checkout).
test('a fresh gen-abi run over build/bpf equals src/bpf/abi.gen.ts, on disk and as committed', () => {
  const fresh = execFileSync(process.execPath, [join(root, 'scripts/gen-abi.mjs'), ...weirObjects], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const onDisk = readFileSync(join(root, 'src/bpf/abi.gen.ts'), 'utf8');
  assert.ok(fresh === onDisk, 'src/bpf/abi.gen.ts differs from what scripts/gen-abi.mjs makes of build/bpf/*.o: run make build');
  let committed: string | undefined;
  try {
    const opts: ExecFileSyncOptionsWithStringEncoding = { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] };
    committed = execFileSync('git', ['-C', root, 'show', 'HEAD:src/bpf/abi.gen.ts'], opts);
  } catch (e) {
    // only a source tree without git history (a release tarball) has nothing to compare
    assert.match(String((e as { stderr?: unknown }).stderr ?? e), /not a git repository|ENOENT/, `git show failed: ${String(e)}`);
  }
  if (committed !== undefined) assert.ok(fresh === committed, 'the committed src/bpf/abi.gen.ts is stale: commit the regenerated file');
});

/** [member, offset, size] as the C headers declare them, counted by hand (no generator). */
const CT4_V2: Array<[string, number, number]> = [
  ['nat_saddr', 0, 4],
  ['nat_daddr', 4, 4],
  ['nat_sport', 8, 2],
  ['nat_dport', 10, 2],
  ['flags', 12, 2],
  ['tcp_flags_seen', 14, 1],
  ['policy', 15, 1],
  ['frontend_id', 16, 4],
  ['tunnel_node', 20, 4],
  ['ifindex', 24, 4],
  ['pad', 28, 4],
  ['created_ns', 32, 8],
  ['last_seen_ns', 40, 8],
  ['packets', 48, 8],
  ['bytes', 56, 8],
];
const CT4_V1: Array<[string, number, number]> = [
  ['nat_saddr', 0, 4],
  ['nat_daddr', 4, 4],
  ['nat_sport', 8, 2],
  ['nat_dport', 10, 2],
  ['flags', 12, 2],
  ['tcp_flags_seen', 14, 1],
  ['pad', 15, 1],
  ['frontend_id', 16, 4],
  ['pad2', 20, 4],
  ['created_ns', 24, 8],
  ['last_seen_ns', 32, 8],
  ['packets', 40, 8],
  ['bytes', 48, 8],
];

/** the weir_ip4 fields: addresses in network order */
const ADDRESSES = new Set(['nat_saddr', 'nat_daddr', 'tunnel_node']);

test('weir_ct4 (layout version 2, 64 bytes) and weir_ct4_v1 (56 bytes) have the offsets the headers give, in BTF, abi.gen.ts and the codec', () => {
  const btf = Btf.fromFile(join(root, 'build/bpf/from_pod.o'));
  for (const [name, size, members] of [
    ['weir_ct4', 64, CT4_V2],
    ['weir_ct4_v1', 56, CT4_V1],
  ] as const) {
    const gen = layoutOf(name)!;
    assert.equal(gen.size, size, `abi.gen.ts: sizeof(struct ${name})`);
    assert.deepEqual(
      gen.members!.map((m) => [m.name, m.offset, m.size]),
      members,
      `abi.gen.ts: struct ${name}`,
    );
    if (name === 'weir_ct4') {
      const c = btf.struct(name);
      assert.deepEqual([c.size, c.members.map((m) => [m.name, m.offset, m.size])], [size, members], `from_pod.o BTF: struct ${name}`);
    }
    // each field's bytes land where the hand count says (little-endian host; __be16 in network order)
    const codec = codecFor(name);
    const value: Record<string, unknown> = {};
    for (const [i, [m, , sz]] of members.entries()) {
      if (ADDRESSES.has(m)) value[m] = `198.18.${i}.${i + 1}`;
      else value[m] = sz === 8 ? BigInt(i + 1) << 40n : i + 1;
    }
    const b = codec.encode(value as never);
    assert.equal(b.length, size);
    for (const [i, [m, off, sz]] of members.entries()) {
      if (ADDRESSES.has(m)) assert.equal(bytesToIp4(b, off), `198.18.${i}.${i + 1}`, `${name}.${m} at ${off}`);
      else if (m === 'nat_sport' || m === 'nat_dport') assert.equal(b.readUInt16BE(off), i + 1, `${name}.${m} at ${off}`);
      else if (sz === 8) assert.equal(b.readBigUInt64LE(off), BigInt(i + 1) << 40n, `${name}.${m} at ${off}`);
      else assert.equal(b.readUIntLE(off, sz), i + 1, `${name}.${m} at ${off}`);
    }
  }
});

test('every map key/value layout in every object equals abi.gen.ts', () => {
  let compared = 0;
  for (const path of [...weirObjects, ...testObjects]) {
    const obj = BpfObject.open(path);
    try {
      const btf = obj.btf();
      for (const def of obj.mapDefs().filter((m) => !m.internal)) {
        const where = `${path.slice(root.length)}: map ${def.name}`;
        const key = btf.type(def.btfKeyTypeId);
        const value = btf.type(def.btfValueTypeId);
        assert.equal(key.size, def.keySize, `${where}: key BTF size`);
        // a map of maps holds map fds: its value has no BTF type (weir_ct4_handoff)
        if (def.btfValueTypeId !== 0) assert.equal(value.size, def.valueSize, `${where}: value BTF size`);
        const gen = (abiMaps as Record<string, (typeof abiMaps)[keyof typeof abiMaps]>)[def.name];
        if (weirObjects.includes(path)) assert.ok(gen, `${where} is missing from abi.gen.ts: run make build`);
        if (gen) {
          assert.equal(gen.type, def.type, `${where}: type`);
          assert.equal(gen.keySize, def.keySize, `${where}: key size`);
          assert.equal(gen.valueSize, def.valueSize, `${where}: value size`);
          // a test fixture may resize a map on purpose (from_pod_ct4096.o): layouts must match, sizes need not
          if (weirObjects.includes(path)) assert.equal(gen.maxEntries, def.maxEntries, `${where}: max entries`);
          // a ring buffer has neither key nor value type (weir_events)
          assert.equal(gen.keyType, def.btfKeyTypeId !== 0 ? typeLabel(key) : null, `${where}: key type`);
          assert.equal(gen.valueType, def.btfValueTypeId !== 0 ? typeLabel(value) : null, `${where}: value type`);
        }
        for (const t of [key, value]) {
          if (!isStruct(t) || !t.name) continue;
          const expected = layoutOf(t.name);
          if (weirObjects.includes(path)) assert.ok(expected, `${where}: struct ${t.name} missing from abi.gen.ts`);
          if (!expected) continue;
          // size, then every member's offset and size, then everything (nested types, hints)
          assert.equal(t.size, expected.size, `${where}: sizeof(struct ${t.name})`);
          assert.deepEqual(
            t.members.map((m) => [m.name, m.offset, m.size, m.bitSize]),
            expected.members!.map((m) => [m.name, m.offset, m.size, m.bitSize]),
            `${where}: members of struct ${t.name}`,
          );
          assert.deepEqual(t, expected, `${where}: struct ${t.name}`);
          compared++;
        }
      }
    } finally {
      obj.close();
    }
  }
  assert.ok(compared >= 3, `compared ${compared} struct layouts`);
});

test('every weir_* enum in every object equals abi.gen.ts', () => {
  for (const path of [...weirObjects, ...testObjects]) {
    const btf = Btf.fromFile(path);
    for (const name of btf.names('enum').filter((n) => n.startsWith('weir_'))) {
      const gen = (enums as Record<string, Record<string, number>>)[name];
      assert.ok(gen, `${path}: enum ${name} missing from abi.gen.ts`);
      assert.deepEqual(btf.enum(name), { ...gen }, `${path}: enum ${name}`);
    }
  }
});

test('counter slots decode to names from the BTF enums', () => {
  const btf = Btf.fromFile(join(root, 'build/bpf/probe.o'));
  const hooks = btf.enum('weir_hook');
  const reasons = btf.enum('weir_reason');
  const byValue = (e: Record<string, number>) => new Map(Object.entries(e).map(([k, v]) => [v, k]));
  const hookName = byValue(hooks);
  const reasonName = byValue(reasons);
  const perHook = reasons.WEIR_REASON__MAX!;
  const slotName = (slot: number) => `${hookName.get(Math.floor(slot / perHook))}/${reasonName.get(slot % perHook)}`;
  assert.equal(slotName(hooks.WEIR_HOOK_PROBE! * perHook + reasons.WEIR_REASON_PARSED_TCP!), 'WEIR_HOOK_PROBE/WEIR_REASON_PARSED_TCP');
  assert.equal(slotName(hooks.WEIR_HOOK_SOCK! * perHook + reasons.WEIR_REASON_SOCK_CONNECT4!), 'WEIR_HOOK_SOCK/WEIR_REASON_SOCK_CONNECT4');
  // the generated module agrees, and the counters map holds exactly hooks x reasons slots
  assert.equal(enums.weir_reason.WEIR_REASON_PARSED_TCP, reasons.WEIR_REASON_PARSED_TCP);
  assert.equal(abiMaps.weir_counters.maxEntries, hooks.WEIR_HOOK__MAX! * perHook);
  const counter = codecFor('weir_counter');
  assert.equal(counter.size, 16);
  assert.deepEqual(counter.decode(Buffer.from('0500000000000000e803000000000000', 'hex')), { packets: 5n, bytes: 1000n });
});

test('the fixture structs have the layout the C compiler gave them', () => {
  const btf = Btf.fromFile(join(root, 'build/test-bpf/maps.o'));
  const key = btf.struct('maps_test_key');
  assert.equal(key.size, 12);
  assert.deepEqual(
    key.members.map((m) => [m.name, m.offset, m.size, m.type.hint]),
    [
      ['addr', 0, 4, 'weir_ip4'],
      ['port', 4, 2, '__be16'],
      ['proto', 6, 1, '__u8'],
      ['pad', 7, 1, '__u8'],
      ['id', 8, 4, '__u32'],
    ],
  );
  const value = btf.struct('maps_test_value');
  assert.equal(value.size, 40);
  assert.deepEqual(
    value.members.map((m) => [m.name, m.offset, m.bitOffset, m.bitSize, m.type.kind]),
    [
      ['packets', 0, 0, 0, 'int'],
      ['addr6', 8, 64, 0, 'array'],
      ['kind', 24, 192, 4, 'int'],
      ['level', 24, 196, 12, 'int'],
      ['rest', 26, 208, 16, 'int'],
      ['u', 28, 224, 0, 'union'],
      ['delta', 32, 256, 0, 'int'],
      ['hook', 36, 288, 0, 'enum'],
    ],
  );
  assert.equal(value.members[1]!.type.hint, 'weir_ip6');
});

test('codecs round-trip every field kind, byte for byte', () => {
  const btf = Btf.fromFile(join(root, 'build/test-bpf/maps.o'));
  const key = structCodec(btf.struct('maps_test_key'));
  const kb = key.encode({ addr: '198.18.1.2', port: 8080, proto: 17, id: 0x01020304 });
  assert.equal(kb.toString('hex'), 'c6120102' + '1f90' + '11' + '00' + '04030201');
  assert.deepEqual(key.decode(kb), { addr: '198.18.1.2', port: 8080, proto: 17, pad: 0, id: 0x01020304 });

  const value = structCodec(btf.struct('maps_test_value'));
  const v = {
    packets: 2n ** 63n + 5n,
    addr6: '2001:2::abcd:1',
    kind: 9,
    level: 0xabc,
    rest: 0xffff,
    u: { octets: Buffer.from([1, 2, 3, 4]) },
    delta: -7,
    hook: 8,
  };
  const vb = value.encode(v);
  assert.equal(vb.length, 40);
  assert.equal(vb.readBigUInt64LE(0), 2n ** 63n + 5n);
  assert.equal(vb.subarray(8, 24).toString('hex'), '200100020000000000000000abcd0001');
  assert.equal(bytesToIp6(vb, 8), '2001:2::abcd:1');
  // bitfields: kind in bits 0-3, level in bits 4-15, rest in bits 16-31 of the word at 24
  assert.equal(vb.readUInt32LE(24), (9 | (0xabc << 4) | (0xffff << 16)) >>> 0);
  assert.equal(vb.readInt32LE(32), -7);
  assert.equal(vb.readUInt32LE(36), 8);
  const back = value.decode(vb);
  assert.deepEqual(back, { ...v, u: { word: 0x04030201, octets: Buffer.from([1, 2, 3, 4]) } });
  // padding and omitted fields encode as zeros
  assert.ok(value.encode({}).equals(Buffer.alloc(40)));
});

test('IPv6 text is canonical (RFC 5952) both ways', () => {
  const cases: Array<[string, string]> = [
    ['2001:2::1', '2001:2::1'],
    ['2001:0002:0000:0000:0000:0000:0000:0001', '2001:2::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:2:0:1::', '2001:2:0:1::'],
    ['2001:2:0:0:1:0:0:1', '2001:2::1:0:0:1'],
    ['::ffff:198.18.0.1', '::ffff:c612:1'],
  ];
  for (const [input, canonical] of cases) {
    const b = Buffer.alloc(16);
    ip6ToBytes(input, b);
    assert.equal(bytesToIp6(b), canonical, input);
    assert.equal(ip6.decode(ip6.encode(input)), canonical);
  }
  assert.throws(() => ip6.encode('198.18.0.1'), /not an IPv6 address/);
});

test('IPv4 text: accepts exactly what node:net isIPv4 accepts, bytes in network order', () => {
  const b = Buffer.alloc(4);
  const accepts = (s: string) => {
    b.fill(0xee);
    try {
      ip4ToBytes(s, b);
      return true;
    } catch (e) {
      assert.match(String(e), /not an IPv4 address/);
      assert.deepEqual([...b], [0xee, 0xee, 0xee, 0xee], `${JSON.stringify(s)}: nothing written on error`);
      return false;
    }
  };
  const fixed = [
    '198.18.0.1',
    '0.0.0.0',
    '255.255.255.255',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3',
    '1.2.3.4.5',
    '1..2.3',
    '',
    '1.2.3.4 ',
    ' 1.2.3.4',
    '1.2.3.-1',
    '1.2.3.4.',
    '1.2.3.1000',
  ];
  // a seeded generator: the same strings every run
  let seed = 42;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
  const parts = () => (rnd(10) < 9 ? String(rnd(256)) : ['', String(256 + rnd(800)), `0${rnd(10)}`, 'x', ' 1'][rnd(5)]!);
  const random = Array.from({ length: 20_000 }, () => Array.from({ length: [4, 4, 4, 3, 5][rnd(5)]! }, parts).join('.'));
  let valid = 0;
  for (const s of [...fixed, ...random]) {
    assert.equal(accepts(s), isIPv4(s), JSON.stringify(s));
    if (isIPv4(s)) {
      valid++;
      assert.equal(bytesToIp4(b), s);
    }
  }
  assert.ok(valid > 1000, `the generator produced ${valid} valid addresses`);
});
