// bench/overflow: a sync that overflows weir_frontend4 on real maps (loaded objects, private
// bpffs): N frontends (1 backend each) into a 1,024-entry frontend map, then one change. The
// figure is the longest the event loop was blocked (a 1 ms timer's largest gap) during each
// sync, and the sync's own time. With --write: bench/results/overflow.{md,json}.
//
//   node --enable-source-maps dist/bench/overflow.js [frontends=60000] [--write]

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataplane } from '../src/dataplane/loader.js';
import { Reconciler, type SyncResult } from '../src/dataplane/reconcile.js';
import { memoryLogger } from '../src/log.js';
import { mountPrivateBpffs } from '../test/lib/bpffs.js';
import { runCleanups } from '../test/lib/cleanup.js';
import { bulkFrontend, bulkFrontends } from '../test/lib/frontend-fixtures.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const N = Number(args[0] ?? 60_000);
const FRONTEND_MAP = 1024;

/** Runs `f`, returning its result, its wall time and the event loop's longest block meanwhile. */
async function measured(f: () => SyncResult | Promise<SyncResult>): Promise<{ r: SyncResult; ms: number; maxBlockMs: number }> {
  let last = performance.now();
  let maxBlockMs = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    maxBlockMs = Math.max(maxBlockMs, now - last);
    last = now;
  }, 1);
  const t0 = performance.now();
  last = t0;
  const r = await f();
  const ms = performance.now() - t0;
  // the gap up to the end counts too (a sync that never yields blocks for all of it)
  maxBlockMs = Math.max(maxBlockMs, performance.now() - last);
  clearInterval(tick);
  return { r, ms, maxBlockMs };
}

async function main(): Promise<void> {
  const fs = mountPrivateBpffs('bench-overflow');
  try {
    const dp = loadDataplane({ bpfRoot: fs.path, instance: 'b', sockLbMode: 'off', mapSizes: { frontend: FRONTEND_MAP } });
    const log = memoryLogger();
    const rec = new Reconciler(dp.maps, log);
    // syncAsync where the reconciler has it (this release), sync otherwise (an earlier one)
    const run = (): SyncResult | Promise<SyncResult> => {
      const a = (rec as { syncAsync?: () => Promise<SyncResult> }).syncAsync;
      return a ? a.call(rec) : rec.sync();
    };
    rec.setAll(bulkFrontends(N, 1));
    const first = await measured(run);
    rec.update([bulkFrontend(N, 1)], []);
    const change = await measured(run);
    dp.close();
    const r0 = (x: number) => Math.round(x);
    const result = {
      frontends: N,
      frontendMap: FRONTEND_MAP,
      first: { ms: r0(first.ms), maxBlockMs: r0(first.maxBlockMs), errors: first.r.errors },
      change: { ms: r0(change.ms), maxBlockMs: r0(change.maxBlockMs), errors: change.r.errors },
      logLines: log.lines.length,
    };
    console.log(JSON.stringify(result));
    if (process.argv.includes('--write')) {
      writeFileSync(join('bench', 'results', 'overflow.json'), JSON.stringify(result, null, 2) + '\n');
      writeFileSync(
        join('bench', 'results', 'overflow.md'),
        [
          '# Frontend map overflow (bench/overflow.ts)',
          '',
          `${N} frontends (1 backend each) into a ${FRONTEND_MAP}-entry weir_frontend4 (real maps), then one service added.`,
          'Longest event-loop block during each sync (a 1 ms timer). 2-core machine shared with other work.',
          '',
          '| sync | time | longest block | errors | log lines |',
          '|---|---:|---:|---:|---:|',
          `| first (overflowing) | ${result.first.ms} ms | ${result.first.maxBlockMs} ms | ${result.first.errors} | ${result.logLines} (both) |`,
          `| one service added | ${result.change.ms} ms | ${result.change.maxBlockMs} ms | ${result.change.errors} | |`,
          '',
        ].join('\n'),
      );
    }
  } finally {
    await fs.cleanup();
    await runCleanups();
  }
}

await main();
