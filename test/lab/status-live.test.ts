// `weir status` against a live `weir daemon` in a lab node (not a stub server): healthy and
// ready with the frontends it programmed and its syncs, exit 0; a frontend deleted behind its
// back shows as one resync repair (a 2 s resync, this test's drift); after SIGTERM one readable
// line and exit 1.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const VIP = '198.19.0.50';
const PORTS: PortSpec[] = [
  { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' },
  { name: 'udp', port: 53, targetPort: 8080, protocol: 'UDP' },
];
const ADDRESS = '127.0.0.1:9745';

interface Status {
  healthy: boolean;
  ready: boolean;
  problems: string[];
  frontends?: number;
  frontendsByFamily?: Record<string, number>;
  syncs?: number;
  repairs?: number;
}

describe('weir status against a live daemon', () => {
  let lab: Lab;
  let node: LabNode;
  let weir: WeirNode;
  const status = async (args: string[] = []) => node.ns.exec(binWeir, ['status', '--address', ADDRESS, ...args], { check: false, timeoutMs: 30_000 });

  before(async () => {
    lab = await Lab.create({ name: 'status-live' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    const be = await lab.pod(node, 'be-a');
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'off', metricsAddress: ADDRESS, resyncInterval: '2s' });
    weir.writeManifest('app.yaml', [
      service({ name: 'app', clusterIP: VIP, ports: PORTS }),
      endpointSlice({ name: 'app-1', service: 'app', ports: PORTS, endpoints: [{ ip: be.ip, node: node.name }] }),
    ]);
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('healthy and ready: the frontends, the syncs, no repairs; exit 0; the table says the same', async () => {
    const r = await status(['-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as Status;
    assert.equal(s.healthy, true);
    assert.equal(s.ready, true);
    assert.deepEqual(s.problems, []);
    assert.equal(s.frontends, 2, 'tcp and udp');
    assert.deepEqual(s.frontendsByFamily, { IPv4: 2, IPv6: 0 }, 'per family, from the entries of weir_frontend4 / weir_frontend6');
    assert.ok((s.syncs ?? 0) >= 1, `syncs ${s.syncs}`);
    // weir_resync_repairs_total has no sample before the first repair: json leaves it out
    assert.equal(s.repairs ?? 0, 0);
    const t = await status();
    assert.equal(t.code, 0, t.stderr);
    assert.match(
      t.stdout,
      // host policy on by default: the node's automatic host endpoint, its default-allow profile (normal in and out)
      /^weir at http:\/\/127\.0\.0\.1:9745: healthy, ready\n {2}frontends programmed: 2 \(IPv4 2, IPv6 0\)\n {2}syncs: \d+, resync repairs: 0\n {2}host policy: 1 host endpoints, 2 rules; XDP: eth0 native\n$/,
    );
  });

  test("a frontend deleted behind the daemon's back: status counts the repair", async () => {
    const fe = typedMap(BpfMap.openPinned(`${weir.pinDir}/weir_frontend4`), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
    try {
      const m = weir.mark();
      assert.ok(fe.delete({ address: VIP, port: 80, protocol: 6, scope: 0 }));
      await weir.waitFor('resync', { repairs: 1 }, 10_000, m);
    } finally {
      fe.map.close();
    }
    const s = JSON.parse((await status(['-o', 'json'])).stdout) as Status;
    assert.equal(s.repairs, 1);
    assert.equal(weir.repairs(), 1, 'the daemon logged the same');
  });

  test('no daemon: one readable line, exit 3 (no weir state)', async () => {
    assert.equal((await weir.terminate()).code, 0);
    const r = await status();
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^weir: no weir daemon answering at http:\/\/127\.0\.0\.1:9745\/(healthz|readyz|metrics): .*/);
    assert.match(r.stderr, /\(is the daemon running on this node\? --address\)\n$/);
    assert.equal(r.stderr.split('\n').length, 2, 'one line');
  });
});
