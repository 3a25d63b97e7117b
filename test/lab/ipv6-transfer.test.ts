// Issue 14, must-show 6, with `weir daemon` in a dual-stack lab node: 100 MB through an IPv6
// ClusterIP on the TC path arrive whole (sha256 of the payload) with every checksum right
// after NAT (checksum offload off at both pods, so the sender computes full checksums, weir
// updates them, the receiver verifies them in software: a wrong one is a drop the kernel
// counts in Tcp6 InCsumErrors / Udp6 InCsumErrors); and a Packet Too Big from a router with a
// smaller MTU between the node and a backend reaches the client translated to the tuple it
// dialled: its TCP lowers the MSS and the upload completes (untranslated, no socket matches
// the backend's tuple and the connection stalls in a black hole).
//
//   client pod --(node1: weir, DNAT)--> eth0 --> node2 (a plain router, no weir)
//       --(host veth MTU 1280: the small hop)--> backend pod (its own MTU 1500)
// node2 answers the 1500-byte packets with ICMPv6 Packet Too Big (MTU 1280) to the client;
// the error enters node1 on eth0 (weir's from_host) and must be rewritten to name the ClusterIP.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bulkGet, bulkPut, bulkServer } from '../lib/bulk.js';
import { runCleanups } from '../lib/cleanup.js';
import { dualStackNode, Lab, type LabNode, type Netns, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode, type PortSpec } from '../lib/weir-node.js';

const VIP6 = '2001:2:ff::60';
const FAR_VIP6 = '2001:2:ff::61';
const PORTS: PortSpec[] = [{ name: 'bulk', port: 80, targetPort: 9000, protocol: 'TCP' }];
const MB = 1024 * 1024;
const SMALL_MTU = 1280;

