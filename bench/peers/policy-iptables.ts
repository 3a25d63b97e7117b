// bench/peers: the policy plan (policy-plan.ts) as kube-router's iptables + ipset controller
// writes it: `ipset restore` for the address sets, then one `iptables-restore --noflush` of the
// filter table: KUBE-ROUTER-FORWARD dispatching every local pod's address (-s and -d) to its
// KUBE-POD-FW chain (established/related accepted first, then a jump per isolating policy, the
// allow mark checked, reset), and one KUBE-NWPLCY chain per policy whose rules match sets and
// ports and set the mark. A change writes only the set members and chains that differ.

import { writeFileSync } from 'node:fs';
import type { Netns } from '../../test/lib/lab.js';
import type { IptablesVariant } from './iptables.js';
import type { AddressSet, PlanRule, PolicyPlan } from './policy-plan.js';

const MARK = '0x10000/0x10000';
export const FORWARD_CHAIN = 'KUBE-ROUTER-FORWARD';

const createSet = (s: AddressSet) => `create ${s.name} ${s.kind === 'ip' ? 'hash:ip' : 'hash:net'} family inet hashsize 1024 maxelem 65536 -exist`;
const memberLines = (s: AddressSet) => [...s.members.map((m) => `add ${s.name} ${m} -exist`), ...s.nomatch.map((m) => `add ${s.name} ${m} nomatch -exist`)];

/** Every set, created and filled (what a full sync's `ipset restore` reads). */
export function ipsetInput(plan: PolicyPlan): string {
  const out: string[] = [];
  for (const s of plan.sets.values()) out.push(createSet(s), `flush ${s.name}`, ...memberLines(s));
  return out.join('\n') + '\n';
}

function ruleLine(chain: string, r: PlanRule): string {
  const m: string[] = [`-A ${chain}`];
  if (r.src) m.push(`-m set --match-set ${r.src} src`);
  if (r.dst) m.push(`-m set --match-set ${r.dst} dst`);
  if (r.proto) m.push(`-p ${r.proto} -m ${r.proto}`);
  if (r.ports) m.push(`--dport ${r.ports[0] === r.ports[1] ? r.ports[0] : `${r.ports[0]}:${r.ports[1]}`}`);
  return `${m.join(' ')} -j MARK --set-xmark ${MARK}`;
}

/** Chain name -> its rules, in the order they are written. */
export function iptablesChains(plan: PolicyPlan): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  const fwd: string[] = [];
  for (const p of plan.pods) {
    fwd.push(`-A ${FORWARD_CHAIN} -m comment --comment "to pod ${p.key}" -d ${p.ip} -j ${p.chain}`);
    fwd.push(`-A ${FORWARD_CHAIN} -m comment --comment "from pod ${p.key}" -s ${p.ip} -j ${p.chain}`);
  }
  chains.set(FORWARD_CHAIN, fwd);
  for (const pol of plan.policies) {
    const rules: string[] = [];
    for (const r of pol.rules) rules.push(ruleLine(pol.chain, r), `-A ${pol.chain} -m mark --mark ${MARK} -j RETURN`);
    chains.set(pol.chain, rules);
  }
  for (const p of plan.pods) {
    const c = p.chain;
    const rules = [
      `-A ${c} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A ${c} -m conntrack --ctstate INVALID -j DROP`,
      `-A ${c} -d ${p.ip} -m addrtype --src-type LOCAL -j ACCEPT`,
      ...(p.ingress === 'open' ? [`-A ${c} -d ${p.ip} -j MARK --set-xmark ${MARK}`] : p.ingress.map((pc) => `-A ${c} -d ${p.ip} -j ${pc}`)),
      ...(p.egress === 'open' ? [`-A ${c} -s ${p.ip} -j MARK --set-xmark ${MARK}`] : p.egress.map((pc) => `-A ${c} -s ${p.ip} -j ${pc}`)),
      `-A ${c} -m comment --comment "default deny" -m mark ! --mark ${MARK} -j DROP`,
      `-A ${c} -j MARK --set-xmark 0x0/0x10000`,
    ];
    chains.set(c, rules);
  }
  return chains;
}

function restoreInput(chains: Map<string, string[]>, names: Iterable<string>, remove: string[] = []): string {
  const ns = [...names];
  return [
    '*filter',
    ...ns.map((c) => `:${c} - [0:0]`),
    ...ns.flatMap((c) => chains.get(c) ?? []),
    ...remove.map((c) => `:${c} - [0:0]`),
    ...remove.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ].join('\n');
}

