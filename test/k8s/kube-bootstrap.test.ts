// The API server bootstrap settings (src/sources/kube-bootstrap.ts): parsing of the two
// environment variables (IPv6 in brackets, readable errors naming the variable), the synthetic
// objects (the names the API server uses, every endpoint), and the retirement of synthetic
// slices by the API's own. Pure: no server, no root.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { daemonConfig } from '../../src/cli/daemon.js';
import { bootstrapEvents, bootstrapFromEnv, bootstrapObjects, obsoleteBootstrapSlices, parseHostPort } from '../../src/sources/kube-bootstrap.js';
import type { ObjectEvent } from '../../src/sources/types.js';

test('KUBERNETES_SERVICE_IPS_PORTS / KUBERNETES_APISERVER_ENDPOINTS: parsed, or one readable error', () => {
  assert.deepEqual(parseHostPort('198.19.0.1:443', 'X'), { ip: '198.19.0.1', port: 443 });
  assert.deepEqual(parseHostPort('[2001:2::1]:6443', 'X'), { ip: '2001:2::1', port: 6443 });
  for (const bad of ['198.19.0.1', '198.19.0.300:443', '2001:2::1:443', '[198.19.0.1]:443', 'api:443', '198.19.0.1:0', '198.19.0.1:70000'])
    assert.throws(() => parseHostPort(bad, 'KUBERNETES_APISERVER_ENDPOINTS'), /^Error: KUBERNETES_APISERVER_ENDPOINTS: bad address/, bad);
  assert.equal(bootstrapFromEnv({}), undefined);
  assert.throws(() => bootstrapFromEnv({ KUBERNETES_SERVICE_IPS_PORTS: '198.19.0.1:443' }), /needs both .* \(only KUBERNETES_SERVICE_IPS_PORTS is set\)/);
  const cfg = bootstrapFromEnv({
    KUBERNETES_SERVICE_IPS_PORTS: '198.19.0.1:443, [2001:2::1]:443',
    KUBERNETES_APISERVER_ENDPOINTS: '198.18.0.10:6443,198.18.0.11:6443,198.18.0.10:6443',
  });
  assert.deepEqual(cfg, {
    service: [
      { ip: '198.19.0.1', port: 443 },
      { ip: '2001:2::1', port: 443 },
    ],
    endpoints: [
      { ip: '198.18.0.10', port: 6443 },
      { ip: '198.18.0.11', port: 6443 },
    ],
  });
  // the daemon flags: bootstrap only with the API source; bad values stop the start with the message
  const flags = {
    nodeName: 'n',
    instance: 'default',
    bpfRoot: '/sys/fs/bpf',
    connectTimeLb: 'off',
    resyncInterval: '60s',
    ctGcInterval: '30s',
    logLevel: 'info',
    kubeProxyCleanup: 'on',
  };
  const env = { KUBERNETES_SERVICE_IPS_PORTS: '198.19.0.1:443', KUBERNETES_APISERVER_ENDPOINTS: '198.18.0.10:6443' };
  assert.equal(daemonConfig({ ...flags, manifests: '/tmp' }, env).bootstrap, undefined);
  assert.deepEqual(daemonConfig({ ...flags, kubeconfig: '/k' }, env).bootstrap?.endpoints, [{ ip: '198.18.0.10', port: 6443 }]);
  assert.deepEqual(daemonConfig({ ...flags, kubeconfig: '/k', apiOutageBound: '2s', metricsAddress: '127.0.0.1:9745' }, {}).source, {
    kind: 'kube',
    kubeconfig: '/k',
    outageBoundMs: 2000,
  });
  assert.equal(daemonConfig({ ...flags, manifests: '/tmp', metricsAddress: 'off' }, {}).metricsAddress, null);
  assert.throws(
    () => daemonConfig({ ...flags, kubeconfig: '/k' }, { ...env, KUBERNETES_APISERVER_ENDPOINTS: 'api.example:6443' }),
    /KUBERNETES_APISERVER_ENDPOINTS: bad address "api.example:6443"/,
  );
  assert.throws(() => daemonConfig({ ...flags, kubeconfig: '/k', manifests: '/tmp' }, {}), /exclude each other/);
  assert.throws(() => daemonConfig({ ...flags, kubeconfig: '/k', metricsAddress: 'nine' }, {}), /bad listen address "nine"/);
  assert.deepEqual(daemonConfig(flags, { KUBERNETES_SERVICE_HOST: '198.19.0.1' }).source, { kind: 'kube', outageBoundMs: 60000 });
});

test('the synthetic objects: the names the API server uses, every endpoint; API slices retire them', () => {
  const { service, slices } = bootstrapObjects({
    service: [{ ip: '198.19.0.1', port: 443 }],
    endpoints: [
      { ip: '198.18.0.10', port: 6443 },
      { ip: '198.18.0.11', port: 6443 },
      { ip: '2001:2::10', port: 6443 },
    ],
  });
  assert.deepEqual(
    [service.metadata?.namespace, service.metadata?.name, service.spec?.clusterIP, service.spec?.ports],
    ['default', 'kubernetes', '198.19.0.1', [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 443 }]],
  );
  assert.deepEqual(
    slices.map((s) => [s.metadata?.name, s.addressType, (s.endpoints ?? []).map((e) => e.addresses[0]), s.ports?.map((p) => `${p.name}:${p.port}`)]),
    [
      ['kubernetes', 'IPv4', ['198.18.0.10', '198.18.0.11'], ['https:6443']],
      ['kubernetes-ipv6-6443', 'IPv6', ['2001:2::10'], ['https:6443']],
    ],
  );
  const events = bootstrapEvents({ service: [{ ip: '198.19.0.1', port: 443 }], endpoints: [{ ip: '198.18.0.10', port: 6443 }] });
  assert.deepEqual(
    events.map((e) => `${e.kind} ${e.key} ${e.origin}`),
    ['Service default/kubernetes bootstrap', 'EndpointSlice default/kubernetes bootstrap'],
  );
  const apiSlice = (name: string, svc: string): ObjectEvent => ({
    type: 'upsert',
    kind: 'EndpointSlice',
    key: `default/${name}`,
    origin: 'api',
    observedAt: 0,
    object: { addressType: 'IPv4', endpoints: [], metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } } },
  });
  const synthetic = ['default/kubernetes', 'default/kubernetes-ipv6-6443'];
  assert.deepEqual(
    obsoleteBootstrapSlices(apiSlice('kubernetes', 'kubernetes'), synthetic),
    ['default/kubernetes-ipv6-6443'],
    'same key: replaced in place, the others retired',
  );
  assert.deepEqual(obsoleteBootstrapSlices(apiSlice('kubernetes-x7k2p', 'kubernetes'), synthetic), synthetic);
  assert.deepEqual(obsoleteBootstrapSlices(apiSlice('web-1', 'web'), synthetic), []);
});
