// bench: per-packet cost of the hot paths through BPF_PROG_TEST_RUN, in ns per packet as the
// kernel measures it (durationNs: the mean over `repeat` runs of the same skb).
//
// A repeated run feeds the program the skb it rewrote the time before. So the cases that
// rewrite use a frontend whose backend is the frontend itself: the translation is computed
// and written (lookups, checksum updates, counters) but leaves the bytes as they were, and
// every run takes the same path. A new flow cannot repeat at all (its first run creates the
// conntrack entry that the second would hit), so new flows are single runs, each a distinct
// flow, reported as the median; the single-run pass-through row shows what a single run adds.
// Repeated cases are measured `rounds` times and the fastest round is reported (the one least
// disturbed by the rest of this shared machine; the median is kept in the JSON), next to the
// floor: an empty TC program through the same loop, which every program pays.

import { join } from 'node:path';
import { BpfObject, type BpfProgram, codecFor, enums, typedMap } from '../src/bpf/index.js';
import { mountPrivateBpffs } from '../test/lib/bpffs.js';
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
  /** repeated cases: nsPerPacket less the empty program's figure */
  aboveFloorNs?: number;
}

const CLIENT = '198.18.65.10';
const IDENT = '198.19.0.10'; // frontend whose backend is itself
const SVC = '198.19.0.20';
const BACKEND = '198.18.65.20';
const NODE = '198.18.0.1';
const EXTERNAL = '198.18.100.5';
const TC_ACT_OK = 0;

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function runPerPacket(o: { repeat: number; singles: number; rounds: number }): Promise<PerPacketRow[]> {
  const bpffs = mountPrivateBpffs('bench-perpacket');
  const objects: BpfObject[] = [];
  try {
    const load = (n: string) => {
      const obj = BpfObject.load(join(OBJ_DIR, `${n}.o`), { pinDir: bpffs.path });
      objects.push(obj);
      return obj;
    };
    const fromPodObj = load('from_pod');
    const fromHostObj = load('from_host');
    load('to_pod');
    const fromPod = fromPodObj.program('weir_from_pod');
    const fromHost = fromHostObj.program('weir_from_host');
    const frontends = typedMap(fromPodObj.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
    const backends = typedMap(fromPodObj.map('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4'));
    const conntrack = typedMap(fromPodObj.map('weir_ct4_v2'), codecFor('weir_ct4_key'), codecFor('weir_ct4'));
    const NODEPORT = enums.weir_frontend_flags.WEIR_FRONTEND_NODEPORT;
    const add = (id: number, address: string, port: number, be: { address: string; port: number }, flags = 0) => {
      backends.set({ frontend_id: id, slot: 0 }, { address: be.address, port: be.port, flags: 0 });
      frontends.set({ address, port, protocol: 6, scope: 0 }, { id, backend_count: 1, flags, affinity_timeout: 0 });
    };
    add(1, IDENT, 80, { address: IDENT, port: 80 });
    add(2, SVC, 80, { address: BACKEND, port: 8080 });
    add(3, NODE, 30080, { address: NODE, port: 30080 }, NODEPORT);
    add(4, NODE, 30081, { address: BACKEND, port: 8080 }, NODEPORT);

    const tcp = (src: string, dst: string, sport: number, dport: number, flags: ('syn' | 'ack')[]) =>
      eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src, dst }).tcp({ sport, dport, flags }).payload('x'.repeat(64)).build();
    // setup: the SYN that opens the flow (only a SYN creates a conntrack entry; a mid-stream
    // segment without one is passed untranslated), else the first run of `data` itself
    const repeated = (prog: BpfProgram, data: Buffer, setup: Buffer = data) => {
      prog.testRun({ data: setup }); // the first run sets up (creates the conntrack entries)
      const xs: number[] = [];
      for (let i = 0; i < o.rounds; i++) {
        const r = prog.testRun({ data, repeat: o.repeat });
        if (r.retval !== TC_ACT_OK) throw new Error(`${prog.name}: verdict ${r.retval}, expected pass`);
        xs.push(r.durationNs);
      }
      xs.sort((a, b) => a - b);
      return { nsPerPacket: xs[0]!, medianNs: median(xs) };
    };
    const singles = (prog: BpfProgram, packet: (i: number) => Buffer, check?: (out: Buffer) => void) => {
      const xs: number[] = [];
      for (let i = 0; i < o.singles; i++) {
        const r = prog.testRun({ data: packet(i) });
        if (r.retval !== TC_ACT_OK) throw new Error(`${prog.name}: verdict ${r.retval}, expected pass`);
        if (i === 0) check?.(r.data);
        xs.push(r.durationNs);
      }
      return median(xs);
    };
    const dnatTo = (addr: string) => (out: Buffer) => {
      const dst = decodePacket(out).ipv4?.dst;
      if (dst !== addr) throw new Error(`new flow not DNATed: destination ${dst}, expected ${addr}`);
    };
    const rows: PerPacketRow[] = [];
    const R = `fastest of ${o.rounds} × repeat ${o.repeat}`;
    const floorObj = BpfObject.load(floorObject());
    objects.push(floorObj);
    const floor = repeated(floorObj.program('bench_floor'), tcp(CLIENT, BACKEND, 40000, 8080, ['ack']));
    rows.push({ case: 'floor: an empty TC program (the test-run loop itself)', program: 'bench_floor', method: R, ...floor });
    const rep = (prog: BpfProgram, data: Buffer, setup?: Buffer) => {
      const r = repeated(prog, data, setup);
      return { ...r, aboveFloorNs: r.nsPerPacket - floor.nsPerPacket };
    };
    const S = `median of ${o.singles} single runs`;

    rows.push({ case: 'pass-through (pod to pod, no service)', program: 'from_pod', method: R, ...rep(fromPod, tcp(CLIENT, BACKEND, 40000, 8080, ['ack'])) });
    rows.push({ case: 'established flow (conntrack hit, DNAT)', program: 'from_pod', method: R, ...rep(fromPod, tcp(CLIENT, IDENT, 40001, 80, ['ack']), tcp(CLIENT, IDENT, 40001, 80, ['syn'])) });
    if (!conntrack.get({ saddr: CLIENT, daddr: IDENT, sport: 40001, dport: 80, protocol: 6 })) throw new Error('established case made no conntrack entry');
    rows.push({ case: 'reply with reverse NAT (conntrack hit)', program: 'from_pod', method: R, ...rep(fromPod, tcp(IDENT, CLIENT, 80, 40001, ['ack'])) });
    rows.push({ case: 'NodePort established (conntrack hit, DNAT)', program: 'from_host', method: R, ...rep(fromHost, tcp(EXTERNAL, NODE, 50000, 30080, ['ack']), tcp(EXTERNAL, NODE, 50000, 30080, ['syn'])) });
    rows.push({ case: 'pass-through (pod to pod, no service)', program: 'from_pod', method: S, nsPerPacket: singles(fromPod, (i) => tcp(CLIENT, BACKEND, 20000 + (i % 40000), 8080, ['ack'])) });
    rows.push({ case: 'new flow with NAT (frontend, backend, 2 conntrack writes)', program: 'from_pod', method: S, nsPerPacket: singles(fromPod, (i) => tcp(CLIENT, SVC, 1024 + (i % 60000), 80, ['syn']), dnatTo(BACKEND)) });
    rows.push({ case: 'NodePort new flow', program: 'from_host', method: S, nsPerPacket: singles(fromHost, (i) => tcp(EXTERNAL, NODE, 1024 + (i % 60000), 30081, ['syn']), dnatTo(BACKEND)) });
    return rows;
  } finally {
    for (const obj of objects) obj.close();
    await bpffs.cleanup();
  }
}
