// Slim objects (src/sources/slim.ts): a pod as the API serves it becomes only what weir reads,
// and the model gives the same answers from the slim objects as from the whole ones: policy
// identities, ipcache, endpoints and issues; the node table and kube-proxy's node eligibility;
// every service's frontends and backends. A field the code reads but the tables drop fails here.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';
import { ProxyHealth } from '../../src/metrics/proxy-health.js';
import { buildNodeTable, nodeZone } from '../../src/model/nodes.js';
import { buildPolicyModel, type PolicyModel } from '../../src/model/policy/network-policy.js';
import { buildServiceState } from '../../src/model/services.js';
import { shareEqualParts, slimObject } from '../../src/sources/slim.js';
import { Store } from '../../src/sources/store.js';
import { keyOf, type KindMap, type ObjectKind } from '../../src/sources/types.js';
import type { KubeObject } from '../k8s/fake-apiserver.js';
import { fatEndpointSlice, fatNamespace, fatNetworkPolicy, fatNode, fatPod, fatService } from './slim-fixtures.js';

const ZONES = ['zone-a', 'zone-b'];

/** Three namespaces, four nodes (one tainted for deletion, one being deleted), pods of every kind the model tells apart. */
function cluster(): KubeObject[] {
  const out: KubeObject[] = [];
  const namespaces = ['shop-web', 'shop-db', 'infra'];
  for (const ns of namespaces) out.push(fatNamespace(ns, ns === 'infra' ? { privileged: 'true' } : {}));
  const nodes = ['node-a', 'node-b', 'node-c'];
  nodes.forEach((name, i) => out.push(fatNode({ name, ip: `198.18.0.${i + 1}`, podCIDR: `198.18.${i + 1}.0/24`, zone: ZONES[i % 2]!, toBeDeleted: i === 2 })));
  out.push(fatNode({ name: 'node-d', ip: '198.18.0.4', podCIDR: '198.18.4.0/24', zone: 'zone-b', deleting: true }));
  let n = 0;
  for (const ns of namespaces) {
    for (const app of ['web', 'api']) {
      const svc = `${app}`;
      const eps = [];
      for (let r = 0; r < 3; r++) {
        const node = nodes[n % 3]!;
        const ip = `198.18.${(n % 3) + 1}.${10 + n}`;
        const name = `${app}-7d9c6b-${r}x${n}`;
        out.push(fatPod({ namespace: ns, name, app, node, ip }));
        eps.push({ ip, pod: name, node, zone: ZONES[n % 3 === 2 ? 0 : n % 3]!, ready: r !== 2 });
        n++;
      }
      out.push(
        fatService({
          namespace: ns,
          name: svc,
          clusterIP: `198.19.${namespaces.indexOf(ns)}.${app === 'web' ? 10 : 20}`,
          ...(app === 'api' ? { lbAlgorithm: 'maglev' } : {}),
        }),
      );
      out.push(fatEndpointSlice(ns, svc, `${svc}-abcde`, eps));
    }
    out.push(fatNetworkPolicy(ns, 'web-ingress', 'web'));
  }
  // not endpoints, each for its own reason: host network, finished, failed, no IP yet, a bad IP
  out.push(fatPod({ namespace: 'infra', name: 'node-exporter-a', app: 'node-exporter', node: 'node-a', ip: '198.18.0.1', hostNetwork: true }));
  out.push(fatPod({ namespace: 'infra', name: 'job-done', app: 'job', node: 'node-b', ip: '198.18.2.200', phase: 'Succeeded' }));
  out.push(fatPod({ namespace: 'infra', name: 'job-failed', app: 'job', node: 'node-b', ip: '198.18.2.201', phase: 'Failed' }));
  const pending = fatPod({ namespace: 'infra', name: 'pending', app: 'web', node: 'node-c', ip: '198.18.3.99', phase: 'Pending' });
  delete (pending.status as Record<string, unknown>).podIP;
  delete (pending.status as Record<string, unknown>).podIPs;
  out.push(pending);
  out.push(fatPod({ namespace: 'shop-db', name: 'bad-ip', app: 'api', node: 'node-a', ip: '198.18.1.300' }));
  out.push(fatPod({ namespace: 'shop-web', name: 'dual-stack', app: 'web', node: 'node-a', ip: '198.18.1.77', ip6: '2001:2:1::77' }));
  return out;
}

