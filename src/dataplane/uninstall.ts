// dataplane/uninstall: removes what weir put on a node for one instance, in the order that
// ends weir's hold on traffic first, and says what it removed, item by item:
//   1. the sysctls weir changed, back to their value before weir (sysctl.ts keeps the
//      record; read before the pins go, since the record is one of them);
//   2. every pinned link under <pinDir>/links: detached (TCX on workload and host
//      interfaces, cgroup links of the socket LB) and unpinned;
//   3. every other pin (maps, the sysctl record) and the directories, then <root>/weir if
//      it is then empty;
//   4. weir's nft table (the conntrack keeper, ip and ip6), unless another weir instance
//      still has pins under the same root (the table is per network namespace).
// The caller checks that no daemon runs for the instance (instance-lock.ts). Dry run: the
// same list, nothing changed. Idempotent: what is already gone is not listed. Never throws
// past a missing pin directory: each failure is an item with its error.

import { execFile } from 'node:child_process';
import { existsSync, readdirSync, realpathSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { BpfLink, BpfMap, BpfProgram } from '../bpf/index.js';
import { CONNTRACK_KEEPER_TABLE } from './kube-proxy.js';
import { isBpffs, mountTypeOf } from './bpffs.js';
import { dumpLinks } from './netlink.js';
import { readSysctlRecords, restoreSysctl, type RestoreResult } from './sysctl.js';
import { errLine } from '../log.js';

const run = promisify(execFile);

export type ItemKind = 'sysctl' | 'link' | 'map' | 'program' | 'pin' | 'dir' | 'nft';
/** done (or, in a dry run, would be done); skipped: left alone on purpose; failed: see error */
export type ItemOutcome = 'done' | 'skipped' | 'failed';

export interface UninstallItem {
  kind: ItemKind;
  /** the pin path relative to the pin directory, the sysctl path, the nft table, the directory */
  name: string;
  /** what it is: `weir_from_pod on veth1 (ifindex 7) tcx_ingress`, `hash, 3 entries`, `0 (weir set 1)` */
  detail: string;
  outcome: ItemOutcome;
  /** why it was skipped, or the error */
  reason?: string;
}

export interface UninstallOptions {
  bpfRoot: string;
  instance: string;
  dryRun: boolean;
  /** /proc/sys (tests) */
  procSys?: string;
}

export interface UninstallResult {
  instance: string;
  pinDir: string;
  dryRun: boolean;
  items: UninstallItem[];
  failed: number;
}

export function instanceDir(bpfRoot: string, instance: string): string {
  // the daemon's own rule (loader.ts): no `/`, no `..` component, so nothing widens what is removed
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(instance)) throw new Error(`bad --instance ${JSON.stringify(instance)}: letters, digits, '-', '_', '.'`);
  return join(bpfRoot, 'weir', instance);
}

/**
 * Why `bpfRoot` cannot hold weir's pins, if it cannot. Checked before anything is removed: on
 * a wrong root (or a mount namespace that does not see the node's bpffs) uninstall would find
 * no pins, report nothing, and still delete the nft table the pinned dataplane may rely on.
 */
export function bpfRootProblem(bpfRoot: string): string | undefined {
  if (!bpfRoot) return '--bpf-root is empty';
  if (!existsSync(bpfRoot)) return `--bpf-root ${bpfRoot} does not exist`;
  // statfs, not realpath + /proc/mounts: realpath turns /proc/<pid>/root/sys/fs/bpf (the node's
  // bpffs seen from ip netns exec) back into our own hidden /sys/fs/bpf
  if (isBpffs(bpfRoot)) return undefined;
  const type = mountTypeOf(realpathSync(bpfRoot));
  if (type !== 'bpf') return `--bpf-root ${bpfRoot} is not a bpffs mount (it is on ${type ?? 'an unknown filesystem'}): weir's pins cannot be there`;
  return undefined;
}

function progName(id: number): string {
  try {
    const p = BpfProgram.fromId(id);
    try {
      return p.info().name;
    } finally {
      p.close();
    }
  } catch {
    return `prog ${id}`;
  }
}

