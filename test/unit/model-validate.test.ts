// Address, port and object validation shared by the sources and the model.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, parseIp } from '../../src/bpf/ip.js';
import { isValidPort, isProtocol, validateEndpointSlice, validateService } from '../../src/model/validate.js';
import { slice, svc } from './model-helpers.js';

test('parseIp: IPv4 strict, IPv6 canonical (RFC 5952)', () => {
  assert.deepEqual(parseIp('198.18.0.1'), { family: 4, address: '198.18.0.1' });
  for (const bad of [
    '198.18.0',
    '198.18.0.256',
    '198.018.0.1',
    '198.18.0.1 ',
    '',
    'x',
    '1.2.3.4/32',
    'fe80::1%eth0',
    ':::',
    '1::2::3',
    '2001:2::g',
    '2001:2:0:0:0:0:0:0:1',
  ])
    assert.equal(parseIp(bad), null, bad);
  assert.equal(parseIp(12), null);
  assert.deepEqual(parseIp('2001:0002:0000:0000:0000:0000:0000:000A'), { family: 6, address: '2001:2::a' });
  assert.equal(parseIp('2001:2:0:0:1:0:0:1')!.address, '2001:2::1:0:0:1');
  assert.equal(parseIp('2001:2:0:1:0:0:0:1')!.address, '2001:2:0:1::1');
  assert.equal(parseIp('::')!.address, '::');
  assert.equal(parseIp('::1')!.address, '::1');
  assert.equal(parseIp('2001:2::1:2:3:4:5')!.address, '2001:2:0:1:2:3:4:5', 'a single zero group is not compressed');
  assert.equal(parseIp('::ffff:198.18.0.1')!.address, '::ffff:c612:1');
});

test('parseCidr: whitespace tolerated, host bits cleared', () => {
  assert.deepEqual(parseCidr(' 198.18.5.7/24'), { family: 4, address: '198.18.5.0', prefix: 24 });
  assert.deepEqual(parseCidr('2001:2::ff/120'), { family: 6, address: '2001:2::', prefix: 120 });
  assert.deepEqual(parseCidr('2001:2:abcd::/33'), { family: 6, address: '2001:2:8000::', prefix: 33 });
  for (const bad of ['198.18.0.0', '198.18.0.0/33', '198.18.0.0/-1', '2001:2::/129', 'x/8']) assert.equal(parseCidr(bad), null, bad);
});

test('ports and protocols', () => {
  assert.ok(isValidPort(1) && isValidPort(65535));
  for (const bad of [0, 65536, 70000, 80.5, '80', null]) assert.equal(isValidPort(bad), false, String(bad));
  assert.ok(isProtocol('SCTP'));
  assert.equal(isProtocol('tcp'), false);
});

test('validateService: ports, IPs, affinity', () => {
  assert.deepEqual(validateService(svc('ok')), []);
  const reasons = (s: ReturnType<typeof svc>) => validateService(s).map((p) => p.field);
  assert.deepEqual(reasons(svc('a', { ports: [{ name: 'x', port: 70000 }] })), ['spec.ports[0].port']);
  assert.deepEqual(reasons(svc('a', { ports: [{ name: 'x', port: 'abc' as never }] })), ['spec.ports[0].port']);
  assert.deepEqual(reasons(svc('a', { ports: [{ name: 'x', port: 80, protocol: 'ICMP' }] })), ['spec.ports[0].protocol']);
  assert.deepEqual(reasons(svc('a', { ports: [{ port: 80 }, { port: 81 }] })), ['spec.ports[0].name', 'spec.ports[1].name', 'spec.ports[1].name']);
  assert.deepEqual(reasons(svc('a', { clusterIP: '198.19.0.300' })), ['spec.clusterIP']);
  assert.deepEqual(reasons(svc('a', { clusterIP: 'None' })), []);
  assert.deepEqual(reasons(svc('a', { externalIPs: ['nope'] })), ['spec.externalIPs[0]']);
  assert.deepEqual(reasons(svc('a', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } })), [
    'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
  ]);
  assert.deepEqual(reasons(svc('a', { ports: [{ name: 'x', port: 80, targetPort: 'Not_A_Name' as never }] })), ['spec.ports[0].targetPort']);
});

test('validateEndpointSlice: addressType and addresses', () => {
  assert.deepEqual(validateEndpointSlice(slice('s', 'web', [{ ip: '198.18.1.1' }])), []);
  assert.deepEqual(
    validateEndpointSlice(slice('s', 'web', [{ ip: 'garbage' }], { addressType: 'IPv4' })).map((p) => p.field),
    ['endpoints[0].addresses[0]'],
  );
  assert.deepEqual(
    validateEndpointSlice(slice('s', 'web', [{ ip: '2001:2::1' }], { addressType: 'IPv4' })).map((p) => p.field),
    ['endpoints[0].addresses[0]'],
  );
  assert.deepEqual(
    validateEndpointSlice(slice('s', 'web', [{ ip: '198.18.1.1' }], { addressType: 'IPv5' })).map((p) => p.field),
    ['addressType'],
  );
  assert.deepEqual(validateEndpointSlice(slice('s', 'web', [{ ip: 'db.example' }], { addressType: 'FQDN' })), []);
  assert.deepEqual(
    validateEndpointSlice(slice('s', 'web', [{ ip: '198.18.1.1' }], { ports: [{ name: 'x', port: 0 }] })).map((p) => p.field),
    ['ports[0].port'],
  );
});
