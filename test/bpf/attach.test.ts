// test/bpf: attaching for real, inside a private network namespace and a child cgroup:
// TCX links (attach, query, atomic replace, pin and reopen, detach), clsact + cls_bpf
// (attach, atomic replace on the same handle/priority, detach), XDP with its mode
// reported, and a cgroup connect4 link. Nothing touches the root netns or root cgroup.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { attachCgroup, attachTc, attachXdp, BpfError, BpfLink, BpfObject, ifindexOf, tcxPrograms, withNetns } from '../../src/bpf/index.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { onCleanup } from '../lib/cleanup.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const PROBE_O = join(root, 'build/bpf/probe.o');
const NS = `weir-t-${process.pid}`;

let fs: PrivateBpffs;
let a: BpfObject; // probe counting as WEIR_HOOK_PROBE
let b: BpfObject; // the same object counting as WEIR_HOOK_PROBE_ALT: a "new version"
let cgroupDir: string;
const cleanups: Array<() => Promise<void>> = [];

function cgroup2Root(): string {
  const line = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[2] === 'cgroup2');
  assert.ok(line, 'cgroup v2 must be mounted');
  return line.split(' ')[1]!;
}

before(() => {
  fs = mountPrivateBpffs('attach');
  cleanups.push(fs.cleanup);
  execFileSync('ip', ['netns', 'add', NS]);
  cleanups.push(
    onCleanup(`delete netns ${NS}`, () => {
      execFileSync('ip', ['netns', 'del', NS]);
    }),
  );
  execFileSync('ip', ['-n', NS, 'link', 'add', 'wt0', 'type', 'veth', 'peer', 'name', 'wt1']);
  execFileSync('ip', ['-n', NS, 'link', 'set', 'wt0', 'up']);
  execFileSync('ip', ['-n', NS, 'link', 'set', 'wt1', 'up']);
  cgroupDir = join(cgroup2Root(), `weir-t-${process.pid}`);
  mkdirSync(cgroupDir);
  cleanups.push(onCleanup(`remove cgroup ${cgroupDir}`, () => rmdirSync(cgroupDir)));
  a = BpfObject.load(PROBE_O, { pinDir: fs.path, consts: { probe_hook: 0 } });
  b = BpfObject.load(PROBE_O, { pinDir: fs.path, consts: { probe_hook: 8 } });
});

after(async () => {
  a?.close();
  b?.close();
  for (const c of cleanups.reverse()) await c();
});

test('the two probe loads are distinct programs sharing one pinned counters map', () => {
  const pa = a.program('weir_probe');
  const pb = b.program('weir_probe');
  assert.notEqual(pa.id, pb.id);
  assert.equal(pa.type, 'sched_cls');
  assert.equal(a.map('weir_counters').id, b.map('weir_counters').id);
});

test('TCX: attach, query, replace atomically, pin, reopen, detach', () => {
  const pa = a.program('weir_probe');
  const pb = b.program('weir_probe');
  const att = attachTc(pa, 'wt0', 'ingress', { mode: 'tcx', netns: NS });
  assert.equal(att.mode, 'tcx');
  const ifindex = withNetns(NS, () => ifindexOf('wt0'));
  assert.equal(att.ifindex, ifindex);
  assert.deepEqual(tcxPrograms('wt0', 'ingress', NS), [pa.id]);
  assert.deepEqual(tcxPrograms('wt0', 'egress', NS), []);
  const info = att.link!.info();
  assert.equal(info.type, 'tcx');
  assert.equal(info.ifindex, ifindex);
  assert.equal(info.attachType, 'tcx_ingress');
  assert.equal(info.progId, pa.id);

  att.replace(pb);
  assert.deepEqual(tcxPrograms('wt0', 'ingress', NS), [pb.id]);
  assert.equal(att.progId(), pb.id);

  const pin = join(fs.path, 'tcx_wt0_ingress');
  att.pin(pin);
  att.link!.close(); // the pin keeps it attached
  assert.deepEqual(tcxPrograms('wt0', 'ingress', NS), [pb.id]);
  const reopened = BpfLink.openPinned(pin);
  assert.equal(reopened.info().progId, pb.id);
  reopened.update(pa);
  assert.deepEqual(tcxPrograms('wt0', 'ingress', NS), [pa.id]);
  reopened.detach();
  assert.deepEqual(tcxPrograms('wt0', 'ingress', NS), []);
  reopened.unpin();
  reopened.close();
});

