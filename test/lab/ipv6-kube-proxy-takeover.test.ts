// Issue 14: weir takes over from kube-proxy on a dual-stack lab node, IPv6 included. kube-proxy's
// rules for a NodePort Service of each family, as ip6tables-save / iptables-save and nft print
// them (test/fixtures/kube-proxy: restored into iptables-nft AND iptables-legacy of both
// families, and the `ip6 kube-proxy` / `ip kube-proxy` nftables tables), serve the IPv6
// ClusterIP and NodePort with real pods as endpoints. weir starts; its cleanup removes the
// KUBE-* chains of ip6tables and the ip6 table with the IPv4 ones, keeps every rule, chain and
// table that is not kube-proxy's, and the IPv6 service carries on through weir: new
// connections on every path (connect-time LB, TC path, NodePort) with weir's counters showing
// it did the work and the backend seeing the external client unmasqueraded, and connections
// kube-proxy NATed before the takeover still answer.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCleanups } from '../lib/cleanup.js';
import { dualStackNode, Lab, type Cgroup, type External, type LabNode, type Netns, type Pod } from '../lib/lab.js';
import { binWeir, repoRoot } from '../lib/paths.js';
import { endpointSlice, service, WeirNode, type Flow, type PortSpec } from '../lib/weir-node.js';

const VIP4 = '198.19.0.30';
const VIP6 = '2001:2:ff::30';
const NODE6 = '2001:2::1';
const NODE_PORT = 30080;
const PORTS: PortSpec[] = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: NODE_PORT }];
type Variant = 'nft' | 'legacy';
const VARIANTS: Variant[] = ['nft', 'legacy'];
const fixture = (name: string) => readFileSync(join(repoRoot, 'test/fixtures/kube-proxy', name), 'utf8');

/** IPv6 rules, chains and a table that are not kube-proxy's: they must survive the cleanup. */
const CANARY_IP6TABLES = [
  '*filter',
  ':CANARY-FW - [0:0]',
  '-A CANARY-FW -s 2001:2:200::1/128 -j ACCEPT',
  '-A FORWARD -m comment --comment weir-canary -j CANARY-FW',
  '-A INPUT -s 2001:2:200::2/128 -m comment --comment weir-canary -j ACCEPT',
  'COMMIT',
  '*nat',
  '-A POSTROUTING -d 2001:2:200::3/128 -m comment --comment weir-canary -j RETURN',
  'COMMIT',
  '',
].join('\n');
const CANARY_LINES = [
  '-A CANARY-FW -s 2001:2:200::1/128 -j ACCEPT',
  '-A FORWARD -m comment --comment weir-canary -j CANARY-FW',
  '-A INPUT -s 2001:2:200::2/128 -m comment --comment weir-canary -j ACCEPT',
  '-A POSTROUTING -d 2001:2:200::3/128 -m comment --comment weir-canary -j RETURN',
];
const CANARY_NFT6 =
  'add table ip6 canary\nadd chain ip6 canary input { type filter hook input priority 10 ; }\nadd rule ip6 canary input ip6 saddr 2001:2:200::4 accept\n';

