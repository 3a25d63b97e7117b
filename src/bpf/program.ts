// src/bpf: BpfProgram, one loaded program: identity, pinning, and running it on a test
// packet with BPF_PROG_TEST_RUN. Attaching it is attach.ts's, which takes the program (as
// cilium/ebpf's link.AttachTCX does), so this file imports nothing above it.

import { native } from './errors.js';
import { addon, type RawProgInfo, type RawProgram } from './native.js';

export interface TestRunOptions {
  /** packet bytes (from the Ethernet header for TC and XDP) */
  data?: Buffer;
  /** context in: for TC the bytes of a struct __sk_buff (a prefix of it is fine) */
  ctx?: Buffer;
  /** run this many times; durationNs is the mean */
  repeat?: number;
  /** room for the output packet (default: input + 256) */
  dataSizeOut?: number;
  /** room for the output context (default: the size of ctx) */
  ctxSizeOut?: number;
}

export interface TestRunResult {
  retval: number;
  data: Buffer;
  ctx: Buffer;
  durationNs: number;
}

export type ProgramInfo = RawProgInfo;

export class BpfProgram {
  private cached: ProgramInfo | undefined;

  /** @internal use BpfObject.program(), BpfProgram.openPinned() or fromId() */
  constructor(readonly raw: RawProgram) {}

  static openPinned(path: string): BpfProgram {
    return new BpfProgram(native(() => addon.Program.openPinned(path)));
  }

  static fromId(id: number): BpfProgram {
    return new BpfProgram(native(() => addon.Program.fromId(id)));
  }

  /** Kernel info (name, type, id, tag), read once the program is loaded. */
  info(): ProgramInfo {
    return (this.cached ??= native(() => this.raw.info()));
  }
  get name(): string {
    return this.info().name;
  }
  /** 'sched_cls', 'xdp', 'cgroup_sock_addr', ... */
  get type(): string {
    return this.info().type;
  }
  get id(): number {
    return this.info().id;
  }
  get tag(): string {
    return this.info().tag;
  }
  get fd(): number {
    return native(() => this.raw.fd);
  }

  testRun(opts: TestRunOptions): TestRunResult {
    const r = native(() => this.raw.testRun(opts));
    return { retval: r.retval, data: r.dataOut, ctx: r.ctxOut, durationNs: r.duration };
  }

  pin(path: string): void {
    native(() => this.raw.pin(path));
  }

  /** Closes a program opened by pin or id; for an object's program, only this handle stops working. */
  close(): void {
    this.raw.close();
  }
}
