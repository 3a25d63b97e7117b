// NodeMapWriter (dataplane/node-maps.ts) on the real weir_nodes4 hash and weir_tunnel4 LPM
// trie of from_pod.o (and the IPv6 pair of from_host6.o) in a private bpffs: the least writes from one state to the next, the
// longest-prefix answers the BPF will read, a restart adopting the pins with no write, and a
// full map (real maps of the same layout, created small) refusing some entries while the rest
// are written, logged, and retried once there is room.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { abiMaps, BpfMap, BpfObject, codecFor, typedMap } from '../../src/bpf/index.js';
import { countingMap } from '../../src/daemon/map-writes.js';
import { MAP_TYPE } from '../../src/dataplane/map-abi.js';
import { NODE_PEER, NodeMapWriter, TUNNEL_ENDPOINT, TUNNEL_POD_CIDR, v4Mapped, type DesiredNodeMaps, type NodeMaps } from '../../src/dataplane/node-maps.js';
import { memoryLogger, silentLogger } from '../../src/log.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { OBJ_DIR } from './service-fixture.js';

type Want = Pick<DesiredNodeMaps, 'nodes' | 'tunnel'>;

let fs: PrivateBpffs;
let obj: BpfObject;

const typed = (nodes: BpfMap, tunnel: BpfMap): NodeMaps => ({
  nodes: typedMap(nodes, codecFor('weir_node4_key'), codecFor('weir_node4')),
  tunnel: typedMap(tunnel, codecFor('weir_tunnel4_key'), codecFor('weir_tunnel4')),
});
const pinned = (): NodeMaps => typed(BpfMap.openPinned(join(fs.path, 'weir_nodes4')), BpfMap.openPinned(join(fs.path, 'weir_tunnel4')));

/** What the kernel maps hold, as `address -> flags` and `cidr -> nodeIp flags`. */
function dump(m: NodeMaps): { nodes: Record<string, number>; tunnel: Record<string, string> } {
  const nodes = Object.fromEntries([...m.nodes.entries()].map(([k, v]) => [k.address, v.flags]).sort());
  const tunnel = Object.fromEntries([...m.tunnel.entries()].map(([k, v]) => [`${k.address}/${k.prefixlen}`, `${v.node_ip} ${v.flags}`]).sort());
  return { nodes, tunnel };
}

const want = (peers: string[], prefixes: Array<[string, string, number]>): Want => ({
  nodes: new Map(peers.map((p) => [p, NODE_PEER])),
  tunnel: new Map(prefixes.map(([cidr, nodeIp, flags]) => [cidr, { nodeIp, flags }])),
});

const A = want(
  ['198.18.0.2', '198.18.0.3'],
  [
    ['198.18.2.0/24', '198.18.0.2', TUNNEL_POD_CIDR],
    ['198.18.3.0/24', '198.18.0.3', TUNNEL_POD_CIDR],
    ['198.18.9.7/32', '198.18.0.2', TUNNEL_ENDPOINT],
    ['198.18.9.8/32', '198.18.0.3', TUNNEL_ENDPOINT],
  ],
);
// node-c left (its peer entry, pod CIDR and endpoint go), node-d joined, 198.18.9.7 moved to node-d
const B = want(
  ['198.18.0.2', '198.18.0.4'],
  [
    ['198.18.2.0/24', '198.18.0.2', TUNNEL_POD_CIDR],
    ['198.18.4.0/24', '198.18.0.4', TUNNEL_POD_CIDR],
    ['198.18.9.7/32', '198.18.0.4', TUNNEL_ENDPOINT],
  ],
);

before(() => {
  fs = mountPrivateBpffs('node-maps');
  obj = BpfObject.load(join(OBJ_DIR, 'from_pod.o'), { pinDir: fs.path });
});
after(async () => {
  obj?.close();
  await fs?.cleanup();
});

