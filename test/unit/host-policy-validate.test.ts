// GlobalNetworkPolicy / HostEndpoint checking (model/host-policy/validate.ts): Calico's CEL rules
// and validator, types defaulting, and Felix's failsafe ProtoPort lists (failsafe.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateGlobalNetworkPolicy, validateHostEndpoint } from '../../src/model/host-policy/validate.js';
import { DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND, formatFailsafes, parseFailsafes } from '../../src/model/host-policy/failsafe.js';

function gnp(spec: Record<string, unknown>, name = 'p'): unknown {
  return { apiVersion: 'projectcalico.org/v3', kind: 'GlobalNetworkPolicy', metadata: { name }, spec };
}

function errorsOf(spec: Record<string, unknown>): string[] {
  const v = validateGlobalNetworkPolicy(gnp(spec));
  return v.ok ? [] : v.errors;
}

// [case, spec, an error must contain this text]
const BAD: Array<[string, Record<string, unknown>, string]> = [
  ['preDNAT and doNotTrack', { preDNAT: true, doNotTrack: true, applyOnForward: true }, 'preDNAT and doNotTrack cannot both be true'],
  ['preDNAT with egress rules', { preDNAT: true, applyOnForward: true, egress: [{ action: 'Allow' }] }, 'preDNAT policy cannot have egress rules'],
  ['preDNAT with the Egress type', { preDNAT: true, applyOnForward: true, types: ['Egress'] }, 'cannot have the Egress type'],
  ['preDNAT without applyOnForward', { preDNAT: true, ingress: [{ action: 'Deny' }] }, 'applyOnForward: must be true'],
  ['doNotTrack without applyOnForward', { doNotTrack: true, ingress: [{ action: 'Deny' }] }, 'applyOnForward: must be true'],
  ['numeric ports without a protocol', { ingress: [{ action: 'Allow', destination: { ports: [22] } }] }, 'ports need protocol TCP, UDP or SCTP'],
  ['numeric ports with ICMP', { ingress: [{ action: 'Allow', protocol: 'ICMP', destination: { ports: [22] } }] }, 'ports need protocol'],
  ['mixed families', { ingress: [{ action: 'Allow', source: { nets: ['198.18.0.0/16'] }, destination: { nets: ['2001:2::/48'] } }] }, 'mix IPv4 and IPv6'],
  ['Log action', { ingress: [{ action: 'Log' }] }, 'Log is not supported'],
  ['unknown action', { ingress: [{ action: 'Drop' }] }, '"Drop" is not Allow, Deny or Pass'],
  ['bad selector', { selector: "role = 'x'" }, 'spec.selector: expected an operator'],
  ['bad rule selector', { ingress: [{ action: 'Allow', source: { selector: 'has(' } }] }, 'spec.ingress[0].source.selector'],
  ['bad net', { ingress: [{ action: 'Allow', source: { nets: ['198.18.0.0/33'] } }] }, 'is not a CIDR'],
  ['bad protocol', { ingress: [{ action: 'Allow', protocol: 'GRE' }] }, 'is not TCP, UDP'],
  ['bad port range', { ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: ['90:80'] } }] }, 'is not a port range'],
  [
    'bad port name',
    { ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: ['ssh_x'] } }] },
    '"ssh_x" is not a port, a lo:hi range or a port name',
  ],
  [
    'named port with ICMP',
    { ingress: [{ action: 'Allow', protocol: 'ICMP', destination: { ports: ['ssh'] } }] },
    'named ports need protocol TCP, UDP, SCTP or none',
  ],
  ['notPorts', { ingress: [{ action: 'Allow', protocol: 'TCP', destination: { notPorts: [22] } }] }, 'notPorts: not supported'],
  ['notProtocol', { ingress: [{ action: 'Allow', notProtocol: 'TCP' }] }, 'notProtocol: not supported'],
  ['bad order', { order: 'first' }, 'spec.order'],
  ['bad types', { types: ['Inbound'] }, 'spec.types'],
];

