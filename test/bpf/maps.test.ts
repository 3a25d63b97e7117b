// test/bpf: BpfMap against real maps of every kind the dataplane uses (fixture
// test/fixtures/bpf/maps.c): bulk batch sync at 100k entries, iteration, update flags,
// per-CPU values, LPM lookups, and pinned maps adopted by a second load.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BpfError, BpfMap, BpfObject, type Codec, codecFor, structCodec, typedMap, u32, u64 } from '../../src/bpf/index.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const MAPS_O = join(root, 'build/test-bpf/maps.o');

interface Key {
  addr: string;
  port: number;
  proto: number;
  id: number;
}
interface Value {
  packets: bigint;
  addr6: string;
  kind: number;
  level: number;
  rest: number;
  u: { word?: number; octets?: Buffer };
  delta: number;
  hook: number;
}

let fs: PrivateBpffs;
let obj: BpfObject;
let keyCodec: Codec<Key>;
let valueCodec: Codec<Value>;

before(() => {
  fs = mountPrivateBpffs('maps');
  obj = BpfObject.load(MAPS_O, { pinDir: fs.path });
  const btf = obj.btf();
  keyCodec = structCodec<Key>(btf.struct('maps_test_key'));
  valueCodec = structCodec<Value>(btf.struct('maps_test_value'));
});

after(async () => {
  obj?.close();
  await fs?.cleanup();
});

