// `weir daemon` settings from flag, WEIR_* environment and --config file (daemon/config-sources.ts,
// daemon/config-file.ts): precedence flag > env > file > default, every way round, for the same
// settings; the file's checks (apiVersion/kind, unknown keys, types); errors naming the source.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { daemonOptions, resolveDaemonConfig } from '../../src/cli/daemon.js';
import { envNameOf, flagSpecs, originSummary, unknownEnv, withOrigin, type Origin } from '../../src/daemon/config-sources.js';
import { nearest, parseConfigFile } from '../../src/daemon/config-file.js';
import { MAP_SIZE_SETTINGS } from '../../src/dataplane/map-sizes.js';

const dir = mkdtempSync(join(tmpdir(), 'weir-config-'));
let n = 0;
/** A config file with these lines after the header. */
function configFile(body: string, header = 'apiVersion: weir.dev/v1alpha1\nkind: WeirConfiguration\n'): string {
  const p = join(dir, `config-${n++}.yaml`);
  writeFileSync(p, header + body);
  return p;
}

/** The base of a valid daemon: manifests source, no cgroup, an explicit bpffs (no mount). */
const BASE = ['--manifests', '/tmp', '--instance', 'default', '--bpf-root', '/sys/fs/bpf', '--connect-time-lb', 'off'];

/** Parses `weir daemon ARGV` and resolves it with `env` as the environment. */
function resolve(argv: string[], env: Record<string, string> = {}) {
  const cmd = daemonOptions(new Command('daemon'))
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  cmd.parse([...BASE, ...argv], { from: 'user' });
  return resolveDaemonConfig(cmd, env);
}

test('precedence flag > env > file > default, every pair, for --metrics-address and --tunnel-port', () => {
  const file = configFile('nodeName: from-file\nmetricsAddress: "127.0.0.1:7001"\ntunnelPort: 7001\n');
  const flag = ['--metrics-address', '127.0.0.1:7003', '--tunnel-port', '7003'];
  const env = { WEIR_METRICS_ADDRESS: '127.0.0.1:7002', WEIR_TUNNEL_PORT: '7002' };
  const nodeFlag = ['--node-name', 'n'];
  const cases: [string, string[], Record<string, string>, number, string][] = [
    // [name, argv, env, tunnelPort, origin kind]
    ['default only', nodeFlag, {}, 4789, 'default'],
    ['file over default', ['--config', file], {}, 7001, 'file'],
    ['env over default', nodeFlag, env, 7002, 'env'],
    ['flag over default', [...nodeFlag, ...flag], {}, 7003, 'flag'],
    ['env over file', ['--config', file], env, 7002, 'env'],
    ['flag over file', ['--config', file, ...flag], {}, 7003, 'flag'],
    ['flag over env', [...nodeFlag, ...flag], env, 7003, 'flag'],
    ['flag over env over file', ['--config', file, ...flag], env, 7003, 'flag'],
    ['--config from WEIR_CONFIG', [], { WEIR_CONFIG: file }, 7001, 'file'],
  ];
  for (const [name, argv, e, port, kind] of cases) {
    const { cfg, from } = resolve(argv, e);
    assert.equal(cfg.tunnelPort, port, `${name}: tunnelPort`);
    // the default address is the probes' business (it moves to :9745): only "not one of ours" here
    if (port === 4789) assert.doesNotMatch(cfg.metricsAddress ?? '', /^127\.0\.0\.1:700/, `${name}: metricsAddress`);
    else assert.equal(cfg.metricsAddress, `127.0.0.1:${port}`, `${name}: metricsAddress`);
    assert.equal(from.get('tunnelPort')?.kind, kind, `${name}: origin of tunnelPort`);
    assert.equal(from.get('metricsAddress')?.kind, kind, `${name}: origin of metricsAddress`);
  }
  // the file's nodeName counts where no flag or env names the node
  assert.equal(resolve(['--config', file]).cfg.nodeName, 'from-file');
  assert.equal(resolve(['--config', file], { WEIR_NODE_NAME: 'from-env' }).cfg.nodeName, 'from-env');
  assert.equal(resolve(['--config', file, '--node-name', 'from-flag'], { WEIR_NODE_NAME: 'from-env' }).cfg.nodeName, 'from-flag');
});

