// What feeds the new control-plane metrics, without a daemon: the service pipeline's change
// queue (kube-proxy's *_changes_pending / *_changes_total / last_queued) and a conntrack GC
// pass (weir_conntrack_gc_*: entries deleted by the timeout that expired, entries alive).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { enums, type WeirCt4, type WeirCt4Key } from '../../src/bpf/index.js';
import { IPPROTO } from '../../src/bpf/ip.js';
import { ConntrackGc, planConntrackGc, type CtGcPass } from '../../src/dataplane/conntrack-gc.js';
import { ServiceSync, type ChangeQueueFigures } from '../../src/dataplane/service-sync.js';
import { memoryLogger } from '../../src/log.js';
import { Store } from '../../src/sources/store.js';
import { FakeMap, fakeMaps } from '../unit/fake-maps.js';

const service = (name: string, port = 80) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { type: 'ClusterIP', clusterIP: '198.19.0.10', clusterIPs: ['198.19.0.10'], ipFamilies: ['IPv4'], ports: [{ name: 'http', port, protocol: 'TCP' }] },
});
const slice = (name: string, svc: string, ips: string[]) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
});

test('the change queue: Service and EndpointSlice changes counted and pending per service until a sync takes them', async () => {
  const store = new Store();
  const put = (kind: 'Service' | 'EndpointSlice', key: string, object: object) =>
    store.apply({ type: 'upsert', kind, key, object, origin: 'test', observedAt: Date.now() } as never)!;
  put('Service', 'default/web', service('web'));
  put('EndpointSlice', 'default/web-1', slice('web-1', 'web', ['198.18.1.10']));
  const queue: ChangeQueueFigures[] = [];
  const sync = new ServiceSync({ maps: fakeMaps().maps, inputs: store, log: memoryLogger(), onQueue: (q) => queue.push(q) });
  sync.full('start', { nodeName: 'node-a', nodeAddresses: [] });
  assert.deepEqual(queue, [], 'a full sync queues nothing');
  // two slices of one service and its Service object, in one turn of the event loop
  sync.changed(put('EndpointSlice', 'default/web-1', slice('web-1', 'web', ['198.18.1.10', '198.18.1.11'])), Date.now());
  sync.changed(put('EndpointSlice', 'default/web-2', slice('web-2', 'web', ['198.18.1.12'])), Date.now());
  sync.changed(put('Service', 'default/web', service('web', 81)), Date.now());
  sync.changed(put('Service', 'default/db', service('db', 5432)), Date.now());
  assert.deepEqual(queue, [
    { queued: 'endpoints', servicesPending: 0, endpointsPending: 1 },
    { queued: 'endpoints', servicesPending: 0, endpointsPending: 1 },
    { queued: 'service', servicesPending: 1, endpointsPending: 1 },
    { queued: 'service', servicesPending: 2, endpointsPending: 1 },
  ]);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(queue.at(-1), { servicesPending: 0, endpointsPending: 0 }, 'the sync took the queue');
  assert.equal(queue.length, 5);
  sync.stop();
});

test("kube-proxy's no_local_endpoints: Local service ports whose endpoints are all elsewhere, internal and external", () => {
  const store = new Store();
  const put = (kind: 'Service' | 'EndpointSlice', key: string, object: object) =>
    store.apply({ type: 'upsert', kind, key, object, origin: 'test', observedAt: 0 } as never);
  const local = (name: string, ip: string, spec: object) => {
    const svc = service(name);
    return { ...svc, spec: { ...svc.spec, clusterIP: ip, clusterIPs: [ip], ...spec } };
  };
  const elsewhere = (name: string, svc: string, node: string) => {
    const sl = slice(name, svc, ['198.18.2.10']);
    return { ...sl, endpoints: sl.endpoints.map((e) => ({ ...e, nodeName: node })) };
  };
  // eTP=Local NodePort, its endpoint on node-b: external (its NodePort frontends count once)
  put(
    'Service',
    'default/np',
    local('np', '198.19.0.20', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080, protocol: 'TCP' }] }),
  );
  put('EndpointSlice', 'default/np-1', elsewhere('np-1', 'np', 'node-b'));
  // iTP=Local ClusterIP, endpoint on node-b: internal
  put('Service', 'default/itp', local('itp', '198.19.0.21', { internalTrafficPolicy: 'Local' }));
  put('EndpointSlice', 'default/itp-1', elsewhere('itp-1', 'itp', 'node-b'));
  // the same with an endpoint here, and one with no endpoints at all (rejected, not counted)
  put('Service', 'default/here', local('here', '198.19.0.22', { internalTrafficPolicy: 'Local' }));
  put('EndpointSlice', 'default/here-1', elsewhere('here-1', 'here', 'node-a'));
  put(
    'Service',
    'default/none',
    local('none', '198.19.0.23', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30081, protocol: 'TCP' }] }),
  );
  const sync = new ServiceSync({ maps: fakeMaps().maps, inputs: store, log: memoryLogger() });
  assert.deepEqual(sync.noLocalEndpoints(), { internal: 0, external: 0 }, 'nothing before the first sync');
  sync.full('start', { nodeName: 'node-a', nodeAddresses: ['198.18.0.1', '198.18.0.2'] });
  assert.deepEqual(sync.noLocalEndpoints(), { internal: 1, external: 1 });
  sync.stop();
});

