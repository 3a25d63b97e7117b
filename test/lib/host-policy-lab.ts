// test/lib/host-policy-lab: what the host protection labs (test/lab/host-protection.test.ts,
// host-xdp.test.ts) share: Calico manifests as a user writes them (GlobalNetworkPolicy, a Node
// with labels), a read of the host policy a daemon has in force (its pinned maps, the ABI of
// bpf-c/include/weir/host_policy.h), per-rule packet counts, reachability probes from a client
// in its own cgroup, and an interface's kernel counters.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../../src/bpf/index.js';
import { codecFor } from '../../src/bpf/codec.js';
import { enums } from '../../src/bpf/abi.gen.js';
import type { GlobalNetworkPolicySpec } from '../../src/model/host-policy/types.js';
import type { Cgroup, Netns } from './lab.js';
import { sleep } from './proc.js';
import { node, SVC_CLIENT_JS, type NodeSpec, type WeirNode } from './weir-node.js';
import type { SpreadResult } from './svc-client.js';

/** A projectcalico.org/v3 GlobalNetworkPolicy as a user writes it. */
export function globalNetworkPolicy(name: string, spec: GlobalNetworkPolicySpec): object {
  return { apiVersion: 'projectcalico.org/v3', kind: 'GlobalNetworkPolicy', metadata: { name }, spec };
}

/** A Node object (weir-node.ts node()) with labels of its own besides the hostname. */
export function labelledNode(s: NodeSpec, labels: Record<string, string>): object {
  const n = node(s) as { metadata: { labels: Record<string, string> } };
  return { ...n, metadata: { ...n.metadata, labels: { ...n.metadata.labels, ...labels } } };
}

/** weir_hep_chains kinds by number (host_policy.h enum weir_hep_chain_kind) */
const CHAIN_NAMES: Record<number, string> = {
  [enums.weir_hep_chain_kind.WEIR_CHAIN_UNTRACKED_IN]: 'untrackedIn',
  [enums.weir_hep_chain_kind.WEIR_CHAIN_UNTRACKED_OUT]: 'untrackedOut',
  [enums.weir_hep_chain_kind.WEIR_CHAIN_PREDNAT_IN]: 'preDnatIn',
  [enums.weir_hep_chain_kind.WEIR_CHAIN_NORMAL_IN]: 'normalIn',
  [enums.weir_hep_chain_kind.WEIR_CHAIN_NORMAL_OUT]: 'normalOut',
  [enums.weir_hep_chain_kind.WEIR_CHAIN_FORWARD_IN]: 'forwardIn',
  [enums.weir_hep_chain_kind.WEIR_CHAIN_FORWARD_OUT]: 'forwardOut',
};

export interface PlanRule {
  index: number;
  action: 'allow' | 'deny' | 'pass';
  /** "tier/name" of the rule's policy; '' for a compiled rule (tier end, profile) */
  policy: string;
  /** index in the policy's ingress or egress list */
  rule: number;
}

/** The host policy a daemon has in force, read from its pins: chains of each host endpoint. */
export interface PlanView {
  /** policy names in weir_host_policy_names ("tier/name") */
  names: string[];
  chains: Array<{ hep: number; kind: string; rules: PlanRule[] }>;
  /** a canonical text of all of it (equal texts: the same plan) */
  text: string;
}

const ACTIONS = ['allow', 'deny', 'pass'] as const;

/** Reads the host policy maps of `pinDir` (an empty plan while they are not pinned). */
export function readPlan(pinDir: string): PlanView {
  const open = (name: string) => {
    try {
      return BpfMap.openPinned(join(pinDir, name));
    } catch {
      return undefined;
    }
  };
  const namesMap = open('weir_host_policy_names');
  const chainsMap = open('weir_hep_chains');
  const rulesMap = open('weir_host_rules');
  try {
    const slots = new Map<number, string>();
    if (namesMap) {
      const [k, v] = [codecFor('weir_host_policy_name'), namesMap];
      for (const [key, value] of v.entries()) slots.set(key.readUInt32LE(0), k.decode(value).name.toString('utf8').replace(/\0.*$/s, ''));
    }
    const chains: PlanView['chains'] = [];
    if (chainsMap && rulesMap) {
      const keyC = codecFor('weir_hep_chain_key');
      const chainC = codecFor('weir_hep_chain');
      const ruleC = codecFor('weir_host_rule');
      for (const [k, v] of chainsMap.entries()) {
        const key = keyC.decode(k);
        const chain = chainC.decode(v);
        const rules: PlanRule[] = [];
        for (let i = chain.first; i < chain.first + chain.count; i++) {
          const idx = Buffer.alloc(4);
          idx.writeUInt32LE(i);
          const raw = rulesMap.lookup(idx);
          if (!raw) continue;
          const r = ruleC.decode(raw);
          rules.push({ index: i, action: ACTIONS[r.action] ?? 'pass', policy: r.policy ? (slots.get(r.policy) ?? `#${r.policy}`) : '', rule: r.rule });
        }
        chains.push({ hep: key.hep, kind: CHAIN_NAMES[key.kind] ?? `kind${key.kind}`, rules });
      }
    }
    chains.sort((a, b) => a.hep - b.hep || a.kind.localeCompare(b.kind));
    const names = [...slots.values()].sort();
    const text = JSON.stringify({ names, chains: chains.map((c) => ({ ...c, rules: c.rules.map((r) => [r.action, r.policy, r.rule]) })) });
    return { names, chains, text };
  } finally {
    for (const m of [namesMap, chainsMap, rulesMap]) m?.close();
  }
}

