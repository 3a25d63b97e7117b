// dataplane/attach: keeps the programs attached where they belong. from_pod at TC ingress
// and to_pod at TC egress of every workload interface (host side), from_host at TC ingress
// of every host interface, the four sock_lb programs on the cgroup. Every attachment is a
// link pinned under <pinDir>/links/, so a restarted daemon finds it and swaps in its newly
// loaded program with a link update (atomic: no packet meets no program). Pins of
// interfaces that are gone are removed. A failure on one interface (it vanished while we
// attached) is logged and counted, never fatal.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { attachCgroup, attachTc, BpfError, BpfLink, type BpfObject, type BpfProgram, type TcDirection } from '../bpf/index.js';
import type { Logger } from '../sources/log.js';
import type { ObjectName } from './loader.js';

export type TcHook = 'from_pod' | 'to_pod' | 'from_host';

const TC_HOOKS: Record<TcHook, { object: ObjectName; program: string; direction: TcDirection }> = {
  from_pod: { object: 'from_pod', program: 'weir_from_pod', direction: 'ingress' },
  to_pod: { object: 'to_pod', program: 'weir_to_pod', direction: 'egress' },
  from_host: { object: 'from_host', program: 'weir_from_host', direction: 'ingress' },
};

export const SOCK_PROGRAMS = {
  connect4: 'weir_sock_connect4',
  sendmsg4: 'weir_sock_sendmsg4',
  recvmsg4: 'weir_sock_recvmsg4',
  getpeername4: 'weir_sock_getpeername4',
} as const;

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
}

/** The pin name of a TC link: `tcx-<ifindex>-<hook>`. */
export function tcPinName(ifindex: number, hook: TcHook): string {
  return `tcx-${ifindex}-${hook}`;
}

export function parseTcPinName(name: string): { ifindex: number; hook: TcHook } | undefined {
  const m = /^tcx-(\d+)-(from_pod|to_pod|from_host)$/.exec(name);
  return m ? { ifindex: Number(m[1]), hook: m[2] as TcHook } : undefined;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class AttachManager {
  readonly stats: AttachStats = { attached: 0, updated: 0, removed: 0, errors: 0 };
  /** pin name -> the link this process holds (adopted or created) */
  private readonly links = new Map<string, BpfLink>();
  private readonly linkDir: string;

  constructor(
    pinDir: string,
    private readonly objects: Record<ObjectName, BpfObject>,
    private readonly log: Logger,
  ) {
    this.linkDir = join(pinDir, 'links');
  }

  /** TC links this process holds, by pin name. */
  attachedNames(): string[] {
    return [...this.links.keys()].sort();
  }

  private program(object: ObjectName, name: string): BpfProgram {
    return this.objects[object].program(name);
  }

  /**
   * Makes the TC attachments match: `workloads` get from_pod/to_pod, `hosts` from_host.
   * Existing pins are adopted (updated to this process's programs), missing ones created,
   * pins for interfaces not listed removed.
   */
  syncInterfaces(workloads: readonly InterfaceRef[], hosts: readonly InterfaceRef[]): void {
    const want = new Map<string, { iface: InterfaceRef; hook: TcHook }>();
    for (const w of workloads) {
      want.set(tcPinName(w.ifindex, 'from_pod'), { iface: w, hook: 'from_pod' });
      want.set(tcPinName(w.ifindex, 'to_pod'), { iface: w, hook: 'to_pod' });
    }
    for (const h of hosts) want.set(tcPinName(h.ifindex, 'from_host'), { iface: h, hook: 'from_host' });

    for (const [name, { iface, hook }] of want) {
      if (this.links.has(name)) continue;
      this.ensureTc(name, iface, hook);
    }
    const pinned = existsSync(this.linkDir) ? readdirSync(this.linkDir).filter((n) => parseTcPinName(n)) : [];
    // TC pins only: the cgroup links (cgroup-<hook>) are syncCgroup's
    for (const name of new Set([...pinned, ...[...this.links.keys()].filter((n) => parseTcPinName(n))])) {
      if (want.has(name)) continue;
      this.removeTc(name);
    }
  }

  private ensureTc(name: string, iface: InterfaceRef, hook: TcHook): void {
    const spec = TC_HOOKS[hook];
    const path = join(this.linkDir, name);
    const where = { ifname: iface.ifname, ifindex: iface.ifindex, hook };
    let prog: BpfProgram;
    try {
      prog = this.program(spec.object, spec.program);
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
        if (info.ifindex === iface.ifindex) {
          if (info.progId !== prog.id) link.update(prog);
          this.links.set(name, link);
          this.stats.updated++;
          this.log.debug('link adopted', { ...where, link: info.id });
          return;
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
      const att = attachTc(prog, iface.ifindex, spec.direction, { mode: 'tcx' });
      const link = att.link!;
      try {
        link.pin(path);
      } catch (e) {
        link.detach();
        link.close();
        throw e;
      }
      this.links.set(name, link);
      this.stats.attached++;
      this.log.info('attached', { ...where, direction: spec.direction });
    } catch (e) {
      this.stats.errors++;
      const code = e instanceof BpfError ? e.code : '';
      this.log.warn('attach failed', { ...where, code, error: errText(e) });
    }
  }

  private removeTc(name: string): void {
    const path = join(this.linkDir, name);
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
   * Socket LB: the four cgroup programs on `cgroupDir` (pins `cgroup-<hook>`), or, with
   * `cgroupDir` null (mode off), none: pinned ones from an earlier run are detached.
   */
  syncCgroup(cgroupDir: string | null): void {
    for (const [hook, progName] of Object.entries(SOCK_PROGRAMS)) {
      const name = `cgroup-${hook}`;
      const path = join(this.linkDir, name);
      if (cgroupDir === null) {
        if (existsSync(path)) this.removeTc(name);
        continue;
      }
      const where = { cgroup: cgroupDir, hook };
      try {
        const prog = this.program('sock_lb', progName);
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
          this.removeTc(name);
        }
        const link = attachCgroup(prog, cgroupDir);
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
