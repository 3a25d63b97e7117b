// Issue 5, must-show 4: `weir diff` against a live lab node running `weir daemon`. A healthy
// node shows no difference (exit 0); a frontend entry deleted by hand from the pinned map is
// reported, exactly that entry (exit 2); the daemon's next resync repairs it (counted) and
// the diff is empty again, and weir_dataplane_drift_entries shows 1 at that resync and 0 at
// the next. A backend slot changed by hand is a `different` frontend. No weir state is one
// readable line and exit 3.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap, type WeirBackend4, type WeirBackend4Key, type WeirFrontend4, type WeirFrontend4Key } from '../../src/bpf/index.js';
import type { DiffResult } from '../../src/cli/diff.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const WEIR = binWeir;
const VIP = '198.19.0.40';
const NP_VIP = '198.19.0.41';
const PORTS: PortSpec[] = [
  { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' },
  { name: 'udp', port: 53, targetPort: 8080, protocol: 'UDP' },
];
const NP_PORTS: PortSpec[] = [{ name: 'http', port: 8000, targetPort: 8080, nodePort: 30080 }];

describe('weir diff on a live node', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let weir: WeirNode;

  const diff = async (extra: string[] = []) => {
    const r = await node.ns.exec(
      WEIR,
      ['diff', '--manifests', weir.manifests, '--node-name', node.name, '--bpf-root', lab.bpffs, '--instance', weir.instance, ...extra],
      { check: false, timeoutMs: 30_000 },
    );
    return {
      code: r.code,
      stdout: r.stdout,
      stderr: r.stderr,
      json: extra.includes('json') && r.code !== 1 ? (JSON.parse(r.stdout) as DiffResult) : undefined,
    };
  };
  const frontends = () => typedMap(BpfMap.openPinned(`${weir.pinDir}/weir_frontend4`), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
  const backendMap = () => typedMap(BpfMap.openPinned(`${weir.pinDir}/weir_backend4`), codecFor('weir_backend4_key'), codecFor('weir_backend4'));
  /** weir_dataplane_drift_entries and weir_dataplane_last_resync_timestamp_seconds from /metrics */
  const driftMetrics = async () => {
    const r = await weir.http('/metrics');
    assert.equal(r.status, 200);
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(r.body)?.[1] ?? NaN);
    return { drift: value('weir_dataplane_drift_entries'), at: value('weir_dataplane_last_resync_timestamp_seconds') };
  };
  /** right after a resync: the whole interval is ours to make drift and see it */
  const afterResync = async () => weir.waitFor('resync', {}, 20_000, weir.mark());

  before(async () => {
    lab = await Lab.create({ name: 'cli-diff' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
    // the drift must be seen by two `weir diff` runs (a second or two each, more on a busy
    // machine) before the next resync repairs it: 10 s, the window starting right after a resync
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'off', resyncInterval: '10s', metricsAddress: '127.0.0.1:9745' });
    const eps = backends.map((b) => ({ ip: b.ip, node: node.name }));
    weir.writeManifest('web.yaml', [
      service({ name: 'web', clusterIP: VIP, ports: PORTS, affinityTimeout: 600 }),
      endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: eps }),
    ]);
    weir.writeManifest('np.yaml', [
      service({ name: 'np', type: 'NodePort', clusterIP: NP_VIP, ports: NP_PORTS }),
      endpointSlice({ name: 'np-1', service: 'np', ports: NP_PORTS, endpoints: eps }),
    ]);
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('a healthy node: no difference, exit 0, ClusterIP and NodePort (node address from netlink) frontends counted', async () => {
    const r = await diff(['-o', 'json']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(r.json!.differences, []);
    // web: tcp + udp; np: ClusterIP + NodePort on 198.18.0.1
    assert.equal(r.json!.desiredFrontends, 4);
    assert.equal(r.json!.liveFrontends, 4);
    const t = await diff();
    assert.equal(t.code, 0);
    assert.equal(t.stdout.trim(), '0 differences (desired 4 frontends, live 4)');
  });

  test('a hand-deleted frontend entry is reported, exactly it; the resync repairs it (counted); diff is empty again', async () => {
    await afterResync();
    const m = weir.mark();
    const fm = frontends();
    try {
      const key: WeirFrontend4Key = { address: VIP, port: 80, protocol: 6, scope: 0 };
      assert.ok(fm.get(key), 'the entry is there before');
      fm.delete(key);
    } finally {
      fm.map.close();
    }
    // both outputs at once, inside the resync interval (each run takes a second or two)
    const [r, t] = await Promise.all([diff(['-o', 'json']), diff()]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.json!.differences.length, 1, JSON.stringify(r.json));
    const d = r.json!.differences[0]!;
    assert.equal(d.kind, 'missing');
    assert.equal(d.frontend, `${VIP}:80/tcp/internal`);
    assert.equal(d.service, 'default/web');
    assert.deepEqual(d.desired!.backends, backends.map((b) => `${b.ip}:8080[local]`).sort());
    assert.deepEqual(d.desired!.flags, ['affinity']);
    assert.equal(d.desired!.affinityTimeout, 600);
    assert.equal(t.code, 2, t.stdout);
    assert.match(
      t.stdout,
      new RegExp(`^1 difference \\(desired 4 frontends, live 3\\)\\nKIND +FRONTEND.*\\nmissing +${VIP.replaceAll('.', '\\.')}:80/tcp/internal +default/web`),
    );

    const repaired = await weir.waitFor('resync', { repairs: 1 }, 20_000, m);
    assert.equal(repaired.level, 'warn');
    // the gauge is set before the resync line is logged; the next resync is 10 s away
    const atRepair = await driftMetrics();
    assert.equal(atRepair.drift, 1, 'the repairing resync found one entry of drift');
    const again = await diff(['-o', 'json']);
    assert.equal(again.code, 0, again.stdout);
    assert.deepEqual(again.json!.differences, []);
    // the next resync finds nothing
    let next = atRepair;
    for (const t0 = Date.now(); next.at <= atRepair.at && Date.now() - t0 < 20_000;) {
      await new Promise((r) => setTimeout(r, 250));
      next = await driftMetrics();
    }
    assert.ok(next.at > atRepair.at, 'a later resync ran');
    assert.equal(next.drift, 0);
  });

  test('a backend slot changed by hand is a different frontend (backends); repaired too', async () => {
    await afterResync();
    const m = weir.mark();
    const fm = frontends();
    const bm = backendMap();
    try {
      const fe = fm.get({ address: NP_VIP, port: 8000, protocol: 6, scope: 0 }) as WeirFrontend4;
      const k: WeirBackend4Key = { frontend_id: fe.id, slot: 0 };
      const b = bm.get(k) as WeirBackend4;
      bm.set(k, { ...b, port: 9999 });
    } finally {
      fm.map.close();
      bm.map.close();
    }
    const r = await diff(['-o', 'json']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.json!.differences.length, 1, JSON.stringify(r.json));
    const d = r.json!.differences[0]!;
    assert.equal(d.kind, 'different');
    assert.equal(d.frontend, `${NP_VIP}:8000/tcp/internal`);
    assert.deepEqual(d.fields, ['backends']);
    assert.ok(
      d.live!.backends.some((x) => x.includes(':9999')),
      JSON.stringify(d.live),
    );
    await weir.waitFor('resync', { repairs: 1 }, 20_000, m);
    assert.equal((await diff()).code, 0);
  });

  test('no weir state: one readable line, exit 3 (not 2: that is "differences")', async () => {
    const r = await node.ns.exec(WEIR, ['diff', '--manifests', weir.manifests, '--node-name', node.name, '--bpf-root', lab.bpffs, '--instance', 'nosuch'], {
      check: false,
    });
    assert.equal(r.code, 3);
    assert.equal(r.stderr, `weir: no weir state for instance "nosuch" under ${lab.bpffs}/weir (is the daemon running on this node? --instance/--bpf-root)\n`);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
