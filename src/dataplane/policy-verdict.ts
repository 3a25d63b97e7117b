// dataplane/policy-verdict: the policy stage (bpf-c/lib/policy.h policy_check) replayed in
// TypeScript against the live maps of the flow's family, lookups only: the source endpoint's egress, then the
// destination endpoint's ingress, each isolated direction allowed by a key for the peer's
// identity, the identity of its longest ipBlock prefix, or any peer (LPM lookups, as the
// program makes them); the node's own addresses always allowed. `weir explain` shows it with
// the policy and rule that allowed, or the policies whose default deny dropped.

import type { WeirPolicy4, WeirPolicy4Key } from '../bpf/index.js';
import { IPPROTO } from '../bpf/ip.js';
import { IDENTITY_ANY, IDENTITY_HOST, IDENTITY_WORLD } from '../model/policy/identities.js';
import {
  addressMaps,
  EP_EGRESS_ISOLATED,
  EP_INGRESS_ISOLATED,
  familyOf,
  hostPrefix,
  POLICY_EGRESS,
  POLICY_FIXED_BITS,
  POLICY_INGRESS,
  SELECT_EGRESS,
  SELECT_INGRESS,
} from './policy-maps.js';
import { keyMatch, keyRanges, portsText, ruleText, type KeyRange, type PolicyNames, type PolicyReadMaps } from './policy-view.js';

export type DirectionVerdict =
  | 'allowed' // isolated, and a key allows the peer
  | 'denied' // isolated, and no key allows the peer: default deny
  | 'not-isolated' // a local endpoint no policy selects for this direction
  | 'node-local' // isolated, but the peer is an address of this node: always allowed
  | 'not-local'; // no endpoint of this node: this node does not decide the direction

/** An address as policy sees it (weir_ipcache4 / weir_ipcache6). */
export interface PolicyPeer {
  address: string;
  identity: number;
  name: string;
  /** the longest ipBlock prefix holding it; 3 (world) for none */
  cidrIdentity: number;
  cidrName: string;
}

/** One direction of one endpoint. */
export interface PolicyDirection {
  verdict: DirectionVerdict;
  /** the local endpoint whose direction this is (the source for egress, the destination for ingress) */
  endpoint: string;
  /** its identity, when it is a local endpoint */
  identity?: number;
  name?: string;
  /** the other side */
  peer: PolicyPeer;
  /** allowed: the weir_policy4 entry that matched and the rule it names */
  allowedBy?: { policy: string; rule: number; ruleText: string; peer: number; peerName: string; protocol: string; ports: string };
  /** denied: the policies isolating the endpoint for this direction (their default deny), sorted */
  deniedBy?: string[];
}

/** The stage's verdict for one flow src -> dst (after DNAT) on protocol/port. */
export interface PolicyDecision {
  src: string;
  dst: string;
  protocol: number;
  /** the port the stage matches: the destination port after DNAT; 0 for protocols without policy ports */
  port: number;
  verdict: 'allowed' | 'denied';
  /** denied: the reason the packet is dropped and counted under */
  reason?: 'policy_egress_denied' | 'policy_ingress_denied';
  egress: PolicyDirection;
  ingress: PolicyDirection;
}

function peerOf(maps: PolicyReadMaps, names: PolicyNames, address: string): PolicyPeer {
  const family = familyOf(address);
  const info = addressMaps(maps, family)?.ipcache.get({ prefixlen: hostPrefix(family), address });
  const identity = info?.identity ?? IDENTITY_WORLD;
  const cidrIdentity = info?.cidr_identity ?? IDENTITY_WORLD;
  return { address, identity, name: names.identity(identity), cidrIdentity, cidrName: names.identity(cidrIdentity) };
}

/** weir_policy_selects: the policies selecting `identity` for `flag`'s direction, sorted. */
function selecting(maps: PolicyReadMaps, names: PolicyNames, identity: number, flag: number, fallbackSlot: number): string[] {
  const out: string[] = [];
  if (maps.selects) for (const [k, v] of maps.selects.entries()) if (k.identity === identity && v.flags & flag) out.push(names.policy(k.policy));
  // no selects map (or not written yet): the endpoint's own first isolating policy
  if (out.length === 0 && fallbackSlot !== 0) out.push(names.policy(fallbackSlot));
  return out.sort();
}

