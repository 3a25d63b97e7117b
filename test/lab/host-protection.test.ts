// Issue 17, must-shows 1, 2, 3 and 5, with real packets: two lab nodes with routed pod networks,
// `weir daemon` on each (default flags: host policy and automatic host endpoints on, its socket
// LB on the node's own lab cgroup, /metrics on 0.0.0.0:9745), reading the same manifests: both
// Node objects (node1 labelled role=locked, node2 not), a NodePort Service with a backend pod
// on each node, the pods and namespace (for NetworkPolicy), and the Calico GlobalNetworkPolicies
// each test writes (apiVersion projectcalico.org/v3, as a cluster moving from Calico has them)
// and removes. Servers listen in each node's own namespace on TCP 2222 (SSH-like), 22, 6443 and
// an unlisted 7777; three external clients on the underlay, each in a cgroup of its own:
// A (198.18.0.101), B (.102), C (.103). A policy is in force when the daemon's pinned chains
// hold it (test/lib/host-policy-lab.ts reads them, the ABI of include/weir/host_policy.h).
//   MS1: `selector: role == 'locked'`: TCP 2222 allowed from A by `nets`, denied to B; node2,
//        unlabelled, answers both; the policy's rule counters say which rule decided.
//   MS2: a default-deny host policy (all(), Ingress and Egress, no rules): 22 and 6443 (failsafe
//        ports) still answer A, weir's /healthz and /metrics answer from outside the node, an
//        unlisted port is denied; outbound, the host reaches A's 6443 (failsafe) and not 7777.
//   MS3: a preDNAT policy lets A and C reach the NodePort and denies B before service NAT;
//        then a NetworkPolicy on the backend pods admitting only A: C is denied by the pods'
//        own policy, A still gets through: pod policy still applies behind preDNAT.
//   MS5: applyOnForward: a policy on node1 denying B to the pod subnet drops B's packets routed
//        through node1 to a pod's own address (no service); updated to applyOnForward: false it
//        covers only traffic to the host, and B reaches the pod.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { applyHostPolicy, connections, globalNetworkPolicy, inChain, labelledNode, rulePackets, type Client, type PlanView } from '../lib/host-policy-lab.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, k8sNamespace, k8sPod, networkPolicy, node, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const NODEPORT = 30317;
const BACKEND_PORT = 8080;
const PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: BACKEND_PORT, protocol: 'TCP', nodePort: NODEPORT }];
/** servers in each node's own network namespace */
const SSH_LIKE = 2222;
const SSH = 22;
const API = 6443;
const UNLISTED = 7777;
const METRICS_PORT = 9745;

type Counters = Record<string, Record<string, number>>;
const delta = (a: Counters, b: Counters, hook: string, reason: string) => (a[hook]?.[reason] ?? 0) - (b[hook]?.[reason] ?? 0);
/** a reason summed over every hook */
const total = (c: Counters, reason: string) => Object.values(c).reduce((n, r) => n + (r[reason] ?? 0), 0);
/** a chain of this plan ends a tier with a compiled deny: a policy without a verdict applies */
const hasTierEndDeny = (p: PlanView, kind: string) => p.chains.some((c) => c.kind === kind && c.rules.some((r) => r.action === 'deny' && r.policy === ''));

