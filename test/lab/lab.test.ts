// The lab library's own tests: one node with two pods made by the real CNI ptp plugin, an
// external client on the underlay, the echo backend, cgroups, teardown, and the sweep of a
// lab whose owner was killed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, LAB_RUN_DIR, run, type External, type LabNode, type Pod } from '../lib/lab.js';

/** true while the process exists and is not a zombie */
function processLives(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function labNetns(id: string): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`wl${id}-`));
}

const mounted = (path: string) =>
  readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === path);

describe('lab', () => {
  let lab: Lab;
  let node: LabNode;
  let a: Pod;
  let b: Pod;
  let c: Pod;
  let client: External;

  before(async () => {
    lab = await Lab.create({ name: 'lab-test' });
    const dual = (n: number) => ({
      address: `198.18.0.${n}/24`,
      address6: `2001:2::${n}/64`,
      podSubnet: `198.18.${n}.0/24`,
      podSubnet6: `2001:2:0:${n}::/64`,
    });
    node = await lab.node('node1', dual(1));
    const node2 = await lab.node('node2', dual(2));
    await lab.routePodSubnets();
    a = await lab.pod(node, 'pod-a');
    b = await lab.pod(node, 'pod-b');
    c = await lab.pod(node2, 'pod-c');
    client = await lab.external('client', { address: '198.18.0.100/24', address6: '2001:2::100/64' });
  });
  after(runCleanups);

  test('the CNI ptp plugin set up pods inside the node namespace', async () => {
    assert.match(a.ip, /^198\.18\.1\.\d+$/);
    assert.notEqual(a.ip, b.ip);
    assert.match(a.hostIfname, /^veth/);
    assert.match(a.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    assert.deepEqual(await a.ns.addresses('eth0'), [a.cidr, a.cidr6]);
    // the route a kubelet + ptp leave on the host, in the node namespace
    const routes = await node.ns.ip('route', 'show', a.ip);
    assert.match(routes, new RegExp(`^${a.ip.replaceAll('.', '\\.')} dev ${a.hostIfname}`, 'm'));
    assert.ok(lab.netnsNames().every((n) => n.startsWith(`wl${lab.id}-`)));
  });

  test('pod to pod across the node, IPv4 and IPv6', async () => {
    const r = await a.ns.ping(b.ip, { count: 3 });
    assert.equal(r.transmitted, 3);
    assert.equal(r.received, 3, r.output);
    assert.match(b.ip6!, /^2001:2:0:1::/);
    assert.equal((await a.ns.ping(b.ip6!, { count: 2 })).received, 2);
  });

  test('pod to pod between nodes over the underlay', async () => {
    assert.match(c.ip, /^198\.18\.2\./);
    assert.equal((await a.ns.ping(c.ip, { count: 2 })).received, 2);
    assert.equal((await c.ns.ping(a.ip6!, { count: 2 })).received, 2);
  });

  test('external client reaches a pod through the node', async () => {
    const r = await client.ns.ping(a.ip, { count: 2 });
    assert.equal(r.received, 2, r.output);
    assert.equal((await client.ns.ping(c.ip6!, { count: 2 })).received, 2);
  });

  test('echo server reports the real client address over TCP, UDP and HTTP', async () => {
    await b.ns.echoServer({ name: 'backend-b', port: 7000 });
    await client.ns.waitForPort(7000, { host: b.ip });
    for (const proto of ['tcp', 'udp'] as const) {
      const fromPod = await a.ns.echo(b.ip, 7000, { proto });
      assert.equal(fromPod.reply.server, 'backend-b');
      assert.equal(fromPod.reply.proto, proto);
      assert.equal(fromPod.reply.peer, a.ip);
      assert.equal(fromPod.client.remote, b.ip);
      const fromOutside = await client.ns.echo(b.ip, 7000, { proto, message: 'hi' });
      assert.equal(fromOutside.reply.peer, client.address);
      assert.equal(fromOutside.reply.echo, 'hi');
      const overV6 = await c.ns.echo(b.ip6!, 7000, { proto });
      assert.equal(overV6.reply.peer, c.ip6);
    }
    const http = await client.ns.curl(`http://${b.ip}:7000/x`);
    assert.equal(http.status, 200);
    assert.equal(JSON.parse(http.body).peer, client.address);
    assert.equal(http.remoteIp, b.ip);
    // nothing listening: curl reports the failure instead of throwing when asked to
    const refused = await client.ns.curl(`http://${b.ip}:7001/`, { check: false, timeoutMs: 1000 });
    assert.equal(refused.exitCode, 7);
    await assert.rejects(a.ns.echo(b.ip, 7001, { proto: 'tcp' }), /ECONNREFUSED/);
  });

  test('iperf3 between pods, JSON parsed', async () => {
    await b.ns.iperfServer({ port: 5201 });
    // capped: veths share per-CPU backlogs, and an unbounded flood drops packets of other labs
    const r = await a.ns.iperfClient(b.ip, { seconds: 1, bitrate: '1G' });
    assert.ok(r.receivedBitsPerSecond > 1e6, `throughput ${r.receivedBitsPerSecond}`);
  });

  test('processes run in a lab cgroup (and a pod netns) show up in cgroup.procs', async () => {
    const cg = await lab.cgroup('workload');
    assert.ok(cg.path.includes(`/weir-lab/${lab.id}/`));
    const sleeper = a.ns.spawn('sleep', ['30'], { cgroup: cg });
    // the wrapper moved itself in before exec: once it is sleep, it is already in the cgroup
    await waitFor(() => readFileSync(`/proc/${sleeper.pid}/comm`, 'utf8').trim() === 'sleep');
    assert.ok(cg.pids().includes(sleeper.pid));
    assert.equal((await run('ip', ['netns', 'identify', String(sleeper.pid)])).stdout.trim(), a.ns.name);
    const seen = await a.ns.exec('cat', ['/proc/self/cgroup'], { cgroup: cg });
    assert.match(seen.stdout, new RegExp(`^0::/weir-lab/${lab.id}/workload$`, 'm'));
    await sleeper.stop();
    assert.ok(!cg.pids().includes(sleeper.pid));
  });

  test('destroy() removes namespaces, cgroup, bpffs and processes', async () => {
    const cg = await lab.cgroup('doomed');
    const inCgroup = node.ns.spawn('sleep', ['60'], { cgroup: cg });
    const inNetns = b.ns.spawn('sleep', ['60']);
    const { bpffs, id } = lab;
    assert.ok(mounted(bpffs));
    assert.equal((await labNetns(id)).length, 7); // underlay, 2 nodes, 3 pods, client
    await lab.destroy();
    assert.deepEqual(await labNetns(id), []);
    assert.ok(!existsSync(cg.path), 'cgroup dir removed');
    assert.ok(!existsSync(lab.cgroupRoot), 'lab cgroup removed');
    assert.ok(!mounted(bpffs), 'bpffs unmounted');
    assert.ok(!existsSync(bpffs));
    assert.ok(!existsSync(`${LAB_RUN_DIR}/${id}`));
    assert.ok(!processLives(inCgroup.pid) && !processLives(inNetns.pid), 'lab processes stopped');
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a lab whose owner was killed is swept by the next Lab.create', async (t) => {
  t.after(runCleanups);
  // a separate process makes a lab with a pod, a cgroup and processes, then dies by SIGKILL:
  // no cleanup hook runs
  const labJs = fileURLToPath(new URL('../lib/lab.js', import.meta.url));
  const script = `
    import { Lab } from ${JSON.stringify(labJs)};
    const lab = await Lab.create({ name: 'doomed' });
    const node = await lab.node('n', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    const pod = await lab.pod(node, 'p');
    const cg = await lab.cgroup('c');
    const a = pod.ns.spawn('sleep', ['60']);
    const b = node.ns.spawn('sleep', ['60'], { cgroup: cg });
    console.log(JSON.stringify({ id: lab.id, bpffs: lab.bpffs, cgroup: cg.path, pids: [a.pid, b.pid] }));
    setInterval(() => {}, 1000);
  `;
  const owner = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    owner.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    owner.on('exit', (code) => reject(new Error(`owner exited early (${code})`)));
  });
  const dead = JSON.parse(line) as { id: string; bpffs: string; cgroup: string; pids: number[] };
  assert.equal((await labNetns(dead.id)).length, 3, 'underlay, node and pod exist');
  assert.ok(existsSync(dead.cgroup) && mounted(dead.bpffs) && dead.pids.every(processLives));
  owner.kill('SIGKILL');
  await new Promise((r) => owner.once('exit', r));

  const lab = await Lab.create({ name: 'sweeper' });
  try {
    // a lab created concurrently by another test process may have swept it first
    assert.ok(lab.swept.includes(dead.id) || !existsSync(`${LAB_RUN_DIR}/${dead.id}`));
    assert.deepEqual(await labNetns(dead.id), []);
    assert.ok(!existsSync(dead.cgroup), 'cgroup removed');
    assert.ok(!mounted(dead.bpffs) && !existsSync(dead.bpffs), 'bpffs removed');
    assert.ok(!existsSync(`${LAB_RUN_DIR}/${dead.id}`));
    await waitFor(() => !dead.pids.some(processLives));
  } finally {
    await lab.destroy();
  }
});
