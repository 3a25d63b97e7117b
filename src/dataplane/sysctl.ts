// dataplane/sysctl: the sysctls weir changes on a node, and the record of what they were
// before, so `weir uninstall` can put them back. The daemon calls setRecorded() instead of
// writing /proc/sys itself; the record is a small hash map pinned at
// <pinDir>/state/sysctl, next to the dataplane it belongs to:
// - it survives daemon restarts (and kill -9) exactly as long as the pins do, and a
//   restart finds weir's own value already recorded, so it never records that as "before";
// - it is per instance and per bpffs (two labs, or two instances on one node, never share
//   it), visible from every mount namespace that sees the pins (the CLI, a new pod), and
//   needs no extra hostPath in the DaemonSet (the bpffs one is there already);
// - uninstall removes it with the rest of the pin directory.
// It sits in a subdirectory (like links/) so that nothing treating <pinDir>/weir_* as the
// programs' maps (adoption, migration, `weir maps`) mistakes it for one.
//
// One entry per sysctl path (relative to /proc/sys, e.g. net/ipv4/conf/veth1/accept_local):
// the interface's ifindex (0 for a global sysctl), the value found before weir's first
// write, and the value weir wrote. Interface names are reused (a pod's veth comes back
// under the same name with another ifindex): an entry whose ifindex no longer matches is
// not weir's change to that interface and is replaced, or skipped on restore.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../bpf/index.js';
import { type Logger, errText } from '../log.js';

export const SYSCTL_MAP_NAME = 'weir_sysctl';
/** where the record is pinned, relative to the pin directory */
export const SYSCTL_PIN = join('state', 'sysctl');
const KEY_SIZE = 64;
const VALUE_LEN = 32;
/** ifindex u32, then the value before and the value weir set, NUL-padded strings */
const VALUE_SIZE = 4 + 2 * VALUE_LEN;
/** pod interfaces on one node, with room for churn (entries of vanished ones are pruned) */
const MAX_ENTRIES = 4096;

export interface SysctlRecord {
  /** relative to /proc/sys */
  path: string;
  /** 0: a global sysctl */
  ifindex: number;
  /** the value before weir's first write */
  before: string;
  /** the value weir wrote */
  set: string;
}

function encodeKey(path: string): Buffer {
  const b = Buffer.alloc(KEY_SIZE);
  if (Buffer.byteLength(path) >= KEY_SIZE) throw new Error(`sysctl path too long for the record: ${path}`);
  b.write(path);
  return b;
}

const cstr = (b: Buffer) => {
  const i = b.indexOf(0);
  return b.toString('utf8', 0, i < 0 ? b.length : i);
};

function encodeValue(r: Omit<SysctlRecord, 'path'>): Buffer {
  const b = Buffer.alloc(VALUE_SIZE);
  b.writeUInt32LE(r.ifindex, 0);
  if (Buffer.byteLength(r.before) >= VALUE_LEN || Buffer.byteLength(r.set) >= VALUE_LEN) throw new Error('sysctl value too long for the record');
  b.write(r.before, 4);
  b.write(r.set, 4 + VALUE_LEN);
  return b;
}

function decode(key: Buffer, value: Buffer): SysctlRecord {
  return { path: cstr(key), ifindex: value.readUInt32LE(0), before: cstr(value.subarray(4, 4 + VALUE_LEN)), set: cstr(value.subarray(4 + VALUE_LEN)) };
}

/** the per-interface sysctl path, relative to /proc/sys */
export function ifaceSysctl(ifname: string, name: string, family: 4 | 6 = 4): string {
  return `net/ipv${family}/conf/${ifname}/${name}`;
}

/** The interface name of a per-interface sysctl path, if it is one. */
export function ifnameOf(path: string): string | undefined {
  return /^net\/ipv[46]\/conf\/([^/]+)\/[^/]+$/.exec(path)?.[1];
}

function readRecordMap(map: BpfMap): SysctlRecord[] {
  return map.lookupBatch().map(([k, v]) => decode(k, v));
}

/** Every record of the instance (none when it was never created). */
export function readSysctlRecords(pinDir: string): SysctlRecord[] {
  const path = join(pinDir, SYSCTL_PIN);
  if (!existsSync(path)) return [];
  const map = BpfMap.openPinned(path);
  try {
    return readRecordMap(map);
  } finally {
    map.close();
  }
}

/** Writes sysctls for the daemon, recording each one's value before weir's first change. */
export class SysctlRecorder {
  private constructor(
    /** undefined: the record could not be opened; sysctls are still set, unrecorded */
    private readonly map: BpfMap | undefined,
    private readonly log: Logger,
    private readonly procSys: string,
  ) {}

