// bench/peers: the service set every peer is programmed with, as plain data. One shape for
// kube-proxy's generators (iptables.ts, nftables.ts) and for weir's map writer (weir.ts),
// so every contestant serves exactly the same services and endpoints, in either family.

export interface BenchEndpoint {
  ip: string;
  port: number;
  /** on this node (matters only for externalTrafficPolicy: Local) */
  local?: boolean;
}

export interface BenchService {
  namespace: string;
  name: string;
  /** the Service port's name ('' for an unnamed single port) */
  portName: string;
  protocol: 'tcp' | 'udp';
  clusterIP: string;
  port: number;
  /** NodePort services: the node port */
  nodePort?: number;
  externalTrafficPolicy?: 'Cluster' | 'Local';
  endpoints: BenchEndpoint[];
}

/** The address family a bench run measures. */
export type Family = 4 | 6;

/** An endpoint as kube-proxy prints it (Endpoint.String()): ip:port, [ip]:port for IPv6. */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Addressing of the benchmark "cluster", all inside 198.18.0.0/15. */
export const CLUSTER = {
  /** pod addresses (kube-proxy's --cluster-cidr: the local-traffic detector) */
  clusterCIDR: '198.18.64.0/18',
  /** the node's pods */
  podSubnet: '198.18.65.0/24',
  /** ClusterIPs (--service-cluster-ip-range) */
  serviceCIDR: '198.19.0.0/16',
  /** node underlay */
  nodeAddress: '198.18.0.1/24',
  /** endpoints of the filler services: never reached, only looked past */
  fillerEndpointBase: [198, 18, 96, 0] as const,
} as const;

/** The same cluster in IPv6, all inside 2001:2::/48: what kube-proxy's IPv6 proxier and
 *  weir's IPv6 maps are programmed with (clusterIP6, fillerEndpoint6 number from these). */
export const CLUSTER6 = {
  clusterCIDR: '2001:2:100::/56',
  podSubnet: '2001:2:100:1::/64',
  /** a /112 (kube-proxy and the API server allow up to /108): 65,536 ClusterIPs */
  serviceCIDR: '2001:2:ff::/112',
  nodeAddress: '2001:2::1/64',
  fillerEndpointPrefix: '2001:2:200::',
} as const;

/** Each family's addressing, as the generators read it. */
export const CLUSTERS = {
  4: { clusterCIDR: CLUSTER.clusterCIDR, podSubnet: CLUSTER.podSubnet, serviceCIDR: CLUSTER.serviceCIDR, nodeAddress: CLUSTER.nodeAddress },
  6: { clusterCIDR: CLUSTER6.clusterCIDR, podSubnet: CLUSTER6.podSubnet, serviceCIDR: CLUSTER6.serviceCIDR, nodeAddress: CLUSTER6.nodeAddress },
} as const;

/** `ns/name:port` as kube-proxy prints a ServicePortName */
export function servicePortName(s: BenchService): string {
  return `${s.namespace}/${s.name}${s.portName ? `:${s.portName}` : ''}`;
}

function ipFromIndex(base: readonly [number, number, number, number], i: number): string {
  const n = ((base[0] << 24) | (base[1] << 16) | (base[2] << 8) | base[3]) + i;
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** ClusterIP i of the service CIDR (198.19.0.0/16 or 2001:2:ff::/112; the first two left out) */
export function clusterIP(i: number, family: Family = 4): string {
  if (family === 6) return `2001:2:ff::${(i + 2).toString(16)}`;
  return ipFromIndex([198, 19, 0, 0], i + 2);
}

/** Filler endpoint address j of the 8190-address pool of each family (never reached). */
function fillerEndpoint(j: number, family: Family): string {
  return family === 6 ? `${CLUSTER6.fillerEndpointPrefix}${(j + 1).toString(16)}` : ipFromIndex(CLUSTER.fillerEndpointBase, j + 1);
}

/**
 * `count` filler ClusterIP services with `endpoints` endpoints each, ports 80 -> 8080.
 * Endpoint addresses come from an 8192-address pool (198.18.96.0/19) and repeat across
 * services, as kube-proxy does not care; every chain name stays distinct because it
 * hashes the service name too.
 */
export function fillerServices(count: number, endpoints: number, family: Family = 4): BenchService[] {
  const out: BenchService[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      namespace: `ns${Math.floor(i / 1000)}`,
      name: `svc${i}`,
      portName: 'http',
      protocol: 'tcp',
      clusterIP: clusterIP(i, family),
      port: 80,
      endpoints: Array.from({ length: endpoints }, (_, j) => ({ ip: fillerEndpoint((i * endpoints + j) % 8190, family), port: 8080 })),
    });
  }
  return out;
}

/** The ClusterIP of the services the clients talk to: the last addresses of the /16. */
export const TARGET_IP = '198.19.255.10';
/** the IPv6 target: the last addresses of the /112 */
export const TARGET_IP6 = '2001:2:ff::ff0a';
export const targetIP = (family: Family) => (family === 6 ? TARGET_IP6 : TARGET_IP);
export const TARGET = { echoPort: 80, echoTargetPort: 7000, iperfPort: 5201 } as const;

/**
 * The services the traffic goes to, written after every filler service (kube-proxy's
 * worst case for iptables: the first packet walks all of KUBE-SERVICES):
 * - bench/target:echo -> the 3 backend pods' echo servers (port 7000)
 * - bench/target:iperf -> the first backend's iperf3 server only: iperf3 opens a control
 *   and a data connection that must reach the same server.
 */
export function targetServices(backends: string[], family: Family = 4): BenchService[] {
  const vip = targetIP(family);
  return [
    {
      namespace: 'bench',
      name: 'target',
      portName: 'echo',
      protocol: 'tcp',
      clusterIP: vip,
      port: TARGET.echoPort,
      endpoints: backends.map((ip) => ({ ip, port: TARGET.echoTargetPort, local: true })),
    },
    {
      namespace: 'bench',
      name: 'target',
      portName: 'iperf',
      protocol: 'tcp',
      clusterIP: vip,
      port: TARGET.iperfPort,
      endpoints: backends.slice(0, 1).map((ip) => ({ ip, port: TARGET.iperfPort, local: true })),
    },
  ];
}

/** The benchmark's service set at size n: n-1 fillers (10 endpoints each) then the target. */
export function benchServices(n: number, backends: string[], endpointsPerService = 10, family: Family = 4): BenchService[] {
  return [...fillerServices(Math.max(0, n - 1), endpointsPerService, family), ...targetServices(backends, family)];
}
