// test/bpf: the weir_sock_destroy iterator (sock_lb.o, iter/udp + bpf_sock_destroy) over UDP
// sockets of both families (issue 14), run through the addon's iterRun in a child's own
// network namespace: with a removed IPv6 backend in weir_sock_destroy6 and a removed IPv4 one
// in weir_sock_destroy4, the connected sockets to them are destroyed — an AF_INET6 socket to
// the IPv6 peer, an AF_INET one and a dual-stack AF_INET6 one (v4-mapped) to the IPv4 peer —
// while sockets connected to another port, and an unconnected one, live on.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BpfObject, codecFor, runIterator } from '../../src/bpf/index.js';
import { counterTotals, readCounters } from '../../src/dataplane/counters.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { OBJ_DIR } from './service-fixture.js';

const BACKEND6 = '2001:2:2::30';
const BACKEND4 = '198.18.2.30';

let bpffs: PrivateBpffs;
let sock: BpfObject;

before(() => {
  bpffs = mountPrivateBpffs('sock6-destroy');
  sock = BpfObject.load(join(OBJ_DIR, 'sock_lb.o'), { pinDir: bpffs.path });
});
after(async () => {
  sock?.close();
  await bpffs?.cleanup();
});

// Runs in the child (its own netns): echo servers on both backends' ports 5353 and 5354, the
// client sockets; waits for "go" on stdin (the parent has run the iterator meanwhile), then
// reports what each socket saw.
const CHILD = `
import dgram from 'node:dgram';
const BE6 = '${BACKEND6}', BE4 = '${BACKEND4}';
const servers = [];
for (const [type, host] of [['udp6', BE6], ['udp4', BE4]]) for (const port of [5353, 5354]) {
  const s = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  await new Promise((r) => s.bind(port, host, r));
  servers.push(s);
}
const connected = async (type, host, port) => {
  const s = dgram.createSocket(type);
  s.errors = [];
  s.on('error', (e) => s.errors.push(e.code));
  await new Promise((r) => s.connect(port, host, r));
  return s;
};
const roundTrip = (s, send) => new Promise((resolve) => {
  const t = setTimeout(() => resolve('timeout'), 2000);
  s.once('message', (m) => { clearTimeout(t); resolve(m.toString()); });
  send();
});
const socks = {
  listed6: await connected('udp6', BE6, 5353),
  listed4: await connected('udp4', BE4, 5353),
  listedMapped: await connected('udp6', '::ffff:' + BE4, 5353),
  other6: await connected('udp6', BE6, 5354),
  otherMapped: await connected('udp6', '::ffff:' + BE4, 5354),
};
const out = { before: {}, errors: {}, after: {} };
for (const [name, s] of Object.entries(socks)) out.before[name] = await roundTrip(s, () => s.send(name));
const plain = dgram.createSocket('udp6');
await new Promise((r) => plain.bind(0, r));
console.log('ready');
process.stdin.once('data', async () => {
  await new Promise((r) => setTimeout(r, 50)); // let the error events of the destroyed sockets run
  for (const [name, s] of Object.entries(socks)) {
    out.errors[name] = s.errors;
    out.after[name] = await new Promise((r) => s.send(name, (e) => (e ? r(e.code) : roundTrip(s, () => {}).then(r))));
  }
  out.plain = await roundTrip(plain, () => plain.send('plain', 5353, BE6));
  console.log(JSON.stringify(out));
  process.exit(0);
});
`;

test('iterRun destroys the connected UDP sockets of both families to listed peers (v4-mapped ones by the IPv4 list)', async () => {
  const script = [
    'ip link set lo up',
    `ip addr add ${BACKEND4}/32 dev lo`,
    `ip -6 addr add ${BACKEND6}/128 dev lo nodad`,
    `exec ${process.execPath} --input-type=module -e "$WEIR_CHILD"`,
  ].join(' && ');
  const child = spawn('unshare', ['-n', 'sh', '-c', script], { env: { ...process.env, WEIR_CHILD: CHILD }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    while (!stdout.includes('ready\n')) {
      if (child.exitCode !== null) assert.fail(`child exited early: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    sock.map('weir_sock_destroy6').update(codecFor('weir_sock_destroy6_key').encode({ address: BACKEND6, port: 5353, pad: 0 }), Buffer.from([1]));
    sock.map('weir_sock_destroy4').update(codecFor('weir_sock_destroy4_key').encode({ address: BACKEND4, port: 5353, pad: 0 }), Buffer.from([1]));
    const destroyed = () => counterTotals(readCounters(sock.map('weir_counters'))).sock?.sock_destroyed ?? 0;
    runIterator(sock.program('weir_sock_destroy'));
    assert.equal(destroyed(), 0, 'our own namespace has no socket to those peers');
    runIterator(sock.program('weir_sock_destroy'), `/proc/${child.pid}/ns/net`);
    assert.equal(destroyed(), 3, 'the IPv6, the IPv4 and the v4-mapped socket to the listed peers');
    child.stdin.write('go\n');
    assert.equal(await exited, 0, stderr);
  } finally {
    clearTimeout(kill);
    child.kill('SIGKILL');
  }
  const out = JSON.parse(stdout.trim().split('\n').at(-1)!);
  console.log(JSON.stringify(out));
  const names = ['listed6', 'listed4', 'listedMapped', 'other6', 'otherMapped'];
  assert.deepEqual(out.before, Object.fromEntries(names.map((n) => [n, n])), 'every socket worked before');
  const listed = ['listed6', 'listed4', 'listedMapped'];
  for (const n of listed) {
    assert.deepEqual(out.errors[n], ['ECONNABORTED'], `${n}: the application saw its socket destroyed`);
    assert.notEqual(out.after[n], n, `${n}: a destroyed socket gets no more replies`);
  }
  assert.deepEqual(out.errors.other6, [], 'a socket connected to another port lives on');
  assert.equal(out.after.other6, 'other6');
  assert.equal(out.after.otherMapped, 'otherMapped', 'a v4-mapped socket to another port lives on');
  assert.equal(out.plain, 'plain', 'an unconnected socket lives on');
});
