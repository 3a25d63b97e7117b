// dataplane/live-knobs: a `.rodata` knob (hooks.ts) as the loaded programs hold it, read back
// from the kernel: the programs on the pinned links, their BTF (where the variable sits in the
// section) and their .rodata map. `weir explain` takes the Maglev table size from here, the
// value the programs index weir_maglev4 with, whatever the daemon's flags were.

import { existsSync, readdirSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { Btf, BpfLink, BpfMap, BpfProgram } from '../bpf/index.js';

/** Ids of the programs on the links pinned under `pinDir`/links (defunct links skipped). */
export function linkedProgramIds(pinDir: string): number[] {
  const dir = join(pinDir, 'links');
  if (!existsSync(dir)) return [];
  const ids = new Set<number>();
  for (const name of readdirSync(dir).sort()) {
    try {
      const link = BpfLink.openPinned(join(dir, name));
      const id = link.info().progId;
      link.close();
      if (id) ids.add(id);
    } catch {
      /* a defunct link: no program */
    }
  }
  return [...ids];
}

/**
 * The value of the u32 `.rodata` variable `name` in the first of the programs `progIds` that
 * declares it, or undefined (no such program, variable or readable map).
 */
export function rodataU32(progIds: readonly number[], name: string): number | undefined {
  for (const id of progIds) {
    let prog: BpfProgram | undefined;
    try {
      prog = BpfProgram.fromId(id);
      const info = prog.info();
      if (!info.btfId) continue;
      const btf = Btf.fromKernelId(info.btfId);
      if (btf.find('.rodata', 'datasec') === null) continue;
      const v = btf.datasec('.rodata').find((x) => x.name === name);
      if (!v || v.size !== 4) continue;
      for (const mapId of info.mapIds) {
        const map = BpfMap.fromId(mapId);
        try {
          // libbpf names the internal map `<object prefix>.rodata`
          if (!map.name.endsWith('.rodata') || map.type !== 'array') continue;
          const value = map.lookup(Buffer.alloc(4));
          if (value && value.length >= v.offset + 4) return endianness() === 'LE' ? value.readUInt32LE(v.offset) : value.readUInt32BE(v.offset);
        } finally {
          map.close();
        }
      }
    } catch {
      /* a program gone meanwhile, or BTF not readable: try the next */
    } finally {
      prog?.close();
    }
  }
  return undefined;
}
