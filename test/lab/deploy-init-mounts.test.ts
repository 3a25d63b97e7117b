// Issue 15: the DaemonSet's init containers (deploy/weir.yaml: mount-bpf-fs, mount-cgroup) run
// as written against a simulated node that lacks a bpffs at /sys/fs/bpf and cgroup2 at
// /run/weir/cgroupv2. The node is a private mount namespace and a PID namespace of its own
// (its shell is PID 1), with its /proc where the manifest's /nodeproc would be; each init
// container is a further mount and cgroup namespace in a cgroup of its own, with the manifest's
// capabilities only. Checked from the node: the mounts landed there, once, cgroup2 rooted at the
// node's root cgroup, and a second run mounts nothing. Every mount dies with the namespaces;
// none reaches this machine's mount table.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { V1Container } from '@kubernetes/client-node';
// the YAML parser client-node uses
import * as jsYaml from 'js-yaml';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type Cgroup } from '../lib/lab.js';
import { repoRoot } from '../lib/paths.js';
import { run } from '../lib/proc.js';

/** The DaemonSet's init containers, from deploy/weir.yaml. */
function initContainers(): V1Container[] {
  const docs = jsYaml.loadAll(readFileSync(join(repoRoot, 'deploy', 'weir.yaml'), 'utf8')) as Array<{ kind: string; spec?: unknown }>;
  const ds = docs.find((d) => d.kind === 'DaemonSet') as { spec: { template: { spec: { initContainers: V1Container[] } } } };
  return ds.spec.template.spec.initContainers;
}

/** Where the simulated node's /proc is mounted (inside its own mount namespace only). */
const NODEPROC = '/run/sim-nodeproc';

/**
 * The node: forget any bpffs at /sys/fs/bpf, a fresh /run, its /proc at NODEPROC. Then each
 * init container's script twice, as a container: its own cgroup, mount and cgroup namespaces,
 * the manifest's capabilities. Last, the node's own mounts at the two paths.
 */
const NODE = `set -e
cg=$1; shift
while awk '$5 == "/sys/fs/bpf"' /proc/self/mountinfo | grep -q .; do umount -l /sys/fs/bpf; done
mount -t tmpfs sim-run /run
mkdir -p /run/weir/cgroupv2 ${NODEPROC}
mount -t proc proc ${NODEPROC}
for round in first again; do
  for c in "$@"; do
    name=\${c%%=*}; rest=\${c#*=}; caps=\${rest%%=*}; script=\${rest#*=}
    echo "== $round $name"
    sh -c 'echo $$ > "$0/cgroup.procs"; exec unshare --mount --cgroup --propagation private setpriv --bounding-set "$1" --inh-caps -all -- sh -ec "$2"' \\
      "$cg" "$caps" "$script"
  done
done
echo "== node"
grep -E ' (/sys/fs/bpf|/run/weir/cgroupv2) ' /proc/self/mountinfo
`;

describe("the DaemonSet's init containers on a node without bpffs and cgroup2 mounts", () => {
  let lab: Lab;
  let cg: Cgroup;
  before(async () => {
    lab = await Lab.create({ name: 'deploy-init' });
    cg = await lab.cgroup('init-container');
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('mount-bpf-fs and mount-cgroup mount on the node through its /proc, once', async () => {
    const inits = initContainers();
    const args = inits.map((c) => {
      const caps = ['-all', ...c.securityContext!.capabilities!.add!.map((x) => `+${x.toLowerCase()}`)].join(',');
      // the command is [sh, -ec, script]; the script names the node's /proc as /nodeproc
      assert.deepEqual(c.command!.slice(0, 2), ['sh', '-ec']);
      return `${c.name}=${caps}=${c.command![2]!.replaceAll('/nodeproc', NODEPROC)}`;
    });
    const r = await run('unshare', ['--mount', '--propagation', 'private', '--pid', '--fork', 'sh', '-c', NODE, 'sh', cg.path, ...args], {
      check: false,
      timeoutMs: 30_000,
    });
    console.log(r.stdout.replace(/^/gm, '# '));
    assert.equal(r.code, 0, r.stderr);
    const section = (title: string) => r.stdout.split(`== ${title}\n`)[1]!.split('\n== ')[0]!.trim();
    assert.equal(section('first mount-bpf-fs'), 'mounted a bpffs at /sys/fs/bpf on the node');
    assert.equal(section('first mount-cgroup'), 'mounted cgroup2 at /run/weir/cgroupv2 on the node');
    assert.equal(section('again mount-bpf-fs'), 'the node has a bpffs at /sys/fs/bpf');
    assert.equal(section('again mount-cgroup'), 'the node has cgroup2 at /run/weir/cgroupv2');
    // the node's mount table: one of each (mountinfo: id parent dev root mountpoint ... - fstype)
    const mounts = section('node')
      .split('\n')
      .map((l) => {
        const [left, right] = l.split(' - ') as [string, string];
        const f = left.split(' ');
        return { root: f[3], mountPoint: f[4], fstype: right.split(' ')[0] };
      });
    assert.deepEqual(
      mounts.filter((m) => m.fstype !== 'tmpfs'),
      [
        { root: '/', mountPoint: '/sys/fs/bpf', fstype: 'bpf' },
        // rooted at the node's root cgroup, not the init container's (its cgroup namespace's)
        { root: '/', mountPoint: '/run/weir/cgroupv2', fstype: 'cgroup2' },
      ],
    );
  });
});
