// `weir policy` (host endpoints section) and `weir explain` (host traffic) through the real
// bin/weir, against a private bpffs: the service maps of the loaded programs, and the host
// policy maps (include/weir/host_policy.h) filled by hand the way the daemon's writer lays them
// out (an automatic host endpoint with untracked, preDNAT, normal and forward chains, tiers
// with a Pass and end-of-tier denies, a profile, address sets, failsafes, per-CPU rule
// counters, weir_hep_info), and a second endpoint the maps know by id only. Where the loaded
// objects already pin a host policy map (a build with the host programs), it is filled instead.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BpfMap, codecFor, typedMap, u32, u8, type Codec, type TypedMap } from '../../src/bpf/index.js';
import { hepInfoValue, HEP_INFO_LEN } from '../../src/dataplane/host-policy-sync.js';
import type { Explanation } from '../../src/dataplane/explain.js';
import type { HostPolicyView } from '../../src/cli/host-endpoints.js';
import { addService, IPPROTO, loadServiceDataplane, type ServiceDataplane } from '../bpf/service-fixture.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';

const NODE1 = '198.18.0.1';
const NODE1_6 = '2001:2::1';
const ADMIN = '198.18.5.5'; // in 198.18.0.0/16 (set 2: the admin networks)
const OUTSIDER = '198.19.5.5'; // outside set 2
const FLOODER = '198.18.66.5'; // in set 1 (the doNotTrack deny)
const POD = '198.18.1.10';
const VIP = '198.19.0.10';
const LO = 1; // the loopback's ifindex in every netns: `--iface lo` names the automatic endpoint

const MAP = { hash: 1, array: 2, percpuArray: 6, lpm: 11 } as const;
const NO_PREALLOC = 1;

let dp: ServiceDataplane;
const created: BpfMap[] = [];

/** The pinned map `name`: the objects' own where they pin it, else one created and pinned here. */
function pinned(name: string, type: number, keySize: number, valueSize: number, maxEntries: number): BpfMap {
  const path = join(dp.bpffs.path, name);
  if (existsSync(path)) return BpfMap.openPinned(path);
  const m = BpfMap.create({ typeId: type, keySize, valueSize, maxEntries, flags: type === MAP.lpm ? NO_PREALLOC : 0, name: name.slice(0, 15) });
  m.pin(path);
  created.push(m);
  return m;
}

const flagMap = <K>(m: BpfMap, key: Codec<K>): TypedMap<K, number> => typedMap(m, key, m.valueSize === 1 ? u8 : u32);

