// The dataplane of the BPF policy differential (policy-differential.test.ts): from_pod and
// from_host loaded with policy_enabled and ct_track_all into a private bpffs (their maps shared
// by pin name, as in production), from_pod6 and from_host6 chained after them as on a TCX hook
// (an IPv4 program hands an IPv6 packet on), the policy maps typed as the daemon writes them, frontends of either family for
// Service cases, the first packet of a flow and its reply, and a dump of the map entries behind a
// case for a failure message.

import { join } from 'node:path';
import { BpfObject, codecFor, enums, typedMap, type BpfProgram, type TypedMap } from '../../src/bpf/index.js';
import type { WeirBackend4, WeirBackend4Key, WeirCt4, WeirCt4Key, WeirFrontend4, WeirFrontend4Key, WeirNode4, WeirNode4Key } from '../../src/bpf/index.js';
import type { WeirBackend6, WeirBackend6Key, WeirCt6, WeirCt6Key, WeirFrontend6, WeirFrontend6Key } from '../../src/bpf/index.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { policyMaps } from '../../src/dataplane/loader.js';
import {
  addressMaps,
  FAMILIES,
  familyOf,
  fromCString,
  hostPrefix,
  POLICY_EGRESS,
  POLICY_FIXED_BITS,
  POLICY_INGRESS,
  type PolicyMaps,
} from '../../src/dataplane/policy-maps.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { eth } from '../lib/packet.js';

const OBJ_DIR = join(process.cwd(), 'build', 'bpf');
export const TC_ACT_SHOT = 2;
/** WEIR_TC_NEXT (TCX_NEXT): the next program of the hook's chain sees the packet */
const TC_NEXT = -1;
/** the tunnel's UDP port (the tunnel_port knob's default) and weir's VXLAN network id (include/weir/tunnel.h) */
const TUNNEL_PORT = 4789;
const TUNNEL_VNI = 0x574549;
export type Hook = 'from_pod' | 'from_host';
export type ProtocolName = 'TCP' | 'UDP' | 'SCTP' | 'ICMP';
export const PROTO_NUMBER: Readonly<Record<ProtocolName, number>> = { TCP: 6, UDP: 17, SCTP: 132, ICMP: 1 };

/** A ClusterIP or NodePort frontend with one backend, as the reconciler writes it. */
export interface Frontend {
  id: number;
  address: string;
  port: number;
  protocol: ProtocolName;
  nodePort: boolean;
  backend: { address: string; port: number };
}

export class PolicyDataplane {
  readonly objects: BpfObject[] = [];
  readonly programs: Record<Hook, BpfProgram>;
  /** from_pod6, from_host6: second in each hook's chain */
  readonly programs6: Record<Hook, BpfProgram>;
  readonly maps: PolicyMaps;
  readonly ct: TypedMap<WeirCt4Key, WeirCt4>;
  readonly frontends: TypedMap<WeirFrontend4Key, WeirFrontend4>;
  readonly backends: TypedMap<WeirBackend4Key, WeirBackend4>;
  readonly ct6: TypedMap<WeirCt6Key, WeirCt6>;
  readonly frontends6: TypedMap<WeirFrontend6Key, WeirFrontend6>;
  readonly backends6: TypedMap<WeirBackend6Key, WeirBackend6>;
  /** the other nodes (WEIR_NODE_PEER): whose tunnel packets from_host accepts */
  readonly nodes: TypedMap<WeirNode4Key, WeirNode4>;
  readonly bpffs: PrivateBpffs;

