// Socket LB for AF_INET6 sockets on real sockets (issue 14): sock_lb.o alone in a private bpffs,
// its eight cgroup programs on a private cgroup, a child in that cgroup and in its own network
// namespace (the backends on its loopback) dials an IPv6 frontend and, through a dual-stack
// socket, an IPv4 one v4-mapped (::ffff:a.b.c.d). connect()/sendto() reach the backend,
// getpeername() and recvfrom() show the frontend, in the family the application dialled.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { attachCgroup, BpfObject, codecFor, netnsCookie, typedMap, withNetns, type BpfLink, type BpfMap } from '../../src/bpf/index.js';
import { counterTotals, readCounters } from '../../src/dataplane/counters.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { onCleanup } from '../lib/cleanup.js';
import { findCgroup2Mount } from '../lib/lab.js';
import { frontendFlag, IPPROTO, OBJ_DIR } from './service-fixture.js';

const FRONTEND6 = '2001:2:ff::10';
const BACKEND6 = '2001:2:2::20';
const FRONTEND4 = '198.19.0.10';
const BACKEND4 = '198.18.2.20';
const CGROUP_ROOT = findCgroup2Mount()!;
const PROGRAMS = ['connect', 'sendmsg', 'recvmsg', 'getpeername'].flatMap((h) => [`weir_sock_${h}4`, `weir_sock_${h}6`]);

let bpffs: PrivateBpffs;
let sock: BpfObject;
/** a second load of sock_lb.o (same pinned maps) that takes a named netns for the host's */
let hostSock: BpfObject | undefined;
let cgroup: string;
const links: BpfLink[] = [];

before(() => {
  bpffs = mountPrivateBpffs('sock6');
  sock = BpfObject.load(join(OBJ_DIR, 'sock_lb.o'), { pinDir: bpffs.path });
  cgroup = join(CGROUP_ROOT, `weir-sock6-test-${process.pid}`);
  mkdirSync(cgroup);
  onCleanup(`remove cgroup ${cgroup}`, () => rmdirSync(cgroup));
  for (const name of PROGRAMS) links.push(attachCgroup(sock.program(name), cgroup));
});
after(async () => {
  for (const l of links) l.detach();
  sock?.close();
  hostSock?.close();
  await bpffs?.cleanup();
  try {
    rmdirSync(cgroup);
  } catch {
    /* the cleanup step runs it again at exit */
  }
});

interface Frontend {
  id: number;
  address: string;
  port: number;
  protocol: number;
  /** frontend flag names (weir_frontend_flags: reject, affinity, ...) */
  flags?: string[];
  backends: { address: string; port: number }[];
}

