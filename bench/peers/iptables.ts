// bench/peers: kube-proxy's iptables mode, as its syncProxyRules writes it: the
// `iptables-restore --noflush` input (*filter then *nat, chain declarations, then rules)
// for ClusterIP, NodePort and externalTrafficPolicy: Local services, plus the jump rules
// kube-proxy installs into the built-in chains, for either family (the IPv6 proxier writes the
// same rules through ip6tables with IPv6 addresses, DNAT to [ip]:port, and no localnet rule in
// KUBE-FIREWALL: route_localnet is IPv4 only). Recipe and rule counts:
// /work/shared/reference/kube-proxy-and-users.md §1 (TestOverallIPTablesRules).
// Left out on purpose: the `-m nfacct` matches (metrics plumbing that needs xt_nfacct;
// the INVALID drop stays, in its pre-nfacct form) and the localhost-NodePort rule (nfacct).

import { writeFileSync } from 'node:fs';
import type { Netns } from '../../test/lib/lab.js';
import { endpointHash, portProtoHash } from './hash.js';
import { hostPort, servicePortName, type BenchService, type Family } from './services.js';

export type IptablesVariant = 'nft' | 'legacy';

export interface IptablesOptions {
  /** the local-traffic detector's --cluster-cidr */
  clusterCIDR: string;
  /** kube-proxy's largeClusterEndpointsThreshold (1000): above it, per-endpoint comments go */
  largeClusterThreshold?: number;
  /** the proxier's family (default 4) */
  family?: Family;
}

const MASQ_MARK = '0x4000';

/** `%0.10f` of 1/(n-i), as kube-proxy's probability() formats it */
export function probability(n: number): string {
  return (1 / n).toFixed(10);
}

const q = (s: string) => (/\s/.test(s) ? `"${s}"` : s);

/** The --noflush restore input kube-proxy would write for these services. */
export function iptablesRestoreInput(services: readonly BenchService[], opts: IptablesOptions): string {
  const totalEndpoints = services.reduce((a, s) => a + s.endpoints.length, 0);
  const largeCluster = totalEndpoints > (opts.largeClusterThreshold ?? 1000);
  const filterChains = ['KUBE-NODEPORTS', 'KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FIREWALL', 'KUBE-FORWARD', 'KUBE-PROXY-FIREWALL'];
  const filterRules: string[] = [];
  const natChains = ['KUBE-NODEPORTS', 'KUBE-SERVICES', 'KUBE-MARK-MASQ', 'KUBE-POSTROUTING'];
  const natRules: string[] = [
    `-A KUBE-POSTROUTING -m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${MASQ_MARK}`,
    `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
    `-A KUBE-MARK-MASQ -j MARK --or-mark ${MASQ_MARK}`,
  ];

  for (const s of services) {
    const spn = servicePortName(s);
    const proto = s.protocol;
    const h = portProtoHash(spn, proto);
    const svcChain = `KUBE-SVC-${h}`;
    const extChain = `KUBE-EXT-${h}`;
    const svlChain = `KUBE-SVL-${h}`;
    const match = `-m ${proto} -p ${proto} -d ${s.clusterIP} --dport ${s.port}`;
    const local = s.externalTrafficPolicy === 'Local';
    const localEps = s.endpoints.filter((e) => e.local);

    if (s.endpoints.length === 0) {
      filterRules.push(`-A KUBE-SERVICES -m comment --comment "${spn} has no endpoints" ${match} -j REJECT`);
      if (s.nodePort)
        filterRules.push(
          `-A KUBE-EXTERNAL-SERVICES -m comment --comment "${spn} has no endpoints" -m addrtype --dst-type LOCAL -m ${proto} -p ${proto} --dport ${s.nodePort} -j REJECT`,
        );
      continue;
    }

    natChains.push(svcChain);
    natRules.push(`-A KUBE-SERVICES -m comment --comment "${spn} cluster IP" ${match} -j ${svcChain}`);

    if (s.nodePort) {
      natChains.push(extChain);
      natRules.push(`-A KUBE-NODEPORTS -m comment --comment ${q(spn)} -m ${proto} -p ${proto} --dport ${s.nodePort} -j ${extChain}`);
      if (!local) {
        natRules.push(`-A ${extChain} -m comment --comment "masquerade traffic for ${spn} external destinations" -j KUBE-MARK-MASQ`);
        natRules.push(`-A ${extChain} -j ${svcChain}`);
      } else {
        natRules.push(`-A ${extChain} -m comment --comment "pod traffic for ${spn} external destinations" -s ${opts.clusterCIDR} -j ${svcChain}`);
        natRules.push(
          `-A ${extChain} -m comment --comment "masquerade LOCAL traffic for ${spn} external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
        );
        natRules.push(`-A ${extChain} -m comment --comment "route LOCAL traffic for ${spn} external destinations" -m addrtype --src-type LOCAL -j ${svcChain}`);
        if (localEps.length) {
          natChains.push(svlChain);
          natRules.push(`-A ${extChain} -j ${svlChain}`);
        } else {
          filterRules.push(
            `-A KUBE-EXTERNAL-SERVICES -m comment --comment "${spn} has no local endpoints" -m addrtype --dst-type LOCAL -m ${proto} -p ${proto} --dport ${s.nodePort} -j DROP`,
          );
        }
      }
    }

    // the cluster chain: masquerade off-cluster sources, then the probability ladder
    natRules.push(`-A ${svcChain} -m comment --comment "${spn} cluster IP" ${match} ! -s ${opts.clusterCIDR} -j KUBE-MARK-MASQ`);
    const sepOf = (e: { ip: string; port: number }) => `KUBE-SEP-${endpointHash(spn, proto, hostPort(e.ip, e.port))}`;
    const ladder = (chain: string, eps: readonly { ip: string; port: number }[]) =>
      eps.forEach((e, i) => {
        const stat = i < eps.length - 1 ? ` -m statistic --mode random --probability ${probability(eps.length - i)}` : '';
        natRules.push(`-A ${chain} -m comment --comment "${spn} -> ${hostPort(e.ip, e.port)}"${stat} -j ${sepOf(e)}`);
      });
    ladder(svcChain, s.endpoints);
    if (s.nodePort && local && localEps.length) ladder(svlChain, localEps);

    for (const e of s.endpoints) {
      const sep = sepOf(e);
      natChains.push(sep);
      const comment = largeCluster ? '' : ` -m comment --comment ${q(spn)}`;
      natRules.push(`-A ${sep}${comment} -s ${e.ip} -j KUBE-MARK-MASQ`);
      natRules.push(`-A ${sep}${comment} -m ${proto} -p ${proto} -j DNAT --to-destination ${hostPort(e.ip, e.port)}`);
    }
  }
  natRules.push(
    `-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
  );

  const staticFilter = [
    ...((opts.family ?? 4) === 4
      ? [
          `-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
        ]
      : []),
    `-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP`,
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${MASQ_MARK}/${MASQ_MARK} -j ACCEPT`,
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
  ];
  return [
    '*filter',
    ...filterChains.map((c) => `:${c} - [0:0]`),
    ...filterRules,
    ...staticFilter,
    'COMMIT',
    '*nat',
    ...natChains.map((c) => `:${c} - [0:0]`),
    ...natRules,
    'COMMIT',
    '',
  ].join('\n');
}

/** The jumps from the built-in chains (iptablesJumpChains), which kube-proxy keeps with -C/-I. */
export function iptablesJumps(): string {
  const NEW = '-m conntrack --ctstate NEW';
  return [
    '*filter',
    `-I INPUT 1 ${NEW} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
    `-I INPUT 1 -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS`,
    `-I INPUT 1 ${NEW} -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`,
    `-I INPUT 1 -j KUBE-FIREWALL`,
    `-I FORWARD 1 ${NEW} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
    `-I FORWARD 1 -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD`,
    `-I FORWARD 1 ${NEW} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-I FORWARD 1 ${NEW} -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`,
    `-I OUTPUT 1 ${NEW} -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
    `-I OUTPUT 1 ${NEW} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-I OUTPUT 1 -j KUBE-FIREWALL`,
    'COMMIT',
    '*nat',
    `-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-I OUTPUT 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`,
    'COMMIT',
    '',
  ].join('\n');
}

