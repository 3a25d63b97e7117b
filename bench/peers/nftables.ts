// bench/peers: kube-proxy's nftables mode (KEP-3866): the `ip kube-proxy` table with its
// base chains, sets and verdict maps, one service chain per service port dispatching with
// `numgen random mod M vmap`, one endpoint chain per endpoint, written as the `nft -f`
// transaction kube-proxy sends on a full sync. Recipe: /work/shared/reference/
// kube-proxy-and-users.md §2 (baseRules / TestOverallNFTablesRules). Either family: the IPv6
// proxier's table is `ip6 kube-proxy` with ipv6_addr sets, `ip6 daddr/saddr` matches, DNAT to
// [ip]:port and endpoint chain names with the address's colons as dots.

import { writeFileSync } from 'node:fs';
import type { Netns } from '../../test/lib/lab.js';
import { nftChainName } from './hash.js';
import { hostPort, servicePortName, type BenchService, type Family } from './services.js';

export interface NftablesOptions {
  clusterCIDR: string;
  serviceCIDR: string;
  /** NodePort addresses (--nodeport-addresses primary: the node's primary IP) */
  nodePortIPs: string[];
  /** the proxier's family (default 4) */
  family?: Family;
}

/** The names that differ between the families: table, address match, set type. */
function dialect(family: Family = 4) {
  return family === 6 ? { T: 'ip6 kube-proxy', ip: 'ip6', addr: 'ipv6_addr' } : { T: 'ip kube-proxy', ip: 'ip', addr: 'ipv4_addr' };
}

