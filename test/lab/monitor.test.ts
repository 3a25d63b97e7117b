// Issue 15, must-show 5, with `weir daemon` in a lab node and `weir monitor -o json` reading its
// pins: while real traffic runs (an external client through a NodePort, NAT'd to a local pod),
// a pod's connection to a Service with no endpoints is rejected and an external client's
// connection to a NodePort with externalTrafficPolicy: Local and no local endpoint is dropped;
// the monitor shows both with their addresses, and the new NAT flows with their backend. Then
// the switch: a monitor killed with -9 lets its lease lapse, and the daemon run with
// `--monitor off` refuses `weir monitor`; either way the same traffic makes the programs
// emit 0 records (the ring buffer and the programs' own emitted count, while the drop and
// reject counters show the traffic did run).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, RingBuffer } from '../../src/bpf/index.js';
import { monitorStats, readMonitorCfg, type MonitorEvent } from '../../src/dataplane/monitor.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { spawnManaged, type ManagedProcess } from '../lib/proc.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const WEB: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }];
const EMPTY: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];
const LOCAL: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30082 }];
const EMPTY_IP = '198.19.0.31';
const WEB_IP = '198.19.0.30';
const OTHER_NODE_POD = '198.18.9.9'; // the Local service's only endpoint, on another node

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The process's exit, or a failure (and the process stopped) if it runs on past `ms`. */
async function exitWithin(p: ManagedProcess, ms: number): Promise<{ code: number | null }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(p.failure(`still running after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p.exited, late]);
  } catch (e) {
    await p.stop();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

describe('weir monitor: live events from the programs while real traffic runs', () => {
  let lab: Lab;
  let node: LabNode;
  let backend: Pod;
  let pod: Pod;
  let client: External;
  let weir: WeirNode;

  before(async () => {
    lab = await Lab.create({ name: 'monitor' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backend = await lab.pod(node, 'be-a');
    pod = await lab.pod(node, 'cl');
    client = await lab.external('client', { address: '198.18.0.100/24' });
    await backend.ns.echoServer({ name: backend.name, port: 8080 });
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'on' });
    weir.writeManifest('svc.yaml', [
      service({ name: 'web', type: 'NodePort', clusterIP: WEB_IP, ports: WEB }),
      endpointSlice({ name: 'web-1', service: 'web', ports: WEB, endpoints: [{ ip: backend.ip, node: node.name }] }),
      service({ name: 'empty', clusterIP: EMPTY_IP, ports: EMPTY }),
      service({ name: 'local', type: 'NodePort', clusterIP: '198.19.0.32', ports: LOCAL, externalTrafficPolicy: 'Local' }),
      endpointSlice({ name: 'local-1', service: 'local', ports: LOCAL, endpoints: [{ ip: OTHER_NODE_POD, node: 'node2' }] }),
    ]);
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  const monitor = (...args: string[]): ManagedProcess =>
    spawnManaged(binWeir, ['monitor', '--pin-dir', weir.pinDir, ...args], { label: 'weir monitor', killAfterMs: 3000 });

  async function leaseHeld(want: boolean): Promise<void> {
    const cfg = BpfMap.openPinned(`${weir.pinDir}/weir_monitor_cfg`);
    try {
      for (let i = 0; i < 100; i++) {
        const c = readMonitorCfg(cfg);
        if (c.until_ns > process.hrtime.bigint() === want) return;
        await sleep(100);
      }
      throw new Error(`the monitor lease is ${want ? 'not held' : 'still held'} after 10 s`);
    } finally {
      cfg.close();
    }
  }

  /** The three kinds of traffic: allowed (NodePort, NAT'd; a pod to the ClusterIP through the
   *  socket LB), rejected, dropped. */
  async function traffic(): Promise<{ allowed: number }> {
    const allowed = await weir.spread(client.ns, node.address, 30080, { proto: 'tcp', count: 10 });
    assert.equal(allowed.failures, 0, allowed.errors.join('; '));
    assert.equal((await pod.ns.echo(WEB_IP, 80, { proto: 'tcp', cgroup: weir.cgroup })).reply.server, backend.name);
    await assert.rejects(pod.ns.echo(EMPTY_IP, 80, { proto: 'tcp', timeoutMs: 3000 }), /ECONNREFUSED/);
    await assert.rejects(client.ns.echo(node.address, 30082, { proto: 'tcp', timeoutMs: 1500 }));
    return { allowed: 10 };
  }

  function parsed(out: string): MonitorEvent[] {
    return out
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as MonitorEvent);
  }

  test('MS5: -o json shows the rejected and the dropped connection with their addresses, and the NAT flows, while traffic runs', async () => {
    const mon = monitor('-o', 'json');
    await leaseHeld(true);
    const before = weir.counters();
    await traffic();
    await mon.waitForOutput(/no_local_backend_drop/, 10_000);
    await mon.waitForOutput(/no_backend_reject/, 10_000);
    await sleep(300); // the last poll
    const st = await mon.stop();
    assert.equal(st.code, 0, mon.stderr);
    const events = parsed(mon.stdout);
    for (const e of events) console.log(`# ${JSON.stringify(e)}`);

    const rejects = events.filter((e) => e.reason === 'no_backend_reject');
    assert.equal(rejects.length, 1, 'one rejected SYN');
    assert.deepEqual(
      [rejects[0]!.type, rejects[0]!.hook, rejects[0]!.proto, rejects[0]!.src, rejects[0]!.dst, rejects[0]!.dstPort, rejects[0]!.family],
      ['reject', 'from_pod', 'tcp', pod.ip, EMPTY_IP, 80, 4],
    );
    const drops = events.filter((e) => e.reason === 'no_local_backend_drop');
    assert.ok(drops.length >= 1, 'the SYN to the Local NodePort (and its retransmissions)');
    for (const d of drops) {
      assert.deepEqual([d.type, d.hook, d.src, d.dst, d.dstPort], ['drop', 'from_host', client.address, node.address, 30082]);
    }
    const nats = events.filter((e) => e.type === 'nat' && e.hook === 'from_host');
    assert.equal(nats.length, 10, 'one event per new NAT flow, none for their later packets');
    // the pod's connect() to the ClusterIP, translated by the socket LB before any packet
    const socks = events.filter((e) => e.hook === 'sock');
    assert.deepEqual(
      socks.map((e) => [e.type, e.reason, e.proto, e.dst, e.dstPort, e.natDst, e.natDstPort]),
      [['nat', 'sock_lb_translated', 'tcp', WEB_IP, 80, backend.ip, 8080]],
    );
    for (const n of nats) {
      assert.deepEqual([n.reason, n.src, n.dst, n.dstPort, n.natDst, n.natDstPort], ['service_nat', client.address, node.address, 30080, backend.ip, 8080]);
    }
    // what the counters say happened is what the monitor showed
    const after = weir.counters();
    const delta = (hook: string, reason: string) => (after[hook]?.[reason] ?? 0) - (before[hook]?.[reason] ?? 0);
    assert.equal(delta('from_pod', 'no_backend_reject'), rejects.length);
    assert.equal(delta('from_host', 'no_local_backend_drop'), drops.length);
    assert.equal(delta('from_host', 'service_nat'), nats.length);
    await leaseHeld(false); // given back on exit: the programs stop at once
  });

  test('filters: --address, --type drop and --port keep only the matching events; -o table prints one line each', async () => {
    const mon = monitor('--type', 'drop,reject', '--address', client.address, '--port', '30082', '--count', '1');
    await leaseHeld(true);
    await traffic();
    const st = await exitWithin(mon, 15_000);
    assert.equal(st.code, 0, mon.stderr);
    const lines = mon.stdout.trim().split('\n');
    console.log(lines.map((l) => `# ${l}`).join('\n'));
    assert.match(lines[0]!, /^TIME +HOOK +TYPE +REASON/);
    assert.equal(lines.length, 2, '--count 1: the header and one event');
    assert.match(
      lines[1]!,
      new RegExp(`from_host +drop +no_local_backend_drop +tcp +${client.address.replace(/\./g, '\\.')}:\\d+ -> ${node.address.replace(/\./g, '\\.')}:30082`),
    );
  });

  async function emittedDuring(f: () => Promise<unknown>): Promise<{ records: number; emitted: bigint }> {
    const events = BpfMap.openPinned(`${weir.pinDir}/weir_events`);
    const stats = BpfMap.openPinned(`${weir.pinDir}/weir_monitor_stats`);
    const ring = new RingBuffer(events);
    try {
      ring.consume(); // what earlier tests left
      const before = monitorStats(stats).emitted;
      await f();
      return { records: ring.consume().length, emitted: monitorStats(stats).emitted - before };
    } finally {
      ring.close();
      events.close();
      stats.close();
    }
  }

  test('a monitor killed with -9: its lease lapses within 3 s and the same traffic emits 0 records', async () => {
    const mon = monitor('-o', 'json');
    await leaseHeld(true);
    mon.signalGroup('SIGKILL');
    await mon.exited;
    await leaseHeld(false);
    const before = weir.counters();
    const r = await emittedDuring(traffic);
    const after = weir.counters();
    assert.ok((after.from_host?.no_local_backend_drop ?? 0) > (before.from_host?.no_local_backend_drop ?? 0), 'the drops did happen');
    assert.deepEqual(r, { records: 0, emitted: 0n });
  });

  test('the daemon with --monitor off: weir monitor is refused, and the programs emit 0 records while traffic runs', async () => {
    await weir.terminate();
    weir.configure({ extraArgs: ['--monitor', 'off'] });
    await weir.start();
    const mon = monitor('-o', 'json');
    const st = await exitWithin(mon, 15_000);
    assert.equal(st.code, 1);
    assert.match(mon.stderr, /monitor disabled by --monitor off/);
    const before = weir.counters();
    const r = await emittedDuring(traffic);
    const after = weir.counters();
    assert.equal((after.from_pod?.no_backend_reject ?? 0) - (before.from_pod?.no_backend_reject ?? 0), 1, 'the reject did happen');
    assert.deepEqual(r, { records: 0, emitted: 0n });
    // back on: the next monitor works again
    await weir.terminate();
    weir.configure({ extraArgs: [] });
    await weir.start();
    const again = monitor('-o', 'json', '--count', '1', '--type', 'reject');
    await leaseHeld(true);
    await assert.rejects(pod.ns.echo(EMPTY_IP, 80, { proto: 'tcp', timeoutMs: 3000 }), /ECONNREFUSED/);
    assert.equal((await exitWithin(again, 15_000)).code, 0, again.stderr);
    assert.equal(parsed(again.stdout)[0]?.src, pod.ip);
  });
});
