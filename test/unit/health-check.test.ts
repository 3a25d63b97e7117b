// kube-proxy's health contract without sockets: which services get a health check node port
// and their local endpoint count (src/dataplane/health-check-ports.ts), the service answer
// byte for byte, the node health server's overdue and drain logic on a fake clock
// (src/metrics/proxy-health.ts), and the --healthz-address flag.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { daemonConfig, registerDaemonCommand } from '../../src/cli/daemon.js';
import { healthCheckService, healthCheckServices, serviceHealthAnswer } from '../../src/dataplane/health-check-ports.js';
import { DEFAULT_HEALTHZ_ADDRESS, ProxyHealth, TO_BE_DELETED_TAINT } from '../../src/metrics/proxy-health.js';
import { inputs, NODE, slice, svc } from './model-helpers.js';
import { baseDaemonFlags } from './daemon-flags.js';

const LB = { type: 'LoadBalancer' as const, externalTrafficPolicy: 'Local', healthCheckNodePort: 32100, ports: [{ name: 'http', port: 80, nodePort: 30080 }] };

test('health check services: LoadBalancer + eTP=Local only; local ready endpoints, each address once', () => {
  const ports = [
    { name: 'http', port: 8080, protocol: 'TCP' },
    { name: 'dns', port: 53, protocol: 'UDP' },
  ];
  const slices = [
    slice(
      'web-1',
      'web',
      [
        { ip: '198.18.1.1', node: NODE.nodeName },
        { ip: '198.18.1.2', node: NODE.nodeName },
        { ip: '198.18.2.1', node: 'node-b' },
      ],
      {
        ports,
      },
    ),
    // not ready, and serving-but-terminating: a draining node must fail the check
    slice('web-2', 'web', [
      { ip: '198.18.1.3', node: NODE.nodeName, ready: false },
      { ip: '198.18.1.4', node: NODE.nodeName, ready: false, serving: true, terminating: true },
    ]),
    // the same address in a second slice counts once; v6 addresses count too
    slice('web-3', 'web', [{ ip: '198.18.1.1', node: NODE.nodeName }]),
    slice('web-4', 'web', [{ ip: '2001:2::1:1', node: NODE.nodeName }]),
  ];
  assert.deepEqual(healthCheckService(svc('web', LB), slices, NODE), {
    key: 'default/web',
    namespace: 'default',
    name: 'web',
    port: 32100,
    localEndpoints: 3,
  });
  assert.equal(healthCheckService(svc('web', LB), [], NODE)?.localEndpoints, 0);
  assert.equal(healthCheckService(svc('web', { ...LB, externalTrafficPolicy: 'Cluster' }), slices, NODE), null);
  assert.equal(healthCheckService(svc('web', { ...LB, type: 'NodePort' }), slices, NODE), null);
  assert.equal(healthCheckService(svc('web', { ...LB, healthCheckNodePort: 70000 }), slices, NODE), null);
  assert.equal(healthCheckService(svc('web', { ...LB, healthCheckNodePort: undefined }), slices, NODE), null);
  assert.equal(healthCheckService(svc('web', LB, { labels: { 'service.kubernetes.io/service-proxy-name': 'other' } }), slices, NODE), null, 'not ours');
  const all = healthCheckServices(inputs([svc('web', LB), svc('plain')], slices), NODE);
  assert.deepEqual([...all.keys()], ['default/web']);
});

test("service answer: kube-proxy's status and JSON, byte for byte", () => {
  const ok = serviceHealthAnswer('shop', 'web', 2, true);
  assert.equal(ok.status, 200);
  assert.equal(ok.body, '{\n\t"service": {\n\t\t"namespace": "shop",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}');
  assert.deepEqual(JSON.parse(ok.body), { service: { namespace: 'shop', name: 'web' }, localEndpoints: 2, serviceProxyHealthy: true });
  assert.equal(serviceHealthAnswer('shop', 'web', 0, true).status, 503);
  const sick = serviceHealthAnswer('shop', 'web', 2, false);
  assert.equal(sick.status, 503, 'endpoints but the proxy is unhealthy (kubernetes#115825)');
  assert.equal((JSON.parse(sick.body) as { serviceProxyHealthy: boolean }).serviceProxyHealthy, false);
});

