// bench/peers: the service set every peer is programmed with, as plain data. One shape for
// kube-proxy's generators (iptables.ts, nftables.ts) and for weir's map writer (weir.ts),
// so every contestant serves exactly the same services and endpoints.

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

/** `ns/name:port` as kube-proxy prints a ServicePortName */
export function servicePortName(s: BenchService): string {
  return `${s.namespace}/${s.name}${s.portName ? `:${s.portName}` : ''}`;
}

function ipFromIndex(base: readonly [number, number, number, number], i: number): string {
  const n = ((base[0] << 24) | (base[1] << 16) | (base[2] << 8) | base[3]) + i;
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** ClusterIP i of the service CIDR (198.19.0.0/16; .0.0 and .0.1 left out) */
export function clusterIP(i: number): string {
  return ipFromIndex([198, 19, 0, 0], i + 2);
}

/**
 * `count` filler ClusterIP services with `endpoints` endpoints each, ports 80 -> 8080.
 * Endpoint addresses come from an 8192-address pool (198.18.96.0/19) and repeat across
 * services, as kube-proxy does not care; every chain name stays distinct because it
 * hashes the service name too.
 */
export function fillerServices(count: number, endpoints: number): BenchService[] {
  const out: BenchService[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      namespace: `ns${Math.floor(i / 1000)}`,
      name: `svc${i}`,
      portName: 'http',
      protocol: 'tcp',
      clusterIP: clusterIP(i),
      port: 80,
      endpoints: Array.from({ length: endpoints }, (_, j) => ({ ip: ipFromIndex(CLUSTER.fillerEndpointBase, ((i * endpoints + j) % 8190) + 1), port: 8080 })),
    });
  }
  return out;
}

/** The ClusterIP of the services the clients talk to: the last addresses of the /16. */
export const TARGET_IP = '198.19.255.10';
export const TARGET = { echoPort: 80, echoTargetPort: 7000, iperfPort: 5201 } as const;

/**
 * The services the traffic goes to, written after every filler service (kube-proxy's
 * worst case for iptables: the first packet walks all of KUBE-SERVICES):
 * - bench/target:echo -> the 3 backend pods' echo servers (port 7000)
 * - bench/target:iperf -> the first backend's iperf3 server only: iperf3 opens a control
 *   and a data connection that must reach the same server.
 */
export function targetServices(backends: string[]): BenchService[] {
  return [
    {
      namespace: 'bench',
      name: 'target',
      portName: 'echo',
      protocol: 'tcp',
      clusterIP: TARGET_IP,
      port: TARGET.echoPort,
      endpoints: backends.map((ip) => ({ ip, port: TARGET.echoTargetPort, local: true })),
    },
    {
      namespace: 'bench',
      name: 'target',
      portName: 'iperf',
      protocol: 'tcp',
      clusterIP: TARGET_IP,
      port: TARGET.iperfPort,
      endpoints: backends.slice(0, 1).map((ip) => ({ ip, port: TARGET.iperfPort, local: true })),
    },
  ];
}

/** The benchmark's service set at size n: n-1 fillers (10 endpoints each) then the target. */
export function benchServices(n: number, backends: string[], endpointsPerService = 10): BenchService[] {
  return [...fillerServices(Math.max(0, n - 1), endpointsPerService), ...targetServices(backends)];
}
