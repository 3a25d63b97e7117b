// Topology-aware routing and internalTrafficPolicy (model/endpoints.ts, model/services.ts,
// service-sync's zone wiring) against kube-proxy's pkg/proxy/topology.go: hints used only when
// every ready endpoint has one and one is for this node's zone (else all endpoints, with the
// reason), never for the Local-policy sets; iTP=Local drops without a local endpoint.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { computeService } from '../../src/model/services.js';
import { topologyDecision, type Endpoint } from '../../src/model/endpoints.js';
import type { Backend, Frontend, NodeContext } from '../../src/model/service-types.js';
import { frontendEntries } from '../../src/dataplane/frontend-entries.js';
import { enums } from '../../src/bpf/index.js';
import { ServiceSync } from '../../src/dataplane/service-sync.js';
import { Store } from '../../src/sources/store.js';
import { memoryLogger } from '../../src/log.js';
import { fakeMaps } from './fake-maps.js';
import { NODE, slice, svc, type Ep } from './model-helpers.js';

const FF = enums.weir_frontend_flags;
const addrs = (bs: readonly Backend[]) => bs.map((b) => b.address);
function fes(s: V1Service, eps: Ep[], node: NodeContext = NODE): Frontend[] {
  return computeService(s, [slice(`${s.metadata!.name}-1`, s.metadata!.name!, eps)], node)?.frontends ?? [];
}
function one(frontends: Frontend[], kind: Frontend['kind']): Frontend {
  const f = frontends.filter((x) => x.kind === kind && x.family === 4);
  assert.equal(f.length, 1, `one ${kind}: ${f.map((x) => x.id).join(',')}`);
  return f[0]!;
}
const fallback = (s: V1Service, eps: Ep[], node: NodeContext = NODE) =>
  computeService(s, [slice(`${s.metadata!.name}-1`, s.metadata!.name!, eps)], node)!.info.topologyFallback;

// node-a is in zone-1 (NODE). Two endpoints hinted for zone-1 (one on this node), one for zone-2.
const HINTED: Ep[] = [
  { ip: '198.18.1.10', node: 'node-a', zone: 'zone-1', zoneHints: ['zone-1'] },
  { ip: '198.18.2.11', node: 'node-b', zone: 'zone-1', zoneHints: ['zone-1'] },
  { ip: '198.18.3.12', node: 'node-c', zone: 'zone-2', zoneHints: ['zone-2'] },
];
const ALL = ['198.18.1.10', '198.18.2.11', '198.18.3.12'];
const SAME_ZONE = ['198.18.1.10', '198.18.2.11'];
const NP = { type: 'NodePort' as const, ports: [{ name: 'http', port: 80, nodePort: 30080, protocol: 'TCP' }] };

test('zone hints: only this zone, for ClusterIP and for the Cluster set of NodePorts (both scopes)', () => {
  assert.deepEqual(addrs(one(fes(svc('web'), HINTED), 'ClusterIP').backends), SAME_ZONE);
  const np = fes(svc('np', NP), HINTED);
  for (const kind of ['ClusterIP', 'NodePort'] as const) {
    assert.deepEqual(addrs(one(np, kind).backends), SAME_ZONE, kind);
    assert.deepEqual(addrs(one(np, kind).inClusterBackends), SAME_ZONE, kind);
  }
  assert.equal(fallback(svc('web'), HINTED), null);
  // the other zone's node gets the other zone's endpoint
  assert.deepEqual(addrs(one(fes(svc('web'), HINTED, { ...NODE, nodeName: 'node-c', zone: 'zone-2' }), 'ClusterIP').backends), ['198.18.3.12']);
});

test('zone hints: an endpoint hinted for several zones serves each of them', () => {
  const eps: Ep[] = [
    { ip: '198.18.1.10', zoneHints: ['zone-1', 'zone-2'] },
    { ip: '198.18.2.11', zoneHints: ['zone-2'] },
  ];
  assert.deepEqual(addrs(one(fes(svc('web'), eps), 'ClusterIP').backends), ['198.18.1.10']);
  assert.deepEqual(addrs(one(fes(svc('web'), eps, { ...NODE, zone: 'zone-2' }), 'ClusterIP').backends), ['198.18.1.10', '198.18.2.11']);
});

