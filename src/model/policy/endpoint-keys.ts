// model/policy/endpoint-keys: one identity's selecting policies → its allow rules and policy keys,
// per direction. Named ports resolve here: on the endpoint itself for ingress, on each destination
// identity for egress. Called by buildPolicyModel once per identity whose inputs changed.

import { IPPROTO } from '../../bpf/ip.js';
import type { Protocol } from '../validate.js';
import { IDENTITY_ANY, type PodIdentityLabels } from './identities.js';
import type { AllowRule, DirectionPolicy, PolicyKey } from './policy-types.js';
import type { CompiledPolicy, CompiledRule, Peer, PortMatch } from './rules.js';

const PROTO_NUMBER: Readonly<Record<Protocol, number>> = { TCP: IPPROTO.TCP, UDP: IPPROTO.UDP, SCTP: IPPROTO.SCTP };

export function emptyDirection(): DirectionPolicy {
  return { isolated: false, policies: [], rules: [], keys: [] };
}

/** Merge overlapping or adjacent ranges per (peer, protocol); sort by peer, protocol, port. Sorts `keys` in place. */
export function normalizeKeys(keys: PolicyKey[]): PolicyKey[] {
  keys.sort((a, b) => a.peer - b.peer || a.protocol - b.protocol || a.port - b.port || a.endPort - b.endPort);
  const out: PolicyKey[] = [];
  let cur: PolicyKey | null = null;
  for (const k of keys) {
    if (cur && cur.peer === k.peer && cur.protocol === k.protocol && k.port <= cur.endPort + 1) cur.endPort = Math.max(cur.endPort, k.endPort);
    else out.push((cur = { ...k }));
  }
  return out;
}

export function addRules(
  dir: DirectionPolicy,
  pol: CompiledPolicy,
  rules: readonly CompiledRule[],
  direction: 'ingress' | 'egress',
  selfNamedPorts: Readonly<Record<string, number>>,
  idsOf: (p: Peer) => number[],
  podIdentities: ReadonlyMap<number, PodIdentityLabels>,
  podIdsInBlock: (p: Peer & { kind: 'ipBlock' }) => number[],
): void {
  dir.isolated = true;
  if (!dir.policies.includes(pol.key)) dir.policies.push(pol.key);
  const emit = (rule: CompiledRule, peer: AllowRule['peer'], protocol: Protocol | 'any', port: number, endPort: number): void => {
    dir.rules.push({ policy: pol.key, rule: rule.index, peer, protocol, port, endPort });
    const proto = protocol === 'any' ? 0 : PROTO_NUMBER[protocol];
    const ids = peer.kind === 'any' ? [IDENTITY_ANY] : peer.identities;
    for (const id of ids) dir.keys.push({ peer: id, protocol: proto, port, endPort });
  };
  const peerView = (peer: Peer | 'all'): AllowRule['peer'] => {
    if (peer === 'all') return { kind: 'any' };
    if (peer.kind === 'pods') return { kind: 'pods', identities: idsOf(peer) };
    return {
      kind: 'cidr',
      cidr: `${peer.cidr.address}/${peer.cidr.prefix}`,
      except: peer.except.map((e) => `${e.address}/${e.prefix}`),
      identities: idsOf(peer),
    };
  };
  for (const rule of rules) {
    const peers: (Peer | 'all')[] = rule.peers === 'all' ? ['all'] : rule.peers;
    for (const peer of peers) {
      if (rule.ports === 'all') {
        emit(rule, peerView(peer), 'any', 0, 65535);
        continue;
      }
      for (const pm of rule.ports) {
        if (pm.kind === 'range') emit(rule, peerView(peer), pm.protocol, pm.port, pm.endPort);
        else if (direction === 'ingress') {
          // the destination is this endpoint: resolve on its own containers; absent → nothing on this pod
          const n = selfNamedPorts[`${pm.name}/${pm.protocol}`];
          if (n !== undefined) emit(rule, peerView(peer), pm.protocol, n, n);
        } else emitNamedEgress(rule, peer, pm, idsOf, podIdentities, podIdsInBlock, emit);
      }
    }
  }
}

/** Egress with a named port: resolved on each destination pod, i.e. per peer identity (identities carry named ports). */
function emitNamedEgress(
  rule: CompiledRule,
  peer: Peer | 'all',
  pm: PortMatch & { kind: 'named' },
  idsOf: (p: Peer) => number[],
  podIdentities: ReadonlyMap<number, PodIdentityLabels>,
  podIdsInBlock: (p: Peer & { kind: 'ipBlock' }) => number[],
  emit: (rule: CompiledRule, peer: AllowRule['peer'], protocol: Protocol | 'any', port: number, endPort: number) => void,
): void {
  const candidates = peer === 'all' ? [...podIdentities.keys()] : peer.kind === 'pods' ? idsOf(peer) : podIdsInBlock(peer);
  const byPort = new Map<number, number[]>();
  for (const id of candidates) {
    const n = podIdentities.get(id)?.namedPorts[`${pm.name}/${pm.protocol}`];
    if (n === undefined) continue;
    let l = byPort.get(n);
    if (!l) byPort.set(n, (l = []));
    l.push(id);
  }
  for (const [n, ids] of [...byPort].sort(([a], [b]) => a - b)) emit(rule, { kind: 'pods', identities: ids.sort((a, b) => a - b) }, pm.protocol, n, n);
}
