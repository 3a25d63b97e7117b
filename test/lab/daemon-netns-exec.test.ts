// `ip netns exec NODE bin/weir daemon ...`, the way the issue and operators start it: that
// remounts /sys in a private mount namespace, hiding the cgroup2 mount (and any bpffs under
// /sys). The daemon mounts cgroup2 itself there, resolves a relative --cgroup against it,
// and the connect-time LB works for a process in that cgroup; the host's mount table is
// untouched.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode } from '../lib/weir-node.js';

const CLUSTER_IP = '198.19.0.20';
let lab: Lab;
let node: LabNode;
let backends: Pod[];
let client: Pod;
let weir: WeirNode;

before(async () => {
  lab = await Lab.create({ name: 'netns-exec' });
  node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
  backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
  client = await lab.pod(node, 'client');
  await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
  weir = await WeirNode.create(lab, node, { launcher: 'ip-netns-exec' });
  const ports = [{ name: 'http', port: 80, targetPort: 8080 }];
  weir.writeManifest('web.yaml', [
    service({ name: 'web', clusterIP: CLUSTER_IP, ports }),
    endpointSlice({ name: 'web-1', service: 'web', ports, endpoints: backends.map((b) => ({ ip: b.ip, node: 'node1' })) }),
  ]);
});
after(async () => {
  await runCleanups();
  await lab?.destroy();
});

test('started with ip netns exec, weir mounts its own cgroup2 and the connect-time LB works', async () => {
  await weir.start();
  const pid = weir.process!.pid;
  const mountinfo = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  assert.match(mountinfo, / \/run\/weir\/cgroup2 .* - cgroup2 /, 'the daemon sees its own cgroup2 mount');
  assert.doesNotMatch(readFileSync('/proc/self/mountinfo', 'utf8'), / \/run\/weir\/cgroup2 /, 'the host mount table is untouched');

  const r = await weir.spread(client.ns, CLUSTER_IP, 80, { count: 60, cgroup: weir.cgroup });
  assert.equal(r.failures, 0, r.errors.join('; '));
  assert.deepEqual(Object.keys(r.servers).sort(), ['be-a', 'be-b']);
  assert.deepEqual(Object.keys(r.remotes), [`${CLUSTER_IP}:80`], 'getpeername shows the ClusterIP');
  const rows = weir.cli<Array<{ hook: string; reason: string; packets: number }>>('counters');
  assert.equal(rows.find((x) => x.hook === 'sock' && x.reason === 'sock_lb_translated')?.packets, 60, 'every connect() translated by the socket LB');
  assert.equal(rows.find((x) => x.reason === 'service_nat')?.packets, undefined, 'no per-packet NAT');
  const exit = await weir.terminate();
  assert.equal(exit.code, 0);
});