test('apply writes the whole state once, then only the differences; the trie answers longest-prefix', () => {
  const maps = typed(obj.map('weir_nodes4'), obj.map('weir_tunnel4'));
  const w = new NodeMapWriter(maps, silentLogger);
  const first = w.apply(A);
  assert.deepEqual(first, { writes: 6, errors: 0, peers: 2, prefixes: 4 });
  assert.deepEqual(dump(maps), {
    nodes: { '198.18.0.2': NODE_PEER, '198.18.0.3': NODE_PEER },
    tunnel: {
      '198.18.2.0/24': `198.18.0.2 ${TUNNEL_POD_CIDR}`,
      '198.18.3.0/24': `198.18.0.3 ${TUNNEL_POD_CIDR}`,
      '198.18.9.7/32': `198.18.0.2 ${TUNNEL_ENDPOINT}`,
      '198.18.9.8/32': `198.18.0.3 ${TUNNEL_ENDPOINT}`,
    },
  });
  // the same state again: nothing
  assert.equal(w.apply(A).writes, 0);
  // A -> B: +node-d, -node-c (2), +4.0/24, -3.0/24, 9.7 rewritten, -9.8 (4)
  assert.deepEqual(w.apply(B), { writes: 6, errors: 0, peers: 2, prefixes: 3 });
  assert.deepEqual(dump(maps), {
    nodes: { '198.18.0.2': NODE_PEER, '198.18.0.4': NODE_PEER },
    tunnel: {
      '198.18.2.0/24': `198.18.0.2 ${TUNNEL_POD_CIDR}`,
      '198.18.4.0/24': `198.18.0.4 ${TUNNEL_POD_CIDR}`,
      '198.18.9.7/32': `198.18.0.4 ${TUNNEL_ENDPOINT}`,
    },
  });
  // what tunnel4_node_of() finds: a lookup at /32
  const at = (address: string) => maps.tunnel.get({ prefixlen: 32, address })?.node_ip ?? null;
  assert.equal(at('198.18.2.200'), '198.18.0.2');
  assert.equal(at('198.18.9.7'), '198.18.0.4');
  assert.equal(at('198.18.3.1'), null);
  assert.equal(at('198.18.9.8'), null);
});

test('a restart adopts the pinned maps: the same state writes nothing, drift is repaired by resync', () => {
  const maps = pinned();
  const w = new NodeMapWriter(maps, silentLogger);
  assert.deepEqual(w.adopt(), { nodes: 2, prefixes: 3 });
  assert.deepEqual(w.apply(B), { writes: 0, errors: 0, peers: 2, prefixes: 3 });
  // something else deletes a prefix and adds one: the mirror does not know, resync does
  maps.tunnel.delete({ prefixlen: 24, address: '198.18.4.0' });
  maps.tunnel.set({ prefixlen: 24, address: '198.18.5.0' }, { node_ip: '198.18.0.5', flags: TUNNEL_POD_CIDR });
  // and one rewritten with host bits set (the trie holds it as the same /24)
  maps.tunnel.set({ prefixlen: 24, address: '198.18.2.9' }, { node_ip: '198.18.0.2', flags: TUNNEL_POD_CIDR });
  assert.equal(w.apply(B).writes, 0);
  const r = w.resync(B);
  assert.equal(r.writes, 2);
  assert.equal(w.stats.repairs, 2);
  assert.equal(maps.tunnel.get({ prefixlen: 32, address: '198.18.2.1' })?.node_ip, '198.18.0.2');
  assert.deepEqual(Object.keys(dump(maps).tunnel).length, 3);
  assert.deepEqual(w.apply(B).writes, 0);
  maps.nodes.map.close();
  maps.tunnel.map.close();
});

test("the IPv6 pair (from_host6.o's weir_nodes6, weir_tunnel6): v4-mapped and IPv6 node addresses round-trip, the /128 lookup tunnel6_node_of makes answers, a restart writes nothing", () => {
  const o6 = BpfObject.load(join(OBJ_DIR, 'from_host6.o'), { pinDir: fs.path });
  try {
    const maps: NodeMaps = {
      family: 6,
      nodes: typedMap(o6.map('weir_nodes6'), codecFor('weir_node6_key'), codecFor('weir_node6')),
      tunnel: typedMap(o6.map('weir_tunnel6'), codecFor('weir_tunnel6_key'), codecFor('weir_tunnel6')),
    };
    const C = want(
      ['2001:2::2'],
      [
        ['2001:2:0:2::/64', v4Mapped('198.18.0.2'), TUNNEL_POD_CIDR],
        ['2001:2:0:3::/64', '2001:2::3', TUNNEL_POD_CIDR],
        ['2001:2:0:9::7/128', '2001:2::3', TUNNEL_ENDPOINT],
      ],
    );
    const w = new NodeMapWriter(maps, silentLogger);
    assert.deepEqual(w.apply(C), { writes: 4, errors: 0, peers: 1, prefixes: 3 });
    const at = (address: string) => maps.tunnel.get({ prefixlen: 128, address })?.node_ip ?? null;
    assert.equal(at('2001:2:0:2::77'), '::ffff:c612:2');
    assert.equal(at('2001:2:0:9::7'), '2001:2::3');
    assert.equal(at('2001:2:0:9::8'), null);
    assert.deepEqual(new NodeMapWriter(maps, silentLogger).apply(C).writes, 0, 'adopted: the same state writes nothing');
    assert.equal(w.apply(want([], [])).writes, 4);
  } finally {
    o6.close();
  }
});

