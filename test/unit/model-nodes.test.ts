// Node objects into the model (model/nodes.ts): addresses per family, pod CIDRs, zone, the
// autoscaler's taint, what bad input is skipped with, and which node a backend runs on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node } from '@kubernetes/client-node';
import { backendNode, buildNodeTable, nodeInfo, nodeZone } from '../../src/model/nodes.js';

function node(name: string, o: { addresses?: [string, string][]; podCIDRs?: string[]; podCIDR?: string; zone?: string; taints?: string[] } = {}): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, ...(o.zone !== undefined ? { labels: { 'topology.kubernetes.io/zone': o.zone, 'kubernetes.io/os': 'linux' } } : {}) },
    spec: {
      ...(o.podCIDRs ? { podCIDRs: o.podCIDRs } : {}),
      ...(o.podCIDR ? { podCIDR: o.podCIDR } : {}),
      ...(o.taints ? { taints: o.taints.map((key) => ({ key, effect: 'NoSchedule' })) } : {}),
    },
    status: { addresses: (o.addresses ?? []).map(([type, address]) => ({ type, address })) },
  };
}

test('nodeInfo: first InternalIP per family (canonical), pod CIDRs, zone, autoscaler taint', () => {
  const { info, issues } = nodeInfo(
    node('node-a', {
      addresses: [
        ['Hostname', 'node-a'],
        ['ExternalIP', '198.18.9.1'],
        ['InternalIP', '2001:2:0:0::1'],
        ['InternalIP', '198.18.0.1'],
        ['InternalIP', '198.18.0.2'],
      ],
      podCIDRs: ['198.18.1.0/24', '2001:2:0:1::/64'],
      zone: 'zone-1',
      taints: ['ToBeDeletedByClusterAutoscaler'],
    }),
  );
  assert.deepEqual(issues, []);
  assert.deepEqual(info, {
    name: 'node-a',
    internalIP: { 4: '198.18.0.1', 6: '2001:2::1' },
    podCIDRs: [
      { family: 4, cidr: '198.18.1.0/24', prefix: 24 },
      { family: 6, cidr: '2001:2:0:1::/64', prefix: 64 },
    ],
    zone: 'zone-1',
    toBeDeleted: true,
  });
});

test('nodeInfo: no zone label → zone "", other taints are not the autoscaler one, podCIDR fallback', () => {
  const { info } = nodeInfo(
    node('node-b', { addresses: [['InternalIP', '198.18.0.2']], podCIDR: '198.18.2.0/24', taints: ['node.kubernetes.io/unschedulable'] }),
  );
  assert.equal(info!.zone, '');
  assert.equal(info!.toBeDeleted, false);
  assert.deepEqual(info!.internalIP, { 4: '198.18.0.2', 6: null });
  assert.deepEqual(info!.podCIDRs, [{ family: 4, cidr: '198.18.2.0/24', prefix: 24 }]);
  assert.equal(nodeZone(node('x', { zone: 'zone-7' })), 'zone-7');
  assert.equal(nodeZone(undefined), '');
});

test('nodeInfo: bad input is skipped with a reason, never thrown', () => {
  const { info, issues } = nodeInfo(
    node('node-c', {
      addresses: [
        ['InternalIP', 'not-an-ip'],
        ['InternalIP', '198.18.0.3'],
      ],
      podCIDRs: ['198.18.3.0/33', 'garbage', '198.18.3.7/24', '198.18.3.0/24'],
    }),
  );
  // host bits cleared, the duplicate they make folded into one
  assert.deepEqual(info!.podCIDRs, [{ family: 4, cidr: '198.18.3.0/24', prefix: 24 }]);
  assert.deepEqual(
    issues.map((i) => `${i.node} ${i.reason} ${i.detail}`),
    ['node-c bad_address InternalIP "not-an-ip"', 'node-c bad_pod_cidr podCIDR "198.18.3.0/33"', 'node-c bad_pod_cidr podCIDR "garbage"'],
  );
  const bare = nodeInfo(node('node-d'));
  assert.deepEqual(bare.info!.internalIP, { 4: null, 6: null });
  assert.deepEqual(
    bare.issues.map((i) => i.reason),
    ['no_internal_ip'],
  );
  const nameless = nodeInfo({ metadata: {} } as V1Node);
  assert.equal(nameless.info, null);
  assert.deepEqual(
    nameless.issues.map((i) => i.reason),
    ['no_name'],
  );
  // entirely malformed objects (what a hand-written manifest can hold)
  const weird = nodeInfo({
    metadata: { name: 'w' },
    spec: { podCIDRs: 'x' as never, taints: [null] as never },
    status: { addresses: [null] as never },
  } as V1Node);
  assert.equal(weird.info!.name, 'w');
  assert.deepEqual(weird.info!.podCIDRs, []);
});

