// The upstream NetworkPolicy e2e suite (kubernetes/kubernetes test/e2e/network/netpol) on real
// packets (issue 13, must-show 2): namespaces x, y, z with pods a, b, c each, made by the CNI ptp
// plugin and spread over two lab nodes (x/a, x/c, y/b, z/a, z/c on node1; the rest on node2, so
// cells cross nodes and stay on one), weir with its default flags on both. Each pod runs one agent
// (test/lib/netpol-agent.ts) serving TCP and UDP on 79-82 and probing on request; every scenario of
// test/lib/netpol-scenarios.ts (the suite's policies and truth tables, also run on the pure model
// by test/unit/policy-e2e.test.ts) is written into both nodes' manifests and probed as whole 9×9
// matrices, each pod both by its own address and through its own ClusterIP Service s-<ns>-<pod>
// (as upstream probes: egress is judged on the backend after DNAT, ingress on the client): every
// matrix of a step at once, each connection with a 1 s timeout (a dropped SYN, datagram or INIT
// never answers). Like upstream, a step is probed again when it disagrees, but only an allowed
// cell may come good late: a denied cell must be denied on every attempt. This kernel has no SCTP
// (socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) fails with EPROTONOSUPPORT): SCTP cells are real
// SCTP INIT / INIT ACK packets sent and answered on raw sockets (test/lib/netpol-sctp.py).
// Then Kubernetes' own exemptions: a pod and its own node always reach each other under a
// deny-all, another node does not; a hostNetwork pod is not policed.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type LabNode, type Netns } from '../lib/lab.js';
import type { ProbeRequest, ProbeResponse, ProbeTarget } from '../lib/netpol-agent.js';
import {
  ALL_PODS,
  compareTruthTable,
  namedPorts,
  NAMESPACES,
  netpolScenarios,
  policy,
  Reachability,
  type ClusterOptions,
  type Probe,
  type Step,
} from '../lib/netpol-scenarios.js';
import { repoRoot } from '../lib/paths.js';
import { endpointSlice, k8sNamespace, k8sPod, node, service, WeirNode } from '../lib/weir-node.js';

const AGENT_JS = fileURLToPath(new URL('../lib/netpol-agent.js', import.meta.url));
const SCTP_PY = join(repoRoot, 'test', 'lib', 'netpol-sctp.py');
/** 80 and 81 as upstream; 79 and 82 for the endPort scenario's edges */
const SERVE = [79, 80, 81, 82];
const TIMEOUT_MS = 1000;
const ATTEMPTS = 3;
/** a pod off both nodes whose label changes with every write: both nodes then rewrite its ipcache
 *  entry and log `event=policy reason=change`, so that line says the whole step is in the maps
 *  even on a node where the step itself changes nothing */
const SYNC_POD_IP = '198.18.3.250';
/** upstream probes each pod through its own ClusterIP Service (s-<ns>-<pod>); this lab probes both ways */
const VIAS = ['pod', 'service'] as const;
type Via = (typeof VIAS)[number];
const serviceIp = (pod: string) => `198.19.0.${10 + ALL_PODS.indexOf(pod)}`;
const SERVICE_PORTS = SERVE.flatMap((port) =>
  (['TCP', 'UDP', 'SCTP'] as const).map((protocol) => ({ name: `${protocol.toLowerCase()}-${port}`, port, protocol })),
);

interface Agent {
  name: string;
  ip: string;
  ns: Netns;
  control: string;
}