/** A file of `bytes` random bytes; returns its sha256. */
function randomFile(path: string, bytes: number): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'w');
  try {
    for (let left = bytes; left > 0; left -= MB) {
      const chunk = randomBytes(Math.min(MB, left));
      h.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The kernel's checksum error counters of a namespace (nstat, absolute values). */
async function csumErrors(ns: Netns): Promise<Record<string, number>> {
  const out = (await ns.exec('nstat', ['-az', 'Tcp6InCsumErrors', 'TcpInCsumErrors', 'Udp6InCsumErrors', 'UdpInCsumErrors'])).stdout;
  const r: Record<string, number> = {};
  for (const m of out.matchAll(/^(\w+)\s+(\d+)/gm)) r[m[1]!] = Number(m[2]);
  return r;
}

describe('IPv6 bulk transfer and Packet Too Big through weir', () => {
  let lab: Lab;
  let node1: LabNode;
  let node2: LabNode;
  let client: Pod;
  let backend: Pod;
  let far: Pod;
  let weir: WeirNode;
  let payload: string;
  let payloadSha: string;

  before(async () => {
    lab = await Lab.create({ name: 'ipv6-transfer' });
    node1 = await lab.node('node1', dualStackNode(1));
    node2 = await lab.node('node2', dualStackNode(2));
    await lab.routePodSubnets();
    client = await lab.pod(node1, 'client');
    backend = await lab.pod(node1, 'be-local');
    far = await lab.pod(node2, 'be-far');
    // the small hop: node2's side of the backend's veth only, so that the backend still
    // announces MSS 1440 and the client sends full-size segments until it learns the path MTU
    await node2.ns.ip('link', 'set', 'dev', far.hostIfname, 'mtu', String(SMALL_MTU));
    payload = join(lab.dir, 'payload-100m');
    payloadSha = randomFile(payload, 100 * MB);
    await bulkServer(backend.ns, 9000, payload);
    await bulkServer(far.ns, 9000, payload);
    weir = await WeirNode.create(lab, node1, { connectTimeLb: 'off' });
    weir.writeManifest('bulk.yaml', [
      service({ name: 'bulk', clusterIP: VIP6, ports: PORTS }),
      endpointSlice({ name: 'bulk-1', service: 'bulk', ports: PORTS, endpoints: [{ ip: backend.ip6!, node: node1.name }] }),
      service({ name: 'far', clusterIP: FAR_VIP6, ports: PORTS }),
      endpointSlice({ name: 'far-1', service: 'far', ports: PORTS, endpoints: [{ ip: far.ip6!, node: node2.name }] }),
    ]);
    await weir.start();
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('MS6: 100 MB through an IPv6 ClusterIP on the TC path: every byte (sha256), no checksum error at either end', async () => {
    // software checksums: the sender fills in the full checksum, weir's NAT must keep it right
    for (const p of [client, backend]) {
      await p.ns.exec('ethtool', ['-K', 'eth0', 'tx', 'off']);
      assert.match((await p.ns.exec('ethtool', ['-k', 'eth0'])).stdout, /^tx-checksumming: off/m, `${p.name}: checksums computed in software`);
    }
    const before = await Promise.all([client, backend].map((p) => csumErrors(p.ns)));
    const nat0 = weir.reasonTotal('service_nat');
    const r = await bulkGet(client.ns, VIP6, 80, { timeoutS: 120 });
    assert.equal(r.error, undefined, r.error);
    console.log(`# 100 MB through [${VIP6}]:80 in ${r.seconds!.toFixed(2)} s (${((r.bytes! * 8) / r.seconds! / 1e9).toFixed(2)} Gbit/s), mss ${r.mss}`);
    assert.equal(r.bytes, 100 * MB);
    assert.equal(r.sha256, payloadSha, 'the payload arrived unchanged');
    assert.equal(r.peer, `${VIP6}:80`, 'the client talked to the ClusterIP throughout');
    assert.equal(weir.reasonTotal('service_nat') - nat0, 1, 'weir NATed the one connection');
    const afterErrs = await Promise.all([client, backend].map((p) => csumErrors(p.ns)));
    assert.deepEqual(afterErrs, before, 'no checksum error counted at the client or the backend');
  });

  test('the small hop works without weir: a pod uploading to the far backend directly gets the Packet Too Big and completes', async () => {
    const direct = await lab.pod(node1, 'direct');
    const r = await bulkPut(direct.ns, far.ip6!, 9000, payload, { timeoutS: 60 });
    const route = (await direct.ns.exec('ip', ['-6', 'route', 'get', far.ip6!])).stdout.trim();
    console.log(`# direct upload: ${JSON.stringify(r)}\n# its route: ${route}`);
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.reply?.sha256, payloadSha);
    assert.match(route, new RegExp(`mtu ${SMALL_MTU}`), 'node2 sent Packet Too Big');
  });

  test('MS6: Packet Too Big from a smaller-MTU router hop reaches the client translated; the upload goes on with a smaller MSS', async () => {
    const r = await bulkPut(client.ns, FAR_VIP6, 80, payload, { timeoutS: 60 });
    const route = (await client.ns.exec('ip', ['-6', 'route', 'get', FAR_VIP6])).stdout.trim();
    const routeFar = (await client.ns.exec('ip', ['-6', 'route', 'get', far.ip6!])).stdout.trim();
    console.log(`# upload: ${JSON.stringify(r)}\n# client's route to the ClusterIP: ${route}\n# and to the backend: ${routeFar}`);
    assert.equal(r.error, undefined, `the upload completed: ${r.error}`);
    assert.equal(r.reply?.bytes, 100 * MB, 'the backend received every byte');
    assert.equal(r.reply?.sha256, payloadSha, 'and the right ones');
    assert.equal(r.reply?.peer, client.ip6, 'the backend saw the client');
    assert.match(route, new RegExp(`mtu ${SMALL_MTU}`), 'the client learned the path MTU for the ClusterIP it dialled');
    assert.ok(r.mss! <= SMALL_MTU - 60, `TCP lowered its MSS: ${r.mss}`);
  });
});
