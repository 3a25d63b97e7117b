// bench/peers: the policy plan (policy-plan.ts) as one nftables table, written the way an nft
// policy engine would: one `nft -f` transaction from nothing; the forward base chain accepts
// established/related first and dispatches by address through two verdict maps (source ->
// the pod's chain for its egress, destination -> for its ingress) instead of a linear list;
// per-policy chains match named sets (ipBlocks: an interval set and its except set) and set
// the allow mark, as the iptables peer does. A change is one transaction of set elements added
// and deleted and the chains that differ flushed and rewritten.

import { writeFileSync } from 'node:fs';
import type { Netns } from '../../test/lib/lab.js';
import type { AddressSet, PlanRule, PolicyPlan } from './policy-plan.js';

export const NFT_TABLE = 'ip netpol';
const T = NFT_TABLE;
const MARK = '0x10000';

const setDecl = (s: AddressSet) =>
  s.kind === 'ip'
    ? [`add set ${T} ${s.name} { type ipv4_addr ; }`]
    : [`add set ${T} ${s.name} { type ipv4_addr ; flags interval ; }`, `add set ${T} ${s.name}-X { type ipv4_addr ; flags interval ; }`];
const elements = (set: string, xs: readonly string[], verb = 'add') => {
  const out: string[] = [];
  for (let i = 0; i < xs.length; i += 1000) out.push(`${verb} element ${T} ${set} { ${xs.slice(i, i + 1000).join(', ')} }`);
  return out;
};
const setElements = (s: AddressSet) => [...elements(s.name, s.members), ...(s.kind === 'net' ? elements(`${s.name}-X`, s.nomatch) : [])];

function match(dir: 'saddr' | 'daddr', set: string, sets: Map<string, AddressSet>): string {
  const s = sets.get(set);
  return s?.kind === 'net' ? `ip ${dir} @${set} ip ${dir} != @${set}-X` : `ip ${dir} @${set}`;
}

function ruleText(chain: string, r: PlanRule, sets: Map<string, AddressSet>): string {
  const m: string[] = [`add rule ${T} ${chain}`];
  if (r.src) m.push(match('saddr', r.src, sets));
  if (r.dst) m.push(match('daddr', r.dst, sets));
  if (r.proto && r.ports) m.push(`${r.proto} dport ${r.ports[0] === r.ports[1] ? r.ports[0] : `${r.ports[0]}-${r.ports[1]}`}`);
  else if (r.proto) m.push(`meta l4proto ${r.proto}`);
  return `${m.join(' ')} meta mark set meta mark or ${MARK} return`;
}

/** Chain name -> its rule lines (policy and pod chains; the base chain is fixed). */
export function nftChains(plan: PolicyPlan): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  for (const pol of plan.policies)
    chains.set(
      pol.chain,
      pol.rules.map((r) => ruleText(pol.chain, r, plan.sets)),
    );
  for (const p of plan.pods) {
    const c = p.chain;
    chains.set(c, [
      `add rule ${T} ${c} ip daddr ${p.ip} fib saddr type local accept`,
      ...(p.ingress === 'open'
        ? [`add rule ${T} ${c} ip daddr ${p.ip} meta mark set meta mark or ${MARK}`]
        : p.ingress.map((pc) => `add rule ${T} ${c} ip daddr ${p.ip} jump ${pc}`)),
      ...(p.egress === 'open'
        ? [`add rule ${T} ${c} ip saddr ${p.ip} meta mark set meta mark or ${MARK}`]
        : p.egress.map((pc) => `add rule ${T} ${c} ip saddr ${p.ip} jump ${pc}`)),
      `add rule ${T} ${c} meta mark and ${MARK} == 0 drop`,
      `add rule ${T} ${c} meta mark set meta mark and 0xfffeffff`,
    ]);
  }
  return chains;
}

