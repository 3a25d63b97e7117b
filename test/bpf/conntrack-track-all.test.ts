// Conntrack of every flow (the ct_track_all .rodata knob) through BPF_PROG_TEST_RUN: with the
// knob set, a flow to no frontend gets an entry pair that rewrites nothing, its later packets
// and its replies hit it and pass byte for byte, and userspace (GC, `weir nat list`) reads the
// pair sanely; with the knob at 0 (the default) nothing is created. Exact counter totals.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { BpfObject, codecFor, enums, typedMap, type BpfProgram, type TypedMap, type WeirCt4, type WeirCt4Key } from '../../src/bpf/index.js';
import { natRowsOf } from '../../src/cli/nat.js';
import { ctKeyString, planConntrackGc } from '../../src/dataplane/conntrack-gc.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { eth, ipv4 } from '../lib/packet.js';

const OBJ_DIR = join(process.cwd(), 'build', 'bpf');
const POD_A = '198.18.3.10';
const POD_B = '198.18.3.20';
const EXTERNAL = '198.18.100.7';
const FRONTEND = '198.19.0.30';
const TCP = 6;
const UDP = 17;
const ICMP = 1;
const SCTP = 132;
const TC_PASS = 0;
const CT = enums.weir_ct_flags;

/** from_pod and from_host loaded into one private bpffs with ct_track_all set to `trackAll`. */
class Dataplane {
  readonly objects: BpfObject[] = [];
  readonly fromPod: BpfProgram;
  readonly fromHost: BpfProgram;
  readonly ct: TypedMap<WeirCt4Key, WeirCt4>;

  private constructor(
    readonly bpffs: PrivateBpffs,
    trackAll: number,
  ) {
    const load = (n: string) => {
      const obj = BpfObject.load(join(OBJ_DIR, `${n}.o`), { pinDir: bpffs.path, consts: { ct_track_all: trackAll } });
      this.objects.push(obj);
      return obj;
    };
    const pod = load('from_pod');
    this.fromPod = pod.program('weir_from_pod');
    this.fromHost = load('from_host').program('weir_from_host');
    this.ct = typedMap(pod.map('weir_ct4_v2'), codecFor('weir_ct4_key'), codecFor('weir_ct4'));
  }

  static open(trackAll: number): Dataplane {
    return new Dataplane(mountPrivateBpffs(`track-all-${trackAll}`), trackAll);
  }

  get counters() {
    return counterTotals(readCounters(this.objects[0]!.map('weir_counters')));
  }

  reset(): void {
    this.ct.deleteMany([...this.ct.keys()]);
    const frontends = typedMap(this.objects[0]!.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
    frontends.deleteMany([...frontends.keys()]);
    resetCounters(this.objects[0]!.map('weir_counters'));
  }

  /** a ClusterIP FRONTEND:80/TCP whose one backend is POD_B:8080 */
  addService(): void {
    const obj = this.objects[0]!;
    typedMap(obj.map('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4')).set(
      { frontend_id: 9, slot: 0 },
      { address: POD_B, port: 8080, flags: 0 },
    );
    typedMap(obj.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4')).set(
      { address: FRONTEND, port: 80, protocol: TCP, scope: 0 },
      { id: 9, backend_count: 1, flags: 0, affinity_timeout: 0 },
    );
  }

  /** runs `data` through `prog`; asserts it passes unchanged, byte for byte */
  passesUntouched(prog: BpfProgram, data: Buffer): void {
    const r = prog.testRun({ data });
    assert.equal(r.retval, TC_PASS);
    assert.deepEqual(r.data, data, 'the packet leaves as it came');
  }

  async close(): Promise<void> {
    for (const o of this.objects) o.close();
    await this.bpffs.cleanup();
  }
}

const frame = (src: string, dst: string) => eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src, dst });
const udp = (src: string, dst: string, sport: number, dport: number) => frame(src, dst).udp({ sport, dport }).payload('q').build();
const tcp = (src: string, dst: string, sport: number, dport: number, flags: ('syn' | 'ack' | 'fin' | 'rst')[]) =>
  frame(src, dst).tcp({ sport, dport, flags }).payload('x').build();