for (const [name, spec, want] of BAD) {
  test(`GlobalNetworkPolicy rejected: ${name}`, () => {
    const errs = errorsOf(spec);
    assert.ok(
      errs.some((e) => e.includes(want)),
      `want ${JSON.stringify(want)} in ${JSON.stringify(errs)}`,
    );
  });
}

test('GlobalNetworkPolicy: no spec, no name', () => {
  const v = validateGlobalNetworkPolicy({ metadata: {} });
  assert.equal(v.ok, false);
  if (!v.ok) assert.deepEqual(v.errors, ['metadata.name: missing', 'spec: missing or not an object']);
});

// [rules present, types given, want ingressType, want egressType] (Calico api/pkg/defaults/networkpolicy.go)
const TYPES: Array<[string, Record<string, unknown>, boolean, boolean]> = [
  ['no rules -> Ingress', {}, true, false],
  ['ingress rules -> Ingress', { ingress: [{ action: 'Allow' }] }, true, false],
  ['egress rules only -> Egress', { egress: [{ action: 'Allow' }] }, false, true],
  ['both -> both', { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] }, true, true],
  ['explicit Egress without rules', { types: ['Egress'] }, false, true],
  ['explicit both with ingress rules only', { types: ['Ingress', 'Egress'], ingress: [{ action: 'Allow' }] }, true, true],
];

for (const [name, spec, ing, eg] of TYPES) {
  test(`GlobalNetworkPolicy types default: ${name}`, () => {
    const v = validateGlobalNetworkPolicy(gnp(spec));
    assert.ok(v.ok, v.ok ? '' : v.errors.join('; '));
    assert.deepEqual([v.value.ingressType, v.value.egressType], [ing, eg]);
  });
}

test('GlobalNetworkPolicy: a valid one is typed (tier default, order +Inf, protocol number, port ranges, nets canonical)', () => {
  const v = validateGlobalNetworkPolicy(
    gnp({
      selector: "role == 'x'",
      ingress: [{ action: 'Allow', protocol: 'TCP', source: { nets: ['198.18.1.7', '198.18.0.9/16'] }, destination: { ports: [22, '6040:6050'] } }],
    }),
  );
  assert.ok(v.ok, v.ok ? '' : v.errors.join('; '));
  assert.equal(v.value.tier, 'default');
  assert.equal(v.value.order, Infinity);
  const r = v.value.ingress[0]!;
  assert.equal(r.protocol, 6);
  assert.equal(r.family, 4);
  assert.deepEqual(r.source.nets, ['198.18.1.7/32', '198.18.0.0/16']);
  assert.deepEqual(r.destination.ports, [
    { lo: 22, hi: 22 },
    { lo: 6040, hi: 6050 },
  ]);
});

test('GlobalNetworkPolicy: named ports need no protocol', () => {
  const v = validateGlobalNetworkPolicy(gnp({ ingress: [{ action: 'Allow', destination: { ports: ['ssh', 'metrics-2'] } }] }));
  assert.ok(v.ok, v.ok ? '' : v.errors.join('; '));
  assert.deepEqual(v.value.ingress[0]!.destination.namedPorts, ['ssh', 'metrics-2']);
  assert.deepEqual(v.value.ingress[0]!.destination.ports, []);
});

test('GlobalNetworkPolicy: doNotTrack may have egress rules; preDNAT ingress-only is fine', () => {
  assert.deepEqual(errorsOf({ doNotTrack: true, applyOnForward: true, egress: [{ action: 'Allow' }], ingress: [{ action: 'Deny' }] }), []);
  assert.deepEqual(errorsOf({ preDNAT: true, applyOnForward: true, ingress: [{ action: 'Deny' }] }), []);
});

