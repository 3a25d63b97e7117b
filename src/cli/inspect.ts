// cli/inspect: read-only views of a node's pinned maps: `weir counters`, `weir maps`.

import { MAP_ABI, parsePinName } from '../dataplane/map-abi.js';
import type { Command } from 'commander';
import { readCounters } from '../dataplane/counters.js';
import { outputOption, print, type OutputFormat } from './output.js';
import { openMap, pinnedMapNames, stateOptions, type StateOptions } from './state.js';

interface Common extends StateOptions {
  output: OutputFormat;
}

function common(cmd: Command): Command {
  return stateOptions(cmd).addOption(outputOption());
}

export function registerInspectCommands(program: Command): void {
  common(program.command('counters').description('dataplane packet and byte counters by hook and reason (summed over CPUs)')).action((o: Common) => {
    const map = openMap(o, 'weir_counters');
    try {
      const rows = readCounters(map).sort((a, b) => a.hook.localeCompare(b.hook) || a.reason.localeCompare(b.reason));
      print(o.output, rows, ['hook', 'reason', 'packets', 'bytes']);
    } finally {
      map.close();
    }
  });

  common(
    program
      .command('maps')
      .description(
        "every pinned map: its layout version (from the pin name: weir_ct4 is 1, weir_ct4_v2 is 2) and whether it is this release's, type, entries, capacity, fill",
      ),
  ).action((o: Common) => {
    const rows = pinnedMapNames(o).map((name) => {
      const map = openMap(o, name);
      try {
        const entries = map.type.includes('array') ? map.maxEntries : map.count();
        return {
          name,
          ...layoutOf(name),
          type: map.type,
          id: map.id,
          keySize: map.keySize,
          valueSize: map.valueSize,
          entries,
          capacity: map.maxEntries,
          fill: Number((entries / map.maxEntries).toFixed(4)),
        };
      } finally {
        map.close();
      }
    });
    print(o.output, rows);
  });
}

/**
 * A pin's layout version (map-abi.ts: the version is in the pin name) and how it stands to this
 * release: `current`, `older` (an earlier release's: the next start migrates it, docs/upgrade.md),
 * `newer` (a later release's: this one cannot read it), or `unknown` (not a map of the ABI table).
 */
export function layoutOf(name: string): { layout: number; abi: 'current' | 'older' | 'newer' | 'unknown' } {
  const { base, version } = parsePinName(name);
  const row = MAP_ABI.find((r) => r.base === base);
  if (!row) return { layout: version, abi: 'unknown' };
  return { layout: version, abi: version === row.version ? 'current' : version < row.version ? 'older' : 'newer' };
}
