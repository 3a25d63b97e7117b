// `weir ipcache`, `weir identities`, `weir policy` and explain's policy verdict through the
// real bin/weir, against a private bpffs whose policy maps the daemon's PolicyWriter filled
// from a model buildPolicyModel built (two namespaces, pods on this node and another, an
// ingress rule with a port range, a default deny, an ipBlock egress rule with an except).
// Each explain verdict is then checked against the real programs (policy_enabled,
// ct_track_all): the packet is run through the hook explain names, and the program must drop
// it under the reason explain gives, or not drop it when explain allows it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { policyMaps } from '../../src/dataplane/loader.js';
import type { Explanation } from '../../src/dataplane/explain.js';
import { desiredPolicyMaps, PolicyWriter } from '../../src/dataplane/policy-maps.js';
import { nodeInfo } from '../../src/model/nodes.js';
import { buildPolicyModel } from '../../src/model/policy/network-policy.js';
import { addService, loadServiceDataplane, TC, type ServiceDataplane } from '../bpf/service-fixture.js';
import { tcp, udp } from '../fixtures/service-case.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { k8sNamespace, k8sPod, networkPolicy, node } from '../lib/weir-node.js';

const A = '198.18.1.10'; // x/a, this node
const A2 = '198.18.1.13'; // x/a2, this node, same labels as x/a: the same identity
const B = '198.18.1.11'; // x/b, this node
const C = '198.18.2.12'; // y/c, node-2
const NODE1 = '198.18.0.1';
const NODE2 = '198.18.0.2';
const VIP = '198.19.0.10';

let dp: ServiceDataplane;
let maps: ReturnType<typeof policyMaps>;