describe('kube-proxy takeover on a dual-stack node: ip6tables and the ip6 nft table', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let ext: External;
  let cg: Cgroup;
  let weir: WeirNode;
  let paths: Array<{ name: 'socket LB' | 'TC path' | 'NodePort'; ns: Netns; host: string; port: number; cgroup?: Cgroup; client: string }>;
  const sh = async (cmd: string, args: string[]) => (await node.ns.exec(cmd, args)).stdout;
  const save6 = (v: Variant) => sh(`ip6tables-${v}-save`, []).then((s) => s.replace(/^#.*\n/gm, '').replace(/\[\d+:\d+\]/g, ''));
  const kubeChains = (text: string) => [...text.matchAll(/^:(KUBE-[\w-]+)/gm)].map((m) => m[1]!);
  const nftTables = () => sh('nft', ['list', 'tables']);
  const opts = (p: (typeof paths)[number]) => (p.cgroup ? { cgroup: p.cgroup } : {});

  before(async () => {
    lab = await Lab.create({ name: 'kp-takeover6' });
    node = await lab.node('node1', dualStackNode(1));
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
    const sockClient = await lab.pod(node, 'sock-client');
    const tcClient = await lab.pod(node, 'tc-client');
    ext = await lab.external('ext', { address: '198.18.0.100/24', address6: '2001:2::100/64', cgroup: true });
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    cg = await lab.cgroup('pods');
    paths = [
      { name: 'socket LB', ns: sockClient.ns, host: VIP6, port: 80, cgroup: cg, client: sockClient.ip6! },
      { name: 'TC path', ns: tcClient.ns, host: VIP6, port: 80, client: tcClient.ip6! },
      { name: 'NodePort', ns: ext.ns, host: NODE6, port: NODE_PORT, cgroup: ext.cgroup!, client: ext.address6! },
    ];

    // kube-proxy's rules of both families with our pods as endpoints
    const v4 = (text: string) => text.replace(/\b198\.18\.1\.([23])\b/g, (_, i: string) => backends[Number(i) - 2]!.ip);
    const v6 = (text: string) => text.replace(/\b2001:2:0:1::([23])\b/g, (_, i: string) => backends[Number(i) - 2]!.ip6!);
    const rules = join(lab.dir, 'kube-proxy');
    writeFileSync(`${rules}.v4`, v4(fixture('iptables-save.txt')));
    writeFileSync(`${rules}.v6`, v6(fixture('ip6tables-save.txt')));
    writeFileSync(`${rules}.v6.canary`, CANARY_IP6TABLES);
    for (const v of VARIANTS) {
      await sh(`iptables-${v}-restore`, ['--noflush', '-w', '5', `${rules}.v4`]);
      for (const f of [`${rules}.v6`, `${rules}.v6.canary`]) await sh(`ip6tables-${v}-restore`, ['--noflush', '-w', '5', f]);
    }
    writeFileSync(`${rules}.nft`, v4(fixture('nft-ruleset.txt')) + v6(fixture('nft6-ruleset.txt')) + CANARY_NFT6);
    await sh('nft', ['-f', `${rules}.nft`]);

    weir = await WeirNode.create(lab, node, { cgroup: cg, connectTimeLb: 'on' });
    weir.writeManifest('web.yaml', [
      service({ name: 'web', type: 'NodePort', clusterIP: [VIP6, VIP4], ports: PORTS }),
      endpointSlice({ name: 'web-v6', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip6!, node: node.name })) }),
      endpointSlice({ name: 'web-v4', service: 'web', ports: PORTS, endpoints: backends.map((b) => ({ ip: b.ip, node: node.name })) }),
    ]);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test("before weir: kube-proxy's IPv6 rules (ip6tables nft and legacy, nft ip6 table) serve the IPv6 ClusterIP and NodePort", async () => {
    for (const v of VARIANTS) assert.ok(kubeChains(await save6(v)).includes('KUBE-SERVICES'), `ip6tables-${v} holds KUBE-SERVICES`);
    assert.match(await nftTables(), /table ip6 kube-proxy/);
    for (const p of paths) {
      const r = await weir.spread(p.ns, p.host, p.port, { count: 30, ...opts(p) });
      assert.equal(r.failures, 0, `${p.name}: ${r.errors.join('; ')}`);
      assert.deepEqual(Object.keys(r.servers).sort(), ['be-a', 'be-b'], p.name);
      assert.deepEqual(Object.keys(r.remotes), [`${p.host}:${p.port}`], p.name);
      // kube-proxy masquerades traffic from outside the cluster CIDR (KUBE-EXT -> KUBE-MARK-MASQ)
      const peers = [...new Set(Object.values(r.peers).flat())];
      if (p.name === 'NodePort') assert.ok(!peers.includes(p.client), `kube-proxy masqueraded the external client: ${peers.join(',')}`);
      else assert.deepEqual(peers, [p.client], p.name);
    }
  });

  /** connections opened through kube-proxy's rules before weir starts, one per path */
  let kubeProxyEra: Flow[] = [];

  test('weir starts and removes exactly kube-proxy state of both families: KUBE-* chains of ip6tables, the ip6 table; canaries stay', async () => {
    kubeProxyEra = paths.map((p) => weir.flow(p.ns, p.host, p.port, { seconds: 0, interval: 50, ...opts(p) }));
    for (const f of kubeProxyEra) await f.waitReplies(5);
    await weir.start();
    const done = await weir.waitFor('kube-proxy-cleanup', {}, 10_000);
    console.log(`# removed: ${done.removed}`);
    for (const re of [
      /iptables-nft ipv6 nat/,
      /iptables-legacy ipv6 nat/,
      /iptables-nft ipv6 filter/,
      /iptables-nft ipv4 nat/,
      /nft ip6 kube-proxy/,
      /nft ip kube-proxy/,
    ])
      assert.match(done.removed ?? '', re);
    assert.equal(
      weir.events('kube-proxy-cleanup-error').length,
      0,
      weir
        .events('kube-proxy-cleanup-error')
        .map((e) => e.error)
        .join('; '),
    );
    for (const v of VARIANTS) {
      const text = await save6(v);
      assert.deepEqual(
        kubeChains(text).sort(),
        ['KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY', 'KUBE-KUBELET-CANARY', 'KUBE-KUBELET-CANARY'],
        `ip6tables-${v}: only kubelet's chains are left:\n${text}`,
      );
      assert.doesNotMatch(text, /-j KUBE-/, `ip6tables-${v}: no jump to a KUBE chain`);
      for (const line of CANARY_LINES) assert.ok(text.includes(line), `ip6tables-${v} keeps ${line}:\n${text}`);
    }
    const tables = await nftTables();
    assert.doesNotMatch(tables, /kube-proxy/);
    assert.match(tables, /table ip6 canary/);
    assert.match(tables, /table ip6 weir-conntrack-keeper/, 'the keeper holds conntrack and the NAT hooks for IPv6 too');
    // idempotent: nothing of either family left to do
    const again = await node.ns.exec(binWeir, ['kube-proxy', 'cleanup', '-o', 'json'], { check: false, timeoutMs: 60_000 });
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { removed: unknown }).removed, null);
    assert.match(again.stderr, /event=kube-proxy-state found=none/);
  });

  test('the IPv6 service works through weir with the rules gone: every path, translated by weir, the backend sees the external client', async () => {
    for (const p of paths) {
      const counter = p.name === 'socket LB' ? () => weir.counter('sock', 'sock_lb_translated') : () => weir.reasonTotal('service_nat');
      const c0 = counter();
      const r = await weir.spread(p.ns, p.host, p.port, { count: 20, ...opts(p) });
      assert.equal(r.failures, 0, `${p.name}: ${r.errors.join('; ')}`);
      assert.equal(counter() - c0, 20, `${p.name}: weir translated every connection`);
      assert.deepEqual(Object.keys(r.servers).sort(), ['be-a', 'be-b'], p.name);
      assert.deepEqual([...new Set(Object.values(r.peers).flat())], [p.client], `${p.name}: no SNAT under weir`);
      assert.deepEqual(Object.keys(r.remotes), [`${p.host}:${p.port}`], p.name);
    }
  });

  test('connections kube-proxy NATed before the takeover still answer on every path', async () => {
    for (const [i, f] of kubeProxyEra.entries()) {
      await f.waitReplies(f.replies() + 10);
      const r = await f.stop();
      console.log(`# kube-proxy-era ${paths[i]!.name} flow: ${r.sent} lines, longest gap ${r.maxGapMs} ms`);
      assert.equal(r.error, undefined, `${paths[i]!.name}: ${JSON.stringify(r)}`);
      assert.equal(r.received, r.sent, `${paths[i]!.name}: every line answered`);
    }
  });
});