test('fallbacks to every endpoint, each with its reason', () => {
  const s = svc('web');
  // this zone has no hinted endpoint
  const other = { ...NODE, zone: 'zone-9' };
  assert.deepEqual(addrs(one(fes(s, HINTED, other), 'ClusterIP').backends), ALL);
  assert.equal(fallback(s, HINTED, other), 'http/TCP IPv4: no endpoint hinted for zone zone-9');
  // node without a zone label (zone '' or unset)
  for (const node of [
    { ...NODE, zone: '' },
    { nodeName: 'node-a', nodeAddresses: [] },
  ]) {
    assert.deepEqual(addrs(one(fes(s, HINTED, node), 'ClusterIP').backends), ALL);
    assert.equal(fallback(s, HINTED, node), 'http/TCP IPv4: node has no topology.kubernetes.io/zone label');
  }
  // one ready endpoint without a hint
  const partial: Ep[] = [...HINTED.slice(0, 2), { ip: '198.18.3.12', zone: 'zone-2' }];
  assert.deepEqual(addrs(one(fes(s, partial), 'ClusterIP').backends), ALL);
  assert.equal(fallback(s, partial), 'http/TCP IPv4: a ready endpoint has no zone hint');
  // no hints at all: nothing to report
  const plain = HINTED.map(({ ip, node }) => ({ ip, node: node! }));
  assert.deepEqual(addrs(one(fes(s, plain), 'ClusterIP').backends), ALL);
  assert.equal(fallback(s, plain), null);
});

test('a not-ready endpoint without a hint does not disable hints (only ready endpoints count)', () => {
  const eps: Ep[] = [...HINTED, { ip: '198.18.3.13', ready: false }];
  assert.deepEqual(addrs(one(fes(svc('web'), eps), 'ClusterIP').backends), SAME_ZONE);
});

test('no ready endpoint: serving-terminating ones of every zone, hints ignored', () => {
  const eps: Ep[] = HINTED.map((e) => ({ ...e, ready: false, serving: true, terminating: true }));
  assert.deepEqual(addrs(one(fes(svc('web'), eps), 'ClusterIP').backends), ALL);
});

test('node hints (PreferSameNode) beat zone hints; none for this node → zone hints', () => {
  const eps: Ep[] = HINTED.map((e, i) => ({ ...e, nodeHints: [i === 1 ? 'node-a' : 'node-x'] }));
  assert.deepEqual(addrs(one(fes(svc('web'), eps), 'ClusterIP').backends), ['198.18.2.11']);
  assert.deepEqual(addrs(one(fes(svc('web'), eps, { ...NODE, nodeName: 'node-q' }), 'ClusterIP').backends), SAME_ZONE);
});

test('trafficDistribution and the topology-mode annotations do not change selection: the hints decide (kube-proxy since GA)', () => {
  const variants: V1Service[] = [
    svc('web', { trafficDistribution: 'PreferClose' }),
    svc('web', { trafficDistribution: 'PreferSameZone' }),
    { ...svc('web'), metadata: { name: 'web', namespace: 'default', annotations: { 'service.kubernetes.io/topology-mode': 'Auto' } } },
    { ...svc('web'), metadata: { name: 'web', namespace: 'default', annotations: { 'service.kubernetes.io/topology-aware-hints': 'auto' } } },
    svc('web'),
  ];
  for (const v of variants) {
    assert.deepEqual(addrs(one(fes(v, HINTED), 'ClusterIP').backends), SAME_ZONE);
    assert.deepEqual(
      addrs(
        one(
          fes(
            v,
            HINTED.map(({ ip }) => ({ ip })),
          ),
          'ClusterIP',
        ).backends,
      ),
      ALL,
    );
  }
});

test('topologyDecision: modes and reasons', () => {
  const ep = (ready: boolean, zoneHints: string[], nodeHints: string[] = []): Endpoint => ({
    backend: { address: '198.18.1.1', port: 80, nodeName: '', isLocal: false, ready, serving: ready, terminating: false, zone: '' },
    zoneHints,
    nodeHints,
  });
  assert.deepEqual(topologyDecision([], 'n', 'z'), { mode: '', ignored: null });
  assert.deepEqual(topologyDecision([ep(false, ['z'])], 'n', 'z'), { mode: '', ignored: null });
  assert.deepEqual(topologyDecision([ep(true, ['z'])], 'n', 'z'), { mode: 'PreferSameZone', ignored: null });
  assert.deepEqual(topologyDecision([ep(true, ['z'], ['n'])], 'n', 'z'), { mode: 'PreferSameNode', ignored: null });
  assert.deepEqual(topologyDecision([ep(true, [], ['m'])], 'n', 'z'), { mode: '', ignored: 'no endpoint hinted for node n' });
  assert.deepEqual(topologyDecision([ep(true, [], ['n']), ep(true, [])], 'n', 'z'), { mode: '', ignored: 'a ready endpoint has no node hint' });
});

