// dataplane/attach: keeps the programs attached where the hook table (hooks.ts) says:
// today from_pod at TC ingress and to_pod at TC egress of every workload interface (host
// side), from_host at TC ingress, to_host at TC egress and the XDP prefilter (native, else
// generic, per --xdp-mode; none is not fatal) on every host interface, the sock_lb programs on
// the cgroup. Every attachment is a link pinned under <pinDir>/links/ by the row's pin name, so a
// restarted daemon (or another release using the same names) finds it and swaps in its newly
// loaded program with a link update (atomic: no packet meets no program). Pins of interfaces
// that are gone are removed. A failure on one interface (it vanished while we attached) is
// logged and counted, never fatal.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { attachCgroup, attachTc, attachXdp, BpfError, BpfLink, type BpfObject, type BpfProgram } from '../bpf/index.js';
import { type Logger, errText } from '../log.js';
import {
  HOOKS,
  OBJECTS,
  isCgroupHook,
  isInterfaceHook,
  parsePinName,
  pinName,
  type Hook,
  type InterfaceClass,
  type InterfaceHook,
  type ObjectSpec,
} from './hooks.js';

export interface AttachStats {
  /** new links created */
  attached: number;
  /** pinned links adopted and moved to the new program */
  updated: number;
  /** links removed (interface gone, or no longer ours) */
  removed: number;
  /** failed attach/update/remove attempts (logged) */
  errors: number;
}

export interface InterfaceRef {
  ifindex: number;
  ifname: string;
  /** the XDP mode the netlink dump shows attached (an adopted XDP link's mode: the link does not tell) */
  xdp?: XdpAttachedMode;
}

export type XdpAttachedMode = 'native' | 'generic';
/** --xdp-mode: auto tries native, then generic; off attaches no XDP hook (and removes pinned ones) */
export type XdpMode = 'auto' | XdpAttachedMode | 'off';

/** The interfaces of each class; a class left out has none (its links are removed). */
export type InterfaceSets = Partial<Record<InterfaceClass, readonly InterfaceRef[]>>;

export class AttachManager {
  readonly stats: AttachStats = { attached: 0, updated: 0, removed: 0, errors: 0 };
  /** pin name -> the link this process holds (adopted or created) */
  private readonly links = new Map<string, BpfLink>();
  private readonly linkDir: string;
  /** --xdp-mode for the table's XDP rows */
  xdpMode: XdpMode = 'auto';
  /** ifindex -> the XDP hook's mode there ('unknown': adopted, and the dump did not say) */
  private readonly xdpModes = new Map<number, { ifname: string; mode: XdpAttachedMode | 'unknown' }>();
  /** XDP attaches that failed in every mode tried (the TC program then does the prefilter's work) */
  xdpFailures = 0;
  /** interfaces whose XDP attach failed: retried at each sync, warned about once */
  private readonly xdpRefused = new Set<number>();

  /** `objects`: the loaded objects by the names the rows use; `hooks`: the table (tests pass their own). */
  constructor(
    pinDir: string,
    private readonly objects: Readonly<Record<string, BpfObject>>,
    private readonly log: Logger,
    private readonly hooks: readonly Hook[] = HOOKS,
  ) {
    this.linkDir = join(pinDir, 'links');
  }

  /** Where an XDP hook is attached, and in which mode (for the host policy's iface flags, metrics and status). */
  xdpAttached(): ReadonlyMap<number, { ifname: string; mode: XdpAttachedMode | 'unknown' }> {
    return this.xdpModes;
  }

  /** Links this process holds, by pin name. */
  attachedNames(): string[] {
    return [...this.links.keys()].sort();
  }

  private program(hook: Hook): BpfProgram {
    const obj = this.objects[hook.object];
    if (!obj) throw new Error(`hook ${hook.name}: object ${hook.object} is not loaded`);
    return obj.program(hook.program);
  }

  /** The daemon's two interface classes: `workloads` (from_pod/to_pod) and `hosts` (from_host). */
  syncInterfaces(workloads: readonly InterfaceRef[], hosts: readonly InterfaceRef[]): void {
    this.syncInterfaceHooks({ workload: workloads, host: hosts });
  }

