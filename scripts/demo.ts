// The demo lab (`make demo`): a node namespace with pods made by the real CNI ptp plugin,
// weir's counting probe attached at TC ingress of a pod's veth, real traffic (ping, curl,
// iperf3), and the counters read back through `weir counters`, exactly as an operator
// would on a node. Everything is torn down at the end, also on failure or Ctrl-C.

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject } from '../src/bpf/index.js';
import { Lab } from '../test/lib/lab.js';
import { runCleanups } from '../test/lib/cleanup.js';
import { binWeir, bpfObject } from '../test/lib/paths.js';

const say = (s: string) => process.stdout.write(`\n== ${s}\n`);

async function main(): Promise<void> {
  const lab = await Lab.create({ name: 'demo' });
  try {
    say('lab: node1 (198.18.0.1) with pods made by the CNI ptp plugin');
    const node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    const client = await lab.pod(node, 'client');
    const server = await lab.pod(node, 'server');
    console.log(`  client ${client.ip} (host veth ${client.hostIfname}), server ${server.ip}`);

    say(`weir's probe at TC ingress of ${client.hostIfname} (pins in ${lab.bpffs}/weir/demo)`);
    const pinDir = join(lab.bpffs, 'weir', 'demo');
    mkdirSync(pinDir, { recursive: true });
    const probe = BpfObject.load(bpfObject('probe'), { pinDir });
    const att = probe.program('weir_probe').attachTc(client.hostIfname, 'ingress', { netns: node.ns.path });
    console.log(`  attached through ${att.mode}, program id ${att.progId()}`);

    say('traffic: 10 pings, an HTTP request, 1 s of iperf3');
    const ping = await client.ns.ping(server.ip, { count: 10, interval: 0.02 });
    console.log(`  ping: ${ping.transmitted} sent, ${ping.received} received`);
    const echo = await server.ns.echoServer({ name: 'server', port: 8080 });
    await client.ns.waitForPort(8080, { host: server.ip });
    const curl = await client.ns.curl(`http://${server.ip}:8080/`);
    console.log(`  curl: HTTP ${curl.status}, the server saw the client as ${(JSON.parse(curl.body) as { peer: string }).peer}`);
    await echo.stop();
    const iperfd = await server.ns.iperfServer();
    const iperf = await client.ns.iperfClient(server.ip, { seconds: 1 });
    console.log(`  iperf3: ${(iperf.sentBitsPerSecond / 1e9).toFixed(2)} Gbit/s`);
    await iperfd.stop();

    say('weir counters (what the probe saw, by reason)');
    process.stdout.write(execFileSync(binWeir, ['counters', '--bpf-root', lab.bpffs, '--instance', 'demo'], { encoding: 'utf8' }));
    att.detach();
    probe.close();
  } finally {
    say('teardown');
    await lab.destroy();
    await runCleanups();
    console.log('  namespaces, cgroups and bpffs removed');
  }
}

main().catch((e) => {
  console.error(`demo failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