describe('host protection: Calico host endpoint policy on two nodes, external clients', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let be1: Pod;
  let be2: Pod;
  let a: External;
  let b: External;
  let c: External;
  let weir1: WeirNode;
  let weir2: WeirNode;
  const both = () => [weir1, weir2];
  const client = (e: External): Client => ({ ns: e.ns, ...(e.cgroup ? { cgroup: e.cgroup } : {}) });

  before(async () => {
    lab = await Lab.create({ name: 'host-protection' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
    await lab.routePodSubnets();
    be1 = await lab.pod(node1, 'be1');
    be2 = await lab.pod(node2, 'be2');
    for (const p of [be1, be2]) await p.ns.echoServer({ name: p.name, port: BACKEND_PORT, tcp: true });
    a = await lab.external('client-a', { address: '198.18.0.101/24', cgroup: true });
    b = await lab.external('client-b', { address: '198.18.0.102/24', cgroup: true });
    c = await lab.external('client-c', { address: '198.18.0.103/24', cgroup: true });
    // the node's own services: an SSH-like port, SSH's and the API server's (failsafes), one unlisted
    for (const n of [node1, node2]) for (const port of [SSH_LIKE, SSH, API, UNLISTED]) await n.ns.echoServer({ name: `${n.name}-${port}`, port, tcp: true });
    // what the host dials in MS2: a failsafe outbound port and an unlisted one, on client A
    for (const port of [API, UNLISTED]) await a.ns.echoServer({ name: `a-${port}`, port, tcp: true, ...(a.cgroup ? { cgroup: a.cgroup } : {}) });

    const cluster = [
      labelledNode({ name: 'node1', internalIP: node1.address, podCIDRs: [node1.podSubnet!] }, { role: 'locked' }),
      node({ name: 'node2', internalIP: node2.address, podCIDRs: [node2.podSubnet!] }),
      service({ name: 'web', type: 'NodePort', clusterIP: '198.19.0.70', ports: PORTS }),
      endpointSlice({
        name: 'web-1',
        service: 'web',
        ports: PORTS,
        endpoints: [
          { ip: be1.ip, node: 'node1' },
          { ip: be2.ip, node: 'node2' },
        ],
      }),
      k8sNamespace({ name: 'default' }),
      ...[be1, be2].map((p) =>
        k8sPod({ name: p.name, labels: { app: 'web' }, ip: p.ip, node: p.node.name, ports: [{ name: 'http', containerPort: BACKEND_PORT }] }),
      ),
    ];
    weir1 = await WeirNode.create(lab, node1, { metricsAddress: `0.0.0.0:${METRICS_PORT}` });
    weir2 = await WeirNode.create(lab, node2, { metricsAddress: `0.0.0.0:${METRICS_PORT}` });
    for (const w of both()) w.writeManifest('cluster.yaml', cluster);
    await Promise.all(both().map((w) => w.start()));
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test("MS1: a GlobalNetworkPolicy selecting role == 'locked' denies B's TCP 2222, allows A's by nets; the unlabelled node answers both", async () => {
    const policy = globalNetworkPolicy('lock-ssh-like', {
      selector: "role == 'locked'",
      types: ['Ingress'],
      ingress: [
        { action: 'Allow', protocol: 'TCP', source: { nets: [`${a.address}/32`] }, destination: { ports: [SSH_LIKE] } },
        { action: 'Deny', protocol: 'TCP', destination: { ports: [SSH_LIKE] } },
        // everything else to the node as before (without it the tier's end would deny it)
        { action: 'Allow' },
      ],
    });
    await applyHostPolicy(both(), 'lock.yaml', [policy], (p, w) => inChain(p, 'lock-ssh-like', 'normalIn') === (w === weir1), 'lock-ssh-like on node1 only');
    try {
      const c1 = weir1.counters();
      const [allow0, deny0] = [0, 1].map((r) => rulePackets(weir1.pinDir, 'lock-ssh-like', r, 'normalIn'));
      const aLocked = await connections(client(a), node1.address, SSH_LIKE, 5);
      const bLocked = await connections(client(b), node1.address, SSH_LIKE, 5);
      const bOther = await connections(client(b), node1.address, UNLISTED, 3);
      const aOpen = await connections(client(a), node2.address, SSH_LIKE, 3);
      const bOpen = await connections(client(b), node2.address, SSH_LIKE, 3);
      const c2 = weir1.counters();
      const [allow1, deny1] = [0, 1].map((r) => rulePackets(weir1.pinDir, 'lock-ssh-like', r, 'normalIn'));
      console.log(
        `# node1:${SSH_LIKE}: A ${aLocked.ok}/5, B ${bLocked.ok}/5; node1:${UNLISTED}: B ${bOther.ok}/3; node2:${SSH_LIKE}: A ${aOpen.ok}/3, B ${bOpen.ok}/3`,
      );
      console.log(
        `# rule counters: allow from A ${allow1 - allow0}, deny ${deny1 - deny0}; host_policy_denied ${delta(c2, c1, 'from_host', 'host_policy_denied')}`,
      );
      assert.equal(aLocked.ok, 5, `A allowed by nets: ${aLocked.errors.join('; ')}`);
      assert.equal(bLocked.ok, 0, 'B denied');
      assert.equal(bOther.ok, 3, `the policy locks only ${SSH_LIKE}: ${bOther.errors.join('; ')}`);
      assert.equal(aOpen.ok + bOpen.ok, 6, `node2 has no role label: unaffected: ${[...aOpen.errors, ...bOpen.errors].join('; ')}`);
      assert.equal(allow1 - allow0, 5, "the Allow rule decided A's 5 new connections");
      assert.ok(deny1 - deny0 >= 5, `the Deny rule decided B's SYNs: ${deny1 - deny0}`);
      assert.ok(delta(c2, c1, 'from_host', 'host_policy_denied') >= 5, 'counted as host_policy_denied');
      assert.equal(weir2.reasonTotal('host_policy_denied'), 0, 'node2 denied nothing');
    } finally {
      await applyHostPolicy(both(), 'lock.yaml', null, (p) => !inChain(p, 'lock-ssh-like'), 'lock-ssh-like removed');
    }
  });

  test("MS2: a default-deny host policy: 22 and 6443 answer, weir's /healthz and /metrics answer from outside, an unlisted port is denied", async () => {
    const policy = globalNetworkPolicy('default-deny', { selector: 'all()', types: ['Ingress', 'Egress'] });
    await applyHostPolicy(both(), 'deny.yaml', [policy], (p) => hasTierEndDeny(p, 'normalIn') && hasTierEndDeny(p, 'normalOut'), 'default-deny');
    try {
      const before = weir1.counters();
      const ssh = await connections(client(a), node1.address, SSH, 3);
      const api = await connections(client(a), node1.address, API, 3);
      const unlisted = await connections(client(a), node1.address, UNLISTED, 3);
      const locked = await connections(client(a), node1.address, SSH_LIKE, 3);
      const fromA = { timeoutMs: 2000, check: false, ...(a.cgroup ? { cgroup: a.cgroup } : {}) };
      const healthz = await a.ns.curl(`http://${node1.address}:${METRICS_PORT}/healthz`, fromA);
      const metrics = await a.ns.curl(`http://${node1.address}:${METRICS_PORT}/metrics`, fromA);
      // the host's own new connections: egress is default-deny too, the outbound failsafes excepted
      const outApi = await connections({ ns: node1.ns }, a.address, API, 2);
      const outUnlisted = await connections({ ns: node1.ns }, a.address, UNLISTED, 2);
      const after = weir1.counters();
      console.log(
        `# from A: ${SSH} ${ssh.ok}/3, ${API} ${api.ok}/3, ${UNLISTED} ${unlisted.ok}/3, ${SSH_LIKE} ${locked.ok}/3; ` +
          `/healthz ${healthz.status}, /metrics ${metrics.status}; node1 -> A: ${API} ${outApi.ok}/2, ${UNLISTED} ${outUnlisted.ok}/2`,
      );
      const hostReasons = Object.entries(after).map(([h, r]) => [h, Object.fromEntries(Object.entries(r).filter(([k]) => k.startsWith('host_')))]);
      console.log(`# node1 host policy counters: ${JSON.stringify(Object.fromEntries(hostReasons))}`);
      assert.equal(ssh.ok, 3, `SSH (failsafe): ${ssh.errors.join('; ')}`);
      assert.equal(api.ok, 3, `the API server's port (failsafe): ${api.errors.join('; ')}`);
      assert.equal(healthz.status, 200, `/healthz: ${healthz.body}`);
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /^weir_/m, 'the metrics body');
      assert.equal(unlisted.ok, 0, 'an unlisted port is denied');
      assert.equal(locked.ok, 0, `${SSH_LIKE} too`);
      assert.equal(outApi.ok, 2, `outbound failsafe ${API}: ${outApi.errors.join('; ')}`);
      assert.equal(outUnlisted.ok, 0, 'an unlisted outbound port is denied');
      assert.ok(total(after, 'host_failsafe') - total(before, 'host_failsafe') >= 6 + 2, 'the failsafe connections were counted as such');
      assert.ok(delta(after, before, 'from_host', 'host_policy_denied') >= 6, 'the denied ones as host_policy_denied');
    } finally {
      await applyHostPolicy(both(), 'deny.yaml', null, (p) => !hasTierEndDeny(p, 'normalIn'), 'default-deny removed');
    }
    const again = await connections(client(a), node1.address, UNLISTED, 2);
    assert.equal(again.ok, 2, 'without it the unlisted port answers again');
  });

  test('MS3: a preDNAT policy admits A (and C) to the NodePort and denies B before NAT; the backends keep their NetworkPolicy', async () => {
    const guard = globalNetworkPolicy('nodeport-guard', {
      selector: 'all()',
      preDNAT: true,
      applyOnForward: true,
      types: ['Ingress'],
      ingress: [
        { action: 'Allow', protocol: 'TCP', source: { nets: [`${a.address}/32`, `${c.address}/32`] }, destination: { ports: [NODEPORT] } },
        { action: 'Deny', protocol: 'TCP', destination: { ports: [NODEPORT] } },
      ],
    });
    await applyHostPolicy(both(), 'prednat.yaml', [guard], (p) => inChain(p, 'nodeport-guard', 'preDnatIn'), 'nodeport-guard');
    try {
      const before = weir1.counters();
      const aIn = await connections(client(a), node1.address, NODEPORT, 6);
      const aIn2 = await connections(client(a), node2.address, NODEPORT, 3);
      const bIn = await connections(client(b), node1.address, NODEPORT, 5);
      const cIn = await connections(client(c), node1.address, NODEPORT, 4);
      const mid = weir1.counters();
      console.log(
        `# NodePort with preDNAT: A ${aIn.ok}/6 via node1 (${JSON.stringify(aIn.servers)}), ${aIn2.ok}/3 via node2; B ${bIn.ok}/5; C ${cIn.ok}/4; ` +
          `host_prednat_denied ${delta(mid, before, 'from_host', 'host_prednat_denied')}`,
      );
      assert.equal(aIn.ok + aIn2.ok, 9, `A allowed: ${[...aIn.errors, ...aIn2.errors].join('; ')}`);
      assert.equal(bIn.ok, 0, 'B denied');
      assert.equal(cIn.ok, 4, `C allowed by preDNAT (the pods have no policy yet): ${cIn.errors.join('; ')}`);
      assert.ok(delta(mid, before, 'from_host', 'host_prednat_denied') >= 5, "B's SYNs counted as host_prednat_denied");
      assert.ok(
        Object.keys(aIn.servers).every((n) => n === 'be1' || n === 'be2'),
        'served by the backends',
      );

      // the backends' own policy: only A. preDNAT allows C; the pods still deny it
      const podPolicy = networkPolicy({
        name: 'web-from-a',
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          policyTypes: ['Ingress'],
          ingress: [{ from: [{ ipBlock: { cidr: `${a.address}/32` } }], ports: [{ protocol: 'TCP', port: BACKEND_PORT }] }],
        },
      });
      const marks = both().map((w) => w.mark());
      for (const w of both()) w.writeManifest('pod-policy.yaml', [podPolicy]);
      await Promise.all(both().map((w, i) => w.waitFor('policy', { reason: 'change' }, 10_000, marks[i])));
      try {
        const c0 = both().map((w) => w.reasonTotal('policy_ingress_denied'));
        const p0 = weir1.counter('from_host', 'host_prednat_denied');
        const aPod = await connections(client(a), node1.address, NODEPORT, 6);
        const cPod = await connections(client(c), node1.address, NODEPORT, 4);
        const bPod = await connections(client(b), node1.address, NODEPORT, 3);
        const podDenied = both().reduce((n, w, i) => n + w.reasonTotal('policy_ingress_denied') - c0[i]!, 0);
        const prednatDenied = weir1.counter('from_host', 'host_prednat_denied') - p0;
        console.log(`# with the pods' NetworkPolicy: A ${aPod.ok}/6, C ${cPod.ok}/4, B ${bPod.ok}/3`);
        console.log(`# policy_ingress_denied ${podDenied}, host_prednat_denied ${prednatDenied}`);
        assert.equal(aPod.ok, 6, `A: allowed by preDNAT and by the pods: ${aPod.errors.join('; ')}`);
        assert.equal(cPod.ok, 0, "C: allowed by preDNAT, denied by the pods' NetworkPolicy");
        assert.ok(podDenied >= 4, `C's SYNs denied at the backends (policy_ingress_denied): ${podDenied}`);
        assert.equal(bPod.ok, 0);
        assert.ok(prednatDenied >= 3, 'B still stopped by preDNAT, before NAT');
      } finally {
        const m = both().map((w) => w.mark());
        for (const w of both()) w.removeManifest('pod-policy.yaml');
        await Promise.all(both().map((w, i) => w.waitFor('policy', { reason: 'change' }, 10_000, m[i])));
      }
    } finally {
      await applyHostPolicy(both(), 'prednat.yaml', null, (p) => !inChain(p, 'nodeport-guard'), 'nodeport-guard removed');
    }
    const bAfter = await connections(client(b), node1.address, NODEPORT, 2);
    assert.equal(bAfter.ok, 2, `without the preDNAT policy B reaches the NodePort: ${bAfter.errors.join('; ')}`);
  });

  test("MS5: applyOnForward: B's packets routed through node1 to a pod are denied; with applyOnForward false they pass", async () => {
    const spec = (applyOnForward: boolean) =>
      globalNetworkPolicy('forward-guard', {
        selector: "role == 'locked'",
        applyOnForward,
        types: ['Ingress'],
        ingress: [{ action: 'Deny', source: { nets: [`${b.address}/32`] }, destination: { nets: [node1.podSubnet!] } }, { action: 'Allow' }],
      });
    // B dials the pod's own address: its route to 198.18.1.0/24 goes via node1 (no service)
    const routed = await b.ns.exec('ip', ['route', 'get', be1.ip]);
    assert.match(routed.stdout, new RegExp(`via ${node1.address.replace(/\./g, '\\.')}`), routed.stdout);
    await applyHostPolicy(
      both(),
      'forward.yaml',
      [spec(true)],
      (p, w) => inChain(p, 'forward-guard', 'forwardIn') === (w === weir1),
      'forward-guard (applyOnForward)',
    );
    try {
      const before = weir1.counters();
      const bPod = await connections(client(b), be1.ip, BACKEND_PORT, 5);
      const aPod = await connections(client(a), be1.ip, BACKEND_PORT, 3);
      const bHost = await connections(client(b), node1.address, UNLISTED, 3);
      const bOther = await connections(client(b), be2.ip, BACKEND_PORT, 3);
      const after = weir1.counters();
      const forwardDenied = delta(after, before, 'from_host', 'host_forward_denied');
      console.log(
        `# applyOnForward true: B -> ${be1.ip} ${bPod.ok}/5, A -> ${be1.ip} ${aPod.ok}/3, B -> node1:${UNLISTED} ${bHost.ok}/3, ` +
          `B -> ${be2.ip} (node2) ${bOther.ok}/3; host_forward_denied ${forwardDenied}`,
      );
      assert.equal(bPod.ok, 0, 'B is denied on its way through node1');
      assert.ok(forwardDenied >= 5, 'counted as host_forward_denied');
      assert.equal(aPod.ok, 3, `A forwarded as before: ${aPod.errors.join('; ')}`);
      assert.equal(bHost.ok, 3, `B to the host itself: the rule names the pod subnet only: ${bHost.errors.join('; ')}`);
      assert.equal(bOther.ok, 3, `node2 does not carry the policy: ${bOther.errors.join('; ')}`);

      await applyHostPolicy(
        both(),
        'forward.yaml',
        [spec(false)],
        (p, w) => !inChain(p, 'forward-guard', 'forwardIn') && inChain(p, 'forward-guard', 'normalIn') === (w === weir1),
        'forward-guard (applyOnForward false)',
      );
      const c1 = weir1.counters();
      const bNow = await connections(client(b), be1.ip, BACKEND_PORT, 5);
      const forwardDenied2 = delta(weir1.counters(), c1, 'from_host', 'host_forward_denied');
      console.log(`# applyOnForward false: B -> ${be1.ip} ${bNow.ok}/5; host_forward_denied ${forwardDenied2}`);
      assert.equal(bNow.ok, 5, `forwarded traffic no longer policed by host policy: ${bNow.errors.join('; ')}`);
      assert.equal(forwardDenied2, 0);
    } finally {
      await applyHostPolicy(both(), 'forward.yaml', null, (p) => !inChain(p, 'forward-guard'), 'forward-guard removed');
    }
  });
});