const weir = (...args: string[]) => {
  const r = runSync(binWeir, [...args, '--pin-dir', dp.bpffs.path], { check: false });
  assert.equal(r.code, 0, `weir ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const weirJson = <T>(...args: string[]): T => JSON.parse(weir(...args, '-o', 'json')) as T;

const r = (o: Partial<Record<string, number>> & { action: number; policy?: number; rule?: number }) => ({
  action: o.action,
  protocol: o.protocol ?? 0,
  flags: o.flags ?? 0,
  jump: o.jump ?? 0,
  sport_min: 0,
  sport_max: 0,
  dport_min: o.dport_min ?? 0,
  dport_max: o.dport_max ?? 0,
  src_set: o.src_set ?? 0,
  src_not_set: o.src_not_set ?? 0,
  dst_set: 0,
  dst_not_set: 0,
  policy: o.policy ?? 0,
  rule: o.rule ?? 0,
});
const [ALLOW, DENY, PASS] = [0, 1, 2];
const F = { protocol: 1, dports: 4, tierEnd: 32, profile: 64 };

before(() => {
  dp = loadServiceDataplane({});
  const ifaces = typedMap(pinned('weir_hep_ifaces', MAP.hash, 4, 8, 256), codecFor('weir_hep_iface_key'), codecFor('weir_hep_iface'));
  const chains = typedMap(pinned('weir_hep_chains', MAP.hash, 8, 8, 1024), codecFor('weir_hep_chain_key'), codecFor('weir_hep_chain'));
  const rules = typedMap(pinned('weir_host_rules', MAP.array, 4, 40, 32768), u32, codecFor('weir_host_rule'));
  const sets4 = flagMap(pinned('weir_host_sets4', MAP.lpm, 12, 1, 65536), codecFor('weir_host_set4_key'));
  const sets6 = flagMap(
    pinned('weir_host_sets6', MAP.lpm, 24, 1, 65536),
    codecFor('weir_host_set6_key') as unknown as Codec<{ prefixlen: number; set: number; address: string }>,
  );
  const failsafe4 = flagMap(pinned('weir_failsafe4', MAP.lpm, 12, 1, 1024), codecFor('weir_failsafe4_key'));
  const names = typedMap(pinned('weir_host_policy_names', MAP.hash, 4, 320, 4096), u32, codecFor('weir_host_policy_name'));
  const stats = pinned('weir_host_rule_stats', MAP.percpuArray, 4, 16, 32768);
  const info = pinned('weir_hep_info', MAP.hash, 4, HEP_INFO_LEN, 1024);

  // hep 1: the automatic endpoint on lo with the XDP prefilter; hep 2: no weir_hep_info entry
  ifaces.set({ ifindex: LO }, { hep: 1, flags: 1 });
  ifaces.set({ ifindex: 999 }, { hep: 2, flags: 0 });
  const infoKey = Buffer.alloc(4);
  infoKey.writeUInt32LE(1);
  info.update(infoKey, hepInfoValue({ name: 'node-1-auto-hep', auto: true, interfaces: '*', expectedIPs: [NODE1, NODE1_6], labels: { role: 'node' } }));
  const name = (slot: number, n: string) => {
    const b = Buffer.alloc(320);
    b.write(n);
    names.set(slot, { name: b as never });
  };
  name(1, 'default/deny-flood');
  name(2, 'default/allow-admin-8080');
  name(3, 'security/pass-tcp');
  name(4, 'default/nodeport-guard');
  name(5, 'default/no-forward-dns');
  sets4.set({ prefixlen: 32 + 24, set: 1, address: '198.18.66.0' }, 1);
  sets4.set({ prefixlen: 32 + 16, set: 2, address: '198.18.0.0' }, 1);
  sets6.set({ prefixlen: 32 + 48, set: 2, address: '2001:2::' }, 1);
  failsafe4.set({ prefixlen: 32, direction: 0, protocol: 6, port: 22, address: '0.0.0.0' }, 1);
  failsafe4.set({ prefixlen: 32 + 24, direction: 0, protocol: 6, port: 6443, address: '198.18.99.0' }, 1);
  // untrackedIn [0, 1): deny from set 1
  rules.set(0, r({ action: DENY, src_set: 1, policy: 1, rule: 0 }));
  // preDnatIn [1, 2): deny tcp 30000-32767 from outside set 2
  rules.set(1, r({ action: DENY, protocol: 6, flags: F.protocol | F.dports, dport_min: 30000, dport_max: 32767, src_not_set: 2, policy: 4, rule: 0 }));
  // normalIn [2, 7): tier security (a Pass to the next tier, its end-of-tier deny), tier default (allow, end-of-tier deny), profile
  rules.set(2, r({ action: PASS, protocol: 6, flags: F.protocol, jump: 4, policy: 3, rule: 0 }));
  rules.set(3, r({ action: DENY, flags: F.tierEnd }));
  rules.set(4, r({ action: ALLOW, protocol: 6, flags: F.protocol | F.dports, dport_min: 8080, dport_max: 8080, src_set: 2, policy: 2, rule: 0 }));
  rules.set(5, r({ action: DENY, flags: F.tierEnd }));
  rules.set(6, r({ action: ALLOW, flags: F.profile }));
  // forwardIn [7, 9): deny udp 53, allow the rest
  rules.set(7, r({ action: DENY, protocol: 17, flags: F.protocol | F.dports, dport_min: 53, dport_max: 53, policy: 5, rule: 0 }));
  rules.set(8, r({ action: ALLOW, policy: 5, rule: 1 }));
  chains.set({ hep: 1, kind: 0 }, { first: 0, count: 1 });
  chains.set({ hep: 1, kind: 2 }, { first: 1, count: 1 });
  chains.set({ hep: 1, kind: 3 }, { first: 2, count: 5 });
  chains.set({ hep: 1, kind: 5 }, { first: 7, count: 2 });
  // rule 0 counted on two CPUs (as the programs would): 5 + 2 packets, 300 + 120 bytes (one CPU: all on it)
  const cpus = BpfMap.possibleCpus();
  const counted =
    cpus >= 2
      ? [
          [5n, 300n],
          [2n, 120n],
        ]
      : [[7n, 420n]];
  const perCpu = Array.from({ length: cpus }, (_, i) => {
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(counted[i]?.[0] ?? 0n, 0);
    b.writeBigUInt64LE(counted[i]?.[1] ?? 0n, 8);
    return b;
  });
  stats.updatePerCpu(Buffer.alloc(4), perCpu);
  // a Service to a pod: its new flow is judged by the forward chain on the backend
  addService(dp, { id: 1, address: VIP, port: 53, protocol: IPPROTO.udp, backends: [{ address: POD, port: 5353 }] });
});
after(async () => {
  for (const m of created) m.close();
  await dp?.close();
});

test('weir policy -o json: host endpoints, their chains in order, the compiled rules with names and counters, failsafes', () => {
  const v = weirJson<HostPolicyView>('policy');
  assert.equal(v.hostEndpoints.length, 2);
  const [auto, byId] = v.hostEndpoints;
  assert.deepEqual(
    { ...auto!, chains: undefined },
    {
      id: 1,
      name: 'node-1-auto-hep',
      auto: true,
      interfaceName: '*',
      interfaces: [{ ifindex: 1, name: 'lo', xdp: true }],
      expectedIPs: [NODE1, NODE1_6],
      labels: { role: 'node' },
      chains: undefined,
    },
  );
  assert.deepEqual(
    auto!.chains.map((c) => [c.chain, c.first, c.count, c.policies]),
    [
      ['untrackedIn', 0, 1, ['default/deny-flood']],
      ['preDnatIn', 1, 1, ['default/nodeport-guard']],
      ['normalIn', 2, 5, ['security/pass-tcp', 'default/allow-admin-8080']],
      ['forwardIn', 7, 2, ['default/no-forward-dns']],
    ],
  );
  const normal = auto!.chains[2]!.rules;
  assert.deepEqual(normal, [
    { index: 2, action: 'pass', protocol: 'tcp', jump: 4, policy: 'security/pass-tcp', rule: 'ingress[0]', packets: 0, bytes: 0 },
    { index: 3, action: 'deny', protocol: 'any', compiled: 'tierEnd', packets: 0, bytes: 0 },
    {
      index: 4,
      action: 'allow',
      protocol: 'tcp',
      dports: '8080',
      src: { set: 2, size: 2 },
      policy: 'default/allow-admin-8080',
      rule: 'ingress[0]',
      packets: 0,
      bytes: 0,
    },
    { index: 5, action: 'deny', protocol: 'any', compiled: 'tierEnd', packets: 0, bytes: 0 },
    { index: 6, action: 'allow', protocol: 'any', compiled: 'profile', packets: 0, bytes: 0 },
  ]);
  // per-rule counters summed over CPUs
  assert.deepEqual(auto!.chains[0]!.rules[0], {
    index: 0,
    action: 'deny',
    protocol: 'any',
    src: { set: 1, size: 1 },
    policy: 'default/deny-flood',
    rule: 'ingress[0]',
    packets: 7,
    bytes: 420,
  });
  assert.deepEqual(auto!.chains[1]!.rules[0]!.srcNot, { set: 2, size: 2 });
  // each set the rules name once, with its CIDRs
  assert.deepEqual(v.sets, [
    { set: 1, cidrs: ['198.18.66.0/24'] },
    { set: 2, cidrs: ['198.18.0.0/16', '2001:2::/48'] },
  ]);
  // an endpoint without weir_hep_info: named by id, its interfaces by ifindex
  assert.deepEqual(byId, {
    id: 2,
    name: 'hep:2',
    auto: false,
    interfaceName: ['if999'],
    interfaces: [{ ifindex: 999, xdp: false }],
    expectedIPs: [],
    labels: {},
    chains: [],
  });
  assert.deepEqual(v.failsafes, [
    { direction: 'in', protocol: 'tcp', port: 22 },
    { direction: 'in', protocol: 'tcp', port: 6443, net: '198.18.99.0/24' },
  ]);
  const text = weir('policy');
  console.log(text);
  assert.match(text, /^node-1-auto-hep\s+1\s+auto\s+\*\s+lo\(xdp\)\s+role=node$/m);
  assert.match(text, /^ {2}normalIn: ingress to the host; policies: security\/pass-tcp, default\/allow-admin-8080$/m);
  assert.match(text, /^ {4}4\s+allow\s+tcp dport 8080 src in \{198\.18\.0\.0\/16,2001:2::\/48\}\s+default\/allow-admin-8080/m);
  assert.match(text, /^ {4}0\s+deny\s+src in \{198\.18\.66\.0\/24\}\s+default\/deny-flood\s+ingress\[0\]\s+7\s+420$/m);
  assert.match(text, /^ {4}5\s+deny \(end of tier\)\s+any\s+-\s+-\s+0\s+0$/m);
  assert.match(text, /failsafe ports.*in tcp:22, in tcp:198\.18\.99\.0\/24:6443/);
});

type Explained = Explanation & { query: unknown };
const explain = (src: string, dst: string, portProto: string, ...more: string[]) =>
  weirJson<Explained>('explain', src, dst, portProto, '--from', 'external', '--iface', 'lo', ...more);
const steps = (e: Explained) => e.host![0]!.steps.map((s) => [s.stage, s.result, s.rule?.index]);

test('weir explain: a doNotTrack deny drops in XDP, before conntrack and NAT', () => {
  const e = explain(FLOODER, NODE1, '8080/tcp');
  assert.equal(e.verdict, 'drop');
  assert.equal(e.reason, 'host_untracked_denied');
  assert.equal(e.host![0]!.droppedIn, 'xdp');
  assert.deepEqual(steps(e), [
    ['failsafe', 'nomatch', undefined],
    ['untracked', 'deny', 0],
  ]);
  const text = weir('explain', FLOODER, NODE1, '8080/tcp', '--from', 'external', '--iface', 'lo');
  console.log(text);
  assert.match(text, /^ {2}untracked rule #0 default\/deny-flood ingress\[0\]: deny, dropped in XDP$/m);
  assert.match(text, /^ {2}host policy: drop in XDP \(host_untracked_denied\)$/m);
  assert.match(text, /^verdict {3}drop \(xdp drop, counted as host_untracked_denied\)$/m);
});

test('weir explain: a failsafe port skips host policy, even from a denied source', () => {
  const e = explain(FLOODER, NODE1, '22/tcp');
  assert.equal(e.verdict, 'pass');
  assert.equal(e.host![0]!.reason, 'host_failsafe');
  assert.deepEqual(steps(e), [['failsafe', 'allow', undefined]]);
  // the CIDR of a failsafe entry limits it
  assert.equal(explain(OUTSIDER, NODE1, '6443/tcp').host![0]!.reason, 'host_policy_denied');
  assert.equal(explain('198.18.99.7', NODE1, '6443/tcp').host![0]!.reason, 'host_failsafe');
});

test('weir explain: normal ingress walks the tiers (Pass, allow, end-of-tier deny)', () => {
  const ok = explain(ADMIN, NODE1, '8080/tcp');
  assert.equal(ok.verdict, 'pass');
  assert.equal(ok.host![0]!.reason, 'host_policy_allowed');
  assert.deepEqual(
    ok.host![0]!.steps.at(-1)!.passed?.map((p) => p.index),
    [2],
  );
  assert.deepEqual(steps(ok).at(-1), ['normal', 'allow', 4]);
  const no = explain(OUTSIDER, NODE1, '8080/tcp');
  assert.equal(no.verdict, 'drop');
  assert.equal(no.reason, 'host_policy_denied');
  assert.deepEqual(steps(no).at(-1), ['normal', 'deny', 5]);
  assert.equal(no.host![0]!.steps.at(-1)!.rule!.compiled, 'tierEnd');
  // no Pass in the way (UDP): the security tier's own end-of-tier deny
  assert.deepEqual(steps(explain(ADMIN, NODE1, '8080/udp')).at(-1), ['normal', 'deny', 3]);
});

test('weir explain: IPv6 meets the same chains; its set entries are looked up in weir_host_sets6', () => {
  const ok = explain('2001:2::5', NODE1_6, '8080/tcp');
  assert.equal(ok.host![0]!.reason, 'host_policy_allowed');
  assert.deepEqual(steps(ok).at(-1), ['normal', 'allow', 4]);
  const no = explain('2001:2:1::5', NODE1_6, '8080/tcp');
  assert.equal(no.reason, 'host_policy_denied');
  assert.deepEqual(steps(no).at(-1), ['normal', 'deny', 5]);
});

test('weir_hep_info: labels that do not fit are left out, and the text says so', () => {
  const labels = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`example.com/label-${i}`, 'x'.repeat(20)]));
  const v = hepInfoValue({ name: 'big', auto: false, interfaces: ['eth0'], expectedIPs: [], labels });
  assert.equal(v.length, HEP_INFO_LEN);
  const text = v.subarray(0, v.indexOf(0)).toString();
  assert.deepEqual(JSON.parse(text), { name: 'big', auto: false, interfaces: ['eth0'], expectedIPs: [], labels: {}, labelsTruncated: true });
});

test('weir explain: preDNAT denies before NAT; a mid-stream TCP segment is not judged', () => {
  const e = explain(OUTSIDER, NODE1, '30080/tcp');
  assert.equal(e.verdict, 'drop');
  assert.equal(e.reason, 'host_prednat_denied');
  assert.deepEqual(steps(e).at(-1), ['preDnat', 'deny', 1]);
  const ack = explain(OUTSIDER, NODE1, '8080/tcp', '--tcp-flags', 'ack');
  assert.equal(ack.verdict, 'pass');
  assert.deepEqual(steps(ack).at(-1), ['conntrack', 'skipped', undefined]);
});

test('weir explain: forwarded traffic meets the forward chain, after service NAT on the backend', () => {
  const direct = explain(ADMIN, POD, '53/udp');
  assert.equal(direct.reason, 'host_forward_denied');
  assert.deepEqual(steps(direct).at(-1), ['forward', 'deny', 7]);
  assert.equal(explain(ADMIN, POD, '80/tcp').verdict, 'pass');
  // the Service's port 53 becomes the pod's 5353: the forward chain judges the backend's, and allows it
  const svc = explain(ADMIN, VIP, '53/udp');
  assert.equal(svc.verdict, 'dnat');
  const last = svc.host![0]!.steps.at(-1)!;
  assert.deepEqual([last.stage, last.result, last.rule?.index, last.dst], ['forward', 'allow', 8, POD]);
});

test('weir explain: without --iface every host endpoint is walked; an unknown interface is refused', () => {
  const e = weirJson<Explained>('explain', ADMIN, NODE1, '8080/tcp', '--from', 'external');
  assert.deepEqual(
    e.host!.map((h) => h.endpoint.name),
    ['node-1-auto-hep', 'hep:2'],
  );
  const r = runSync(binWeir, ['explain', ADMIN, NODE1, '8080/tcp', '--from', 'external', '--iface', 'nosuch0', '--pin-dir', dp.bpffs.path], { check: false });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--iface nosuch0: no such interface here/);
});