function baseLines(plan: PolicyPlan): string[] {
  return [
    `add table ${T}`,
    `add map ${T} pod-egress { type ipv4_addr : verdict ; }`,
    `add map ${T} pod-ingress { type ipv4_addr : verdict ; }`,
    `add chain ${T} forward { type filter hook forward priority 0 ; policy accept ; }`,
    ...elements(
      'pod-egress',
      plan.pods.map((p) => `${p.ip} : jump ${p.chain}`),
    ),
    ...elements(
      'pod-ingress',
      plan.pods.map((p) => `${p.ip} : jump ${p.chain}`),
    ),
  ];
}

/** The base chain's rules: the data plane's on/off switch flushes and rewrites only these. */
export const NFT_DISPATCH = [
  `add rule ${T} forward ct state established,related accept`,
  `add rule ${T} forward ct state invalid drop`,
  `add rule ${T} forward ip saddr vmap @pod-egress`,
  `add rule ${T} forward ip daddr vmap @pod-ingress`,
];

export function nftPolicyInput(plan: PolicyPlan): { text: string; rules: number; chains: number } {
  const chains = nftChains(plan);
  const sets = [...plan.sets.values()];
  const rules = [...chains.values()].flat();
  // maps referring to chains need the chains first: declare, then fill
  const decl = [...chains.keys()].map((c) => `add chain ${T} ${c}`);
  const base = baseLines(plan);
  const text = [base[0]!, ...sets.flatMap(setDecl), ...sets.flatMap(setElements), ...decl, ...base.slice(1), ...rules, ...NFT_DISPATCH].join('\n') + '\n';
  return { text, rules: rules.length + NFT_DISPATCH.length, chains: chains.size + 1 };
}

export async function programNftPolicy(ns: Netns, plan: PolicyPlan, file: string): Promise<{ ms: number; rules: number; chains: number }> {
  const input = nftPolicyInput(plan);
  writeFileSync(file, input.text);
  const t0 = performance.now();
  await ns.exec('nft', ['-f', file], { timeoutMs: 600_000 });
  return { ms: performance.now() - t0, rules: input.rules, chains: input.chains };
}

export async function nftPolicyDispatch(ns: Netns, on: boolean, file: string): Promise<void> {
  writeFileSync(file, [`flush chain ${T} forward`, ...(on ? NFT_DISPATCH : [])].join('\n') + '\n');
  await ns.exec('nft', ['-f', file]);
}

export async function clearNftPolicy(ns: Netns): Promise<void> {
  await ns.exec('nft', ['delete', 'table', ...T.split(' ')], { check: false });
}

/** One transaction taking the table from plan `a` to plan `b`: elements added/deleted, differing chains rewritten. */
export function nftChange(a: PolicyPlan, b: PolicyPlan): { text: string; lines: number } {
  const out: string[] = [];
  for (const s of b.sets.values()) {
    const old = a.sets.get(s.name);
    if (!old) {
      out.push(...setDecl(s), ...setElements(s));
      continue;
    }
    const had = new Set(old.members);
    const has = new Set(s.members);
    out.push(
      ...elements(
        s.name,
        s.members.filter((m) => !had.has(m)),
      ),
    );
    out.push(
      ...elements(
        s.name,
        old.members.filter((m) => !has.has(m)),
        'delete',
      ),
    );
  }
  const ca = nftChains(a);
  const cb = nftChains(b);
  for (const [c, rules] of cb) {
    const old = ca.get(c);
    if (old && old.join('\n') === rules.join('\n')) continue;
    out.push(old ? `flush chain ${T} ${c}` : `add chain ${T} ${c}`, ...rules);
  }
  for (const c of ca.keys()) if (!cb.has(c)) out.push(`flush chain ${T} ${c}`, `delete chain ${T} ${c}`);
  for (const n of a.sets.keys()) if (!b.sets.has(n)) out.push(`delete set ${T} ${n}`, ...(a.sets.get(n)!.kind === 'net' ? [`delete set ${T} ${n}-X`] : []));
  return { text: out.join('\n') + '\n', lines: out.length };
}
