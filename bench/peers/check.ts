// bench/peers: the generators checked against kube-proxy: chain-name hashes against the
// names in kube-proxy's unit tests, the iptables rule count against
// number_generated_rules_test.go (5 + N(2+3M) NAT rules), and every ruleset shape
// (ClusterIP, NodePort, externalTrafficPolicy: Local with and without local endpoints, no
// endpoints), in both families, parsed by ip(6)tables-nft-restore, ip(6)tables-legacy-restore and nft, then loaded
// for real, inside a lab netns. Run by `run.ts --check` and at the start of every run.

import { join } from 'node:path';
import type { Lab } from '../../test/lib/lab.js';
import { nftChainName, portProtoHash } from './hash.js';
import { applyIptables, flushIptables, iptablesRestoreInput, ruleCount, type IptablesVariant } from './iptables.js';
import { applyNftables, flushNftables, nftablesInput } from './nftables.js';
import { CLUSTER, CLUSTERS, fillerServices, type BenchService, type Family } from './services.js';

function expect(what: string, got: unknown, want: unknown): void {
  if (got !== want) throw new Error(`peer generator check: ${what}: got ${String(got)}, want ${String(want)}`);
}

/** Every shape the generators know, on a few services. */
export function shapeServices(family: Family = 4): BenchService[] {
  const epIP = (i: number) => (family === 6 ? `2001:2:100:1::${(10 + i).toString(16)}` : `198.18.65.${10 + i}`);
  const eps = (n: number, local: boolean[] = []) => Array.from({ length: n }, (_, i) => ({ ip: epIP(i), port: 8080, local: local[i] ?? false }));
  const vip = (i: number) => (family === 6 ? `2001:2:ff::${(0x10 + i).toString(16)}` : `198.19.0.${10 + i}`);
  return [
    { namespace: 'ns1', name: 'cluster', portName: 'http', protocol: 'tcp', clusterIP: vip(0), port: 80, endpoints: eps(3) },
    { namespace: 'ns1', name: 'dns', portName: 'dns', protocol: 'udp', clusterIP: vip(1), port: 53, endpoints: eps(2) },
    {
      namespace: 'ns1',
      name: 'np',
      portName: '',
      protocol: 'tcp',
      clusterIP: vip(2),
      port: 80,
      nodePort: 30080,
      externalTrafficPolicy: 'Cluster',
      endpoints: eps(2),
    },
    {
      namespace: 'ns1',
      name: 'np-local',
      portName: 'http',
      protocol: 'tcp',
      clusterIP: vip(3),
      port: 80,
      nodePort: 30081,
      externalTrafficPolicy: 'Local',
      endpoints: eps(3, [true, false, true]),
    },
    {
      namespace: 'ns1',
      name: 'np-remote',
      portName: 'http',
      protocol: 'tcp',
      clusterIP: vip(4),
      port: 80,
      nodePort: 30082,
      externalTrafficPolicy: 'Local',
      endpoints: eps(2),
    },
    { namespace: 'ns1', name: 'empty', portName: 'http', protocol: 'tcp', clusterIP: vip(5), port: 80, nodePort: 30083, endpoints: [] },
  ];
}