  constructor() {
    this.bpffs = mountPrivateBpffs('policy-diff');
    const load = (n: string) => {
      const o = BpfObject.load(join(OBJ_DIR, `${n}.o`), { pinDir: this.bpffs.path, consts: { policy_enabled: 1, ct_track_all: 1 } });
      this.objects.push(o);
      return o;
    };
    try {
      const pod = load('from_pod');
      this.programs = { from_pod: pod.program('weir_from_pod'), from_host: load('from_host').program('weir_from_host') };
      const pod6 = load('from_pod6');
      this.programs6 = { from_pod: pod6.program('weir_from_pod6'), from_host: load('from_host6').program('weir_from_host6') };
      const m = (name: string) => pod.map(name);
      this.maps = policyMaps(m);
      this.ct = typedMap(m('weir_ct4_v2'), codecFor('weir_ct4_key'), codecFor('weir_ct4'));
      this.frontends = typedMap(m('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
      this.backends = typedMap(m('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4'));
      this.nodes = typedMap(m('weir_nodes4'), codecFor('weir_node4_key'), codecFor('weir_node4'));
      const m6 = (name: string) => pod6.map(name);
      this.ct6 = typedMap(m6('weir_ct6'), codecFor('weir_ct6_key'), codecFor('weir_ct6'));
      this.frontends6 = typedMap(m6('weir_frontend6'), codecFor('weir_frontend6_key'), codecFor('weir_frontend6'));
      this.backends6 = typedMap(m6('weir_backend6'), codecFor('weir_backend6_key'), codecFor('weir_backend6'));
    } catch (e) {
      for (const o of this.objects) o.close();
      void this.bpffs.cleanup();
      throw e;
    }
  }

  /** The TC verdict of `data` at `hook`: its IPv4 program, then (TCX_NEXT) its IPv6 one, as the hook's chain runs them. */
  run(hook: Hook, data: Buffer): number {
    const r = this.programs[hook].testRun({ data }).retval;
    // retval is the program's return value as an unsigned 32-bit number
    return (r | 0) === TC_NEXT ? this.programs6[hook].testRun({ data }).retval : r;
  }

  counters(): Record<string, Record<string, number>> {
    return counterTotals(readCounters(this.objects[0]!.map('weir_counters')));
  }

  /** Conntrack, frontends and counters emptied; then `frontends` written (backend slot first, as the reconciler does). */
  resetFlows(frontends: readonly Frontend[]): void {
    this.ct.deleteMany([...this.ct.keys()]);
    this.frontends.deleteMany([...this.frontends.keys()]);
    this.backends.deleteMany([...this.backends.keys()]);
    this.ct6.deleteMany([...this.ct6.keys()]);
    this.frontends6.deleteMany([...this.frontends6.keys()]);
    this.backends6.deleteMany([...this.backends6.keys()]);
    resetCounters(this.objects[0]!.map('weir_counters'));
    for (const f of frontends) {
      const flags = f.nodePort ? enums.weir_frontend_flags.WEIR_FRONTEND_NODEPORT : 0;
      if (familyOf(f.address) === 6) {
        this.backends6.set({ frontend_id: f.id, slot: 0 }, { address: f.backend.address, port: f.backend.port, flags: 0 });
        this.frontends6.set(
          { address: f.address, port: f.port, protocol: PROTO_NUMBER[f.protocol], scope: 0 },
          { id: f.id, backend_count: 1, flags, affinity_timeout: 0 },
        );
        continue;
      }
      this.backends.set({ frontend_id: f.id, slot: 0 }, { address: f.backend.address, port: f.backend.port, flags: 0 });
      this.frontends.set(
        { address: f.address, port: f.port, protocol: PROTO_NUMBER[f.protocol], scope: 0 },
        { id: f.id, backend_count: 1, flags: f.nodePort ? enums.weir_frontend_flags.WEIR_FRONTEND_NODEPORT : 0, affinity_timeout: 0 },
      );
    }
  }

  /** weir_policy_stats of `slots` summed over CPUs: the flows denied by default while the slot's policy isolated the pod. */
  policyDenials(slots: Iterable<number>): Map<number, { ingress: bigint; egress: bigint }> {
    const out = new Map<number, { ingress: bigint; egress: bigint }>();
    const key = Buffer.alloc(4);
    for (const slot of slots) {
      key.writeUInt32LE(slot);
      let ingress = 0n;
      let egress = 0n;
      // struct weir_policy_stats: ingress_allowed, ingress_denied, egress_allowed, egress_denied
      for (const cpu of this.maps.stats!.lookupPerCpu(key) ?? []) {
        ingress += cpu.readBigUInt64LE(8);
        egress += cpu.readBigUInt64LE(24);
      }
      out.set(slot, { ingress, egress });
    }
    return out;
  }

  /** Every policy map emptied (LPM tries have no batch delete): for a rewrite from scratch. */
  clearPolicy(): void {
    const m = this.maps;
    const address = FAMILIES.flatMap((f) => {
      const a = addressMaps(m, f)!;
      return [a.ipcache, a.endpoints, a.ipcacheHosts!];
    });
    const all = [m.policy, m.names, m.identities, m.selects!, ...address] as TypedMap<unknown, unknown>[];
    for (const map of all) for (const k of [...map.keys()]) map.delete(k);
  }

  /** The map entries a decision src -> dst reads, readable. */
  entriesFor(src: string, dst: string): Record<string, unknown> {
    const ep = (a: string) => addressMaps(this.maps, familyOf(a))!.endpoints.get({ address: a }) ?? null;
    const keysOf = (e: ReturnType<typeof ep>, direction: number) =>
      e === null
        ? []
        : [...this.maps.policy.entries()]
            .filter(([k]) => k.identity === e.identity && k.direction === direction)
            .map(([k, v]) =>
              k.prefixlen === POLICY_FIXED_BITS
                ? `peer ${k.peer} any protocol -> policy ${v.policy} rule ${v.rule}`
                : `peer ${k.peer} proto ${k.protocol} port ${k.port}/${k.prefixlen - POLICY_FIXED_BITS - 8} -> policy ${v.policy} rule ${v.rule}`,
            );
    return {
      ipcache: Object.fromEntries(
        [src, dst].map((a) => [a, addressMaps(this.maps, familyOf(a))!.ipcache.get({ prefixlen: hostPrefix(familyOf(a)), address: a }) ?? null]),
      ),
      endpoints: Object.fromEntries([src, dst].map((a) => [a, ep(a)])),
      srcEgressKeys: keysOf(ep(src), POLICY_EGRESS),
      dstIngressKeys: keysOf(ep(dst), POLICY_INGRESS),
      policyNames: Object.fromEntries([...this.maps.names.entries()].map(([k, v]) => [k, fromCString(v.name)])),
    };
  }

  async close(): Promise<void> {
    for (const o of this.objects) o.close();
    await this.bpffs.cleanup();
  }
}

/**
 * The first packet of a flow of either family (a TCP SYN, a UDP datagram, an SCTP INIT, an ICMP(v6) echo request with
 * `sport` as its id), or with `reply` the answer to it (SYN-ACK, datagram, INIT ACK, echo reply).
 */
export function flowPacket(
  proto: ProtocolName,
  src: string,
  dst: string,
  sport: number,
  dport: number,
  o: { reply?: boolean; macs?: { src: string; dst: string } } = {},
): Buffer {
  const reply = o.reply === true;
  const v6 = src.includes(':');
  const ip = v6
    ? eth(o.macs ?? {}).ipv6({ src, dst, ...(proto === 'SCTP' ? { nextHeader: PROTO_NUMBER.SCTP } : {}) })
    : eth(o.macs ?? {}).ipv4({ src, dst, ...(proto === 'SCTP' ? { protocol: PROTO_NUMBER.SCTP } : {}) });
  switch (proto) {
    case 'TCP':
      return ip.tcp({ sport, dport, flags: reply ? ['syn', 'ack'] : ['syn'] }).build();
    case 'UDP':
      return ip.udp({ sport, dport }).payload('q').build();
    case 'ICMP':
      if (v6) return ip.icmpv6({ type: reply ? 'echo-reply' : 'echo-request', id: reply ? dport : sport, seq: 1 }).build();
      return ip.icmp({ type: reply ? 'echo-reply' : 'echo-request', id: reply ? dport : sport, seq: 1 }).build();
    case 'SCTP': {
      // common header (ports, verification tag, checksum: never checked here) + an INIT or INIT ACK chunk
      const b = Buffer.alloc(32);
      b.writeUInt16BE(sport, 0);
      b.writeUInt16BE(dport, 2);
      b.writeUInt32BE(reply ? 0x01020304 : 0, 4);
      b.writeUInt8(reply ? 2 : 1, 12);
      b.writeUInt16BE(20, 14);
      b.writeUInt32BE(reply ? 0x05060708 : 0x01020304, 16); // initiate tag
      b.writeUInt32BE(65536, 20); // a_rwnd
      b.writeUInt16BE(1, 24);
      b.writeUInt16BE(1, 26);
      b.writeUInt32BE(1, 28); // initial TSN
      return ip.payload(b).build();
    }
  }
}

/**
 * `inner` (a whole frame) as another node sends it through the tunnel in tunnel mode (the flow
 * already translated there): outer IPv4 from `peer` to `self`, UDP to the tunnel port, VXLAN with weir's VNI.
 */
export function tunnelled(peer: string, self: string, inner: Buffer, sport: number): Buffer {
  const vxlan = Buffer.alloc(8);
  vxlan.writeUInt32BE(0x08000000, 0); // the I flag: the VNI is valid
  vxlan.writeUInt32BE(TUNNEL_VNI << 8, 4);
  return eth({})
    .ipv4({ src: peer, dst: self })
    .udp({ sport, dport: TUNNEL_PORT })
    .payload(Buffer.concat([vxlan, inner]))
    .build();
}

/**
 * The inner Ethernet addresses of a DSR tunnel packet (tunnel.h): the destination marks the mode
 * (02:57:45:49:00:01), the source carries the backend the ingress node chose (address, port).
 */
export function dsrMacs(backend: string, port: number): { src: string; dst: string } {
  const bytes = [...backend.split('.').map(Number), port >> 8, port & 0xff];
  return { src: bytes.map((b) => b.toString(16).padStart(2, '0')).join(':'), dst: '02:57:45:49:00:01' };
}
