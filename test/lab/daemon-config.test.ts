// Issue 15, must-show 3 end to end: `weir daemon --config FILE` in a lab node, as a ConfigMap
// mounted at /etc/weir/config.yaml would run it. The file's settings take effect where neither
// a flag nor the environment gives one (--ct-map-size: the pinned conntrack maps' size), the
// environment wins over the file (--healthz-address: the server listens on the env's port, not
// the file's), a flag wins over both (--metrics-address); the start logs which settings came
// from where. A restart with another ctMapSize in the file resizes the map, keeping its entries.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode } from '../lib/lab.js';
import { WeirNode } from '../lib/weir-node.js';

const FLAG_METRICS = '127.0.0.1:19745';
const FILE_METRICS = '127.0.0.1:19746';
const ENV_HEALTHZ = '127.0.0.1:19756';
const FILE_HEALTHZ = '127.0.0.1:19757';

describe('weir daemon --config FILE (WeirConfiguration) with env and flags over it', () => {
  let lab: Lab;
  let node: LabNode;
  let weir: WeirNode;
  let config: string;

  const writeConfig = (ctMapSize: number) =>
    writeFileSync(
      config,
      [
        'apiVersion: weir.dev/v1alpha1',
        'kind: WeirConfiguration',
        `metricsAddress: "${FILE_METRICS}"`,
        `healthzAddress: "${FILE_HEALTHZ}"`,
        `ctMapSize: ${ctMapSize}`,
        'resyncInterval: 45s',
        '',
      ].join('\n'),
    );
  /** HTTP status of GET http://addr/path inside the node; 0 when nothing listens */
  const status = async (addr: string, path: string) => {
    const r = await node.ns.exec('curl', ['-sS', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', `http://${addr}${path}`], {
      check: false,
      timeoutMs: 4000,
    });
    return Number(r.stdout.trim()) || 0;
  };
  const ctMaxEntries = (name: string) => {
    const m = BpfMap.openPinned(join(weir.pinDir, name));
    try {
      return [m.maxEntries, m.count()];
    } finally {
      m.close();
    }
  };

  before(async () => {
    lab = await Lab.create({ name: 'daemon-config' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    config = join(lab.dir, 'config.yaml');
    writeConfig(4096);
    weir = await WeirNode.create(lab, node, {
      connectTimeLb: 'off',
      metricsAddress: FLAG_METRICS,
      logLevel: 'info',
      extraArgs: ['--config', config],
      env: { WEIR_HEALTHZ_ADDRESS: ENV_HEALTHZ },
    });
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('file < env < flag, each where it applies; the start says which came from where', async () => {
    const [cfgLine] = weir.events('config');
    console.log(`# ${JSON.stringify(cfgLine)}`);
    assert.ok(cfgLine, 'a config line at start');
    assert.equal(cfgLine.configFile, config);
    assert.equal(cfgLine.fromEnv, 'WEIR_HEALTHZ_ADDRESS');
    assert.equal(cfgLine.fromFile, 'resyncInterval,ctMapSize', 'metricsAddress (flag) and healthzAddress (env) are not from the file');
    // file only: both families' conntrack maps have the file's size
    assert.deepEqual([ctMaxEntries('weir_ct4_v2')[0], ctMaxEntries('weir_ct6')[0]], [4096, 4096]);
    // flag over file: /metrics on the flag's port, nothing on the file's
    assert.equal((await weir.http('/metrics')).status, 200);
    assert.equal(await status(FILE_METRICS, '/metrics'), 0, "nothing on the file's metrics port");
    // env over file: kube-proxy's health server on the env's port, nothing on the file's
    assert.notEqual(await status(ENV_HEALTHZ, '/healthz'), 0, "the health server answers on WEIR_HEALTHZ_ADDRESS's port");
    assert.equal(await status(FILE_HEALTHZ, '/healthz'), 0, "nothing on the file's healthz port");
  });

  test('a restart with another ctMapSize in the file resizes the conntrack maps and keeps their entries', async () => {
    // established TCP flows (as the programs write them, seen just now) the next start must carry over
    const ct = typedMap(BpfMap.openPinned(join(weir.pinDir, 'weir_ct4_v2')), codecFor('weir_ct4_key'), codecFor('weir_ct4'));
    const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, as bpf_ktime_get_ns
    try {
      for (let i = 0; i < 20; i++) {
        ct.set(
          { saddr: `198.18.1.${10 + i}`, daddr: '198.18.1.200', sport: 40000 + i, dport: 80, protocol: 6 },
          {
            nat_saddr: '0.0.0.0',
            nat_daddr: '0.0.0.0',
            nat_sport: 0,
            nat_dport: 0,
            flags: 0,
            tcp_flags_seen: 0x12,
            policy: 0,
            frontend_id: 0,
            tunnel_node: '0.0.0.0',
            ifindex: 0,
            created_ns: now,
            last_seen_ns: now,
            packets: 1n,
            bytes: 60n,
          },
        );
      }
    } finally {
      ct.map.close();
    }
    const before4 = ctMaxEntries('weir_ct4_v2')[1]!;
    await weir.terminate();
    writeConfig(8192);
    await weir.start();
    const [maxEntries, count] = ctMaxEntries('weir_ct4_v2');
    const migrate = weir.events('migrate').find((l) => l.map === 'weir_ct4');
    console.log(`# ${JSON.stringify(migrate)} entries before ${before4}, after ${count}`);
    assert.equal(maxEntries, 8192);
    assert.ok(count! >= 20, `the entries were kept (${count})`);
    assert.ok(migrate && Number(migrate.entries) >= 20, 'the migration is logged');
  });
});
