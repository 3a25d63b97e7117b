// Dual-stack Services through `weir daemon` with the IPv6 maps (issue 14): one planner over
// both families, each family's entries in its own maps. A dual-stack NodePort Service on a
// dual-stack node: connections go through both ClusterIPs at once (the TC path; the IPv6
// must-shows are test/lab/ipv6-*.test.ts); the IPv6 ClusterIP and the NodePort on the node's
// IPv6 address are in weir_frontend6 with the pods' IPv6 addresses in weir_backend6, ids
// unique across the families; the sync line skips nothing; `weir services` and `weir diff`
// see both families; the metrics count both families' maps and label IPv6 lb-stats; the
// conntrack GC ages weir_ct6; a restart adopts both families with zero writes.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';
import type { DiffResult } from '../../src/cli/diff.js';

const VIP4 = '198.19.0.30';
const VIP6 = '2001:2:ff::30';
const OTHER_VIP = '198.19.0.31';
const NODE6 = '2001:2::1';
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }];

type Family = 4 | 6;

/** What a family's frontend map holds: `address:port` -> {id, backend count}. */
function frontends(pinDir: string, family: Family): Map<string, { id: number; count: number }> {
  const m = BpfMap.openPinned(`${pinDir}/weir_frontend${family}`);
  try {
    const typed = typedMap(m, codecFor(`weir_frontend${family}_key`), codecFor(`weir_frontend${family}`));
    const out = new Map<string, { id: number; count: number }>();
    for (const [k, v] of typed.entries()) out.set(family === 6 ? `[${k.address}]:${k.port}` : `${k.address}:${k.port}`, { id: v.id, count: v.backend_count });
    return out;
  } finally {
    m.close();
  }
}

/** The backend addresses a family's backend map holds under a frontend id, by slot. */
function backendsOf(pinDir: string, family: Family, id: number): string[] {
  const m = BpfMap.openPinned(`${pinDir}/weir_backend${family}`);
  try {
    const typed = typedMap(m, codecFor(`weir_backend${family}_key`), codecFor(`weir_backend${family}`));
    return [...typed.entries()]
      .filter(([k]) => k.frontend_id === id)
      .sort(([a], [b]) => a.slot - b.slot)
      .map(([, v]) => `${v.address}:${v.port}`);
  } finally {
    m.close();
  }
}

