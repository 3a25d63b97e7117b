// `weir nodes` through the real bin/weir against a private bpffs whose weir_nodes4/6 and
// weir_tunnel4/6 (from_pod.o's and from_pod6.o's pins) were written by the daemon's planner and
// writer from Node objects and endpoint locations, plus one prefix per family routed to an
// address that is no peer. Dual stack: IPv6 prefixes tunnelled over the IPv4 underlay (held
// v4-mapped in weir_tunnel6) are listed under the IPv4 peer, in its IPv4 text.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { V1Node } from '@kubernetes/client-node';
import { BpfObject, codecFor, typedMap } from '../../src/bpf/index.js';
import { desiredNodeMaps, NodeMapWriter, TUNNEL_ENDPOINT, type NodeMaps } from '../../src/dataplane/node-maps.js';
import { buildNodeTable } from '../../src/model/nodes.js';
import { silentLogger } from '../../src/log.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { OBJ_DIR } from '../bpf/service-fixture.js';

const node = (name: string, ips: string | string[], podCIDRs: string[]): V1Node => ({
  metadata: { name },
  spec: { podCIDRs },
  status: { addresses: [ips].flat().map((address) => ({ type: 'InternalIP', address })) },
});

let fs: PrivateBpffs;
let obj: BpfObject;
let obj6: BpfObject;
let maps: NodeMaps;
let maps6: NodeMaps;