/** Files under dir, deepest first (pins), then the directories, deepest first. */
function walk(dir: string): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  const visit = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) visit(p);
      else files.push(p);
    }
    dirs.push(d);
  };
  visit(dir);
  return { files, dirs };
}

async function sysctlItems(pinDir: string, o: UninstallOptions): Promise<UninstallItem[]> {
  let records;
  try {
    records = readSysctlRecords(pinDir);
  } catch (e) {
    return [{ kind: 'sysctl', name: 'state/sysctl', detail: 'the record of sysctl values before weir', outcome: 'failed', reason: errLine(e) }];
  }
  if (records.length === 0) return [];
  let links: Map<string, number>;
  try {
    links = new Map((await dumpLinks()).map((l) => [l.ifname, l.ifindex]));
  } catch (e) {
    // without the interfaces, no record can be matched to its interface: restore none
    const reason = `ip link: ${errLine(e)}`;
    return records.map((r) => ({ kind: 'sysctl', name: r.path, detail: `${r.before} (weir set ${r.set})`, outcome: 'failed', reason }));
  }
  return records.map((r) => {
    const res: RestoreResult = restoreSysctl(r, (n) => links.get(n), { dryRun: o.dryRun, ...(o.procSys ? { procSys: o.procSys } : {}) });
    const detail = `${r.before} (weir set ${r.set}${r.ifindex ? `, ifindex ${r.ifindex}` : ''})`;
    if (res.outcome === 'restored') return { kind: 'sysctl', name: r.path, detail, outcome: 'done' };
    if (res.outcome === 'failed') return { kind: 'sysctl', name: r.path, detail, outcome: 'failed', reason: res.error ?? 'failed' };
    const reason = res.outcome === 'changed since' ? `changed since weir set it (now ${res.current})` : res.outcome;
    return { kind: 'sysctl', name: r.path, detail, outcome: 'skipped', reason };
  });
}

function linkItem(pinDir: string, path: string, ifnames: Map<number, string>, dryRun: boolean): UninstallItem {
  const name = relative(pinDir, path);
  let link: BpfLink;
  try {
    link = BpfLink.openPinned(path);
  } catch (e) {
    return { kind: 'link', name, detail: 'unreadable pin', outcome: 'failed', reason: errLine(e) };
  }
  try {
    const i = link.info();
    const ifname = (n: number) => ifnames.get(n) ?? (n === 0 ? 'a deleted interface' : '?');
    const where = i.ifindex !== undefined ? `${ifname(i.ifindex)} (ifindex ${i.ifindex})` : i.cgroupId !== undefined ? `cgroup id ${i.cgroupId}` : i.type;
    const detail = `${progName(i.progId)} on ${where} ${i.attachType ?? i.type}`;
    if (dryRun) return { kind: 'link', name, detail, outcome: 'done' };
    try {
      link.detach();
    } catch {
      /* defunct already: its interface or cgroup is gone */
    }
    link.unpin();
    return { kind: 'link', name, detail, outcome: 'done' };
  } catch (e) {
    return { kind: 'link', name, detail: 'link', outcome: 'failed', reason: errLine(e) };
  } finally {
    link.close();
  }
}

/** A pin that is not a link: a map (described by type and entries), a program, or else. */
function pinItem(pinDir: string, path: string, dryRun: boolean): UninstallItem {
  const name = relative(pinDir, path);
  let kind: ItemKind = 'pin';
  let detail = 'pin';
  try {
    const m = BpfMap.openPinned(path);
    try {
      kind = 'map';
      const entries = m.type.includes('array') ? m.maxEntries : m.count();
      detail = `${m.type}, ${entries} entries`;
    } finally {
      m.close();
    }
  } catch {
    try {
      const p = BpfProgram.openPinned(path);
      kind = 'program';
      detail = p.info().name;
      p.close();
    } catch {
      /* neither: removed all the same */
    }
  }
  if (dryRun) return { kind, name, detail, outcome: 'done' };
  try {
    unlinkSync(path);
    return { kind, name, detail, outcome: 'done' };
  } catch (e) {
    return { kind, name, detail, outcome: 'failed', reason: errLine(e) };
  }
}

