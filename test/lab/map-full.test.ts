// A full map on a real kernel map (not a FakeMap): weir_frontend4 filled to max_entries by
// hand behind a running `weir daemon`; a new Service cannot be written (E2BIG): weir names it,
// counts it in weir_map_write_failures_total, /readyz says the map is full while /healthz stays
// 200 (a restart would not empty the map), it keeps running and the services already programmed
// keep serving; once there is room, the next sync writes the new Service and /readyz is 200 again.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const APP = '198.19.0.60';
const LATE = '198.19.0.61';
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];

describe('weir_frontend4 full (E2BIG) on a real map', () => {
  let lab: Lab;
  let node: LabNode;
  let be: Pod;
  let client: Pod;
  let weir: WeirNode;
  /** the junk keys written by hand, to make room again */
  let junk: Buffer[] = [];

  const svc = (name: string, ip: string) => [
    service({ name, clusterIP: ip, ports: PORTS }),
    endpointSlice({ name: `${name}-1`, service: name, ports: PORTS, endpoints: [{ ip: be.ip, node: node.name }] }),
  ];
  const FAILURES = /^weir_map_write_failures_total\{map="weir_frontend4",error="E2BIG"\} (\d+)/m;
  const failures = async () => Number(FAILURES.exec((await weir.http('/metrics')).body)?.[1] ?? 0);

  before(async () => {
    lab = await Lab.create({ name: 'map-full' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    be = await lab.pod(node, 'be-a');
    client = await lab.pod(node, 'client');
    await be.ns.echoServer({ name: 'be-a', port: 8080 });
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'off', metricsAddress: '127.0.0.1:9745' });
    weir.configure({ extraArgs: ['--frontend-map-size', '1024'] }); // a small map fills fast
    weir.writeManifest('app.yaml', svc('app', APP));
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('full: the new Service is refused, logged, counted and reported; weir runs on; the old one serves', async () => {
    const fe = BpfMap.openPinned(`${weir.pinDir}/weir_frontend4`);
    try {
      const kc = codecFor('weir_frontend4_key');
      const vc = codecFor('weir_frontend4');
      const room = fe.maxEntries - [...fe.entries()].length;
      // frontends no Service has (198.19.128.0/17, ports 1 and 2), each pointing at nothing
      const key = (i: number) => kc.encode({ address: `198.19.${128 + ((i >> 8) & 127)}.${i & 255}`, port: 1 + (i >> 15), protocol: 6, scope: 0 });
      const nothing = vc.encode({ id: 0, backend_count: 0, flags: 0, affinity_timeout: 0, pad: 0 });
      junk = Array.from({ length: room }, (_, i) => key(i));
      assert.equal(
        fe.updateBatch(
          junk,
          junk.map(() => nothing),
        ),
        room,
      );
      assert.throws(
        () => fe.update(key(room), nothing),
        (e: { code?: string }) => e.code === 'E2BIG',
        'the map is full',
      );
    } finally {
      fe.close();
    }
    const f0 = await failures();
    const line = await weir.apply('late.yaml', svc('late', LATE));
    console.log(`# sync on a full map: ${JSON.stringify(line)}`);
    await weir.waitFor('services not programmed', { names: 'default/late' }, 5000);
    assert.ok((await failures()) > f0, 'weir_map_write_failures_total{map="weir_frontend4",error="E2BIG"} counted it');
    const h = await weir.http('/readyz');
    assert.equal(h.status, 503);
    assert.match(h.body, /^not ready: dataplane cannot be programmed: .*weir_frontend4 update: E2BIG, map full/);
    assert.equal((await weir.http('/healthz')).status, 200, 'liveness: a restart does not empty a full map');
    assert.ok(weir.process!.running, 'weir runs on');
    const r = await weir.spread(client.ns, APP, 80, { count: 10 });
    assert.equal(r.failures, 0, `the service programmed before still serves: ${r.errors.join('; ')}`);
  });

  test('room again: the next sync writes the new Service; /readyz 200', async () => {
    const fe = BpfMap.openPinned(`${weir.pinDir}/weir_frontend4`);
    try {
      assert.equal(fe.deleteBatch(junk), junk.length);
    } finally {
      fe.close();
    }
    // any change is a sync; the failed entry is retried with it
    await weir.apply('other.yaml', svc('other', '198.19.0.62'));
    const r = await weir.spread(client.ns, LATE, 80, { count: 10 });
    assert.equal(r.failures, 0, `the Service refused before works now: ${r.errors.join('; ')}`);
    assert.equal((await weir.http('/readyz')).status, 200);
  });
});
