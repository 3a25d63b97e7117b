// Must-show 4 of issue 11: README's own command, `ip netns exec NODE bin/weir daemon
// --node-name n1 --manifests DIR`, with the default --bpf-root and --instance, on a host
// where /sys/fs/bpf is not mounted. The "host" is a SimulatedHost (its own PID + mount
// namespace, PID 1 a test init), so the real host's mounts are never touched. weir mounts a
// bpffs in that init's mount namespace, pins through /proc/1/root, survives kill -9 with
// traffic flowing, is adopted with zero writes, and the CLI finds it from the node
// (`ip netns exec NODE weir services`) and from the host (`weir services --instance NODE`).

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { isBpffs } from '../../src/dataplane/bpffs.js';
import { runCleanups } from '../lib/cleanup.js';
import { findCgroup2Mount, Lab, type LabNode, type ManagedProcess, type Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { run, sleep } from '../lib/proc.js';
import { killUnderTraffic } from '../lib/kill-under-traffic.js';
import { webLab } from '../lib/web-lab.js';
import { SimulatedHost } from '../lib/sim-host.js';
import { parseLogfmt, WeirNode, type LogLine } from '../lib/weir-node.js';

const CLUSTER_IP = '198.19.0.40';
let lab: Lab;
let node: LabNode;
/** a second simulated node, for the instance default (no pods, no services) */
let node2: LabNode;
let weir2: WeirNode;
let host: SimulatedHost;
let client: Pod;
/** used for its manifests dir, lab cgroup and traffic helpers; the daemon is started below */
let weir: WeirNode;
let daemon: ManagedProcess | undefined;
const realHostHadBpffs = isBpffs('/sys/fs/bpf');

/** The README command, run on the simulated host, with the flags a stranger passes. */
function daemonArgs(): string[] {
  return [
    'netns',
    'exec',
    node.ns.name,
    binWeir,
    'daemon',
    '--node-name',
    'n1',
    '--manifests',
    weir.manifests,
    // the lab's child cgroup (never the root cgroup) and no :9745 listener shared by labs
    '--cgroup',
    relative(findCgroup2Mount()!, weir.cgroup.path),
    '--metrics-address',
    'off',
  ];
}

function events(p: ManagedProcess, event?: string): LogLine[] {
  return p.stdout
    .split('\n')
    .map(parseLogfmt)
    .filter((l): l is LogLine => l !== undefined && (event === undefined || l.event === event));
}

async function startDaemon(): Promise<LogLine> {
  daemon = host.spawn('ip', daemonArgs(), { label: 'weir daemon via ip netns exec on the simulated host', killAfterMs: 3000 });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ready = events(daemon, 'ready')[0];
    if (ready) return ready;
    if (!daemon.running) throw daemon.failure('exited before event=ready');
    if (Date.now() > deadline) throw daemon.failure('no event=ready within 20 s');
    await sleep(25);
  }
}

