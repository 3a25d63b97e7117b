// `weir daemon` flags (src/cli/daemon.ts, src/daemon/config.ts): durations, lists, modes, and
// the readable errors for a bad flag, a non-bpffs --bpf-root and a non-cgroup2 --cgroup.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { daemonConfig } from '../../src/cli/daemon.js';
import { cgroup2Root, parseDuration, parseList } from '../../src/daemon/config.js';
import { mountTypeOf, preparePinDir } from '../../src/dataplane/loader.js';
import { baseDaemonFlags } from './daemon-flags.js';

const base = baseDaemonFlags;

test('durations, lists and modes', () => {
  assert.deepEqual(
    [parseDuration('250ms'), parseDuration('30s'), parseDuration('5m'), parseDuration('2'), parseDuration('1.5s')],
    [250, 30000, 300000, 2000, 1500],
  );
  assert.throws(() => parseDuration('soon'), /bad duration "soon"/);
  assert.deepEqual(parseList('eth0, eth1 ,,eth2'), ['eth0', 'eth1', 'eth2']);
  const cfg = daemonConfig({ ...base, nodeportAddresses: '198.18.0.0/24,primary' });
  assert.deepEqual([cfg.sockLb, cfg.cgroup, cfg.nodePortAddresses, cfg.resyncIntervalMs], ['off', null, ['198.18.0.0/24', 'primary'], 60000]);
  assert.throws(() => daemonConfig({ ...base, connectTimeLb: 'maybe' }), /bad --connect-time-lb "maybe"/);
  assert.throws(() => daemonConfig({ ...base, manifests: undefined }), /--manifests DIR is required/);
  assert.throws(() => daemonConfig({ ...base, connectTimeLb: 'on', cgroup: tmpdir() }), /not a cgroup2 directory/);
});

test('--bpf-root must be a bpffs mount; --instance a plain name', () => {
  const mounts = 'none /sys/fs/bpf bpf rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n/dev/root / ext4 rw 0 0\n';
  assert.equal(mountTypeOf('/sys/fs/bpf/weir/x', mounts), 'bpf');
  assert.equal(mountTypeOf('/tmp', mounts), 'ext4');
  assert.equal(cgroup2Root(mounts), '/sys/fs/cgroup/unified');
  const notBpf = mkdtempSync(join(tmpdir(), 'weir-notbpf-'));
  assert.throws(() => preparePinDir(notBpf, 'default'), /is not a bpffs mount .*mount -t bpf bpf/);
  assert.throws(() => preparePinDir('/nonexistent-weir', 'default'), /does not exist/);
  assert.throws(() => preparePinDir(notBpf, '../etc'), /bad --instance/);
});

test('--lb-algorithm and --maglev-table-size: defaults, a prime in range, readable errors', () => {
  const cfg = daemonConfig(base, {});
  assert.equal(cfg.lbAlgorithm, 'random');
  assert.equal(cfg.maglevTableSize, 16381);
  const m = daemonConfig({ ...base, lbAlgorithm: 'maglev', maglevTableSize: '4093' }, {});
  assert.deepEqual([m.lbAlgorithm, m.maglevTableSize], ['maglev', 4093]);
  assert.throws(() => daemonConfig({ ...base, lbAlgorithm: 'ring' }, {}), /bad --lb-algorithm "ring": use random or maglev/);
  assert.throws(() => daemonConfig({ ...base, maglevTableSize: '16000' }, {}), /bad --maglev-table-size "16000": must be a prime/);
  assert.throws(() => daemonConfig({ ...base, maglevTableSize: '65521' }, {}), /must be an integer in 251\.\.16381/);
  assert.throws(() => daemonConfig({ ...base, maglevTableSize: '0x3ffd' }, {}), /bad --maglev-table-size/);
});

test('--tunnel-port, --external-service-mode and --dsr-optout-cidrs: defaults, parsing, readable errors', () => {
  const cfg = daemonConfig({ ...base }, {});
  assert.deepEqual([cfg.tunnelPort, cfg.externalServiceMode, cfg.dsrOptoutCidrs], [4789, 'tunnel', []]);
  const d = daemonConfig(
    { ...base, tunnelPort: '8472', externalServiceMode: 'dsr', dsrOptoutCidrs: '198.18.0.100, 198.19.0.9/16,2001:2::/48,198.18.0.100/32' },
    {},
  );
  assert.deepEqual([d.tunnelPort, d.externalServiceMode, d.dsrOptoutCidrs], [8472, 'dsr', ['198.18.0.100/32', '198.19.0.0/16', '2001:2::/48']]);
  assert.throws(() => daemonConfig({ ...base, tunnelPort: '0' }, {}), /bad --tunnel-port "0": a UDP port, 1\.\.65535/);
  assert.throws(() => daemonConfig({ ...base, tunnelPort: '65536' }, {}), /bad --tunnel-port/);
  assert.throws(() => daemonConfig({ ...base, dsrOptoutCidrs: '198.18.0.0/33' }, {}), /bad --dsr-optout-cidrs entry "198\.18\.0\.0\/33"/);
});
