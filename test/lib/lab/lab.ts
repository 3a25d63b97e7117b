// The lab: nodes (namespaces on an underlay "switch" namespace), pods made by the real CNI
// ptp plugin inside those nodes, external clients, cgroups and a private bpffs, all named
// with the lab's id and torn down by destroy(), by the cleanup hooks, or by the next lab
// if this process was killed outright.

import { join } from 'node:path';
import { mountPrivateBpffs, type PrivateBpffs } from '../bpffs.js';
import { onCleanup } from '../cleanup.js';
import { run, type ManagedProcess } from '../proc.js';
import { Cgroup, labCgroupParent, removeCgroupTree } from './cgroup.js';
import { cniAdd, cniDel, parseCniResult, ptpConfig, type CniResult, type PodNetworkOptions } from './cni.js';
import { Netns } from './netns.js';
import { claimLabId, deleteNetns, labDir, netnsName, processStartTime, removeLabLeftovers, sweepDeadLabs, writeState } from './state.js';

export interface LabOptions {
  /** shown in the state file and errors; default 'lab' */
  name?: string;
}

export interface VethOptions {
  mtu?: number;
  macA?: string;
  macB?: string;
}

export interface VethEnd {
  ns: Netns;
  ifname: string;
}

export class Bridge {
  constructor(
    readonly ns: Netns,
    readonly name: string,
  ) {}

  /** Enslave an interface of the bridge's namespace and bring it up. */
  async attach(ifname: string): Promise<void> {
    await this.ns.ip('link', 'set', 'dev', ifname, 'master', this.name, 'up');
  }
}

export interface NodeOptions {
  /** underlay address with prefix, e.g. '198.18.0.1/24' */
  address: string;
  address6?: string;
  /** default host-local subnet for this node's pods, e.g. '198.18.1.0/24' */
  podSubnet?: string;
  podSubnet6?: string;
  mtu?: number;
}

/**
 * The dual-stack lab's addressing of node `n` (1..254): underlay 198.18.0.n/24 and
 * 2001:2::n/64, pods in 198.18.n.0/24 and 2001:2:0:n::/64 (external clients take
 * 198.18.0.1xx and 2001:2::1xx; services 198.19.0.0/16 and 2001:2:ff::/112).
 */
export function dualStackNode(n: number, extra: Pick<NodeOptions, 'mtu'> = {}): NodeOptions {
  if (!Number.isInteger(n) || n < 1 || n > 254) throw new Error(`dualStackNode: node number ${n} is not 1..254`);
  return { address: `198.18.0.${n}/24`, address6: `2001:2::${n}/64`, podSubnet: `198.18.${n}.0/24`, podSubnet6: `2001:2:0:${n}::/64`, ...extra };
}

export interface LabNode {
  name: string;
  ns: Netns;
  /** the node's underlay interface */
  ifname: string;
  /** underlay address without prefix */
  address: string;
  cidr: string;
  address6?: string;
  podSubnet?: string;
  podSubnet6?: string;
  pods: Pod[];
}

export interface Pod {
  name: string;
  node: LabNode;
  ns: Netns;
  /** the pod's interface (CNI_IFNAME) */
  ifname: string;
  ip: string;
  cidr: string;
  /** the pod's next hop: ptp puts this address on the host veth */
  gateway: string;
  ip6?: string;
  cidr6?: string;
  gateway6?: string;
  /** the host side veth in the node namespace (`podIP dev <hostIfname>`) */
  hostIfname: string;
  hostMac: string;
  /** the pod interface's MAC */
  mac: string;
  containerId: string;
  cni: CniResult;
}

export interface ExternalOptions {
  /** underlay address with prefix */
  address: string;
  address6?: string;
  /** default: every node's pod subnets via that node's underlay address */
  routes?: { dst: string; via: string }[];
  /** service ranges (ClusterIPs, externalIPs) routed via the first node's underlay address of
   *  the range's family, as a router in front of the cluster would, e.g. ['2001:2:ff::/112'] */
  serviceRoutes?: string[];
  /** run the client's commands in a lab cgroup of its own (External.cgroup), away from any
   *  socket-LB cgroup: its connections meet weir's TC path only */
  cgroup?: boolean;
}