test('auto mode picks TCX on this kernel', () => {
  const att = attachTc(a.program('weir_probe'), 'wt1', 'egress', { netns: NS });
  assert.equal(att.mode, 'tcx');
  assert.deepEqual(tcxPrograms('wt1', 'egress', NS), [a.program('weir_probe').id]);
  att.detach();
  assert.deepEqual(tcxPrograms('wt1', 'egress', NS), []);
});

test('cls_bpf: attach, replace on the same handle/priority, detach', () => {
  const pa = a.program('weir_probe');
  const pb = b.program('weir_probe');
  const att = attachTc(pa, 'wt1', 'ingress', { mode: 'cls_bpf', handle: 7, priority: 3, netns: NS });
  assert.equal(att.mode, 'cls_bpf');
  assert.equal(att.handle, 7);
  assert.equal(att.priority, 3);
  assert.equal(att.progId(), pa.id);
  const shown = execFileSync('tc', ['-n', NS, 'filter', 'show', 'dev', 'wt1', 'ingress'], { encoding: 'utf8' });
  assert.match(shown, /pref 3 bpf .*handle 0x7 .*direct-action/);
  att.replace(pb);
  assert.equal(att.progId(), pb.id);
  assert.throws(
    () => att.pin(join(fs.path, 'nope')),
    (e: unknown) => e instanceof BpfError && e.code === 'EOPNOTSUPP',
  );
  att.detach();
  assert.equal(att.progId(), null);
  assert.throws(
    () => att.detach(),
    (e: unknown) => e instanceof BpfError && e.code === 'ENOENT',
  );
});

test('XDP: attaches and reports its mode', () => {
  // the probe object carries an XDP program when the XDP hook exists; veth supports native XDP
  const names = a.programNames();
  assert.ok(names.includes('weir_probe_xdp'), `programs: ${names.join(', ')}`);
  const x = attachXdp(a.program('weir_probe_xdp'), 'wt0', { netns: NS });
  assert.equal(x.mode, 'native');
  const info = x.link.info();
  assert.equal(info.type, 'xdp');
  assert.equal(info.ifindex, x.ifindex);
  x.link.detach();
  x.link.close();
  const g = attachXdp(a.program('weir_probe_xdp'), 'wt0', { netns: NS, mode: 'generic' });
  assert.equal(g.mode, 'generic');
  g.link.close(); // an unpinned link ends with its last fd
});

test('cgroup: connect4 attaches at its expected attach type and sees connect()', () => {
  const link = attachCgroup(a.program('weir_probe_connect4'), cgroupDir);
  try {
    const info = link.info();
    assert.equal(info.type, 'cgroup');
    assert.equal(info.attachType, 'cgroup_inet4_connect');
    assert.equal(info.progId, a.program('weir_probe_connect4').id);
    // a connect() from a process inside the cgroup runs the program
    const script = `echo $$ > ${cgroupDir}/cgroup.procs; exec 3<>/dev/udp/198.18.0.9/4242`;
    execFileSync('bash', ['-c', script]);
    const last = a.map('weir_probe_last_connect').lookup(Buffer.alloc(4))!;
    assert.equal(last.subarray(0, 4).toString('hex'), 'c6120009');
    assert.equal(last.readUInt16BE(4), 4242);
  } finally {
    link.detach();
    link.close();
  }
});
