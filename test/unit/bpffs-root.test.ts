// Where the pins go without --bpf-root / --instance (src/dataplane/bpffs.ts, instance.ts):
// the bpffs root choice (ours, PID 1's through /proc/1/root, or mount one), the netns name
// lookup behind the default instance, and the CLI's pick among existing instances.

import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  bpfRootOf,
  chooseBpfRoot,
  ensureBpfRoot,
  holdBpfRoot,
  INIT_BPF_ROOT,
  isBpffs,
  mountTypeOf,
  nodeMountNs,
  type BpfRootFacts,
  type NodeMountNs,
} from '../../src/dataplane/bpffs.js';
import { chooseCliInstance, chooseDefaultInstance, netnsNamesOf, ownNetnsNames } from '../../src/dataplane/instance.js';
import { sameNamespace } from '../../src/dataplane/namespaces.js';

test("the default root: ours if a bpffs, else the node's from another mount namespace, else none", () => {
  const pid1 = (same: boolean) => ({ pid: 1, same });
  const f = (here: boolean, node: NodeMountNs | undefined, nodeBpffs: boolean): BpfRootFacts => ({ here, node, nodeBpffs });
  assert.deepEqual(chooseBpfRoot(f(true, pid1(false), true)), { path: '/sys/fs/bpf', via: 'here' });
  assert.deepEqual(chooseBpfRoot(f(true, pid1(true), true)), { path: '/sys/fs/bpf', via: 'here' });
  // ip netns exec: /sys remounted, the node's bpffs reached through PID 1's root
  assert.deepEqual(chooseBpfRoot(f(false, pid1(false), true)), { path: '/proc/1/root/sys/fs/bpf', via: 'node' });
  assert.equal(INIT_BPF_ROOT, '/proc/1/root/sys/fs/bpf');
  // PID 1 hidden (a sandbox init): the shell ip netns exec was started from
  assert.deepEqual(chooseBpfRoot(f(false, { pid: 4242, same: false }, true)), { path: '/proc/4242/root/sys/fs/bpf', via: 'node' });
  assert.equal(bpfRootOf(4242), '/proc/4242/root/sys/fs/bpf');
  // in the node's namespace "the node's" is ours; unknown namespace: not trusted
  assert.equal(chooseBpfRoot(f(false, pid1(true), true)), undefined);
  assert.equal(chooseBpfRoot(f(false, undefined, true)), undefined);
  assert.equal(chooseBpfRoot(f(false, pid1(false), false)), undefined);
});

test("the node's mount namespace: PID 1's when readable, else the nearest parent in another one", () => {
  const self = '/proc/self/ns/mnt';
  // PID 1 readable: it decides
  assert.deepEqual(
    nodeMountNs(
      (a, b) => (a === self && b === '/proc/1/ns/mnt' ? false : undefined),
      () => undefined,
    ),
    { pid: 1, same: false },
  );
  assert.deepEqual(
    nodeMountNs(
      () => true,
      () => undefined,
    ),
    { pid: 1, same: true },
  );
  // PID 1 hidden: walk up the parents; the first in another namespace is the node's
  const parents = new Map([
    [process.pid, 300],
    [300, 200],
    [200, 100],
    [100, 1],
  ]);
  const ns = new Map([
    ['/proc/300/ns/mnt', true],
    ['/proc/200/ns/mnt', false],
    ['/proc/100/ns/mnt', false],
  ]);
  const same = (_a: string, b: string) => ns.get(b);
  assert.deepEqual(
    nodeMountNs(same, (p) => parents.get(p)),
    { pid: 200, same: false },
  );
  // every readable parent shares ours: we are in the node's namespace
  assert.deepEqual(
    nodeMountNs(
      (_a, b) => (b === '/proc/1/ns/mnt' ? undefined : true),
      (p) => parents.get(p),
    ),
    { pid: process.pid, same: true },
  );
  // nothing readable: unknown
  assert.equal(
    nodeMountNs(
      () => undefined,
      (p) => parents.get(p),
      () => [],
    ),
    undefined,
  );
  // no readable parent (reparented to a hidden PID 1): the mount namespace most processes
  // share, found by scanning them; here the only one listed is this test, so "we are in it"
  const pid1Hidden = (a: string, b: string) => (b === '/proc/1/ns/mnt' ? undefined : sameNamespace(a, b));
  assert.deepEqual(
    nodeMountNs(
      pid1Hidden,
      () => 1,
      () => [process.pid],
    ),
    { pid: process.pid, same: true },
  );
  // this very process: whatever this machine allows, a parent walk ends
  const real = nodeMountNs();
  assert.ok(real === undefined || Number.isInteger(real.pid));
});