test('a full map: the refused entries are logged and counted, the rest written, and retried once there is room', () => {
  // the production layouts (key, value, type, flags), with room for 2 peers and 3 prefixes
  const make = (name: 'weir_nodes4' | 'weir_tunnel4', maxEntries: number) => {
    const s = abiMaps[name];
    return BpfMap.create({ typeId: MAP_TYPE[s.type], keySize: s.keySize, valueSize: s.valueSize, maxEntries, flags: s.type === 'lpm_trie' ? 1 : 0, name });
  };
  const maps = typed(make('weir_nodes4', 2), make('weir_tunnel4', 3));
  try {
    const log = memoryLogger();
    // what weir_map_write_failures_total would count: each refusal of the kernel, by errno
    const refusals: string[] = [];
    const sink = { written() {}, failed: (map: string, _op: string, code: string) => void refusals.push(`${map} ${code}`) };
    const w = new NodeMapWriter({ nodes: countingMap(maps.nodes, sink), tunnel: countingMap(maps.tunnel, sink) }, log);
    const big = want(
      ['198.18.0.2', '198.18.0.3', '198.18.0.4'],
      [
        ['198.18.2.0/24', '198.18.0.2', TUNNEL_POD_CIDR],
        ['198.18.3.0/24', '198.18.0.3', TUNNEL_POD_CIDR],
        ['198.18.4.0/24', '198.18.0.4', TUNNEL_POD_CIDR],
        ['198.18.9.7/32', '198.18.0.2', TUNNEL_ENDPOINT],
      ],
    );
    const r = w.apply(big);
    console.log(`full: ${JSON.stringify(r)}\n${log.lines.join('\n')}`);
    assert.deepEqual(r, { writes: 5, errors: 2, peers: 2, prefixes: 3 });
    const failed = log.lines.filter((l) => l.startsWith('warn node map write failed'));
    assert.equal(failed.length, 2, log.lines.join('\n'));
    assert.match(failed[0]!, /map=weir_nodes4 key=198\.18\.0\.4 error=/);
    assert.match(failed[1]!, /map=weir_tunnel4 key=198\.18\.9\.7\/32 error=/);
    // nothing was deleted in that apply, so no second attempt: one refusal per entry
    assert.deepEqual(refusals, ['weir_nodes4 E2BIG', 'weir_tunnel4 ENOSPC']);
    assert.deepEqual(Object.keys(dump(maps).nodes), ['198.18.0.2', '198.18.0.3']);
    assert.deepEqual(Object.keys(dump(maps).tunnel), ['198.18.2.0/24', '198.18.3.0/24', '198.18.4.0/24']);
    // node-c leaves: its entries go first, then what was refused fits, in the same apply
    big.nodes.delete('198.18.0.3');
    big.tunnel.delete('198.18.3.0/24');
    assert.deepEqual(w.apply(big), { writes: 4, errors: 0, peers: 2, prefixes: 3 });
    assert.deepEqual(dump(maps), {
      nodes: { '198.18.0.2': NODE_PEER, '198.18.0.4': NODE_PEER },
      tunnel: {
        '198.18.2.0/24': `198.18.0.2 ${TUNNEL_POD_CIDR}`,
        '198.18.4.0/24': `198.18.0.4 ${TUNNEL_POD_CIDR}`,
        '198.18.9.7/32': `198.18.0.2 ${TUNNEL_ENDPOINT}`,
      },
    });
  } finally {
    maps.nodes.map.close();
    maps.tunnel.map.close();
  }
});
