// `weir uninstall` on a live lab node (issue 11, must-show 5): a weir daemon serving a
// ClusterIP/NodePort service to a pod and an outside client, with the conntrack keeper nft
// table present and pre-weir sysctl values we can tell apart. While the daemon runs,
// uninstall refuses; after SIGTERM, --dry-run changes nothing; uninstall then leaves no pin,
// no link (bpftool: the node's netns and the lab cgroup), no nft table, the sysctls as they
// were before weir, and traffic to the service no longer translated; a second run is a no-op.

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { conntrackKeeperInput } from '../../src/dataplane/kube-proxy.js';
import { runCleanups } from '../lib/cleanup.js';
import { Lab, type External, type LabNode, type Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { run, type RunResult } from '../lib/proc.js';
import { endpointSlice, service, WeirNode } from '../lib/weir-node.js';

const CLUSTER_IP = '198.19.0.50';
const NODE_PORT = 30500;
const KEEPER = 'weir-conntrack-keeper';

interface Item {
  kind: string;
  name: string;
  detail: string;
  outcome: string;
  reason?: string;
}
interface Result {
  pinDir: string;
  dryRun: boolean;
  items: Item[];
  failed: number;
  daemonRunning: boolean;
}

describe('weir uninstall on a live node', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let outside: External;
  let weir: WeirNode;
  /** host veth -> accept_local before weir started */
  const before0 = new Map<string, string>();

  /** bin/weir uninstall in the node's netns, with the lab's bpf root and instance */
  const uninstallCmd = (...args: string[]): Promise<RunResult> =>
    node.ns.exec(binWeir, ['uninstall', '--bpf-root', lab.bpffs, '--instance', weir.instance, ...args], { check: false, timeoutMs: 30_000 });
  const uninstallJson = async (...args: string[]): Promise<Result> => {
    const r = await uninstallCmd(...args, '-o', 'json');
    assert.equal(r.code, 0, `weir uninstall ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Result;
  };
  const acceptLocal = async (ifname: string) => (await node.ns.exec('cat', [`/proc/sys/net/ipv4/conf/${ifname}/accept_local`])).stdout.trim();
  const nftTables = async () => (await node.ns.exec('nft', ['list', 'tables'])).stdout.trim().split('\n').filter(Boolean).sort();
  /** program names on the node's interfaces (TCX), from bpftool in the node's netns */
  const netPrograms = async (): Promise<string[]> => {
    type Prog = { name: string };
    const j = JSON.parse((await node.ns.exec('bpftool', ['-j', 'net', 'show'])).stdout) as Array<{ tcx?: Prog[]; tc?: Prog[] }>;
    return j.flatMap((e) => [...(e.tcx ?? []), ...(e.tc ?? [])].map((p) => p.name)).sort();
  };
  /** program names attached to the lab's socket-LB cgroup */
  const cgroupPrograms = async (): Promise<string[]> => {
    const r = await run('bpftool', ['-j', 'cgroup', 'show', weir.cgroup.path]);
    return (JSON.parse(r.stdout.trim() || '[]') as Array<{ name: string }>).map((p) => p.name).sort();
  };
  const linkAlive = async (id: number) => (await run('bpftool', ['link', 'show', 'id', String(id)], { check: false })).code === 0;
  /** everything uninstall may change, to show a dry run changes none of it */
  const snapshot = async () =>
    JSON.stringify({
      pins: existsSync(weir.pinDir) ? readdirSync(weir.pinDir, { recursive: true }).map(String).sort() : null,
      net: await netPrograms(),
      cgroup: await cgroupPrograms(),
      nft: await nftTables(),
      sysctls: await Promise.all([...backends, client].map((p) => acceptLocal(p.hostIfname))),
    });

  before(async () => {
    lab = await Lab.create({ name: 'uninstall' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [await lab.pod(node, 'be-a'), await lab.pod(node, 'be-b')];
    client = await lab.pod(node, 'client');
    outside = await lab.external('outside', { address: '198.18.0.100/24' });
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    // pre-weir values: 2 (not a value weir writes, so "restored" differs from "reset to 0"
    // and from "left at weir's 1"), and the kernel default 0 on the others
    await node.ns.exec('sh', ['-c', `echo 2 > /proc/sys/net/ipv4/conf/${backends[0]!.hostIfname}/accept_local`]);
    for (const p of [...backends, client]) before0.set(p.hostIfname, await acceptLocal(p.hostIfname));
    assert.deepEqual([...before0.values()], ['2', '0', '0']);
    // the conntrack keeper, as the kube-proxy takeover creates it (no kube-proxy in the lab)
    for (const f of ['ip', 'ip6'] as const) await node.ns.exec('nft', ['-f', '-'], { input: conntrackKeeperInput(f) });

    weir = await WeirNode.create(lab, node, { connectTimeLb: 'host-only' });
    const ports = [{ name: 'http', port: 80, targetPort: 8080, nodePort: NODE_PORT }];
    weir.writeManifest('web.yaml', [
      service({ name: 'web', type: 'NodePort', clusterIP: CLUSTER_IP, ports }),
      endpointSlice({ name: 'web-1', service: 'web', ports, endpoints: backends.map((b) => ({ ip: b.ip, node: 'node1' })) }),
    ]);
    await weir.start();
    // a restart: the record of the values before must survive it, not pick up weir's own 1
    assert.equal((await weir.terminate()).code, 0);
    await weir.start();
  });
  after(async () => {
    await runCleanups();
    await lab?.destroy();
  });

  test('refused while the daemon runs; dry run changes nothing; uninstall leaves nothing; a second run is a no-op', async () => {
    // weir serves: through the TC path from a pod, and NodePort from outside
    for (const p of [...backends, client]) assert.equal(await acceptLocal(p.hostIfname), '1', `weir set accept_local on ${p.hostIfname}`);
    const spread = await weir.spread(client.ns, CLUSTER_IP, 80, { count: 10 });
    assert.equal(spread.failures, 0, spread.errors.join('; '));
    const np = await outside.ns.echo(node.address, NODE_PORT, { proto: 'tcp' });
    assert.ok(backends.some((b) => b.name === np.reply.server));
    assert.deepEqual(
      (await nftTables()).filter((t) => t.includes(KEEPER)),
      [`table ip ${KEEPER}`, `table ip6 ${KEEPER}`],
    );

    // refused while the daemon runs: one line, exit 1, nothing removed
    const refused = await uninstallCmd();
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /^weir: a weir daemon is running for instance node1 .*\(it holds the instance lock, pid \d+\): .*--force\n$/);
    assert.ok(existsSync(join(weir.pinDir, 'weir_frontend4')));

    assert.equal((await weir.terminate()).code, 0);
    // SIGTERM leaves the dataplane: still served
    assert.equal((await weir.spread(client.ns, CLUSTER_IP, 80, { count: 4 })).failures, 0);

    const pinnedLinks = readdirSync(join(weir.pinDir, 'links')).sort();
    // 3 pods x (from_pod, from_pod6, to_pod) + eth0 (from_host, from_host6, to_host, the XDP prefilter) + 8 socket-LB
    // cgroup hooks (4 per family)
    assert.equal(pinnedLinks.length, 21, pinnedLinks.join(' '));
    const ids: number[] = [];
    for (const n of pinnedLinks) {
      const show = await run('bpftool', ['-j', 'link', 'show', 'pinned', join(weir.pinDir, 'links', n)]);
      ids.push((JSON.parse(show.stdout) as { id: number }).id);
    }
    for (const id of ids) assert.ok(await linkAlive(id));

    // dry run: the full list, nothing changed
    const snap = await snapshot();
    const dry = await uninstallJson('--dry-run');
    assert.equal(await snapshot(), snap, 'a dry run changes nothing');
    assert.ok(dry.dryRun && dry.failed === 0);
    assert.equal(dry.items.filter((i) => i.kind === 'link').length, pinnedLinks.length);
    assert.ok(dry.items.some((i) => i.kind === 'map' && i.name === 'weir_frontend4'));
    assert.deepEqual(
      dry.items
        .filter((i) => i.kind === 'nft')
        .map((i) => i.name)
        .sort(),
      [`ip ${KEEPER}`, `ip6 ${KEEPER}`],
    );
    assert.equal(dry.items.filter((i) => i.kind === 'sysctl').length, 3);

    // a wrong --bpf-root (not a bpffs) finds no pins: refused before anything is touched
    const wrongRoot = await node.ns.exec(binWeir, ['uninstall', '--bpf-root', lab.dir, '--instance', weir.instance], { check: false });
    assert.equal(wrongRoot.code, 1);
    assert.match(wrongRoot.stderr, /^weir: --bpf-root .* is not a bpffs mount/);
    assert.equal(await snapshot(), snap, 'a refused run changes nothing (the nft table stays)');

    // the uninstall itself; its table output, one line per item
    const out = await uninstallCmd();
    assert.equal(out.code, 0, out.stderr);
    const lines = out.stdout.trim().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('detached ')).length, pinnedLinks.length, out.stdout);
    assert.ok(
      lines.some((l) => /^restored +sysctl net\/ipv4\/conf\/.+\/accept_local = 2 \(weir set 1/.test(l)),
      out.stdout,
    );
    assert.ok(
      lines.some((l) => /^deleted +nft table ip weir-conntrack-keeper/.test(l)),
      out.stdout,
    );
    console.log(`${out.stdout}weir uninstall: ${lines.length} items in ${out.ms} ms (dry run ${dry.items.length} items)`);

    // no pin: the instance directory and <root>/weir are gone
    assert.equal(existsSync(weir.pinDir), false);
    assert.equal(existsSync(join(lab.bpffs, 'weir')), false);
    // no link: none of weir's programs on the node's interfaces or the lab cgroup, and none
    // of the links the pins held is alive
    assert.deepEqual(
      (await netPrograms()).filter((n) => n.startsWith('weir_')),
      [],
    );
    assert.deepEqual(
      (await cgroupPrograms()).filter((n) => n.startsWith('weir_')),
      [],
    );
    const alive = [];
    for (const id of ids) if (await linkAlive(id)) alive.push(id);
    assert.deepEqual(alive, [], 'no link the pins held survives');
    // no nft table
    assert.deepEqual(
      (await nftTables()).filter((t) => t.includes(KEEPER)),
      [],
    );
    // sysctls as they were before weir
    for (const [ifname, v] of before0) assert.equal(await acceptLocal(ifname), v, `${ifname} accept_local restored`);

    // traffic is no longer translated: the ClusterIP leads nowhere, the NodePort finds no
    // listener on the node; the backends themselves still answer
    const viaCluster = await client.ns.curl(`http://${CLUSTER_IP}:80/`, { check: false, timeoutMs: 1500 });
    assert.notEqual(viaCluster.exitCode, 0, 'ClusterIP not translated');
    const viaNodePort = await outside.ns.curl(`http://${node.address}:${NODE_PORT}/`, { check: false, timeoutMs: 1500 });
    assert.equal(viaNodePort.exitCode, 7, 'NodePort refused by the node itself: nothing translates it');
    const direct = await client.ns.echo(backends[1]!.ip, 8080, { proto: 'tcp' });
    assert.equal(direct.reply.server, backends[1]!.name);

    // idempotent: a second run has nothing to remove
    const again = await uninstallCmd();
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^nothing to remove for instance node1 /);
    assert.deepEqual((await uninstallJson()).items, []);
  });
});
