// Generated NetworkPolicy clusters for the differential tests (the model against the spec-written
// reference here, the BPF programs against it in test/bpf/policy-differential.test.ts): random
// labels, namespaces, named ports, selectors with every operator, ipBlocks with except around pod
// and external addresses, port ranges, several policies per pod. Deterministic from a seeded PRNG.

import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { namespace, pod, policy } from './policy-helpers.js';
import type { RefCluster } from './policy-reference.js';

/** A seeded PRNG in [0, 1): one seed replays a whole run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const NS = ['x', 'y', 'z'];
export const PROTOS = ['TCP', 'UDP', 'SCTP'];
export const PORTS = [53, 79, 80, 81, 443, 8080, 9090];
/** addresses of no pod, in and around the generated ipBlocks */
export const EXTERNAL = [
  '198.19.0.1',
  '198.19.1.7',
  '198.19.1.200',
  '198.19.200.5',
  '198.18.9.9',
  '2001:2:0:f200::1',
  '2001:2:0:f1ff::1',
  '2001:2:0:e000::1',
  '2001:2:0:2::99',
];

export interface GenOptions {
  /** node names to place pods on, one picked per pod (default: every pod on node-1) */
  nodes?: readonly string[];
}

export interface Generated {
  cluster: RefCluster;
  pick: <T>(xs: readonly T[]) => T;
}

/** One random cluster; draws from `rand` only (the same draws as before when `o.nodes` is not given). */
export function gen(rand: () => number, o: GenOptions = {}): Generated {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chance = (p: number): boolean => rand() < p;
  const labels = (): Record<string, string> => {
    const l: Record<string, string> = {};
    if (chance(0.8)) l.app = pick(['web', 'db', 'cache']);
    if (chance(0.5)) l.tier = pick(['front', 'back']);
    return l;
  };
  const selector = (): object => {
    const r = rand();
    if (r < 0.2) return {};
    if (r < 0.5) return { matchLabels: { app: pick(['web', 'db', 'cache']) } };
    const key = pick(['app', 'tier', 'team']);
    const op = pick(['In', 'NotIn', 'Exists', 'DoesNotExist']);
    const values = op === 'In' || op === 'NotIn' ? [pick(['web', 'db', 'front', 'back', 'red'])] : undefined;
    return { matchExpressions: [{ key, operator: op, ...(values ? { values } : {}) }] };
  };
  const nsSelector = (): object =>
    chance(0.4) ? { matchLabels: { 'kubernetes.io/metadata.name': pick(NS) } } : chance(0.5) ? { matchLabels: { team: pick(['red', 'blue']) } } : selector();
  const ipBlock = (): object => {
    const r = rand();
    if (r < 0.25) return { cidr: '198.19.0.0/16', except: chance(0.5) ? ['198.19.1.0/24'] : [] };
    if (r < 0.4) return { cidr: '198.19.1.0/24', ...(chance(0.5) ? { except: ['198.19.1.128/25'] } : {}) };
    if (r < 0.6) {
      const net = 1 + Math.floor(rand() * 3);
      return { cidr: `198.18.${net}.0/24`, ...(chance(0.5) ? { except: [`198.18.${net}.${10 + Math.floor(rand() * 4)}/32`] } : {}) };
    }
    // exactly one pod's address (or a free slot): the pod's ipcache entry must carry the block
    if (r < 0.66) return { cidr: `198.18.${1 + Math.floor(rand() * 3)}.${10 + Math.floor(rand() * 4)}/32` };
    // where the BPF differential puts its nodes (198.18.0.1-2, 198.18.2.1, 198.18.1.1): a node's address in a block
    if (r < 0.71) return { cidr: pick(['198.18.0.0/24', '198.18.0.1/32', '198.18.0.2/32', '198.18.2.1/32', '198.18.1.0/30']) };
    // everything, or everything but a part: a /0 prefix in the ipcache
    if (r < 0.77)
      return { cidr: '0.0.0.0/0', ...(chance(0.7) ? { except: [pick(['198.18.0.0/15', '198.19.0.0/16', '198.18.1.0/24', '198.18.0.0/24'])] } : {}) };
    if (r < 0.86) return { cidr: '198.18.0.0/15', except: ['198.18.2.0/24'] };
    if (r < 0.93) return { cidr: '2001:2:0:f000::/52', ...(chance(0.7) ? { except: ['2001:2:0:f100::/56'] } : {}) };
    const net = 1 + Math.floor(rand() * 3);
    return { cidr: `2001:2:0:${net}::/64`, ...(chance(0.5) ? { except: [`2001:2:0:${net}::${10 + Math.floor(rand() * 4)}/128`] } : {}) };
  };
  const peer = (allowIp: boolean): object => {
    const r = rand();
    if (r < 0.3) return { podSelector: selector() };
    if (r < 0.55) return { namespaceSelector: nsSelector() };
    if (r < 0.8 || !allowIp) return { podSelector: selector(), namespaceSelector: nsSelector() };
    return { ipBlock: ipBlock() };
  };
  const port = (named: boolean): object => {
    const protocol = chance(0.6) ? undefined : pick(PROTOS);
    const r = rand();
    const o: Record<string, unknown> = protocol ? { protocol } : {};
    if (r < 0.15) return o;
    if (r < 0.4 && named) return { ...o, port: pick(['http', 'dns', 'metrics']) };
    // wide ranges up to the last port too: an LPM port prefix of every length
    if (r < 0.47)
      return {
        ...o,
        ...pick([
          { port: 1, endPort: 65535 },
          { port: 1024, endPort: 65535 },
          { port: 32768, endPort: 65535 },
          { port: 2, endPort: 65534 },
        ]),
      };
    const p = pick(PORTS);
    return chance(0.3) ? { ...o, port: p, endPort: p + Math.floor(rand() * 2000) } : { ...o, port: p };
  };
  const rule = (dir: 'ingress' | 'egress'): object => {
    const field = dir === 'ingress' ? 'from' : 'to';
    const o: Record<string, unknown> = {};
    const hasPorts = chance(0.6);
    const r = rand();
    let hasIp = false;
    if (r < 0.15) o[field] = [];
    else if (r < 0.85) {
      const peers = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => peer(true));
      hasIp = peers.some((p) => 'ipBlock' in p);
      o[field] = peers;
    }
    // a named port towards an ipBlock on egress is a documented approximation (identity-wide), left out here
    if (hasPorts) o.ports = Array.from({ length: 1 + Math.floor(rand() * 2) }, () => port(!(dir === 'egress' && hasIp)));
    return o;
  };
  const pods: V1Pod[] = [];
  for (const ns of NS)
    for (let i = 0; i < 2 + Math.floor(rand() * 3); i++) {
      const ports: [string, number, string][] = [];
      if (chance(0.7)) ports.push(['http', pick([80, 8080, 9090]), 'TCP']);
      if (chance(0.4)) ports.push(['dns', 53, pick(['UDP', 'TCP'])]);
      if (chance(0.3)) ports.push(['metrics', pick([9090, 443]), 'TCP']);
      const p = pod(`${ns}/p${i}`, { labels: labels(), ip: `198.18.${NS.indexOf(ns) + 1}.${10 + i}`, ports });
      p.status!.podIPs!.push({ ip: `2001:2:0:${NS.indexOf(ns) + 1}::${10 + i}` });
      if (o.nodes) p.spec!.nodeName = pick(o.nodes);
      pods.push(p);
    }
  const namespaces = NS.map((n) => namespace(n, chance(0.5) ? { team: pick(['red', 'blue']) } : {}));
  const policies: V1NetworkPolicy[] = [];
  for (let i = 0; i < 1 + Math.floor(rand() * 4); i++) {
    const spec: Record<string, unknown> = { podSelector: selector() };
    const t = rand();
    if (t < 0.25) spec.policyTypes = ['Ingress'];
    else if (t < 0.5) spec.policyTypes = ['Egress'];
    else if (t < 0.75) spec.policyTypes = ['Ingress', 'Egress'];
    if (chance(0.7)) spec.ingress = Array.from({ length: Math.floor(rand() * 3) }, () => rule('ingress'));
    if (chance(0.6)) spec.egress = Array.from({ length: Math.floor(rand() * 3) }, () => rule('egress'));
    policies.push(policy(pick(NS), `np${i}`, spec));
  }
  return { cluster: { policies, pods, namespaces } as RefCluster, pick };
}

