// Interface discovery (src/dataplane/interfaces.ts) from netlink dumps shaped like what the
// CNI ptp plugin leaves in a node: workload interfaces from `podIP dev vethX` host routes,
// host interfaces from the default route or (none) from global addresses, nodePortAddresses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cidrContains } from '../../src/bpf/ip.js';
import { computeNodeNetwork } from '../../src/dataplane/interfaces.js';
import { parseAddresses, parseLinks, parseRoutes, type Address, type Link, type Route } from '../../src/dataplane/netlink.js';

const link = (ifindex: number, ifname: string, extra: Partial<Link> = {}): Link => ({
  ifindex,
  ifname,
  up: true,
  mac: `02:00:00:00:00:0${ifindex}`,
  mtu: 1500,
  kind: '',
  loopback: false,
  ...extra,
});
const addr = (ifname: string, ifindex: number, address: string, prefixLen: number, scope = 'global'): Address => ({
  ifindex,
  ifname,
  family: address.includes(':') ? 6 : 4,
  address,
  prefixLen,
  scope,
});
const route = (dst: string, dev: string, extra: Partial<Route> = {}): Route => ({ dst, dev, family: 4, ...extra });

// a ptp node: eth0 on the underlay, two pods; ptp puts the gateway address on each host veth
const LINKS = [link(1, 'lo', { loopback: true }), link(2, 'eth0'), link(5, 'veth1', { kind: 'veth' }), link(6, 'veth2', { kind: 'veth' })];
const ADDRS = [
  addr('lo', 1, '127.0.0.1', 8, 'host'),
  addr('eth0', 2, '198.18.0.1', 24),
  addr('eth0', 2, '2001:2::1', 64),
  addr('veth1', 5, '198.18.1.1', 32),
  addr('veth2', 6, '198.18.1.1', 32),
];
const ROUTES = [
  route('198.18.0.0/24', 'eth0', { scope: 'link' }),
  route('198.18.1.2', 'veth1', { scope: 'host' }),
  route('198.18.1.3', 'veth2', { scope: 'host' }),
  route('198.18.2.0/24', 'eth0', { gateway: '198.18.0.2' }),
];

test('workload interfaces are the devices of pod host routes; no default route: host interfaces are the other addressed ones', () => {
  const n = computeNodeNetwork(LINKS, ADDRS, ROUTES);
  assert.deepEqual(
    n.workloads.map((w) => [w.ifindex, w.ifname, w.addresses]),
    [
      [5, 'veth1', ['198.18.1.2']],
      [6, 'veth2', ['198.18.1.3']],
    ],
  );
  assert.deepEqual(
    n.hostInterfaces.map((l) => l.ifname),
    ['eth0'],
  );
  assert.deepEqual(n.nodeAddresses, ['198.18.0.1', '2001:2::1']);
  assert.deepEqual(n.nodePortAddresses, ['198.18.0.1', '2001:2::1']);
});

test('a default route picks the host interface; --host-interfaces overrides and reports missing names', () => {
  const links = [...LINKS, link(3, 'eth1')];
  const addrs = [...ADDRS, addr('eth1', 3, '198.18.9.1', 24)];
  const withDefault = computeNodeNetwork(links, addrs, [...ROUTES, route('default', 'eth1', { gateway: '198.18.9.254' })]);
  assert.deepEqual(
    withDefault.hostInterfaces.map((l) => l.ifname),
    ['eth1'],
  );
  const asked = computeNodeNetwork(links, addrs, ROUTES, { hostInterfaces: ['eth0', 'eth9'] });
  assert.deepEqual(
    asked.hostInterfaces.map((l) => l.ifname),
    ['eth0'],
  );
  assert.deepEqual(asked.missingHostInterfaces, ['eth9']);
});

test('nodePortAddresses: CIDRs filter the node addresses; primary takes the first of each family', () => {
  assert.deepEqual(computeNodeNetwork(LINKS, ADDRS, ROUTES, { nodePortAddresses: ['198.18.0.0/24'] }).nodePortAddresses, ['198.18.0.1']);
  assert.deepEqual(computeNodeNetwork(LINKS, ADDRS, ROUTES, { nodePortAddresses: ['2001:2::/48'] }).nodePortAddresses, ['2001:2::1']);
  assert.deepEqual(computeNodeNetwork(LINKS, ADDRS, ROUTES, { nodePortAddresses: ['primary'] }).nodePortAddresses, ['198.18.0.1', '2001:2::1']);
  assert.equal(cidrContains('198.18.0.0/15', '198.19.255.1'), true);
  assert.equal(cidrContains('198.18.0.0/16', '198.19.0.1'), false);
  assert.equal(cidrContains('garbage', '198.19.0.1'), false);
});

test('NodePort addresses of both families: IPv6 global addresses are node addresses, link-local ones (fe80::/10) never', () => {
  const addrs = [
    ...ADDRS,
    addr('eth0', 2, 'fe80::1', 64, 'link'),
    // a link-local address some configuration marked global: still not one to serve NodePorts on
    addr('eth0', 2, 'fe80::2', 64, 'global'),
    addr('eth0', 2, '2001:2:0:1::1', 64),
  ];
  const n = computeNodeNetwork(LINKS, addrs, ROUTES);
  assert.deepEqual(n.nodeAddresses, ['198.18.0.1', '2001:2::1', '2001:2:0:1::1']);
  assert.deepEqual(n.nodePortAddresses, ['198.18.0.1', '2001:2::1', '2001:2:0:1::1']);
  assert.deepEqual(computeNodeNetwork(LINKS, addrs, ROUTES, { nodePortAddresses: ['2001:2:0:1::/64'] }).nodePortAddresses, ['2001:2:0:1::1']);
  assert.deepEqual(computeNodeNetwork(LINKS, addrs, ROUTES, { nodePortAddresses: ['fe80::/10'] }).nodePortAddresses, []);
});

test('parsers read `ip -j` output', () => {
  const links = parseLinks([
    { ifindex: 5, ifname: 'veth1', flags: ['BROADCAST', 'UP'], address: '02:00:00:00:00:05', mtu: 1500, linkinfo: { info_kind: 'veth' } },
  ]);
  assert.deepEqual(links[0], link(5, 'veth1', { kind: 'veth' }));
  const addrs = parseAddresses([{ ifindex: 2, ifname: 'eth0', addr_info: [{ family: 'inet', local: '198.18.0.1', prefixlen: 24, scope: 'global' }] }]);
  assert.deepEqual(addrs, [addr('eth0', 2, '198.18.0.1', 24)]);
  const routes = parseRoutes(
    [
      { dst: '198.18.1.2', dev: 'veth1', scope: 'host' },
      { dst: 'blackhole', type: 'blackhole' },
    ],
    4,
  );
  assert.deepEqual(routes, [{ dst: '198.18.1.2', dev: 'veth1', gateway: undefined, scope: 'host', protocol: undefined, family: 4 }]);
});
