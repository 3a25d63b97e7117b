// test/lib/chaos-load: the continuous load of the chaos campaign (chaos-lab.ts's cluster): a new
// TCP connection every few ms on each path (test/lib/prober.ts) and long-lived streams
// (svc-client flows), all running for the whole campaign, then reduced to its figures: failed
// connections on the allowed paths, connections that got through on the denied ones (policy
// violations), and each stream's lost lines and longest gap between replies.

import type { Cgroup } from './lab/cgroup.js';
import type { Netns } from './lab/netns.js';
import { probe, type Attempt, type Prober } from './prober.js';
import type { Flow } from './weir-node.js';
import { BACKEND_PORT, NODEPORT_A, NODEPORT_B, WEB_IP, type ChaosLab, type ExternalPath } from './chaos-lab.js';

/** A place connections come from and go to; `deny`: the policy must stop every one of them. */
export interface ChaosPath {
  name: string;
  ns: Netns;
  cgroup?: Cgroup;
  host: string;
  port: number;
  expect: 'allow' | 'deny';
}

export interface PathFigures {
  name: string;
  expect: 'allow' | 'deny';
  attempts: number;
  /** allowed paths: attempts with no echo reply within the timeout */
  failed: number;
  /** denied paths: attempts that got an echo reply */
  violations: number;
  /** allowed attempts answered after more than 1 s (a SYN the kernel had to send again) */
  slow: number;
  /** the slowest answered attempt, ms */
  maxMs: number;
  /** the first failures or violations: ISO time and detail */
  examples: string[];
}

export interface StreamFigures {
  name: string;
  sent: number;
  received: number;
  /** the longest time without a reply while sending, ms (the flow's own figure, or the time
   *  from its last reply to the stop when that is longer) */
  maxGapMs: number;
  error?: string;
}

/** The paths of the campaign: ClusterIP (socket LB) from a pod on each node, NodePorts local and
 *  forwarded in both modes from the external clients (one per frontend), an allowed pod pair across nodes, and the
 *  intruder's denied pairs (same node, other node, through the ClusterIP). */
export function chaosPaths(c: ChaosLab): ChaosPath[] {
  const [n1, n2] = c.nodes;
  const [w1, w2] = c.weirs;
  const ext = (p: ExternalPath) => ({ ns: c.clients[p].ns, ...(c.clients[p].cgroup ? { cgroup: c.clients[p].cgroup } : {}) });
  const { be1, be2, cl1, cl2, intruder } = c.pods;
  return [
    { name: 'clusterip from node1 pod', ns: cl1.ns, cgroup: w1.cgroup, host: WEB_IP, port: 80, expect: 'allow' },
    { name: 'clusterip from node2 pod', ns: cl2.ns, cgroup: w2.cgroup, host: WEB_IP, port: 80, expect: 'allow' },
    { name: 'nodeport node1 local', ...ext('node1-local'), host: n1.address, port: NODEPORT_A, expect: 'allow' },
    { name: 'nodeport node2 local', ...ext('node2-local'), host: n2.address, port: NODEPORT_B, expect: 'allow' },
    { name: 'nodeport node1->node2 tunnel', ...ext('node1-tunnel'), host: n1.address, port: NODEPORT_B, expect: 'allow' },
    { name: 'nodeport node2->node1 dsr', ...ext('node2-dsr'), host: n2.address, port: NODEPORT_A, expect: 'allow' },
    { name: 'pod cl2->be1 across nodes', ns: cl2.ns, cgroup: w2.cgroup, host: be1.ip, port: BACKEND_PORT, expect: 'allow' },
    { name: 'denied intruder->be1 same node', ns: intruder.ns, cgroup: w1.cgroup, host: be1.ip, port: BACKEND_PORT, expect: 'deny' },
    { name: 'denied intruder->be2 across nodes', ns: intruder.ns, cgroup: w1.cgroup, host: be2.ip, port: BACKEND_PORT, expect: 'deny' },
    { name: 'denied intruder->clusterip', ns: intruder.ns, cgroup: w1.cgroup, host: WEB_IP, port: 80, expect: 'deny' },
  ];
}

/** The long-lived streams: a ClusterIP connection from a pod, and each NodePort kind. */
export function chaosStreams(c: ChaosLab): ChaosPath[] {
  const [n1, n2] = c.nodes;
  const ext = (p: ExternalPath) => ({ ns: c.clients[p].ns, ...(c.clients[p].cgroup ? { cgroup: c.clients[p].cgroup } : {}) });
  return [
    { name: 'stream clusterip from node1 pod', ns: c.pods.cl1.ns, cgroup: c.weirs[0].cgroup, host: WEB_IP, port: 80, expect: 'allow' },
    { name: 'stream nodeport node1 local', ...ext('node1-local'), host: n1.address, port: NODEPORT_A, expect: 'allow' },
    { name: 'stream nodeport node1->node2 tunnel', ...ext('node1-tunnel'), host: n1.address, port: NODEPORT_B, expect: 'allow' },
    { name: 'stream nodeport node2->node1 dsr', ...ext('node2-dsr'), host: n2.address, port: NODEPORT_A, expect: 'allow' },
  ];
}