describe('the upstream netpol e2e scenarios on real packets across two nodes', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let weirs: WeirNode[];
  const agents = new Map<string, Agent>();
  const ipOf = (pod: string) => agents.get(pod)!.ip;
  const nodeOf = (pod: string) => lab.pods.find((p) => p.ns === agents.get(pod)!.ns)!.node.name;
  let generation = 0;
  const started = Date.now();

  /** the cluster as the API would show it: x/y/z, their pods and Services, a hostNetwork pod x/h on node2, the sync pod */
  const cluster = (o: ClusterOptions = {}): object[] => [
    node({ name: 'node1', internalIP: node1.address, podCIDRs: [node1.podSubnet!] }),
    node({ name: 'node2', internalIP: node2.address, podCIDRs: [node2.podSubnet!] }),
    ...NAMESPACES.map((ns) => k8sNamespace({ name: ns, labels: { ns, ...(o.nsLabels?.[ns] ?? {}) } })),
    ...ALL_PODS.flatMap((key) => {
      const [namespace, name] = key.split('/') as [string, string];
      const svc = `s-${namespace}-${name}`;
      return [
        k8sPod({ name, namespace, labels: o.podLabels?.[key] ?? { pod: name }, ip: ipOf(key), node: nodeOf(key), ports: namedPorts() }),
        service({ name: svc, namespace, clusterIP: serviceIp(key), ports: SERVICE_PORTS }),
        endpointSlice({ name: `${svc}-1`, service: svc, namespace, ports: SERVICE_PORTS, endpoints: [{ ip: ipOf(key), node: nodeOf(key) }] }),
      ];
    }),
    k8sPod({ name: 'h', namespace: 'x', labels: { pod: 'h' }, ip: node2.address, node: 'node2', hostNetwork: true, ports: namedPorts() }),
    k8sNamespace({ name: 'netpol-e2e-sync' }),
    k8sPod({ name: 'sync', namespace: 'netpol-e2e-sync', labels: { generation: String(generation) }, ip: SYNC_POD_IP, node: 'elsewhere' }),
  ];

  /** Writes the cluster and policies of a step into both nodes and waits until both have applied them. */
  const apply = async (st: Pick<Step, 'policies' | 'cluster'>): Promise<void> => {
    generation++;
    const marks = weirs.map((w) => w.mark());
    const objects = [...cluster(st.cluster), ...st.policies];
    for (const w of weirs) w.writeManifest('cluster.yaml', objects);
    await Promise.all(weirs.map((w, i) => w.waitFor('policy', { reason: 'change' }, 10_000, marks[i])));
  };

  /** One request to an agent: probe these targets at once. */
  const ask = (from: Agent, targets: ProbeTarget[]): Promise<ProbeResponse> =>
    new Promise((resolve, reject) => {
      const sock = connect(from.control);
      let buf = '';
      sock.on('error', reject);
      sock.on('data', (d) => {
        buf += d.toString('utf8');
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        sock.destroy();
        resolve(JSON.parse(buf.slice(0, nl)) as ProbeResponse);
      });
      sock.write(JSON.stringify({ targets, timeoutMs: TIMEOUT_MS } satisfies ProbeRequest) + '\n');
    });

  const cellKey = (i: number, via: Via, f: string, t: string) => `${i}/${via}/${f}>${t}`;

  /** One round: every probe of a step, every ordered pair (not loopback), by pod IP and by Service,
   *  all at once: 'ok', 'timeout' or a lab fault, by cellKey. */
  const probeRound = async (probes: Probe[]): Promise<Map<string, string>> => {
    const answers = await Promise.all(
      ALL_PODS.map((f) =>
        ask(
          agents.get(f)!,
          probes.flatMap((p, i) =>
            VIAS.flatMap((via) =>
              ALL_PODS.filter((t) => t !== f).map((t) => ({
                key: cellKey(i, via, f, t),
                host: via === 'pod' ? ipOf(t) : serviceIp(t),
                proto: p.protocol,
                port: p.port,
                expect: t,
              })),
            ),
          ),
        ),
      ),
    );
    return new Map(answers.flatMap((a) => Object.entries(a.results)));
  };

  /** Probes a step's matrices until they match (at most ATTEMPTS rounds); fails with upstream's truth-table printout. */
  const verify = async (label: string, probes: Probe[]): Promise<number> => {
    for (let attempt = 1; ; attempt++) {
      const got = await probeRound(probes);
      const faults = [...got].filter(([, o]) => o !== 'ok' && o !== 'timeout');
      assert.deepEqual(faults, [], `${label}: probes that neither connected nor timed out (a lab fault, not a verdict)`);
      const failures: string[] = [];
      let leaked = 0;
      for (const [i, p] of probes.entries())
        for (const via of VIAS) {
          const r = compareTruthTable((f, t) => got.get(cellKey(i, via, f, t)) === 'ok', p.want);
          leaked += r.wrong.filter((w) => w.includes('observed allowed')).length;
          if (r.wrong.length) failures.push(`${p.protocol}/${p.port} to the ${via === 'pod' ? 'pod IP' : 'Service IP'}:\n${r.wrong.join('\n')}\n${r.table}`);
        }
      if (failures.length === 0) return attempt;
      if (leaked > 0 || attempt === ATTEMPTS) {
        const why = leaked ? `${leaked} cells expected denied were let through (a denied cell gets no second attempt)` : 'allowed cells still denied';
        assert.fail(`${label}, attempt ${attempt} of ${ATTEMPTS}: ${why}\n${failures.join('\n\n')}`);
      }
    }
  };

  /** Packets the policy stage dropped so far, both nodes, every hook. */
  const policyDrops = (): number =>
    weirs
      .flatMap((w) => Object.values(w.counters()))
      .reduce((n, byReason) => n + (byReason.policy_egress_denied ?? 0) + (byReason.policy_ingress_denied ?? 0), 0);

  const runStep = async (label: string, st: Step): Promise<void> => {
    const t0 = Date.now();
    await apply(st);
    const applied = Date.now() - t0;
    const drops0 = policyDrops();
    const rounds = await verify(label, st.probes);
    // every cell that timed out was dropped by the policy stage (not lost some other way), and
    // nothing was dropped where every cell is allowed: at least one drop per denied cell and way
    const denied = (p: Probe) => ALL_PODS.flatMap((f) => ALL_PODS.filter((t) => t !== f && !p.want.get(f, t))).length;
    const deniedCells = st.probes.reduce((n, p) => n + denied(p), 0);
    const drops = policyDrops() - drops0;
    if (deniedCells === 0) assert.equal(drops, 0, `${label}: policy drops where every cell is allowed`);
    else assert.ok(drops >= deniedCells * VIAS.length, `${label}: ${drops} policy drops for ${deniedCells * VIAS.length} denied cells`);
    const shown = st.probes.map((p) => `${p.protocol}/${p.port}`).join(', ');
    console.log(`  ${label}: applied in ${applied} ms, ${shown}${rounds > 1 ? ` (${rounds} rounds)` : ''}, ${drops} policy drops: ${Date.now() - t0} ms`);
  };

  before(async () => {
    lab = await Lab.create({ name: 'netpol-e2e' });
    node1 = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    node2 = await lab.node('node2', { address: '198.18.0.2/24', podSubnet: '198.18.2.0/24' });
    await lab.routePodSubnets();
    const spawnAgent = async (name: string, ns: Netns, ip: string): Promise<Agent> => {
      const control = join(lab.dir, `agent-${name.replace('/', '-')}.sock`);
      const proc = ns.spawn(process.execPath, [AGENT_JS, 'serve', '--name', name, '--ports', SERVE.join(','), '--control', control, '--sctp', SCTP_PY], {
        label: `netpol-agent ${name}`,
      });
      await proc.waitForOutput(/^control /m);
      await proc.waitForOutput(/^listening sctp /m);
      return { name, ip, ns, control };
    };
    for (const [i, key] of ALL_PODS.entries()) {
      const pod = await lab.pod(i % 2 === 0 ? node1 : node2, key.replace('/', '-'));
      agents.set(key, await spawnAgent(key, pod.ns, pod.ip));
    }
    // the nodes themselves serve too (kubelet's side of a probe; x/h's server on node2)
    agents.set('node1', await spawnAgent('node1', node1.ns, node1.address));
    agents.set('node2', await spawnAgent('node2', node2.ns, node2.address));
    weirs = [await WeirNode.create(lab, node1), await WeirNode.create(lab, node2)];
    for (const w of weirs) w.writeManifest('cluster.yaml', cluster());
    await Promise.all(weirs.map((w) => w.start()));
    console.log(`lab ready in ${Date.now() - started} ms: ${ALL_PODS.map((k) => `${k}=${ipOf(k)}@${nodeOf(k)}`).join(' ')}`);
  });
  after(async () => {
    console.log(`whole file: ${Date.now() - started} ms`);
    await runCleanups();
    await lab?.destroy();
  });

  test('no policy: every pod reaches every pod on TCP, UDP and SCTP, 80 and 81', async () => {
    const probes = [80, 81].flatMap((port) => (['TCP', 'UDP', 'SCTP'] as const).map((protocol) => ({ protocol, port, want: new Reachability(true) })));
    await runStep('no policy', { policies: [], probes });
  });

  // the names are known now, the addresses (the CIDR scenarios name pods by address) once the pods exist
  for (const [n, { name }] of netpolScenarios(() => '198.18.0.0').entries()) {
    test(name, async () => {
      const s = netpolScenarios(ipOf)[n]!;
      for (const [i, st] of s.steps.entries()) await runStep(s.steps.length > 1 ? `${s.name} [step ${i + 1}]` : s.name, st);
    });
  }

  test('deny-all in x: a pod and its own node reach each other (kubelet probes), the other node is policed; x/h (hostNetwork) is not', async () => {
    const denyAll = policy('x', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] });
    await apply({ policies: [denyAll] });
    const reach = async (from: string, to: string, proto: 'TCP' | 'UDP' = 'TCP'): Promise<string> => {
      const t = agents.get(to)!;
      const r = await ask(agents.get(from)!, [{ key: 'k', host: t.ip, proto, port: 80, expect: to }]);
      return r.results.k!;
    };
    // x/a and x/c are on node1, x/b on node2; y/b is on node1
    const cases: [string, string, string][] = [
      ['node1', 'x/a', 'ok'],
      ['x/a', 'node1', 'ok'],
      ['node2', 'x/b', 'ok'],
      ['x/b', 'node2', 'ok'],
      ['node2', 'x/a', 'timeout'],
      ['x/a', 'node2', 'timeout'],
      ['node1', 'x/b', 'timeout'],
      ['x/b', 'node1', 'timeout'],
    ];
    for (const proto of ['TCP', 'UDP'] as const) {
      const got = await Promise.all(cases.map(([f, t]) => reach(f, t, proto)));
      const wrong = cases.flatMap(([f, t, want], i) => (got[i] === want ? [] : [`${f} -> ${t} ${proto}: ${got[i]}, want ${want}`]));
      assert.deepEqual(wrong, [], `${proto}: own node allowed both ways, the other node denied`);
    }
    // x/h (hostNetwork on node2, selected by deny-all) is not policed: it reaches y/b on node1 and
    // y/b reaches it; the node2 address still is the remote node for x's own (policed) pods
    const hostNet = [await reach('node2', 'y/b'), await reach('y/b', 'node2'), await reach('x/c', 'node2')];
    assert.deepEqual(hostNet, ['ok', 'ok', 'timeout'], 'x/h -> y/b, y/b -> x/h allowed; x/c -> node2 denied');
    const m = weirs[0]!.counters();
    console.log(`node1 counters after the exemptions: ${JSON.stringify({ from_pod: m.from_pod, from_host: m.from_host })}`);
  });
});
