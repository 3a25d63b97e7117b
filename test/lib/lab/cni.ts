// Pods through the real CNI ptp plugin, run with a lab node namespace as its "host": the host
// veth and the `podIP dev vethX` route land in the node, as a kubelet would leave them.

import { run, runSync, type RunResult } from '../proc.js';

export const CNI_BIN_DIR = '/usr/lib/cni';

export interface PodNetworkOptions {
  /** host-local IPAM subnet, e.g. '198.18.1.0/24' (default: the node's podSubnet) */
  subnet?: string;
  rangeStart?: string;
  rangeEnd?: string;
  /** default: the subnet's first address (host-local's default) */
  gateway?: string;
  /** second range for dual stack, e.g. '2001:2:0:1::/64' (default: the node's podSubnet6) */
  subnet6?: string;
  /** routes given to the pod; default the default route(s) */
  routes?: string[];
  mtu?: number;
}

export interface CniRequest {
  /** ADD or DEL */
  command: 'ADD' | 'DEL';
  /** the node namespace the plugin runs in (its name under /run/netns) */
  hostNetns: string;
  containerId: string;
  /** /run/netns/<pod ns> */
  podNetnsPath: string;
  ifname: string;
  config: object;
}

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
}
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
}

export function ptpConfig(network: string, dataDir: string, o: PodNetworkOptions & { subnet: string }): object {
  const ranges = [
    [
      {
        subnet: o.subnet,
        ...(o.rangeStart ? { rangeStart: o.rangeStart } : {}),
        ...(o.rangeEnd ? { rangeEnd: o.rangeEnd } : {}),
        ...(o.gateway ? { gateway: o.gateway } : {}),
      },
    ],
  ];
  if (o.subnet6) ranges.push([{ subnet: o.subnet6 }]);
  const routes = o.routes ?? ['0.0.0.0/0', ...(o.subnet6 ? ['::/0'] : [])];
  return {
    cniVersion: '1.0.0',
    name: network,
    type: 'ptp',
    ipMasq: false,
    ...(o.mtu ? { mtu: o.mtu } : {}),
    ipam: { type: 'host-local', ranges, routes: routes.map((dst) => ({ dst })), dataDir },
  };
}

function cniArgs(req: CniRequest): { args: string[]; env: Record<string, string>; input: string } {
  return {
    args: ['netns', 'exec', req.hostNetns, `${CNI_BIN_DIR}/ptp`],
    env: {
      CNI_COMMAND: req.command,
      CNI_CONTAINERID: req.containerId,
      CNI_NETNS: req.podNetnsPath,
      CNI_IFNAME: req.ifname,
      CNI_PATH: CNI_BIN_DIR,
    },
    input: JSON.stringify(req.config),
  };
}

export async function cniAdd(req: CniRequest): Promise<CniResult> {
  const { args, env, input } = cniArgs(req);
  const r: RunResult = await run('ip', args, { env, input, timeoutMs: 15_000 });
  return JSON.parse(r.stdout) as CniResult;
}

/** DEL is synchronous: it runs from cleanup, also at process exit. */
export function cniDel(req: Omit<CniRequest, 'command'>): RunResult {
  const { args, env, input } = cniArgs({ ...req, command: 'DEL' });
  // runSync has no env option: pass it through env(1)
  return runSync('env', [...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'ip', ...args], { input });
}

/** The pod-side view of a CNI result. */
export function parseCniResult(result: CniResult, podNetnsPath: string) {
  const ifs = result.interfaces ?? [];
  const podIndex = ifs.findIndex((i) => i.sandbox === podNetnsPath);
  const host = ifs.find((i) => !i.sandbox);
  if (podIndex < 0 || !host) throw new Error(`CNI result without a pod and a host interface: ${JSON.stringify(result)}`);
  const ips = (result.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface === podIndex);
  const v4 = ips.find((ip) => !ip.address.includes(':'));
  const v6 = ips.find((ip) => ip.address.includes(':'));
  if (!v4 && !v6) throw new Error(`CNI result without an address: ${JSON.stringify(result)}`);
  return {
    hostIfname: host.name,
    hostMac: host.mac ?? '',
    mac: ifs[podIndex]!.mac ?? '',
    cidr: (v4 ?? v6)!.address,
    ip: (v4 ?? v6)!.address.split('/')[0]!,
    gateway: (v4 ?? v6)!.gateway ?? '',
    ...(v6 ? { ip6: v6.address.split('/')[0]!, cidr6: v6.address, gateway6: v6.gateway ?? '' } : {}),
  };
}
