// test/bpf: the record of sysctl values before weir (src/dataplane/sysctl.ts), a real
// pinned map in a private bpffs, against a stand-in /proc/sys directory: the first value
// found is what is kept (a restart, or someone changing the value since, does not replace
// it); a reused interface name starts a new record; restore puts the value back only on
// the same interface and only while weir's value is still there; without a record
// (no bpffs) the value is still set.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ifaceSysctl, readSysctlRecords, restoreSysctl, SysctlRecorder, allowLocalSource } from '../../src/dataplane/sysctl.js';
import { memoryLogger } from '../../src/log.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';

let fs: PrivateBpffs;
let procSys: string;
const path = ifaceSysctl('veth1', 'accept_local');
const file = () => join(procSys, path);
const setFile = (v: string) => writeFileSync(file(), `${v}\n`);
const read = () => readFileSync(file(), 'utf8').trim();

before(() => {
  fs = mountPrivateBpffs('sysctl');
  procSys = mkdtempSync(join(tmpdir(), 'weir-procsys-'));
  mkdirSync(join(procSys, 'net/ipv4/conf/veth1'), { recursive: true });
});
after(async () => {
  rmSync(procSys, { recursive: true, force: true });
  await fs.cleanup();
});

test('the value before the first change is kept across restarts and later changes', () => {
  const pinDir = join(fs.path, 'weir', 'a');
  mkdirSync(pinDir, { recursive: true });
  setFile('2');
  const log = memoryLogger();
  let rec = SysctlRecorder.open(pinDir, log, procSys);
  assert.ok(allowLocalSource(rec, { ifname: 'veth1', ifindex: 7 }));
  assert.equal(read(), '1');
  assert.deepEqual(rec.records(), [{ path, ifindex: 7, before: '2', set: '1' }]);
  rec.close();

  // a restart: the pinned record is found; the value is weir's already, nothing recorded
  rec = SysctlRecorder.open(pinDir, log, procSys);
  allowLocalSource(rec, { ifname: 'veth1', ifindex: 7 });
  // someone set it back to 0: weir writes 1 again, "before" stays 2
  setFile('0');
  allowLocalSource(rec, { ifname: 'veth1', ifindex: 7 });
  assert.equal(read(), '1');
  assert.deepEqual(readSysctlRecords(pinDir), [{ path, ifindex: 7, before: '2', set: '1' }]);

  // the pod is gone and a new interface has the same name (ifindex 9, kernel default 0)
  setFile('0');
  allowLocalSource(rec, { ifname: 'veth1', ifindex: 9 });
  assert.deepEqual(rec.records(), [{ path, ifindex: 9, before: '0', set: '1' }]);
  rec.close();
  assert.deepEqual(
    log.lines.filter((l) => l.startsWith('warn ')),
    [],
  );
});

test("restore: only the same interface, only while the value is weir's; dry run writes nothing", () => {
  const r = { path, ifindex: 9, before: '2', set: '1' };
  setFile('1');
  assert.equal(restoreSysctl(r, () => 9, { dryRun: true, procSys }).outcome, 'restored');
  assert.equal(read(), '1', 'dry run');
  assert.equal(restoreSysctl(r, () => 10, { dryRun: false, procSys }).outcome, 'interface gone');
  assert.equal(restoreSysctl(r, () => undefined, { dryRun: false, procSys }).outcome, 'interface gone');
  assert.equal(read(), '1');
  setFile('3');
  assert.deepEqual(
    restoreSysctl(r, () => 9, { dryRun: false, procSys }),
    { ...r, current: '3', outcome: 'changed since' },
  );
  assert.equal(read(), '3');
  setFile('1');
  assert.equal(restoreSysctl(r, () => 9, { dryRun: false, procSys }).outcome, 'restored');
  assert.equal(read(), '2');
});

test('records of vanished interfaces are pruned', () => {
  const pinDir = join(fs.path, 'weir', 'b');
  mkdirSync(join(procSys, 'net/ipv4/conf/veth2'), { recursive: true });
  writeFileSync(join(procSys, 'net/ipv4/conf/veth2/accept_local'), '0');
  setFile('0');
  const rec = SysctlRecorder.open(pinDir, memoryLogger(), procSys);
  allowLocalSource(rec, { ifname: 'veth1', ifindex: 7 });
  allowLocalSource(rec, { ifname: 'veth2', ifindex: 8 });
  assert.equal(rec.records().length, 2);
  rmSync(join(procSys, 'net/ipv4/conf/veth2'), { recursive: true });
  assert.equal(rec.prune(), 1);
  assert.deepEqual(
    rec.records().map((r) => r.path),
    [path],
  );
  rec.close();
});

test('without a record (not a bpffs) the value is still set, and the gap is warned', () => {
  const notBpffs = mkdtempSync(join(tmpdir(), 'weir-notbpf-'));
  try {
    setFile('0');
    const log = memoryLogger();
    const rec = SysctlRecorder.open(notBpffs, log, procSys);
    assert.ok(allowLocalSource(rec, { ifname: 'veth1', ifindex: 7 }));
    assert.equal(read(), '1');
    assert.deepEqual(rec.records(), []);
    assert.ok(
      log.lines.some((l) => l.includes('sysctl record unavailable')),
      log.lines.join('\n'),
    );
    rec.close();
  } finally {
    rmSync(notBpffs, { recursive: true, force: true });
  }
});
