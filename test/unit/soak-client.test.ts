// The soak's traffic client (bench/soak-client.ts) against a local echo server: it counts answered
// connections and stream replies while the server is up, and failed connections and broken
// streams once it is gone, so the soak's "0 failed" means the client would have seen one.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import type { SoakTraffic } from '../../bench/soak-client.js';
import { repoRoot } from '../lib/paths.js';

const CLIENT_JS = join(repoRoot, 'dist', 'bench', 'soak-client.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('answered, failed and broken are counted as they happen', async () => {
  // a line echo server: one reply line per request line
  const accepted = new Set<Socket>();
  const server = createServer((sock) => {
    accepted.add(sock);
    sock.on('close', () => accepted.delete(sock));
    sock.on('error', () => {});
    sock.on('data', (d) => sock.write(d.toString('utf8').replace(/[^\n]+/g, '{"server":"t"}')));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const args = [CLIENT_JS, '--host', '127.0.0.1', '--port', String(port), '--rate', '50', '--streams', '2', '--interval', '20', '--report', '0.3'];
  const client = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  client.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const last = () => JSON.parse(out.trim().split('\n').at(-1)!) as SoakTraffic;
  try {
    await sleep(1000);
    const up = last();
    assert.ok(up.connections.ok >= 20, `answered connections while the server is up: ${JSON.stringify(up.connections)}`);
    assert.equal(up.connections.failed, 0);
    assert.equal(up.streams.open, 2);
    assert.ok(up.streams.received >= 10 && up.streams.broken === 0, JSON.stringify(up.streams));

    // the server goes: its open streams are cut, new connections are refused
    server.close();
    for (const s of accepted) s.destroy();
    await sleep(900);
    const down = last();
    assert.ok(down.connections.failed >= 10, `refused connections counted: ${JSON.stringify(down.connections)}`);
    assert.ok((down.connections.errors.ECONNREFUSED ?? 0) > 0, JSON.stringify(down.connections.errors));
    assert.ok(down.streams.broken >= 2, `broken streams counted: ${JSON.stringify(down.streams)}`);
  } finally {
    client.kill();
    server.close();
  }
});