export function iptablesPolicyInput(plan: PolicyPlan): string {
  const chains = iptablesChains(plan);
  return restoreInput(chains, chains.keys());
}

export function ruleTotal(chains: Map<string, string[]>): number {
  let n = 0;
  for (const r of chains.values()) n += r.length;
  return n;
}

const restore = (v: IptablesVariant) => `iptables-${v}-restore`;

/** From nothing: sets, chains, then the jump from FORWARD. Returns the commands' wall time (ms). */
export async function programIptablesPolicy(
  ns: Netns,
  v: IptablesVariant,
  plan: PolicyPlan,
  file: string,
): Promise<{ ms: number; ipsetMs: number; rules: number }> {
  const chains = iptablesChains(plan);
  writeFileSync(`${file}.ipset`, ipsetInput(plan));
  writeFileSync(file, restoreInput(chains, chains.keys()));
  const t0 = performance.now();
  await ns.exec('ipset', ['restore', '-file', `${file}.ipset`], { timeoutMs: 600_000 });
  const t1 = performance.now();
  await ns.exec(restore(v), ['--noflush', '-w', '5', file], { timeoutMs: 600_000 });
  await ns.exec(`iptables-${v}`, ['-w', '5', '-I', 'FORWARD', '1', '-j', FORWARD_CHAIN]);
  return { ms: performance.now() - t0, ipsetMs: t1 - t0, rules: ruleTotal(chains) };
}

/** The FORWARD jump on or off (the data plane's policy on/off switch: chains and sets stay). */
export async function iptablesPolicyJump(ns: Netns, v: IptablesVariant, on: boolean): Promise<void> {
  await ns.exec(`iptables-${v}`, ['-w', '5', on ? '-I' : '-D', 'FORWARD', ...(on ? ['1'] : []), '-j', FORWARD_CHAIN]);
}

export async function clearIptablesPolicy(ns: Netns, v: IptablesVariant): Promise<void> {
  await ns.exec(`iptables-${v}`, ['-w', '5', '-F'], { check: false });
  await ns.exec(`iptables-${v}`, ['-w', '5', '-X'], { check: false });
  await ns.exec('ipset', ['destroy'], { check: false });
}

export interface IptablesChange {
  ipset: string;
  iptables: string | null;
  /** sets to destroy after the chains that used them are gone */
  destroy: string[];
  setLines: number;
  chains: number;
}

/** What a sync writes after the plan went from `a` to `b`: differing set members, rewritten chains. */
export function iptablesChange(a: PolicyPlan, b: PolicyPlan): IptablesChange {
  const lines: string[] = [];
  for (const s of b.sets.values()) {
    const old = a.sets.get(s.name);
    if (!old) {
      lines.push(createSet(s), ...memberLines(s));
      continue;
    }
    const had = new Set(old.members);
    const has = new Set(s.members);
    for (const m of s.members) if (!had.has(m)) lines.push(`add ${s.name} ${m} -exist`);
    for (const m of old.members) if (!has.has(m)) lines.push(`del ${s.name} ${m} -exist`);
  }
  const destroy = [...a.sets.keys()].filter((n) => !b.sets.has(n));
  const ca = iptablesChains(a);
  const cb = iptablesChains(b);
  const changed = [...cb.keys()].filter((c) => (ca.get(c) ?? []).join('\n') !== cb.get(c)!.join('\n') || !ca.has(c));
  const removed = [...ca.keys()].filter((c) => !cb.has(c));
  return {
    ipset: lines.length ? lines.join('\n') + '\n' : '',
    iptables: changed.length || removed.length ? restoreInput(cb, changed, removed) : null,
    destroy,
    setLines: lines.length,
    chains: changed.length + removed.length,
  };
}

/** Apply a change as the controller would: set members first, chains next, stale sets last. */
export async function applyIptablesChange(ns: Netns, v: IptablesVariant, c: IptablesChange, file: string): Promise<void> {
  if (c.ipset) {
    writeFileSync(`${file}.ipset`, c.ipset);
    await ns.exec('ipset', ['restore', '-file', `${file}.ipset`]);
  }
  if (c.iptables) {
    writeFileSync(file, c.iptables);
    await ns.exec(restore(v), ['--noflush', '-w', '5', file]);
  }
  for (const s of c.destroy) await ns.exec('ipset', ['destroy', s]);
}
