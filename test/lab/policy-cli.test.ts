// The NetworkPolicy CLI on a live lab node: weir running on its manifests (CNI ptp pods in two
// namespaces, one ingress policy), bin/weir run inside the node as an operator runs it.
// `weir ipcache`, `weir identities` and `weir policy` show what the daemon programmed, and
// `weir explain` predicts the policy verdict that real connections then get.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { k8sNamespace, k8sPod, networkPolicy, node, WeirNode } from '../lib/weir-node.js';

const PORT = 8080;

interface Decision {
  verdict: string;
  reason?: string;
  ingress: { verdict: string; name?: string; allowedBy?: { policy: string; ruleText: string; ports: string }; deniedBy?: string[] };
}
interface Ex {
  hook: string;
  reason?: string;
  policy?: { stage: string; decisions: Decision[] };
}

describe('NetworkPolicy CLI on a live node', () => {
  let lab: Lab;
  let node1: LabNode;
  let a: Pod; // x/a: the server
  let b: Pod; // x/b
  let c: Pod; // y/c
  let weir: WeirNode;

  /** true when a TCP connection from `from` reaches a within 1 s */
  const reaches = async (from: Pod): Promise<boolean> => {
    try {
      await from.ns.echo(a.ip, PORT, { timeoutMs: 1000 });
      return true;
    } catch {
      return false;
    }
  };

  before(async () => {
    lab = await Lab.create({ name: 'policy-cli' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    a = await lab.pod(node1, 'a');
    b = await lab.pod(node1, 'b');
    c = await lab.pod(node1, 'c');
    await a.ns.echoServer({ name: 'a', port: PORT, tcp: true });
    weir = await WeirNode.create(lab, node1, { connectTimeLb: 'off' });
    weir.writeManifest('nodes.yaml', [node({ name: 'node1', internalIP: node1.address, podCIDRs: ['198.18.1.0/24'] })]);
    weir.writeManifest('pods.yaml', [
      k8sNamespace({ name: 'x', labels: { ns: 'x' } }),
      k8sNamespace({ name: 'y', labels: { ns: 'y' } }),
      k8sPod({ name: 'a', namespace: 'x', labels: { pod: 'a' }, ip: a.ip, node: 'node1' }),
      k8sPod({ name: 'b', namespace: 'x', labels: { pod: 'b' }, ip: b.ip, node: 'node1' }),
      k8sPod({ name: 'c', namespace: 'y', labels: { pod: 'c' }, ip: c.ip, node: 'node1' }),
    ]);
    weir.writeManifest('policy.yaml', [
      networkPolicy({
        name: 'allow-y',
        namespace: 'x',
        spec: {
          podSelector: { matchLabels: { pod: 'a' } },
          policyTypes: ['Ingress'],
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ protocol: 'TCP', port: 8000, endPort: 8099 }] }],
        },
      }),
    ]);
    await weir.start();
    await weir.waitFor('policy', {}, 10_000);
  });
  after(async () => {
    await runCleanups();
    await lab?.destroy();
  });

  test('ipcache, identities and policy show what the daemon programmed', () => {
    const ipcache = weir.cli<{ entries: Array<{ prefix: string; identity: number; name: string }> }>('ipcache');
    const byPrefix = new Map(ipcache.entries.map((e) => [e.prefix, e]));
    assert.equal(byPrefix.get(`${a.ip}/32`)?.name, 'x:{pod=a}');
    assert.equal(byPrefix.get(`${c.ip}/32`)?.name, 'y:{pod=c}');
    assert.equal(byPrefix.get(`${node1.address}/32`)?.name, 'host');

    const ids = weir.cli<{ identities: Array<{ identity: number; name: string; kind: string; endpoints: number; ipcacheEntries: number }> }>('identities');
    const idA = ids.identities.find((i) => i.name === 'x:{pod=a}');
    assert.deepEqual([idA?.kind, idA?.endpoints, idA?.ipcacheEntries], ['pod', 1, 1]);

    type Ep = {
      address: string;
      name: string;
      ingress: { isolated: boolean; policies: string[]; rules: Array<Record<string, unknown>> };
      egress: { isolated: boolean };
    };
    const eps = weir.cli<{ endpoints: Ep[] }>('policy').endpoints;
    assert.deepEqual(eps.map((e) => e.address).sort(), [a.ip, b.ip, c.ip].sort());
    const epA = eps.find((e) => e.address === a.ip)!;
    assert.deepEqual([epA.ingress.isolated, epA.ingress.policies, epA.egress.isolated], [true, ['x/allow-y'], false]);
    assert.deepEqual(
      epA.ingress.rules.map((r) => [r.peerName, r.protocol, r.ports, r.policy, r.ruleText]),
      [['y:{pod=c}', 'tcp', '8000-8099', 'x/allow-y', 'ingress[0]']],
    );
    assert.equal(eps.find((e) => e.address === b.ip)!.ingress.isolated, false);
  });

  test('explain predicts the verdict real connections get: y/c allowed by the rule, x/b denied by default', async () => {
    const allowed = weir.cli<Ex>('explain', c.ip, a.ip, `${PORT}/tcp`);
    const denied = weir.cli<Ex>('explain', b.ip, a.ip, `${PORT}/tcp`);
    console.log(JSON.stringify(allowed.policy), JSON.stringify(denied.policy));
    assert.equal(allowed.hook, 'from_pod', 'auto: c is a local pod');
    const dc = allowed.policy!.decisions[0]!;
    assert.deepEqual(
      [dc.verdict, dc.ingress.verdict, dc.ingress.allowedBy],
      ['allowed', 'allowed', { ...dc.ingress.allowedBy!, policy: 'x/allow-y', ruleText: 'ingress[0]', ports: '8000-8099' }],
    );
    const db = denied.policy!.decisions[0]!;
    assert.deepEqual([db.verdict, db.reason, db.ingress.deniedBy, denied.reason], ['denied', 'policy_ingress_denied', ['x/allow-y'], 'policy_ingress_denied']);

    const before = weir.counter('from_pod', 'policy_ingress_denied');
    assert.equal(await reaches(c), true, 'y/c reaches x/a, as explain said');
    assert.equal(await reaches(b), false, 'x/b does not, as explain said');
    assert.ok(weir.counter('from_pod', 'policy_ingress_denied') > before, 'the drop is counted under the reason explain named');

    // the text form, as an operator reads it
    const r = runSync('nsenter', [`--net=${weir.ns.path}`, binWeir, 'explain', b.ip, a.ip, `${PORT}/tcp`, '--pin-dir', weir.pinDir], { check: false });
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout;
    console.log(text);
    assert.match(text, /ingress {2}\S+ x:\{pod=a\} \(\d+\): default deny by x\/allow-y/);
  });
});
