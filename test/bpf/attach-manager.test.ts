// test/bpf: the attach manager driven by a hook table, inside a private network namespace,
// a private bpffs and a child cgroup. A table of three probe rows (TC on one interface class,
// XDP on another, a cgroup hook) attaches and pins by the rows' pin names; a second manager
// with a newly loaded object adopts the pins and moves them to its programs; an interface
// leaving its class loses its link; a pin no row parses (another release's hook) is left alone.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { attachTc, BpfLink, BpfObject, ifindexOf, tcxPrograms, withNetns } from '../../src/bpf/index.js';
import { AttachManager, type InterfaceRef } from '../../src/dataplane/attach.js';
import type { Hook } from '../../src/dataplane/hooks.js';
import { memoryLogger } from '../../src/log.js';
import { detachPinnedLinks, mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { onCleanup } from '../lib/cleanup.js';
import { bpfObject } from '../lib/paths.js';

const NS = `weir-am-${process.pid}`;
// probe.o carries a TC, an XDP and a connect4 program; rows name it as object 'from_pod'
// only because a row's object is an ObjectName: the manager looks objects up by that name
const TC = { kind: 'tc', interfaces: 'workload', direction: 'ingress' } as const;
const XDP = { kind: 'xdp', interfaces: 'host' } as const;
const CONNECT4 = { kind: 'cgroup', attachType: 'cgroup_inet4_connect' } as const;
const TABLE: Hook[] = [
  { name: 'probe_tc', object: 'from_pod', program: 'weir_probe', at: TC, pin: 'tcx-{ifindex}-probe_tc' },
  { name: 'probe_xdp', object: 'from_pod', program: 'weir_probe_xdp', at: XDP, pin: 'xdp-{ifindex}-probe_xdp' },
  { name: 'probe_connect4', object: 'from_pod', program: 'weir_probe_connect4', at: CONNECT4, pin: 'cgroup-probe_connect4' },
];

let fs: PrivateBpffs;
let a: BpfObject; // the running release's programs
let b: BpfObject; // the same object loaded again: the next release's programs
let cgroupDir: string;
let linkDir: string;
let wt0: InterfaceRef;
let wt1: InterfaceRef;
const cleanups: Array<() => Promise<void>> = [];

function cgroup2Root(): string {
  const line = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[2] === 'cgroup2');
  assert.ok(line, 'cgroup v2 must be mounted');
  return line.split(' ')[1]!;
}

before(() => {
  fs = mountPrivateBpffs('attach-manager');
  cleanups.push(fs.cleanup);
  linkDir = join(fs.path, 'links');
  mkdirSync(linkDir);
  execFileSync('ip', ['netns', 'add', NS]);
  cleanups.push(
    onCleanup(`delete netns ${NS}`, () => {
      execFileSync('ip', ['netns', 'del', NS]);
    }),
  );
  execFileSync('ip', ['-n', NS, 'link', 'add', 'wt0', 'type', 'veth', 'peer', 'name', 'wt1']);
  execFileSync('ip', ['-n', NS, 'link', 'set', 'wt0', 'up']);
  execFileSync('ip', ['-n', NS, 'link', 'set', 'wt1', 'up']);
  wt0 = { ifname: 'wt0', ifindex: withNetns(NS, () => ifindexOf('wt0')) };
  wt1 = { ifname: 'wt1', ifindex: withNetns(NS, () => ifindexOf('wt1')) };
  cgroupDir = join(cgroup2Root(), `weir-am-${process.pid}`);
  mkdirSync(cgroupDir);
  cleanups.push(onCleanup(`remove cgroup ${cgroupDir}`, () => rmdirSync(cgroupDir)));
  a = BpfObject.load(bpfObject('probe'), { pinDir: fs.path, consts: { probe_hook: 0 } });
  b = BpfObject.load(bpfObject('probe'), { pinDir: fs.path, consts: { probe_hook: 8 } });
});

after(async () => {
  // whatever a failed test left: detach every pinned link
  detachPinnedLinks(linkDir);
  a?.close();
  b?.close();
  for (const c of cleanups.reverse()) await c();
});

