// `weir services`, `weir ct list|flush` and `weir affinity list` through the real bin/weir
// against maps the real programs filled: frontends programmed as the reconciler does, flows
// created by from_pod test runs, then read back and flushed by the CLI.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eth } from '../lib/packet.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { addService, IPPROTO, loadServiceDataplane, type ServiceDataplane } from '../bpf/service-fixture.js';

const CLIENT = '198.18.1.10';
const FRONTEND = '198.19.0.10';
const BACKEND = '198.18.2.20';

let dp: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane();
  addService(dp, {
    id: 7,
    address: FRONTEND,
    port: 80,
    backends: [
      { address: BACKEND, port: 8080 },
      { address: '198.18.2.21', port: 8080 },
    ],
  });
  addService(dp, {
    id: 9,
    address: '198.19.0.11',
    port: 53,
    protocol: IPPROTO.udp,
    flags: ['affinity'],
    affinityTimeout: 10800,
    backends: [{ address: '198.18.2.30', port: 5353 }],
  });
  addService(dp, { id: 11, address: '198.19.0.12', port: 443, flags: ['reject'], backends: [] });
});
after(async () => {
  await dp?.close();
});

const weir = (...args: string[]) => {
  const r = runSync(binWeir, [...args, '--pin-dir', dp.bpffs.path], { check: false });
  assert.equal(r.code, 0, `weir ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const syn = (sport: number, dst = FRONTEND, dport = 80) =>
  eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
    .ipv4({ src: CLIENT, dst })
    .tcp({ sport, dport, flags: ['syn'] })
    .build();

test('weir services shows every frontend with its flags and backend slots', () => {
  const rows = JSON.parse(weir('services', '-o', 'json')) as Array<{
    frontend: string;
    protocol: string;
    id: number;
    flags: string[];
    backends: Array<{ address: string; port: number; slot: number }>;
    affinityTimeout: number;
  }>;
  assert.deepEqual(
    rows.map((r) => `${r.frontend}/${r.protocol}`),
    ['198.19.0.10:80/tcp', '198.19.0.11:53/udp', '198.19.0.12:443/tcp'],
  );
  assert.deepEqual(
    rows[0]!.backends.map((b) => `${b.slot}=${b.address}:${b.port}`),
    ['0=198.18.2.20:8080', '1=198.18.2.21:8080'],
  );
  assert.deepEqual(rows[1]!.flags, ['affinity']);
  assert.equal(rows[1]!.affinityTimeout, 10800);
  assert.deepEqual(rows[2]!.flags, ['reject']);
  assert.deepEqual(rows[2]!.backends, []);
  const table = weir('services');
  assert.match(table, /^198\.19\.0\.10:80\/tcp\s+internal\s+7\s+-\s+random\s+198\.18\.2\.20:8080 198\.18\.2\.21:8080\s+0 0$/m);
});

test('weir ct list shows both directions of NAT flows, filtered; ct flush deletes only the matches', () => {
  for (const sport of [40001, 40002, 40003]) assert.equal(dp.run('fromPod', syn(sport)).retval, 0);
  const all = JSON.parse(weir('ct', 'list', '-o', 'json')) as Array<{
    protocol: string;
    source: string;
    destination: string;
    nat: string;
    flags: string[];
    tcp: string;
    packets: number;
  }>;
  assert.equal(all.length, 6, 'an entry per direction per flow');
  const orig = all.find((r) => r.source === `${CLIENT}:40001`)!;
  assert.equal(orig.destination, `${FRONTEND}:80`);
  assert.ok(orig.flags.includes('dnat'));
  assert.match(orig.nat, /^dst→198\.18\.2\.2[01]:8080$/);
  assert.equal(orig.tcp, 'S');
  assert.equal(orig.packets, 1);
  const reply = all.find((r) => r.destination === `${CLIENT}:40001`)!;
  assert.ok(reply.flags.includes('reply'));
  assert.match(reply.nat, /src→198\.19\.0\.10:80/);

  const one = JSON.parse(weir('ct', 'list', '-o', 'json', '--port', '40002')) as unknown[];
  assert.equal(one.length, 2);
  assert.equal((JSON.parse(weir('ct', 'list', '-o', 'json', '--protocol', 'udp')) as unknown[]).length, 0);

  assert.deepEqual(JSON.parse(weir('ct', 'flush', '-o', 'json', '--port', '40002')), [{ deleted: 2 }]);
  assert.equal((JSON.parse(weir('ct', 'list', '-o', 'json')) as unknown[]).length, 4, 'the other flows stay');
  assert.deepEqual(JSON.parse(weir('ct', 'flush', '-o', 'json')), [{ deleted: 4 }]);
  assert.equal(weir('ct', 'list').trim(), '(none)');
});

test('weir affinity list shows the client pinned to its backend', () => {
  const udp = eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
    .ipv4({ src: CLIENT, dst: '198.19.0.11' })
    .udp({ sport: 5000, dport: 53 })
    .payload('q')
    .build();
  assert.equal(dp.run('fromPod', udp).retval, 0);
  const rows = JSON.parse(weir('affinity', 'list', '-o', 'json')) as Array<{ client: string; frontendId: number; backend: string }>;
  assert.deepEqual(
    rows.map(({ client, frontendId, backend }) => ({ client, frontendId, backend })),
    [{ client: CLIENT, frontendId: 9, backend: '198.18.2.30:5353' }],
  );
});

test('bad filters are one readable line and exit 1', () => {
  const r = runSync(binWeir, ['ct', 'list', '--pin-dir', dp.bpffs.path, '--port', 'http'], { check: false });
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), 'weir: --port http: 0..65535');
});
