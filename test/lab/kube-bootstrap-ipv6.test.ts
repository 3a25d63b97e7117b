// Issue 14: the API server bootstrap in IPv6. As kube-bootstrap.test.ts, with the `kubernetes`
// Service an IPv6 ClusterIP (2001:2:ff::1:443, which nothing routes) and the API server
// listening on its IPv6 address only: the daemon gets just the two environment variables in
// their IPv6 form, programs the synthetic Service into weir_frontend6 / weir_backend6, and its
// own client reaches the API server through the IPv6 socket LB (connect6); it syncs and turns
// ready, the API's own objects replace the synthetic ones without a rewrite, and a pod
// reaches the API server through the IPv6 ClusterIP over the TC path (from_pod6).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BpfMap, codecFor, typedMap } from '../../src/bpf/index.js';
import { readCounters } from '../../src/dataplane/counters.js';
import { runCleanups } from '../lib/cleanup.js';
import type { Pod } from '../lib/lab.js';
import { API_ADDRESS6, API_PORT, endpointSlice, kubeLab, service, TOKEN, type KubeLab } from './kube-lab.js';

const KUBERNETES_IP6 = '2001:2:ff::1';
const KUBERNETES_URL = `https://[${KUBERNETES_IP6}]:443`;

let k: KubeLab;
let client: Pod;

/** weir_frontend6 (internal scope) as `[address]:port/protocol -> backends`. */
function maps6(pinDir: string): Record<string, string[]> {
  const fe = typedMap(BpfMap.openPinned(join(pinDir, 'weir_frontend6')), codecFor('weir_frontend6_key'), codecFor('weir_frontend6'));
  const be = typedMap(BpfMap.openPinned(join(pinDir, 'weir_backend6')), codecFor('weir_backend6_key'), codecFor('weir_backend6'));
  try {
    const slots = [...be.entries()];
    const out: Record<string, string[]> = {};
    for (const [key, v] of fe.entries()) {
      if (key.scope !== 0) continue;
      out[`[${key.address}]:${key.port}/${key.protocol}`] = slots
        .filter(([s]) => s.frontend_id === v.id && s.slot < v.backend_count)
        .map(([, b]) => `[${b.address}]:${b.port}`)
        .sort();
    }
    return out;
  } finally {
    fe.map.close();
    be.map.close();
  }
}

before(async () => {
  k = await kubeLab('kube-bootstrap6', {
    ipv6: true,
    certIps: [KUBERNETES_IP6],
    kubeconfigServer: KUBERNETES_URL,
    weir: {
      connectTimeLb: 'on',
      daemonInCgroup: true,
      env: { KUBERNETES_SERVICE_IPS_PORTS: `[${KUBERNETES_IP6}]:443`, KUBERNETES_APISERVER_ENDPOINTS: `[${API_ADDRESS6}]:${API_PORT}` },
    },
  });
  client = await k.lab.pod(k.node, 'client');
  // what an IPv6 single-stack API server holds: its own `kubernetes` Service and EndpointSlice
  await k.server.apply([
    {
      ...service('default', 'kubernetes', KUBERNETES_IP6, 443, API_PORT),
      spec: {
        type: 'ClusterIP',
        clusterIP: KUBERNETES_IP6,
        clusterIPs: [KUBERNETES_IP6],
        ipFamilies: ['IPv6'],
        ipFamilyPolicy: 'SingleStack',
        sessionAffinity: 'None',
        ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: API_PORT }],
      },
    },
    {
      ...endpointSlice('default', 'kubernetes', 'kubernetes', [API_ADDRESS6], API_PORT, null),
      addressType: 'IPv6',
      ports: [{ name: 'https', port: API_PORT, protocol: 'TCP' }],
    },
  ]);
});
after(async () => {
  await k?.lab.destroy();
  await runCleanups();
});

test('IPv6 bootstrap: weir reaches an IPv6-only API server through its own IPv6 ClusterIP, syncs, and is ready', async () => {
  // the control: without weir, the IPv6 ClusterIP leads nowhere
  const before = await k.node.ns.curl(`${KUBERNETES_URL}/version`, { check: false, timeoutMs: 1500, args: ['-g', '-k'], cgroup: k.weir.cgroup });
  assert.equal(before.status, 0, `the kubernetes ClusterIP answered without weir: ${JSON.stringify(before)}`);

  const ready = await k.weir.start(20_000);
  const boot = k.weir.events('bootstrap')[0];
  assert.ok(boot, 'event=bootstrap logged');
  assert.deepEqual([boot.service, boot.endpoints, boot.frontends, boot.writes], [`[${KUBERNETES_IP6}]:443`, `[${API_ADDRESS6}]:${API_PORT}`, '1', '2']);
  assert.equal(ready.services, '1', 'synced: kubernetes');
  assert.equal((await k.weir.http('/readyz')).status, 200);
  assert.deepEqual(maps6(k.weir.pinDir), { [`[${KUBERNETES_IP6}]:443/6`]: [`[${API_ADDRESS6}]:${API_PORT}`] });
  // the daemon's requests came through the socket LB's connect6
  const counters = readCounters(BpfMap.openPinned(join(k.weir.pinDir, 'weir_counters')));
  const translated = counters.filter((r) => r.hook === 'sock' && r.reason === 'sock_lb_translated').reduce((a, r) => a + Number(r.packets), 0);
  assert.ok(translated >= 1, `no connect was translated by the socket LB: ${JSON.stringify(counters.map((r) => `${r.hook}/${r.reason}=${r.packets}`))}`);
  const info = await k.server.info();
  assert.ok(info.counters.lists >= 6, `the API server served the daemon: ${JSON.stringify(info)}`);
  // the API's objects replaced the synthetic ones under the same keys: nothing rewritten
  assert.ok(k.weir.events('bootstrap replaced').some((l) => l.key === 'default/kubernetes'));
  assert.equal(ready.writes, '0', `the start sync rewrote the kubernetes service: writes=${ready.writes}`);

  // a pod reaches the API server through the IPv6 ClusterIP (TC path: the pod is outside the cgroup)
  assert.ok(client.ip6, 'the pod has an IPv6 address');
  const r = await client.ns.curl(`${KUBERNETES_URL}/version`, { args: ['-g', '-k', '-H', `Authorization: Bearer ${TOKEN}`], timeoutMs: 3000 });
  assert.equal(r.status, 200, JSON.stringify(r));
  assert.equal(r.remoteIp, KUBERNETES_IP6);
});