function key(i: number): Key {
  return { addr: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`, port: 1024 + (i % 50000), proto: 6, id: i };
}

function value(i: number): Value {
  return {
    packets: BigInt(i) * 1000n,
    addr6: `2001:2::1:${(i & 0xffff).toString(16)}`,
    kind: i % 16,
    level: i % 4096,
    rest: 0xbeef,
    u: { word: i },
    delta: -i | 0,
    hook: 2,
  };
}

test('map info comes from the kernel', () => {
  const m = obj.map('maps_test_hash');
  assert.equal(m.type, 'hash');
  assert.equal(m.keySize, 12);
  assert.equal(m.valueSize, 40);
  assert.equal(m.maxEntries, 200000);
  assert.ok(m.id > 0);
  assert.equal(obj.map('maps_test_lru').type, 'lru_hash');
  assert.equal(obj.map('maps_test_percpu').type, 'percpu_array');
  assert.equal(obj.map('maps_test_lpm').type, 'lpm_trie');
  assert.deepEqual(obj.mapNames().sort(), ['maps_test_hash', 'maps_test_lpm', 'maps_test_lru', 'maps_test_percpu']);
});

test('batch update and batch delete of 100,000 entries', () => {
  const m = obj.map('maps_test_hash');
  const typed = typedMap(m, keyCodec, valueCodec);
  const N = 100_000;
  assert.equal(m.count(), 0);
  const entries = Array.from({ length: N }, (_, i) => [key(i), value(i)] as const);
  assert.equal(typed.setMany(entries), N);
  assert.equal(m.count(), N);

  for (const i of [0, 1, 4095, 65537, N - 1])
    assert.deepEqual(typed.get(key(i)), { ...value(i), u: { word: i, octets: Buffer.from(Uint32Array.of(i).buffer) } });
  assert.equal(typed.get(key(N)), undefined);

  // the batch dump and the key walk both see every entry exactly once
  const dumped = m.lookupBatch(1024);
  assert.equal(dumped.length, N);
  const ids = new Set(dumped.map(([k]) => keyCodec.decode(k).id));
  assert.equal(ids.size, N);
  let walked = 0;
  for (const k of m.keys()) {
    assert.equal(k.length, 12);
    walked++;
  }
  assert.equal(walked, N);
  const [k7, v7] = dumped.find(([k]) => keyCodec.decode(k).id === 7)!;
  assert.equal(keyCodec.decode(k7).addr, '198.18.0.7');
  assert.equal(valueCodec.decode(v7).addr6, '2001:2::1:7');

  // delete all but the last 10, plus 5 keys that never existed: only existing ones count
  const gone = Array.from({ length: N - 10 }, (_, i) => key(i));
  const missing = Array.from({ length: 5 }, (_, i) => key(N + 100 + i));
  assert.equal(typed.deleteMany([...gone.slice(0, 500), ...missing, ...gone.slice(500)]), N - 10);
  assert.equal(m.count(), 10);
  assert.equal(typed.get(key(0)), undefined);
  assert.equal(typed.get(key(N - 1))?.packets, BigInt(N - 1) * 1000n);
  assert.equal(typed.deleteMany(Array.from({ length: 10 }, (_, i) => key(N - 10 + i))), 10);
  assert.equal(m.count(), 0);
});

test('NOEXIST and EXIST flags fail with EEXIST and ENOENT', () => {
  const lru = typedMap(obj.map('maps_test_lru'), u32, u64);
  lru.set(1, 10n, 'noexist');
  assert.throws(
    () => lru.set(1, 11n, 'noexist'),
    (e: unknown) => e instanceof BpfError && e.code === 'EEXIST' && e.errno === 17 && /maps_test_lru/.test(e.op),
  );
  assert.equal(lru.get(1), 10n);
  lru.set(1, 12n, 'exist');
  assert.equal(lru.get(1), 12n);
  assert.throws(
    () => lru.set(2, 1n, 'exist'),
    (e: unknown) => e instanceof BpfError && e.code === 'ENOENT',
  );
  assert.equal(lru.get(2), undefined);
  assert.equal(lru.delete(1), true);
  assert.equal(lru.delete(1), false);
});

test('per-CPU values are written per CPU and summed', () => {
  const m = obj.map('maps_test_percpu');
  const counters = typedMap(m, u32, codecFor('weir_counter'));
  const ncpu = BpfMap.possibleCpus();
  assert.ok(ncpu >= 1);
  assert.equal(m.count(), 8); // arrays always hold max_entries
  const per = Array.from({ length: ncpu }, (_, c) => ({ packets: BigInt(c + 1), bytes: BigInt(100 * (c + 1)) }));
  counters.setPerCpu(3, per);
  assert.deepEqual(counters.getPerCpu(3), per);
  const total = BigInt((ncpu * (ncpu + 1)) / 2);
  assert.deepEqual(counters.sumPerCpu(3), { packets: total, bytes: total * 100n });
  assert.equal(m.lookupPerCpu(u32.encode(3))!.length, ncpu);
  assert.throws(
    () => counters.get(3),
    (e: unknown) => e instanceof BpfError && e.code === 'EINVAL',
  );
  assert.throws(
    () => counters.setPerCpu(3, per.slice(1)),
    (e: unknown) => e instanceof BpfError && e.code === 'EINVAL',
  );

  // the program bumps slot 0 on whichever CPU runs it: the sum over CPUs is exact
  const before = counters.sumPerCpu(0)!;
  const pkt = Buffer.alloc(64);
  const r = obj.program('maps_test_count').testRun({ data: pkt, repeat: 5 });
  assert.equal(r.retval, 0);
  const afterRun = counters.sumPerCpu(0)!;
  assert.equal(afterRun.packets - before.packets, 5n);
  assert.equal(afterRun.bytes - before.bytes, 5n * 64n);
  const rows = [...counters.entriesPerCpu()];
  assert.equal(rows.length, 8);
  assert.equal(rows[3]![1].length, ncpu);
});

test('LPM trie: longest prefix wins, entries() falls back to the key walk', () => {
  const m = obj.map('maps_test_lpm');
  const lpmKey = obj.btf().struct('maps_test_lpm_key');
  const lpm = typedMap(m, structCodec<{ prefixlen: number; addr: string }>(lpmKey), u32);
  lpm.set({ prefixlen: 15, addr: '198.18.0.0' }, 15);
  lpm.set({ prefixlen: 24, addr: '198.19.7.0' }, 24);
  assert.equal(lpm.get({ prefixlen: 32, addr: '198.19.7.9' }), 24);
  assert.equal(lpm.get({ prefixlen: 32, addr: '198.19.8.9' }), 15);
  assert.equal(lpm.get({ prefixlen: 32, addr: '198.20.0.1' }), undefined);
  const all = [...lpm.entries()].map(([k, v]) => `${k.addr}/${k.prefixlen}=${v}`).sort();
  assert.deepEqual(all, ['198.18.0.0/15=15', '198.19.7.0/24=24']);
  assert.equal(lpm.count(), 2);
  assert.equal(
    lpm.deleteMany([
      { prefixlen: 15, addr: '198.18.0.0' },
      { prefixlen: 8, addr: '10.0.0.0' },
    ]),
    1,
  );
  assert.equal(lpm.count(), 1);
});

test('a pinned map survives closing the object and is adopted by a second load', () => {
  const dir = mountPrivateBpffs('adopt');
  try {
    const first = BpfObject.load(MAPS_O, { pinDir: dir.path });
    const lru = typedMap(first.map('maps_test_lru'), u32, u64);
    lru.setMany([
      [7, 70n],
      [8, 80n],
    ]);
    const id = first.map('maps_test_lru').id;
    first.close();
    assert.throws(
      () => first.map('maps_test_lru').count(),
      (e: unknown) => e instanceof BpfError && e.code === 'EBADF',
    );
    assert.ok(existsSync(join(dir.path, 'maps_test_lru')));

    // no object needed: open the pin, read the layout from the kernel's BTF
    const pinned = BpfMap.openPinned(join(dir.path, 'maps_test_lru'));
    assert.equal(pinned.id, id);
    assert.equal(pinned.name, 'maps_test_lru');
    assert.deepEqual(pinned.layouts().value, { kind: 'int', size: 8, name: 'unsigned long long', hint: '__u64', signed: false, bits: 64 });
    assert.equal(typedMap(pinned, u32, u64).get(8), 80n);
    pinned.close();
    assert.throws(
      () => pinned.count(),
      (e: unknown) => e instanceof BpfError && e.code === 'EBADF',
    );

    const second = BpfObject.load(MAPS_O, { pinDir: dir.path });
    try {
      const m = second.map('maps_test_lru');
      assert.equal(m.id, id);
      assert.deepEqual(
        [...typedMap(m, u32, u64).entries()].sort((a, b) => a[0] - b[0]),
        [
          [7, 70n],
          [8, 80n],
        ],
      );
      assert.equal(BpfMap.fromId(id).count(), 2);
    } finally {
      second.close();
    }
  } finally {
    void dir.cleanup();
  }
});