const pinnedProg = (name: string) => {
  const l = BpfLink.openPinned(join(linkDir, name));
  try {
    return l.info();
  } finally {
    l.close();
  }
};

test('a table drives TC, XDP and cgroup attachments; a restart adopts and updates them; pins not ours stay', () => {
  const tcPin = `tcx-${wt0.ifindex}-probe_tc`;
  const xdpPin = `xdp-${wt1.ifindex}-probe_xdp`;
  const cgPin = 'cgroup-probe_connect4';
  // another release's hook on wt1 egress, pinned under a name no row of this table parses
  const foreignPin = `tcx-${wt1.ifindex}-tunnel`;
  const foreign = attachTc(a.program('weir_probe'), 'wt1', 'egress', { mode: 'tcx', netns: NS });
  foreign.pin(join(linkDir, foreignPin));
  foreign.link!.close();

  const log1 = memoryLogger();
  const m1 = new AttachManager(fs.path, { from_pod: a }, log1, TABLE);
  withNetns(NS, () => m1.syncInterfaceHooks({ workload: [wt0], host: [wt1] }));
  m1.syncCgroup(cgroupDir);
  assert.deepEqual(m1.stats, { attached: 3, updated: 0, removed: 0, errors: 0 }, log1.lines.join('\n'));
  assert.deepEqual(readdirSync(linkDir).sort(), [cgPin, foreignPin, tcPin, xdpPin].sort());
  assert.deepEqual(tcxPrograms('wt0', 'ingress', NS), [a.program('weir_probe').id]);
  const xdp = pinnedProg(xdpPin);
  assert.equal(xdp.type, 'xdp');
  assert.equal(xdp.ifindex, wt1.ifindex);
  assert.equal(xdp.progId, a.program('weir_probe_xdp').id);
  const cg = pinnedProg(cgPin);
  assert.equal(cg.attachType, 'cgroup_inet4_connect');
  assert.equal(cg.progId, a.program('weir_probe_connect4').id);
  m1.close(); // the pins keep every attachment
  assert.deepEqual(tcxPrograms('wt0', 'ingress', NS), [a.program('weir_probe').id]);

  // the next process: adopts the three pins and moves them to its own programs, creates nothing
  const log2 = memoryLogger();
  const m2 = new AttachManager(fs.path, { from_pod: b }, log2, TABLE);
  withNetns(NS, () => m2.syncInterfaceHooks({ workload: [wt0], host: [wt1] }));
  m2.syncCgroup(cgroupDir);
  assert.deepEqual(m2.stats, { attached: 0, updated: 3, removed: 0, errors: 0 }, log2.lines.join('\n'));
  assert.deepEqual(tcxPrograms('wt0', 'ingress', NS), [b.program('weir_probe').id]);
  assert.equal(pinnedProg(xdpPin).progId, b.program('weir_probe_xdp').id);
  assert.equal(pinnedProg(cgPin).progId, b.program('weir_probe_connect4').id);

  // wt0 leaves the workload class: its TC link goes; wt1's XDP link and the foreign pin stay
  withNetns(NS, () => m2.syncInterfaceHooks({ host: [wt1] }));
  assert.deepEqual(tcxPrograms('wt0', 'ingress', NS), []);
  assert.equal(existsSync(join(linkDir, tcPin)), false);
  assert.equal(pinnedProg(xdpPin).progId, b.program('weir_probe_xdp').id);
  assert.deepEqual(tcxPrograms('wt1', 'egress', NS), [a.program('weir_probe').id], 'the foreign link is still attached');
  assert.ok(existsSync(join(linkDir, foreignPin)));

  // no interfaces and no cgroup: everything of this table goes, the foreign pin still stays
  withNetns(NS, () => m2.syncInterfaceHooks({}));
  m2.syncCgroup(null);
  assert.deepEqual(m2.stats, { attached: 0, updated: 3, removed: 3, errors: 0 }, log2.lines.join('\n'));
  assert.deepEqual(readdirSync(linkDir), [foreignPin]);
  m2.close();
});