/** Rules in a restore input (lines starting with -A/-I), for the report. */
export function ruleCount(input: string): number {
  let n = 0;
  for (let i = input.indexOf('\n-'); i >= 0; i = input.indexOf('\n-', i + 1)) n++;
  return n;
}

/** iptables or ip6tables, of a backend */
const bin = (v: IptablesVariant, family: Family, suffix = '') => `${family === 6 ? 'ip6' : 'ip'}tables-${v}${suffix}`;

/**
 * Load a ruleset into a lab netns as kube-proxy does (a full sync: everything flushed first,
 * then one --noflush restore, then the jumps). Returns the main restore's wall time in ms.
 * `test` only parses and checks (--test), changing nothing.
 */
export async function applyIptables(
  ns: Netns,
  variant: IptablesVariant,
  input: string,
  file: string,
  o: { test?: boolean; family?: Family } = {},
): Promise<number> {
  const family = o.family ?? 4;
  writeFileSync(file, input);
  const args = ['--noflush', '--counters', '-w', '5', ...(o.test ? ['--test'] : []), file];
  if (!o.test) await flushIptables(ns, variant, family);
  const t0 = process.hrtime.bigint();
  await ns.exec(bin(variant, family, '-restore'), args, { timeoutMs: 900_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!o.test) {
    writeFileSync(`${file}.jumps`, iptablesJumps());
    await ns.exec(bin(variant, family, '-restore'), ['--noflush', '-w', '5', `${file}.jumps`]);
  }
  return ms;
}

/** Remove every rule and chain of the filter and nat tables of one family (the lab netns has no others). */
export async function flushIptables(ns: Netns, variant: IptablesVariant, family: Family = 4): Promise<void> {
  for (const table of ['filter', 'nat']) {
    await ns.exec(bin(variant, family), ['-w', '5', '-t', table, '-F'], { timeoutMs: 300_000 });
    await ns.exec(bin(variant, family), ['-w', '5', '-t', table, '-X'], { timeoutMs: 300_000 });
  }
}