export interface LoadOptions {
  /** a new connection on each path every this many ms (default 100) */
  everyMs?: number;
  /** an allowed attempt fails after this long (default 3000: one SYN retransmission fits) */
  allowTimeoutMs?: number;
  /** a denied attempt is judged after this long (default 1000) */
  denyTimeoutMs?: number;
  /** a line on each stream every this many ms (default 20) */
  streamIntervalMs?: number;
}

export interface ChaosLoad {
  /** every path has had an answered (allowed) or judged (denied) attempt, and every stream a reply */
  warm(timeoutMs?: number): Promise<void>;
  /** attempts so far per path (a progress line) */
  progress(): string;
  /** stops the probers and streams (after what is in flight) and returns the figures */
  stop(): Promise<{ paths: PathFigures[]; streams: StreamFigures[] }>;
}

const msOf = (a: Attempt) => Number(/^(\d+)ms$/.exec(a.detail)?.[1] ?? 0);

export function pathFigures(p: ChaosPath, attempts: Attempt[]): PathFigures {
  const ok = attempts.filter((a) => a.ok);
  const bad = p.expect === 'allow' ? attempts.filter((a) => !a.ok) : ok;
  return {
    name: p.name,
    expect: p.expect,
    attempts: attempts.length,
    failed: p.expect === 'allow' ? bad.length : 0,
    violations: p.expect === 'deny' ? bad.length : 0,
    slow: p.expect === 'allow' ? ok.filter((a) => msOf(a) > 1000).length : 0,
    maxMs: p.expect === 'allow' ? Math.max(0, ...ok.map(msOf)) : 0,
    examples: bad.slice(0, 5).map((a) => `${new Date(a.start).toISOString()} ${a.detail}`),
  };
}

/** Starts the probers and streams of `c`. */
export function startLoad(c: ChaosLab, opts: LoadOptions = {}): ChaosLoad {
  const paths = chaosPaths(c);
  const probers: [ChaosPath, Prober][] = paths.map((p) => [
    p,
    probe(p.ns, p.host, p.port, {
      every: opts.everyMs ?? 100,
      timeoutMs: p.expect === 'allow' ? (opts.allowTimeoutMs ?? 3000) : (opts.denyTimeoutMs ?? 1000),
      ...(p.cgroup ? { cgroup: p.cgroup } : {}),
    }),
  ]);
  const streams: [ChaosPath, Flow][] = chaosStreams(c).map((s) => [
    s,
    c.weirs[0].flow(s.ns, s.host, s.port, { seconds: 0, interval: opts.streamIntervalMs ?? 20, ...(s.cgroup ? { cgroup: s.cgroup } : {}) }),
  ]);
  // the flow measures gaps between replies; a stream that stops answering for good would show
  // only as lost lines, so the last time each one's count grew is kept here too
  const lastGrowth = streams.map(() => ({ replies: 0, at: Date.now() }));
  const sampler = setInterval(() => {
    streams.forEach(([, f], i) => {
      const n = f.replies();
      if (n !== lastGrowth[i]!.replies) lastGrowth[i] = { replies: n, at: Date.now() };
    });
  }, 50);
  return {
    async warm(timeoutMs = 20_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const cold = [
          // an allowed path once a connection got through, a denied one once one was judged
          ...probers.filter(([p, pr]) => !pr.attempts().some((a) => a.ok || p.expect === 'deny')).map(([p]) => p.name),
          ...streams.filter(([, f]) => f.replies() < 5).map(([s]) => s.name),
        ];
        if (cold.length === 0) return;
        if (Date.now() > deadline) throw new Error(`load not flowing after ${timeoutMs} ms: ${cold.join(', ')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    progress(): string {
      const n = probers.reduce((sum, [, pr]) => sum + pr.attempts().length, 0);
      const quiet = Math.max(...lastGrowth.map((g) => Date.now() - g.at));
      return `${n} connections, ${streams.reduce((sum, [, f]) => sum + f.replies(), 0)} stream replies (quietest stream: ${quiet} ms)`;
    },
    async stop() {
      clearInterval(sampler);
      const stoppedAt = Date.now();
      const out = await Promise.all(probers.map(async ([p, pr]) => pathFigures(p, await pr.stop())));
      const st = await Promise.all(
        streams.map(async ([s, f], i) => {
          const r = await f.stop();
          const tailMs = stoppedAt - lastGrowth[i]!.at;
          return { name: s.name, sent: r.sent, received: r.received, maxGapMs: Math.max(r.maxGapMs, tailMs), ...(r.error ? { error: r.error } : {}) };
        }),
      );
      return { paths: out, streams: st };
    },
  };
}
