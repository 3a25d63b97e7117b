// Lab ownership and leftovers. Every lab writes /run/weir-lab/<id>/state.json naming its owner
// (pid + process start time, so a reused pid is not mistaken for the owner) before it creates
// anything. Every resource carries the id in its name: netns `wl<id>-*`, cgroup
// `<cgroup2>/weir-lab/<id>`, temp dirs and mounts `weir-lab-<id>-*`. A new lab removes
// whatever belongs to ids whose owner is gone (a run killed with SIGKILL cannot clean up).

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSync } from '../proc.js';
import { labCgroupParent, removeCgroupTree } from './cgroup.js';

export const LAB_RUN_DIR = '/run/weir-lab';
const NETNS_DIR = '/run/netns';
const ID_RE = '[a-z0-9]{5}';
/** a lab directory younger than this without a state file is still being created */
const CREATING_GRACE_MS = 30_000;

export interface LabState {
  id: string;
  name: string;
  pid: number;
  /** /proc/<pid>/stat start time (clock ticks since boot) */
  pidStart: string;
  createdAt: string;
  bpffs?: string;
}

export const netnsName = (id: string, name: string) => `wl${id}-${name}`;
export const labDir = (id: string) => join(LAB_RUN_DIR, id);

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name, which may contain spaces and parentheses
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function readState(id: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(join(labDir(id), 'state.json'), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function writeState(state: LabState): void {
  const file = join(labDir(state.id), 'state.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

/** Claim a fresh id: its directory is created exclusively, so two labs never share one. */
export function claimLabId(): string {
  mkdirSync(LAB_RUN_DIR, { recursive: true });
  for (;;) {
    const id = [...randomBytes(5)].map((b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');
    if (labNetns(id).length) continue;
    try {
      mkdirSync(labDir(id));
      return id;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

function isAlive(id: string): boolean {
  const state = readState(id);
  if (!state) {
    try {
      return Date.now() - statSync(labDir(id)).mtimeMs < CREATING_GRACE_MS;
    } catch {
      return false; // neither state nor directory: resources are orphans
    }
  }
  return processStartTime(state.pid) === state.pidStart;
}

export function labNetns(id: string): string[] {
  try {
    return readdirSync(NETNS_DIR).filter((n) => n.startsWith(`wl${id}-`));
  } catch {
    return [];
  }
}

function labMounts(id: string): string[] {
  const marker = `/weir-lab-${id}-`;
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.includes(marker));
}

/** Every lab id that has something on this machine. */
export function knownLabIds(): Set<string> {
  const ids = new Set<string>();
  const add = (names: string[], re: RegExp) => {
    for (const n of names) {
      const m = n.match(re);
      if (m) ids.add(m[1]!);
    }
  };
  const ls = (d: string | undefined) => {
    try {
      return d ? readdirSync(d) : [];
    } catch {
      return [];
    }
  };
  add(ls(LAB_RUN_DIR), new RegExp(`^(${ID_RE})$`));
  add(ls(NETNS_DIR), new RegExp(`^wl(${ID_RE})-`));
  add(ls(labCgroupParent()), new RegExp(`^(${ID_RE})$`));
  add(ls(tmpdir()), new RegExp(`^weir-lab-(${ID_RE})-`));
  add(
    readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? ''),
    new RegExp(`/weir-lab-(${ID_RE})-`),
  );
  return ids;
}

/** Kill every process in a netns and delete it. Synchronous (exit-hook safe). */
export function deleteNetns(name: string): void {
  const pids = runSync('ip', ['netns', 'pids', name]).stdout.split('\n').filter(Boolean).map(Number);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (existsSync(join(NETNS_DIR, name))) runSync('ip', ['netns', 'del', name]);
}

/**
 * Remove everything lab `id` may have left: processes in its namespaces, the namespaces,
 * its cgroup tree, its mounts and temp dirs, its run directory. Synchronous; returns problems.
 */
export function removeLabLeftovers(id: string): string[] {
  const problems: string[] = [];
  const cgParent = labCgroupParent();
  if (cgParent) problems.push(...removeCgroupTree(join(cgParent, id)));
  for (const ns of labNetns(id)) {
    deleteNetns(ns);
    if (existsSync(join(NETNS_DIR, ns))) problems.push(`netns ${ns} not deleted`);
  }
  for (const m of labMounts(id)) {
    const r = runSync('umount', ['-l', m]);
    if (r.code !== 0 && labMounts(id).includes(m)) problems.push(`umount ${m}: ${r.stderr.trim()}`);
  }
  for (const d of readdirSync(tmpdir())) if (d.startsWith(`weir-lab-${id}-`)) rmSync(join(tmpdir(), d), { recursive: true, force: true });
  rmSync(labDir(id), { recursive: true, force: true });
  return problems;
}

/** Remove the leftovers of every lab whose owner is dead; returns the ids swept. */
export function sweepDeadLabs(): string[] {
  const swept: string[] = [];
  for (const id of knownLabIds()) {
    if (isAlive(id)) continue;
    const problems = removeLabLeftovers(id);
    if (problems.length) console.error(`weir lab: leftovers of lab ${id} not fully removed:\n  ${problems.join('\n  ')}`);
    swept.push(id);
  }
  return swept;
}
