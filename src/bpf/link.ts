// src/bpf: BpfLink, one attachment held by a BPF link (TCX, XDP, cgroup). An unpinned
// link ends when its last fd closes (close() or GC), so a daemon pins links it must keep
// across restarts and swaps programs with update(), never detach-then-attach.

import { native } from './errors.js';
import { addon, type RawLink } from './native.js';
import type { BpfProgram } from './program.js';

export interface LinkInfo {
  id: number;
  /** 'tcx' | 'xdp' | 'cgroup' | ... */
  type: string;
  progId: number;
  ifindex?: number;
  /** 'tcx_ingress', 'cgroup_inet4_connect', 'xdp', ... */
  attachType?: string;
  cgroupId?: bigint;
}

export class BpfLink {
  private pinnedAt: string | undefined;

  /** @internal use the attach functions (attach.ts) or BpfLink.openPinned() */
  constructor(
    readonly raw: RawLink,
    readonly label: string,
  ) {}

  static openPinned(path: string): BpfLink {
    const l = new BpfLink(
      native(() => addon.Link.openPinned(path)),
      `link ${path}`,
    );
    l.pinnedAt = path;
    return l;
  }

  get fd(): number {
    return native(() => this.raw.fd);
  }

  info(): LinkInfo {
    return native(() => this.raw.info());
  }

  pin(path: string): void {
    native(() => this.raw.pin(path));
    this.pinnedAt = path;
  }

  /** Removes the pin this handle made or was opened from. */
  unpin(): void {
    if (this.pinnedAt === undefined) throw new Error(`${this.label}: not pinned by this handle`);
    native(() => addon.unpin(this.pinnedAt!));
    this.pinnedAt = undefined;
  }

  /** Swaps the program behind the link atomically: no packet sees no program. */
  update(prog: BpfProgram): void {
    native(() => this.raw.update(prog.raw));
  }

  /** Ends the attachment now, even while pins or other fds hold the link. */
  detach(): void {
    native(() => this.raw.detach());
  }

  /** Closes this fd; the attachment ends only if nothing else (a pin, an fd) holds it. */
  close(): void {
    this.raw.close();
  }
}
