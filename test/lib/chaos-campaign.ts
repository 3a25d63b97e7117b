// test/lib/chaos-campaign: the faults of the chaos campaign, in order, under chaos-load.ts's load
// on chaos-lab.ts's cluster; bench/chaos.ts (`make chaos`, 100 rounds) and test/lab/chaos.test.ts
// (a few) run it and read its figures. Faults: (1) weir on every node killed with kill -9 and
// restarted, round after round; (2) weir stopped (SIGTERM) on every node while endpoints and
// policies change, then restarted, and both nodes' maps compared with the API server's state;
// (3) the API server restarting (every watch reset, its history gone: clients relist) or dropping
// every watch abruptly, a change made at once, and the time until both nodes' maps show it.

import { percentile, mapsView, serverView } from '../lab/kube-lab.js';
import { killAllAndRestart, type RestartFigure } from './kill-under-traffic.js';
import { CANARY_IP, type ChaosLab, type ChaosState } from './chaos-lab.js';
import { startLoad, type LoadOptions, type PathFigures, type StreamFigures } from './chaos-load.js';
import { policyView, withPolicyMaps } from '../../src/cli/policy.js';
import type { WeirNode } from './weir-node.js';

export interface ChaosOptions extends LoadOptions {
  /** kill -9 rounds (every node each round) */
  rounds: number;
  /** stop / change / restart rounds */
  stoppedRounds: number;
  /** API server faults (restart and abrupt watch drop, alternately) */
  apiFaults: number;
  /** after each restart, traffic meets the new daemons this long before the next kill (default 500) */
  dwellMs?: number;
  /** a progress line now and then (default: none) */
  log?: (line: string) => void;
}

export interface Spread {
  n: number;
  median: number;
  p99: number;
  max: number;
}

export interface ChaosFigures {
  startedAt: string;
  durationS: number;
  options: Omit<ChaosOptions, 'log'>;
  /** kill -9 rounds: one figure per node per round */
  restarts: RestartFigure[];
  readyMs: Spread;
  /** stopped rounds: each restart, then how long after both were ready the service maps and the
   *  policy (`weir policy`) of both nodes matched the API server */
  stopped: { restarts: RestartFigure[]; mapsMs: number; policyMs: number }[];
  /** API faults: which, and how long after it the change made at once was in both nodes' maps */
  api: { fault: 'restart' | 'drop-watches'; convergeMs: number }[];
  paths: PathFigures[];
  streams: StreamFigures[];
  totals: { connections: number; failed: number; violations: number; slow: number; streamLinesLost: number; maxStreamGapMs: number };
}

export const spread = (xs: number[]): Spread =>
  xs.length === 0 ? { n: 0, median: 0, p99: 0, max: 0 } : { n: xs.length, median: percentile(xs, 50), p99: percentile(xs, 99), max: Math.max(...xs) };

/** The ClusterIP frontends (198.19.0.0/16) of a node's maps: NodePort frontends are per node. */
const clusterIpView = (w: WeirNode) => Object.fromEntries(Object.entries(mapsView(w.pinDir)).filter(([k]) => k.startsWith('198.19.')));

/** Every local app=web endpoint of `w` is selected for ingress by exactly the policy `name`
 *  (what `weir policy` shows, read from the node's pins in this process: a CLI run per poll
 *  takes seconds on a busy machine and would blur the time measured). */
function policiesAre(w: WeirNode, c: ChaosLab, name: string): boolean {
  const web = new Set([c.pods.be1.ip, c.pods.be2.ip, c.pods.be3.ip]);
  const v = withPolicyMaps({ pinDir: w.pinDir }, (m) => policyView(m));
  const eps = v.endpoints.filter((e) => web.has(e.address));
  return eps.length > 0 && eps.every((e) => e.ingress.policies.join() === `default/${name}`);
}

/** Waits until both nodes' ClusterIP maps equal the API server's state, and `extra` holds;
 *  returns when each first held, ms from the call. */
