// The kube-proxy DaemonSet check, with the real client library against an HTTP endpoint that
// answers as the API server does: the DaemonSet object when it exists, a 404 Status when not.

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { findKubeProxyDaemonSet } from '../../src/sources/kube-proxy-daemonset.js';

let server: Server;
let deployed = true;
const paths: string[] = [];

before(async () => {
  server = createServer((req, res) => {
    paths.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    if (deployed && req.url === '/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy') {
      res.end(
        JSON.stringify({
          apiVersion: 'apps/v1',
          kind: 'DaemonSet',
          metadata: { name: 'kube-proxy', namespace: 'kube-system' },
          spec: { selector: {}, template: {} },
          status: { desiredNumberScheduled: 3, numberReady: 2, currentNumberScheduled: 3, numberMisscheduled: 0 },
        }),
      );
      return;
    }
    res.statusCode = 404;
    res.end(
      JSON.stringify({ apiVersion: 'v1', kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404, message: 'daemonsets.apps "kube-proxy" not found' }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
after(() => new Promise<void>((r) => server.close(() => r())));

function config(): KubeConfig {
  const kc = new KubeConfig();
  const { port } = server.address() as AddressInfo;
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

test('a deployed kube-proxy DaemonSet is found with its counts; a missing one is not', async () => {
  deployed = true;
  assert.deepEqual(await findKubeProxyDaemonSet(config()), { present: true, desired: 3, ready: 2 });
  assert.equal(paths.at(-1), '/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy', 'one GET of that one name');
  deployed = false;
  assert.deepEqual(await findKubeProxyDaemonSet(config()), { present: false });
});
