// Host endpoint policy written into the maps by hand (the BPF tests of issue 17): a compiled
// plan's pieces — interfaces, chains of flat rules, address sets, failsafes — in the layout
// of include/weir/host_policy.h, and the per-rule stats read back. No model, no daemon.

import { codecFor, enums, typedMap, u32, u8, type BpfObject, type WeirHostRule } from '../../src/bpf/index.js';

export const CHAIN = enums.weir_hep_chain_kind;
export const ACTION = enums.weir_host_rule_action;
export const RULE = enums.weir_host_rule_flags;
export const FAILSAFE = enums.weir_failsafe_direction;
export const TCP = 6;
export const UDP = 17;
export const ICMP = 1;
export const SCTP = 132;

export type Rule = Partial<WeirHostRule>;

export const allow = (r: Rule = {}): Rule => ({ action: ACTION.WEIR_HOST_ALLOW, ...r });
export const deny = (r: Rule = {}): Rule => ({ action: ACTION.WEIR_HOST_DENY, ...r });
/** dports [min, max] of protocol @protocol */
export const dports = (protocol: number, min: number, max = min): Rule => ({
  protocol,
  dport_min: min,
  dport_max: max,
  flags: RULE.WEIR_HOST_RULE_PROTOCOL | RULE.WEIR_HOST_RULE_DPORTS,
});

const full = (r: Rule): WeirHostRule => ({
  action: ACTION.WEIR_HOST_ALLOW,
  protocol: 0,
  flags: 0,
  jump: 0,
  sport_min: 0,
  sport_max: 0,
  dport_min: 0,
  dport_max: 0,
  src_set: 0,
  src_not_set: 0,
  dst_set: 0,
  dst_not_set: 0,
  policy: 0,
  rule: 0,
  ...r,
});

/** The host policy maps of one loaded object (every object pins the same ones). */
export class HostPlan {
  private next: number;
  private readonly ifaces;
  private readonly chains;
  private readonly rules;
  private readonly sets4;
  private readonly sets6;
  private readonly failsafes4;
  private readonly failsafes6;

  /** @firstRule: where the plan's rules start (the writer's other half: 8192) */
  constructor(
    private readonly obj: BpfObject,
    private readonly firstRule = 0,
  ) {
    this.next = firstRule;
    this.ifaces = typedMap(obj.map('weir_hep_ifaces'), codecFor('weir_hep_iface_key'), codecFor('weir_hep_iface'));
    this.chains = typedMap(obj.map('weir_hep_chains'), codecFor('weir_hep_chain_key'), codecFor('weir_hep_chain'));
    this.rules = typedMap(obj.map('weir_host_rules'), u32, codecFor('weir_host_rule'));
    this.sets4 = typedMap(obj.map('weir_host_sets4'), codecFor('weir_host_set4_key'), u8);
    this.sets6 = typedMap(obj.map('weir_host_sets6'), codecFor('weir_host_set6_key'), u8);
    this.failsafes4 = typedMap(obj.map('weir_failsafe4'), codecFor('weir_failsafe4_key'), u8);
    this.failsafes6 = typedMap(obj.map('weir_failsafe6'), codecFor('weir_failsafe6_key'), u8);
  }

  iface(ifindex: number, hep: number, flags = 0): void {
    this.ifaces.set({ ifindex }, { hep, flags });
  }

  /** chain @kind of @hep: @rules at the next free indices; a PASS rule's `jump` is relative
   * to the chain's first rule here (written absolute). Returns the absolute index of each. */
  chain(hep: number, kind: number, rules: Rule[]): number[] {
    const first = this.next;
    rules.forEach((r, i) => {
      const rule = full(r);
      if (rule.action === ACTION.WEIR_HOST_PASS) rule.jump += first;
      this.rules.set(first + i, rule);
    });
    this.next += rules.length;
    this.chains.set({ hep, kind }, { first, count: rules.length });
    return rules.map((_, i) => first + i);
  }

  /** address set @set: the CIDRs */
  set(set: number, ...cidrs: string[]): void {
    for (const cidr of cidrs) {
      const [address, bits] = cidr.split('/') as [string, string];
      if (address.includes(':')) this.sets6.set({ prefixlen: 32 + Number(bits), set, address }, 0);
      else this.sets4.set({ prefixlen: 32 + Number(bits), set, address }, 0);
    }
  }

  failsafe(direction: number, protocol: number, port: number, cidr = '0.0.0.0/0'): void {
    const [address, bits] = cidr.split('/') as [string, string];
    const key = { prefixlen: 32 + Number(bits), direction, protocol, port, address };
    if (address.includes(':')) this.failsafes6.set(key, 0);
    else this.failsafes4.set(key, 0);
  }

  /** packets and bytes rule @index decided, summed over CPUs */
  stats(index: number): { packets: number; bytes: number } {
    const map = this.obj.map('weir_host_rule_stats');
    const key = Buffer.alloc(4);
    key.writeUInt32LE(index);
    let packets = 0n;
    let bytes = 0n;
    for (const cpu of map.lookupPerCpu(key) ?? []) {
      packets += cpu.readBigUInt64LE(0);
      bytes += cpu.readBigUInt64LE(8);
    }
    return { packets: Number(packets), bytes: Number(bytes) };
  }

  /** empties every host policy map (stats zeroed) */
  clear(): void {
    this.ifaces.deleteMany([...this.ifaces.keys()]);
    this.chains.deleteMany([...this.chains.keys()]);
    this.sets4.deleteMany([...this.sets4.keys()]);
    this.sets6.deleteMany([...this.sets6.keys()]);
    this.failsafes4.deleteMany([...this.failsafes4.keys()]);
    this.failsafes6.deleteMany([...this.failsafes6.keys()]);
    const map = this.obj.map('weir_host_rule_stats');
    for (let i = this.firstRule; i < this.next; i++) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      map.update(key, Buffer.alloc(map.lookup(key)!.length));
    }
    this.next = this.firstRule;
  }
}