/** an SCTP common header (ports, tag, checksum unchecked) and a 4-byte chunk of @chunkType (1: INIT) */
const sctp = (src: string, dst: string, sport: number, dport: number, chunkType: number) => {
  const b = Buffer.alloc(16);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt8(chunkType, 12);
  b.writeUInt16BE(4, 14);
  return eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src, dst, protocol: SCTP }).payload(b).build();
};
const key = (saddr: string, daddr: string, sport: number, dport: number, protocol: number): WeirCt4Key => ({ saddr, daddr, sport, dport, protocol });

describe('ct_track_all = 1', () => {
  let dp: Dataplane;
  before(() => {
    dp = Dataplane.open(1);
  });
  after(async () => {
    await dp?.close();
  });
  beforeEach(() => dp.reset());

  test('a UDP flow between pods gets a pair without rewrite; its reply and later packets hit it and pass untouched', () => {
    dp.passesUntouched(dp.fromPod, udp(POD_A, POD_B, 5000, 53));
    const fwd = dp.ct.get(key(POD_A, POD_B, 5000, 53, UDP));
    const rev = dp.ct.get(key(POD_B, POD_A, 53, 5000, UDP));
    assert.ok(fwd && rev, 'both entries');
    assert.equal(fwd.flags, 0, 'forward: tracked, not rewritten');
    assert.equal(rev.flags, CT.WEIR_CT_REPLY, 'reverse: the reply direction, not rewritten');
    // the entry's "rewrite" is the tuple itself: GC and ct4_forget find the partner as for NAT
    assert.deepEqual([fwd.nat_saddr, fwd.nat_sport, fwd.nat_daddr, fwd.nat_dport], [POD_A, 5000, POD_B, 53]);
    assert.deepEqual([fwd.frontend_id, fwd.policy, fwd.tunnel_node, fwd.ifindex, fwd.packets], [0, 0, '0.0.0.0', 0, 1n]);

    dp.passesUntouched(dp.fromPod, udp(POD_B, POD_A, 53, 5000)); // the reply, at the other pod's interface
    dp.passesUntouched(dp.fromPod, udp(POD_A, POD_B, 5000, 53));
    dp.passesUntouched(dp.fromPod, udp(POD_B, POD_A, 53, 5000));
    assert.equal(dp.ct.get(key(POD_A, POD_B, 5000, 53, UDP))!.packets, 2n);
    assert.equal(dp.ct.get(key(POD_B, POD_A, 53, 5000, UDP))!.packets, 2n);
    assert.equal(dp.ct.get(key(POD_B, POD_A, 53, 5000, UDP))!.flags, CT.WEIR_CT_REPLY | CT.WEIR_CT_SEEN);
    assert.equal([...dp.ct.keys()].length, 2);
    assert.deepEqual(dp.counters, { from_pod: { ct_tracked_new: 1, ct_tracked: 3 } });
  });

  test('TCP: a SYN starts a tracked flow, a mid-stream segment without an entry does not, a SYN on a closed flow reopens it', () => {
    dp.passesUntouched(dp.fromPod, tcp(POD_A, POD_B, 41000, 8080, ['ack'])); // no entry, not a SYN: untracked
    assert.equal([...dp.ct.keys()].length, 0);
    dp.passesUntouched(dp.fromPod, tcp(POD_A, POD_B, 41000, 8080, ['syn']));
    dp.passesUntouched(dp.fromPod, tcp(POD_B, POD_A, 8080, 41000, ['syn', 'ack']));
    dp.passesUntouched(dp.fromPod, tcp(POD_A, POD_B, 41000, 8080, ['ack']));
    dp.passesUntouched(dp.fromPod, tcp(POD_A, POD_B, 41000, 8080, ['rst']));
    const before = dp.ct.get(key(POD_A, POD_B, 41000, 8080, TCP))!;
    assert.equal(before.tcp_flags_seen, 0x02 | 0x10 | 0x04);
    dp.passesUntouched(dp.fromPod, tcp(POD_A, POD_B, 41000, 8080, ['syn'])); // a new connection on the old ports
    const reopened = dp.ct.get(key(POD_A, POD_B, 41000, 8080, TCP))!;
    assert.deepEqual([reopened.tcp_flags_seen, reopened.packets], [0x02, 1n], 'a fresh pair');
    assert.equal([...dp.ct.keys()].length, 2);
    assert.deepEqual(dp.counters, { from_pod: { pass: 1, ct_tracked_new: 2, ct_tracked: 3 } });
  });

  test('SCTP: a packet to no frontend starts a tracked flow like UDP (the policy stage must see it), its reply hits it', () => {
    dp.passesUntouched(dp.fromPod, sctp(POD_A, POD_B, 7000, 3868, 1));
    dp.passesUntouched(dp.fromPod, sctp(POD_B, POD_A, 3868, 7000, 2)); // INIT ACK
    assert.deepEqual([dp.ct.get(key(POD_A, POD_B, 7000, 3868, SCTP))?.flags, dp.ct.get(key(POD_B, POD_A, 3868, 7000, SCTP))?.packets], [0, 1n]);
    assert.deepEqual(dp.counters, { from_pod: { ct_tracked_new: 1, ct_tracked: 1 } });
  });

  test('ICMP: an echo request starts a tracked flow, the echo reply hits it; an error about it passes untranslated', () => {
    const echo = frame(POD_A, POD_B).icmp({ type: 'echo-request', id: 77, seq: 1 }).build();
    const reply = frame(POD_B, POD_A).icmp({ type: 'echo-reply', id: 77, seq: 1 }).build();
    dp.passesUntouched(dp.fromPod, reply); // a reply without a request: untracked
    dp.passesUntouched(dp.fromPod, echo);
    dp.passesUntouched(dp.fromPod, reply);
    assert.equal(dp.ct.get(key(POD_B, POD_A, 77, 77, ICMP))!.packets, 1n);
    dp.passesUntouched(dp.fromPod, udp(POD_A, POD_B, 5001, 53));
    const quote = ipv4({ src: POD_A, dst: POD_B }).udp({ sport: 5001, dport: 53 }).payload('q');
    dp.passesUntouched(dp.fromPod, frame(POD_B, POD_A).icmp({ type: 'dest-unreachable', code: 3, embedded: quote }).build());
    assert.deepEqual(dp.counters, { from_pod: { pass: 2, ct_tracked_new: 2, ct_tracked: 1 } });
  });

  test("SCTP: its first packet starts a tracked flow, as UDP's does (so the policy stage decides it); the reply hits it", () => {
    // common header (ports, verification tag, checksum: not checked here), then an INIT chunk
    const sctp = (src: string, dst: string, sport: number, dport: number) => {
      const h = Buffer.alloc(12);
      h.writeUInt16BE(sport, 0);
      h.writeUInt16BE(dport, 2);
      const init = Buffer.from('0100001411111111ffff0001000122222222', 'hex');
      return eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
        .ipv4({ src, dst, protocol: SCTP })
        .payload(Buffer.concat([h, init]))
        .build();
    };
    dp.passesUntouched(dp.fromPod, sctp(POD_A, POD_B, 5000, 9000));
    dp.passesUntouched(dp.fromPod, sctp(POD_B, POD_A, 9000, 5000));
    assert.equal(dp.ct.get(key(POD_A, POD_B, 5000, 9000, SCTP))!.flags, 0, 'forward: tracked, not rewritten');
    assert.equal(dp.ct.get(key(POD_B, POD_A, 9000, 5000, SCTP))!.flags, CT.WEIR_CT_REPLY | CT.WEIR_CT_SEEN);
    assert.deepEqual(dp.counters, { from_pod: { ct_tracked_new: 1, ct_tracked: 1 } });
  });

  test('from_host tracks a flow entering the node without the NodePort flag; the pod reply hits it at from_pod', () => {
    dp.passesUntouched(dp.fromHost, tcp(EXTERNAL, POD_B, 50000, 443, ['syn']));
    assert.equal(dp.ct.get(key(EXTERNAL, POD_B, 50000, 443, TCP))!.flags, 0);
    dp.passesUntouched(dp.fromPod, tcp(POD_B, EXTERNAL, 443, 50000, ['syn', 'ack']));
    assert.deepEqual(dp.counters, { from_host: { ct_tracked_new: 1 }, from_pod: { ct_tracked: 1 } });
  });

  test("a service flow is NAT'd as before, with the rewrite bits", () => {
    dp.addService();
    const r = dp.fromPod.testRun({ data: tcp(POD_A, FRONTEND, 42000, 80, ['syn']) });
    assert.equal(r.retval, TC_PASS);
    assert.equal(dp.ct.get(key(POD_A, FRONTEND, 42000, 80, TCP))!.flags, CT.WEIR_CT_DNAT);
    assert.equal(dp.ct.get(key(POD_B, POD_A, 8080, 42000, TCP))!.flags, CT.WEIR_CT_SNAT | CT.WEIR_CT_REPLY);
    assert.deepEqual(dp.counters, { from_pod: { service_nat: 1 } });
  });

  test('userspace reads tracked pairs: GC ages them as a pair, `weir nat list` leaves them out', () => {
    dp.passesUntouched(dp.fromPod, udp(POD_A, POD_B, 5002, 53));
    dp.addService();
    dp.fromPod.testRun({ data: tcp(POD_A, FRONTEND, 42001, 80, ['syn']) });
    const entries = [...dp.ct.entries()];
    assert.equal(entries.length, 4);
    const s = 1_000_000_000n;
    const now = process.hrtime.bigint();
    const early = planConntrackGc(entries, now + 30n * s);
    assert.deepEqual([early.flows, early.expiredFlows], [2, 0], 'two flows, each a pair; none idle for 60 s yet');
    const late = planConntrackGc(entries, now + 61n * s);
    assert.deepEqual([late.flows, late.expiredFlows], [2, 2]);
    const tracked = [key(POD_A, POD_B, 5002, 53, UDP), key(POD_B, POD_A, 53, 5002, UDP)];
    const deleted = new Set(late.deletes.map(ctKeyString));
    for (const k of tracked) assert.ok(deleted.has(ctKeyString(k)), `GC deletes ${ctKeyString(k)}`);
    const nat = natRowsOf(entries);
    assert.deepEqual(
      nat.map((r) => [r.client, r.frontend, r.backend]),
      [[`${POD_A}:42001`, `${FRONTEND}:80`, `${POD_B}:8080`]],
    );
  });
});

describe('ct_track_all = 0 (the default)', () => {
  let dp: Dataplane;
  before(() => {
    dp = Dataplane.open(0);
  });
  after(async () => {
    await dp?.close();
  });
  beforeEach(() => dp.reset());

  test('flows to no frontend create no entry and pass as before', () => {
    dp.passesUntouched(dp.fromPod, udp(POD_A, POD_B, 5000, 53));
    dp.passesUntouched(dp.fromPod, udp(POD_B, POD_A, 53, 5000));
    dp.passesUntouched(dp.fromPod, tcp(POD_A, POD_B, 41000, 8080, ['syn']));
    dp.passesUntouched(dp.fromPod, frame(POD_A, POD_B).icmp({ type: 'echo-request', id: 77, seq: 1 }).build());
    dp.passesUntouched(dp.fromHost, tcp(EXTERNAL, POD_B, 50000, 443, ['syn']));
    assert.equal([...dp.ct.keys()].length, 0);
    assert.deepEqual(dp.counters, { from_pod: { pass: 4 }, from_host: { pass: 1 } });
  });
});
