// README's command exactly as a stranger runs it on this machine: `ip netns exec NODE bin/weir
// daemon --node-name n1 --manifests DIR`, default --bpf-root and --instance, from the test's own
// (the real host's) mount namespace. Here PID 1 is a sandbox init whose /proc/1/ns even root
// cannot read, so weir must find the node's mount namespace through its parent and mount the
// bpffs there (default-bpf-root.test.ts covers a readable PID 1 on a simulated host). When
// /sys/fs/bpf was not mounted before, the test unmounts it again at the end, leaving the
// machine as it found it.

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { isBpffs } from '../../src/dataplane/bpffs.js';
import { onCleanup, runCleanups } from '../lib/cleanup.js';
import { findCgroup2Mount, Lab, type LabNode, type ManagedProcess, type Pod } from '../lib/lab.js';
import { killUnderTraffic } from '../lib/kill-under-traffic.js';
import { webLab } from '../lib/web-lab.js';
import { binWeir } from '../lib/paths.js';
import { run, spawnManaged } from '../lib/proc.js';
import { parseLogfmt, WeirNode, type LogLine } from '../lib/weir-node.js';

const CLUSTER_IP = '198.19.0.41';
const hadBpffs = isBpffs('/sys/fs/bpf');
let lab: Lab;
let node: LabNode;
let client: Pod;
let weir: WeirNode;
let daemon: ManagedProcess | undefined;

const pinDir = () => join('/sys/fs/bpf/weir', node.ns.name);

function events(p: ManagedProcess, event: string): LogLine[] {
  return p.stdout
    .split('\n')
    .map(parseLogfmt)
    .filter((l): l is LogLine => l !== undefined && l.event === event);
}

async function startDaemon(): Promise<LogLine> {
  const args = ['netns', 'exec', node.ns.name, binWeir, 'daemon', '--node-name', 'n1', '--manifests', weir.manifests];
  // the lab's child cgroup (never the root cgroup) and no :9745 listener shared by labs
  args.push('--cgroup', relative(findCgroup2Mount()!, weir.cgroup.path), '--metrics-address', 'off');
  daemon = spawnManaged('ip', args, { label: 'weir daemon via ip netns exec (README command)', killAfterMs: 3000 });
  const m = await daemon.waitForOutput(/^.*event=ready .*$/m, 20_000);
  return parseLogfmt(m[0])!;
}

before(async () => {
  ({ lab, node, client, weir } = await webLab('readme-netns', CLUSTER_IP));
  // whatever happens: this instance's state goes, and a bpffs weir mounted for the test too
  onCleanup('readme-netns: weir uninstall and the bpffs', async () => {
    await daemon?.stop();
    if (node && existsSync(pinDir())) await run(binWeir, ['uninstall', '--bpf-root', '/sys/fs/bpf', '--instance', node.ns.name, '--force'], { check: false });
    const weirEmpty = !existsSync('/sys/fs/bpf/weir') || readdirSync('/sys/fs/bpf/weir').length === 0;
    const onlyOurs = isBpffs('/sys/fs/bpf') && readdirSync('/sys/fs/bpf').every((n) => ['weir', 'maps.debug', 'progs.debug'].includes(n));
    if (!hadBpffs && onlyOurs && weirEmpty) {
      await run('umount', ['/sys/fs/bpf'], { check: false });
    }
  });
});
after(async () => {
  await runCleanups();
  await lab?.destroy();
});

test("README command from ip netns exec with default flags: ready, pins in the node's /sys/fs/bpf", async () => {
  const ready = await startDaemon();
  const start = events(daemon!, 'start')[0]!;
  assert.equal(start.instance, node.ns.name, 'default instance: the network namespace name');
  if (!hadBpffs) assert.equal(events(daemon!, 'bpffs mounted').length, 1, 'weir mounted the missing bpffs');
  assert.ok(isBpffs('/sys/fs/bpf'), "a bpffs at /sys/fs/bpf in the node's (this test's) mount namespace");
  assert.ok(existsSync(join(pinDir(), 'weir_frontend4')), `maps pinned under ${pinDir()}`);
  assert.equal(ready.services, '1');
  const r = await weir.spread(client.ns, CLUSTER_IP, 80, { count: 40 });
  assert.equal(r.failures, 0, r.errors.join('; '));
  assert.deepEqual(Object.keys(r.servers).sort(), ['be-a', 'be-b']);
});

test('kill -9: traffic goes on, the next start adopts with writes=0, the CLI finds it from the node and the host', async () => {
  const { flow: f } = await killUnderTraffic(weir, daemon!, client.ns, CLUSTER_IP, 80, 20);
  console.log(`# flow across kill -9: ${f.received}/${f.sent} lines, longest gap ${f.maxGapMs} ms`);
  const ready = await startDaemon();
  assert.equal(ready.writes, '0', 'adopted: zero writes');
  assert.equal(ready.attached, '0', 'links adopted, none created');
  assert.equal(events(daemon!, 'bpffs mounted').length, 0, 'found, not mounted again');
  for (const argv of [
    ['ip', 'netns', 'exec', node.ns.name, binWeir, 'services', '-o', 'json'],
    [binWeir, 'services', '-o', 'json', '--instance', node.ns.name],
  ]) {
    const r = await run(argv[0]!, argv.slice(1));
    const rows = JSON.parse(r.stdout) as Array<{ frontend: string }>;
    assert.ok(
      rows.some((s) => s.frontend.startsWith(`${CLUSTER_IP}:80`)),
      argv.join(' '),
    );
  }
  await daemon!.stop();
  // and the clean-up, as plainly: same defaults, same state
  const u = await run('ip', ['netns', 'exec', node.ns.name, binWeir, 'uninstall']);
  assert.match(u.stdout, /removed +map weir_frontend4/);
  assert.equal(existsSync(pinDir()), false, 'ip netns exec NODE weir uninstall removed the pins');
});
