// Issue 4, must-show 5: taking over from kube-proxy in a lab node. kube-proxy's rules as
// iptables-save and nft print them (test/fixtures/kube-proxy: restored into iptables-nft AND
// iptables-legacy, and the `ip kube-proxy` nftables table) serve a NodePort Service whose
// endpoints are real pods. Three clients connect all along: a pod in the socket-LB cgroup, a
// pod outside it (weir's TC path) and an external client through the NodePort (from_host);
// long-lived flows from each, opened through kube-proxy and through weir, run until the test
// has seen replies after the cleanup. weir starts and, once programmed, removes exactly
// kube-proxy's state: KUBE-* chains and the jumps to them go, the canary rules, chains and
// table we added (and kubelet's KUBE-IPTABLES-HINT and KUBE-KUBELET-CANARY) stay, nothing stops, and the counters show
// which path carried the connections. With cleanup off (`weir kube-proxy cleanup --dry-run`,
// or the daemon's --kube-proxy-cleanup off) nothing changes, a warning names the chains, and
// weir serves on every path while the KUBE-* rules, INVALID drop included, are still there.

import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type Cgroup, type External, type LabNode, type Pod } from '../lib/lab.js';
import { binWeir, repoRoot } from '../lib/paths.js';
import { sleep, spawnManaged } from '../lib/proc.js';
import { endpointSlice, parseLogfmt, service, WeirNode, type Flow, type PortSpec } from '../lib/weir-node.js';
import type { Netns } from '../lib/lab.js';

const WEIR = binWeir;
const VIP = '198.19.0.30';
const NODE_PORT = 30080;
const PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: NODE_PORT }];
type IptablesVariant = 'nft' | 'legacy';
const VARIANTS: IptablesVariant[] = ['nft', 'legacy'];
/** the endpoint addresses written in the fixtures, replaced by the lab pods' addresses */
const FIXTURE_ENDPOINTS = ['198.18.1.2', '198.18.1.3'];
const fixture = (name: string) => readFileSync(join(repoRoot, 'test/fixtures/kube-proxy', name), 'utf8');

/** Rules that are not kube-proxy's: they must survive the cleanup. */
const CANARY_IPTABLES = [
  '*filter',
  ':CANARY-FW - [0:0]',
  '-A CANARY-FW -s 198.18.200.1/32 -j ACCEPT',
  '-A FORWARD -m comment --comment weir-canary -j CANARY-FW',
  '-A INPUT -s 198.18.200.2/32 -m comment --comment weir-canary -j ACCEPT',
  'COMMIT',
  '*nat',
  '-A POSTROUTING -d 198.18.200.3/32 -m comment --comment weir-canary -j RETURN',
  'COMMIT',
  '*mangle',
  ':KUBE-IPTABLES-HINT - [0:0]',
  'COMMIT',
  '',
].join('\n');
const CANARY_NFT =
  'add table ip canary\nadd chain ip canary input { type filter hook input priority 10 ; }\nadd rule ip canary input ip saddr 198.18.200.4 accept\n';

