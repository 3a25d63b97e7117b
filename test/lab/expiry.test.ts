// Ageing on the real maps of a lab daemon: the BPF ClientIP affinity expiry (an entry idle
// longer than the service's timeout is not followed, a fresh one is) and the daemon's conntrack
// GC (--ct-gc-interval 1s) deleting exactly the expired flows of weir_ct4_v2 (closing: 10 s,
// SYN only: 60 s), both directions, among entries real packets made. Idle time is made by writing old timestamps into the maps
// (CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads), not by waiting hours.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap, type WeirCt4, type WeirCt4Key, type WeirFrontend4 } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { sleep } from '../lib/proc.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const S = 1_000_000_000n;
const STICKY = '198.19.0.40';
const WEB = '198.19.0.41';
const AFFINITY_S = 30;
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];
/** an address no pod has: a connection sent there never completes */
const NOWHERE = '198.18.1.250';

describe('affinity expiry and conntrack GC on real maps', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let weir: WeirNode;

  const open = <K, V>(name: string, key: string, value: string) =>
    typedMap(BpfMap.openPinned(`${weir.pinDir}/${name}`), codecFor(key as never), codecFor(value as never)) as unknown as {
      get(k: K): V | undefined;
      set(k: K, v: V): void;
      delete(k: K): boolean;
      entries(): Iterable<[K, V]>;
      map: BpfMap;
    };

  before(async () => {
    lab = await Lab.create({ name: 'expiry' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b'), await lab.pod(node, 'be-c')];
    client = await lab.pod(node, 'client');
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'off', extraArgs: ['--ct-gc-interval', '1s'] });
    const eps = backends.map((b) => ({ ip: b.ip, node: node.name }));
    weir.writeManifest('svc.yaml', [
      service({ name: 'sticky', clusterIP: STICKY, ports: PORTS, affinityTimeout: AFFINITY_S }),
      endpointSlice({ name: 'sticky-1', service: 'sticky', ports: PORTS, endpoints: eps }),
      service({ name: 'web', clusterIP: WEB, ports: PORTS }),
      endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: eps }),
    ]);
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('BPF affinity: a fresh entry is followed; one idle longer than the timeout is not', async () => {
    const fe = open<object, WeirFrontend4>('weir_frontend4', 'weir_frontend4_key', 'weir_frontend4');
    type Aff = { backend: string; port: number; pad: number; last_used_ns: bigint };
    const aff = open<{ client: string; frontend_id: number }, Aff>('weir_affinity4', 'weir_affinity4_key', 'weir_affinity4');
    try {
      const id = fe.get({ address: STICKY, port: 80, protocol: 6, scope: 0 })!.id;
      const key = { client: client.ip, frontend_id: id };
      // fresh, to be-b: every connection follows it
      aff.set(key, { backend: backends[1]!.ip, port: 8080, pad: 0, last_used_ns: process.hrtime.bigint() });
      const fresh = await weir.spread(client.ns, STICKY, 80, { count: 20, concurrency: 1 });
      assert.equal(fresh.failures, 0, fresh.errors.join('; '));
      assert.deepEqual(fresh.servers, { 'be-b': 20 }, 'a fresh entry is followed');
      // idle AFFINITY_S + 5 s, to an address with no pod: following it would never connect
      aff.set(key, { backend: NOWHERE, port: 8080, pad: 0, last_used_ns: process.hrtime.bigint() - BigInt(AFFINITY_S + 5) * S });
      const expired = await weir.spread(client.ns, STICKY, 80, { count: 20, concurrency: 1 });
      assert.equal(expired.failures, 0, `an expired entry is not followed: ${expired.errors.join('; ')}`);
      assert.equal(Object.keys(expired.servers).length, 1, `the new choice sticks: ${JSON.stringify(expired.servers)}`);
      const now = aff.get(key)!;
      assert.notEqual(now.backend, NOWHERE, 'the entry was replaced by a real backend');
      assert.ok(backends.some((b) => b.ip === now.backend));
      assert.ok(process.hrtime.bigint() - now.last_used_ns < BigInt(AFFINITY_S) * S, 'and is fresh');
    } finally {
      fe.map.close();
      aff.map.close();
    }
  });

  test('conntrack GC: expired flows go, both entries; flows within their timeout stay', async () => {
    const ct = open<WeirCt4Key, WeirCt4>('weir_ct4_v2', 'weir_ct4_key', 'weir_ct4');
    try {
      // real flows: closed TCP connections through the TC path (FIN seen: "closing", 10 s)
      const r = await weir.spread(client.ns, WEB, 80, { count: 5, concurrency: 1 });
      assert.equal(r.failures, 0, r.errors.join('; '));
      const toWeb = () => [...ct.entries()].filter(([k]) => k.saddr === client.ip && k.daddr === WEB);
      const flows = toWeb();
      assert.equal(flows.length, 5, 'one original-direction entry per connection');
      const partner = ([k, v]: [WeirCt4Key, WeirCt4]): WeirCt4Key => ({
        saddr: v.nat_daddr,
        daddr: v.nat_saddr,
        sport: v.nat_dport,
        dport: v.nat_sport,
        protocol: k.protocol,
      });
      for (const f of flows) assert.ok(ct.get(partner(f)), 'the reply entry is there');
      const m = weir.mark();
      const now = process.hrtime.bigint();
      // age them by hand: two idle 11 s (expired), three idle 5 s (not yet)
      const age = (f: [WeirCt4Key, WeirCt4], idle: bigint) => {
        for (const k of [f[0], partner(f)]) ct.set(k, { ...ct.get(k)!, last_seen_ns: now - idle });
      };
      flows.forEach((f, i) => age(f, i < 2 ? 11n * S : 5n * S));
      // and two handshakes that never finished (SYN only: 60 s), written in the entries' shape:
      // idle 61 s and 30 s. (Established flows' 6 h cannot be faked here: CLOCK_MONOTONIC starts
      // at boot, so a machine up for less than 6 h has no such timestamp; the unit test has it.)
      const est = (sport: number, idle: bigint): [WeirCt4Key, WeirCt4Key] => {
        const [k, v] = flows[0]!;
        const ok = { ...k, sport };
        const ov = { ...v, nat_sport: sport, tcp_flags_seen: 0x02, last_seen_ns: now - idle };
        const rk = partner([ok, ov]);
        const rv = { ...ct.get(partner(flows[0]!))!, nat_dport: sport, tcp_flags_seen: 0x12, last_seen_ns: now - idle };
        ct.set(ok, ov);
        ct.set(rk, rv);
        return [ok, rk];
      };
      const old = est(61001, 61n * S);
      const young = est(61002, 30n * S);
      // the GC runs every second: wait until it has taken what it should (the kept flows have
      // 5 s left; the assertions below say what was wrong if it never does). The run's log line
      // is read from the daemon's stdout and can arrive after the map shows the deletions, so
      // wait for the lines that add up to the deletions too.
      const gcRuns = () =>
        weir
          .events()
          .slice(m)
          .filter((l) => l.event === 'conntrack gc');
      const settled = () => !ct.get(old[0]) && !ct.get(flows[0]![0]) && !ct.get(flows[1]![0]) && gcRuns().reduce((n, l) => n + Number(l.expiredFlows), 0) >= 3;
      for (const deadline = Date.now() + 4500; Date.now() < deadline && !settled();) await sleep(50);
      const gcLines = gcRuns();
      console.log(`# conntrack gc runs that deleted: ${gcLines.map((l) => `expiredFlows=${l.expiredFlows} deleted=${l.deleted}`).join('; ')}`);
      // each run deleted whole flows: two entries for each expired flow, never one of a pair
      assert.ok(gcLines.length > 0, 'a GC run deleted something');
      for (const l of gcLines) assert.equal(Number(l.deleted), 2 * Number(l.expiredFlows), `a run took both entries of each flow: ${JSON.stringify(l)}`);
      assert.equal(
        gcLines.reduce((n, l) => n + Number(l.expiredFlows), 0),
        3,
        'three flows expired: two closed, one SYN-only',
      );
      assert.ok(!ct.get(old[0]) && !ct.get(old[1]), 'the SYN-only flow idle 61 s is gone, both entries');
      assert.ok(ct.get(young[0]) && ct.get(young[1]), 'the one idle 30 s stays');
      for (const [i, f] of flows.entries()) {
        const present = ct.get(f[0]) !== undefined && ct.get(partner(f)) !== undefined;
        const absent = ct.get(f[0]) === undefined && ct.get(partner(f)) === undefined;
        assert.ok(i < 2 ? absent : present, `closed flow ${i} (idle ${i < 2 ? 11 : 5} s): ${i < 2 ? 'gone' : 'kept'}, both entries`);
      }
    } finally {
      ct.map.close();
    }
  });
});
