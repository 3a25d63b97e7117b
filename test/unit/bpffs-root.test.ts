// Where the pins go without --bpf-root / --instance (src/dataplane/bpffs.ts, instance.ts):
// the bpffs root choice (ours, PID 1's through /proc/1/root, or mount one), the netns name
// lookup behind the default instance, and the CLI's pick among existing instances.

import assert from 'node:assert/strict';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chooseBpfRoot, ensureBpfRoot, INIT_BPF_ROOT, isBpffs, mountTypeOf, type BpfRootFacts } from '../../src/dataplane/bpffs.js';
import { chooseCliInstance, chooseDefaultInstance, netnsNamesOf, ownNetnsNames } from '../../src/dataplane/instance.js';
import { sameNamespace } from '../../src/dataplane/namespaces.js';

test('the default root: ours if a bpffs, else PID 1\'s from another mount namespace, else none', () => {
  const f = (here: boolean, initMountNs: boolean | undefined, init: boolean): BpfRootFacts => ({ here, initMountNs, init });
  assert.deepEqual(chooseBpfRoot(f(true, false, true)), { path: '/sys/fs/bpf', via: 'here' });
  assert.deepEqual(chooseBpfRoot(f(true, true, true)), { path: '/sys/fs/bpf', via: 'here' });
  // ip netns exec: /sys remounted, the node's bpffs reached through PID 1's root
  assert.deepEqual(chooseBpfRoot(f(false, false, true)), { path: '/proc/1/root/sys/fs/bpf', via: 'pid1' });
  assert.equal(INIT_BPF_ROOT, '/proc/1/root/sys/fs/bpf');
  // in PID 1's namespace "PID 1's" is ours; unknown namespace: not trusted
  assert.equal(chooseBpfRoot(f(false, true, true)), undefined);
  assert.equal(chooseBpfRoot(f(false, undefined, true)), undefined);
  assert.equal(chooseBpfRoot(f(false, false, false)), undefined);
});

test('the daemon mounts a bpffs only when none is found, in PID 1\'s mount namespace, and then uses it', () => {
  const mounts: boolean[] = [];
  const mount = (initMountNs: boolean) => {
    mounts.push(initMountNs);
    return initMountNs === false ? 'nsenter --target 1 --mount -- mount -t bpf bpf /sys/fs/bpf' : 'mount -t bpf bpf /sys/fs/bpf';
  };
  // found: nothing mounted
  assert.deepEqual(ensureBpfRoot(() => ({ here: false, initMountNs: false, init: true }), mount), { path: INIT_BPF_ROOT, via: 'pid1' });
  assert.deepEqual(mounts, []);
  // ip netns exec on a node without a bpffs: mounted in PID 1's namespace, used through /proc/1/root
  let mounted = false;
  const r = ensureBpfRoot(() => ({ here: false, initMountNs: false, init: mounted }), (ns) => ((mounted = true), mount(ns)));
  assert.deepEqual(r, { path: INIT_BPF_ROOT, via: 'pid1', mounted: 'nsenter --target 1 --mount -- mount -t bpf bpf /sys/fs/bpf' });
  // in PID 1's namespace (a node, a container): a plain mount, then ours
  mounted = false;
  const r2 = ensureBpfRoot(() => ({ here: mounted, initMountNs: true, init: mounted }), (ns) => ((mounted = true), mount(ns)));
  assert.deepEqual(r2, { path: '/sys/fs/bpf', via: 'here', mounted: 'mount -t bpf bpf /sys/fs/bpf' });
  assert.deepEqual(mounts, [false, true]);
  // a mount that does not show up is an error, not a silent private root
  const none = (initMountNs: boolean | undefined) => () => ({ here: false, initMountNs, init: false });
  assert.throws(() => ensureBpfRoot(none(false), mount), /no bpffs is visible at \/sys\/fs\/bpf or \/proc\/1\/root/);
  // PID 1's namespace unreadable: a mount might be private and die with weir, so none is made
  assert.throws(() => ensureBpfRoot(none(undefined), mount), /\/proc\/1\/ns\/mnt cannot be read.*mount -t bpf bpf \/sys\/fs\/bpf/);
  assert.deepEqual(mounts, [false, true, false]);
});