/** weir's nft tables in this network namespace: `ip weir-conntrack-keeper`, `ip6 ...`. */
export async function weirNftTables(): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('nft', ['-j', 'list', 'tables']));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []; // no nft: no table of ours either
    throw e;
  }
  const items = (JSON.parse(stdout || '{"nftables":[]}') as { nftables: Array<{ table?: { family: string; name: string } }> }).nftables;
  return items.flatMap((i) => (i.table && i.table.name === CONNTRACK_KEEPER_TABLE ? [`${i.table.family} ${i.table.name}`] : []));
}

async function nftItems(o: UninstallOptions): Promise<UninstallItem[]> {
  let tables: string[];
  try {
    tables = await weirNftTables();
  } catch (e) {
    return [{ kind: 'nft', name: `* ${CONNTRACK_KEEPER_TABLE}`, detail: 'nft list tables', outcome: 'failed', reason: errLine(e) }];
  }
  if (tables.length === 0) return [];
  const root = join(o.bpfRoot, 'weir');
  const others = existsSync(root) ? readdirSync(root).filter((n) => n !== o.instance) : [];
  const detail = 'conntrack keeper (kube-proxy takeover)';
  const reason = `other weir instances remain under ${root}: ${others.join(', ')}`;
  if (others.length) return tables.map((t) => ({ kind: 'nft', name: t, detail, outcome: 'skipped', reason }));
  const out: UninstallItem[] = [];
  for (const t of tables) {
    if (o.dryRun) {
      out.push({ kind: 'nft', name: t, detail, outcome: 'done' });
      continue;
    }
    try {
      await run('nft', ['delete', 'table', ...t.split(' ')]);
      out.push({ kind: 'nft', name: t, detail, outcome: 'done' });
    } catch (e) {
      out.push({ kind: 'nft', name: t, detail, outcome: 'failed', reason: errLine((e as { stderr?: string }).stderr || e) });
    }
  }
  return out;
}

/** Removes (or, dry run, lists) everything weir put on this node for the instance. */
export async function uninstall(o: UninstallOptions): Promise<UninstallResult> {
  const pinDir = instanceDir(o.bpfRoot, o.instance);
  const items: UninstallItem[] = [];
  if (existsSync(pinDir)) {
    items.push(...(await sysctlItems(pinDir, o)));
    const ifnames = new Map((await dumpLinks().catch(() => [])).map((l) => [l.ifindex, l.ifname]));
    const { files, dirs } = walk(pinDir);
    const linkDir = join(pinDir, 'links');
    for (const f of files.filter((p) => dirname(p) === linkDir)) items.push(linkItem(pinDir, f, ifnames, o.dryRun));
    for (const f of files.filter((p) => dirname(p) !== linkDir)) items.push(pinItem(pinDir, f, o.dryRun));
    const root = dirname(pinDir);
    for (const d of dirs) items.push(removeDir(d, d === pinDir ? d : relative(pinDir, d), o.dryRun));
    // <root>/weir, once no instance is left in it
    const rootEmpty = o.dryRun ? readdirSync(root).every((n) => n === o.instance) : existsSync(root) && readdirSync(root).length === 0;
    if (rootEmpty) items.push(removeDir(root, root, o.dryRun));
  }
  items.push(...(await nftItems(o)));
  return { instance: o.instance, pinDir, dryRun: o.dryRun, items, failed: items.filter((i) => i.outcome === 'failed').length };
}

function removeDir(path: string, name: string, dryRun: boolean): UninstallItem {
  if (dryRun) return { kind: 'dir', name, detail: 'directory', outcome: 'done' };
  try {
    rmdirSync(path);
    return { kind: 'dir', name, detail: 'directory', outcome: 'done' };
  } catch (e) {
    return { kind: 'dir', name, detail: 'directory', outcome: 'failed', reason: errLine(e) };
  }
}