test('node health: healthy while starting; a queued change turns it 503 once it has waited the bound; a sync clears it', () => {
  let now = Date.parse('2026-11-30T00:00:00Z');
  const h = new ProxyHealth(120_000, () => now);
  let a = h.answer('/healthz');
  assert.equal(a.status, 200);
  assert.deepEqual(JSON.parse(a.body), { lastUpdated: '2026-11-30T00:00:00.000Z', currentTime: '2026-11-30T00:00:00.000Z', nodeEligible: true, healthy: true });
  h.updated();
  h.queued();
  now += 60_000;
  h.queued(); // only the oldest pending change counts
  now += 59_999;
  assert.equal(h.answer('/healthz').status, 200, 'not late yet');
  now += 1;
  a = h.answer('/healthz');
  assert.equal(a.status, 503);
  assert.deepEqual(JSON.parse(a.body), {
    lastUpdated: '2026-11-30T00:00:00.000Z',
    currentTime: '2026-11-30T00:02:00.000Z',
    nodeEligible: true,
    healthy: false,
    status: { IPv4: { lastUpdated: '2026-11-30T00:00:00.000Z', healthy: false } },
  });
  assert.equal(h.answer('/livez').status, 503);
  h.updated();
  assert.equal(h.answer('/healthz').status, 200);
  assert.equal(h.answer('/livez').status, 200);
});

test('node health: the autoscaler taint or a deletion fails /healthz (nodeEligible false), not /livez', () => {
  const h = new ProxyHealth(1000, () => 0);
  h.families = ['IPv4', 'IPv6'];
  h.updated();
  h.syncNode({ spec: { taints: [{ key: TO_BE_DELETED_TAINT }] } });
  const a = h.answer('/healthz');
  assert.equal(a.status, 503);
  const j = JSON.parse(a.body) as Record<string, unknown>;
  assert.equal(j.nodeEligible, false);
  assert.equal(j.lastUpdated, '1970-01-01T00:00:00.000Z');
  assert.deepEqual(Object.keys(j.status as object), ['IPv4', 'IPv6']);
  const l = h.answer('/livez');
  assert.equal(l.status, 200);
  assert.equal('nodeEligible' in (JSON.parse(l.body) as object), false);
  h.syncNode({ metadata: { deletionTimestamp: new Date() }, spec: {} });
  assert.equal(h.answer('/healthz').status, 503);
  h.syncNode({ spec: { taints: [{ key: 'node.kubernetes.io/unschedulable' }] } });
  assert.equal(h.answer('/healthz').status, 200);
  h.syncNode({ spec: { taints: [{ key: TO_BE_DELETED_TAINT }] } });
  h.syncNode(undefined);
  assert.equal(h.answer('/healthz').status, 200, 'no Node object: eligible, as kube-proxy starts');
});

test('--healthz-address: default 0.0.0.0:10256, off, host:port and [v6]:port, a bad value named', () => {
  const program = new Command();
  registerDaemonCommand(program);
  const opt = program.commands.find((c) => c.name() === 'daemon')!.options.find((o) => o.long === '--healthz-address');
  assert.equal(opt?.defaultValue, '0.0.0.0:10256');
  assert.equal(DEFAULT_HEALTHZ_ADDRESS, '0.0.0.0:10256');
  const base = baseDaemonFlags;
  assert.equal(daemonConfig({ ...base, healthzAddress: DEFAULT_HEALTHZ_ADDRESS }).healthzAddress, '0.0.0.0:10256');
  assert.equal(daemonConfig({ ...base, healthzAddress: 'off' }).healthzAddress, null);
  assert.equal(daemonConfig({ ...base, healthzAddress: '[2001:2::1]:10256' }).healthzAddress, '[2001:2::1]:10256');
  assert.throws(() => daemonConfig({ ...base, healthzAddress: '10256' }), /bad listen address "10256"/);
  assert.throws(() => daemonConfig({ ...base, healthzAddress: ':99999' }), /port above 65535/);
});