const weir = (...args: string[]) => {
  const r = runSync(binWeir, [...args, '--pin-dir', fs.path], { check: false });
  assert.equal(r.code, 0, `weir ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

before(() => {
  fs = mountPrivateBpffs('cli-nodes');
  obj = BpfObject.load(join(OBJ_DIR, 'from_pod.o'), { pinDir: fs.path });
  maps = {
    nodes: typedMap(obj.map('weir_nodes4'), codecFor('weir_node4_key'), codecFor('weir_node4')),
    tunnel: typedMap(obj.map('weir_tunnel4'), codecFor('weir_tunnel4_key'), codecFor('weir_tunnel4')),
  };
  obj6 = BpfObject.load(join(OBJ_DIR, 'from_pod6.o'), { pinDir: fs.path });
  maps6 = {
    family: 6,
    nodes: typedMap(obj6.map('weir_nodes6'), codecFor('weir_node6_key'), codecFor('weir_node6')),
    tunnel: typedMap(obj6.map('weir_tunnel6'), codecFor('weir_tunnel6_key'), codecFor('weir_tunnel6')),
  };
});
after(async () => {
  obj6?.close();
  obj?.close();
  await fs?.cleanup();
});

test('weir nodes: no peers yet', () => {
  assert.deepEqual(JSON.parse(weir('nodes', '-o', 'json')), { nodes: [], orphanPrefixes: [] });
  assert.equal(weir('nodes').trim(), '(none)');
});

test('weir nodes -o json: each peer with its pod CIDRs and endpoints, sorted; prefixes to no peer listed apart', () => {
  const table = buildNodeTable([
    node('node-a', '198.18.0.1', ['198.18.1.0/24']),
    node('node-b', '198.18.0.2', ['198.18.2.0/24']),
    node('node-c', '198.18.0.10', ['198.18.10.0/24', '198.18.3.0/24']),
  ]);
  const want = desiredNodeMaps(table, 'node-a', [
    { address: '198.18.9.7', nodeName: 'node-b' },
    { address: '198.18.2.5', nodeName: 'node-b' },
    { address: '198.18.9.10', nodeName: 'node-c' },
    { address: '198.18.9.9', nodeName: 'node-c' },
  ]);
  assert.equal(new NodeMapWriter(maps, silentLogger).apply(want).errors, 0);
  // written by something else: routed to an address weir_nodes4 does not hold
  maps.tunnel.set({ prefixlen: 32, address: '198.18.9.50' }, { node_ip: '198.18.0.99', flags: TUNNEL_ENDPOINT });
  const out = weir('nodes', '-o', 'json');
  assert.equal(
    JSON.stringify(JSON.parse(out)),
    JSON.stringify({
      nodes: [
        { family: 'IPv4', address: '198.18.0.2', flags: ['peer'], podCIDRs: ['198.18.2.0/24'], endpoints: ['198.18.9.7'] },
        { family: 'IPv4', address: '198.18.0.10', flags: ['peer'], podCIDRs: ['198.18.3.0/24', '198.18.10.0/24'], endpoints: ['198.18.9.9', '198.18.9.10'] },
      ],
      orphanPrefixes: [{ family: 'IPv4', cidr: '198.18.9.50/32', nodeIp: '198.18.0.99', kind: 'endpoint' }],
    }),
  );
  const text = weir('nodes');
  console.log(text);
  assert.match(text, /^NODE\s+FLAGS\s+PODCIDRS\s+ENDPOINTS$/m);
  assert.match(text, /^198\.18\.0\.10\s+peer\s+198\.18\.3\.0\/24 198\.18\.10\.0\/24\s+198\.18\.9\.9 198\.18\.9\.10$/m);
  assert.match(text, /1 prefix\(es\) routed to an address that is not a peer/);
  assert.match(text, /^198\.18\.9\.50\/32\s+198\.18\.0\.99\s+endpoint$/m);
});

test('weir nodes, dual stack: IPv6 peers and prefixes; those over the IPv4 underlay under the IPv4 peer', () => {
  // node-b has both families (its IPv6 flows take the default IPv4 underlay), node-d only IPv6
  const table = buildNodeTable([
    node('node-a', ['198.18.0.1', '2001:2::1'], ['198.18.1.0/24', '2001:2:1::/64']),
    node('node-b', ['198.18.0.2', '2001:2::2'], ['198.18.2.0/24', '2001:2:2::/64']),
    node('node-c', '198.18.0.10', ['198.18.10.0/24', '198.18.3.0/24']),
    node('node-d', '2001:2::4', ['2001:2:4::/64']),
  ]);
  const want = desiredNodeMaps(table, 'node-a', [{ address: '2001:2:9::7', nodeName: 'node-b' }], { family: 6 });
  assert.equal(new NodeMapWriter(maps6, silentLogger).apply(want).errors, 0);
  assert.equal(maps6.tunnel.get({ prefixlen: 64, address: '2001:2:2::' })?.node_ip, '::ffff:c612:2', 'weir_tunnel6 holds the IPv4 underlay v4-mapped');
  maps6.tunnel.set({ prefixlen: 128, address: '2001:2:9::50' }, { node_ip: '2001:2::99', flags: TUNNEL_ENDPOINT });
  const out = weir('nodes', '-o', 'json');
  assert.equal(
    JSON.stringify(JSON.parse(out)),
    JSON.stringify({
      nodes: [
        { family: 'IPv4', address: '198.18.0.2', flags: ['peer'], podCIDRs: ['198.18.2.0/24', '2001:2:2::/64'], endpoints: ['198.18.9.7', '2001:2:9::7'] },
        { family: 'IPv4', address: '198.18.0.10', flags: ['peer'], podCIDRs: ['198.18.3.0/24', '198.18.10.0/24'], endpoints: ['198.18.9.9', '198.18.9.10'] },
        { family: 'IPv6', address: '2001:2::2', flags: ['peer'], podCIDRs: [], endpoints: [] },
        { family: 'IPv6', address: '2001:2::4', flags: ['peer'], podCIDRs: ['2001:2:4::/64'], endpoints: [] },
      ],
      orphanPrefixes: [
        { family: 'IPv4', cidr: '198.18.9.50/32', nodeIp: '198.18.0.99', kind: 'endpoint' },
        { family: 'IPv6', cidr: '2001:2:9::50/128', nodeIp: '2001:2::99', kind: 'endpoint' },
      ],
    }),
  );
  const text = weir('nodes');
  console.log(text);
  assert.doesNotMatch(text, /::ffff:/);
  assert.match(text, /^198\.18\.0\.2\s+peer\s+198\.18\.2\.0\/24 2001:2:2::\/64\s+198\.18\.9\.7 2001:2:9::7$/m);
  assert.match(text, /^2001:2::4\s+peer\s+2001:2:4::\/64\s+-$/m);
  assert.match(text, /2 prefix\(es\) routed to an address that is not a peer/);
  assert.match(text, /^2001:2:9::50\/128\s+2001:2::99\s+endpoint$/m);
});