describe('dual-stack Services with the IPv6 maps', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let weir: WeirNode;

  before(async () => {
    lab = await Lab.create({ name: 'svc-dualstack' });
    node = await lab.node('node1', { address: '198.18.0.1/24', address6: `${NODE6}/64`, podSubnet: '198.18.1.0/24', podSubnet6: '2001:2:1::/64' });
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
    client = await lab.pod(node, 'client');
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    weir = await WeirNode.create(lab, node, {
      connectTimeLb: 'off',
      metricsAddress: '127.0.0.1:9745',
      extraArgs: ['--ct-gc-interval', '1s', '--service-stats', 'backend'],
    });
    const svc = service({ name: 'web', type: 'NodePort', clusterIP: VIP4, ports: PORTS }) as { spec: Record<string, unknown> };
    svc.spec.clusterIPs = [VIP4, VIP6];
    svc.spec.ipFamilies = ['IPv4', 'IPv6'];
    svc.spec.ipFamilyPolicy = 'RequireDualStack';
    const v4 = endpointSlice({ name: 'web-v4', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) });
    const v6 = endpointSlice({ name: 'web-v6', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip6!, node: node.name })) });
    (v6 as { addressType: string }).addressType = 'IPv6';
    weir.writeManifest('web.yaml', [svc, v4, v6]);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('each family in its own maps: IPv6 ClusterIP and NodePort on the node IPv6 address in weir_frontend6, pods in weir_backend6', async () => {
    assert.ok(
      backends.every((b) => b.ip6),
      'the pods have IPv6 addresses',
    );
    const ready = await weir.start();
    assert.equal(ready.frontends, '4', 'ClusterIP and NodePort, in both families');
    const sync = weir.events('sync')[0]!;
    assert.equal(sync.reason, 'start');
    assert.equal(sync.skipped, undefined, 'nothing skipped: the IPv6 frontends are applied');
    const v4 = frontends(weir.pinDir, 4);
    const v6 = frontends(weir.pinDir, 6);
    assert.deepEqual([...v4.keys()].sort(), [`198.18.0.1:30080`, `${VIP4}:80`]);
    assert.deepEqual([...v6.keys()].sort(), [`[${NODE6}]:30080`, `[${VIP6}]:80`]);
    const ids = [...v4.values(), ...v6.values()].map((f) => f.id).sort();
    assert.deepEqual(ids, [1, 2, 3, 4], 'one id allocator for both families');
    const want6 = backends.map((b) => `${b.ip6}:8080`).sort();
    for (const [at, f] of v6) {
      assert.equal(f.count, 2, at);
      assert.deepEqual(backendsOf(weir.pinDir, 6, f.id).sort(), want6, at);
    }
    // the same Service over both families at once (from_pod, from_pod6 on the client's veth)
    for (const vip of [VIP4, VIP6]) {
      const r = await weir.spread(client.ns, vip, 80, { count: 60 });
      assert.equal(r.failures, 0, `${vip}: ${r.errors.join('; ')}`);
      assert.deepEqual(Object.keys(r.servers).sort(), backends.map((b) => b.name).sort(), `${vip}: ${JSON.stringify(r.servers)}`);
    }
  });

  test('weir services lists both families, IPv6 rows in the IPv4 shape with a family field', () => {
    const rows = weir.cli<Array<{ frontend: string; family: string; id: number; backends: Array<{ address: string }> }>>('services');
    const six = rows.filter((r) => r.family === 'IPv6');
    assert.deepEqual(six.map((r) => r.frontend).sort(), [`[${NODE6}]:30080`, `[${VIP6}]:80`]);
    assert.deepEqual(rows.filter((r) => r.family === 'IPv4').length, 2);
    for (const r of six) assert.deepEqual(r.backends.map((b) => b.address).sort(), backends.map((b) => b.ip6!).sort());
  });

  test('metrics: both families in weir_frontends and weir_map_entries; IPv6 lb-stats labelled [address]:port', async () => {
    const sample = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}[\]()|.+]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    let text = (await weir.http('/metrics')).body;
    // entry counts come from the background census, recounted within a second of a write
    for (let i = 0; i < 50 && sample(text, 'weir_map_entries{map="weir_backend6"}') !== 4; i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = (await weir.http('/metrics')).body;
    }
    assert.equal(sample(text, 'weir_frontends'), 4);
    assert.equal(sample(text, 'weir_map_entries{map="weir_frontend6"}'), 2);
    assert.equal(sample(text, 'weir_map_entries{map="weir_backend6"}'), 4);
    assert.equal(sample(text, 'weir_map_writes_total{map="weir_frontend6",op="update"}'), 2, 'the reconciler writes to the IPv6 maps are counted');
    assert.ok(/^weir_map_entries\{map="weir_ct6"\} \d+$/m.test(text), 'weir_ct6 fill exported');
    for (const map of ['weir_ipcache6', 'weir_endpoints6'])
      assert.match(text, new RegExp(`^weir_map_entries\\{map="${map}"\\} \\d+$`, 'm'), `${map} fill exported`);
    // a new connection counted in weir_lb_stats6 (as lib/lb6.h counts one) reaches the metric with the service's labels
    const id = frontends(weir.pinDir, 6).get(`[${VIP6}]:80`)!.id;
    const m = BpfMap.openPinned(`${weir.pinDir}/weir_lb_stats6`);
    let n: number;
    try {
      const stats = typedMap(m, codecFor('weir_lb_stats6_key'), codecFor('weir_lb_stats6'));
      const key = { frontend_id: id, backend: backends[0]!.ip6!, port: 8080, pad: 0 };
      stats.set(key, { new_connections: 3n });
      n = stats.getPerCpu(key)!.length * 3;
    } finally {
      m.close();
    }
    text = (await weir.http('/metrics')).body;
    const series = `weir_service_backend_new_connections_total{service="default/web",frontend="[${VIP6}]:80/tcp",backend="[${backends[0]!.ip6}]:8080"}`;
    assert.equal(
      sample(text, series),
      n,
      text
        .split('\n')
        .filter((l) => l.startsWith('weir_service_backend_new'))
        .join('\n'),
    );
    const row = weir
      .cli<Array<{ frontend: string; backends: Array<{ address: string; newConnections: number }> }>>('services')
      .find((r) => r.frontend === `[${VIP6}]:80`)!;
    assert.equal(row.backends.find((b) => b.address === backends[0]!.ip6)!.newConnections, n, 'weir services reads the same count');
  });

  test('weir diff compares both families: none differs; the IPv6 ClusterIP deleted by hand is exactly the one missing', async () => {
    const diff = async () => {
      const r = await node.ns.exec(
        binWeir,
        ['diff', '--manifests', weir.manifests, '--node-name', node.name, '--bpf-root', lab.bpffs, '--instance', weir.instance, '-o', 'json'],
        { check: false, timeoutMs: 30_000 },
      );
      return { code: r.code, json: JSON.parse(r.stdout) as DiffResult };
    };
    const clean = await diff();
    assert.equal(clean.code, 0, JSON.stringify(clean.json));
    assert.deepEqual([clean.json.desiredFrontends, clean.json.liveFrontends], [4, 4], 'both families on both sides');
    const m = BpfMap.openPinned(`${weir.pinDir}/weir_frontend6`);
    try {
      const fe = typedMap(m, codecFor('weir_frontend6_key'), codecFor('weir_frontend6'));
      const key = [...fe.keys()].find((k) => k.address === VIP6)!;
      const value = fe.get(key)!;
      fe.delete(key);
      const drift = await diff();
      assert.equal(drift.code, 2);
      assert.deepEqual(
        drift.json.differences.map((d) => [d.kind, d.frontend, d.service]),
        [['missing', `[${VIP6}]:80/tcp/internal`, 'default/web']],
      );
      fe.set(key, value); // put back as it was: the later tests see the daemon's state
    } finally {
      m.close();
    }
    assert.equal((await diff()).code, 0);
  });

  test('the conntrack GC ages weir_ct6 with weir_ct4_v2: an idle IPv6 UDP flow goes, a fresh one stays', async () => {
    const m = BpfMap.openPinned(`${weir.pinDir}/weir_ct6`);
    const ct6 = typedMap(m, codecFor('weir_ct6_key'), codecFor('weir_ct6'));
    const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, bpf_ktime_get_ns()'s clock
    const CLIENT6 = '2001:2:1::99';
    const pair = (sport: number, lastSeen: bigint) => {
      const base = {
        policy: 0,
        ifindex: 0,
        frontend_id: 99,
        created_ns: lastSeen,
        last_seen_ns: lastSeen,
        packets: 1n,
        bytes: 60n,
        tunnel_node: '::',
        tcp_flags_seen: 0,
      };
      const be = backends[0]!.ip6!;
      ct6.set(
        { saddr: CLIENT6, daddr: VIP6, sport, dport: 53, protocol: 17 },
        { ...base, nat_saddr: CLIENT6, nat_sport: sport, nat_daddr: be, nat_dport: 5353, flags: 2 },
      );
      ct6.set(
        { saddr: be, daddr: CLIENT6, sport: 5353, dport: sport, protocol: 17 },
        { ...base, nat_saddr: VIP6, nat_sport: 53, nat_daddr: CLIENT6, nat_dport: sport, flags: 1 | 4 },
      );
    };
    const ours = () => [...ct6.keys()].filter((k) => k.saddr === CLIENT6 || k.daddr === CLIENT6).map((k) => (k.saddr === CLIENT6 ? k.sport : k.dport));
    try {
      const mark = weir.mark();
      pair(7001, now - 120_000_000_000n); // idle 120 s: past UDP's 60 s
      pair(7002, now);
      await weir.waitFor('conntrack gc', { family: 'IPv6' }, 10_000, mark);
      assert.deepEqual(ours().sort(), [7002, 7002], 'both entries of the idle flow went, the fresh flow stayed');
    } finally {
      m.close();
    }
  });

  test('a new frontend takes the next free id of either family; a restart adopts both families with zero writes', async () => {
    await weir.apply('other.yaml', [
      service({ name: 'other', clusterIP: OTHER_VIP, ports: [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }] }),
      endpointSlice({ name: 'other-1', service: 'other', ports: PORTS, endpoints: [{ ip: backends[0]!.ip, node: node.name }] }),
    ]);
    const before = { 4: frontends(weir.pinDir, 4), 6: frontends(weir.pinDir, 6) };
    assert.equal(before[4].get(`${OTHER_VIP}:80`)?.id, 5);
    await weir.terminate();
    const ready = await weir.start();
    assert.equal(ready.writes, '0', 'adopted: both families as they were');
    assert.deepEqual(frontends(weir.pinDir, 4), before[4]);
    assert.deepEqual(frontends(weir.pinDir, 6), before[6]);
  });
});
