// test/bpf: the weir_sock_destroy iterator (sock_lb.o, iter/udp + bpf_sock_destroy) run for
// real through the addon's iterRun, the call the daemon makes when a UDP backend leaves: in a
// child's own network namespace, a connected UDP socket to a listed peer is destroyed (the
// application sees ECONNABORTED), a socket connected to another port and an unconnected one
// live on, and the sock_destroyed counter says exactly one.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BpfObject, codecFor, runIterator, type WeirSockDestroy4Key } from '../../src/bpf/index.js';
import { counterTotals, readCounters } from '../../src/dataplane/counters.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { OBJ_DIR } from './service-fixture.js';

const BACKEND = '198.18.2.30';

let bpffs: PrivateBpffs;
let sock: BpfObject;

before(() => {
  bpffs = mountPrivateBpffs('sock-destroy');
  sock = BpfObject.load(join(OBJ_DIR, 'sock_lb.o'), { pinDir: bpffs.path });
});
after(async () => {
  sock?.close();
  await bpffs?.cleanup();
});

// Runs in the child (its own netns): two UDP servers, three client sockets; waits for "go"
// on stdin (the parent has run the iterator meanwhile), then reports what each socket saw.
const CHILD = `
import dgram from 'node:dgram';
const BE = '${BACKEND}';
const echo = async (port) => {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  await new Promise((r) => s.bind(port, BE, r));
  return s;
};
const servers = [await echo(5353), await echo(5354)];
const connected = async (port) => {
  const s = dgram.createSocket('udp4');
  s.errors = [];
  s.on('error', (e) => s.errors.push(e.code));
  await new Promise((r) => s.connect(port, BE, r));
  return s;
};
const roundTrip = (s, send) => new Promise((resolve) => {
  const t = setTimeout(() => resolve('timeout'), 2000);
  s.once('message', (m) => { clearTimeout(t); resolve(m.toString()); });
  send();
});
const listed = await connected(5353);
const other = await connected(5354);
const plain = dgram.createSocket('udp4');
await new Promise((r) => plain.bind(0, r));
const out = { before: await roundTrip(listed, () => listed.send('a')) };
console.log('ready');
process.stdin.once('data', async () => {
  await new Promise((r) => setTimeout(r, 50)); // let the error event of the destroyed socket run
  out.listedErrors = listed.errors;
  out.listedSend = await new Promise((r) => listed.send('b', (e) => r(e ? e.code : 'sent')));
  out.other = await roundTrip(other, () => other.send('c'));
  out.plain = await roundTrip(plain, () => plain.send('d', 5353, BE));
  console.log(JSON.stringify(out));
  process.exit(0);
});
`;

test('iterRun destroys exactly the connected UDP socket to a listed peer, in the namespace it runs in', async () => {
  const script = ['ip link set lo up', `ip addr add ${BACKEND}/32 dev lo`, `exec ${process.execPath} --input-type=module -e "$WEIR_CHILD"`].join(' && ');
  const child = spawn('unshare', ['-n', 'sh', '-c', script], { env: { ...process.env, WEIR_CHILD: CHILD }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    while (!stdout.includes('ready\n')) {
      if (child.exitCode !== null) assert.fail(`child exited early: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const key: WeirSockDestroy4Key = { address: BACKEND, port: 5353, pad: 0 };
    sock.map('weir_sock_destroy4').update(codecFor('weir_sock_destroy4_key').encode(key), Buffer.from([1]));
    const counters = () => counterTotals(readCounters(sock.map('weir_counters'))).sock?.sock_destroyed ?? 0;
    // the iterator walks only the namespace it is created in: first ours (nothing there), then the child's
    runIterator(sock.program('weir_sock_destroy'));
    assert.equal(counters(), 0, 'our own namespace has no socket to that peer');
    runIterator(sock.program('weir_sock_destroy'), `/proc/${child.pid}/ns/net`);
    assert.equal(counters(), 1, 'one socket destroyed');
    child.stdin.write('go\n');
    assert.equal(await exited, 0, stderr);
  } finally {
    clearTimeout(kill);
    child.kill('SIGKILL');
  }
  const out = JSON.parse(stdout.trim().split('\n').at(-1)!);
  assert.equal(out.before, 'a', 'the listed socket worked before');
  assert.deepEqual(out.listedErrors, ['ECONNABORTED'], 'the application saw its socket destroyed');
  assert.notEqual(out.listedSend, 'sent', `a destroyed socket sends nothing (${out.listedSend})`);
  assert.equal(out.other, 'c', 'a socket connected to another port lives on');
  assert.equal(out.plain, 'd', 'an unconnected socket lives on');
});
