// `weir ifaces` inside a network namespace: the TC programs weir attached, per interface
// and direction, with the kernel's program ids and the pinned link that holds each one.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { attachTc, BpfObject } from '../../src/bpf/index.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { onCleanup } from '../lib/cleanup.js';
import { binWeir, bpfObject } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';

const NS = `weir-ifaces-${process.pid}`;
let fs: PrivateBpffs;
let probe: BpfObject;
let pinDir: string;
const cleanups: Array<() => Promise<void>> = [];

before(() => {
  fs = mountPrivateBpffs('ifaces');
  cleanups.push(fs.cleanup);
  execFileSync('ip', ['netns', 'add', NS]);
  cleanups.push(onCleanup(`delete netns ${NS}`, () => void execFileSync('ip', ['netns', 'del', NS])));
  execFileSync('ip', ['-n', NS, 'link', 'add', 'wa0', 'type', 'veth', 'peer', 'name', 'wa1']);
  pinDir = join(fs.path, 'weir', 'n1');
  mkdirSync(join(pinDir, 'links'), { recursive: true });
  probe = BpfObject.load(bpfObject('probe'), { pinDir });
});
after(async () => {
  probe?.close();
  for (const c of cleanups.reverse()) await c();
});

test('lists the attached programs with ids and their pinned links', () => {
  const prog = probe.program('weir_probe');
  const a = attachTc(prog, 'wa0', 'ingress', { netns: NS });
  a.pin(join(pinDir, 'links', 'probe_wa0_ingress'));
  const b = attachTc(prog, 'wa1', 'egress', { netns: NS });
  try {
    const r = runSync('nsenter', [`--net=/run/netns/${NS}`, binWeir, 'ifaces', '--pin-dir', pinDir, '-o', 'json'], { check: false });
    assert.equal(r.code, 0, r.stderr);
    const rows = (JSON.parse(r.stdout) as Array<{ interface: string; hook: string; program: string; id: number; pinned: string }>).map(
      ({ interface: i, hook, program, id, pinned }) => ({ i, hook, program, id, pinned }),
    );
    assert.deepEqual(
      rows,
      [
        { i: 'wa1', hook: 'tc egress', program: 'weir_probe', id: prog.id, pinned: '' },
        { i: 'wa0', hook: 'tc ingress', program: 'weir_probe', id: prog.id, pinned: 'probe_wa0_ingress' },
      ].sort((x, y) => rows.findIndex((r) => r.i === x.i) - rows.findIndex((r) => r.i === y.i)),
    );
    assert.equal(rows.length, 2);
  } finally {
    a.detach();
    b.detach();
  }
  const empty = runSync('nsenter', [`--net=/run/netns/${NS}`, binWeir, 'ifaces', '--pin-dir', pinDir], { check: false });
  assert.equal(empty.stdout.trim(), '(none)');
});