test('bpffs detection and the mount table parser', () => {
  assert.equal(isBpffs(mkdtempSync(join(tmpdir(), 'weir-notbpf-'))), false);
  assert.equal(isBpffs('/nonexistent-weir'), false);
  const mounts = ['sysfs /sys sysfs rw 0 0', 'bpf /sys/fs/bpf bpf rw 0 0', 'bpf /run/my\\040bpf bpf rw 0 0'];
  mounts.push('tmpfs /sys/fs/bpf tmpfs rw 0 0', '/dev/root / ext4 rw 0 0');
  const table = mounts.join('\n');
  assert.equal(mountTypeOf('/sys/fs/bpf/weir/n1', table), 'tmpfs', 'the last mount on a point hides the ones below');
  assert.equal(mountTypeOf('/sys/fs/bpffs', table), 'sysfs', 'a prefix that is not a path component does not count');
  assert.equal(mountTypeOf('/run/my bpf/weir', table), 'bpf', 'octal escapes in mount points');
  assert.equal(mountTypeOf('/etc', table), 'ext4');
  assert.equal(sameNamespace('/proc/self/ns/mnt', '/proc/self/ns/mnt'), true);
  assert.equal(sameNamespace('/proc/self/ns/mnt', '/proc/self/ns/net'), false);
  assert.equal(sameNamespace('/proc/self/ns/mnt', '/nonexistent'), undefined);
});

test('the default instance follows a named network namespace that is not PID 1\'s', () => {
  const self = { dev: 4, ino: 4026532100 };
  const named = [
    ['wlab-node2', { dev: 4, ino: 4026532200 }],
    ['wlab-node1', { dev: 4, ino: 4026532100 }],
    ['alias', { dev: 4, ino: 4026532100 }],
    ['other-dev', { dev: 5, ino: 4026532100 }],
  ] as const;
  assert.deepEqual(netnsNamesOf(self, named), ['alias', 'wlab-node1'], 'same dev and inode, as ip netns identify');
  assert.equal(chooseDefaultInstance(['wlab-node1'], false), 'wlab-node1');
  assert.equal(chooseDefaultInstance(['wlab-node1'], undefined), 'wlab-node1', 'PID 1 unknown: the name still separates simulated nodes');
  assert.equal(chooseDefaultInstance(['host'], true), 'default', "PID 1's namespace (a real node, the DaemonSet): default");
  assert.equal(chooseDefaultInstance([], false), 'default', 'an unnamed namespace (a pod, nsenter --net=/proc/PID/ns/net): default');
  assert.throws(() => chooseDefaultInstance(['has space'], false), /not a valid instance name: pass --instance/);
  // the lookup on real namespace files (symlinks stand in for /run/netns binds: stat follows both)
  const dir = mkdtempSync(join(tmpdir(), 'weir-netns-'));
  symlinkSync('/proc/self/ns/net', join(dir, 'me'));
  symlinkSync('/proc/self/ns/mnt', join(dir, 'not-a-netns'));
  symlinkSync('/nonexistent', join(dir, 'dangling'));
  assert.deepEqual(ownNetnsNames(dir), ['me']);
  assert.deepEqual(ownNetnsNames('/nonexistent-weir'), []);
});

test('the CLI without --instance: the default if it exists, else the only one, else one line naming them', () => {
  assert.equal(chooseCliInstance('default', ['default', 'n1'], '/sys/fs/bpf/weir'), 'default');
  assert.equal(chooseCliInstance('default', ['n1'], '/sys/fs/bpf/weir'), 'n1');
  assert.equal(chooseCliInstance('n1', [], '/sys/fs/bpf/weir'), 'n1', 'nothing there: the caller reports no state for the default');
  assert.throws(() => chooseCliInstance('default', ['n1', 'n2'], '/sys/fs/bpf/weir'), {
    message: 'several weir instances under /sys/fs/bpf/weir (n1, n2): choose one with --instance',
  });
});