/** true when `full` ("tier/name") names policy `name` */
export const isPolicy = (full: string, name: string) => full === name || full.endsWith(`/${name}`);

/** Whether the plan has policy `name` in a chain of kind `kind` (any kind when absent). */
export function inChain(plan: PlanView, name: string, kind?: string): boolean {
  return plan.chains.some((c) => (!kind || c.kind === kind) && c.rules.some((r) => isPolicy(r.policy, name)));
}

/**
 * Waits until `ready(plan)` holds on every daemon, then until its plan stops changing (300 ms
 * apart: the writer switches chains last, then clears the old half). Throws naming the plan
 * and the daemon's latest events when it does not happen within `timeoutMs`.
 */
export async function waitPlan(weirs: WeirNode[], ready: (plan: PlanView, w: WeirNode) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const w of weirs) {
    let last = '';
    for (;;) {
      const plan = readPlan(w.pinDir);
      if (ready(plan, w)) {
        if (plan.text === last) break;
        last = plan.text;
        await sleep(300);
        continue;
      }
      last = '';
      if (Date.now() > deadline) {
        const events = w
          .events()
          .slice(-8)
          .map((e) => JSON.stringify(e))
          .join('\n  ');
        throw new Error(`${w.node.name}: ${what}: not in force within ${timeoutMs} ms; plan ${plan.text}\n  latest events:\n  ${events}`);
      }
      await sleep(100);
    }
  }
}

/** Writes manifest `file` (objects) on every daemon, or removes it (null); then waitPlan. */
export async function applyHostPolicy(
  weirs: WeirNode[],
  file: string,
  objs: object[] | null,
  ready: (plan: PlanView, w: WeirNode) => boolean,
  what: string,
): Promise<void> {
  for (const w of weirs)
    if (objs) w.writeManifest(file, objs);
    else w.removeManifest(file);
  await waitPlan(weirs, ready, what);
}

/** Packets the rules of policy `name` at `rule` (its ingress/egress index) decided, per
 *  weir_host_rule_stats, summed over CPUs and over every chain holding that rule; `kind`
 *  limits it to one chain kind. */
export function rulePackets(pinDir: string, name: string, rule: number, kind?: string): number {
  const plan = readPlan(pinDir);
  const indexes = plan.chains
    .filter((c) => !kind || c.kind === kind)
    .flatMap((c) => c.rules)
    .filter((r) => isPolicy(r.policy, name) && r.rule === rule)
    .map((r) => r.index);
  if (indexes.length === 0) throw new Error(`no rule ${rule} of policy ${name}${kind ? ` in a ${kind} chain` : ''} in ${pinDir}: ${plan.text}`);
  const stats = BpfMap.openPinned(join(pinDir, 'weir_host_rule_stats'));
  try {
    const c = codecFor('weir_host_rule_stats');
    let total = 0n;
    for (const i of indexes) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      for (const b of stats.lookupPerCpu(key) ?? []) total += c.decode(b).packets;
    }
    return Number(total);
  } finally {
    stats.close();
  }
}

/** A client: a namespace and the cgroup its processes run in. */
export interface Client {
  ns: Netns;
  cgroup?: Cgroup;
}

/** `count` new TCP connections from `c` to host:port, 5 at a time, each given `timeoutMs` (a
 *  dropped SYN times out; the first retransmission comes after 1 s): how many were answered. */
export async function connections(c: Client, host: string, port: number, count: number, timeoutMs = 600): Promise<SpreadResult & { ok: number }> {
  const args = [SVC_CLIENT_JS, 'spread', '--host', host, '--port', String(port), '--count', String(count), '--concurrency', String(Math.min(count, 5))];
  args.push('--timeout', String(timeoutMs));
  const r = await c.ns.exec(process.execPath, args, { timeoutMs: 60_000, ...(c.cgroup ? { cgroup: c.cgroup } : {}) });
  const res = JSON.parse(r.stdout) as SpreadResult;
  return { ...res, ok: Object.values(res.servers).reduce((a, b) => a + b, 0) };
}

/** An interface's kernel counters (/sys/class/net/IF/statistics, read inside its namespace). */
export async function linkStats(ns: Netns, ifname: string): Promise<{ rxPackets: number; txPackets: number; txDropped: number; rxDropped: number }> {
  const [link] = await ns.ipJson<Array<{ stats64: { rx: { packets: number; dropped: number }; tx: { packets: number; dropped: number } } }>>(
    '-s',
    'link',
    'show',
    'dev',
    ifname,
  );
  if (!link) throw new Error(`no ${ifname} in ${ns.name}`);
  const s = link.stats64;
  return { rxPackets: s.rx.packets, txPackets: s.tx.packets, txDropped: s.tx.dropped, rxDropped: s.rx.dropped };
}

/** The XDP attachment of an interface as `ip link` shows it: 'native' (xdp), 'generic', or undefined. */
export async function xdpMode(ns: Netns, ifname: string): Promise<string | undefined> {
  const [link] = await ns.ipJson<Array<{ xdp?: { mode: number } }>>('-d', 'link', 'show', 'dev', ifname);
  // iproute2's XDP_ATTACHED_*: 1 native (drv), 2 generic (skb), 3 offload, 4 multi
  return link?.xdp ? ({ 1: 'native', 2: 'generic', 3: 'offload', 4: 'multi' } as Record<number, string>)[link.xdp.mode] : undefined;
}

/** How many CPUs this machine has (the lab's figures are per core). */
export const cpuCount = () =>
  readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('processor')).length;