function baseRules(o: NftablesOptions): string[] {
  const { T, ip, addr } = dialect(o.family);
  return [
    `add table ${T} { comment "rules for kube-proxy" ; }`,
    `add chain ${T} mark-for-masquerade`,
    `add rule ${T} mark-for-masquerade mark set mark or 0x4000`,
    `add chain ${T} masquerading`,
    `add rule ${T} masquerading mark and 0x4000 == 0 return`,
    `add rule ${T} masquerading mark set mark xor 0x4000`,
    `add rule ${T} masquerading masquerade fully-random`,
    `add chain ${T} services`,
    `add chain ${T} service-endpoints-check`,
    `add chain ${T} nodeport-endpoints-check`,
    `add chain ${T} firewall-check`,
    `add chain ${T} cluster-ips-check`,
    `add chain ${T} reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`,
    `add rule ${T} reject-chain reject`,
    `add set ${T} cluster-ips { type ${addr} ; comment "Active ClusterIPs" ; }`,
    `add set ${T} nodeport-ips { type ${addr} ; comment "IPs that accept NodePort traffic" ; }`,
    `add map ${T} service-ips { type ${addr} . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
    `add map ${T} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`,
    `add map ${T} firewall-ips { type ${addr} . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`,
    `add map ${T} no-endpoint-services { type ${addr} . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`,
    `add map ${T} no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`,
    // the public hook contract (KEP-3866): filter at -110 before DNAT and at 0, nat at -100 / 100
    `add chain ${T} filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }`,
    `add rule ${T} filter-prerouting-pre-dnat ct state new jump firewall-check`,
    `add chain ${T} filter-output-pre-dnat { type filter hook output priority -110 ; }`,
    `add rule ${T} filter-output-pre-dnat ct state new jump firewall-check`,
    `add chain ${T} filter-forward { type filter hook forward priority 0 ; }`,
    `add rule ${T} filter-forward ct state new jump service-endpoints-check`,
    `add rule ${T} filter-forward ct state new jump cluster-ips-check`,
    `add chain ${T} filter-input { type filter hook input priority 0 ; }`,
    `add rule ${T} filter-input ct state new jump nodeport-endpoints-check`,
    `add rule ${T} filter-input ct state new jump service-endpoints-check`,
    `add chain ${T} filter-output { type filter hook output priority 0 ; }`,
    `add rule ${T} filter-output ct state new jump service-endpoints-check`,
    `add rule ${T} filter-output ct state new jump cluster-ips-check`,
    `add chain ${T} nat-prerouting { type nat hook prerouting priority -100 ; }`,
    `add rule ${T} nat-prerouting jump services`,
    `add chain ${T} nat-output { type nat hook output priority -100 ; }`,
    `add rule ${T} nat-output jump services`,
    `add chain ${T} nat-postrouting { type nat hook postrouting priority 100 ; }`,
    `add rule ${T} nat-postrouting jump masquerading`,
    `add rule ${T} firewall-check ${ip} daddr . meta l4proto . th dport vmap @firewall-ips`,
    `add rule ${T} service-endpoints-check ${ip} daddr . meta l4proto . th dport vmap @no-endpoint-services`,
    `add rule ${T} nodeport-endpoints-check ${ip} daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports`,
    `add rule ${T} cluster-ips-check ${ip} daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
    `add rule ${T} cluster-ips-check ${ip} daddr { ${o.serviceCIDR} } drop comment "Drop traffic to unallocated ClusterIPs"`,
    `add rule ${T} services ${ip} daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${T} services ${ip} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports`,
    ...o.nodePortIPs.map((a) => `add element ${T} nodeport-ips { ${a} }`),
  ];
}

/** The full-sync transaction kube-proxy's nftables proxier would send for these services. */
export function nftablesInput(services: readonly BenchService[], o: NftablesOptions): string {
  const { T, ip } = dialect(o.family);
  // chains are declared before any rule refers to them, as kube-proxy's transaction does
  const chains: string[] = [];
  const out: string[] = [];
  const clusterIPs = new Set<string>();
  for (const s of services) {
    const spn = servicePortName(s);
    const proto = s.protocol;
    const base = `${s.namespace}/${s.name}/${proto}/${s.portName}`;
    const svcChain = nftChainName('service', base);
    const extChain = nftChainName('external', base);
    const localChain = nftChainName('local', base);
    const epChain = (e: { ip: string; port: number }) => nftChainName('endpoint', `${base}__${e.ip.replaceAll(':', '.')}/${e.port}`);
    const local = s.externalTrafficPolicy === 'Local';
    const localEps = s.endpoints.filter((e) => e.local);
    if (!clusterIPs.has(s.clusterIP)) {
      clusterIPs.add(s.clusterIP);
      out.push(`add element ${T} cluster-ips { ${s.clusterIP} }`);
    }

    if (s.endpoints.length === 0) {
      out.push(`add element ${T} no-endpoint-services { ${s.clusterIP} . ${proto} . ${s.port} comment "${spn}" : goto reject-chain }`);
      if (s.nodePort) out.push(`add element ${T} no-endpoint-nodeports { ${proto} . ${s.nodePort} comment "${spn}" : goto reject-chain }`);
      continue;
    }

    const vmap = (chain: string, eps: readonly { ip: string; port: number }[]) =>
      out.push(`add rule ${T} ${chain} numgen random mod ${eps.length} vmap { ${eps.map((e, i) => `${i} : goto ${epChain(e)}`).join(' , ')} }`);

    chains.push(`add chain ${T} ${svcChain}`);
    out.push(`add rule ${T} ${svcChain} ${ip} daddr ${s.clusterIP} ${proto} dport ${s.port} ${ip} saddr != ${o.clusterCIDR} jump mark-for-masquerade`);
    vmap(svcChain, s.endpoints);
    out.push(`add element ${T} service-ips { ${s.clusterIP} . ${proto} . ${s.port} comment "${spn}" : goto ${svcChain} }`);

    if (s.nodePort) {
      chains.push(`add chain ${T} ${extChain}`);
      if (!local) {
        out.push(`add rule ${T} ${extChain} jump mark-for-masquerade`);
        out.push(`add rule ${T} ${extChain} goto ${svcChain}`);
        out.push(`add element ${T} service-nodeports { ${proto} . ${s.nodePort} comment "${spn}" : goto ${extChain} }`);
      } else if (localEps.length) {
        out.push(`add rule ${T} ${extChain} ${ip} saddr ${o.clusterCIDR} goto ${svcChain} comment "short-circuit pod traffic"`);
        out.push(`add rule ${T} ${extChain} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"`);
        out.push(`add rule ${T} ${extChain} fib saddr type local goto ${svcChain} comment "short-circuit local traffic"`);
        out.push(`add rule ${T} ${extChain} goto ${localChain}`);
        chains.push(`add chain ${T} ${localChain}`);
        vmap(localChain, localEps);
        out.push(`add element ${T} service-nodeports { ${proto} . ${s.nodePort} comment "${spn}" : goto ${extChain} }`);
      } else {
        // no local endpoint: external traffic is dropped, pods and the node still reach the service
        out.push(`add rule ${T} ${extChain} ${ip} saddr ${o.clusterCIDR} goto ${svcChain} comment "short-circuit pod traffic"`);
        out.push(`add rule ${T} ${extChain} fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"`);
        out.push(`add rule ${T} ${extChain} fib saddr type local goto ${svcChain} comment "short-circuit local traffic"`);
        out.push(`add element ${T} service-nodeports { ${proto} . ${s.nodePort} comment "${spn}" : goto ${extChain} }`);
        out.push(`add element ${T} no-endpoint-nodeports { ${proto} . ${s.nodePort} comment "${spn}" : drop }`);
      }
    }

    for (const e of s.endpoints) {
      const c = epChain(e);
      chains.push(`add chain ${T} ${c}`);
      out.push(`add rule ${T} ${c} ${ip} saddr ${e.ip} jump mark-for-masquerade`);
      out.push(`add rule ${T} ${c} meta l4proto ${proto} dnat to ${hostPort(e.ip, e.port)}`);
    }
  }
  return [...baseRules(o), ...chains, ...out].join('\n') + '\n';
}

/** Chains and rules in a transaction, for the report. */
export function nftCounts(input: string): { chains: number; rules: number } {
  let chains = 0;
  let rules = 0;
  for (const line of input.split('\n')) {
    if (line.startsWith('add chain')) chains++;
    else if (line.startsWith('add rule')) rules++;
  }
  return { chains, rules };
}

/** Replace the kube-proxy table with this transaction (a full sync); returns nft -f's wall time in ms. */
export async function applyNftables(ns: Netns, input: string, file: string, o: { check?: boolean; family?: Family } = {}): Promise<number> {
  writeFileSync(file, o.check ? input : `${input}`);
  if (!o.check) await flushNftables(ns, o.family);
  const t0 = process.hrtime.bigint();
  await ns.exec('nft', [...(o.check ? ['-c'] : []), '-f', file], { timeoutMs: 900_000 });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export async function flushNftables(ns: Netns, family: Family = 4): Promise<void> {
  await ns.exec('nft', ['delete', 'table', family === 6 ? 'ip6' : 'ip', 'kube-proxy'], { check: false, timeoutMs: 300_000 });
}
