// test/bpf: every failure is a BpfError with the kernel's errno code, the operation, and
// what libbpf and the verifier said; and none of them takes the process down.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BpfError, BpfMap, BpfObject, typedMap, u32, u64 } from '../../src/bpf/index.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const MAPS_O = join(root, 'build/test-bpf/maps.o');
const BAD_O = join(root, 'build/test-bpf/bad_verifier.o');

let fs: PrivateBpffs;
before(() => {
  fs = mountPrivateBpffs('errors');
});
after(async () => {
  await fs?.cleanup();
});

function bpfErr(code: string, match?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof BpfError, `expected a BpfError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(typeof e.errno, 'number');
    assert.ok(e.op.length > 0);
    if (match) assert.match(e.message, match);
    return true;
  };
}

test('a missing object file is ENOENT, with the path in op and message', () => {
  const path = join(root, 'build/test-bpf/no-such-object.o');
  assert.throws(() => BpfObject.open(path), bpfErr('ENOENT', /no-such-object\.o: No such file or directory/));
  try {
    BpfObject.open(path);
  } catch (e) {
    assert.equal((e as BpfError).errno, 2);
    assert.ok((e as BpfError).op.includes(path));
  }
});

test('a program the verifier rejects carries the verifier log', () => {
  let err: BpfError | undefined;
  try {
    BpfObject.load(BAD_O, { pinDir: fs.path });
  } catch (e) {
    err = e as BpfError;
  }
  assert.ok(err instanceof BpfError, 'load must fail');
  assert.equal(err.code, 'EACCES');
  assert.match(err.op, /load .*bad_verifier\.o/);
  assert.ok(err.verifierLog, 'verifierLog is set');
  assert.match(err.verifierLog, /invalid access to packet/);
  assert.match(err.libbpfLog, /bad_unchecked_read/);
  // the message names the program but stays short: the log is in verifierLog
  assert.match(err.message, /bad_unchecked_read/);
  assert.ok(!err.message.includes('invalid access to packet'));
});

test('a wrong-sized key or value is EINVAL before any syscall, saying what was expected', () => {
  const obj = BpfObject.load(MAPS_O, { pinDir: fs.path });
  try {
    const m = obj.map('maps_test_hash');
    assert.throws(() => m.lookup(Buffer.alloc(3)), bpfErr('EINVAL', /key is 3 bytes, map key_size is 12/));
    assert.throws(() => m.update(Buffer.alloc(12), Buffer.alloc(4)), bpfErr('EINVAL', /value is 4 bytes, map wants 40/));
    assert.throws(() => m.delete(Buffer.alloc(13)), bpfErr('EINVAL', /maps_test_hash/));
    assert.throws(() => m.updateBatch([Buffer.alloc(12)], [Buffer.alloc(39)]), bpfErr('EINVAL', /value bytes/));
    assert.throws(() => typedMap(m, u32, u64), bpfErr('EINVAL', /codecs are 4\/8 bytes/));
    assert.throws(() => obj.map('maps_test_percpu').update(u32.encode(0), Buffer.alloc(16)), bpfErr('EINVAL', /possible CPUs/));
  } finally {
    obj.close();
  }
});

test('a pin root that does not exist is ENOENT', () => {
  const missing = join(fs.path, 'no', 'such', 'dir');
  assert.throws(() => BpfObject.load(MAPS_O, { pinDir: missing }), bpfErr('ENOENT', /pin root/));
  assert.throws(() => BpfMap.openPinned(join(fs.path, 'nothing-pinned-here')), bpfErr('ENOENT'));
});

test('missing maps, programs and consts are ENOENT; bad consts are EINVAL/EBUSY', () => {
  const obj = BpfObject.open(MAPS_O, { pinDir: fs.path });
  try {
    assert.throws(() => obj.map('no_such_map'), bpfErr('ENOENT', /no_such_map/));
    assert.throws(() => obj.program('no_such_prog'), bpfErr('ENOENT', /no_such_prog/));
    assert.throws(() => obj.setConst('no_such_const', 1), bpfErr('ENOENT', /no_such_const/));
    assert.throws(() => obj.setConst('maps_test_slot', Buffer.alloc(2)), bpfErr('EINVAL', /variable is 4 bytes, value is 2/));
    // a map handle taken before load cannot be used until the object is loaded
    const early = obj.map('maps_test_lru');
    assert.throws(() => early.count(), bpfErr('EINVAL', /not loaded/));
    obj.setConst('maps_test_slot', 2);
    obj.load();
    assert.equal(early.count(), 0);
    assert.throws(() => obj.setConst('maps_test_slot', 1), bpfErr('EBUSY', /frozen/));
    assert.throws(() => obj.load(), bpfErr('EALREADY'));
  } finally {
    obj.close();
  }
});

test('handles of a closed object throw EBADF instead of touching stale fds', () => {
  const obj = BpfObject.load(MAPS_O, { pinDir: fs.path });
  const m = obj.map('maps_test_lru');
  const p = obj.program('maps_test_count');
  const btf = obj.btf();
  obj.close();
  assert.ok(obj.closed);
  assert.throws(() => m.lookup(Buffer.alloc(4)), bpfErr('EBADF', /closed/));
  assert.throws(() => p.testRun({ data: Buffer.alloc(64) }), bpfErr('EBADF', /closed/));
  assert.throws(() => btf.struct('maps_test_key'), bpfErr('EBADF'));
  assert.throws(() => obj.map('maps_test_lru'), bpfErr('EBADF'));
});

test('after all of that the process still works', () => {
  const obj = BpfObject.load(MAPS_O, { pinDir: fs.path, consts: { maps_test_slot: 5 } });
  try {
    const lru = typedMap(obj.map('maps_test_lru'), u32, u64);
    lru.set(42, 4242n);
    assert.equal(lru.get(42), 4242n);
    const r = obj.program('maps_test_count').testRun({ data: Buffer.alloc(60) });
    assert.equal(r.retval, 0);
    assert.equal(r.data.length, 60);
    // the const chose the slot the program counts in
    const slot5 = obj.map('maps_test_percpu').lookupPerCpu(u32.encode(5))!;
    assert.equal(
      slot5.reduce((n, b) => n + b.readBigUInt64LE(0), 0n),
      1n,
    );
  } finally {
    obj.close();
  }
});

test('loadAsync: the load runs on a worker thread; its failure rejects with the same error; the object is busy meanwhile', async () => {
  const obj = BpfObject.open(MAPS_O, { pinDir: fs.path });
  const loading = obj.loadAsync();
  try {
    assert.throws(() => obj.close(), bpfErr('EBUSY', /a load is running/));
    assert.throws(
      () => obj.map('maps_test_hash').lookup(Buffer.alloc(12)),
      (e: unknown) => e instanceof BpfError && /EBUSY|EINVAL/.test(e.code),
    );
    await loading;
    assert.equal(obj.loaded, true);
    // the loaded object works like a synchronously loaded one
    const m = obj.map('maps_test_hash');
    m.update(Buffer.alloc(12, 1), Buffer.alloc(40, 2));
    assert.deepEqual(m.lookup(Buffer.alloc(12, 1)), Buffer.alloc(40, 2));
    await assert.rejects(obj.loadAsync(), bpfErr('EALREADY'));
  } finally {
    await loading.catch(() => undefined);
    obj.close();
  }

  // a verifier rejection: the log captured on the worker thread reaches the error
  let err: unknown;
  try {
    await BpfObject.loadAsync(BAD_O, { pinDir: fs.path });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof BpfError, 'loadAsync must reject');
  assert.equal(err.code, 'EACCES');
  assert.match(err.op, /load .*bad_verifier\.o/);
  assert.match(err.verifierLog ?? '', /invalid access to packet/);
  assert.match(err.libbpfLog, /bad_unchecked_read/);
  // and a synchronous call afterwards captures only its own log
  assert.throws(
    () => BpfObject.load(join(root, 'build/test-bpf/missing.o')),
    (e: unknown) => e instanceof BpfError && !String((e as BpfError).libbpfLog).includes('invalid access'),
  );
});
