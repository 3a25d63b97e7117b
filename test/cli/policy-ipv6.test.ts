// NetworkPolicy over IPv6 as an operator reads it: `weir ipcache`, `weir identities` and `weir
// policy` through the real bin/weir on a dual-stack model the daemon's PolicyWriter wrote into a
// private bpffs (pods with both families, a node's IPv6 addresses, an IPv6 ipBlock with an
// except), and explain's policy verdict (policyDecision, what `weir explain` prints) for IPv6
// flows, each checked against the programs (the hooks' chains to from_pod6/from_host6 under
// BPF_PROG_TEST_RUN, on the same maps): the verdict, what they count, the bits conntrack caches.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { V1Namespace, V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { desiredPolicyMaps, PolicyWriter } from '../../src/dataplane/policy-maps.js';
import { directionText, policyDecision } from '../../src/dataplane/policy-verdict.js';
import { PolicyNames } from '../../src/dataplane/policy-view.js';
import { IPPROTO } from '../../src/bpf/ip.js';
import { nodeInfo } from '../../src/model/nodes.js';
import { buildPolicyModel } from '../../src/model/policy/network-policy.js';
import { flowPacket, PolicyDataplane, TC_ACT_SHOT, type Hook, type ProtocolName } from '../bpf/policy-dataplane.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { k8sNamespace, k8sPod, networkPolicy, node } from '../lib/weir-node.js';

const A = ['198.18.1.10', '2001:2:0:1::a']; // x/a, this node
const B = ['198.18.1.11', '2001:2:0:1::b']; // x/b, this node
const C = ['198.18.2.12', '2001:2:0:2::c']; // y/c, node-2
const NODE1 = ['198.18.0.1', '2001:2::1'];
const NODE2 = ['198.18.0.2', '2001:2::2'];
const GATEWAY6 = '2001:2:0:1::1'; // this node's address on its pod interfaces
const IPPROTO_ICMPV6 = 58;

let dp: PolicyDataplane;