const weir = (...args: string[]) => {
  const r = runSync(binWeir, [...args, '--pin-dir', dp.bpffs.path], { check: false });
  assert.equal(r.code, 0, `weir ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const weirJson = <T>(...args: string[]): T => JSON.parse(weir(...args, '-o', 'json')) as T;

function inputs(policies: object[]) {
  const pods = [
    k8sPod({ name: 'a', namespace: 'x', labels: { pod: 'a' }, ip: A, node: 'node-1', ports: [{ name: 'serve-80', containerPort: 80 }] }),
    k8sPod({ name: 'a2', namespace: 'x', labels: { pod: 'a' }, ip: A2, node: 'node-1', ports: [{ name: 'serve-80', containerPort: 80 }] }),
    k8sPod({ name: 'b', namespace: 'x', labels: { pod: 'b' }, ip: B, node: 'node-1' }),
    k8sPod({ name: 'c', namespace: 'y', labels: { pod: 'c' }, ip: C, node: 'node-2' }),
  ];
  const nodes = [node({ name: 'node-1', internalIP: NODE1 }), node({ name: 'node-2', internalIP: NODE2 })];
  return {
    policies: policies as V1NetworkPolicy[],
    pods: pods as V1Pod[],
    namespaces: [k8sNamespace({ name: 'x', labels: { ns: 'x' } }), k8sNamespace({ name: 'y', labels: { ns: 'y' } })] as V1Namespace[],
    nodes: nodes.map((n) => nodeInfo(n as never).info!),
    localNode: 'node-1',
  };
}

const POLICIES = [
  // x/a: ingress from namespace y on 8080-8100 and on the named port serve-80 (80)
  networkPolicy({
    name: 'allow-c',
    namespace: 'x',
    spec: {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ protocol: 'TCP', port: 8080, endPort: 8100 }, { port: 'serve-80' }] }],
    },
  }),
  // x/b: no ingress at all; egress to 198.18.64.0/24 but not its upper half, on 53/udp, and to 198.18.2.0/24 on 8443/tcp
  networkPolicy({
    name: 'deny-b',
    namespace: 'x',
    spec: {
      podSelector: { matchLabels: { pod: 'b' } },
      policyTypes: ['Ingress', 'Egress'],
      egress: [
        { to: [{ ipBlock: { cidr: '198.18.64.0/24', except: ['198.18.64.128/25'] } }], ports: [{ protocol: 'UDP', port: 53 }] },
        // node-2's pod range: y/c is matched by its ipBlock identity, not its pod identity
        { to: [{ ipBlock: { cidr: '198.18.2.0/24' } }], ports: [{ protocol: 'TCP', port: 8443 }] },
      ],
    },
  }),
];

before(() => {
  dp = loadServiceDataplane({ policy_enabled: 1, ct_track_all: 1 });
  maps = policyMaps((name) => dp.objects.fromPod.map(name));
  const model = buildPolicyModel(inputs(POLICIES));
  const want = desiredPolicyMaps(model, 'node-1', [NODE1]);
  const r = new PolicyWriter(maps).apply(want);
  assert.equal(r.errors, 0);
});
after(async () => {
  await dp?.close();
});

const resetFlows = () => dp.conntrack.deleteMany([...dp.conntrack.keys()]);

test('weir ipcache: every entry with its identity, its name and its ipBlock identity', () => {
  const v = weirJson<{ entries: unknown[] }>('ipcache');
  const e = (prefix: string, identity: number, name: string, cidrIdentity = 3, cidrName = 'world') => ({ prefix, identity, name, cidrIdentity, cidrName });
  assert.deepEqual(v, {
    entries: [
      e(`${NODE1}/32`, 1, 'host'),
      e(`${NODE2}/32`, 2, 'remote-node'),
      e(`${A}/32`, 256, 'x:{pod=a}'),
      e(`${B}/32`, 257, 'x:{pod=b}'),
      e(`${A2}/32`, 256, 'x:{pod=a}'),
      e('198.18.2.0/24', 0x1000000, 'cidr:198.18.2.0/24', 0x1000000, 'cidr:198.18.2.0/24'),
      e(`${C}/32`, 258, 'y:{pod=c}', 0x1000000, 'cidr:198.18.2.0/24'),
      e('198.18.64.0/24', 0x1000001, 'cidr:198.18.64.0/24', 0x1000001, 'cidr:198.18.64.0/24'),
      e('198.18.64.128/25', 0x1000002, 'cidr:198.18.64.128/25', 0x1000002, 'cidr:198.18.64.128/25'),
    ],
  });
  const text = weir('ipcache');
  console.log(text);
  assert.match(text, /^PREFIX\s+IDENTITY\s+NAME\s+CIDRIDENTITY$/m);
  assert.match(text, /^198\.18\.1\.10\/32\s+256\s+x:\{pod=a\}\s+-$/m);
  assert.match(text, /^198\.18\.2\.12\/32\s+258\s+y:\{pod=c\}\s+16777216 cidr:198\.18\.2\.0\/24$/m);
});

test('weir identities: reserved, pods decoded from their keys, CIDRs, and who carries each', () => {
  const v = weirJson<{ identities: Array<Record<string, unknown>> }>('identities');
  const count = (ipcacheEntries: number, endpoints: number, ipcacheCidrEntries = 0) => ({ ipcacheEntries, ipcacheCidrEntries, endpoints });
  const nsLabels = (ns: string) => ({ 'kubernetes.io/metadata.name': ns, ns });
  assert.deepEqual(v.identities, [
    { identity: 1, kind: 'reserved', name: 'host', ...count(1, 0) },
    { identity: 2, kind: 'reserved', name: 'remote-node', ...count(1, 0) },
    { identity: 3, kind: 'reserved', name: 'world', ...count(0, 0) },
    {
      identity: 256,
      kind: 'pod',
      name: 'x:{pod=a}',
      namespace: 'x',
      labels: { pod: 'a' },
      namespaceLabels: nsLabels('x'),
      namedPorts: { 'serve-80/TCP': 80 },
      ...count(2, 2),
    },
    { identity: 257, kind: 'pod', name: 'x:{pod=b}', namespace: 'x', labels: { pod: 'b' }, namespaceLabels: nsLabels('x'), namedPorts: {}, ...count(1, 1) },
    { identity: 258, kind: 'pod', name: 'y:{pod=c}', namespace: 'y', labels: { pod: 'c' }, namespaceLabels: nsLabels('y'), namedPorts: {}, ...count(1, 0) },
    { identity: 0x1000000, kind: 'cidr', name: 'cidr:198.18.2.0/24', cidr: '198.18.2.0/24', ...count(1, 0, 1) },
    { identity: 0x1000001, kind: 'cidr', name: 'cidr:198.18.64.0/24', cidr: '198.18.64.0/24', ...count(1, 0) },
    { identity: 0x1000002, kind: 'cidr', name: 'cidr:198.18.64.128/25', cidr: '198.18.64.128/25', ...count(1, 0) },
  ]);
  const text = weir('identities');
  console.log(text);
  assert.match(text, /^\s+256\s+pod\s+x:\{pod=a\}\s+2\s+2\s+ns x labels \{pod=a\} nsLabels \{ns=x\} ports \{serve-80\/TCP=80\}$/m);
  assert.match(text, /^\s+3\s+reserved\s+world\s+0\s+0\s+no ipcache entry$/m);
});

test('weir policy: isolation, selecting policies and compiled rules per endpoint; port ranges as ranges; a default deny', () => {
  const v = weirJson<{ endpoints: Array<Record<string, unknown>> }>('policy');
  const rule = (peer: number, peerName: string, protocol: string, port: number, endPort: number, policy: string, ruleText: string) => ({
    peer,
    peerName,
    protocol,
    ports: port === endPort ? String(port) : `${port}-${endPort}`,
    port,
    endPort,
    policy,
    rule: Number(/\[(\d+)\]/.exec(ruleText)![1]),
    ruleText,
  });
  const open = { isolated: false, policies: [], rules: [] };
  const a = (address: string) => ({
    address,
    identity: 256,
    name: 'x:{pod=a}',
    ingress: {
      isolated: true,
      policies: ['x/allow-c'],
      rules: [rule(258, 'y:{pod=c}', 'tcp', 80, 80, 'x/allow-c', 'ingress[0]'), rule(258, 'y:{pod=c}', 'tcp', 8080, 8100, 'x/allow-c', 'ingress[0]')],
    },
    egress: open,
  });
  assert.deepEqual(v.endpoints, [
    a(A),
    {
      address: B,
      identity: 257,
      name: 'x:{pod=b}',
      ingress: { isolated: true, policies: ['x/deny-b'], rules: [] },
      egress: {
        isolated: true,
        policies: ['x/deny-b'],
        rules: [
          rule(0x1000000, 'cidr:198.18.2.0/24', 'tcp', 8443, 8443, 'x/deny-b', 'egress[1]'),
          rule(0x1000001, 'cidr:198.18.64.0/24', 'udp', 53, 53, 'x/deny-b', 'egress[0]'),
        ],
      },
    },
    a(A2),
  ]);
  const text = weir('policy');
  console.log(text);
  assert.match(text, /^ENDPOINT\s+IDENTITY\s+NAME\s+INGRESS\s+EGRESS$/m);
  assert.match(text, /^198\.18\.1\.13\s+256\s+x:\{pod=a\}\s+x\/allow-c \(2 rules\)\s+-$/m);
  // the two endpoints of identity 256 share one rule table
  assert.equal(text.match(/^rules of identity 256 x:\{pod=a\} \(198\.18\.1\.10, 198\.18\.1\.13\):$/gm)?.length, 1);
  assert.match(text, /^ingress\s+258 y:\{pod=c\}\s+tcp\s+8080-8100\s+x\/allow-c\s+ingress\[0\]$/m);
  assert.match(text, /^egress\s+16777217 cidr:198\.18\.64\.0\/24\s+udp\s+53\s+x\/deny-b\s+egress\[0\]$/m);
  assert.match(text, /^198\.18\.1\.11\s+257\s+x:\{pod=b\}\s+x\/deny-b \(deny all\)\s+x\/deny-b \(2 rules\)$/m);
});

type IpcacheRowJson = { prefix: string; name: string };
type Decision = NonNullable<Explanation['policy']>['decisions'][number];

/** The policy part of `weir explain -o json`, for one destination. */
function explainPolicy(args: string[]): { e: Explanation; d: Decision[] } {
  const e = weirJson<Explanation>('explain', ...args);
  assert.equal(e.policy?.stage, 'decides', JSON.stringify(e.policy));
  return { e, d: e.policy!.decisions };
}

/** The packet through the real program of the hook explain named: what it counted under policy_*. */
function programSays(hook: 'from_pod' | 'from_host', pkt: Buffer): { dropped: boolean; policy: Record<string, number> } {
  resetFlows();
  dp.resetCounters();
  const r = dp.run(hook === 'from_pod' ? 'fromPod' : 'fromHost', pkt);
  const counted = dp.counters()[hook] ?? {};
  resetFlows();
  return { dropped: r.retval === TC.drop, policy: Object.fromEntries(Object.entries(counted).filter(([k]) => k.startsWith('policy_'))) };
}

/** What policy4_check counts for a decision: each isolated direction it passes, then the denying one (egress first). */
function countsOf(d: Decision): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, dir] of [
    ['egress', d.egress],
    ['ingress', d.ingress],
  ] as const) {
    if (dir.verdict === 'denied') return { ...out, [`policy_${name}_denied`]: 1 };
    if (dir.verdict === 'allowed' || dir.verdict === 'node-local') out[`policy_${name}_allowed`] = 1;
  }
  return out;
}

test('weir explain: allowed by a rule (port range), default deny, ipBlock except, node-local; each as the program decides it', () => {
  const cases: Array<{ args: string[]; pkt: Buffer; verdict: string; ingress: string; egress: string; text: RegExp }> = [
    {
      args: [C, A, '8098/tcp', '--from', 'external'],
      pkt: tcp(`${C}:40000`, `${A}:8098`, ['syn']).make().build(),
      verdict: 'allowed',
      egress: 'not-local',
      ingress: 'allowed',
      text: /^ {2}ingress {2}198\.18\.1\.10 x:\{pod=a\} \(256\): allowed by x\/allow-c rule ingress\[0\] \(peer y:\{pod=c\}, tcp\/8080-8100\)$/m,
    },
    {
      args: [C, A, '9000/tcp', '--from', 'external'],
      pkt: tcp(`${C}:40000`, `${A}:9000`, ['syn']).make().build(),
      verdict: 'denied',
      egress: 'not-local',
      ingress: 'denied',
      text: /^ {2}ingress {2}198\.18\.1\.10 x:\{pod=a\} \(256\): default deny by x\/allow-c \(no rule allows y:\{pod=c\} \/ cidr:198\.18\.2\.0\/24\)$/m,
    },
    {
      args: [A, B, '80/tcp', '--from', 'pod'],
      pkt: tcp(`${A}:40000`, `${B}:80`, ['syn']).make().build(),
      verdict: 'denied',
      egress: 'not-isolated',
      ingress: 'denied',
      text: /^ {2}egress {3}198\.18\.1\.10 x:\{pod=a\} \(256\): not isolated$/m,
    },
    {
      args: [B, '198.18.64.5', '53/udp', '--from', 'pod'],
      pkt: udp(`${B}:40000`, '198.18.64.5:53').make().build(),
      verdict: 'allowed',
      egress: 'allowed',
      ingress: 'not-local',
      text: /^ {2}egress {3}198\.18\.1\.11 x:\{pod=b\} \(257\): allowed by x\/deny-b rule egress\[0\] \(peer cidr:198\.18\.64\.0\/24, udp\/53\)$/m,
    },
    {
      args: [B, C, '8443/tcp', '--from', 'pod'],
      pkt: tcp(`${B}:40000`, `${C}:8443`, ['syn']).make().build(),
      verdict: 'allowed',
      egress: 'allowed',
      ingress: 'not-local',
      text: /^ {2}egress {3}198\.18\.1\.11 x:\{pod=b\} \(257\): allowed by x\/deny-b rule egress\[1\] \(peer cidr:198\.18\.2\.0\/24, tcp\/8443\)$/m,
    },
    {
      args: [B, C, '8444/tcp', '--from', 'pod'],
      pkt: tcp(`${B}:40000`, `${C}:8444`, ['syn']).make().build(),
      verdict: 'denied',
      egress: 'denied',
      ingress: 'not-local',
      text: /^ {2}egress {3}198\.18\.1\.11 x:\{pod=b\} \(257\): default deny by x\/deny-b \(no rule allows y:\{pod=c\} \/ cidr:198\.18\.2\.0\/24\)$/m,
    },
    {
      args: [B, '198.18.64.200', '53/udp', '--from', 'pod'],
      pkt: udp(`${B}:40000`, '198.18.64.200:53').make().build(),
      verdict: 'denied',
      egress: 'denied',
      ingress: 'not-local',
      text: /^ {2}egress {3}198\.18\.1\.11 x:\{pod=b\} \(257\): default deny by x\/deny-b \(no rule allows cidr:198\.18\.64\.128\/25\)$/m,
    },
    {
      args: [NODE1, B, '80/tcp', '--from', 'external'],
      pkt: tcp(`${NODE1}:40000`, `${B}:80`, ['syn']).make().build(),
      verdict: 'allowed',
      egress: 'not-local',
      ingress: 'node-local',
      text: /^ {2}ingress {2}198\.18\.1\.11 x:\{pod=b\} \(257\): node-local \(always allowed\)$/m,
    },
  ];
  for (const c of cases) {
    const { e, d } = explainPolicy(c.args);
    assert.equal(d.length, 1);
    assert.deepEqual([d[0]!.verdict, d[0]!.egress.verdict, d[0]!.ingress.verdict], [c.verdict, c.egress, c.ingress], c.args.join(' '));
    const reason = c.verdict === 'denied' ? `policy_${c.egress === 'denied' ? 'egress' : 'ingress'}_denied` : undefined;
    assert.equal(d[0]!.reason, reason);
    assert.equal(e.reason, reason ?? 'pass');
    const text = weir('explain', ...c.args);
    assert.match(text, c.text, text);
    // the program: drops it under explain's reason, or lets it through (and counts the allowed direction)
    const prog = programSays(e.hook, c.pkt);
    console.log(`${c.args.join(' ')}: explain ${d[0]!.verdict}, program ${JSON.stringify(prog)}`);
    assert.equal(prog.dropped, c.verdict === 'denied', c.args.join(' '));
    assert.deepEqual(prog.policy, countsOf(d[0]!), c.args.join(' '));
  }
  // the JSON of one allowed direction in full
  const { d } = explainPolicy([C, A, '8098/tcp', '--from', 'external']);
  assert.deepEqual(d[0]!.ingress, {
    verdict: 'allowed',
    endpoint: A,
    identity: 256,
    name: 'x:{pod=a}',
    peer: { address: C, identity: 258, name: 'y:{pod=c}', cidrIdentity: 0x1000000, cidrName: 'cidr:198.18.2.0/24' },
    allowedBy: { policy: 'x/allow-c', rule: 0, ruleText: 'ingress[0]', peer: 258, peerName: 'y:{pod=c}', protocol: 'tcp', ports: '8080-8100' },
  });
});

test('weir explain to a Service: each backend candidate gets its own verdict (the backend port, the client address)', () => {
  addService(dp, {
    id: 1,
    address: VIP,
    port: 80,
    backends: [
      { address: A, port: 8090 },
      { address: B, port: 80 },
    ],
  });
  try {
    const { e, d } = explainPolicy([C, VIP, '80/tcp', '--from', 'external']);
    assert.deepEqual(
      d.map((x) => [x.backend?.slot, x.dst, x.port, x.verdict, x.ingress.verdict]),
      [
        [0, A, 8090, 'allowed', 'allowed'],
        [1, B, 80, 'denied', 'denied'],
      ],
    );
    assert.deepEqual(
      e.outcomes.map((o) => [o.backend?.slot, o.tc, o.reason]),
      [
        [0, 'pass', 'service_nat'],
        [1, 'drop', 'policy_ingress_denied'],
      ],
    );
    const text = weir('explain', C, VIP, '80/tcp', '--from', 'external');
    console.log(text);
    assert.match(text, /^policy {4}slot 0 198\.18\.1\.10:8090\/tcp: allowed$/m);
    assert.match(text, /^policy {4}slot 1 198\.18\.1\.11:80\/tcp: denied \(policy_ingress_denied\)$/m);
    assert.match(text, /^ {2}slot 1: tc drop, counted as policy_ingress_denied$/m);
  } finally {
    dp.frontends.delete({ address: VIP, port: 80, protocol: 6, scope: 0 });
    dp.backends.deleteMany([0, 1].map((slot) => ({ frontend_id: 1, slot })));
  }
  // one backend each: the program's own pick agrees with the candidate's verdict
  for (const [backend, port, denied] of [
    [A, 8090, false],
    [B, 80, true],
  ] as const) {
    addService(dp, { id: 2, address: VIP, port: 81, backends: [{ address: backend, port }] });
    const { d } = explainPolicy([C, VIP, '81/tcp', '--from', 'external']);
    assert.equal(d[0]!.verdict, denied ? 'denied' : 'allowed');
    const prog = programSays('from_host', tcp(`${C}:40000`, `${VIP}:81`, ['syn']).make().build());
    assert.equal(prog.dropped, denied, `${backend}:${port}: ${JSON.stringify(prog)}`);
  }
});

test('weir explain: a packet without an entry that starts no flow (a mid-stream segment) is decided as the program decides it', () => {
  const e = weirJson<Explanation>('explain', C, A, '9000/tcp', '--from', 'external', '--tcp-flags', 'ack');
  assert.equal(e.policy?.stage, 'decides');
  const denied = e.policy!.decisions[0]!.verdict === 'denied';
  const prog = programSays('from_host', tcp(`${C}:40000`, `${A}:9000`, ['ack']).make().build());
  assert.equal(prog.dropped, denied, JSON.stringify({ explain: e.policy, prog }));
});

test('an identity whose key does not decode is listed as unknown with its raw key, not a crash', () => {
  const key = Buffer.alloc(1024);
  key.write('["x", "not a label list"]');
  maps.identities.set(300, { key });
  maps.ipcache.set({ prefixlen: 32, address: '198.18.1.99' }, { identity: 300, cidr_identity: 3 });
  try {
    const ids = weirJson<{ identities: Array<Record<string, unknown>> }>('identities').identities;
    assert.deepEqual(
      ids.find((i) => i.identity === 300),
      { identity: 300, kind: 'unknown', name: 'unknown:300', key: '["x", "not a label list"]', ipcacheEntries: 1, ipcacheCidrEntries: 0, endpoints: 0 },
    );
    assert.match(weir('identities'), /^\s+300\s+unknown\s+unknown:300\s+1\s+0\s+\(undecoded key\) \["x", "not a label list"\]$/m);
    assert.equal(weirJson<{ entries: IpcacheRowJson[] }>('ipcache').entries.find((e) => e.prefix === '198.18.1.99/32')?.name, 'unknown:300');
  } finally {
    maps.ipcache.delete({ prefixlen: 32, address: '198.18.1.99' });
    maps.identities.delete(300);
  }
});
