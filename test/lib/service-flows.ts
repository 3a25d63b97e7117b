// One frontend with two backends in a from_pod object's pinned service maps, and TCP flows
// opened through the real program with BPF_PROG_TEST_RUN: what the map migration tests
// (migrate.test.ts, map-sizes.test.ts) move across a layout or size change and check after.

import assert from 'node:assert/strict';
import { BpfObject, codecFor, typedMap } from '../../src/bpf/index.js';
import { decodePacket, eth } from './packet.js';

export const CLIENT = '198.18.1.10';
export const FRONTEND = '198.19.0.10';
export const BACKENDS = ['198.18.2.20', '198.18.2.21'];
const TC_PASS = 0;

/** A packet from `src` to `dst` on a pod's veth (L3 up to the caller). */
export const pod = (src: string, dst: string) => eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src, dst });

/** Programs one frontend (FRONTEND:80/tcp, id 7) with BACKENDS into the pinned service maps of `obj`. */
export function addService(obj: BpfObject): void {
  const fe = typedMap(obj.map('weir_frontend4'), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
  const be = typedMap(obj.map('weir_backend4'), codecFor('weir_backend4_key'), codecFor('weir_backend4'));
  BACKENDS.forEach((address, slot) => be.set({ frontend_id: 7, slot }, { address, port: 8080, flags: 0 }));
  fe.set({ address: FRONTEND, port: 80, protocol: 6, scope: 0 }, { id: 7, backend_count: BACKENDS.length, flags: 0, affinity_timeout: 0 });
}

/** Opens `count` TCP flows CLIENT:sport -> FRONTEND:80 through `obj`'s from_pod; returns sport -> backend. */
export function openFlows(obj: BpfObject, first: number, count: number): Map<number, string> {
  const prog = obj.program('weir_from_pod');
  const out = new Map<number, string>();
  for (let sport = first; sport < first + count; sport++) {
    const r = prog.testRun({
      data: pod(CLIENT, FRONTEND)
        .tcp({ sport, dport: 80, flags: ['syn'] })
        .build(),
    });
    assert.equal(r.retval, TC_PASS);
    out.set(sport, decodePacket(r.data).ipv4!.dst);
  }
  return out;
}
