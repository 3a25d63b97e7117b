// The daemon's host protection wiring on one lab node (issue 17): with --host-policy on the
// XDP prefilter attaches native on the node's veth and to_host at TC egress, weir_hep_ifaces
// names the automatic host endpoint with the XDP flag, the failsafes (weir's own metrics port
// added) are in weir_failsafe4, /metrics says weir_xdp_attached{interface,mode} and `weir status`
// the host endpoints, rules and XDP modes; a restart
// adopts all of it with 0 writes; --xdp-mode generic re-attaches generic; --xdp-mode off
// removes the XDP link and clears the flag (TC walks the untracked rules); --host-policy off
// removes the host policy links (docs/upgrade.md: before a rollback).

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap, u8 } from '../../src/bpf/index.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { WeirNode } from '../lib/weir-node.js';

const ADDRESS = '127.0.0.1:9745';

describe('host policy in the daemon', () => {
  let lab: Lab;
  let node: LabNode;
  let weir: WeirNode;
  let eth0: number;

  /** weir_hep_ifaces as pinned: ifindex -> {hep, flags} */
  const hepIfaces = () => {
    const m = typedMap(BpfMap.openPinned(join(weir.pinDir, 'weir_hep_ifaces')), codecFor('weir_hep_iface_key'), codecFor('weir_hep_iface'));
    try {
      return new Map([...m.entries()].map(([k, v]) => [k.ifindex, v]));
    } finally {
      m.map.close();
    }
  };
  const failsafes4 = () => {
    const m = typedMap(BpfMap.openPinned(join(weir.pinDir, 'weir_failsafe4')), codecFor('weir_failsafe4_key'), u8);
    try {
      return [...m.keys()].map((k) => `${k.direction === 0 ? 'in' : 'out'}:${k.protocol}:${k.port}`).sort();
    } finally {
      m.map.close();
    }
  };
  const links = () => readdirSync(join(weir.pinDir, 'links')).sort();
  const xdpMetric = async () => (await weir.http('/metrics')).body.split('\n').filter((l) => l.startsWith('weir_xdp_attached{'));

  before(async () => {
    lab = await Lab.create({ name: 'host-policy-daemon' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    eth0 = (JSON.parse((await node.ns.exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as Array<{ ifindex: number }>)[0]!.ifindex;
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'off', metricsAddress: ADDRESS });
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('on: XDP native on the veth, to_host at egress, the interface and failsafes in the maps, the mode in /metrics', async () => {
    const attached = weir.events('attached').filter((e) => e.hook === 'xdp_prefilter');
    assert.deepEqual(
      attached.map((e) => [e.ifname, e.xdpMode]),
      [['eth0', 'native']],
    );
    assert.ok(links().includes(`xdp-${eth0}-prefilter`) && links().includes(`tcx-${eth0}-to_host`), links().join(','));
    assert.deepEqual(hepIfaces().get(eth0), { hep: 1, flags: 1 }, 'the automatic host endpoint, XDP attached');
    const fs = failsafes4();
    assert.ok(fs.includes('in:6:22') && fs.includes('out:17:53'), fs.join(','));
    assert.ok(fs.includes('in:6:9745'), `the metrics port is a failsafe: ${fs.join(',')}`);
    assert.deepEqual(await xdpMetric(), ['weir_xdp_attached{interface="eth0",mode="native"} 1']);
    const st = await node.ns.exec(binWeir, ['status', '--address', ADDRESS, '-o', 'json'], { check: false, timeoutMs: 30_000 });
    // no policy: the automatic endpoint's two chains (normal in and out) are its default-allow profile
    assert.deepEqual((JSON.parse(st.stdout) as { hostPolicy?: unknown }).hostPolicy, { endpoints: 1, rules: 2, xdp: { eth0: 'native' } }, st.stderr);
  });

  test('a restart adopts the maps and links: 0 host policy writes', async () => {
    await weir.terminate();
    await weir.start();
    const start = weir.events('host policy').find((e) => e.reason === 'start');
    assert.equal(start?.writes, '0', JSON.stringify(start));
    assert.equal(weir.events('attached').filter((e) => e.hook === 'xdp_prefilter').length, 0, 'the XDP link adopted, not re-attached');
    assert.deepEqual(hepIfaces().get(eth0), { hep: 1, flags: 1 });
  });

  test('--xdp-mode generic re-attaches generic; off removes XDP and clears the flag, to_host stays', async () => {
    await weir.terminate();
    weir.configure({ extraArgs: ['--xdp-mode', 'generic'] });
    await weir.start();
    const attached = weir.events('attached').filter((e) => e.hook === 'xdp_prefilter');
    assert.deepEqual(
      attached.map((e) => [e.ifname, e.xdpMode]),
      [['eth0', 'generic']],
    );
    assert.deepEqual(await xdpMetric(), ['weir_xdp_attached{interface="eth0",mode="generic"} 1']);
    assert.deepEqual(hepIfaces().get(eth0), { hep: 1, flags: 1 });

    await weir.terminate();
    weir.configure({ extraArgs: ['--xdp-mode', 'off'] });
    await weir.start();
    // the flag is cleared by the start's apply, before the XDP link goes
    const start = weir.events('host policy').find((e) => e.reason === 'start');
    assert.equal(start?.writes, '1', JSON.stringify(start));
    assert.ok(!links().includes(`xdp-${eth0}-prefilter`), links().join(','));
    assert.ok(links().includes(`tcx-${eth0}-to_host`));
    assert.deepEqual(hepIfaces().get(eth0), { hep: 1, flags: 0 }, 'no XDP: TC walks the untracked rules');
    assert.deepEqual(await xdpMetric(), []);
  });

  test('--host-policy off (what to run before a rollback): the host policy links go, the rest stays', async () => {
    await weir.terminate();
    weir.configure({ extraArgs: ['--host-policy', 'off'] });
    await weir.start();
    assert.deepEqual(links(), [`tcx-${eth0}-from_host`, `tcx-${eth0}-from_host6`]);
    assert.ok(!(await weir.http('/metrics')).body.includes('weir_host_endpoints '), 'no host policy figures');
  });
});