/** One change of a kind the sources deliver, chosen at random. */
export function mutate(cluster: RefCluster, rand: () => number, pick: <T>(xs: readonly T[]) => T, n: number): { next: RefCluster; kind: string } {
  const next: RefCluster = { policies: [...cluster.policies], pods: [...cluster.pods], namespaces: [...cluster.namespaces] };
  const kind = pick(['relabel-pod', 'relabel-ns', 'drop-policy', 'add-policy', 'drop-pod', 'move-pod', 'nothing']);
  const i = Math.floor(rand() * next.pods.length);
  const p = next.pods[i]!;
  if (kind === 'relabel-pod')
    next.pods[i] = { ...p, metadata: { ...p.metadata, labels: { ...(p.metadata?.labels ?? {}), app: pick(['web', 'db', 'cache']) } } };
  else if (kind === 'relabel-ns') {
    const j = Math.floor(rand() * next.namespaces.length);
    const ns = next.namespaces[j]!;
    next.namespaces[j] = { ...ns, metadata: { ...ns.metadata, labels: { ...(ns.metadata?.labels ?? {}), team: pick(['red', 'blue', 'green']) } } };
  } else if (kind === 'drop-policy') next.policies.splice(Math.floor(rand() * next.policies.length), 1);
  else if (kind === 'add-policy')
    next.policies.push(
      ...gen(rand)
        .cluster.policies.slice(0, 1)
        .map((np) => ({ ...np, metadata: { ...np.metadata, name: `added${n}` } })),
    );
  else if (kind === 'drop-pod') next.pods.splice(i, 1);
  else if (kind === 'move-pod') {
    const ip = `198.18.${4 + (n % 3)}.${n % 250}`;
    next.pods[i] = { ...p, status: { ...p.status, podIP: ip, podIPs: [{ ip }] } };
  }
  return { next, kind };
}