const weir = (...args: string[]) => {
  const r = runSync(binWeir, [...args, '--pin-dir', dp.bpffs.path], { check: false });
  assert.equal(r.code, 0, `weir ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const weirJson = <T>(...args: string[]): T => JSON.parse(weir(...args, '-o', 'json')) as T;

const POLICIES = [
  // x/a: ingress from namespace y on 8080-8100/tcp
  networkPolicy({
    name: 'allow-c',
    namespace: 'x',
    spec: {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ protocol: 'TCP', port: 8080, endPort: 8100 }] }],
    },
  }),
  // x/b: no ingress; egress to 2001:2:0:f000::/52 but not 2001:2:0:f100::/56, on 53/udp
  networkPolicy({
    name: 'deny-b',
    namespace: 'x',
    spec: {
      podSelector: { matchLabels: { pod: 'b' } },
      policyTypes: ['Ingress', 'Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '2001:2:0:f000::/52', except: ['2001:2:0:f100::/56'] } }], ports: [{ protocol: 'UDP', port: 53 }] }],
    },
  }),
];

before(() => {
  dp = new PolicyDataplane();
  const pods = [
    k8sPod({ name: 'a', namespace: 'x', labels: { pod: 'a' }, ip: A, node: 'node-1' }),
    k8sPod({ name: 'b', namespace: 'x', labels: { pod: 'b' }, ip: B, node: 'node-1' }),
    k8sPod({ name: 'c', namespace: 'y', labels: { pod: 'c' }, ip: C, node: 'node-2' }),
  ];
  const model = buildPolicyModel({
    policies: POLICIES as V1NetworkPolicy[],
    pods: pods as V1Pod[],
    namespaces: [k8sNamespace({ name: 'x', labels: { ns: 'x' } }), k8sNamespace({ name: 'y', labels: { ns: 'y' } })] as V1Namespace[],
    nodes: [node({ name: 'node-1', internalIP: NODE1 }), node({ name: 'node-2', internalIP: NODE2 })].map((n) => nodeInfo(n as never).info!),
    localNode: 'node-1',
  });
  const r = new PolicyWriter(dp.maps).apply(desiredPolicyMaps(model, 'node-1', [...NODE1, GATEWAY6]));
  assert.equal(r.errors, 0);
});
after(async () => {
  await dp?.close();
});

test('weir ipcache: IPv6 entries next to the IPv4 ones (IPv4 first), with identities and ipBlock identities', () => {
  const v = weirJson<{ entries: Array<{ prefix: string; identity: number; name: string; cidrIdentity: number; cidrName: string }> }>('ipcache');
  const e = (prefix: string, identity: number, name: string, cidrIdentity = 3, cidrName = 'world') => ({ prefix, identity, name, cidrIdentity, cidrName });
  assert.deepEqual(
    v.entries.filter((x) => x.prefix.includes(':')),
    [
      e('2001:2::1/128', 1, 'host'),
      e('2001:2::2/128', 2, 'remote-node'),
      e(`${GATEWAY6}/128`, 1, 'host'),
      e(`${A[1]}/128`, 256, 'x:{pod=a}'),
      e(`${B[1]}/128`, 257, 'x:{pod=b}'),
      e(`${C[1]}/128`, 258, 'y:{pod=c}'),
      e('2001:2:0:f000::/52', 0x1000000, 'cidr:2001:2:0:f000::/52', 0x1000000, 'cidr:2001:2:0:f000::/52'),
      e('2001:2:0:f100::/56', 0x1000001, 'cidr:2001:2:0:f100::/56', 0x1000001, 'cidr:2001:2:0:f100::/56'),
    ],
  );
  assert.equal(
    v.entries.findIndex((x) => x.prefix.includes(':')),
    v.entries.filter((x) => !x.prefix.includes(':')).length,
    'IPv4 first',
  );
  const text = weir('ipcache');
  console.log(text);
  assert.match(text, /^2001:2:0:1::a\/128\s+256\s+x:\{pod=a\}\s+-$/m);
  assert.match(text, /^2001:2:0:f100::\/56\s+16777217\s+cidr:2001:2:0:f100::\/56\s+16777217 cidr:2001:2:0:f100::\/56$/m);
});

test('weir identities and weir policy: a dual-stack pod is one identity, one endpoint per address', () => {
  const ids = weirJson<{ identities: Array<{ identity: number; ipcacheEntries: number; endpoints: number }> }>('identities');
  const a = ids.identities.find((i) => i.identity === 256)!;
  assert.deepEqual([a.ipcacheEntries, a.endpoints], [2, 2], 'x/a: an ipcache entry and an endpoint per family');
  const host = ids.identities.find((i) => i.identity === 1)!;
  assert.equal(host.ipcacheEntries, 3, "this node's InternalIPs and its IPv6 gateway address");
  const v = weirJson<{ endpoints: Array<{ address: string; identity: number; ingress: { isolated: boolean; policies: string[] } }> }>('policy');
  assert.deepEqual(
    v.endpoints.map((e) => [e.address, e.identity, e.ingress.isolated, e.ingress.policies.join()]),
    [
      [A[0], 256, true, 'x/allow-c'],
      [B[0], 257, true, 'x/deny-b'],
      [A[1], 256, true, 'x/allow-c'],
      [B[1], 257, true, 'x/deny-b'],
    ],
  );
  const text = weir('policy');
  console.log(text);
  assert.match(text, /^2001:2:0:1::b\s+257\s+x:\{pod=b\}\s+x\/deny-b \(deny all\)\s+x\/deny-b \(1 rule\)$/m);
  assert.match(text, /^rules of identity 256 x:\{pod=a\} \(198\.18\.1\.10, 2001:2:0:1::a\):$/m);
});

test("explain's policy verdict over IPv6: allowed by a rule, default deny, ipBlock except, node-local; each as the BPF decision", () => {
  const names = PolicyNames.lazy(dp.maps);
  const cases: Array<{ hook: Hook; src: string; dst: string; proto: ProtocolName; port: number; verdict: string; text: RegExp }> = [
    {
      hook: 'from_host',
      src: C[1]!,
      dst: A[1]!,
      proto: 'TCP',
      port: 8098,
      verdict: 'allowed',
      text: /^allowed by x\/allow-c rule ingress\[0\] \(peer y:\{pod=c\}, tcp\/8080-8100\)$/,
    },
    {
      hook: 'from_host',
      src: C[1]!,
      dst: A[1]!,
      proto: 'TCP',
      port: 9000,
      verdict: 'denied',
      text: /^default deny by x\/allow-c \(no rule allows y:\{pod=c\}\)$/,
    },
    {
      hook: 'from_pod',
      src: B[1]!,
      dst: '2001:2:0:f200::5',
      proto: 'UDP',
      port: 53,
      verdict: 'allowed',
      text: /^allowed by x\/deny-b rule egress\[0\] \(peer cidr:2001:2:0:f000::\/52, udp\/53\)$/,
    },
    {
      hook: 'from_pod',
      src: B[1]!,
      dst: '2001:2:0:f150::5',
      proto: 'UDP',
      port: 53,
      verdict: 'denied',
      text: /^default deny by x\/deny-b \(no rule allows cidr:2001:2:0:f100::\/56\)$/,
    },
    { hook: 'from_pod', src: B[1]!, dst: A[1]!, proto: 'ICMP', port: 0, verdict: 'denied', text: /^default deny by x\/deny-b \(no rule allows x:\{pod=a\}\)$/ },
    { hook: 'from_pod', src: B[1]!, dst: GATEWAY6, proto: 'TCP', port: 10250, verdict: 'allowed', text: /^node-local \(always allowed\)$/ },
    { hook: 'from_host', src: NODE1[1]!, dst: B[1]!, proto: 'TCP', port: 80, verdict: 'allowed', text: /^node-local \(always allowed\)$/ },
  ];
  for (const c of cases) {
    const proto = { TCP: IPPROTO.TCP, UDP: IPPROTO.UDP, SCTP: IPPROTO.SCTP, ICMP: IPPROTO_ICMPV6 }[c.proto];
    const d = policyDecision(dp.maps, names, c.src, c.dst, proto, c.port);
    const what = `${c.src} -> ${c.dst} ${c.proto}/${c.port}`;
    assert.equal(d.verdict, c.verdict, `${what}: ${JSON.stringify(d)}`);
    // the direction that decided: the denying one, else the local isolated one
    const deciding =
      d.egress.verdict === 'denied' ? d.egress : d.ingress.verdict === 'denied' ? d.ingress : d.egress.verdict !== 'not-local' ? d.egress : d.ingress;
    assert.match(directionText(deciding), c.text, what);
    // the program (the hook's chain, to from_pod6/from_host6) agrees: dropped under the reason explain gives, or allowed,
    // counted and cached in conntrack with a bit per isolated direction it passed
    dp.resetFlows([]);
    const got = dp.run(c.hook, flowPacket(c.proto, c.src, c.dst, 40000, c.port));
    const counted = Object.fromEntries(Object.entries(dp.counters()[c.hook] ?? {}).filter(([k]) => k.startsWith('policy_')));
    if (d.verdict === 'denied') {
      assert.equal(got, TC_ACT_SHOT, what);
      assert.deepEqual(counted, { [d.reason!]: 1 }, what);
      assert.equal([...dp.ct6.keys()].length, 0, `${what}: a denied flow leaves no state`);
    } else {
      assert.notEqual(got, TC_ACT_SHOT, what);
      const isolated = (x: typeof d.egress) => x.verdict === 'allowed' || x.verdict === 'node-local';
      const want = { ...(isolated(d.egress) && { policy_egress_allowed: 1 }), ...(isolated(d.ingress) && { policy_ingress_allowed: 1 }) };
      assert.deepEqual(counted, want, what);
      const entry = [...dp.ct6.entries()].find(([k]) => k.saddr === c.src && k.sport === 40000);
      assert.equal(entry?.[1].policy, (isolated(d.egress) ? 1 : 0) | (isolated(d.ingress) ? 2 : 0), `${what}: weir_ct6.policy`);
    }
  }
});

test('weir explain over IPv6: the policy verdict of a new flow, by the same path as IPv4', () => {
  type Explained = {
    hook: string;
    reason?: string;
    policy?: { stage: string; decisions: Array<{ verdict: string; reason?: string; ingress: { verdict: string } }> };
  };
  const allowed = weirJson<Explained>('explain', C[1]!, A[1]!, '8098/tcp', '--from', 'external');
  assert.equal(allowed.policy?.stage, 'decides', JSON.stringify(allowed));
  assert.deepEqual(
    allowed.policy!.decisions.map((d) => [d.verdict, d.ingress.verdict]),
    [['allowed', 'allowed']],
  );
  const denied = weirJson<Explained>('explain', C[1]!, A[1]!, '9000/tcp', '--from', 'external');
  assert.deepEqual(
    denied.policy!.decisions.map((d) => [d.verdict, d.reason]),
    [['denied', 'policy_ingress_denied']],
  );
  assert.equal(denied.reason, 'policy_ingress_denied');
  const text = weir('explain', B[1]!, '2001:2:0:f150::5', '53/udp', '--from', 'pod');
  console.log(text);
  assert.match(text, /^ {2}egress {3}2001:2:0:1::b x:\{pod=b\} \(257\): default deny by x\/deny-b \(no rule allows cidr:2001:2:0:f100::\/56\)$/m);
  // neighbour discovery from a pod isolated for egress: the programs pass it untouched, and so does explain
  const nd = weirJson<Explained>('explain', B[1]!, A[1]!, '0/icmp', '--icmp-type', '135', '--from', 'pod');
  assert.equal(nd.reason, 'pass', JSON.stringify(nd));
  assert.equal(nd.policy?.stage, 'none');
});