async function converge(c: ChaosLab, what: string, extra: () => boolean = () => true, timeoutMs = 60_000): Promise<{ mapsMs: number; extraMs: number }> {
  const t0 = Date.now();
  let mapsMs: number | undefined;
  let extraMs: number | undefined;
  for (;;) {
    const want = JSON.stringify(await serverView(c.server));
    const got = c.weirs.map((w) => JSON.stringify(clusterIpView(w)));
    if (mapsMs === undefined && got.every((g) => g === want)) mapsMs = Date.now() - t0;
    if (extraMs === undefined && extra()) extraMs = Date.now() - t0;
    if (mapsMs !== undefined && extraMs !== undefined) return { mapsMs, extraMs };
    if (Date.now() - t0 > timeoutMs)
      throw new Error(
        `${what}: not converged within ${timeoutMs} ms (maps ${mapsMs ?? 'differ'}, policy ${extraMs ?? 'differs'}):\nwant ${want}\n${got.join('\n')}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function runChaos(c: ChaosLab, opts: ChaosOptions): Promise<ChaosFigures> {
  const log = opts.log ?? (() => undefined);
  const t0 = Date.now();
  const load = startLoad(c, opts);
  await load.warm();
  log(`load flowing: ${load.progress()}`);
  const dwell = () => new Promise((r) => setTimeout(r, opts.dwellMs ?? 500));

  const restarts: RestartFigure[] = [];
  for (let i = 1; i <= opts.rounds; i++) {
    // a dead time of 0-400 ms, so that some connections start with no daemon at all
    restarts.push(...(await killAllAndRestart(c.weirs, (i % 5) * 100)));
    await dwell();
    if (i % 10 === 0 || i === opts.rounds) log(`kill -9 round ${i}/${opts.rounds}: ${load.progress()}`);
  }

  const stopped: ChaosFigures['stopped'] = [];
  for (let i = 1; i <= opts.stoppedRounds; i++) {
    for (const w of c.weirs) {
      const exit = await w.terminate();
      if (exit.code !== 0) throw new Error(`weir on ${w.node.name} stopped with ${JSON.stringify(exit)}`);
    }
    const next: ChaosState = { ...c.state, be3InWeb: !c.state.be3InWeb, policyName: c.state.policyName === 'web-ingress' ? 'web-ingress-v2' : 'web-ingress' };
    await c.change(next);
    await new Promise((r) => setTimeout(r, 1000)); // traffic meets the old state with no daemon
    const r = await killAllAndRestart(c.weirs);
    const { mapsMs, extraMs } = await converge(c, `stopped round ${i}`, () => c.weirs.every((w) => policiesAre(w, c, next.policyName)));
    stopped.push({ restarts: r, mapsMs, policyMs: extraMs });
    log(
      `stopped round ${i}/${opts.stoppedRounds}: be3 ${next.be3InWeb ? 'in' : 'out of'} web, policy ${next.policyName}; ready ${r.map((x) => x.readyMs).join('/')} ms, ` +
        `then maps matched the API at ${mapsMs} ms, the policy at ${extraMs} ms`,
    );
    await dwell();
  }

  const api: ChaosFigures['api'] = [];
  for (let i = 1; i <= opts.apiFaults; i++) {
    const fault = i % 2 === 1 ? 'restart' : 'drop-watches';
    const f0 = Date.now();
    if (fault === 'restart') await c.server.restart();
    else await c.server.dropWatches('abrupt');
    const next = { ...c.state, canaryBackend: `198.19.128.${(i % 250) + 1}` };
    await c.change(next);
    const want = `${next.canaryBackend}:8080`;
    await converge(c, `API ${fault} ${i}`, () => c.weirs.every((w) => clusterIpView(w)[`${CANARY_IP}:80/6`]?.join() === want));
    api.push({ fault, convergeMs: Date.now() - f0 });
    log(`API fault ${i}/${opts.apiFaults} (${fault}): both nodes had the change ${Date.now() - f0} ms later`);
    await dwell();
  }

  const { paths, streams } = await load.stop();
  const sum = (f: (p: PathFigures) => number) => paths.reduce((n, p) => n + f(p), 0);
  const { log: _log, ...options } = opts;
  return {
    startedAt: new Date(t0).toISOString(),
    durationS: Math.round((Date.now() - t0) / 100) / 10,
    options,
    restarts,
    readyMs: spread(restarts.map((r) => r.readyMs)),
    stopped,
    api,
    paths,
    streams,
    totals: {
      connections: sum((p) => p.attempts),
      failed: sum((p) => p.failed),
      violations: sum((p) => p.violations),
      slow: sum((p) => p.slow),
      streamLinesLost: streams.reduce((n, s) => n + (s.sent - s.received), 0),
      maxStreamGapMs: Math.max(0, ...streams.map((s) => s.maxGapMs)),
    },
  };
}