// ---- internalTrafficPolicy / externalTrafficPolicy matrix -----------------------------------

test('iTP Local: ClusterIP gets the local endpoint only, hints ignored; none local → DROP entry (not REJECT)', () => {
  const s = svc('web', { internalTrafficPolicy: 'Local' });
  // the local endpoint is hinted for zone-1; a local endpoint hinted elsewhere is still used
  const eps: Ep[] = HINTED.map((e) => (e.node === 'node-a' ? { ...e, zoneHints: ['zone-2'] } : e));
  const f = one(fes(s, eps), 'ClusterIP');
  assert.deepEqual(addrs(f.backends), ['198.18.1.10']);
  assert.equal(f.localOnly, true);
  const onNodeC = one(fes(s, HINTED, { ...NODE, nodeName: 'node-c', zone: 'zone-2' }), 'ClusterIP');
  assert.deepEqual(addrs(onNodeC.backends), ['198.18.3.12']);
  const none = one(fes(s, HINTED, { ...NODE, nodeName: 'node-z' }), 'ClusterIP');
  assert.deepEqual(none.backends, []);
  assert.equal(none.reject, false);
  const entries = frontendEntries(none);
  assert.ok(typeof entries !== 'string');
  assert.equal(entries.length, 1);
  assert.ok(entries[0]!.flags & FF.WEIR_FRONTEND_DROP, 'drop');
  assert.equal(entries[0]!.flags & FF.WEIR_FRONTEND_REJECT, 0, 'not reject');
  // no endpoint anywhere: reject (kube-proxy: the service has no endpoints)
  const empty = one(fes(s, []), 'ClusterIP');
  assert.equal(empty.reject, true);
});

test('iTP Local + NodePort: ClusterIP local; the NodePort (external and pods) uses the Cluster set with topology', () => {
  const s = svc('np', { ...NP, internalTrafficPolicy: 'Local' });
  const f = fes(s, HINTED, { ...NODE, nodeName: 'node-z' });
  assert.deepEqual(one(f, 'ClusterIP').backends, []);
  assert.equal(one(f, 'ClusterIP').reject, false);
  assert.deepEqual(addrs(one(f, 'NodePort').backends), SAME_ZONE);
  assert.deepEqual(addrs(one(f, 'NodePort').inClusterBackends), SAME_ZONE);
  assert.equal(one(f, 'NodePort').localOnly, false);
});

test('eTP Local: external clients get the local set (hints ignored), pods and ClusterIP the zone set', () => {
  const s = svc('np', { ...NP, externalTrafficPolicy: 'Local' });
  const f = fes(s, HINTED);
  assert.deepEqual(addrs(one(f, 'NodePort').backends), ['198.18.1.10']);
  assert.deepEqual(addrs(one(f, 'NodePort').inClusterBackends), SAME_ZONE);
  assert.deepEqual(addrs(one(f, 'ClusterIP').backends), SAME_ZONE);
  const entries = frontendEntries(one(f, 'NodePort'));
  assert.ok(typeof entries !== 'string');
  assert.deepEqual(
    entries.map((e) => e.backends.map((b) => b.address)),
    [SAME_ZONE, ['198.18.1.10']],
  );
});

test('eTP Local + iTP Local: both local; without a local endpoint both drop, pods to the NodePort still reach the zone set', () => {
  const s = svc('np', { ...NP, externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' });
  const here = fes(s, HINTED);
  assert.deepEqual(addrs(one(here, 'ClusterIP').backends), ['198.18.1.10']);
  assert.deepEqual(addrs(one(here, 'NodePort').backends), ['198.18.1.10']);
  const away = fes(s, HINTED, { ...NODE, nodeName: 'node-z' });
  for (const kind of ['ClusterIP', 'NodePort'] as const) {
    assert.deepEqual(one(away, kind).backends, [], kind);
    assert.equal(one(away, kind).reject, false, kind);
  }
  assert.deepEqual(addrs(one(away, 'NodePort').inClusterBackends), SAME_ZONE);
});

// ---- wiring: the zone comes from this node's Node object ------------------------------------

function nodeObj(name: string, zone?: string): V1Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, ...(zone ? { labels: { 'topology.kubernetes.io/zone': zone } } : {}) } };
}