test('a setting left at its default by the flag parser does not beat the file (commander default vs file)', () => {
  // --log-level and --connect-time-lb have commander defaults; the file must still win over them
  const file = configFile('nodeName: n\nlogLevel: warn\nlogFormat: json\nctMapSize: 4096\nnetworkPolicy: false\n');
  const { cfg, from } = resolve(['--config', file]);
  assert.deepEqual([cfg.logLevel, cfg.logFormat, cfg.mapSizes.ct, cfg.networkPolicy], ['warn', 'json', 4096, false]);
  assert.equal(from.get('logLevel')?.kind, 'file');
  assert.equal(from.get('resyncInterval')?.kind, 'default');
  assert.deepEqual(originSummary(from, file), { configFile: file, fromEnv: undefined, fromFile: 'nodeName,networkPolicy,logLevel,logFormat,ctMapSize' });
});

test('the file: values of other types where text is expected, lists, on/off as booleans', () => {
  const file = configFile(
    'nodeName: n\ntunnelPort: 4790\nhostInterfaces: [eth0, eth1]\nnodeportAddresses:\n  - 198.18.0.0/24\n  - primary\nserviceStats: off\npolicyStats: true\nfrontendMapSize: 1024\n',
  );
  const { cfg } = resolve(['--config', file]);
  assert.equal(cfg.tunnelPort, 4790);
  assert.deepEqual(cfg.hostInterfaces, ['eth0', 'eth1']);
  assert.deepEqual(cfg.nodePortAddresses, ['198.18.0.0/24', 'primary']);
  assert.deepEqual([cfg.serviceStats, cfg.policyStats, cfg.mapSizes.frontend], [false, true, 1024]);
});

test('the file is checked: apiVersion, kind, unknown keys with the nearest valid one, types, YAML, size', () => {
  const specs = flagSpecs(daemonOptions(new Command('daemon')));
  const fails = (body: string, re: RegExp, header?: string) => assert.throws(() => resolve(['--config', configFile(body, header)]), re);
  fails('nodeName: n\n', /apiVersion: missing, expected weir\.dev\/v1alpha1/, 'kind: WeirConfiguration\n');
  fails('nodeName: n\n', /apiVersion: "v1", expected weir\.dev\/v1alpha1/, 'apiVersion: v1\nkind: WeirConfiguration\n');
  fails('nodeName: n\n', /kind: "KubeProxyConfiguration", expected WeirConfiguration/, 'apiVersion: weir.dev/v1alpha1\nkind: KubeProxyConfiguration\n');
  fails('nodeName: n\ntunelPort: 4789\n', /config-\d+\.yaml: unknown key "tunelPort" \(did you mean tunnelPort\?\)/);
  fails('nodeName: n\nmetrics-address: ":1"\n', /unknown key "metrics-address" \(did you mean metricsAddress\?\)/);
  fails('nodeName: n\nfoo: 1\n', /unknown key "foo"; the keys are the flags/);
  fails('nodeName: n\ntunnelPort: {port: 1}\n', /config-\d+\.yaml: tunnelPort: expected text, a number or a boolean for --tunnel-port, got a map/);
  fails('nodeName: n\ntunnelPort: [1, 2]\n', /tunnelPort: expected text, a number or a boolean for --tunnel-port, got a list/);
  fails('nodeName: n\nhostInterfaces: [eth0, {a: 1}]\n', /hostInterfaces\[1\]: a list of text/);
  fails('nodeName: n\nmetricsAddress: null\n', /metricsAddress: expected text.*got null/);
  fails('nodeName: n\nlogLevel: verbose\n', /config-\d+\.yaml: logLevel: bad --log-level "verbose": use debug, info, warn, error/);
  fails('nodeName: n\nconfig: /etc/other.yaml\n', /config: a config file cannot name another one/);
  fails('nodeName: n\nnodeName: m\n', /not valid YAML: duplicated mapping key/);
  fails('nodeName: n\nx: !!js/function "function () {}"\n', /not valid YAML: unknown scalar tag/);
  fails('- a\n', /not valid YAML|expected a WeirConfiguration mapping/, '');
  fails('', /not valid YAML: expected a document, but the input is empty/, '');
  fails('# only a comment\n', /expected a WeirConfiguration mapping, got null|input is empty/, '');
  assert.throws(() => resolve(['--config', join(dir, 'absent.yaml')]), /absent\.yaml: cannot read the config file: ENOENT/);
  const big = configFile(`nodeName: n\n# ${'x'.repeat(1 << 20)}\n`);
  assert.throws(() => resolve(['--config', big]), /more than a config file may have/);
  assert.equal(parseConfigFile('c.yaml', 'apiVersion: weir.dev/v1alpha1\nkind: WeirConfiguration\n', specs).size, 0, 'a file of no settings is valid');
  assert.equal(
    nearest(
      'ctMapSzie',
      specs.map((s) => s.key),
    ),
    'ctMapSize',
  );
});

