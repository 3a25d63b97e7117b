// bench: per-packet cost of the hot paths through BPF_PROG_TEST_RUN, in ns per packet as the
// kernel measures it (durationNs: the mean over `repeat` runs of the same skb), for one or
// more sets of objects in the same run (this tree's, and an earlier release's for a ratio).
//
// A repeated run feeds the program the skb it rewrote the time before. So the cases that
// rewrite use a frontend whose backend is the frontend itself: the translation is computed
// and written (lookups, checksum updates, counters) but leaves the bytes as they were, and
// every run takes the same path. A new flow cannot repeat at all (its first run creates the
// conntrack entry that the second would hit), so new flows are single runs, each a distinct
// flow, reported as the median; the single-run pass-through row shows what a single run adds.
// Repeated cases are measured `rounds` times and the fastest round is reported (the one least
// disturbed by the rest of this shared machine; the median is kept in the JSON), next to the
// floor: an empty TC program through the same loop, which every program pays. With several
// sets, each round measures every set one after the other and single runs alternate between
// the sets packet by packet, in a random order each time, so drift of the machine hits all sets alike.
// An IPv6 set (THIS_TREE_V6) runs the same cases through from_pod6 / from_host6 on IPv6 packets
// and the IPv6 maps, with addresses from 2001:2::/48.

import { join } from 'node:path';
import { BpfObject, codecFor, enums, typedMap, type BpfProgram, type ConstValue } from '../src/bpf/index.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../test/lib/bpffs.js';
import { decodePacket, eth } from '../test/lib/packet.js';
import { floorObject } from './tools.js';
import { OBJ_DIR } from './weir.js';

export interface PerPacketRow {
  case: string;
  program: string;
  method: string;
  nsPerPacket: number;
  /** repeated cases: the median round (nsPerPacket is the fastest) */
  medianNs?: number;
  /** repeated cases: the slowest round, to show the noise */
  slowestNs?: number;
  /** repeated cases: nsPerPacket less the empty program's figure */
  aboveFloorNs?: number;
  /** which set of objects (ObjectSet.label); absent for the floor */
  objects?: string;
}

/** A set of hook objects (from_pod, from_host, to_pod) in one directory, loaded into a pin directory of its own. */
export interface ObjectSet {
  label: string;
  dir: string;
  /** the conntrack map's pin name and value struct in this set's ABI */
  ctMap: string;
  ctValue: 'weir_ct4' | 'weir_ct4_v1' | 'weir_ct6';
  consts?: Record<string, ConstValue>;
  /** the packets' and maps' family (default 4) */
  family?: 4 | 6;
}

export const THIS_TREE: ObjectSet = { label: 'this tree', dir: OBJ_DIR, ctMap: 'weir_ct4_v2', ctValue: 'weir_ct4' };
/** This tree's IPv6 programs (from_pod6, from_host6) and maps. */
export const THIS_TREE_V6: ObjectSet = { label: 'this tree, IPv6', dir: OBJ_DIR, ctMap: 'weir_ct6', ctValue: 'weir_ct6', family: 6 };

/** An earlier release's objects (bench/release-objects.ts): conntrack as version 1 pinned it. */
export const releaseSet = (label: string, dir: string): ObjectSet => ({ label, dir, ctMap: 'weir_ct4', ctValue: 'weir_ct4_v1' });

/** the cases' addresses per family; IDENT is a frontend whose backend is itself */
const ADDRESSES = {
  4: { CLIENT: '198.18.65.10', IDENT: '198.19.0.10', SVC: '198.19.0.20', BACKEND: '198.18.65.20', NODE: '198.18.0.1', EXTERNAL: '198.18.100.5' },
  6: {
    CLIENT: '2001:2:100:1::a',
    IDENT: '2001:2:ff::a',
    SVC: '2001:2:ff::14',
    BACKEND: '2001:2:100:1::14',
    NODE: '2001:2::1',
    EXTERNAL: '2001:2:64::5',
  },
} as const;
const { CLIENT, BACKEND } = ADDRESSES[4];
const TC_ACT_OK = 0;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** a TCP packet of the addresses' family */
const tcp = (src: string, dst: string, sport: number, dport: number, flags: ('syn' | 'ack' | 'fin')[]) => {
  const l2 = eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' });
  const l3 = src.includes(':') ? l2.ipv6({ src, dst }) : l2.ipv4({ src, dst });
  return l3.tcp({ sport, dport, flags }).payload('x'.repeat(64)).build();
};