const S = 1_000_000_000n;
const CLIENT = '198.18.1.50';
const VIP = '198.19.0.10';
const BACKEND = '198.18.1.10';

/** Both entries of a NATed flow client:cport -> VIP:80 -> BACKEND:8080, last seen at `seen`. */
function flow(cport: number, protocol: number, seen: bigint, tcpFlags = 0): [WeirCt4Key, WeirCt4][] {
  const base = { policy: 0, frontend_id: 1, tunnel_node: '0.0.0.0', ifindex: 0, pad: 0, created_ns: 0n, last_seen_ns: seen, packets: 1n, bytes: 60n };
  return [
    [
      { saddr: CLIENT, daddr: VIP, sport: cport, dport: 80, protocol },
      { ...base, nat_saddr: CLIENT, nat_daddr: BACKEND, nat_sport: cport, nat_dport: 8080, flags: 0, tcp_flags_seen: tcpFlags },
    ],
    [
      { saddr: BACKEND, daddr: CLIENT, sport: 8080, dport: cport, protocol },
      { ...base, nat_saddr: VIP, nat_daddr: CLIENT, nat_sport: 80, nat_dport: cport, flags: enums.weir_ct_flags.WEIR_CT_REPLY, tcp_flags_seen: tcpFlags },
    ],
  ] as unknown as [WeirCt4Key, WeirCt4][];
}

test('a conntrack GC pass: entries deleted by the timeout that expired, and what is left', async () => {
  const now = 100_000n * S;
  const entries = [
    ...flow(1000, IPPROTO.UDP, now - 61n * S), // udp, idle past 60 s
    ...flow(1001, IPPROTO.UDP, now - 59n * S), // stays
    ...flow(1002, IPPROTO.TCP, now - 11n * S, 0x11), // FIN seen, idle past 10 s
    ...flow(1003, IPPROTO.TCP, now - 61n * S, 0x02), // SYN only, past 60 s
    ...flow(1004, IPPROTO.TCP, now - 61n * S, 0x12), // established (ACK seen): 6 h
    ...flow(1005, IPPROTO.ICMP, now - 11n * S),
  ];
  assert.deepEqual(planConntrackGc(entries, now).expiredEntries, { udp: 2, tcp_closing: 2, tcp_syn_only: 2, icmp: 2 });
  // a lone entry (its partner already gone) counts once
  assert.deepEqual(planConntrackGc(flow(1006, IPPROTO.UDP, now - 61n * S).slice(0, 1), now).expiredEntries, { udp: 1 });

  const ct4 = new FakeMap<WeirCt4Key, WeirCt4>();
  for (const [k, v] of entries) ct4.set(k, v);
  const passes: CtGcPass[] = [];
  const gc = new ConntrackGc({ 4: ct4 as never }, memoryLogger(), { now: () => now, onPass: (p) => passes.push(p) });
  await gc.run();
  assert.equal(passes.length, 1);
  const { seconds, ...rest } = passes[0]!;
  assert.ok(seconds >= 0);
  assert.deepEqual(rest, { family: 4, map: 'conntrack4', capacity: 0, ok: true, deleted: { udp: 2, tcp_closing: 2, tcp_syn_only: 2, icmp: 2 }, alive: 4 });
  assert.equal(ct4.data.size, 4);
  // a map that fails: a failed pass, nothing deleted
  const broken = {
    chunks: () =>
      ((): never => {
        throw new Error('EBADF');
      })(),
  };
  passes.length = 0;
  await new ConntrackGc({ 6: broken as never }, memoryLogger(), { now: () => now, onPass: (p) => passes.push(p) }).run();
  assert.deepEqual([passes[0]!.family, passes[0]!.ok], [6, false]);
});