  /**
   * Makes the interface attachments (TC, XDP) match the table for these interfaces.
   * Existing pins are adopted (updated to this process's programs), missing ones created,
   * pins of interface hooks for interfaces not listed removed. Pin names no row of the table
   * parses (another release's hooks) are left alone.
   */
  syncInterfaceHooks(sets: InterfaceSets): void {
    const want = new Map<string, { iface: InterfaceRef; hook: InterfaceHook }>();
    for (const hook of this.hooks.filter(isInterfaceHook)) {
      if (hook.at.kind === 'xdp' && this.xdpMode === 'off') continue;
      // host policy's rows when its objects are not loaded (--host-policy off): not wanted, their pins removed
      if (!this.objects[hook.object] && (OBJECTS[hook.object] as ObjectSpec | undefined)?.hostPolicy) continue;
      for (const iface of sets[hook.at.interfaces] ?? []) want.set(pinName(hook, iface.ifindex), { iface, hook });
    }

    for (const [name, { iface, hook }] of want) {
      if (this.links.has(name) && !this.xdpModeChange(hook, iface.ifindex)) continue;
      this.ensureInterfaceLink(name, iface, hook);
    }
    const ours = (n: string) => {
      const p = parsePinName(n, this.hooks);
      return p !== undefined && isInterfaceHook(p.hook);
    };
    // interface pins only: the cgroup links are syncCgroup's
    const pinned = existsSync(this.linkDir) ? readdirSync(this.linkDir).filter(ours) : [];
    for (const name of new Set([...pinned, ...[...this.links.keys()].filter(ours)])) {
      if (want.has(name)) continue;
      this.removeLink(name);
    }
  }

  /** An XDP link held in another mode than --xdp-mode asks (native/generic): re-attached. */
  private xdpModeChange(hook: InterfaceHook, ifindex: number): boolean {
    if (hook.at.kind !== 'xdp' || this.xdpMode === 'auto' || this.xdpMode === 'off') return false;
    const held = this.xdpModes.get(ifindex)?.mode;
    return held !== undefined && held !== 'unknown' && held !== this.xdpMode;
  }

  private ensureInterfaceLink(name: string, iface: InterfaceRef, hook: InterfaceHook): void {
    const path = join(this.linkDir, name);
    const where = { ifname: iface.ifname, ifindex: iface.ifindex, hook: hook.name };
    let prog: BpfProgram;
    try {
      prog = this.program(hook);
    } catch (e) {
      this.stats.errors++;
      this.log.warn('attach failed', { ...where, error: errText(e) });
      return;
    }
    if (existsSync(path)) {
      let link: BpfLink | undefined;
      try {
        link = BpfLink.openPinned(path);
        const info = link.info();
        const held = this.links.get(name) === undefined ? iface.xdp : this.xdpModes.get(iface.ifindex)?.mode;
        const wrongMode = hook.at.kind === 'xdp' && (this.xdpMode === 'native' || this.xdpMode === 'generic') && held !== undefined && held !== this.xdpMode;
        if (info.ifindex === iface.ifindex && !wrongMode) {
          if (info.progId !== prog.id) link.update(prog);
          this.links.set(name, link);
          this.stats.updated++;
          if (hook.at.kind === 'xdp') this.xdpModes.set(iface.ifindex, { ifname: iface.ifname, mode: held ?? 'unknown' });
          this.log.debug('link adopted', { ...where, link: info.id });
          return;
        }
        if (wrongMode) {
          this.log.info('xdp mode changes: re-attaching', { ...where, from: held, to: this.xdpMode });
          this.links.get(name)?.close();
          this.links.delete(name);
          this.xdpModes.delete(iface.ifindex);
        }
        // a link whose interface is gone (ifindex 0), or a reused ifindex: start over
        this.log.debug('stale link pin removed', { ...where, linkIfindex: info.ifindex ?? 0 });
      } catch (e) {
        this.log.debug('pinned link unusable, re-attaching', { ...where, error: errText(e) });
      }
      try {
        link ??= BpfLink.openPinned(path);
        try {
          link.detach();
        } catch {
          /* already defunct */
        }
        link.unpin();
        link.close();
      } catch (e) {
        this.stats.errors++;
        this.log.warn('remove stale link pin failed', { ...where, error: errText(e) });
        return;
      }
    }
    try {
      let link: BpfLink;
      let how: Record<string, string>;
      if (hook.at.kind === 'tc') {
        link = attachTc(prog, iface.ifindex, hook.at.direction, { mode: 'tcx' }).link!;
        how = { direction: hook.at.direction };
      } else {
        let x;
        try {
          x = attachXdp(prog, iface.ifindex, { mode: this.xdpMode === 'native' || this.xdpMode === 'generic' ? this.xdpMode : 'auto' });
        } catch (e) {
          // not fatal: without the flag in weir_hep_ifaces the TC program walks the untracked rules itself
          this.xdpFailures++;
          const first = !this.xdpRefused.has(iface.ifindex);
          this.xdpRefused.add(iface.ifindex);
          this.log[first ? 'warn' : 'debug']('xdp attach failed: the TC program does the prefilter', { ...where, xdpMode: this.xdpMode, error: errText(e) });
          return;
        }
        link = x.link;
        how = { xdpMode: x.mode };
        this.xdpModes.set(iface.ifindex, { ifname: iface.ifname, mode: x.mode });
        this.xdpRefused.delete(iface.ifindex);
      }
      try {
        link.pin(path);
      } catch (e) {
        link.detach();
        link.close();
        throw e;
      }
      this.links.set(name, link);
      this.stats.attached++;
      this.log.info('attached', { ...where, ...how });
    } catch (e) {
      this.stats.errors++;
      const code = e instanceof BpfError ? e.code : '';
      this.log.warn('attach failed', { ...where, code, error: errText(e) });
    }
  }

