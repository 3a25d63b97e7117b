// How the source finds the API server: a kubeconfig file (--kubeconfig) or the pod's service
// account (KUBERNETES_SERVICE_HOST/PORT, token and CA files), both against the fake server over
// TLS with token auth, and readable errors when neither is there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer } from './fake-apiserver.js';
import { harness, kubeConfigFor, service } from './harness.js';
import { loadKubeConfig } from '../../src/sources/kube.js';
import { OBJECT_KINDS } from '../../src/sources/types.js';

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'weir-kubeconfig-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function withEnv(vars: Record<string, string | undefined>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

test('--kubeconfig FILE: TLS with the CA from the file, bearer token', async () => {
  const server = new FakeApiServer({ tls: true, token: 'from-kubeconfig' });
  await server.start();
  server.apply(service('shop', 'web', '198.18.0.10'));
  await withTmp(async (dir) => {
    const file = join(dir, 'kubeconfig.yaml');
    await writeFile(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: fake',
        '  cluster:',
        `    server: ${server.url}`,
        `    certificate-authority-data: ${Buffer.from(server.caPem!).toString('base64')}`,
        'users:',
        '- name: weir',
        '  user:',
        '    token: from-kubeconfig',
        'contexts:',
        '- name: fake',
        '  context: {cluster: fake, user: weir}',
        'current-context: fake',
        '',
      ].join('\n'),
    );
    const h = harness(loadKubeConfig({ kubeconfig: file }));
    try {
      await h.waitFor((e) => e.type === 'synced');
      assert.equal(h.store.size('Service'), 1);
      assert.ok(server.requests.every((r) => r.status !== 401));
    } finally {
      await h.stop();
    }
  });
  await server.stop();
});

test('in-cluster: KUBERNETES_SERVICE_HOST/PORT, the service-account token and CA', async () => {
  const server = new FakeApiServer({ tls: true, token: 'from-service-account' });
  await server.start();
  server.apply(service('shop', 'web', '198.18.0.10'));
  await withTmp(async (dir) => {
    const sa = join(dir, 'var/run/secrets/kubernetes.io/serviceaccount');
    await mkdir(sa, { recursive: true });
    await writeFile(join(sa, 'token'), 'from-service-account');
    await writeFile(join(sa, 'ca.crt'), server.caPem!);
    await writeFile(join(sa, 'namespace'), 'kube-system');
    const restore = withEnv({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(server.url).port });
    let h: ReturnType<typeof harness> | undefined;
    try {
      const kc = loadKubeConfig({ serviceAccountPrefix: dir });
      assert.equal(kc.getCurrentCluster()?.server, server.url);
      h = harness(kc);
      await h.waitFor((e) => e.type === 'synced');
      assert.equal(h.store.size('Service'), 1);
      assert.ok(server.requests.length > 0 && server.requests.every((r) => r.status !== 401), 'the token file was sent');
    } finally {
      restore();
      await h?.stop();
    }
  });
  await server.stop();
});

test('a wrong token is retried with backoff and reported, not fatal', async () => {
  const server = new FakeApiServer({ tls: true, token: 'right' });
  await server.start();
  // a bound wide enough that no event-loop stall reaches it before the first refusals are seen
  const BOUND = 3000;
  const t0 = Date.now();
  const h = harness(kubeConfigFor(server, 'wrong'), { outageBoundMs: BOUND });
  const waitUntil = async (f: () => boolean, what: string) => {
    for (const deadline = Date.now() + 15_000; !f(); await new Promise((r) => setTimeout(r, 10))) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    }
  };
  try {
    await waitUntil(() => h.source.counters.errors > 0, 'the first refusal seen by the source');
    assert.equal(h.source.health().outage, false);
    assert.equal(h.source.health().apiReachable, true, 'the server answers');
    await waitUntil(() => h.source.health().outage, 'the outage');
    const ms = Date.now() - t0;
    console.log(`# wrong token: outage reported ${ms} ms after the start (bound ${BOUND} ms)`);
    assert.ok(ms >= BOUND, `an outage only after the bound: ${ms} ms`);
    assert.match(h.source.notReady()[0] ?? '', /^kubernetes API unreachable for .*(401|Unauthorized)/);
    assert.equal(h.source.health().connected, false, 'answering with 401 past the bound is not connected');
    assert.ok(server.requests.filter((r) => r.status === 401).length >= OBJECT_KINDS.length);
    assert.ok(h.source.counters.errors >= OBJECT_KINDS.length);
    assert.match(h.source.health().lastError ?? '', /401|Unauthorized/);
    assert.equal(h.source.notReady()[1], `kubernetes informers not synced: ${OBJECT_KINDS.join(', ')}`);
    assert.equal(h.source.health().synced, false);
  } finally {
    await h.stop();
    await server.stop();
  }
});

test('no kubeconfig and not in a pod, or a missing file: one readable error', () => {
  const restore = withEnv({ KUBERNETES_SERVICE_HOST: undefined, KUBERNETES_SERVICE_PORT: undefined });
  try {
    assert.throws(() => loadKubeConfig({}), /no --kubeconfig and not in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset/);
    assert.throws(() => loadKubeConfig({ kubeconfig: '/nonexistent/kubeconfig' }), /--kubeconfig \/nonexistent\/kubeconfig: no such file/);
  } finally {
    restore();
  }
  const restore2 = withEnv({ KUBERNETES_SERVICE_HOST: '198.18.0.1', KUBERNETES_SERVICE_PORT: '443' });
  try {
    assert.throws(() => loadKubeConfig({ serviceAccountPrefix: '/nonexistent' }), /serviceaccount\/token is missing/);
  } finally {
    restore2();
  }
});