function direction(maps: PolicyReadMaps, names: PolicyNames, dir: number, local: string, peerAddr: string, protocol: number, port: number): PolicyDirection {
  const peer = peerOf(maps, names, peerAddr);
  const ep = addressMaps(maps, familyOf(local))?.endpoints.get({ address: local });
  if (!ep) return { verdict: 'not-local', endpoint: local, peer };
  const self = { endpoint: local, identity: ep.identity, name: names.identity(ep.identity), peer };
  const isolated = ep.flags & (dir === POLICY_EGRESS ? EP_EGRESS_ISOLATED : EP_INGRESS_ISOLATED);
  if (!isolated) return { verdict: 'not-isolated', ...self };
  if (peer.identity === IDENTITY_HOST) return { verdict: 'node-local', ...self };
  // policy_direction: the peer's identity, then its CIDR identity (when another), then any peer
  const peers = [peer.identity, ...(peer.cidrIdentity !== peer.identity ? [peer.cidrIdentity] : []), IDENTITY_ANY];
  for (const p of peers) {
    const key: WeirPolicy4Key = { prefixlen: POLICY_FIXED_BITS + 8 + 16, identity: ep.identity, peer: p, direction: dir, protocol, port };
    const hit = maps.policy.get(key);
    if (!hit) continue;
    const d = dir === POLICY_EGRESS ? 'egress' : 'ingress';
    // the matching entry's own prefix (protocol, port range): the lookup does not return its key
    const m = matchedRange(maps, key);
    return {
      verdict: 'allowed',
      ...self,
      allowedBy: {
        policy: names.policy(hit.policy),
        rule: hit.rule,
        ruleText: ruleText(d, hit.rule),
        peer: p,
        peerName: names.identity(p),
        protocol: m ? m.protocol : 'any',
        ports: m ? portsText(m.port, m.endPort) : 'any',
      },
    };
  }
  const deniedBy = selecting(
    maps,
    names,
    ep.identity,
    dir === POLICY_EGRESS ? SELECT_EGRESS : SELECT_INGRESS,
    dir === POLICY_EGRESS ? ep.egress_policy : ep.ingress_policy,
  );
  return { verdict: 'denied', ...self, deniedBy };
}

/**
 * The rule range an LPM lookup of `key` hit (the trie returns the value only): the longest entry
 * of the same identity, direction and peer whose protocol and port prefix hold the key's, widened
 * to the range its rule's adjacent blocks make.
 */
function matchedRange(maps: PolicyReadMaps, key: WeirPolicy4Key): KeyRange | undefined {
  const same: Array<[WeirPolicy4Key, WeirPolicy4]> = [];
  let best: [WeirPolicy4Key, WeirPolicy4] | undefined;
  for (const [k, v] of maps.policy.entries()) {
    if (k.identity !== key.identity || k.direction !== key.direction || k.peer !== key.peer) continue;
    same.push([k, v]);
    if (best && best[0].prefixlen >= k.prefixlen) continue;
    if (k.prefixlen > POLICY_FIXED_BITS && k.protocol !== key.protocol) continue;
    const bits = Math.max(0, k.prefixlen - POLICY_FIXED_BITS - 8);
    const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
    if ((k.port & mask) !== (key.port & mask)) continue;
    best = [k, v];
  }
  if (!best) return undefined;
  const m = keyMatch(best[0]);
  const [slot, rule] = [best[1].policy, best[1].rule];
  return keyRanges(same).find((r) => r.protocol === m.protocol && r.slot === slot && r.rule === rule && r.port <= m.port && m.endPort <= r.endPort);
}

/**
 * policy_check(src, dst, protocol << 16 | port), either family: egress of the source endpoint first (a deny
 * there ends the decision, as in the program), then ingress of the destination endpoint. Both
 * directions are always described; `verdict` and `reason` are the program's.
 */
export function policyDecision(maps: PolicyReadMaps, names: PolicyNames, src: string, dst: string, protocol: number, dport: number): PolicyDecision {
  const port = protocol === IPPROTO.TCP || protocol === IPPROTO.UDP || protocol === IPPROTO.SCTP ? dport : 0;
  const egress = direction(maps, names, POLICY_EGRESS, src, dst, protocol, port);
  const ingress = direction(maps, names, POLICY_INGRESS, dst, src, protocol, port);
  const out: PolicyDecision = { src, dst, protocol, port, verdict: 'allowed', egress, ingress };
  if (egress.verdict === 'denied') Object.assign(out, { verdict: 'denied', reason: 'policy_egress_denied' });
  else if (ingress.verdict === 'denied') Object.assign(out, { verdict: 'denied', reason: 'policy_ingress_denied' });
  return out;
}

/** One line for a direction: `allowed by x/allow-b rule ingress[0] (peer ..., tcp/8080-8095)`, `default deny by x/deny-a`, ... */
export function directionText(d: PolicyDirection): string {
  switch (d.verdict) {
    case 'allowed': {
      const a = d.allowedBy!;
      const what = a.protocol === 'any' ? 'any protocol' : `${a.protocol}/${a.ports}`;
      return `allowed by ${a.policy} rule ${a.ruleText} (peer ${a.peerName}, ${what})`;
    }
    case 'denied':
      return `default deny by ${d.deniedBy!.join(', ') || 'a policy'} (no rule allows ${d.peer.name}${d.peer.cidrIdentity !== d.peer.identity && d.peer.cidrIdentity !== IDENTITY_WORLD ? ` / ${d.peer.cidrName}` : ''})`;
    case 'not-isolated':
      return 'not isolated';
    case 'node-local':
      return 'node-local (always allowed)';
    case 'not-local':
      return 'not a local endpoint';
  }
}
