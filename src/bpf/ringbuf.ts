// src/bpf: RingBuffer, the reading end of a BPF ring buffer map (native/ringbuf.cc).
// consume() returns the records written so far without waiting; callers poll it from a
// timer (`weir monitor`, src/dataplane/monitor.ts), so the event loop never blocks.

import { native } from './errors.js';
import type { BpfMap } from './map.js';
import { addon, type RawRingBuf } from './native.js';

export class RingBuffer {
  private readonly raw: RawRingBuf;

  /** Reads `map` (a ringbuf map); the map handle may be closed afterwards. */
  constructor(map: BpfMap) {
    if (map.type !== 'ringbuf') throw new Error(`${map.name} is a ${map.type} map, not a ring buffer`);
    this.raw = native(() => new addon.RingBuf(map.raw.fd));
  }

  /** Up to `max` records, oldest first, each its own Buffer; [] when the ring is empty. */
  consume(max = 4096): Buffer[] {
    return native(() => this.raw.consume(max));
  }

  close(): void {
    this.raw.close();
  }
}
