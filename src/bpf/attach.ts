// src/bpf: TC and XDP attachments and the choice between their kernel mechanisms.
// TC: a TCX link (kernel >= 6.6) or, on older kernels, a clsact qdisc + direct-action
// cls_bpf filter; both replace their program atomically. XDP: a link in native (driver)
// mode, else generic (skb) mode.

import { bpfError, BpfError, native } from './errors.js';
import { BpfLink } from './link.js';
import { addon, type RawProgram } from './native.js';
import { ifindexOf, withNetns } from './netns.js';

export type TcDirection = 'ingress' | 'egress';
export type TcMode = 'tcx' | 'cls_bpf';

export interface TcAttachOptions {
  /** 'auto' (default): TCX, falling back to cls_bpf when the kernel has no TCX */
  mode?: 'auto' | TcMode;
  /** cls_bpf filter priority (default: libbpf's choice, 1) */
  priority?: number;
  /** cls_bpf filter handle (default: libbpf's choice, 1) */
  handle?: number;
  /** network namespace (name under /run/netns, or a path) the interface lives in */
  netns?: string;
}

export interface TcAttachment {
  readonly mode: TcMode;
  readonly ifindex: number;
  readonly direction: TcDirection;
  /** the TCX link (tcx mode only) */
  readonly link?: BpfLink;
  /** the cls_bpf filter's handle and priority (cls_bpf mode only) */
  readonly handle?: number;
  readonly priority?: number;
  /** Swaps in another program atomically. */
  replace(prog: { raw: RawProgram }): void;
  detach(): void;
  /** Pins the TCX link (tcx mode only: a cls_bpf filter lives in the qdisc, not in bpffs). */
  pin(path: string): void;
  /** The id of the program attached now. */
  progId(): number | null;
}

class TcxAttachment implements TcAttachment {
  readonly mode = 'tcx' as const;
  constructor(
    readonly ifindex: number,
    readonly direction: TcDirection,
    readonly link: BpfLink,
  ) {}
  replace(prog: { raw: RawProgram }): void {
    native(() => this.link.raw.update(prog.raw));
  }
  detach(): void {
    this.link.detach();
    this.link.close();
  }
  pin(path: string): void {
    this.link.pin(path);
  }
  progId(): number | null {
    return this.link.info().progId;
  }
}

class ClsBpfAttachment implements TcAttachment {
  readonly mode = 'cls_bpf' as const;
  constructor(
    readonly ifindex: number,
    readonly direction: TcDirection,
    readonly handle: number,
    readonly priority: number,
    private readonly netns: string | undefined,
  ) {}
  replace(prog: { raw: RawProgram }): void {
    withNetns(this.netns, () =>
      native(() => addon.tcAttach(prog.raw, this.ifindex, this.direction, this.handle, this.priority, true)),
    );
  }
  detach(): void {
    withNetns(this.netns, () => native(() => addon.tcDetach(this.ifindex, this.direction, this.handle, this.priority)));
  }
  pin(): void {
    throw bpfError('EOPNOTSUPP', 95, `pin cls_bpf filter at ifindex ${this.ifindex}`, 'only TCX links can be pinned');
  }
  progId(): number | null {
    return withNetns(this.netns, () =>
      native(() => addon.tcQuery(this.ifindex, this.direction, this.handle, this.priority)),
    );
  }
}

const NO_TCX = new Set(['EINVAL', 'EOPNOTSUPP', 'ENOTSUPP']);

export function attachTc(
  prog: RawProgram,
  iface: string | number,
  direction: TcDirection,
  opts: TcAttachOptions = {},
): TcAttachment {
  const mode = opts.mode ?? 'auto';
  return withNetns(opts.netns, () => {
    const ifindex = ifindexOf(iface);
    if (mode !== 'cls_bpf') {
      try {
        const raw = native(() => addon.attachTcx(prog, ifindex, direction));
        return new TcxAttachment(ifindex, direction, new BpfLink(raw, `tcx link ifindex ${ifindex} ${direction}`));
      } catch (e) {
        if (mode === 'tcx' || !(e instanceof BpfError) || !NO_TCX.has(e.code)) throw e;
      }
    }
    const r = native(() => addon.tcAttach(prog, ifindex, direction, opts.handle ?? 0, opts.priority ?? 0, false));
    return new ClsBpfAttachment(ifindex, direction, r.handle, r.priority, opts.netns);
  });
}

/** Program ids attached through TCX on an interface, in run order. */
export function tcxPrograms(iface: string | number, direction: TcDirection, netns?: string): number[] {
  return withNetns(netns, () => native(() => addon.tcxQuery(ifindexOf(iface), direction)));
}

export interface XdpAttachOptions {
  /** 'auto' (default): native, falling back to generic */
  mode?: 'auto' | 'native' | 'generic';
  netns?: string;
}

export interface XdpAttachment {
  readonly mode: 'native' | 'generic';
  readonly ifindex: number;
  readonly link: BpfLink;
}

const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;

export function attachXdp(prog: RawProgram, iface: string | number, opts: XdpAttachOptions = {}): XdpAttachment {
  const mode = opts.mode ?? 'auto';
  return withNetns(opts.netns, () => {
    const ifindex = ifindexOf(iface);
    const attach = (m: 'native' | 'generic'): XdpAttachment => {
      const flags = m === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
      const raw = native(() => addon.attachXdp(prog, ifindex, flags));
      return { mode: m, ifindex, link: new BpfLink(raw, `xdp link ifindex ${ifindex} (${m})`) };
    };
    if (mode !== 'auto') return attach(mode);
    try {
      return attach('native');
    } catch (e) {
      if (!(e instanceof BpfError) || e.code === 'EBUSY' || e.code === 'EEXIST') throw e;
      return attach('generic');
    }
  });
}