/** TCX_NEXT: an IPv4 program hands an IPv6 packet to the next program of the chain */
const TCX_NEXT = -1;

function testRun(prog: BpfProgram, data: Buffer, repeat?: number, verdict = TC_ACT_OK) {
  const r = prog.testRun(repeat ? { data, repeat } : { data });
  if ((r.retval | 0) !== verdict) throw new Error(`${prog.name}: verdict ${r.retval}, expected ${verdict}`);
  return r;
}

/** A case measured by repeating one skb: `setup` runs once first (the SYN that opens the flow). */
interface RepeatCase {
  case: string;
  prog: BpfProgram;
  data: Buffer;
  setup?: Buffer;
  check?: () => void;
  /** the verdict every run must give (default TC_ACT_OK) */
  verdict?: number;
}

/** A case measured by single runs on distinct packets. */
interface SingleCase {
  case: string;
  prog: BpfProgram;
  packet: (i: number) => Buffer;
  check?: (out: Buffer) => void;
}

/** One set loaded into its own bpffs, its maps filled, its cases ready. */
interface LoadedSet {
  set: ObjectSet;
  repeated: RepeatCase[];
  singles: SingleCase[];
  close(): Promise<void>;
}

function loadSet(set: ObjectSet): LoadedSet {
  const bpffs: PrivateBpffs = mountPrivateBpffs('bench-perpacket');
  const objects: BpfObject[] = [];
  const close = async () => {
    for (const obj of objects) obj.close();
    await bpffs.cleanup();
  };
  try {
    const load = (n: string) => {
      const obj = BpfObject.load(join(set.dir, `${n}.o`), { pinDir: bpffs.path, ...(set.consts ? { consts: set.consts } : {}) });
      objects.push(obj);
      return obj;
    };
    const v6 = set.family === 6;
    const { CLIENT, IDENT, SVC, BACKEND, NODE, EXTERNAL } = ADDRESSES[v6 ? 6 : 4];
    const sfx = v6 ? '6' : '';
    // IPv6: the IPv4 program runs first in the same TCX chain and hands the packet on
    const chainHead = v6 ? load('from_pod').program('weir_from_pod') : undefined;
    const fromPodObj = load(`from_pod${sfx}`);
    const fromHostObj = load(`from_host${sfx}`);
    load('to_pod');
    const fromPod = fromPodObj.program(`weir_from_pod${sfx}`);
    const fromHost = fromHostObj.program(`weir_from_host${sfx}`);
    // the IPv6 keys and values have the IPv4 shapes (addresses as text): one writer for both
    const frontends = v6
      ? typedMap(fromPodObj.map('weir_frontend6'), codecFor('weir_frontend6_key'), codecFor('weir_frontend6'))
      : typedMap(fromPodObj.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
    const backends = v6
      ? typedMap(fromPodObj.map('weir_backend6'), codecFor('weir_backend6_key'), codecFor('weir_backend6'))
      : typedMap(fromPodObj.map('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4'));
    const conntrack = typedMap(fromPodObj.map(set.ctMap), codecFor(v6 ? 'weir_ct6_key' : 'weir_ct4_key'), codecFor(set.ctValue));
    const NODEPORT = enums.weir_frontend_flags.WEIR_FRONTEND_NODEPORT;
    const add = (id: number, address: string, port: number, be: { address: string; port: number }, flags = 0) => {
      backends.set({ frontend_id: id, slot: 0 }, { address: be.address, port: be.port, flags: 0 });
      frontends.set({ address, port, protocol: 6, scope: 0 }, { id, backend_count: 1, flags, affinity_timeout: 0 });
    };
    add(1, IDENT, 80, { address: IDENT, port: 80 });
    add(2, SVC, 80, { address: BACKEND, port: 8080 });
    add(3, NODE, 30080, { address: NODE, port: 30080 }, NODEPORT);
    add(4, NODE, 30081, { address: BACKEND, port: 8080 }, NODEPORT);
    const dnatTo = (addr: string) => (out: Buffer) => {
      const p = decodePacket(out);
      const dst = (v6 ? p.ipv6 : p.ipv4)?.dst;
      if (dst !== addr) throw new Error(`${set.label}: new flow not DNATed: destination ${dst}, expected ${addr}`);
    };
    const hasEntry = () => {
      if (!conntrack.get({ saddr: CLIENT, daddr: IDENT, sport: 40001, dport: 80, protocol: 6 }))
        throw new Error(`${set.label}: established case made no conntrack entry`);
    };
    // the repeatable new flow recreates its entry on every run: two runs leave one packet on it
    const freshEach = (saddr: string, daddr: string, sport: number, dport: number) => () => {
      const k = { saddr, daddr, sport, dport, protocol: 6 };
      const before = conntrack.get(k);
      if (!before || before.packets !== 1n) throw new Error(`${set.label}: repeatable new flow made no fresh entry (${before?.packets} packets)`);
    };
    return {
      set,
      close,
      repeated: [
        ...(chainHead
          ? [
              {
                case: 'IPv6 packet through the IPv4 program first (TCX_NEXT to from_pod6)',
                prog: chainHead,
                data: tcp(CLIENT, IDENT, 40001, 80, ['ack']),
                verdict: TCX_NEXT,
              },
            ]
          : []),
        { case: 'pass-through (pod to pod, no service)', prog: fromPod, data: tcp(CLIENT, BACKEND, 40000, 8080, ['ack']) },
        {
          case: 'established flow (conntrack hit, DNAT)',
          prog: fromPod,
          data: tcp(CLIENT, IDENT, 40001, 80, ['ack']),
          setup: tcp(CLIENT, IDENT, 40001, 80, ['syn']),
          check: hasEntry,
        },
        { case: 'reply with reverse NAT (conntrack hit)', prog: fromPod, data: tcp(IDENT, CLIENT, 80, 40001, ['ack']) },
        {
          case: 'NodePort established (conntrack hit, DNAT)',
          prog: fromHost,
          data: tcp(EXTERNAL, NODE, 50000, 30080, ['ack']),
          setup: tcp(EXTERNAL, NODE, 50000, 30080, ['syn']),
        },
        // a SYN+FIN reopens the entry it created the run before (SYN-reopen: the pair is
        // deleted) and then takes the whole new-flow path again, so a new flow can repeat
        {
          case: 'new flow, repeatable (SYN+FIN: reopen deletes the pair, then new flow with NAT)',
          prog: fromPod,
          data: tcp(CLIENT, IDENT, 40002, 80, ['syn', 'fin']),
          check: freshEach(CLIENT, IDENT, 40002, 80),
        },
        {
          case: 'NodePort new flow, repeatable (as above)',
          prog: fromHost,
          data: tcp(EXTERNAL, NODE, 50001, 30080, ['syn', 'fin']),
          check: freshEach(EXTERNAL, NODE, 50001, 30080),
        },
      ],
      singles: [
        { case: 'pass-through (pod to pod, no service)', prog: fromPod, packet: (i) => tcp(CLIENT, BACKEND, 20000 + (i % 40000), 8080, ['ack']) },
        {
          case: 'new flow with NAT (frontend, backend, 2 conntrack writes)',
          prog: fromPod,
          packet: (i) => tcp(CLIENT, SVC, 1024 + (i % 60000), 80, ['syn']),
          check: dnatTo(BACKEND),
        },
        { case: 'NodePort new flow', prog: fromHost, packet: (i) => tcp(EXTERNAL, NODE, 1024 + (i % 60000), 30081, ['syn']), check: dnatTo(BACKEND) },
      ],
    };
  } catch (e) {
    void close();
    throw e;
  }
}

export interface PerPacketOptions {
  repeat: number;
  singles: number;
  rounds: number;
}

/** Every case of every set, interleaved; rows grouped by set in the order given, the floor first. */
export async function runPerPacketSets(o: PerPacketOptions, sets: ObjectSet[]): Promise<PerPacketRow[]> {
  const loaded: LoadedSet[] = [];
  const floorObj = BpfObject.load(floorObject());
  try {
    for (const s of sets) loaded.push(loadSet(s));
    const floorProg = floorObj.program('bench_floor');
    const floorData = tcp(CLIENT, BACKEND, 40000, 8080, ['ack']);
    for (const l of loaded)
      for (const c of l.repeated) {
        testRun(c.prog, c.setup ?? c.data, undefined, c.verdict); // the first run sets up (creates the conntrack entries)
        testRun(c.prog, c.data, undefined, c.verdict); // and one as measured, so the check sees the path every repeat takes
        c.check?.();
      }
    // a round (or a single run) measures the sets in a fresh random order each time, so no set
    // always follows the same program (whose cache footprint it would inherit) and drift
    // favours none; seeded, so a run can be repeated as it was
    let seed = 0x9e3779b9;
    const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const shuffled = () => {
      const order = loaded.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      return order;
    };
    const floorRounds: number[] = [];
    const rounds = loaded.map((l) => l.repeated.map(() => [] as number[])); // [set][case] = ns per round
    for (let r = 0; r < o.rounds; r++) {
      floorRounds.push(testRun(floorProg, floorData, o.repeat).durationNs);
      for (const i of shuffled()) loaded[i]!.repeated.forEach((c, j) => rounds[i]![j]!.push(testRun(c.prog, c.data, o.repeat, c.verdict).durationNs));
    }
    const singles = loaded.map((l) => l.singles.map(() => [] as number[]));
    for (let n = 0; n < o.singles; n++)
      for (let j = 0; j < (loaded[0]?.singles.length ?? 0); j++)
        for (const i of shuffled()) {
          const c = loaded[i]!.singles[j]!;
          const res = testRun(c.prog, c.packet(n));
          if (n === 0) c.check?.(res.data);
          singles[i]![j]!.push(res.durationNs);
        }

    const R = `fastest of ${o.rounds} × repeat ${o.repeat}`;
    const S = `median of ${o.singles} single runs`;
    const floor = Math.min(...floorRounds);
    const rows: PerPacketRow[] = [
      {
        case: 'floor: an empty TC program (the test-run loop itself)',
        program: 'bench_floor',
        method: R,
        nsPerPacket: floor,
        medianNs: median(floorRounds),
        slowestNs: Math.max(...floorRounds),
      },
    ];
    loaded.forEach((l, i) => {
      const objects = l.set.label;
      l.repeated.forEach((c, j) => {
        const xs = rounds[i]![j]!;
        const fastest = Math.min(...xs);
        rows.push({
          case: c.case,
          program: c.prog.name.replace(/^weir_/, ''),
          method: R,
          nsPerPacket: fastest,
          medianNs: median(xs),
          slowestNs: Math.max(...xs),
          aboveFloorNs: fastest - floor,
          objects,
        });
      });
      l.singles.forEach((c, j) =>
        rows.push({ case: c.case, program: c.prog.name.replace(/^weir_/, ''), method: S, nsPerPacket: median(singles[i]![j]!), objects }),
      );
    });
    return rows;
  } finally {
    floorObj.close();
    for (const l of loaded) await l.close();
  }
}

/** This tree's objects alone (the `make bench` per-packet table). */
export async function runPerPacket(o: PerPacketOptions): Promise<PerPacketRow[]> {
  return runPerPacketSets(o, [THIS_TREE]);
}
