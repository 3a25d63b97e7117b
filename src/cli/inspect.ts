// cli/inspect: read-only views of a node's pinned maps: `weir counters`, `weir maps`.

import type { Command } from 'commander';
import { readCounters } from '../dataplane/counters.js';
import { parseFormat, print, type OutputFormat } from './output.js';
import { openMap, pinnedMapNames, stateOptions, type StateOptions } from './state.js';

interface Common extends StateOptions {
  output: OutputFormat;
}

function common(cmd: Command): Command {
  return stateOptions(cmd).option('-o, --output <format>', 'table or json', parseFormat, 'table' as OutputFormat);
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

  common(program.command('maps').description('every pinned map: type, entries, capacity, fill')).action((o: Common) => {
    const rows = pinnedMapNames(o).map((name) => {
      const map = openMap(o, name);
      try {
        const entries = map.type.includes('array') ? map.maxEntries : map.count();
        return {
          name,
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
