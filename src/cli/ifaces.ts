// cli/ifaces: which weir programs sit on which interface and hook, straight from the kernel
// (TCX link lists per interface and direction, with each program's name, id and tag), plus
// the pinned links a restarted daemon will adopt. Run it in the node's network namespace.

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BpfLink, BpfProgram, tcxPrograms, type TcDirection } from '../bpf/index.js';
import { outputOption, print, type OutputFormat } from './output.js';
import { pinDirOf, requireState, stateOptions, type StateOptions } from './state.js';

export interface IfaceRow {
  interface: string;
  ifindex: number;
  hook: string;
  program: string;
  id: number;
  tag: string;
  /** the pinned link holding it, when weir pinned one */
  pinned: string;
}

function programInfo(id: number): { name: string; tag: string } {
  try {
    const p = BpfProgram.fromId(id);
    try {
      const i = p.info();
      return { name: i.name, tag: i.tag };
    } finally {
      p.close();
    }
  } catch {
    return { name: '?', tag: '' };
  }
}

/** `ifindex/attach type` (e.g. `7/tcx_ingress`) -> pinned link names, from <pinDir>/links. */
function pinnedLinks(o: StateOptions): Map<string, string[]> {
  const dir = join(pinDirOf(o), 'links');
  const byProg = new Map<string, string[]>();
  if (!existsSync(dir)) return byProg;
  for (const name of readdirSync(dir).sort()) {
    try {
      const l = BpfLink.openPinned(join(dir, name));
      try {
        const info = l.info();
        const at = `${info.ifindex}/${info.attachType}`;
        byProg.set(at, [...(byProg.get(at) ?? []), name]);
      } finally {
        l.close();
      }
    } catch {
      /* not a link, or gone */
    }
  }
  return byProg;
}

export function ifaceRows(o: StateOptions & { all?: boolean }): IfaceRow[] {
  requireState(o); // the programs may be attached, but without the pins they are not this instance's
  const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifindex: number; ifname: string }>;
  const pins = pinnedLinks(o);
  const rows: IfaceRow[] = [];
  for (const l of links)
    for (const dir of ['ingress', 'egress'] as TcDirection[]) {
      let ids: number[];
      try {
        ids = tcxPrograms(l.ifindex, dir);
      } catch {
        continue; // interface vanished meanwhile
      }
      for (const id of ids) {
        const info = programInfo(id);
        if (!o.all && !info.name.startsWith('weir_')) continue;
        rows.push({
          interface: l.ifname,
          ifindex: l.ifindex,
          hook: `tc ${dir}`,
          program: info.name,
          id,
          tag: info.tag,
          pinned: (pins.get(`${l.ifindex}/tcx_${dir}`) ?? []).join(','),
        });
      }
    }
  return rows;
}

export function registerIfaceCommand(program: Command): void {
  stateOptions(program.command('ifaces'))
    .description("weir's programs attached to this network namespace's interfaces (TC ingress/egress), with program ids and tags")
    .option('--all', "include programs that are not weir's")
    .addOption(outputOption())
    .action((o: StateOptions & { all?: boolean; output: OutputFormat }) => print(o.output, ifaceRows(o)));
}