export interface External {
  name: string;
  ns: Netns;
  ifname: string;
  address: string;
  address6?: string;
  cgroup?: Cgroup;
}

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,30}$/;
const stripPrefix = (cidr: string) => cidr.split('/')[0]!;

export class Lab {
  /** the private bpffs mount point for this lab's pins */
  readonly bpffs: string;
  /** ids of dead labs whose leftovers this lab's creation removed */
  readonly swept: string[];
  readonly nodes: LabNode[] = [];
  readonly pods: Pod[] = [];
  private readonly undo: { what: string; run: () => Promise<void> }[] = [];
  private readonly namespaces = new Map<string, Netns>();
  private underlayNs: Netns | undefined;
  private underlayBridge: Bridge | undefined;
  private underlayPorts = 0;
  private cgroupRootMade = false;
  private destroyed = false;

  private constructor(
    /** short unique id, part of every name this lab creates */
    readonly id: string,
    readonly name: string,
    swept: string[],
    bpffs: PrivateBpffs,
  ) {
    this.swept = swept;
    this.bpffs = bpffs.path;
    // the last step: whatever carries this lab's id and survived the individual steps
    this.track(`remove leftovers of lab ${id}`, () => {
      const problems = removeLabLeftovers(id);
      if (problems.length) throw new Error(problems.join('; '));
    });
    this.undo.push({ what: `unmount bpffs ${bpffs.path}`, run: bpffs.cleanup });
  }

  static async create(opts: LabOptions = {}): Promise<Lab> {
    const swept = sweepDeadLabs();
    const id = claimLabId();
    const name = opts.name ?? 'lab';
    const owner = { id, name, pid: process.pid, pidStart: processStartTime(process.pid) ?? '', createdAt: new Date().toISOString() };
    writeState(owner); // before anything is created: a lab without a live owner is swept
    let bpffs: PrivateBpffs;
    try {
      bpffs = mountPrivateBpffs(`lab-${id}`);
    } catch (e) {
      removeLabLeftovers(id);
      throw e;
    }
    writeState({ ...owner, bpffs: bpffs.path });
    return new Lab(id, name, swept, bpffs);
  }

  /** the lab's run directory (state file, CNI IPAM data) */
  get dir(): string {
    return labDir(this.id);
  }

  /** full names of the namespaces this lab created */
  netnsNames(): string[] {
    return [...this.namespaces.values()].map((n) => n.name);
  }

  /** Register an undo step with both destroy() and the process-wide cleanup. */
  private track(what: string, undo: () => void | Promise<void>): void {
    this.undo.push({ what, run: onCleanup(`lab ${this.id}: ${what}`, undo) });
  }

  private trackProcess = (p: ManagedProcess): void => {
    this.undo.push({ what: `stop ${p.command}`, run: async () => void (await p.stop()) });
  };

  private alive(): void {
    if (this.destroyed) throw new Error(`lab ${this.id} is destroyed`);
  }

  /** A new network namespace `wl<id>-<name>` with lo up. */
  async netns(name: string): Promise<Netns> {
    this.alive();
    if (!NAME_RE.test(name)) throw new Error(`bad lab namespace name ${JSON.stringify(name)}: use [a-z0-9-], at most 31`);
    if (this.namespaces.has(name)) throw new Error(`lab ${this.id} already has a namespace ${name}`);
    const ns = new Netns(netnsName(this.id, name), name, this.trackProcess);
    this.namespaces.set(name, ns);
    this.track(`delete netns ${ns.name}`, () => deleteNetns(ns.name));
    await run('ip', ['netns', 'add', ns.name]);
    await ns.linkUp('lo');
    // no duplicate address detection: addresses (link-local too) are usable at once, and
    // nothing else on a lab link can hold them. Fails harmlessly without IPv6.
    await ns.exec('sysctl', ['-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'], { check: false });
    return ns;
  }

