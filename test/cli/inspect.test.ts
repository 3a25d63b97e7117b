// `weir counters` and `weir maps` against pinned state in a private bpffs, exactly as an
// operator runs them on a node: the real bin/weir, no daemon. Output agrees with the maps;
// errors are one readable line and a non-zero exit.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BpfObject } from '../../src/bpf/index.js';
import { layoutOf } from '../../src/cli/inspect.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { bpfObject, binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { eth } from '../lib/packet.js';

let fs: PrivateBpffs;
let probe: BpfObject;

before(() => {
  fs = mountPrivateBpffs('cli');
  const pinDir = join(fs.path, 'weir', 'node-a');
  mkdirSync(pinDir, { recursive: true });
  probe = BpfObject.load(bpfObject('probe'), { pinDir });
});
after(async () => {
  probe?.close();
  await fs?.cleanup();
});

const weir = (...args: string[]) => runSync(binWeir, args, { check: false });

test('weir counters -o json equals the counters map after a fixture run', () => {
  const counters = probe.map('weir_counters');
  resetCounters(counters);
  const prog = probe.program('weir_probe');
  const packet = eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
    .ipv4({ src: '198.18.0.1', dst: '198.18.0.2' })
    .udp({ sport: 1000, dport: 53 })
    .payload('hello')
    .build();
  for (let i = 0; i < 7; i++) prog.testRun({ data: packet });
  prog.testRun({ data: Buffer.alloc(60) }); // not IP
  const r = weir('counters', '--bpf-root', fs.path, '--instance', 'node-a', '-o', 'json');
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Array<{ hook: string; reason: string; packets: number; bytes: number }>;
  assert.deepEqual(
    rows.find((x) => x.reason === 'parsed_udp'),
    { hook: 'probe', reason: 'parsed_udp', packets: 7, bytes: 7 * packet.length },
  );
  assert.deepEqual(
    rows.find((x) => x.reason === 'not_ip'),
    { hook: 'probe', reason: 'not_ip', packets: 1, bytes: 60 },
  );
  assert.deepEqual(counterTotals(readCounters(counters)), { probe: { parsed_udp: 7, not_ip: 1 } });
  // the table shows the same rows
  const t = weir('counters', '--pin-dir', join(fs.path, 'weir', 'node-a'));
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /^HOOK\s+REASON\s+PACKETS\s+BYTES$/m);
  assert.match(t.stdout, /^probe\s+parsed_udp\s+7\s+\d+$/m);
});

test('weir maps lists the pinned maps with type, fill and capacity', () => {
  const r = weir('maps', '--bpf-root', fs.path, '--instance', 'node-a', '-o', 'json');
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Array<{ name: string; type: string; capacity: number; id: number; layout: number; abi: string }>;
  const c = rows.find((m) => m.name === 'weir_counters');
  assert.ok(c);
  assert.equal(c.type, 'percpu_array');
  assert.deepEqual([c.layout, c.abi], [1, 'current'], "weir_counters: layout 1, this release's");
  assert.equal(c.capacity, probe.map('weir_counters').maxEntries);
  assert.equal(c.id, probe.map('weir_counters').id);
});

test('no state, or a bad option: one readable line and a non-zero exit', () => {
  for (const [code, args] of [
    [3, ['counters', '--bpf-root', fs.path, '--instance', 'nope']],
    [3, ['maps', '--bpf-root', join(fs.path, 'missing')]],
    [1, ['counters', '--bpf-root', fs.path, '--instance', 'node-a', '-o', 'xml']],
  ] as const) {
    const r = weir(...args);
    assert.equal(r.code, code, args.join(' '));
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l && !/^(Usage|Options| {2})/.test(l));
    assert.ok(lines.length >= 1 && !r.stderr.includes('    at '), `no stack trace: ${r.stderr}`);
    assert.match(lines[0]!, /^(weir: |error: )/);
  }
});

test("a pin's layout version and how it stands to this release, from its name", () => {
  assert.deepEqual(layoutOf('weir_ct4_v2'), { layout: 2, abi: 'current' });
  assert.deepEqual(layoutOf('weir_ct4'), { layout: 1, abi: 'older' }, "2e42a8d's conntrack: migrated on the next start");
  assert.deepEqual(layoutOf('weir_ct4_v3'), { layout: 3, abi: 'newer' });
  assert.deepEqual(layoutOf('weir_frontend4'), { layout: 1, abi: 'current' });
  assert.deepEqual(layoutOf('someone_elses'), { layout: 1, abi: 'unknown' });
});
