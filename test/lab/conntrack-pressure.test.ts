// Conntrack under pressure (issue 16, "Maps that fit the cluster"): a client pod sends UDP from
// 20,000 source ports to a ClusterIP while the node's conntrack map holds 4,096 entries (each
// flow takes two): the LRU map overflows ten times over and evicts. New TCP connections through
// a ClusterIP still work (real packets, TC path), and the pressure is visible: the GC pass logs
// `conntrack table near full` with the map, its entries and capacity, and
// weir_map_pressure_ratio{map="weir_ct4_v2"} reads near 1.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const UDP_VIP = '198.19.0.60';
const TCP_VIP = '198.19.0.61';
const UDP_PORTS: PortSpec[] = [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }];
const TCP_PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];
const FLOWS = 20_000;
const CT_SIZE = 4096;

// one datagram from each of FLOWS source ports: FLOWS distinct UDP flows
const FLOOD = `
import socket, sys
n, vip = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('', 20000 + i))
    s.sendto(b'x', (vip, 53))
    s.close()
`;

let lab: Lab;
let node: LabNode;
let be: Pod;
let client: Pod;
let weir: WeirNode;

before(async () => {
  lab = await Lab.create({ name: 'ct-pressure' });
  node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
  be = await lab.pod(node, 'be-a');
  client = await lab.pod(node, 'client');
  await be.ns.echoServer({ name: 'be-a', port: 8080 });
  weir = await WeirNode.create(lab, node, {
    connectTimeLb: 'off',
    metricsAddress: '127.0.0.1:9745',
    extraArgs: ['--ct-map-size', String(CT_SIZE), '--ct-gc-interval', '1s'],
  });
  weir.writeManifest('svc.yaml', [
    service({ name: 'dns', clusterIP: UDP_VIP, ports: UDP_PORTS }),
    endpointSlice({ name: 'dns-1', service: 'dns', ports: UDP_PORTS, endpoints: [{ ip: be.ip, node: 'node1' }] }),
    service({ name: 'web', clusterIP: TCP_VIP, ports: TCP_PORTS }),
    endpointSlice({ name: 'web-1', service: 'web', ports: TCP_PORTS, endpoints: [{ ip: be.ip, node: 'node1' }] }),
  ]);
  await weir.start(60_000);
});
after(async () => {
  await lab?.destroy();
  await runCleanups();
});

test(`${FLOWS} UDP flows into a ${CT_SIZE}-entry conntrack map: new TCP connections work, the pressure is logged and exported`, async () => {
  const mark = weir.mark();
  const t0 = performance.now();
  const flood = await client.ns.exec('python3', ['-c', FLOOD, String(FLOWS), UDP_VIP], { timeoutMs: 120_000 });
  assert.equal(flood.code, 0, flood.stderr);
  console.log(`# ${FLOWS} UDP flows sent in ${Math.round(performance.now() - t0)} ms`);

  // new TCP connections through the full table
  const r = await weir.spread(client.ns, TCP_VIP, 80, { count: 50 });
  console.log(`# TCP through the full table: ${r.failures} of 50 failed, servers ${JSON.stringify(r.servers)}`);
  assert.equal(r.failures, 0, r.errors.join('; '));
  assert.deepEqual(Object.keys(r.servers), ['be-a']);

  // the GC pass (every second here) counts the table and says it is near full
  const line = await weir.waitFor('conntrack table near full', { map: 'weir_ct4_v2' }, 20_000, mark);
  console.log(`# ${JSON.stringify(line)}`);
  assert.equal(line.capacity, String(CT_SIZE));
  assert.ok(Number(line.entries) >= 0.9 * CT_SIZE, `entries ${line.entries}`);
  const text = (await weir.http('/metrics')).body;
  const ratio = Number(/^weir_map_pressure_ratio\{map="weir_ct4_v2"\} (\S+)$/m.exec(text)?.[1]);
  console.log(`# weir_map_pressure_ratio{map="weir_ct4_v2"} ${ratio}`);
  assert.ok(ratio >= 0.9, `pressure ratio ${ratio}`);
  assert.equal(weir.events('conntrack gc failed').length, 0);
});
