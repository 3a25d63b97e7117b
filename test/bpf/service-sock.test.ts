// Socket LB on real sockets: sock_lb.o attached to a private cgroup, a child process in
// that cgroup and in its own network namespace (the backend address on its loopback)
// connects to a frontend. connect()/sendto() reach the backend, getpeername() and
// recvfrom() still show the frontend.

import assert from 'node:assert/strict';
import { BpfMap } from '../../src/bpf/index.js';
import { readLbStats } from '../../src/dataplane/lb-stats.js';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { addon, type RawLink, type RawObject } from '../../src/bpf/native.js';
import { onCleanup } from '../lib/cleanup.js';
import { findCgroup2Mount } from '../lib/lab.js';
import { addService, IPPROTO, loadServiceDataplane, OBJ_DIR, type ServiceDataplane } from './service-fixture.js';

const FRONTEND = '198.19.0.10';
const BACKEND = '198.18.2.20';
// wherever this host mounts cgroup2 (/sys/fs/cgroup on unified-only hosts, .../unified on hybrid ones)
const CGROUP_ROOT = findCgroup2Mount()!;

let dp: ServiceDataplane;
let sock: RawObject;
let cgroup: string;
const links: RawLink[] = [];

before(() => {
  dp = loadServiceDataplane();
  sock = addon.Object.open(join(OBJ_DIR, 'sock_lb.o'), dp.bpffs.path);
  sock.load();
  cgroup = join(CGROUP_ROOT, `weir-sock-test-${process.pid}`);
  mkdirSync(cgroup);
  onCleanup(`remove cgroup ${cgroup}`, () => rmdirSync(cgroup));
  for (const name of ['weir_sock_connect4', 'weir_sock_sendmsg4', 'weir_sock_recvmsg4', 'weir_sock_getpeername4']) {
    links.push(addon.attachCgroup(sock.program(name), cgroup));
  }
});
after(async () => {
  for (const l of links) l.detach();
  sock?.close();
  await dp?.close();
  try {
    rmdirSync(cgroup);
  } catch {
    /* cleanup step runs it again at exit */
  }
});

// Runs in the child: a TCP and a UDP backend on BACKEND, clients to FRONTEND.
const CHILD = `
import net from 'node:net';
import dgram from 'node:dgram';
const out = {};
const tcpServer = net.createServer((s) => { out.tcpServerSawLocal = s.localAddress + ':' + s.localPort; s.end('hi'); });
await new Promise((r) => tcpServer.listen(8080, '${BACKEND}', r));
const c = net.connect(80, '${FRONTEND}');
await new Promise((r, j) => { c.on('connect', r); c.on('error', j); });
out.tcpPeer = c.remoteAddress + ':' + c.remotePort;
await new Promise((r) => c.on('end', r).resume());
tcpServer.close();
const udpServer = dgram.createSocket('udp4');
udpServer.on('message', (m, rinfo) => udpServer.send(m, rinfo.port, rinfo.address));
await new Promise((r) => udpServer.bind(5353, '${BACKEND}', r));
const u = dgram.createSocket('udp4');
const got = new Promise((r) => u.once('message', (m, rinfo) => r(rinfo.address + ':' + rinfo.port)));
u.send('q', 53, '${FRONTEND}');
out.udpReplyFrom = await got;
const uc = dgram.createSocket('udp4');
await new Promise((r) => uc.connect(53, '${FRONTEND}', r));
out.udpConnectedPeer = uc.remoteAddress().address + ':' + uc.remoteAddress().port;
const got2 = new Promise((r) => uc.once('message', (m, rinfo) => r(rinfo.address + ':' + rinfo.port)));
uc.send('q2');
out.udpConnectedReplyFrom = await got2;
u.close(); uc.close(); udpServer.close();
console.log(JSON.stringify(out));
`;

test('connect, sendto, getpeername and recvfrom through the socket LB', () => {
  addService(dp, { id: 40, address: FRONTEND, port: 80, backends: [{ address: BACKEND, port: 8080 }] });
  addService(dp, { id: 41, address: FRONTEND, port: 53, protocol: IPPROTO.udp, backends: [{ address: BACKEND, port: 5353 }] });
  const script = [
    `echo $$ > ${cgroup}/cgroup.procs`,
    'ip link set lo up',
    `ip addr add ${BACKEND}/32 dev lo`,
    `exec ${process.execPath} --input-type=module -e "$WEIR_CHILD"`,
  ].join(' && ');
  const r = spawnSync('unshare', ['-n', 'sh', '-c', script], { env: { ...process.env, WEIR_CHILD: CHILD }, encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.deepEqual(out, {
    tcpServerSawLocal: `${BACKEND}:8080`,
    tcpPeer: `${FRONTEND}:80`,
    udpReplyFrom: `${FRONTEND}:53`,
    udpConnectedPeer: `${FRONTEND}:53`,
    udpConnectedReplyFrom: `${FRONTEND}:53`,
  });
  const sockCounters = dp.counters().sock ?? {};
  // connect (TCP), sendto (unconnected UDP), connect (UDP): the only translations
  assert.equal(sockCounters.sock_lb_translated, 3);
  // getpeername x2 and recvfrom x2 at least; libuv may call getpeername more often
  assert.ok((sockCounters.sock_lb_reverse ?? 0) >= 4, JSON.stringify(sockCounters));
  assert.equal(dp.conntrack.count(), 0, 'socket LB needs no conntrack');
  // each translation is one new connection to its backend (weir_lb_stats4)
  const stats = BpfMap.openPinned(`${dp.bpffs.path}/weir_lb_stats4`);
  try {
    assert.equal(
      readLbStats(stats).reduce((n, r) => n + Number(r.newConnections), 0),
      3,
    );
  } finally {
    stats.close();
  }
});

test('the iterator program loads with the bpf_sock_destroy kfunc', () => {
  // running it (iterRun) and what it destroys: test/bpf/sock-destroy.test.ts
  assert.equal(sock.program('weir_sock_destroy').info().type, 'tracing');
});
