// bench: what `weir monitor` costs per packet, through BPF_PROG_TEST_RUN as bench/perpacket.ts
// measures (the kernel's mean ns per run of one skb repeated; best of several rounds, the rounds
// of every condition interleaved so drift of this shared machine hits all alike). The packet is
// an established flow's (conntrack hit, DNAT to a backend that is the frontend itself, so every
// repeated run takes the same path) through from_pod:
//   - baseline: objects without the emitter (a build of another tree, --baseline DIR; optional)
//   - no lease: nobody monitors (weir_monitor_cfg all zero): one array lookup and a compare
//   - lease, reason not asked: a monitor runs with the default mask (nat_established is not in it)
//   - lease, emitting: the monitor asked for nat_established: every packet writes an event
// Usage: node dist/bench/monitor.js [--baseline DIR] [--rounds N] [--repeat N]

import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BpfMap, BpfObject, codecFor, RingBuffer, typedMap, type BpfProgram } from '../src/bpf/index.js';
import { MonitorLease, monitorStats, reasonMask } from '../src/dataplane/monitor.js';
import { mountPrivateBpffs } from '../test/lib/bpffs.js';
import { eth } from '../test/lib/packet.js';
import { OBJ_DIR } from './weir.js';

const CLIENT = '198.18.65.10';
const IDENT = '198.19.0.10';

const tcp = (flags: ('syn' | 'ack')[]) =>
  eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' })
    .ipv4({ src: CLIENT, dst: IDENT })
    .tcp({ sport: 40001, dport: 80, flags })
    .payload('x'.repeat(64))
    .build();

interface Loaded {
  prog: BpfProgram;
  pinDir: string;
  close(): Promise<void>;
}

function load(dir: string, label: string): Loaded {
  const bpffs = mountPrivateBpffs(`bench-monitor-${label}`);
  const obj = BpfObject.load(join(dir, 'from_pod.o'), { pinDir: bpffs.path });
  const frontends = typedMap(obj.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
  const backends = typedMap(obj.map('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4'));
  backends.set({ frontend_id: 1, slot: 0 }, { address: IDENT, port: 80, flags: 0 });
  frontends.set({ address: IDENT, port: 80, protocol: 6, scope: 0 }, { id: 1, backend_count: 1, flags: 0, affinity_timeout: 0 });
  const prog = obj.program('weir_from_pod');
  prog.testRun({ data: tcp(['syn']) });
  return {
    prog,
    pinDir: bpffs.path,
    close: async () => {
      obj.close();
      await bpffs.cleanup();
    },
  };
}

const { values } = parseArgs({
  options: { baseline: { type: 'string' }, rounds: { type: 'string', default: '15' }, repeat: { type: 'string', default: '5000' } },
});
const rounds = Number(values.rounds);
const repeat = Number(values.repeat); // 5000 events of 104 bytes fit the 1 MiB ring: none lost
const ack = tcp(['ack']);

const base = values.baseline ? load(values.baseline, 'base') : undefined;
const tree = load(OBJ_DIR, 'tree');
const cfg = BpfMap.openPinned(join(tree.pinDir, 'weir_monitor_cfg'));
const stats = BpfMap.openPinned(join(tree.pinDir, 'weir_monitor_stats'));
const eventsMap = BpfMap.openPinned(join(tree.pinDir, 'weir_events'));
const ring = new RingBuffer(eventsMap);
eventsMap.close();
const zero = () => cfg.update(Buffer.alloc(4), Buffer.alloc(cfg.valueSize));

type Condition = { name: string; prog: BpfProgram; before(): void; after?(): void };
const conditions: Condition[] = [
  ...(base ? [{ name: 'baseline (no emitter)', prog: base.prog, before() {} }] : []),
  { name: 'no lease (nobody monitors)', prog: tree.prog, before: zero },
  { name: 'lease held, reason not asked', prog: tree.prog, before: () => new MonitorLease(cfg, reasonMask(), 1).acquire(), after: zero },
  {
    name: 'lease held, every packet emitted',
    prog: tree.prog,
    before: () => new MonitorLease(cfg, reasonMask([], ['nat_established']), 1).acquire(),
    after: () => {
      zero();
      while (ring.consume(4096).length > 0);
    },
  },
];
const best = new Map<string, number[]>(conditions.map((c) => [c.name, []]));
for (let r = 0; r < rounds; r++) {
  for (const c of [...conditions].sort(() => Math.random() - 0.5)) {
    c.before();
    const res = c.prog.testRun({ data: ack, repeat });
    c.after?.();
    if (res.retval !== 0) throw new Error(`${c.name}: verdict ${res.retval}`);
    best.get(c.name)!.push(res.durationNs);
  }
}
const st = monitorStats(stats);
for (const c of conditions) {
  const xs = best.get(c.name)!.sort((a, b) => a - b);
  console.log(`${c.name.padEnd(36)} best ${String(xs[0]).padStart(4)} ns  median ${String(xs[Math.floor(xs.length / 2)]).padStart(4)} ns`);
}
console.log(`events emitted ${st.emitted}, lost ${st.lost} (${rounds} x ${repeat} expected emitted, 0 lost)`);
ring.close();
cfg.close();
stats.close();
await tree.close();
await base?.close();