function byKind<K extends ObjectKind>(objects: readonly KubeObject[], kind: K): KindMap[K][] {
  return objects.filter((o) => o.kind === kind) as unknown as KindMap[K][];
}

/** As the API source keeps them: slim, equal parts shared. */
const slim = (objects: readonly KubeObject[]): KubeObject[] =>
  objects.map((o) => shareEqualParts(o.kind as ObjectKind, slimObject(o.kind as ObjectKind, o as never)) as unknown as KubeObject);

/** What a policy build yields, without its build cache (object identities). */
function policyView(m: PolicyModel): unknown {
  const { cache: _cache, ...rest } = m;
  return rest;
}

function policyModel(objects: readonly KubeObject[]): PolicyModel {
  return buildPolicyModel({
    policies: byKind(objects, 'NetworkPolicy') as V1NetworkPolicy[],
    pods: byKind(objects, 'Pod') as V1Pod[],
    namespaces: byKind(objects, 'Namespace') as V1Namespace[],
    nodes: buildNodeTable(byKind(objects, 'Node') as V1Node[]).nodes.values(),
    localNode: 'node-a',
  });
}

function storeOf(objects: readonly KubeObject[]): Store {
  const store = new Store();
  for (const o of objects) {
    const kind = o.kind as ObjectKind;
    store.apply({ type: 'upsert', kind, key: keyOf(kind, o.metadata), object: o as never, origin: 'api', observedAt: 0 });
  }
  return store;
}

