// src/bpf: attaching a program to a hook, and the choice between the kernel mechanisms.
// TC: a TCX link (kernel >= 6.6) or, on older kernels, a clsact qdisc + direct-action
// cls_bpf filter; both replace their program atomically. XDP: a link in native (driver)
// mode, else generic (skb) mode. cgroup: a link at the program's expected attach type.
// These are free functions taking the program (cilium/ebpf's link.AttachTCX(TCXOptions{
// Program, Interface})): attaching sits above programs and links, which never import it.

import { bpfError, BpfError, native } from './errors.js';
import { BpfLink } from './link.js';
import { addon } from './native.js';
import { ifindexOf, withNetns } from './netns.js';
import type { BpfProgram } from './program.js';

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
  replace(prog: BpfProgram): void;
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
  replace(prog: BpfProgram): void {
    this.link.update(prog);
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
  replace(prog: BpfProgram): void {
    withNetns(this.netns, () => native(() => addon.tcAttach(prog.raw, this.ifindex, this.direction, this.handle, this.priority, true)));
  }
  detach(): void {
    withNetns(this.netns, () => native(() => addon.tcDetach(this.ifindex, this.direction, this.handle, this.priority)));
  }
  pin(): void {
    throw bpfError('EOPNOTSUPP', 95, `pin cls_bpf filter at ifindex ${this.ifindex}`, 'only TCX links can be pinned');
  }
  progId(): number | null {
    return withNetns(this.netns, () => native(() => addon.tcQuery(this.ifindex, this.direction, this.handle, this.priority)));
  }
}

const NO_TCX = new Set(['EINVAL', 'EOPNOTSUPP', 'ENOTSUPP']);

/** Attaches `prog` (a sched_cls program) at TC `direction` of an interface. */
export function attachTc(prog: BpfProgram, iface: string | number, direction: TcDirection, opts: TcAttachOptions = {}): TcAttachment {
  const mode = opts.mode ?? 'auto';
  return withNetns(opts.netns, () => {
    const ifindex = ifindexOf(iface);
    if (mode !== 'cls_bpf') {
      try {
        const raw = native(() => addon.attachTcx(prog.raw, ifindex, direction));
        return new TcxAttachment(ifindex, direction, new BpfLink(raw, `tcx link ifindex ${ifindex} ${direction}`));
      } catch (e) {
        if (mode === 'tcx' || !(e instanceof BpfError) || !NO_TCX.has(e.code)) throw e;
      }
    }
    const r = native(() => addon.tcAttach(prog.raw, ifindex, direction, opts.handle ?? 0, opts.priority ?? 0, false));
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

/** Attaches `prog` (an xdp program) to an interface through an XDP link. */
export function attachXdp(prog: BpfProgram, iface: string | number, opts: XdpAttachOptions = {}): XdpAttachment {
  const mode = opts.mode ?? 'auto';
  return withNetns(opts.netns, () => {
    const ifindex = ifindexOf(iface);
    const attach = (m: 'native' | 'generic'): XdpAttachment => {
      const flags = m === 'native' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
      const raw = native(() => addon.attachXdp(prog.raw, ifindex, flags));
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

export interface CgroupAttachOptions {
  /** 'cgroup_inet4_connect', ...; default: the program's expected attach type
   *  (its section: cgroup/connect4 -> cgroup_inet4_connect) */
  attachType?: string;
}

/** Attaches `prog` to a cgroup (v2 directory) through a cgroup link. */
export function attachCgroup(prog: BpfProgram, cgroupDir: string, opts: CgroupAttachOptions = {}): BpfLink {
  const raw = native(() => addon.attachCgroup(prog.raw, cgroupDir, opts.attachType));
  return new BpfLink(raw, `cgroup link ${cgroupDir}`);
}