/** `weir services -o json` run by `argv` (on the simulated host, or in the node under it). */
async function services(extra: string[], inNode: boolean): Promise<Array<{ frontend: string }>> {
  const cli = [binWeir, 'services', '-o', 'json', ...extra];
  const argv = inNode ? ['ip', 'netns', 'exec', node.ns.name, ...cli] : cli;
  const r = await host.exec(argv[0]!, argv.slice(1), { check: false });
  assert.equal(r.code, 0, `weir services ${extra.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<{ frontend: string }>;
}

const pinDir = () => join(host.root, 'sys/fs/bpf/weir', node.ns.name);

before(async () => {
  ({ lab, node, client, weir } = await webLab('default-root', CLUSTER_IP));
  node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
  weir2 = await WeirNode.create(lab, node2);
  // last: the simulated host's mount namespace is a private copy, so it sees only the
  // network namespaces (/run/netns binds) that exist now
  host = await SimulatedHost.create(lab);
});
after(async () => {
  await runCleanups();
  await lab?.destroy();
});

test('the simulated host is its own PID 1 and has no bpffs at /sys/fs/bpf', async () => {
  assert.notEqual(host.mountNs, readlinkSync('/proc/self/ns/mnt'), "not the test's (the real host's) mount namespace");
  const r = await host.exec('sh', ['-c', 'readlink /proc/1/ns/mnt; cat /proc/1/comm; stat -f -c %T /sys/fs/bpf']);
  assert.deepEqual(r.stdout.trim().split('\n'), [host.mountNs, 'sleep', 'sysfs']);
  // the CLI never mounts: with nothing there it says so, from the node and from the host
  for (const [instance, argv] of [
    [node.ns.name, ['ip', 'netns', 'exec', node.ns.name, binWeir, 'services']],
    ['default', [binWeir, 'services']],
  ] as const) {
    const cli = await host.exec(argv[0], argv.slice(1), { check: false });
    assert.equal(cli.code, 3);
    assert.equal(
      cli.stderr.trim(),
      `weir: no weir state for instance "${instance}" under /sys/fs/bpf/weir (is the daemon running on this node? --instance/--bpf-root)`,
    );
  }
  assert.equal((await host.exec('stat', ['-f', '-c', '%T', '/sys/fs/bpf'])).stdout.trim(), 'sysfs');
});

test("README command with default flags: weir mounts a bpffs in PID 1's mount namespace and becomes ready", async () => {
  const ready = await startDaemon();
  const start = events(daemon!, 'start')[0]!;
  assert.equal(start.instance, node.ns.name, 'default instance: the network namespace name');
  assert.equal(start.bpfRoot, '/proc/1/root/sys/fs/bpf', "PID 1's bpffs, reached through its root");
  const mounted = events(daemon!, 'bpffs mounted');
  assert.equal(mounted.length, 1, 'event="bpffs mounted" logged');
  assert.equal(mounted[0]!.command, 'nsenter --mount=/proc/1/ns/mnt -- mount -t bpf bpf /sys/fs/bpf');
  assert.equal(ready.services, '1');
  console.log(`# first start (bpffs mounted): ready in ${ready.ms} ms inside weir, writes=${ready.writes}, attached=${ready.attached}`);
  assert.equal((await host.exec('stat', ['-f', '-c', '%T', '/sys/fs/bpf'])).stdout.trim(), 'bpf_fs', 'the simulated host now has a bpffs');
  assert.equal(isBpffs('/sys/fs/bpf'), realHostHadBpffs, "the real host's /sys/fs/bpf is untouched");
  assert.ok(existsSync(join(pinDir(), 'weir_frontend4')), `maps pinned in the host's bpffs (${pinDir()})`);
  assert.ok(
    readdirSync(join(pinDir(), 'links')).some((l) => l.endsWith('-from_pod')),
    'TC links pinned',
  );
  const r = await weir.spread(client.ns, CLUSTER_IP, 80, { count: 40 });
  assert.equal(r.failures, 0, r.errors.join('; '));
  assert.deepEqual(Object.keys(r.servers).sort(), ['be-a', 'be-b']);
});

test('kill -9: traffic keeps flowing with no daemon; the next start adopts the state with writes=0', async () => {
  // the TC path (the client is outside the socket-LB cgroup): per-packet NAT from pinned maps
  const { flow: f, whileDead } = await killUnderTraffic(weir, daemon!, client.ns, CLUSTER_IP, 80);
  assert.deepEqual(Object.keys(whileDead.servers).sort(), ['be-a', 'be-b']);
  console.log(`# flow across kill -9: ${f.received}/${f.sent} replies, longest gap ${f.maxGapMs} ms; 40 new connections while no daemon ran`);

  const ready = await startDaemon();
  assert.equal(ready.writes, '0', 'adopted: zero writes');
  assert.equal(ready.attached, '0', 'links adopted, none created');
  assert.equal(events(daemon!, 'bpffs mounted').length, 0, 'the bpffs is found this time, not mounted again');
  console.log(`# restart after kill -9: ready in ${ready.ms} ms inside weir, writes=${ready.writes}, adoptedLinks=${ready.adoptedLinks}`);
});