describe('kube-proxy takeover', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  /** a pod whose connections the socket LB translates (it runs them in `cg`) */
  let client: Pod;
  /** a pod outside the socket-LB cgroup: weir's TC path (from_pod) */
  let tcClient: Pod;
  /** outside the cluster, through the NodePort: weir's from_host */
  let ext: External;
  let weir: WeirNode;
  let cg: Cgroup;
  /** the three ways into the service: who, from where, to where, in which cgroup */
  let paths: Array<{ name: 'socket LB' | 'TC path' | 'NodePort'; ns: Netns; host: string; port: number; cgroup?: Cgroup }>;

  const sh = async (cmd: string, args: string[], input?: string) => (await node.ns.exec(cmd, args, input === undefined ? {} : { input })).stdout;
  const save = (v: IptablesVariant) => sh(`iptables-${v}-save`, []).then((s) => s.replace(/^#.*\n/gm, '').replace(/\[\d+:\d+\]/g, ''));
  const kubeChains = (text: string) => [...text.matchAll(/^:(KUBE-[\w-]+)/gm)].map((m) => m[1]!);
  const nftTables = async () => sh('nft', ['list', 'tables']);
  const cli = (args: string[]) => node.ns.exec(WEIR, args, { check: false, timeoutMs: 60_000 });

  before(async () => {
    lab = await Lab.create({ name: 'kp-takeover' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
    client = await lab.pod(node, 'client');
    tcClient = await lab.pod(node, 'tc-client');
    ext = await lab.external('ext', { address: '198.18.0.100/24' });
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));

    // kube-proxy's rules for the service, as iptables-save and nft print them, with our pods as endpoints
    const endpoints = (text: string) => text.replace(/\b198\.18\.1\.[23]\b/g, (ip) => backends[FIXTURE_ENDPOINTS.indexOf(ip)]!.ip);
    const rules = join(lab.dir, 'kube-proxy.rules');
    writeFileSync(rules, endpoints(fixture('iptables-save.txt')));
    writeFileSync(`${rules}.canary`, CANARY_IPTABLES);
    for (const v of VARIANTS) for (const f of [rules, `${rules}.canary`]) await sh(`iptables-${v}-restore`, ['--noflush', '-w', '5', f]);
    writeFileSync(`${rules}.nft`, endpoints(fixture('nft-ruleset.txt')) + CANARY_NFT);
    await sh('nft', ['-f', `${rules}.nft`]);

    // the default deployment: connect-time LB for the pods in `cg`; the TC path for the rest
    cg = await lab.cgroup('pods');
    paths = [
      { name: 'socket LB', ns: client.ns, host: VIP, port: 80, cgroup: cg },
      { name: 'TC path', ns: tcClient.ns, host: VIP, port: 80 },
      { name: 'NodePort', ns: ext.ns, host: node.address, port: NODE_PORT },
    ];
    weir = await WeirNode.create(lab, node, { cgroup: cg, connectTimeLb: 'on' });
    weir.writeManifest('web.yaml', [
      service({ name: 'web', type: 'NodePort', clusterIP: VIP, ports: PORTS }),
      endpointSlice({ name: 'web-1', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) }),
    ]);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('before weir: kube-proxy rules of both iptables backends and nftables serve the ClusterIP and the NodePort', async () => {
    for (const v of VARIANTS) assert.ok(kubeChains(await save(v)).includes('KUBE-SERVICES'), `iptables-${v} holds KUBE-SERVICES`);
    assert.match(await nftTables(), /table ip kube-proxy/);
    for (const p of paths) {
      const r = await weir.spread(p.ns, p.host, p.port, { count: 40, ...(p.cgroup ? { cgroup: p.cgroup } : {}) });
      assert.equal(r.failures, 0, `${p.name}: ${r.errors.join('; ')}`);
      assert.deepEqual(Object.keys(r.servers).sort(), ['be-a', 'be-b'], p.name);
    }
  });

  test('cleanup off (--dry-run): nothing changes, a warning names the chains, a running kube-proxy is warned about', async () => {
    // a process named kube-proxy on this host
    const fake = join(lab.dir, 'kube-proxy');
    copyFileSync('/bin/sleep', fake);
    const kp = spawnManaged(fake, ['30'], { label: 'fake kube-proxy', killAfterMs: 500 });
    try {
      const before = await Promise.all(VARIANTS.map(save));
      const r = await cli(['kube-proxy', 'cleanup', '--dry-run', '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const events = r.stderr
        .split('\n')
        .map(parseLogfmt)
        .filter((l) => l !== undefined);
      const left = events.find((e) => e.event === 'kube-proxy-state-left');
      assert.ok(left, `a warning about the state left:\n${r.stderr}`);
      assert.equal(left.level, 'warn');
      for (const c of ['KUBE-SERVICES', 'KUBE-MARK-MASQ', 'KUBE-POSTROUTING']) assert.ok(left.chains!.split(',').includes(c), `names ${c}: ${left.chains}`);
      assert.match(left.state!, /iptables-nft ipv4 nat/);
      assert.match(left.state!, /iptables-legacy ipv4 nat/);
      assert.equal(left.nftables, 'ip kube-proxy');
      const running = events.find((e) => e.event === 'kube-proxy-running');
      assert.ok(running && running.pids!.split(',').includes(String(kp.pid)), `warns about pid ${kp.pid}:\n${r.stderr}`);
      const out = JSON.parse(r.stdout) as { removed: unknown; found: { iptables: Array<{ chains: string[] }> } };
      assert.equal(out.removed, null);
      assert.deepEqual(await Promise.all(VARIANTS.map(save)), before, 'the rules are untouched');
      assert.match(await nftTables(), /table ip kube-proxy/);
    } finally {
      kp.signalGroup('SIGKILL');
      await kp.exited;
    }
  });

  /** long-lived connections opened through kube-proxy's rules before weir started, one per path */
  let kubeProxyEraFlows: Flow[] = [];
  /** the batches of new connections in flight while weir started, one per path */
  const atStart: Array<{ failures: number; ms: number; errors: string[] } | undefined> = [];

  test('weir starts, cleanup removes exactly kube-proxy state; new connections and flows on every path never stop', async () => {
    // new connections, one after another on each path, from kube-proxy's rules through weir's
    // start to weir alone after the cleanup
    let looping = true;
    type Batch = { failures: number; ms: number; errors: string[]; afterReady: boolean; endedAfterStart: boolean };
    const batches = paths.map(() => [] as Batch[]);
    let starting = false;
    let ready = false;
    const loops = paths.map(async (p, i) => {
      while (looping) {
        const afterReady = ready;
        try {
          const r = await weir.spread(p.ns, p.host, p.port, { count: 5, concurrency: 1, ...(p.cgroup ? { cgroup: p.cgroup } : {}) });
          batches[i]!.push({ failures: r.failures, ms: r.ms, errors: r.errors, afterReady, endedAfterStart: starting });
        } catch (e) {
          batches[i]!.push({ failures: 5, ms: 0, errors: [(e as Error).message], afterReady, endedAfterStart: starting });
          await sleep(100);
        }
      }
    });
    kubeProxyEraFlows = paths.map((p) => weir.flow(p.ns, p.host, p.port, { seconds: 0, interval: 50, ...(p.cgroup ? { cgroup: p.cgroup } : {}) }));
    let readyAt: number[] = [];
    let cleanedAt: number[] = [];
    try {
      for (const f of kubeProxyEraFlows) await f.waitReplies(5);
      // a few batches through kube-proxy's rules on every path first
      while (batches.some((b) => b.length < 2)) await sleep(50);
      starting = true;
      await switchOver(
        () => {
          ready = true;
          readyAt = batches.map((b) => b.length);
        },
        () => (cleanedAt = batches.map((b) => b.length)),
      );
      // connections keep coming on every path after the cleanup
      for (const [i, b] of batches.entries()) while (b.length < cleanedAt[i]! + 2) await sleep(50);
    } finally {
      looping = false;
      await Promise.all(loops);
    }
    for (const [i, p] of paths.entries()) {
      const b = batches[i]!;
      // the batch in flight while weir started is checked with the kube-proxy-era flows below;
      // every other one, served by kube-proxy before or by weir after (across the cleanup), is whole
      atStart[i] = b[readyAt[i]!];
      const others = b.filter((_, j) => j !== readyAt[i]);
      const show = `${p.name} batches (ms): ${b.map((x) => x.ms).join(' ')}; weir ready during batch ${readyAt[i]}, cleanup after ${cleanedAt[i]}`;
      console.log(`# ${show}`);
      assert.deepEqual(
        others.filter((x) => x.failures > 0),
        [],
        `no new connection failed; ${show}`,
      );
    }
    // which path carried weir's connections: weir's maps (and counters) are new at its start.
    // At least the batches begun after it was ready, at most those that ended after it started
    // (its programs attach before it logs ready), plus the weir-era flow
    const least = (i: number) => batches[i]!.filter((x) => x.afterReady).length * 5 + 1;
    const most = (i: number) => batches[i]!.filter((x) => x.endedAfterStart).length * 5 + 1;
    const counters = weir.counters();
    const tcNat = counters.from_pod?.service_nat ?? 0;
    const npNat = counters.from_host?.service_nat ?? 0;
    const sockLb = counters.sock?.sock_lb_translated ?? 0;
    console.log(`# counters after the takeover: ${JSON.stringify(counters)}`);
    const seen = [
      ['from_pod service_nat (TC path)', tcNat, 1],
      ['from_host service_nat (NodePort)', npNat, 2],
      ['sock_lb_translated (socket LB)', sockLb, 0],
    ] as const;
    for (const [name, n, i] of seen) assert.ok(n >= least(i) && n <= most(i), `${name}: ${n}, want ${least(i)}..${most(i)} (weir-era connections and flow)`);
  });

  /** weir starts, then the cleanup runs; asserts the state and flows weir balanced */
  async function switchOver(markReady: () => void, markCleaned: () => void): Promise<void> {
    const ready = await weir.start();
    markReady();
    assert.equal(ready.frontends, '2', 'the ClusterIP and the NodePort');
    // long-lived flows weir balanced, on every path, running while the daemon's cleanup completes
    const flows = paths.map((p) => weir.flow(p.ns, p.host, p.port, { seconds: 0, interval: 50, ...(p.cgroup ? { cgroup: p.cgroup } : {}) }));
    for (const f of flows) await f.waitReplies(1);

    // the daemon removed kube-proxy's state right after it was programmed and attached
    const done = await weir.waitFor('kube-proxy-cleanup', {}, 10_000);
    markCleaned();
    assert.match(done.removed ?? '', /iptables-nft/);
    assert.match(done.removed ?? '', /iptables-legacy/);
    assert.match(done.removed ?? '', /ip kube-proxy/);
    assert.equal(weir.events('kube-proxy-cleanup-error').length, 0);

    for (const v of VARIANTS) {
      const text = await save(v);
      const kubelets = ['KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY', 'KUBE-KUBELET-CANARY', 'KUBE-KUBELET-CANARY'];
      assert.deepEqual(kubeChains(text).sort(), kubelets, `iptables-${v}: only kubelet's chains are left:\n${text}`);
      assert.doesNotMatch(text, /-j KUBE-/, `iptables-${v}: no jump to a KUBE chain`);
      // every canary rule and chain is still there
      for (const line of [
        '-A CANARY-FW -s 198.18.200.1/32 -j ACCEPT',
        '-A FORWARD -m comment --comment weir-canary -j CANARY-FW',
        '-A INPUT -s 198.18.200.2/32 -m comment --comment weir-canary -j ACCEPT',
        '-A POSTROUTING -d 198.18.200.3/32 -m comment --comment weir-canary -j RETURN',
      ])
        assert.ok(text.includes(line), `iptables-${v} keeps ${line}:\n${text}`);
    }
    const tables = await nftTables();
    assert.doesNotMatch(tables, /kube-proxy/);
    assert.match(tables, /table ip canary/);

    // idempotent: nothing left to do
    const again = await cli(['kube-proxy', 'cleanup', '-o', 'json']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { removed: unknown }).removed, null);
    assert.match(again.stderr, /event=kube-proxy-state found=none/);

    // every flow answers after the cleanup, and answered every line
    for (const [i, f] of flows.entries()) {
      await f.waitReplies(f.replies() + 10);
      const r = await f.stop();
      assert.equal(r.error, undefined, paths[i]!.name);
      assert.equal(r.received, r.sent, `${paths[i]!.name}: every request answered: ${JSON.stringify(r)}`);
      console.log(`# weir-era ${paths[i]!.name} flow: ${r.sent} lines, longest gap ${r.maxGapMs} ms`);
    }
  }

  test(
    'connections NATed by kube-proxy before weir started survive the takeover on every path ' +
      '(weir passes them to the kernel; the keeper table holds conntrack and the NAT hooks)',
    async () => {
      // the nft table that keeps the kernel translating kube-proxy's connections is in place
      assert.match(await nftTables(), /table ip weir-conntrack-keeper/);
      for (const [i, f] of kubeProxyEraFlows.entries()) {
        // replies after the cleanup (the previous test waited for it), then stop
        await f.waitReplies(f.replies() + 10);
        const r = await f.stop();
        assert.equal(r.error, undefined, `${paths[i]!.name}: ${JSON.stringify(r)}`);
        assert.equal(r.received, r.sent, `${paths[i]!.name}: ${JSON.stringify(r)}`);
        console.log(`# kube-proxy-era ${paths[i]!.name} flow: ${r.sent} lines, longest gap ${r.maxGapMs} ms`);
        assert.ok(atStart[i] && atStart[i]!.failures === 0, `${paths[i]!.name}: the batch in flight at weir's start: ${JSON.stringify(atStart[i])}`);
      }
      // weir saw the kube-proxy-era TC and NodePort flows' packets and left them to the kernel
      const c = weir.counters();
      assert.ok((c.from_pod?.midflow_no_conntrack ?? 0) > 0 && (c.from_host?.midflow_no_conntrack ?? 0) > 0, JSON.stringify(c));
    },
  );

  test('daemon with --kube-proxy-cleanup off: the rules stay, a warning names them; the socket LB serves while KUBE-* rules exist', async () => {
    await weir.terminate();
    // kube-proxy's rules come back (say, a kube-proxy that was not stopped yet)
    const rules = join(lab.dir, 'kube-proxy.rules');
    for (const v of VARIANTS) await sh(`iptables-${v}-restore`, ['--noflush', '-w', '5', rules]);
    await sh('nft', ['-f', `${rules}.nft`]).catch(() => sh('nft', ['-f', `${rules}.nft`]));
    const before = await Promise.all(VARIANTS.map(save));
    weir.configure({ extraArgs: ['--kube-proxy-cleanup', 'off'] });
    await weir.start();
    const left = await weir.waitFor('kube-proxy-state-left', {}, 10_000);
    assert.equal(left.level, 'warn');
    assert.ok(left.chains!.split(',').includes('KUBE-SERVICES'));
    assert.equal(weir.events('kube-proxy-cleanup').length, 0);
    assert.deepEqual(await Promise.all(VARIANTS.map(save)), before, 'the rules are untouched');
    assert.match(await nftTables(), /table ip kube-proxy/);
    // the socket LB's connections are weir's, one translation each, though kube-proxy's rules
    // would serve them too (the TC path and the NodePort: the next test)
    await assertServedByWeir(
      paths.find((x) => x.name === 'socket LB')!,
      20,
    );
  });

  /** `count` new connections on path `p`, each translated by weir (its counter), none failing */
  async function assertServedByWeir(p: (typeof paths)[number], count: number): Promise<void> {
    const counterOf = { 'socket LB': ['sock', 'sock_lb_translated'], 'TC path': ['from_pod', 'service_nat'], NodePort: ['from_host', 'service_nat'] } as const;
    const [hook, reason] = counterOf[p.name];
    const c0 = weir.counter(hook, reason);
    const r = await weir.spread(p.ns, p.host, p.port, { count, ...(p.cgroup ? { cgroup: p.cgroup } : {}) });
    assert.equal(r.failures, 0, `${p.name}: ${r.errors.join('; ')}`);
    assert.equal(weir.counter(hook, reason) - c0, count, `${p.name}: ${hook} ${reason}`);
    assert.deepEqual(Object.keys(r.servers).sort(), ['be-a', 'be-b'], p.name);
  }

  // kube-proxy's filter rule `-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP` stays in
  // place here. weir's flows to local backends are redirected interface to interface in both
  // directions (bpf-c/lib/forward.h), so the kernel's conntrack never sees a reverse-NATed
  // SYN-ACK without its SYN (INVALID, dropped: the bug this test found on 2026-11-30).
  test('TC path and NodePort while KUBE-* rules exist (cleanup off)', async () => {
    for (const p of paths.filter((x) => x.name !== 'socket LB')) await assertServedByWeir(p, 20);
  });
});
