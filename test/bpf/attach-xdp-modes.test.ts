// test/bpf: --xdp-mode in the attach manager (the host policy's XDP prefilter row), inside a
// private network namespace and bpffs, with the probe object's XDP program standing in for
// weir_xdp_prefilter: auto attaches native on a veth and falls back to generic on a bridge
// (no native XDP); generic re-attaches an adopted native link in generic mode (the mode read
// back from `ip -d` as the daemon's netlink dump reads it); native where the driver refuses
// is a counted XDP failure, not an attach error; off removes the links.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BpfObject, ifindexOf, withNetns } from '../../src/bpf/index.js';
import { AttachManager, type InterfaceRef } from '../../src/dataplane/attach.js';
import type { Hook } from '../../src/dataplane/hooks.js';
import { parseLinks } from '../../src/dataplane/netlink.js';
import { memoryLogger } from '../../src/log.js';
import { detachPinnedLinks, mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { onCleanup } from '../lib/cleanup.js';
import { bpfObject } from '../lib/paths.js';

const NS = `weir-xdpm-${process.pid}`;
// the row as hooks.ts has it, its program the probe's (the object named from_pod: rows name an ObjectName)
const TABLE: Hook[] = [
  { name: 'xdp_prefilter', object: 'from_pod', program: 'weir_probe_xdp', at: { kind: 'xdp', interfaces: 'host' }, pin: 'xdp-{ifindex}-prefilter' },
];

let fs: PrivateBpffs;
let probe: BpfObject;
let linkDir: string;
const cleanups: Array<() => Promise<void>> = [];

/** The interfaces as the daemon passes them: with the XDP mode the dump shows. */
function dumped(): InterfaceRef[] {
  const links = parseLinks(JSON.parse(execFileSync('ip', ['-n', NS, '-j', '-d', 'link', 'show'], { encoding: 'utf8' })) as unknown[]);
  return links.filter((l) => l.ifname === 'wt0' || l.ifname === 'd0').map((l) => ({ ifindex: l.ifindex, ifname: l.ifname, ...(l.xdp && { xdp: l.xdp }) }));
}

const modes = (m: AttachManager) => Object.fromEntries([...m.xdpAttached().values()].map((x) => [x.ifname, x.mode]));

before(() => {
  fs = mountPrivateBpffs('xdp-modes');
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
  execFileSync('ip', ['-n', NS, 'link', 'add', 'd0', 'type', 'bridge']);
  for (const d of ['wt0', 'wt1', 'd0']) execFileSync('ip', ['-n', NS, 'link', 'set', d, 'up']);
  probe = BpfObject.load(bpfObject('probe'), { pinDir: fs.path, consts: { probe_hook: 0 } });
});

after(async () => {
  // whatever a failed test left: detach every pinned link
  detachPinnedLinks(linkDir);
  probe?.close();
  for (const c of cleanups.reverse()) await c();
});

test('auto: native on a veth, generic on a bridge; generic re-attaches; native refused is no attach error; off removes', () => {
  const wt0 = withNetns(NS, () => ifindexOf('wt0'));
  const log = memoryLogger();
  const auto = new AttachManager(fs.path, { from_pod: probe }, log, TABLE);
  withNetns(NS, () => auto.syncInterfaceHooks({ host: dumped() }));
  assert.deepEqual(auto.stats, { attached: 2, updated: 0, removed: 0, errors: 0 }, log.lines.join('\n'));
  assert.deepEqual(modes(auto), { wt0: 'native', d0: 'generic' });
  assert.deepEqual(Object.fromEntries(dumped().map((i) => [i.ifname, i.xdp])), { wt0: 'native', d0: 'generic' }, 'the dump reads the modes back');
  auto.close();

  // a restart with --xdp-mode generic: the adopted native link is re-attached in generic mode
  const gen = new AttachManager(fs.path, { from_pod: probe }, log, TABLE);
  gen.xdpMode = 'generic';
  withNetns(NS, () => gen.syncInterfaceHooks({ host: dumped() }));
  assert.deepEqual(modes(gen), { wt0: 'generic', d0: 'generic' });
  assert.deepEqual(Object.fromEntries(dumped().map((i) => [i.ifname, i.xdp])), { wt0: 'generic', d0: 'generic' });
  assert.equal(gen.stats.errors, 0, log.lines.join('\n'));
  gen.close();

  // --xdp-mode native: the veth takes it, the bridge cannot: counted, and no attach error (TC does the prefilter there)
  const nat = new AttachManager(fs.path, { from_pod: probe }, log, TABLE);
  nat.xdpMode = 'native';
  withNetns(NS, () => nat.syncInterfaceHooks({ host: dumped() }));
  assert.deepEqual(modes(nat), { wt0: 'native' });
  assert.equal(nat.xdpFailures, 1);
  assert.equal(nat.stats.errors, 0);
  assert.deepEqual(readdirSync(linkDir), [`xdp-${wt0}-prefilter`]);
  assert.ok(log.lines.some((l) => l.includes('xdp attach failed') && l.includes('d0')));
  // retried at the next sync (the driver may change its mind), warned about once
  withNetns(NS, () => nat.syncInterfaceHooks({ host: dumped() }));
  assert.equal(nat.xdpFailures, 2);
  assert.equal(log.lines.filter((l) => l.startsWith('warn xdp attach failed')).length, 1, log.lines.join('\n'));

  // --xdp-mode off: the prefilter's links go
  nat.xdpMode = 'off';
  withNetns(NS, () => nat.syncInterfaceHooks({ host: dumped() }));
  assert.deepEqual(readdirSync(linkDir), []);
  assert.deepEqual(modes(nat), {});
  assert.deepEqual(
    dumped().map((i) => i.xdp),
    [undefined, undefined],
  );
  nat.close();
});