  /** A veth pair between two lab namespaces, both ends up. */
  async veth(a: Netns, ifA: string, b: Netns, ifB: string, opts: VethOptions = {}): Promise<{ a: VethEnd; b: VethEnd }> {
    this.alive();
    for (const n of [ifA, ifB]) if (n.length > 15) throw new Error(`interface name ${n} is longer than 15 characters`);
    const end = (mac?: string) => [...(mac ? ['address', mac] : []), ...(opts.mtu ? ['mtu', String(opts.mtu)] : [])];
    await a.ip('link', 'add', 'name', ifA, ...end(opts.macA), 'type', 'veth', 'peer', 'name', ifB, 'netns', b.name, ...end(opts.macB));
    await a.linkUp(ifA);
    await b.linkUp(ifB);
    return { a: { ns: a, ifname: ifA }, b: { ns: b, ifname: ifB } };
  }

  /** A bridge in `ns`, up. */
  async bridge(ns: Netns, name: string): Promise<Bridge> {
    this.alive();
    await ns.ip('link', 'add', 'name', name, 'type', 'bridge');
    await ns.linkUp(name);
    return new Bridge(ns, name);
  }

  /** The underlay "switch": a namespace holding bridge br0 that nodes and clients plug into. */
  async underlay(): Promise<{ ns: Netns; bridge: Bridge }> {
    if (!this.underlayNs || !this.underlayBridge) {
      this.underlayNs = await this.netns('underlay');
      this.underlayBridge = await this.bridge(this.underlayNs, 'br0');
    }
    return { ns: this.underlayNs, bridge: this.underlayBridge };
  }

  private async plugIntoUnderlay(ns: Netns, name: string, mtu?: number): Promise<void> {
    const { ns: sw, bridge } = await this.underlay();
    const port = `p${++this.underlayPorts}-${name}`.slice(0, 15);
    await this.veth(ns, 'eth0', sw, port, mtu ? { mtu } : {});
    await bridge.attach(port);
  }

  /** A node: a namespace on the underlay (eth0) with forwarding on. */
  async node(name: string, opts: NodeOptions): Promise<LabNode> {
    const ns = await this.netns(name);
    await this.plugIntoUnderlay(ns, name, opts.mtu);
    await ns.sysctl('net.ipv4.ip_forward', 1);
    await ns.sysctl('net.ipv6.conf.all.forwarding', 1);
    await ns.addAddr('eth0', opts.address);
    if (opts.address6) await ns.addAddr('eth0', opts.address6);
    const node: LabNode = {
      name,
      ns,
      ifname: 'eth0',
      address: stripPrefix(opts.address),
      cidr: opts.address,
      ...(opts.address6 ? { address6: stripPrefix(opts.address6) } : {}),
      ...(opts.podSubnet ? { podSubnet: opts.podSubnet } : {}),
      ...(opts.podSubnet6 ? { podSubnet6: opts.podSubnet6 } : {}),
      pods: [],
    };
    this.nodes.push(node);
    return node;
  }

  /** Routes in every node to every other node's pod subnets via its underlay address. */
  async routePodSubnets(): Promise<void> {
    for (const from of this.nodes)
      for (const to of this.nodes) {
        if (from === to) continue;
        if (to.podSubnet) await from.ns.addRoute(to.podSubnet, { via: to.address });
        if (to.podSubnet6 && to.address6) await from.ns.addRoute(to.podSubnet6, { via: to.address6 });
      }
  }

