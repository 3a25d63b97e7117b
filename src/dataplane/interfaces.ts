// Which interfaces weir attaches to and which addresses it serves NodePorts on, derived
// from the node's links, addresses and routes. Workload interfaces are found the way
// CNI plugins leave them (ptp, Calico, Cilium): a host route `podIP dev vethX` with no
// gateway. Pure functions over netlink dumps; the watcher lives in netlink.ts.

import { cidrContains, ipFamilyOf } from '../bpf/ip.js';
import type { Address, Link, Route } from './netlink.js';

const LINK_LOCAL6 = 'fe80::/10';

export interface WorkloadInterface {
  ifindex: number;
  ifname: string;
  mac: string;
  /** pod addresses routed to this interface */
  addresses: string[];
}

export interface NodeNetworkOptions {
  /** host interfaces by name; empty = the interfaces holding a default route, or with no
   *  default route every non-workload interface with a global address */
  hostInterfaces?: string[];
  /** like kube-proxy's nodePortAddresses: CIDRs, or 'primary'; empty = every node address */
  nodePortAddresses?: string[];
}

export interface NodeNetwork {
  workloads: WorkloadInterface[];
  hostInterfaces: Link[];
  /** global-scope addresses on host interfaces */
  nodeAddresses: string[];
  /** the node addresses NodePorts are served on */
  nodePortAddresses: string[];
  /** host interfaces asked for by name that do not exist (logged by the caller) */
  missingHostInterfaces: string[];
  /** every address of this network namespace except loopback's (host and workload interfaces
   *  alike): traffic between a pod and any of them is node-local for NetworkPolicy */
  localAddresses: string[];
}

function hostRouteAddress(r: Route): string | undefined {
  if (r.gateway || r.dst === 'default') return undefined;
  const [addr, len] = r.dst.split('/');
  if (ipFamilyOf(addr) === null) return undefined;
  if (len !== undefined && Number(len) !== (r.family === 4 ? 32 : 128)) return undefined;
  return addr;
}

export function computeNodeNetwork(links: Link[], addresses: Address[], routes: Route[], opts: NodeNetworkOptions = {}): NodeNetwork {
  const byName = new Map(links.map((l) => [l.ifname, l]));
  const wanted = opts.hostInterfaces?.filter((n) => n.length > 0) ?? [];
  const missingHostInterfaces = wanted.filter((n) => !byName.has(n));
  const defaultDevs = new Set(routes.filter((r) => r.dst === 'default').map((r) => r.dev));
  const wantedNames = new Set(wanted);

  const workloadAddrs = new Map<string, string[]>();
  for (const r of routes) {
    const addr = hostRouteAddress(r);
    if (!addr || wantedNames.has(r.dev) || defaultDevs.has(r.dev)) continue;
    const link = byName.get(r.dev);
    if (!link || link.loopback) continue;
    const list = workloadAddrs.get(r.dev) ?? [];
    if (!list.includes(addr)) list.push(addr);
    workloadAddrs.set(r.dev, list);
  }
  // host interfaces: as asked; else those holding a default route; else (a node with no
  // default route, as in the lab) every interface with a global address that is not a
  // workload interface
  let hostNameList = wanted.length ? wanted : [...defaultDevs];
  if (hostNameList.length === 0)
    hostNameList = [...new Set(addresses.filter((a) => a.scope === 'global' && !workloadAddrs.has(a.ifname)).map((a) => a.ifname))];
  const hostInterfaces = hostNameList
    .map((n) => byName.get(n))
    .filter((l): l is Link => l !== undefined && !l.loopback)
    .sort((a, b) => a.ifindex - b.ifindex);
  const hostNames = new Set(hostInterfaces.map((l) => l.ifname));
  for (const n of hostNames) workloadAddrs.delete(n);
  const workloads = [...workloadAddrs]
    .map(([ifname, addrs]) => {
      const l = byName.get(ifname)!;
      return { ifindex: l.ifindex, ifname, mac: l.mac, addresses: addrs.sort() };
    })
    .sort((a, b) => a.ifindex - b.ifindex);

  // either family; an IPv6 link-local address (fe80::/10) is never a node address, whatever
  // scope a hand-made configuration gives it: it names no node outside its link
  const hostAddrs = addresses.filter((a) => hostNames.has(a.ifname) && a.scope === 'global' && !cidrContains(LINK_LOCAL6, a.address));
  const nodeAddresses = hostAddrs.map((a) => a.address);
  const npa = opts.nodePortAddresses?.map((s) => s.trim()).filter((s) => s.length > 0) ?? [];
  let nodePortAddresses: string[];
  if (npa.length === 0) {
    nodePortAddresses = nodeAddresses;
  } else if (npa.includes('primary')) {
    // the first address of each family on the first host interface, as kube-proxy's 'primary'
    const first = hostInterfaces[0]?.ifname;
    nodePortAddresses = [4, 6].map((f) => hostAddrs.find((a) => a.ifname === first && a.family === f)?.address).filter((a): a is string => a !== undefined);
  } else {
    nodePortAddresses = nodeAddresses.filter((a) => npa.some((c) => cidrContains(c, a)));
  }
  const loopbacks = new Set(links.filter((l) => l.loopback).map((l) => l.ifname));
  const localAddresses = [
    ...new Set(addresses.filter((a) => !loopbacks.has(a.ifname) && a.scope !== 'host' && a.scope !== 'link').map((a) => a.address)),
  ].sort();
  return { workloads, hostInterfaces, nodeAddresses, nodePortAddresses, missingHostInterfaces, localAddresses };
}
