// cli/policy: NetworkPolicy as an operator reads it, straight from a node's pinned maps (no
// daemon round-trip): `weir ipcache` (every address weir knows -> its identity), `weir
// identities` (what each identity stands for and who carries it), `weir policy` (each local
// endpoint: isolation, the policies selecting it, the allow rules compiled for its identity).
// The JSON field names are documented in docs/operations.md and kept stable.

import type { Command } from 'commander';
import type { WeirPolicy4, WeirPolicy4Key } from '../bpf/index.js';
import { policyMaps } from '../dataplane/loader.js';
import { ipBytes } from '../bpf/ip.js';
import { IDENTITY_ANY, IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD } from '../model/policy/identities.js';
import {
  addressMaps,
  EP_EGRESS_ISOLATED,
  EP_INGRESS_ISOLATED,
  FAMILIES,
  POLICY_EGRESS,
  POLICY_INGRESS,
  SELECT_EGRESS,
  SELECT_INGRESS,
  type AddressMaps,
} from '../dataplane/policy-maps.js';
import { keyRanges, portsText, ruleText, PolicyNames, type IdentityInfo, type PolicyReadMaps } from '../dataplane/policy-view.js';
import { hostPolicyReadMaps } from '../dataplane/host-policy-view.js';
import { hostPolicyText, hostPolicyView } from './host-endpoints.js';
import { CliError, render, table } from './output.js';
import { common, type Common } from './services.js';
import { pinDirOf, withOpenMaps, type StateOptions } from './state.js';

/** Opens the policy maps of `o` for `f` (the optional ones only where pinned), and closes them. */
export function withPolicyMaps<R>(o: StateOptions, f: (maps: PolicyReadMaps) => R): R {
  return withOpenMaps(o, (open, pinned) => f(policyMaps(open, (n) => pinned.has(n))));
}

/** Both families' address maps of `maps` (IPv6's where pinned), IPv4 first. */
function familyMaps(maps: PolicyReadMaps): AddressMaps[] {
  return FAMILIES.flatMap((f) => addressMaps(maps, f) ?? []);
}

/** `address` or `address/prefix`, numerically (IPv4 before IPv6, address, then prefix length). */
function byAddress(a: string, b: string): number {
  const [aa, ap] = a.split('/');
  const [ba, bp] = b.split('/');
  const [ab, bb] = [ipBytes(aa!) ?? Buffer.alloc(0), ipBytes(ba!) ?? Buffer.alloc(0)];
  const c = ab.length - bb.length || Buffer.compare(ab, bb);
  return c !== 0 ? c : Number(ap ?? 32) - Number(bp ?? 32);
}

// ---- weir ipcache

export interface IpcacheRow {
  prefix: string;
  identity: number;
  name: string;
  /** the longest ipBlock prefix holding it (3, world: none) */
  cidrIdentity: number;
  cidrName: string;
}

export function ipcacheView(maps: PolicyReadMaps, names = PolicyNames.read(maps)): { entries: IpcacheRow[] } {
  const entries = familyMaps(maps)
    .flatMap((m) => [...m.ipcache.entries()])
    .map(([k, v]) => ({
      prefix: `${k.address}/${k.prefixlen}`,
      identity: v.identity,
      name: names.identity(v.identity),
      cidrIdentity: v.cidr_identity,
      cidrName: names.identity(v.cidr_identity),
    }));
  return { entries: entries.sort((a, b) => byAddress(a.prefix, b.prefix)) };
}

export function ipcacheText(v: { entries: IpcacheRow[] }): string {
  return table(
    v.entries.map((e) => ({ ...e, cidrIdentity: e.cidrIdentity === IDENTITY_WORLD ? '-' : `${e.cidrIdentity} ${e.cidrName}` })),
    ['prefix', 'identity', 'name', 'cidrIdentity'],
  );
}

// ---- weir identities

export interface IdentityRow extends IdentityInfo {
  /** ipcache entries (weir_ipcache4 and weir_ipcache6) with this identity */
  ipcacheEntries: number;
  /** ipcache entries (of other identities) whose longest ipBlock prefix it is */
  ipcacheCidrEntries: number;
  /** local endpoint addresses (weir_endpoints4 and weir_endpoints6) with this identity */
  endpoints: number;
}