test('ServiceSync: the zone label of this node decides; a label change re-syncs in full, other nodes do not', async () => {
  const store = new Store();
  const put = (kind: 'Service' | 'EndpointSlice' | 'Node', key: string, object: V1Service | V1EndpointSlice | V1Node) =>
    store.apply({ type: 'upsert', kind, key, object, origin: 'test', observedAt: Date.now() } as never);
  put('Service', 'default/web', svc('web'));
  put('EndpointSlice', 'default/web-1', slice('web-1', 'web', HINTED));
  put('Node', 'node-a', nodeObj('node-a', 'zone-2'));
  const { fake, maps } = fakeMaps();
  const log = memoryLogger();
  const reasons: string[] = [];
  const sync = new ServiceSync({ maps, inputs: store, log, onSync: (r) => reasons.push(r.reason) });
  const node: NodeContext = { nodeName: 'node-a', nodeAddresses: [] };
  sync.full('start', node);
  assert.equal(fake.backends.data.size, 1, 'zone-2: one backend');

  const tick = () => new Promise((r) => setTimeout(r, 20));
  const change = (key: string, zone?: string) => {
    const c = put('Node', key, nodeObj(key, zone))!;
    sync.changed(c, Date.now());
  };
  change('node-b', 'zone-9');
  await tick();
  assert.deepEqual(reasons, ['start'], 'another node: no sync');
  change('node-a', 'zone-1');
  await tick();
  assert.deepEqual(reasons, ['start', 'node-zone']);
  assert.equal(fake.backends.data.size, 2, 'zone-1: two backends');
  assert.ok(log.lines.some((l) => l.includes('node zone changed') && l.includes('from=zone-2') && l.includes('zone=zone-1')));
  // the label removed: no topology filtering, and the fallback is logged once
  change('node-a');
  await tick();
  assert.equal(fake.backends.data.size, 3, 'no zone: all three');
  const notes = () => log.lines.filter((l) => l.includes('topology hints ignored'));
  assert.equal(notes().length, 1);
  assert.match(notes()[0]!, /service=default\/web .*reason="http\/TCP IPv4: node has no topology.kubernetes.io\/zone label"/);
  // an unrelated change to the service does not log it again
  sync.changed(put('EndpointSlice', 'default/web-1', slice('web-1', 'web', [...HINTED, { ip: '198.18.3.14', zoneHints: ['zone-2'] }]))!, Date.now());
  await tick();
  assert.equal(fake.backends.data.size, 4);
  assert.equal(notes().length, 1);
  sync.stop();
});

test('ServiceSync: what a Node object lacks is logged once when it changes, and at start', () => {
  const store = new Store();
  const put = (object: V1Node) => store.apply({ type: 'upsert', kind: 'Node', key: object.metadata!.name!, object, origin: 'test', observedAt: 0 })!;
  put({ metadata: { name: 'node-a' }, spec: { podCIDRs: ['198.18.1.0/99'] }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } });
  const log = memoryLogger();
  const sync = new ServiceSync({ maps: fakeMaps().maps, inputs: store, log });
  sync.full('start', { nodeName: 'node-a', nodeAddresses: [] });
  const skipped = () => log.lines.filter((l) => l.includes('node field skipped'));
  assert.deepEqual(skipped(), ['warn node field skipped node=node-a reason=bad_pod_cidr detail="podCIDR \\"198.18.1.0/99\\""']);
  // the same node again, another label: nothing new to say
  sync.changed(
    put({
      metadata: { name: 'node-a', labels: { a: 'b' } },
      spec: { podCIDRs: ['198.18.1.0/99'] },
      status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] },
    }),
    0,
  );
  assert.equal(skipped().length, 1);
  sync.changed(put({ metadata: { name: 'node-b' } }), 0);
  assert.equal(skipped().length, 2);
  assert.match(skipped()[1]!, /node=node-b reason=no_internal_ip/);
  sync.stop();
});