  /** Detaches and unpins one link (held or pinned), whatever its hook. */
  private removeLink(name: string): void {
    const path = join(this.linkDir, name);
    const parsed = parsePinName(name, this.hooks);
    if (parsed?.hook.at.kind === 'xdp' && parsed.ifindex !== undefined) this.xdpModes.delete(parsed.ifindex);
    let link = this.links.get(name);
    this.links.delete(name);
    try {
      if (!link && existsSync(path)) link = BpfLink.openPinned(path);
      if (link) {
        try {
          link.detach();
        } catch {
          /* the interface is gone: the link is defunct already */
        }
        if (existsSync(path)) {
          try {
            link.unpin();
          } catch {
            BpfLink.openPinned(path).unpin();
          }
        }
        link.close();
      }
      this.stats.removed++;
      this.log.info('detached', { pin: name });
    } catch (e) {
      this.stats.errors++;
      this.log.warn('detach failed', { pin: name, error: errText(e) });
    }
  }

  /**
   * Socket LB: the table's cgroup hooks on `cgroupDir`, or, with `cgroupDir` null (mode
   * off), none: pinned ones from an earlier run are detached.
   */
  syncCgroup(cgroupDir: string | null): void {
    for (const hook of this.hooks.filter(isCgroupHook)) {
      const name = pinName(hook);
      const path = join(this.linkDir, name);
      if (cgroupDir === null) {
        if (existsSync(path)) this.removeLink(name);
        continue;
      }
      const where = { cgroup: cgroupDir, hook: hook.name };
      try {
        const prog = this.program(hook);
        const cgroupId = BigInt(statSync(cgroupDir, { bigint: true }).ino);
        if (existsSync(path)) {
          const link = BpfLink.openPinned(path);
          const info = link.info();
          if (info.cgroupId === cgroupId) {
            if (info.progId !== prog.id) link.update(prog);
            this.links.set(name, link);
            this.stats.updated++;
            this.log.debug('link adopted', { ...where, link: info.id });
            continue;
          }
          this.log.info('socket LB moves to another cgroup', { ...where, previousCgroupId: String(info.cgroupId) });
          this.links.set(name, link);
          this.removeLink(name);
        }
        const link = attachCgroup(prog, cgroupDir, { attachType: hook.at.attachType });
        link.pin(path);
        this.links.set(name, link);
        this.stats.attached++;
        this.log.info('attached', where);
      } catch (e) {
        this.stats.errors++;
        this.log.warn('attach failed', { ...where, error: errText(e) });
      }
    }
  }

  /** Closes this process's link fds; the pins keep every attachment in place. */
  close(): void {
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }
}
