// Which processes are in the socket LB's cgroup subtree when weir runs in cgroup and PID
// namespaces of its own: the path arithmetic against what Linux prints (relative to the
// reader's cgroup namespace), and a real scan of this machine's /proc.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cgroup2MountOf, cgroup2PathOf, CgroupMembers, inSubtree, parseNsCgroupPath } from '../../src/dataplane/cgroup-members.js';
import { findCgroup2Mount } from '../lib/lab.js';
import { memoryLogger } from '../../src/log.js';

test('cgroup paths relative to our cgroup namespace', () => {
  assert.deepEqual(parseNsCgroupPath('/'), { up: 0, names: [] });
  assert.deepEqual(parseNsCgroupPath('/../../kubepods.slice/pod1'), { up: 2, names: ['kubepods.slice', 'pod1'] });
  assert.deepEqual(parseNsCgroupPath('/../../..//a/./b/../c'), { up: 3, names: ['a', 'c'] });
  assert.equal(cgroup2PathOf('4:memory:/x\n0::/../pods\n'), '/../pods');
  assert.equal(cgroup2PathOf('4:memory:/x\n'), undefined);
});

test('the cgroup2 mount holding a directory: its root as mountinfo prints it, escapes undone', () => {
  const mountinfo = [
    '58 48 0:38 /.. /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
    '59 48 0:38 /../../.. /run/weir/cgroup\\040v2 rw,relatime shared:9 - cgroup2 cgroup2 rw',
    '60 48 0:39 / /sys/fs/bpf rw - bpf bpf rw',
  ].join('\n');
  assert.deepEqual(cgroup2MountOf('/run/weir/cgroup v2/kubepods.slice', mountinfo), { mountPoint: '/run/weir/cgroup v2', root: '/../../..' });
  assert.deepEqual(cgroup2MountOf('/sys/fs/cgroup/unified', mountinfo), { mountPoint: '/sys/fs/cgroup/unified', root: '/..' });
  assert.equal(cgroup2MountOf('/sys/fs/bpf/weir', mountinfo), undefined);
});

test('membership: the DaemonSet (node root from a container cgroup namespace) and the lab (a sibling cgroup)', () => {
  const p = parseNsCgroupPath;
  // weir's container cgroup is 4 levels down; --cgroup is the node's root: every process is in
  const root = p('/../../../..');
  assert.equal(inSubtree(p('/../../kubepods-besteffort.slice/pod2/c1'), root), true);
  assert.equal(inSubtree(p('/'), root), true);
  assert.equal(inSubtree(p('/../../../../system.slice/kubelet.service'), root), true);
  // a subtree named from above: only a path that climbs as high compares names directly
  const pods = p('/../../lab/pods');
  assert.equal(inSubtree(p('/../../lab/pods/x'), pods), true);
  assert.equal(inSubtree(p('/../../lab/other'), pods), false);
  assert.equal(inSubtree(p('/../../../else'), pods), false);
  // climbing less: it depends on the names of our own ancestors ([lab, weir] down to our root)
  assert.equal(inSubtree(p('/../pods'), pods), undefined);
  assert.equal(inSubtree(p('/../pods'), pods, ['lab', 'weir']), true);
  assert.equal(inSubtree(p('/../pods/deeper'), pods, ['lab', 'weir']), true);
  assert.equal(inSubtree(p('/../elsewhere'), pods, ['lab', 'weir']), false);
  assert.equal(inSubtree(p('/'), pods, ['lab', 'weir']), false);
  // the target written through our own root (not the kernel's shortest form) still matches
  assert.equal(inSubtree(p('/sub'), p('/../weir/sub'), ['weir']), true);
  assert.equal(inSubtree(p('/../weir2'), p('/../weir/sub'), ['weir']), false);
});

test("this machine's /proc: the members of the cgroup2 root include this process", () => {
  const mount = findCgroup2Mount();
  assert.ok(mount, 'cgroup2 is mounted');
  const log = memoryLogger();
  const pids = new CgroupMembers(mount, '/proc', log).pids();
  assert.ok(pids.includes(process.pid), `this process is under the root: ${pids.length} members`);
  assert.deepEqual(log.lines, []);
});