test('HostEndpoint: checked fields', () => {
  const ok = validateHostEndpoint({
    metadata: { name: 'h', labels: { role: 'x' } },
    spec: { node: 'n1', interfaceName: 'eth0', expectedIPs: ['198.18.0.1'], ports: [{ name: 'ssh', protocol: 'TCP', port: 22 }] },
  });
  assert.ok(ok.ok);
  assert.deepEqual(ok.value.ports, [{ name: 'ssh', protocol: 6, port: 22 }]);
  const bad = validateHostEndpoint({ metadata: { name: 'h' }, spec: { expectedIPs: ['nope'], ports: [{ name: 'x', protocol: 'ICMP', port: 1 }] } });
  assert.equal(bad.ok, false);
  if (!bad.ok)
    assert.deepEqual(bad.errors, [
      'spec.node: missing',
      'spec.expectedIPs: "nope" is not an IP address',
      'spec: needs interfaceName or expectedIPs',
      'spec.ports[0].protocol: not TCP, UDP or SCTP',
    ]);
});

test('failsafes: Felix ProtoPort syntax', () => {
  const { entries, errors } = parseFailsafes('tcp:22, udp:68,6443, tcp:198.18.0.0/15:2222,tcp:[2001:2::]/48:22,sctp:9,udp:198.18.0.1:53', 'in');
  assert.deepEqual(errors, []);
  assert.deepEqual(entries, [
    { direction: 'in', protocol: 'tcp', port: 22 },
    { direction: 'in', protocol: 'udp', port: 68 },
    { direction: 'in', protocol: 'tcp', port: 6443 },
    { direction: 'in', protocol: 'tcp', port: 2222, net: '198.18.0.0/15' },
    { direction: 'in', protocol: 'tcp', port: 22, net: '2001:2::/48' },
    { direction: 'in', protocol: 'sctp', port: 9 },
    { direction: 'in', protocol: 'udp', port: 53, net: '198.18.0.1/32' },
  ]);
  assert.equal(formatFailsafes(entries), 'tcp:22,udp:68,tcp:6443,tcp:198.18.0.0/15:2222,tcp:[2001:2::]/48:22,sctp:9,udp:198.18.0.1/32:53');
  assert.deepEqual(parseFailsafes(formatFailsafes(entries), 'in').entries, entries);
});

test('failsafes: none and empty are no entries; bad entries named, good ones kept', () => {
  assert.deepEqual(parseFailsafes('none', 'in'), { entries: [], errors: [] });
  assert.deepEqual(parseFailsafes('', 'out'), { entries: [], errors: [] });
  const r = parseFailsafes('gre:1,tcp:70000,tcp:198.18.0.0/40:22,tcp:[2001:2::/48:22,udp:53', 'out');
  assert.deepEqual(r.entries, [{ direction: 'out', protocol: 'udp', port: 53 }]);
  assert.equal(r.errors.length, 4);
  assert.match(r.errors[0]!, /"gre:1": unknown protocol "gre"/);
  assert.match(r.errors[1]!, /bad port "70000"/);
  assert.match(r.errors[2]!, /bad CIDR/);
  assert.match(r.errors[3]!, /missing '\]'/);
});

test('failsafes: the Felix defaults', () => {
  const inb = parseFailsafes(DEFAULT_FAILSAFE_INBOUND, 'in');
  const out = parseFailsafes(DEFAULT_FAILSAFE_OUTBOUND, 'out');
  assert.deepEqual(inb.errors, []);
  assert.deepEqual(
    inb.entries.map((e) => `${e.protocol}:${e.port}`),
    ['tcp:22', 'udp:68', 'tcp:179', 'tcp:2379', 'tcp:2380', 'tcp:5473', 'tcp:6443', 'tcp:6666', 'tcp:6667'],
  );
  assert.deepEqual(
    out.entries.map((e) => `${e.protocol}:${e.port}`),
    ['udp:53', 'udp:67', 'tcp:179', 'tcp:2379', 'tcp:2380', 'tcp:5473', 'tcp:6443', 'tcp:6666', 'tcp:6667'],
  );
});
