// weir_nodes4 / weir_tunnel4 on a live lab node (issue 12): weir on node1 reads Node objects
// and EndpointSlices from its manifests dir; `weir nodes -o json` (the real bin/weir in the
// node's netns) lists node2 as a peer with its pod CIDR and the endpoint outside it, follows an
// endpoint moving and node2 leaving, and a restart over the pins writes nothing. node2 is dual-stack:
// its IPv6 InternalIP is a peer too, its IPv6 pod CIDR goes over the IPv4 underlay (--tunnel-underlay ipv4).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, node, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: 8080 }];
/** an endpoint of node2 outside its pod CIDR (a hostNetwork-like or re-IPed pod) */
const STRAY = '198.18.9.7';

describe('node maps on a live node', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let be2: Pod;
  let weir: WeirNode;

  const cli = () => weir.cli('nodes');
  /** node2 as `weir nodes` lists it: its IPv4 address carries both pod CIDRs (the IPv6 one over the IPv4 underlay) */
  const peer4 = (endpoints: string[]) => ({
    address: node2.address,
    endpoints,
    family: 'IPv4',
    flags: ['peer'],
    podCIDRs: ['198.18.2.0/24', '2001:2:0:2::/64'],
  });
  const peer6 = { address: '2001:2::2', endpoints: [], family: 'IPv6', flags: ['peer'], podCIDRs: [] };
  const nodes = (withNode2: boolean) => [
    node({ name: 'node1', internalIP: node1.address, podCIDRs: ['198.18.1.0/24'], zone: 'zone-a' }),
    ...(withNode2 ? [node({ name: 'node2', internalIP: [node2.address, '2001:2::2'], podCIDRs: ['198.18.2.0/24', '2001:2:0:2::/64'], zone: 'zone-b' })] : []),
  ];
  const web = (endpoints: { ip: string; node: string }[]) => [
    service({ name: 'web', clusterIP: '198.19.0.70', ports: PORTS }),
    endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints }),
  ];

  before(async () => {
    lab = await Lab.create({ name: 'node-maps' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
    be2 = await lab.pod(node2, 'be-b');
    weir = await WeirNode.create(lab, node1, { connectTimeLb: 'off', metricsAddress: '127.0.0.1:9745' });
    weir.writeManifest('nodes.yaml', nodes(true));
    weir.writeManifest(
      'web.yaml',
      web([
        { ip: be2.ip, node: 'node2' },
        { ip: STRAY, node: 'node2' },
      ]),
    );
    await weir.start();
  });
  after(async () => {
    await runCleanups();
    await lab?.destroy();
  });

  test('node2 is a peer in both families, its pod CIDRs and the endpoint outside them go to it; this node is not listed', async () => {
    const start = await weir.waitFor('node maps', { reason: 'start' });
    console.log(`start: ${JSON.stringify(start)}`);
    // dual stack: node2's IPv6 pod CIDR is tunnelled too (over the IPv4 underlay, the default), and
    // its IPv6 InternalIP is a peer whose tunnel packets are accepted (weir_nodes6)
    assert.equal(start.skipped, undefined);
    assert.deepEqual([start.peers, start.prefixes, start.writes], ['2', '3', '5']);
    assert.deepEqual(cli(), { nodes: [peer4([STRAY]), peer6], orphanPrefixes: [] });
    // the writes are counted per map, as the service maps' are
    const metrics = (await weir.http('/metrics')).body;
    assert.match(metrics, /^weir_map_writes_total\{map="weir_nodes4",op="update"\} 1$/m);
    assert.match(metrics, /^weir_map_writes_total\{map="weir_tunnel4",op="update"\} 2$/m);
  });

  test('the stray endpoint moves into the pod CIDR, then node2 leaves: the maps follow', async () => {
    let mark = weir.mark();
    weir.writeManifest('web.yaml', web([{ ip: be2.ip, node: 'node2' }]));
    const moved = await weir.waitFor('node maps', { reason: 'change' }, 10_000, mark);
    assert.equal(moved.writes, '1');
    assert.deepEqual(cli(), { nodes: [peer4([]), peer6], orphanPrefixes: [] });
    mark = weir.mark();
    weir.writeManifest('nodes.yaml', nodes(false));
    const left = await weir.waitFor('node maps', { reason: 'change' }, 10_000, mark);
    assert.equal(left.writes, '4', 'both families: the peer and the pod CIDR of each');
    assert.deepEqual(cli(), { nodes: [], orphanPrefixes: [] });
  });

  test('a restart (kill -9) over the same objects adopts the maps and writes nothing', async () => {
    const mark = weir.mark();
    weir.writeManifest('nodes.yaml', nodes(true));
    await weir.waitFor('node maps', { reason: 'change', writes: 4 }, 10_000, mark);
    await weir.kill9();
    await weir.start();
    const start = await weir.waitFor('node maps', { reason: 'start' });
    assert.deepEqual([start.adoptedPeers, start.adoptedPrefixes, start.writes, start.errors], ['2', '2', '0', '0']);
    assert.deepEqual(cli(), { nodes: [peer4([]), peer6], orphanPrefixes: [] });
  });
});
