// The host policy flags of `weir daemon` (src/cli/daemon.ts, src/daemon/config.ts,
// src/daemon/failsafe-ports.ts): defaults (Felix's failsafe ports), Felix's entry syntax with
// CIDRs of both families, `none`, --xdp-mode, and a readable error naming each bad entry.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { daemonConfig } from '../../src/cli/daemon.js';
import { parseFailsafes } from '../../src/daemon/failsafe-ports.js';
import { baseDaemonFlags } from './daemon-flags.js';

test('defaults: host policy and automatic host endpoints on, XDP auto, Felix failsafe ports', () => {
  const cfg = daemonConfig(baseDaemonFlags);
  assert.deepEqual([cfg.hostPolicy, cfg.autoHostEndpoints, cfg.xdpMode], [true, true, 'auto']);
  const text = (d: 'in' | 'out') =>
    cfg
      .failsafes!.filter((f) => f.direction === d)
      .map((f) => `${f.protocol}:${f.port}`)
      .join(',');
  assert.equal(text('in'), 'tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667');
  assert.equal(text('out'), 'udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667');
});

test('entries with CIDRs, none, off switches, and bad values named', () => {
  assert.deepEqual(parseFailsafes('tcp:198.18.0.0/15:22, udp:[2001:2::/48]:53,SCTP:9', 'in'), {
    entries: [
      { direction: 'in', protocol: 'tcp', port: 22, net: '198.18.0.0/15' },
      { direction: 'in', protocol: 'udp', port: 53, net: '2001:2::/48' },
      { direction: 'in', protocol: 'sctp', port: 9 },
    ],
    errors: [],
  });
  assert.deepEqual(parseFailsafes('none', 'out'), { entries: [], errors: [] });
  const cfg = daemonConfig({ ...baseDaemonFlags, hostPolicy: 'off', autoHostEndpoints: 'off', failsafeOutboundHostPorts: 'none', xdpMode: 'generic' });
  assert.deepEqual([cfg.hostPolicy, cfg.autoHostEndpoints, cfg.xdpMode], [false, false, 'generic']);
  assert.equal(cfg.failsafes!.filter((f) => f.direction === 'out').length, 0);
  assert.throws(() => daemonConfig({ ...baseDaemonFlags, xdpMode: 'fast' }), /bad --xdp-mode "fast"/);
  assert.throws(
    () => daemonConfig({ ...baseDaemonFlags, failsafeInboundHostPorts: 'tcp:22,icmp:0,tcp:300.1.1.1/8:80,tcp:70000' }),
    /bad --failsafe-inbound-host-ports: failsafe "icmp:0": unknown protocol .*; failsafe "tcp:300.1.1.1\/8:80": bad CIDR .*; failsafe "tcp:70000": bad port/,
  );
});
