// model/policy/ipcache: address → identity, as the BPF LPM trie will hold it. Pod IPs (/32, /128)
// carry the pod's identity, node IPs the host or remote-node identity, every ipBlock prefix (cidr
// and except alike) its own CIDR identity. Each entry also carries the identity of the longest
// ipBlock prefix holding the address (`cidrIdentity`), so an ipBlock that covers a pod IP still
// matches it (the e2e suite's "allow egress access to server in CIDR block" targets a pod IP).
//
// Why prefixes as identities is exact for `except`: prefixes are nested or disjoint, so every
// address whose longest matching prefix is P lies inside exactly the prefixes that contain P. An
// ipBlock {cidr, except[]} therefore selects address a iff it selects P = longest(a), i.e. iff
// P ⊆ cidr and P ⊄ every except. The union of several ipBlocks is the union of their id sets.

import { parseCidr, parseIp, parseIp4Octets, type IpFamily, type ParsedCidr } from '../../bpf/ip.js';
import { IDENTITY_WORLD } from './identities.js';
import { cidrCovers, type IpBlockPeer } from './rules.js';

export interface IpcacheEntry {
  /** Canonical `address/prefix`. */
  cidr: string;
  family: IpFamily;
  prefix: number;
  /** The identity the policy maps are keyed on for this address. */
  identity: number;
  /** The identity of the longest ipBlock prefix holding the address (IDENTITY_WORLD when none). */
  cidrIdentity: number;
  /** What the entry is: a pod ('ns/name'), a node (name), or an ipBlock prefix. */
  source: { kind: 'pod'; pod: string } | { kind: 'node'; node: string } | { kind: 'cidr' };
}

function ip4Number(o: readonly number[]): number {
  return ((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0;
}

function mask4(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** ipBlock prefixes indexed for longest-prefix lookups: family → prefix length → network address → id. */
export class PrefixIndex {
  private readonly byFamily = new Map<IpFamily, Map<number, Map<string, number>>>();
  private readonly lengths = new Map<IpFamily, number[]>();
  /** IPv4 by length: the network as a number -> id (every pod is looked up: no string per length) */
  private readonly v4 = new Map<number, Map<number, number>>();
  private v4Lengths: number[] = [];
  private readonly octets = [0, 0, 0, 0];
  readonly prefixes: { cidr: ParsedCidr; id: number }[] = [];

  add(cidr: ParsedCidr, id: number): void {
    let byLen = this.byFamily.get(cidr.family);
    if (!byLen) this.byFamily.set(cidr.family, (byLen = new Map()));
    let m = byLen.get(cidr.prefix);
    if (!m) {
      byLen.set(cidr.prefix, (m = new Map()));
      this.lengths.set(
        cidr.family,
        [...byLen.keys()].sort((a, b) => b - a),
      );
    }
    m.set(cidr.address, id);
    this.prefixes.push({ cidr, id });
    if (cidr.family === 4 && parseIp4Octets(cidr.address, this.octets)) {
      let n = this.v4.get(cidr.prefix);
      if (!n) {
        this.v4.set(cidr.prefix, (n = new Map()));
        this.v4Lengths = [...this.v4.keys()].sort((a, b) => b - a);
      }
      n.set(ip4Number(this.octets) & mask4(cidr.prefix), id);
    }
  }

  /** The id of the longest prefix holding `ip` (an address, canonical or not), or IDENTITY_WORLD. */
  longest(ip: string): number {
    if (!ip.includes(':')) {
      if (!parseIp4Octets(ip, this.octets)) return IDENTITY_WORLD;
      const a = ip4Number(this.octets);
      for (const len of this.v4Lengths) {
        const id = this.v4.get(len)!.get(a & mask4(len));
        if (id !== undefined) return id;
      }
      return IDENTITY_WORLD;
    }
    const p = parseIp(ip);
    if (!p) return IDENTITY_WORLD;
    const byLen = this.byFamily.get(p.family);
    for (const len of this.lengths.get(p.family) ?? []) {
      const net = parseCidr(`${p.address}/${len}`);
      const id = net ? byLen!.get(len)!.get(net.address) : undefined;
      if (id !== undefined) return id;
    }
    return IDENTITY_WORLD;
  }

  /** The CIDR identities an ipBlock selects: every indexed prefix inside cidr and inside no except. */
  select(block: IpBlockPeer): number[] {
    const out: number[] = [];
    for (const { cidr, id } of this.prefixes) {
      if (!cidrCovers(block.cidr, cidr)) continue;
      if (block.except.some((e) => cidrCovers(e, cidr))) continue;
      out.push(id);
    }
    return out;
  }
}

/** Longest-prefix lookup in a built ipcache (what the BPF LPM lookup returns), or null for no entry. */
export function lookupIpcache(ipcache: ReadonlyMap<string, IpcacheEntry>, ip: string): IpcacheEntry | null {
  const p = parseIp(ip);
  if (!p) return null;
  const full = p.family === 4 ? 32 : 128;
  for (let len = full; len >= 0; len--) {
    const net = parseCidr(`${p.address}/${len}`);
    const e = net ? ipcache.get(`${net.address}/${len}`) : undefined;
    if (e) return e;
  }
  return null;
}