test('errors name where the value came from: env, file, flag', () => {
  assert.throws(() => resolve(['--node-name', 'n'], { WEIR_TUNNEL_PORT: 'abc' }), /^Error: WEIR_TUNNEL_PORT=abc: bad --tunnel-port "abc": a UDP port/);
  const file = configFile('nodeName: n\ntunnelPort: 70000\n');
  assert.throws(
    () => resolve(['--config', file]),
    (e: Error) => e.message.startsWith(`${file}: tunnelPort: bad --tunnel-port "70000"`),
  );
  assert.throws(
    () => resolve(['--node-name', 'n', '--tunnel-port', 'abc']),
    (e: Error) => e.message.startsWith('bad --tunnel-port "abc"'),
  );
  assert.throws(
    () => resolve(['--node-name', 'n'], { WEIR_CT_MAP_SIZE: '12' }),
    /^Error: WEIR_CT_MAP_SIZE=12: bad --ct-map-size "12": entries, an integer in 256\.\./,
  );
  assert.throws(() => resolve(['--node-name', 'n'], { WEIR_LOG_FORMAT: 'xml' }), /^Error: WEIR_LOG_FORMAT=xml: bad --log-format "xml": use logfmt, json/);
  // checks whose own message names no flag get one, so the source can be named
  assert.throws(() => resolve(['--node-name', 'n'], { WEIR_RESYNC_INTERVAL: 'soon' }), /^Error: WEIR_RESYNC_INTERVAL=soon: bad --resync-interval "soon"/);
  const badAddr = configFile('nodeName: n\nmetricsAddress: nine\n');
  assert.throws(
    () => resolve(['--config', badAddr]),
    (e: Error) => e.message.startsWith(`${badAddr}: metricsAddress: bad --metrics-address: bad listen address "nine"`),
  );
  assert.throws(() => resolve([]), /--node-name is required \(or WEIR_NODE_NAME, or nodeName in the --config file\)/);
  // the message names two flags: each one's source that is not the command line
  assert.throws(
    () => resolve([], { WEIR_KUBECONFIG: '/k', WEIR_NODE_NAME: 'n' }),
    /^Error: WEIR_KUBECONFIG=\/k: --manifests and --kubeconfig exclude each other/,
  );
  const from = new Map<string, Origin>([
    ['manifests', { kind: 'env', name: 'WEIR_MANIFESTS', value: '/m' }],
    ['kubeconfig', { kind: 'file', path: 'c.yaml', key: 'kubeconfig' }],
  ]);
  const specs = flagSpecs(daemonOptions(new Command('daemon')));
  assert.equal(
    withOrigin(new Error('--manifests and --kubeconfig exclude each other'), specs, from).message,
    'WEIR_MANIFESTS=/m, c.yaml: kubeconfig: --manifests and --kubeconfig exclude each other',
  );
});

test('every flag has its env name and file key, derived from the options (a new flag needs nothing more)', () => {
  const cmd = daemonOptions(new Command('daemon'));
  cmd.option('--some-later-flag <x>', 'added after the fact');
  const specs = flagSpecs(cmd);
  for (const s of specs) assert.equal(s.env, envNameOf(s.flag));
  assert.equal(envNameOf('--metrics-address'), 'WEIR_METRICS_ADDRESS');
  for (const name of Object.keys(MAP_SIZE_SETTINGS))
    assert.ok(
      specs.some((s) => s.flag === `--${name}-map-size` && s.key === `${name}MapSize`),
      name,
    );
  const later = configFile('someLaterFlag: from-file\n');
  const values = parseConfigFile(later, 'apiVersion: weir.dev/v1alpha1\nkind: WeirConfiguration\nsomeLaterFlag: from-file\n', specs);
  assert.equal(values.get('someLaterFlag'), 'from-file');
  // --help shows the env names
  let help = '';
  cmd.configureOutput({ writeOut: (s) => (help += s) });
  cmd.outputHelp();
  assert.match(help, /--tunnel-port <port>[\s\S]*env: WEIR_TUNNEL_PORT/);
  assert.match(help, /--config <file>[\s\S]*env: WEIR_CONFIG/);
  assert.deepEqual(unknownEnv({ WEIR_TUNEL_PORT: '1', WEIR_BPF_DIR: '/x', WEIR_TUNNEL_PORT: '2', HOME: '/' }, specs), [
    { name: 'WEIR_TUNEL_PORT', nearest: 'WEIR_TUNNEL_PORT' },
  ]);
});