export function identitiesView(maps: PolicyReadMaps, names = PolicyNames.read(maps)): { identities: IdentityRow[] } {
  const ids = new Set<number>([IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD, ...maps.identities.keys()]);
  const ipcache = new Map<number, number>();
  const cidrOf = new Map<number, number>();
  const endpoints = new Map<number, number>();
  const bump = (m: Map<number, number>, id: number) => {
    m.set(id, (m.get(id) ?? 0) + 1);
    ids.add(id);
  };
  for (const m of familyMaps(maps)) {
    for (const [, v] of m.ipcache.entries()) {
      bump(ipcache, v.identity);
      if (v.cidr_identity !== v.identity && v.cidr_identity !== IDENTITY_WORLD) bump(cidrOf, v.cidr_identity);
    }
    for (const [, v] of m.endpoints.entries()) bump(endpoints, v.identity);
  }
  return {
    identities: [...ids]
      .sort((a, b) => a - b)
      .map((id) => ({ ...names.info(id), ipcacheEntries: ipcache.get(id) ?? 0, ipcacheCidrEntries: cidrOf.get(id) ?? 0, endpoints: endpoints.get(id) ?? 0 })),
  };
}

const pairs = (o: Record<string, string | number> | undefined) =>
  Object.entries(o ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/** What an identity stands for, in one cell. */
function detail(i: IdentityInfo): string {
  if (i.kind === 'cidr') return i.cidr!;
  if (i.kind === 'reserved') return { host: "this node's addresses", 'remote-node': 'the other nodes', world: 'no ipcache entry' }[i.name] ?? '';
  if (i.kind === 'unknown') return i.key === undefined ? '(no key in weir_identities)' : `(undecoded key) ${i.key}`;
  const parts = [`ns ${i.namespace}`, `labels {${pairs(i.labels)}}`];
  const nsLabels = Object.entries(i.namespaceLabels ?? {}).filter(([k]) => k !== 'kubernetes.io/metadata.name');
  if (nsLabels.length > 0) parts.push(`nsLabels {${pairs(Object.fromEntries(nsLabels))}}`);
  if (Object.keys(i.namedPorts ?? {}).length > 0) parts.push(`ports {${pairs(i.namedPorts)}}`);
  return parts.join(' ');
}

export function identitiesText(v: { identities: IdentityRow[] }): string {
  return table(
    v.identities.map((i) => ({
      identity: i.identity,
      kind: i.kind,
      name: i.name,
      ipcache: i.ipcacheEntries + i.ipcacheCidrEntries,
      endpoints: i.endpoints,
      detail: detail(i),
    })),
    ['identity', 'kind', 'name', 'ipcache', 'endpoints', 'detail'],
  );
}

// ---- weir policy

/** One allow rule of a local identity as compiled into weir_policy4 (adjacent port blocks merged). */
export interface CompiledRule {
  peer: number;
  peerName: string;
  /** 'any' or tcp / udp / sctp */
  protocol: string;
  /** `80`, `8080-8095` or `any` */
  ports: string;
  port: number;
  endPort: number;
  policy: string;
  rule: number;
  /** `ingress[0]`: the rule's place in the policy's spec */
  ruleText: string;
}

export interface EndpointDirection {
  isolated: boolean;
  /** the policies selecting the endpoint for this direction (weir_policy_selects), sorted */
  policies: string[];
  rules: CompiledRule[];
}

export interface EndpointPolicy {
  address: string;
  identity: number;
  name: string;
  ingress: EndpointDirection;
  egress: EndpointDirection;
}

/** weir_policy4 entries of one identity and direction back to rules (adjacent port blocks of one rule merged). */
function compiledRules(entries: Array<[WeirPolicy4Key, WeirPolicy4]>, names: PolicyNames): CompiledRule[] {
  return keyRanges(entries).map((r) => ({
    peer: r.peer,
    peerName: names.identity(r.peer),
    protocol: r.protocol,
    ports: portsText(r.port, r.endPort),
    port: r.port,
    endPort: r.endPort,
    policy: names.policy(r.slot),
    rule: r.rule,
    ruleText: ruleText(r.direction, r.rule),
  }));
}

export function policyView(maps: PolicyReadMaps, names = PolicyNames.read(maps)): { endpoints: EndpointPolicy[] } {
  const keys = new Map<string, Array<[WeirPolicy4Key, WeirPolicy4]>>();
  for (const [k, v] of maps.policy.entries()) {
    const t = `${k.identity}/${k.direction}`;
    let l = keys.get(t);
    if (!l) keys.set(t, (l = []));
    l.push([k, v]);
  }
  const selects = new Map<number, Array<{ policy: string; flags: number }>>();
  if (maps.selects)
    for (const [k, v] of maps.selects.entries()) {
      let l = selects.get(k.identity);
      if (!l) selects.set(k.identity, (l = []));
      l.push({ policy: names.policy(k.policy), flags: v.flags });
    }
  const rulesOf = new Map<string, CompiledRule[]>();
  const direction = (identity: number, dir: number, isolated: boolean, firstSlot: number): EndpointDirection => {
    const t = `${identity}/${dir}`;
    let rules = rulesOf.get(t);
    if (!rules) rulesOf.set(t, (rules = compiledRules(keys.get(t) ?? [], names)));
    const flag = dir === POLICY_EGRESS ? SELECT_EGRESS : SELECT_INGRESS;
    const policies = (selects.get(identity) ?? []).filter((s) => s.flags & flag).map((s) => s.policy);
    // no weir_policy_selects: the endpoint's first isolating policy is all that is known
    if (!maps.selects && isolated && firstSlot !== 0) policies.push(names.policy(firstSlot));
    return { isolated, policies: policies.sort(), rules: isolated ? rules : [] };
  };
  const endpoints = familyMaps(maps)
    .flatMap((m) => [...m.endpoints.entries()])
    .map(([k, v]) => ({
      address: k.address,
      identity: v.identity,
      name: names.identity(v.identity),
      ingress: direction(v.identity, POLICY_INGRESS, (v.flags & EP_INGRESS_ISOLATED) !== 0, v.ingress_policy),
      egress: direction(v.identity, POLICY_EGRESS, (v.flags & EP_EGRESS_ISOLATED) !== 0, v.egress_policy),
    }));
  return { endpoints: endpoints.sort((a, b) => byAddress(a.address, b.address)) };
}

function isolationCell(d: EndpointDirection): string {
  if (!d.isolated) return '-';
  const n = d.rules.length;
  return `${d.policies.join(',') || 'isolated'} (${n === 0 ? 'deny all' : `${n} rule${n === 1 ? '' : 's'}`})`;
}

/** The endpoint table, then each local identity's rules once (endpoints sharing an identity share them). */
export function policyText(v: { endpoints: EndpointPolicy[] }): string {
  const out = [
    table(
      v.endpoints.map((e) => ({ endpoint: e.address, identity: e.identity, name: e.name, ingress: isolationCell(e.ingress), egress: isolationCell(e.egress) })),
      ['endpoint', 'identity', 'name', 'ingress', 'egress'],
    ),
  ];
  const byIdentity = new Map<number, EndpointPolicy[]>();
  for (const e of v.endpoints) {
    let l = byIdentity.get(e.identity);
    if (!l) byIdentity.set(e.identity, (l = []));
    l.push(e);
  }
  for (const [identity, eps] of [...byIdentity].sort(([a], [b]) => a - b)) {
    const e = eps[0]!;
    const rules = [...e.ingress.rules.map((r) => ({ direction: 'ingress', ...r })), ...e.egress.rules.map((r) => ({ direction: 'egress', ...r }))];
    if (!e.ingress.isolated && !e.egress.isolated) continue;
    out.push('', `rules of identity ${identity} ${e.name} (${eps.map((x) => x.address).join(', ')}):`);
    out.push(
      rules.length === 0
        ? '(none: every flow of its isolated directions is denied)'
        : table(
            rules.map((r) => ({ ...r, peer: r.peer === IDENTITY_ANY ? 'any' : `${r.peer} ${r.peerName}`, rule: r.ruleText })),
            ['direction', 'peer', 'protocol', 'ports', 'policy', 'rule'],
          ),
    );
  }
  return out.join('\n');
}

export function registerPolicyCommands(program: Command): void {
  common(
    program.command('ipcache').description('every address NetworkPolicy knows (weir_ipcache4, weir_ipcache6) -> its security identity and ipBlock identity'),
  ).action((o: Common) => {
    const v = withPolicyMaps(o, (m) => ipcacheView(m));
    process.stdout.write(`${render(o.output, v, () => ipcacheText(v))}\n`);
  });
  common(program.command('identities').description('security identities (weir_identities and the reserved ones): labels, CIDR, who carries each')).action(
    (o: Common) => {
      const v = withPolicyMaps(o, (m) => identitiesView(m));
      process.stdout.write(`${render(o.output, v, () => identitiesText(v))}\n`);
    },
  );
  common(
    program
      .command('policy')
      .description(
        "each local endpoint's NetworkPolicy (isolation, selecting policies, compiled allow rules) and each host endpoint's Calico host policy (per chain: policies, rules, counters)",
      ),
  ).action((o: Common) => {
    // pod NetworkPolicy where its maps are pinned, host endpoints (Calico host policy) where theirs are
    withOpenMaps(o, (open, pinned) => {
      const has = (n: string) => pinned.has(n);
      const pods = has('weir_endpoints4') ? policyView(policyMaps(open, has)) : undefined;
      const hostMaps = hostPolicyReadMaps(open, has);
      const hosts = hostMaps ? hostPolicyView(hostMaps) : undefined;
      if (!pods && !hosts) throw new CliError(`neither the NetworkPolicy nor the host policy maps are pinned at ${pinDirOf(o)}`);
      // both: a title each (pods alone print as they always did)
      const text = () =>
        pods && hosts ? `pod endpoints:\n${policyText(pods)}\n\nhost endpoints:\n${hostPolicyText(hosts)}` : pods ? policyText(pods) : hostPolicyText(hosts!);
      process.stdout.write(`${render(o.output, { ...pods, ...hosts }, text)}\n`);
    });
  });
}