/** One frontend and its slots in weir_frontend6/backend6 (weir_frontend4/backend4 for an IPv4 address), as the reconciler writes them. */
function addFrontend(f: Frontend): void {
  const flags = (f.flags ?? []).reduce((bits, name) => bits | frontendFlag[name]!, 0);
  const value = { id: f.id, backend_count: f.backends.length, flags, affinity_timeout: 60, pad: 0 };
  const key = { address: f.address, port: f.port, protocol: f.protocol, scope: 0 };
  if (f.address.includes(':')) {
    const backends = typedMap(sock.map('weir_backend6'), codecFor('weir_backend6_key'), codecFor('weir_backend6'));
    f.backends.forEach((b, slot) => backends.set({ frontend_id: f.id, slot }, { ...b, flags: 0, pad: 0 }));
    typedMap(sock.map('weir_frontend6'), codecFor('weir_frontend6_key'), codecFor('weir_frontend6')).set(key, value);
  } else {
    const backends = typedMap(sock.map('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4'));
    f.backends.forEach((b, slot) => backends.set({ frontend_id: f.id, slot }, { ...b, flags: 0, pad: 0 }));
    typedMap(sock.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4')).set(key, value);
  }
}

/** weir_lb_stats4/6 as "frontend_id backend:port" -> new connections (summed over CPUs). */
function lbStats(name: 'weir_lb_stats4' | 'weir_lb_stats6'): Record<string, number> {
  const map: BpfMap = sock.map(name);
  const codec = codecFor(`${name}_key`);
  const out: Record<string, number> = {};
  for (const [k, v] of map.lookupBatch()) {
    const key = codec.decode(k);
    let n = 0;
    for (const cpu of map.splitPerCpu(v)) n += Number(cpu.readBigUInt64LE(0));
    out[`${key.frontend_id} ${key.backend}:${key.port}`] = n;
  }
  return out;
}

const sockCounters = () => counterTotals(readCounters(sock.map('weir_counters'))).sock ?? {};

// Runs in the child: TCP and UDP backends of both families, then the clients; prints what each saw.
const CHILD = `
import net from 'node:net';
import dgram from 'node:dgram';
const FE6 = '${FRONTEND6}', BE6 = '${BACKEND6}', MAPPED = '::ffff:${FRONTEND4}', BE4 = '${BACKEND4}';
const out = { tcpServerSaw: [] };
const tcpServer = async (host) => {
  const s = net.createServer((c) => { out.tcpServerSaw.push(c.localAddress + ':' + c.localPort); c.end('hi'); });
  await new Promise((r) => s.listen({ port: 8080, host, ipv6Only: host.includes(':') }, r));
  return s;
};
const servers = [await tcpServer(BE6), await tcpServer(BE4)];
const dial = async (host, port = 80) => {
  const c = net.connect(port, host);
  const err = await new Promise((r) => { c.on('connect', () => r(null)); c.on('error', (e) => r(e.code)); });
  if (err) return err;
  const peer = '[' + c.remoteAddress + ']:' + c.remotePort;
  await new Promise((r) => c.on('end', r).resume());
  return peer;
};
out.tcp6Peer = await dial(FE6);
out.tcpMappedPeer = await dial(MAPPED);
// frontends the socket LB leaves to the TC path (there is none here: no route, ENETUNREACH)
out.leftAlone = { empty: await dial(FE6, 81), reject: await dial(FE6, 82), affinityInPodNetns: await dial(FE6, 83), mappedEmpty: await dial(MAPPED, 81) };
for (const s of servers) s.close();

const echo = async (type, host) => {
  const s = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  await new Promise((r) => s.bind(5353, host, r));
  return s;
};
const echoes = [await echo('udp6', BE6), await echo('udp4', BE4)];
const replyFrom = (s, send) => new Promise((resolve) => {
  const t = setTimeout(() => resolve('timeout'), 2000);
  s.once('message', (m, r) => { clearTimeout(t); resolve('[' + r.address + ']:' + r.port); });
  send();
});
const peerOf = (s) => '[' + s.remoteAddress().address + ']:' + s.remoteAddress().port;
// dual-stack (ipv6Only false) AF_INET6 sockets throughout
const unconnected = async (host) => {
  const s = dgram.createSocket('udp6');
  const r = await replyFrom(s, () => s.send('q', 53, host));
  s.close();
  return r;
};
const connected = async (host) => {
  const s = dgram.createSocket('udp6');
  await new Promise((r) => s.connect(53, host, r));
  const r = { peer: peerOf(s), replyFrom: await replyFrom(s, () => s.send('q')) };
  s.close();
  return r;
};
out.udp6 = { sendtoReplyFrom: await unconnected(FE6), connected: await connected(FE6) };
out.udpMapped = { sendtoReplyFrom: await unconnected(MAPPED), connected: await connected(MAPPED) };
for (const s of echoes) s.close();
console.log(JSON.stringify(out));
`;

test('AF_INET6 sockets: IPv6 frontends and v4-mapped IPv4 ones through connect, sendto, getpeername and recvfrom', () => {
  addFrontend({ id: 60, address: FRONTEND6, port: 80, protocol: IPPROTO.tcp, backends: [{ address: BACKEND6, port: 8080 }] });
  addFrontend({ id: 61, address: FRONTEND6, port: 53, protocol: IPPROTO.udp, backends: [{ address: BACKEND6, port: 5353 }] });
  // left to from_pod6 (the same rule as IPv4's): no backend, REJECT, affinity outside the host netns
  addFrontend({ id: 62, address: FRONTEND6, port: 81, protocol: IPPROTO.tcp, backends: [] });
  addFrontend({ id: 63, address: FRONTEND6, port: 82, protocol: IPPROTO.tcp, flags: ['reject'], backends: [{ address: BACKEND6, port: 8080 }] });
  addFrontend({ id: 64, address: FRONTEND6, port: 83, protocol: IPPROTO.tcp, flags: ['affinity'], backends: [{ address: BACKEND6, port: 8080 }] });
  addFrontend({ id: 42, address: FRONTEND4, port: 81, protocol: IPPROTO.tcp, backends: [] });
  addFrontend({ id: 40, address: FRONTEND4, port: 80, protocol: IPPROTO.tcp, backends: [{ address: BACKEND4, port: 8080 }] });
  addFrontend({ id: 41, address: FRONTEND4, port: 53, protocol: IPPROTO.udp, backends: [{ address: BACKEND4, port: 5353 }] });
  const script = [
    `echo $$ > ${cgroup}/cgroup.procs`,
    'ip link set lo up',
    `ip addr add ${BACKEND4}/32 dev lo`,
    `ip -6 addr add ${BACKEND6}/128 dev lo nodad`,
    `exec ${process.execPath} --input-type=module -e "$WEIR_CHILD"`,
  ].join(' && ');
  const r = spawnSync('unshare', ['-n', 'sh', '-c', script], { env: { ...process.env, WEIR_CHILD: CHILD }, encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  console.log(JSON.stringify(out), JSON.stringify(sockCounters()));
  assert.deepEqual(out, {
    // the backends saw the connections (in order: the IPv6 one, the v4-mapped one)
    tcpServerSaw: [`${BACKEND6}:8080`, `${BACKEND4}:8080`],
    tcp6Peer: `[${FRONTEND6}]:80`,
    tcpMappedPeer: `[::ffff:${FRONTEND4}]:80`,
    leftAlone: { empty: 'ENETUNREACH', reject: 'ENETUNREACH', affinityInPodNetns: 'ENETUNREACH', mappedEmpty: 'ENETUNREACH' },
    udp6: { sendtoReplyFrom: `[${FRONTEND6}]:53`, connected: { peer: `[${FRONTEND6}]:53`, replyFrom: `[${FRONTEND6}]:53` } },
    udpMapped: {
      sendtoReplyFrom: `[::ffff:${FRONTEND4}]:53`,
      connected: { peer: `[::ffff:${FRONTEND4}]:53`, replyFrom: `[::ffff:${FRONTEND4}]:53` },
    },
  });
  const counters = sockCounters();
  // per family: TCP connect, UDP sendto, UDP connect; the frontends left alone are not translated
  assert.equal(counters.sock_lb_translated, 6, JSON.stringify(counters));
  assert.ok((counters.sock_lb_reverse ?? 0) >= 8, JSON.stringify(counters));
  // each translation is one new connection of its service's family
  assert.deepEqual(lbStats('weir_lb_stats6'), { [`60 ${BACKEND6}:8080`]: 1, [`61 ${BACKEND6}:5353`]: 2 });
  assert.deepEqual(lbStats('weir_lb_stats4'), { [`40 ${BACKEND4}:8080`]: 1, [`41 ${BACKEND4}:5353`]: 2 });
  // the reverse entries: IPv6 services in weir_sock_rev6, v4-mapped dials in weir_sock_rev4
  const rev6 = typedMap(sock.map('weir_sock_rev6'), codecFor('weir_sock_rev6_key'), codecFor('weir_sock_rev6'));
  assert.deepEqual(new Set([...rev6.entries()].map(([, v]) => `[${v.address}]:${v.port}`)), new Set([`[${FRONTEND6}]:80`, `[${FRONTEND6}]:53`]));
  assert.equal(rev6.count(), 3);
  assert.equal(sock.map('weir_sock_rev4').count(), 3);
});

test('in the host netns: an IPv6 affinity frontend is balanced by the socket LB with client ::, every connect to the remembered backend', () => {
  // the child's netns stands for the host: a named one, whose cookie the second load is given
  const ns = `weir-sock6-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  onCleanup(`delete netns ${ns}`, () => void execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }));
  const cookie = withNetns(`/run/netns/${ns}`, () => netnsCookie());
  for (const l of links.splice(0)) l.detach();
  hostSock = BpfObject.load(join(OBJ_DIR, 'sock_lb.o'), { pinDir: bpffs.path, consts: { host_netns_cookie: cookie } });
  for (const name of PROGRAMS) links.push(attachCgroup(hostSock.program(name), cgroup));
  const other = '2001:2:2::21';
  addFrontend({
    id: 65,
    address: FRONTEND6,
    port: 84,
    protocol: IPPROTO.tcp,
    flags: ['affinity'],
    backends: [
      { address: BACKEND6, port: 8080 },
      { address: other, port: 8080 },
    ],
  });
  const child = `
import net from 'node:net';
const seen = {};
const servers = [];
for (const host of ['${BACKEND6}', '${other}']) {
  const s = net.createServer((c) => { seen[c.localAddress] = (seen[c.localAddress] ?? 0) + 1; c.end(); });
  await new Promise((r) => s.listen({ port: 8080, host, ipv6Only: true }, r));
  servers.push(s);
}
for (let i = 0; i < 20; i++) {
  const c = net.connect(84, '${FRONTEND6}');
  await new Promise((r, j) => { c.on('connect', r); c.on('error', j); });
  await new Promise((r) => c.on('close', r).resume());
}
for (const s of servers) s.close();
console.log(JSON.stringify(seen));
`;
  const translated0 = sockCounters().sock_lb_translated ?? 0;
  const script = [
    `echo $$ > ${cgroup}/cgroup.procs`,
    'ip link set lo up',
    `ip -6 addr add ${BACKEND6}/128 dev lo nodad`,
    `ip -6 addr add ${other}/128 dev lo nodad`,
    `exec ${process.execPath} --input-type=module -e "$WEIR_CHILD"`,
  ].join(' && ');
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, 'sh', '-c', script], {
    env: { ...process.env, WEIR_CHILD: child },
    encoding: 'utf8',
    timeout: 30000,
  });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const seen = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
  console.log(JSON.stringify(seen));
  assert.equal(Object.keys(seen).length, 1, `one backend for every connect: ${JSON.stringify(seen)}`);
  assert.equal(Object.values(seen)[0], 20);
  assert.equal((sockCounters().sock_lb_translated ?? 0) - translated0, 20, 'the socket LB translated them (the host netns serves affinity)');
  const affinity = typedMap(sock.map('weir_affinity6'), codecFor('weir_affinity6_key'), codecFor('weir_affinity6'));
  assert.deepEqual(
    [...affinity.entries()].map(([k, v]) => [k.client, k.frontend_id, v.backend]),
    [['::', 65, Object.keys(seen)[0]]],
    'one affinity entry, keyed by the host client ::',
  );
});
