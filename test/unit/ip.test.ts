// The one IP parser and protocol table (src/bpf/ip.ts), beyond what model-validate and the
// codec tests cover: prefix matching (interfaces' nodePortAddresses), bytes of either family,
// no zones in map addresses, and protocol names both ways.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cidrContains, ip6ToBytes, ipBytes, ipFamilyOf, IPPROTO, protocolName, protocolNumber } from '../../src/bpf/ip.js';

test('cidrContains: same family only, host bits ignored, a bare address is a /32 or /128, bad input is false', () => {
  assert.equal(cidrContains('198.18.0.0/15', '198.19.255.1'), true);
  assert.equal(cidrContains('198.18.0.0/16', '198.19.0.1'), false);
  assert.equal(cidrContains(' 198.18.5.7/24 ', '198.18.5.200'), true);
  assert.equal(cidrContains('198.18.0.1', '198.18.0.1'), true);
  assert.equal(cidrContains('198.18.0.1', '198.18.0.2'), false);
  assert.equal(cidrContains('2001:2::/48', '2001:2:0:ffff::1'), true);
  assert.equal(cidrContains('2001:2::/48', '2001:3::1'), false);
  assert.equal(cidrContains('0.0.0.0/0', '2001:2::1'), false, 'families differ');
  for (const bad of ['198.18.0.0/', '198.18.0.0/33', '198.18.0.0/x', 'x/8', '2001:2::/129']) assert.equal(cidrContains(bad, '198.18.0.1'), false, bad);
});

test('ipBytes / ipFamilyOf: either family in network order; ip6ToBytes refuses a zone', () => {
  assert.deepEqual([...ipBytes('198.18.0.1')!], [198, 18, 0, 1]);
  assert.equal(ipBytes('2001:2::1')!.toString('hex'), '20010002000000000000000000000001');
  assert.equal(ipBytes('198.18.0.01'), null);
  assert.deepEqual(['198.18.0.1', '2001:2::1', 'fe80::1%eth0', '', 'x'].map(ipFamilyOf), [4, 6, null, null, null]);
  assert.throws(() => ip6ToBytes('fe80::1%eth0', Buffer.alloc(16)), /not an IPv6 address/);
});

test('protocol table: names both ways, numbers pass through, unknown names are undefined', () => {
  assert.deepEqual([IPPROTO.ICMP, IPPROTO.TCP, IPPROTO.UDP, IPPROTO.SCTP].map(protocolName), ['icmp', 'tcp', 'udp', 'sctp']);
  assert.equal(protocolName(47), '47');
  assert.deepEqual(['tcp', 'UDP', 'sctp', '6', '255'].map(protocolNumber), [6, 17, 132, 6, 255]);
  assert.deepEqual(['gre', '', '256', '-1'].map(protocolNumber), [undefined, undefined, undefined, undefined]);
});
