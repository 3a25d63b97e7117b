// bench/adopt: what a restart costs the reconciler. Real maps (the loaded objects, pinned in a
// private bpffs) hold N frontends with M backends each, written as a previous daemon would;
// a new Reconciler adopts them (Reconciler.adopt: dump, mirror, ids) and then syncs the same
// desired state (0 writes expected). Several rounds, min and median printed; a JSON line and
// bench/results/adopt.md with --write.
//
//   node --enable-source-maps dist/bench/adopt.js [frontends=60000] [backends per frontend=10] [rounds=3] [--write]
//   WEIR_BENCH_PROFILE=adopt.cpuprofile: a CPU profile of the first adoption

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { loadDataplane } from '../src/dataplane/loader.js';
import { Reconciler } from '../src/dataplane/reconcile.js';
import { memoryLogger } from '../src/log.js';
import { mountPrivateBpffs } from '../test/lib/bpffs.js';
import { runCleanups } from '../test/lib/cleanup.js';
import { bulkFrontends } from '../test/lib/frontend-fixtures.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const write = process.argv.includes('--write');
const N = Number(args[0] ?? 60_000);
const M = Number(args[1] ?? 10);
const ROUNDS = Number(args[2] ?? 3);

/** A CPU profile of what runs until the returned function is called, written to `path`
 *  (node --cpu-prof would also sample the verifier's load: EAGAIN). */
async function profile(path: string): Promise<() => Promise<void>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile: p } = await session.post('Profiler.stop');
    writeFileSync(path, JSON.stringify(p));
    session.disconnect();
  };
}

async function main(): Promise<void> {
  const fs = mountPrivateBpffs('bench-adopt');
  try {
    const mapSizes = { frontend: Math.max(131_072, 2 * N), backend: Math.max(1_048_576, 2 * N * M) };
    const load = () => loadDataplane({ bpfRoot: fs.path, instance: 'b', sockLbMode: 'off', mapSizes });
    const frontends = bulkFrontends(N, M);
    let dp = load();
    const first = new Reconciler(dp.maps, memoryLogger());
    first.setAll(frontends);
    const w = first.sync();
    console.error(`# written: ${w.writes} entries in ${w.ms} ms (errors ${w.errors})`);
    dp.close();
    const adoptMs: number[] = [];
    // CPU time (user + system) as well as wall time: on a shared 2-core machine the wall
    // time mostly says how busy the others were
    const adoptCpuMs: number[] = [];
    const syncMs: number[] = [];
    let adopted = { frontends: 0, backends: 0 };
    let resyncWrites = 0;
    for (let r = 0; r < ROUNDS; r++) {
      dp = load();
      const rec = new Reconciler(dp.maps, memoryLogger());
      const stopProfile = process.env.WEIR_BENCH_PROFILE && r === 0 ? await profile(process.env.WEIR_BENCH_PROFILE) : undefined;
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      adopted = rec.adopt();
      adoptMs.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      adoptCpuMs.push((c.user + c.system) / 1000);
      await stopProfile?.();
      rec.setAll(frontends);
      const s = rec.sync();
      syncMs.push(s.ms);
      resyncWrites += s.writes;
      dp.close();
    }
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    const r1 = (x: number) => Math.round(x);
    const result = {
      frontends: adopted.frontends,
      backends: adopted.backends,
      rounds: ROUNDS,
      adoptMinMs: r1(Math.min(...adoptMs)),
      adoptMedianMs: r1(med(adoptMs)),
      adoptMaxMs: r1(Math.max(...adoptMs)),
      adoptCpuMinMs: r1(Math.min(...adoptCpuMs)),
      adoptCpuMedianMs: r1(med(adoptCpuMs)),
      syncAfterAdoptMedianMs: r1(med(syncMs)),
      writesAfterAdopt: resyncWrites,
    };
    console.log(JSON.stringify(result));
    if (write) {
      const md = [
        '# Restart adoption (bench/adopt.ts)',
        '',
        `${result.frontends} frontends and ${result.backends} backends pinned (real maps, private bpffs); a new Reconciler`,
        'adopts them (dump, mirror, ids), then syncs the same desired state. 2-core lab machine shared with other work:',
        'the quietest of several runs.',
        '',
        '| rounds | adopt min | adopt median | adopt max | adopt CPU min | adopt CPU median | sync after adopt (median) | writes after adopt |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|',
        `| ${ROUNDS} | ${result.adoptMinMs} ms | ${result.adoptMedianMs} ms | ${result.adoptMaxMs} ms | ${result.adoptCpuMinMs} ms | ${result.adoptCpuMedianMs} ms | ${result.syncAfterAdoptMedianMs} ms | ${result.writesAfterAdopt} |`,
        '',
      ].join('\n');
      writeFileSync(join('bench', 'results', 'adopt.md'), md);
      writeFileSync(join('bench', 'results', 'adopt.json'), JSON.stringify(result, null, 2) + '\n');
    }
  } finally {
    await fs.cleanup();
    await runCleanups();
  }
}

await main();