test("the daemon mounts a bpffs only when none is found, in the node's mount namespace, and then uses it", () => {
  const mounts: NodeMountNs[] = [];
  const mount = (node: NodeMountNs) => {
    mounts.push(node);
    return node.same ? 'mount -t bpf bpf /sys/fs/bpf' : `nsenter --mount=/proc/${node.pid}/ns/mnt -- mount -t bpf bpf /sys/fs/bpf`;
  };
  const other = { pid: 1, same: false };
  // found: nothing mounted
  assert.deepEqual(
    ensureBpfRoot(() => ({ here: false, node: other, nodeBpffs: true }), mount),
    { path: INIT_BPF_ROOT, via: 'node' },
  );
  assert.deepEqual(mounts, []);
  // ip netns exec on a node without a bpffs: mounted in the node's namespace, used through /proc/<pid>/root
  let mounted = false;
  const r = ensureBpfRoot(
    () => ({ here: false, node: other, nodeBpffs: mounted }),
    (ns) => ((mounted = true), mount(ns)),
  );
  assert.deepEqual(r, { path: INIT_BPF_ROOT, via: 'node', mounted: 'nsenter --mount=/proc/1/ns/mnt -- mount -t bpf bpf /sys/fs/bpf' });
  // the same through a parent shell when PID 1 is hidden
  mounted = false;
  const shell = { pid: 777, same: false };
  const r1 = ensureBpfRoot(
    () => ({ here: false, node: shell, nodeBpffs: mounted }),
    (ns) => ((mounted = true), mount(ns)),
  );
  assert.deepEqual(r1, { path: '/proc/777/root/sys/fs/bpf', via: 'node', mounted: 'nsenter --mount=/proc/777/ns/mnt -- mount -t bpf bpf /sys/fs/bpf' });
  // in the node's namespace (a node, a container): a plain mount, then ours
  mounted = false;
  const mine = { pid: 1, same: true };
  const r2 = ensureBpfRoot(
    () => ({ here: mounted, node: mine, nodeBpffs: false }),
    (ns) => ((mounted = true), mount(ns)),
  );
  assert.deepEqual(r2, { path: '/sys/fs/bpf', via: 'here', mounted: 'mount -t bpf bpf /sys/fs/bpf' });
  assert.deepEqual(mounts, [other, shell, mine]);
  // a mount that does not show up is an error, not a silent private root
  const none = (node: NodeMountNs | undefined) => () => ({ here: false, node, nodeBpffs: false });
  assert.throws(() => ensureBpfRoot(none(other), mount), /no bpffs is visible at \/sys\/fs\/bpf or \/proc\/1\/root/);
  // no namespace readable at all: a mount might be private and die with weir, so none is made
  assert.throws(() => ensureBpfRoot(none(undefined), mount), /can be read.*mount -t bpf bpf \/sys\/fs\/bpf/);
  assert.equal(mounts.length, 4);
});

test("a root reached through another process is held open for the daemon's life", () => {
  assert.equal(holdBpfRoot('/sys/fs/bpf'), '/sys/fs/bpf');
  assert.equal(holdBpfRoot('/proc/1/root/sys/fs/bpf'), '/proc/1/root/sys/fs/bpf');
  const dir = mkdtempSync(join(tmpdir(), 'weir-hold-'));
  const held = holdBpfRoot(`/proc/${process.pid}/root${dir}`);
  assert.match(held, /^\/proc\/self\/fd\/\d+$/);
  assert.equal(realpathSync(held), dir);
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

test("the default instance follows a named network namespace that is not PID 1's", () => {
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
