// Issue 4, must-show 4: the API server bootstrap. The fake API server runs in its own
// namespace; the node's kubeconfig names only the `kubernetes` ClusterIP (198.19.240.1:443,
// which nothing routes: without weir a connect to it fails), and the daemon gets just the two
// environment variables. It programs the synthetic `kubernetes` Service, attaches, and its own
// client (the daemon runs inside the socket-LB cgroup, as a hostNetwork pod under the cgroup2
// root) reaches the API server through weir's connect-time LB; it syncs and turns ready. The
// API's real `kubernetes` Service and EndpointSlice then replace the synthetic ones with no
// rewrite of the frontend (same key, same id), and a pod reaches the API server through the
// ClusterIP over the TC path.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BpfMap, codecFor, typedMap } from '../../src/bpf/index.js';
import { readCounters } from '../../src/dataplane/counters.js';
import { OBJECT_KINDS } from '../../src/sources/types.js';
import { runCleanups } from '../lib/cleanup.js';
import type { Pod } from '../lib/lab.js';
import { API_ADDRESS, API_PORT, endpointSlice, kubeLab, mapsView, service, TOKEN, type KubeLab } from './kube-lab.js';

const KUBERNETES_IP = '198.19.240.1';
const KUBERNETES_URL = `https://${KUBERNETES_IP}:443`;

let k: KubeLab;
let client: Pod;

before(async () => {
  k = await kubeLab('kube-bootstrap', {
    certIps: [KUBERNETES_IP],
    kubeconfigServer: KUBERNETES_URL,
    weir: {
      connectTimeLb: 'on',
      daemonInCgroup: true,
      env: { KUBERNETES_SERVICE_IPS_PORTS: `${KUBERNETES_IP}:443`, KUBERNETES_APISERVER_ENDPOINTS: `${API_ADDRESS}:${API_PORT}` },
    },
  });
  client = await k.lab.pod(k.node, 'client');
  // what a real API server holds: its own `kubernetes` Service and EndpointSlice, and more
  await k.server.apply([
    {
      ...service('default', 'kubernetes', KUBERNETES_IP, 443, API_PORT),
      spec: {
        type: 'ClusterIP',
        clusterIP: KUBERNETES_IP,
        clusterIPs: [KUBERNETES_IP],
        ipFamilies: ['IPv4'],
        sessionAffinity: 'None',
        ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: API_PORT }],
      },
    },
    {
      ...endpointSlice('default', 'kubernetes', 'kubernetes', [API_ADDRESS], API_PORT, null),
      ports: [{ name: 'https', port: API_PORT, protocol: 'TCP' }],
    },
    service('default', 'web', '198.19.240.2'),
    endpointSlice('default', 'web', 'web-1', ['198.19.241.1', '198.19.241.2']),
  ]);
});
after(async () => {
  await k?.lab.destroy();
  await runCleanups();
});

test('MS4: only the two environment variables: weir reaches the API server through its own dataplane, syncs, and is ready', async () => {
  // the control: without weir, the ClusterIP leads nowhere
  const before = await k.node.ns.curl(`${KUBERNETES_URL}/version`, { check: false, timeoutMs: 1500, args: ['-k'], cgroup: k.weir.cgroup });
  assert.equal(before.status, 0, `the kubernetes ClusterIP answered without weir: ${JSON.stringify(before)}`);

  const ready = await k.weir.start(20_000);
  const boot = k.weir.events('bootstrap')[0];
  assert.ok(boot, 'event=bootstrap logged');
  assert.deepEqual([boot.service, boot.endpoints, boot.frontends], [`${KUBERNETES_IP}:443`, `${API_ADDRESS}:${API_PORT}`, '1']);
  assert.equal(ready.services, '2', 'synced: kubernetes and web');
  assert.equal((await k.weir.http('/readyz')).status, 200);
  assert.deepEqual(mapsView(k.weir.pinDir), {
    [`${KUBERNETES_IP}:443/6`]: [`${API_ADDRESS}:${API_PORT}`],
    '198.19.240.2:80/6': ['198.19.241.1:8080', '198.19.241.2:8080'],
  });
  // the API server's requests came through weir's socket LB: connects translated
  const counters = readCounters(BpfMap.openPinned(join(k.weir.pinDir, 'weir_counters')));
  const translated = counters.filter((r) => r.hook === 'sock' && r.reason === 'sock_lb_translated').reduce((a, r) => a + Number(r.packets), 0);
  assert.ok(translated >= 1, `no connect was translated by the socket LB: ${JSON.stringify(counters.map((r) => `${r.hook}/${r.reason}=${r.packets}`))}`);
  const info = await k.server.info();
  assert.ok(
    info.counters.lists >= OBJECT_KINDS.length && info.openWatches === OBJECT_KINDS.length,
    `the API server served the daemon: ${JSON.stringify(info)}`,
  );

  // the real objects replaced the synthetic ones (same keys) without touching the frontend
  assert.ok(
    k.weir.events('bootstrap replaced').some((l) => l.key === 'default/kubernetes'),
    "the API's EndpointSlice replaced the synthetic one",
  );
  const fe = typedMap(BpfMap.openPinned(join(k.weir.pinDir, 'weir_frontend4')), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
  const entry = () => JSON.stringify(fe.get({ address: KUBERNETES_IP, port: 443, protocol: 6, scope: 0 } as never));
  const metrics = (await k.weir.http('/metrics')).body;
  // bootstrap wrote 1 frontend + 1 backend; the start sync wrote only web's (1 + 2)
  assert.equal(boot.writes, '2');
  assert.equal(ready.writes, '3', `the start sync rewrote the kubernetes service: writes=${ready.writes}`);
  assert.match(metrics, /^weir_map_writes_total\{map="weir_frontend4",op="update"\} 2$/m);
  assert.match(metrics, /^weir_map_writes_total\{map="weir_backend4",op="update"\} 3$/m);

  // a pod reaches the API server through the ClusterIP (TC path: the pod is outside the cgroup)
  const r = await client.ns.curl(`${KUBERNETES_URL}/version`, { args: ['-k', '-H', `Authorization: Bearer ${TOKEN}`], timeoutMs: 3000 });
  assert.equal(r.status, 200, JSON.stringify(r));
  assert.equal(r.remoteIp, KUBERNETES_IP);

  // API changes to the kubernetes endpoints arrive through the API the daemon reaches through it
  const id = entry();
  await k.server.apply([
    {
      ...endpointSlice('default', 'kubernetes', 'kubernetes', [API_ADDRESS, '198.18.0.101'], API_PORT, null),
      ports: [{ name: 'https', port: API_PORT, protocol: 'TCP' }],
    },
  ]);
  await k.weir.waitFor('sync', { reason: 'change' }, 3000);
  assert.deepEqual(mapsView(k.weir.pinDir)[`${KUBERNETES_IP}:443/6`], [`${API_ADDRESS}:${API_PORT}`, `198.18.0.101:${API_PORT}`]);
  assert.equal(JSON.parse(entry()).id, JSON.parse(id).id, 'same frontend id');
  fe.map.close();
});
