// Dual-stack Services through `weir daemon` before the IPv6 maps exist (issue 11: one planner
// over both families, issue 14 adds the IPv6 maps). The IPv6 frontend is planned with the
// IPv4 one but not applied: the IPv4 ClusterIP carries real connections, only IPv4 entries
// reach weir_frontend4, the sync line counts `skipped=ipv6`, the id the IPv6 frontend was
// planned with goes back (the next frontend gets id 2), and a restart adopts with zero writes.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap, type WeirFrontend4, type WeirFrontend4Key } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const VIP4 = '198.19.0.30';
const VIP6 = '2001:2:ff::30';
const OTHER_VIP = '198.19.0.31';
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];

/** What weir_frontend4 holds: address -> frontend id. */
function frontendIds(pinDir: string): Map<string, number> {
  const m = BpfMap.openPinned(`${pinDir}/weir_frontend4`);
  try {
    const typed = typedMap(m, codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
    return new Map([...(typed.entries() as Iterable<[WeirFrontend4Key, WeirFrontend4]>)].map(([k, v]) => [k.address, v.id]));
  } finally {
    m.close();
  }
}

describe('dual-stack Services before the IPv6 maps', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let weir: WeirNode;

  before(async () => {
    lab = await Lab.create({ name: 'svc-dualstack' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
    client = await lab.pod(node, 'client');
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'off' });
    const svc = service({ name: 'web', clusterIP: VIP4, ports: PORTS }) as { spec: Record<string, unknown> };
    svc.spec.clusterIPs = [VIP4, VIP6];
    svc.spec.ipFamilies = ['IPv4', 'IPv6'];
    svc.spec.ipFamilyPolicy = 'RequireDualStack';
    const v4 = endpointSlice({ name: 'web-v4', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) });
    // the pods have no IPv6 addresses: these endpoints are planned, never dialled
    const v6Endpoints = ['2001:2:1::a', '2001:2:1::b'].map((ip) => ({ ip, node: node.name }));
    const v6 = endpointSlice({ name: 'web-v6', service: 'web', ports: PORTS, endpoints: v6Endpoints });
    (v6 as { addressType: string }).addressType = 'IPv6';
    weir.writeManifest('web.yaml', [svc, v4, v6]);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('the IPv4 frontend is written and carries connections; the IPv6 one is planned, counted as skipped, not written', async () => {
    const ready = await weir.start();
    assert.equal(ready.frontends, '1', 'only the IPv4 frontend is in the maps');
    const sync = weir.events('sync')[0]!;
    assert.equal(sync.reason, 'start');
    assert.equal(sync.skipped, 'ipv6:1');
    assert.deepEqual([...frontendIds(weir.pinDir)], [[VIP4, 1]]);
    const r = await weir.spread(client.ns, VIP4, 80, { count: 60 });
    assert.equal(r.failures, 0, r.errors.join('; '));
    assert.deepEqual(Object.keys(r.servers).sort(), backends.map((b) => b.name).sort(), JSON.stringify(r.servers));
  });

  test('the id planned for the IPv6 frontend went back: the next IPv4 frontend gets id 2; a restart writes nothing', async () => {
    await weir.apply('other.yaml', [
      service({ name: 'other', clusterIP: OTHER_VIP, ports: PORTS }),
      endpointSlice({ name: 'other-1', service: 'other', ports: PORTS, endpoints: [{ ip: backends[0]!.ip, node: node.name }] }),
    ]);
    assert.deepEqual([...frontendIds(weir.pinDir)].sort(), [
      [VIP4, 1],
      [OTHER_VIP, 2],
    ]);
    await weir.terminate();
    const ready = await weir.start();
    assert.equal(ready.writes, '0', 'adopted: the unapplied IPv6 frontends are no difference');
    assert.deepEqual([...frontendIds(weir.pinDir)].sort(), [
      [VIP4, 1],
      [OTHER_VIP, 2],
    ]);
  });
});