test('the CLI finds the state from the node (ip netns exec) and from the host, with the same flags', async () => {
  const vip = (rows: Array<{ frontend: string }>) => rows.some((s) => s.frontend.startsWith(`${CLUSTER_IP}:80`));
  assert.ok(vip(await services([], true)), 'ip netns exec NODE weir services');
  assert.ok(vip(await services(['--instance', node.ns.name], false)), 'weir services --instance NODE on the host');
  assert.ok(vip(await services([], false)), 'weir services on the host: the only instance there is');
});

test('a second simulated node started the same way gets its own instance; the host CLI then asks which', async () => {
  const args = ['netns', 'exec', node2.ns.name, binWeir, 'daemon', '--node-name', 'n2', '--manifests', weir2.manifests];
  const d2 = host.spawn('ip', [...args, '--cgroup', relative(findCgroup2Mount()!, weir2.cgroup.path), '--metrics-address', 'off'], { label: 'weir daemon n2' });
  try {
    await d2.waitForOutput(/event=ready /, 20_000);
    const start = events(d2, 'start')[0]!;
    assert.equal(start.instance, node2.ns.name);
    assert.deepEqual(readdirSync(join(host.root, 'sys/fs/bpf/weir')).sort(), [node.ns.name, node2.ns.name].sort(), 'one pin directory per node');
    const r = await host.exec(binWeir, ['services'], { check: false });
    assert.equal(r.code, 1);
    const both = [node.ns.name, node2.ns.name].sort().join(', ');
    assert.equal(r.stderr.trim(), `weir: several weir instances under /sys/fs/bpf/weir (${both}): choose one with --instance`);
    const vip = (rows: Array<{ frontend: string }>) => rows.some((s) => s.frontend.startsWith(`${CLUSTER_IP}:80`));
    assert.ok(vip(await services([], true)), "in node1, node1's instance is still the default");
  } finally {
    await d2.stop();
  }
});

test('killing the simulated host takes its bpffs, and so every weir link, with it', async () => {
  const links = readdirSync(join(pinDir(), 'links'));
  const ids: number[] = [];
  for (const l of links) {
    const r = await run('bpftool', ['-j', 'link', 'show', 'pinned', join(pinDir(), 'links', l)]);
    ids.push((JSON.parse(r.stdout) as { id: number }).id);
  }
  assert.ok(ids.length >= 3, `links: ${links.join(', ')}`);
  await host.kill();
  await daemon!.exited; // the daemon dies with the PID namespace
  const show = (id: number) => run('bpftool', ['link', 'show', 'id', String(id)], { check: false });
  const alive = async () => (await Promise.all(ids.map(show))).filter((r) => r.code === 0).length;
  // the mount namespace is released asynchronously after its last process exits
  const deadline = Date.now() + 10_000;
  let n = await alive();
  while (n > 0 && Date.now() < deadline) {
    await sleep(100);
    n = await alive();
  }
  assert.equal(n, 0, `links still alive after the simulated host died: ${ids.join(', ')}`);
  // a released link's program leaves the packet path after an RCU grace period, not at once:
  // ask again until the ClusterIP stops answering (a pinned link would keep it answering)
  let r = await weir.spread(client.ns, CLUSTER_IP, 80, { count: 5, concurrency: 5 });
  while (r.failures < 5 && Date.now() < deadline) {
    await sleep(200);
    r = await weir.spread(client.ns, CLUSTER_IP, 80, { count: 5, concurrency: 5 });
  }
  assert.equal(r.failures, 5, 'no weir left: the ClusterIP no longer answers');
});
