// kill -9 of a weir daemon under traffic, the check both default-root lab tests make: a TC-path
// flow that spans the kill loses no line, and new connections succeed while no daemon runs
// (the pinned maps and links keep serving). The flow runs until stopped, so it spans the kill
// however slow the machine is. killAllAndRestart: the chaos campaign's round (every node's
// daemon at once, restarted, each one's time to ready).

import assert from 'node:assert/strict';
import type { Netns } from './lab/netns.js';
import type { ManagedProcess } from './proc.js';
import type { FlowResult, SpreadResult } from './svc-client.js';
import type { WeirNode } from './weir-node.js';

export async function killUnderTraffic(
  weir: WeirNode,
  daemon: ManagedProcess,
  ns: Netns,
  vip: string,
  port: number,
  newConnections = 40,
): Promise<{ flow: FlowResult; whileDead: SpreadResult }> {
  const flow = weir.flow(ns, vip, port, { seconds: 0, interval: 20 });
  await flow.waitReplies(10, 10_000);
  daemon.signalGroup('SIGKILL');
  await daemon.exited;
  const whileDead = await weir.spread(ns, vip, port, { count: newConnections });
  assert.equal(whileDead.failures, 0, `new connections with no daemon: ${whileDead.errors.join('; ')}`);
  await flow.waitReplies(flow.replies() + 10, 10_000);
  const f = await flow.stop();
  assert.equal(f.error, undefined);
  assert.equal(f.received, f.sent, 'every line of the flow across the kill came back');
  return { flow: f, whileDead };
}

/** One node's restart in a killAllAndRestart round. */
export interface RestartFigure {
  node: string;
  /** from the new process's spawn to its `event=ready` line as the test saw it, ms */
  readyMs: number;
  /** the daemon's own `ms` of its ready line (from its start of work) */
  daemonMs: number;
  /** map writes the start made (`writes` of the ready line): 0 when nothing changed meanwhile */
  writes: number;
}

/** kill -9 of every daemon at once, `deadMs` with none running (the pins serve meanwhile),
 *  then all started again; resolves when each logged `event=ready`. */
export async function killAllAndRestart(weirs: readonly WeirNode[], deadMs = 0, readyTimeoutMs = 30_000): Promise<RestartFigure[]> {
  await Promise.all(weirs.map((w) => w.kill9()));
  if (deadMs > 0) await new Promise((r) => setTimeout(r, deadMs));
  return Promise.all(
    weirs.map(async (w) => {
      const t0 = Date.now();
      const ready = await w.start(readyTimeoutMs);
      return { node: w.node.name, readyMs: Date.now() - t0, daemonMs: Number(ready.ms ?? NaN), writes: Number(ready.writes ?? NaN) };
    }),
  );
}