test('buildNodeTable: every node by name, issues collected, a duplicate name keeps the first', () => {
  const t = buildNodeTable([
    node('node-a', { addresses: [['InternalIP', '198.18.0.1']], zone: 'zone-1' }),
    node('node-a', { addresses: [['InternalIP', '198.18.0.99']] }),
    { metadata: {} } as V1Node,
  ]);
  assert.deepEqual([...t.nodes.keys()], ['node-a']);
  assert.equal(t.nodes.get('node-a')!.internalIP[4], '198.18.0.1');
  assert.deepEqual(
    t.issues.map((i) => i.reason),
    ['no_name'],
  );
});

test('backendNode: the endpoint nodeName first, else the node whose pod CIDR holds the address', () => {
  const t = buildNodeTable([
    node('node-a', { addresses: [['InternalIP', '198.18.0.1']], podCIDRs: ['198.18.1.0/24', '2001:2:0:1::/64'] }),
    node('node-b', { addresses: [['InternalIP', '198.18.0.2']], podCIDRs: ['198.18.2.0/24'] }),
    // overlapping, less specific: loses to node-b for 198.18.2.x
    node('node-wide', { addresses: [['InternalIP', '198.18.0.3']], podCIDRs: ['198.18.0.0/16'] }),
  ]);
  // nodeName wins even when the address is in another node's CIDR
  assert.deepEqual(backendNode(t, { address: '198.18.2.5', nodeName: 'node-a' }), { node: 'node-a', info: t.nodes.get('node-a'), source: 'nodeName' });
  // a nodeName the table does not know: named, without info
  assert.deepEqual(backendNode(t, { address: '198.18.2.5', nodeName: 'node-z' }), { node: 'node-z', info: null, source: 'nodeName' });
  // no nodeName: pod CIDRs, longest prefix
  assert.equal(backendNode(t, { address: '198.18.2.5', nodeName: '' })?.node, 'node-b');
  assert.equal(backendNode(t, { address: '198.18.2.5', nodeName: '' })?.source, 'podCIDR');
  assert.equal(backendNode(t, { address: '198.18.1.9', nodeName: '' })?.node, 'node-a');
  assert.equal(backendNode(t, { address: '198.18.77.1', nodeName: '' })?.node, 'node-wide');
  assert.equal(backendNode(t, { address: '2001:2:0:1::42', nodeName: '' })?.node, 'node-a');
  assert.equal(backendNode(t, { address: '198.19.0.1', nodeName: '' }), null);
  assert.equal(backendNode(t, { address: '2001:2:0:9::1', nodeName: '' }), null);
});

test('backendNode: equal overlapping CIDRs go to the first name, whatever the table order', () => {
  const a = node('node-a', { podCIDRs: ['198.18.4.0/24'] });
  const b = node('node-b', { podCIDRs: ['198.18.4.0/24'] });
  assert.equal(backendNode(buildNodeTable([b, a]), { address: '198.18.4.1', nodeName: '' })?.node, 'node-a');
  assert.equal(backendNode(buildNodeTable([a, b]), { address: '198.18.4.1', nodeName: '' })?.node, 'node-a');
});