export async function checkPeers(lab: Lab, tmp: string): Promise<string[]> {
  const notes: string[] = [];
  // kube-proxy's unit tests: ns1/svc1:p80 -> KUBE-SVC-XPGD46QRK7WJZT7O; nftables
  // service-ULMVA6XW-ns1/svc1/tcp/p80 and endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
  expect('KUBE-SVC hash', `KUBE-SVC-${portProtoHash('ns1/svc1:p80', 'tcp')}`, 'KUBE-SVC-XPGD46QRK7WJZT7O');
  expect('nft service chain', nftChainName('service', 'ns1/svc1/tcp/p80'), 'service-ULMVA6XW-ns1/svc1/tcp/p80');
  expect('nft endpoint chain', nftChainName('endpoint', 'ns1/svc1/tcp/p80__10.180.0.1/80'), 'endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80');
  // number_generated_rules_test.go: NAT rules = 5 + N(2 + 3M) for ClusterIP services
  for (const [n, m] of [
    [1, 1],
    [1, 10],
    [10, 10],
  ] as const) {
    const nat = iptablesRestoreInput(fillerServices(n, m), { clusterCIDR: CLUSTER.clusterCIDR }).split('*nat')[1]!;
    expect(`NAT rules for ${n} services x ${m} endpoints`, ruleCount(nat), 5 + n * (2 + 3 * m));
  }
  notes.push('chain-name hashes and NAT rule counts match kube-proxy unit tests');

  const ns = await lab.netns('peer-check');
  const shapes = shapeServices();
  const ipt = iptablesRestoreInput(shapes, { clusterCIDR: CLUSTER.clusterCIDR });
  for (const v of ['nft', 'legacy'] as IptablesVariant[]) {
    await applyIptables(ns, v, ipt, join(tmp, `check-${v}.rules`), { test: true });
    await applyIptables(ns, v, ipt, join(tmp, `check-${v}.rules`));
    const saved = (await ns.exec(`iptables-${v}-save`, ['-t', 'nat'])).stdout;
    if (!saved.includes('--probability 0.33333333349')) throw new Error(`iptables-${v}: probability ladder missing after load:\n${saved}`);
    await flushIptables(ns, v);
  }
  notes.push(`iptables-restore (nft and legacy): ${ruleCount(ipt)} rules of every shape parse (--test) and load`);
  const nft = nftablesInput(shapes, { clusterCIDR: CLUSTER.clusterCIDR, serviceCIDR: CLUSTER.serviceCIDR, nodePortIPs: ['198.18.0.1'] });
  await applyNftables(ns, nft, join(tmp, 'check.nft'), { check: true });
  await applyNftables(ns, nft, join(tmp, 'check.nft'));
  const listed = (await ns.exec('nft', ['list', 'table', 'ip', 'kube-proxy'])).stdout;
  if (!listed.includes('numgen random mod 3 vmap')) throw new Error(`nft: numgen vmap missing after load:\n${listed.slice(0, 2000)}`);
  await flushNftables(ns);
  notes.push('nft -c and nft -f: the kube-proxy table of every shape loads');

  // the IPv6 proxier's rulesets: ip6tables of both backends, the ip6 table
  const c6 = CLUSTERS[6];
  const shapes6 = shapeServices(6);
  const ipt6 = iptablesRestoreInput(shapes6, { clusterCIDR: c6.clusterCIDR, family: 6 });
  for (const v of ['nft', 'legacy'] as IptablesVariant[]) {
    const file = join(tmp, `check6-${v}.rules`);
    await applyIptables(ns, v, ipt6, file, { test: true, family: 6 });
    await applyIptables(ns, v, ipt6, file, { family: 6 });
    const saved = (await ns.exec(`ip6tables-${v}-save`, ['-t', 'nat'])).stdout;
    if (!saved.includes('--to-destination [2001:2:100:1::a]:8080')) throw new Error(`ip6tables-${v}: IPv6 DNAT missing after load:\n${saved}`);
    await flushIptables(ns, v, 6);
  }
  notes.push(`ip6tables-restore (nft and legacy): ${ruleCount(ipt6)} IPv6 rules of every shape parse and load`);
  const nft6 = nftablesInput(shapes6, { clusterCIDR: c6.clusterCIDR, serviceCIDR: c6.serviceCIDR, nodePortIPs: ['2001:2::1'], family: 6 });
  await applyNftables(ns, nft6, join(tmp, 'check6.nft'), { check: true, family: 6 });
  await applyNftables(ns, nft6, join(tmp, 'check6.nft'), { family: 6 });
  const listed6 = (await ns.exec('nft', ['list', 'table', 'ip6', 'kube-proxy'])).stdout;
  if (!listed6.includes('dnat to [2001:2:100:1::a]:8080')) throw new Error(`nft: IPv6 DNAT missing after load:\n${listed6.slice(0, 2000)}`);
  await flushNftables(ns, 6);
  notes.push('nft -c and nft -f: the ip6 kube-proxy table of every shape loads');
  return notes;
}