  /** Opens the pinned record, or creates and pins it. Never throws: without a record, values are set unrecorded (warned). */
  static open(pinDir: string, log: Logger, procSys = '/proc/sys'): SysctlRecorder {
    const path = join(pinDir, SYSCTL_PIN);
    try {
      if (existsSync(path)) {
        const map = BpfMap.openPinned(path);
        const i = map.info();
        if (i.keySize !== KEY_SIZE || i.valueSize !== VALUE_SIZE) {
          map.close();
          throw new Error(`key/value size ${i.keySize}/${i.valueSize}, expected ${KEY_SIZE}/${VALUE_SIZE}`);
        }
        return new SysctlRecorder(map, log, procSys);
      }
      mkdirSync(join(pinDir, 'state'), { recursive: true });
      const map = BpfMap.create({
        typeId: 1 /* BPF_MAP_TYPE_HASH */,
        name: SYSCTL_MAP_NAME,
        keySize: KEY_SIZE,
        valueSize: VALUE_SIZE,
        maxEntries: MAX_ENTRIES,
      });
      map.pin(path);
      return new SysctlRecorder(map, log, procSys);
    } catch (e) {
      log.warn('sysctl record unavailable', { pin: path, error: errText(e), effect: 'sysctls are set without a record: weir uninstall cannot restore them' });
      return new SysctlRecorder(undefined, log, procSys);
    }
  }

  records(): SysctlRecord[] {
    return this.map ? readRecordMap(this.map) : [];
  }

  /**
   * Makes `path` hold `value`. Before the first change on this interface (ifindex) the value
   * found is recorded; a value already right is left alone and not recorded (nothing to
   * undo). Failures are logged (debug: an interface vanishing meanwhile is routine) and
   * returned as false, never thrown.
   */
  setRecorded(path: string, value: string, ifindex: number): boolean {
    const file = join(this.procSys, path);
    try {
      const key = encodeKey(path);
      const raw = this.map?.lookup(key);
      const rec = raw ? decode(key, raw) : undefined;
      const current = readFileSync(file, 'utf8').trim();
      // a record of an earlier interface of that name is not about this one
      const stale = rec !== undefined && rec.ifindex !== ifindex;
      if (current === value) {
        if (stale) this.map?.delete(key);
        return true;
      }
      // recorded for this very interface: weir set it before and something changed it
      // since; the "before" of the first change stays
      if (!rec || stale) {
        try {
          this.map?.update(key, encodeValue({ ifindex, before: current, set: value }));
        } catch (e) {
          // the dataplane needs the value more than uninstall needs the record (map full?)
          this.log.warn('sysctl change not recorded', { sysctl: path, before: current, error: errText(e) });
        }
      }
      writeFileSync(file, value);
      return true;
    } catch (e) {
      this.log.debug('sysctl not set', { sysctl: path, value, error: errText(e) });
      return false;
    }
  }

  /** Drops records of interfaces that are gone (their sysctls went with them). */
  prune(): number {
    let n = 0;
    try {
      for (const r of this.records()) {
        const ifname = ifnameOf(r.path);
        if (!ifname || existsSync(join(this.procSys, r.path))) continue;
        if (this.map?.delete(encodeKey(r.path))) n++;
      }
    } catch (e) {
      this.log.warn('sysctl record prune failed', { error: errText(e) });
    }
    return n;
  }

  close(): void {
    this.map?.close();
  }
}

/**
 * Replies of NodePort flows leave from_pod reverse-NATed to the node's own address, and the
 * stack drops a packet with a local source arriving on another interface unless that
 * interface accepts local sources. Set per workload interface, in the daemon's netns.
 */
export function allowLocalSource(rec: SysctlRecorder, iface: { ifname: string; ifindex: number }): boolean {
  return rec.setRecorded(ifaceSysctl(iface.ifname, 'accept_local'), '1', iface.ifindex);
}

export type RestoreOutcome = 'restored' | 'interface gone' | 'changed since' | 'failed';

export interface RestoreResult extends SysctlRecord {
  outcome: RestoreOutcome;
  /** the value found now */
  current?: string;
  error?: string;
}

/**
 * What restoring `r` would do (dryRun) or did: the value before goes back only when the
 * interface is the one weir changed (same ifindex) and the value is still weir's.
 */
export function restoreSysctl(r: SysctlRecord, ifindexOf: (ifname: string) => number | undefined, opts: { dryRun: boolean; procSys?: string }): RestoreResult {
  const file = join(opts.procSys ?? '/proc/sys', r.path);
  const ifname = ifnameOf(r.path);
  if (ifname !== undefined && (ifindexOf(ifname) !== r.ifindex || !existsSync(file))) return { ...r, outcome: 'interface gone' };
  let current: string;
  try {
    current = readFileSync(file, 'utf8').trim();
  } catch (e) {
    return { ...r, outcome: ifname !== undefined ? 'interface gone' : 'failed', error: errText(e) };
  }
  if (current !== r.set) return { ...r, current, outcome: 'changed since' };
  if (!opts.dryRun) {
    try {
      writeFileSync(file, r.before);
    } catch (e) {
      return { ...r, current, outcome: 'failed', error: errText(e) };
    }
  }
  return { ...r, current, outcome: 'restored' };
}