  /** A pod on `node`, networked by the real CNI ptp plugin run in the node namespace. */
  async pod(node: LabNode, name: string, opts: PodNetworkOptions = {}): Promise<Pod> {
    const subnet = opts.subnet ?? node.podSubnet;
    if (!subnet) throw new Error(`pod ${name}: no subnet given and node ${node.name} has no podSubnet`);
    const subnet6 = opts.subnet6 ?? node.podSubnet6;
    const ns = await this.netns(name);
    const config = ptpConfig(`weir-lab-${node.name}`, join(this.dir, 'ipam'), { ...opts, subnet, ...(subnet6 ? { subnet6 } : {}) });
    const req = { hostNetns: node.ns.name, containerId: `wl${this.id}-${name}`, podNetnsPath: ns.path, ifname: 'eth0', config };
    this.track(`CNI DEL pod ${name}`, () => void cniDel(req));
    const cni = await cniAdd({ ...req, command: 'ADD' });
    const pod: Pod = { name, node, ns, ifname: 'eth0', containerId: req.containerId, cni, ...parseCniResult(cni, ns.path) };
    node.pods.push(pod);
    this.pods.push(pod);
    return pod;
  }

  /** A client outside the cluster: a namespace on the underlay with routes to the pods. */
  async external(name: string, opts: ExternalOptions): Promise<External> {
    const ns = await this.netns(name);
    await this.plugIntoUnderlay(ns, name);
    await ns.addAddr('eth0', opts.address);
    if (opts.address6) await ns.addAddr('eth0', opts.address6);
    const routes =
      opts.routes ??
      this.nodes.flatMap((n) => [
        ...(n.podSubnet ? [{ dst: n.podSubnet, via: n.address }] : []),
        ...(n.podSubnet6 && n.address6 && opts.address6 ? [{ dst: n.podSubnet6, via: n.address6 }] : []),
      ]);
    for (const r of routes) await ns.addRoute(r.dst, { via: r.via });
    for (const dst of opts.serviceRoutes ?? []) {
      const v6 = dst.includes(':');
      const via = this.nodes.map((n) => (v6 ? n.address6 : n.address)).find((a) => a !== undefined);
      if (!via) throw new Error(`external ${name}: no node with an IPv${v6 ? 6 : 4} underlay address to route ${dst} via`);
      await ns.addRoute(dst, { via });
    }
    const cgroup = opts.cgroup ? await this.cgroup(`ext-${name}`) : undefined;
    return {
      name,
      ns,
      ifname: 'eth0',
      address: stripPrefix(opts.address),
      ...(opts.address6 ? { address6: stripPrefix(opts.address6) } : {}),
      ...(cgroup ? { cgroup } : {}),
    };
  }

  /** The lab's own cgroup directory, <cgroup2 mount>/weir-lab/<id> (created by the first cgroup()). */
  get cgroupRoot(): string {
    const parent = labCgroupParent();
    if (!parent) throw new Error('no cgroup2 mount in /proc/mounts');
    return join(parent, this.id);
  }

  /** A child cgroup of the lab's cgroup (processes spawned in it are stopped at teardown). */
  async cgroup(name: string): Promise<Cgroup> {
    this.alive();
    if (!NAME_RE.test(name)) throw new Error(`bad cgroup name ${JSON.stringify(name)}`);
    if (!this.cgroupRootMade) {
      const root = this.cgroupRoot;
      Cgroup.create('', root);
      this.track(`remove cgroup ${root}`, () => {
        const failed = removeCgroupTree(root);
        if (failed.length) throw new Error(failed.join('; '));
      });
      this.cgroupRootMade = true;
    }
    const path = join(this.cgroupRoot, name);
    const cg = Cgroup.create(name, path, this.trackProcess);
    this.track(`remove cgroup ${path}`, () => {
      const failed = removeCgroupTree(path);
      if (failed.length) throw new Error(failed.join('; '));
    });
    return cg;
  }

  /** Tear everything down, newest first. Errors are collected and thrown together at the end. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const errors: string[] = [];
    for (const step of this.undo.splice(0).reverse()) {
      try {
        await step.run();
      } catch (e) {
        errors.push(`${step.what}: ${(e as Error).message}`);
      }
    }
    if (errors.length) throw new Error(`lab ${this.id} teardown:\n  ${errors.join('\n  ')}`);
  }
}
