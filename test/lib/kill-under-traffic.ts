// kill -9 of a weir daemon under traffic, the check both default-root lab tests make: a TC-path
// flow that spans the kill loses no line, and new connections succeed while no daemon runs
// (the pinned maps and links keep serving). The flow runs until stopped, so it spans the kill
// however slow the machine is.

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