test('a pod as the API serves it keeps only what weir reads', () => {
  const fat = fatPod({ namespace: 'shop-web', name: 'web-7d9c6b-0x0', app: 'web', node: 'node-a', ip: '198.18.1.10' });
  const labels = (fat.metadata as { labels: Record<string, string> }).labels;
  assert.deepEqual(slimObject('Pod', fat as never), {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-7d9c6b-0x0', namespace: 'shop-web', creationTimestamp: '2026-11-02T09:14:07Z', labels },
    spec: {
      nodeName: 'node-a',
      containers: [
        {
          name: 'app',
          ports: [
            { name: 'http', containerPort: 8080, protocol: 'TCP' },
            { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
          ],
        },
        { name: 'proxy', ports: [{ name: 'http-envoy-prom', containerPort: 15090, protocol: 'TCP' }] },
      ],
      initContainers: [{ name: 'init-config' }],
    },
    status: { phase: 'Running', podIP: '198.18.1.10', podIPs: [{ ip: '198.18.1.10' }] },
  });
});

test('every kind loses managedFields, last-applied-configuration and the other bulk; sizes printed', () => {
  const objects = cluster();
  const sizes = new Map<string, { fat: number; slim: number }>();
  for (const o of objects) {
    const s = slimObject(o.kind as ObjectKind, o as never);
    const text = JSON.stringify(s);
    for (const bulk of [
      'managedFields',
      'last-applied-configuration',
      'ownerReferences',
      'uid',
      'containerStatuses',
      'conditions"',
      'targetRef',
      'images',
      'env',
    ]) {
      if (bulk === 'conditions"' && o.kind === 'EndpointSlice') continue; // an endpoint's conditions are read
      assert.ok(!text.includes(`"${bulk}`), `${o.kind} ${keyOf(o.kind as ObjectKind, o.metadata)} still has ${bulk}`);
    }
    const t = sizes.get(o.kind!) ?? { fat: 0, slim: 0 };
    t.fat += JSON.stringify(o).length;
    t.slim += text.length;
    sizes.set(o.kind!, t);
  }
  for (const [kind, t] of sizes) console.log(`# ${kind}: ${t.fat} → ${t.slim} bytes of JSON (${((100 * t.slim) / t.fat).toFixed(1)}%)`);
  const pods = sizes.get('Pod')!;
  assert.ok(pods.slim * 10 < pods.fat, `a slim pod is under a tenth of a whole one (${pods.slim} vs ${pods.fat})`);
});

test('policy: the same identities, ipcache, endpoints and issues from slim objects as from whole ones', () => {
  const fat = cluster();
  const whole = policyModel(fat);
  const lean = policyModel(slim(fat));
  // the fixture exercises what it should: endpoints, named ports, host network, issues
  assert.ok(whole.endpoints.size >= 18, `endpoints ${whole.endpoints.size}`);
  assert.ok([...whole.podIdentities.values()].some((i) => i.namedPorts['http/TCP'] === 8080));
  assert.equal(whole.hostNetworkPods.get('infra/node-exporter-a'), 'node-a');
  assert.ok(whole.podIssues.some((i) => i.reason === 'bad_ip'));
  assert.deepEqual(whole.endpoints.get('shop-web/dual-stack')?.ips, ['198.18.1.77', '2001:2:1::77']);
  assert.ok(
    [...whole.endpoints.values()].some((e) => e.ingress.isolated),
    'a policy isolates some endpoint',
  );
  assert.deepEqual(policyView(lean), policyView(whole));
});

test('nodes: the same node table, zone and kube-proxy node eligibility from slim objects', () => {
  const fat = byKind(cluster(), 'Node') as V1Node[];
  const lean = fat.map((n) => slimObject('Node', n));
  assert.deepEqual(buildNodeTable(lean), buildNodeTable(fat));
  assert.equal(buildNodeTable(fat).nodes.get('node-c')?.toBeDeleted, true);
  const eligible = (n: V1Node) => {
    const h = new ProxyHealth(1000, () => 0);
    h.syncNode(n);
    return h.nodeEligible;
  };
  assert.deepEqual(fat.map(eligible), [true, true, false, false], 'node-c (taint) and node-d (being deleted) are not eligible');
  for (const [i, n] of fat.entries()) {
    assert.equal(nodeZone(lean[i]), nodeZone(n));
    const a = new ProxyHealth(1000, () => 0);
    const b = new ProxyHealth(1000, () => 0);
    a.syncNode(n);
    b.syncNode(lean[i]);
    assert.equal(b.nodeEligible, a.nodeEligible, n.metadata?.name);
  }
});

test('services: the same frontends and backends (lb algorithm, topology, readiness) from slim objects', () => {
  const fat = cluster();
  const node = { nodeName: 'node-a', nodeAddresses: [], zone: 'zone-a' };
  const whole = buildServiceState(storeOf(fat), node);
  const lean = buildServiceState(storeOf(slim(fat)), node);
  assert.equal(whole.frontends.size, 12);
  assert.ok(
    [...whole.services.values()].some((s) => JSON.stringify(s).includes('maglev')),
    'the lb-algorithm annotation is read',
  );
  assert.deepEqual(lean, whole);
});

test('equal labels and containers are one shared copy (the pods of one workload); different labels are not', () => {
  const pods = slim(byKind(cluster(), 'Pod') as unknown as KubeObject[]) as unknown as V1Pod[];
  const web = pods.filter((p) => p.metadata?.namespace === 'shop-web' && p.metadata.labels?.app === 'web' && p.metadata.name !== 'dual-stack');
  const api = pods.filter((p) => p.metadata?.namespace === 'shop-web' && p.metadata.labels?.app === 'api');
  assert.equal(web.length, 3);
  assert.ok(web.every((p) => p.metadata!.labels === web[0]!.metadata!.labels && p.spec!.containers === web[0]!.spec!.containers));
  assert.notEqual(api[0]!.metadata!.labels, web[0]!.metadata!.labels);
  assert.equal(api[0]!.spec!.containers, web[0]!.spec!.containers, 'the same container names and ports: shared across workloads too');
});
