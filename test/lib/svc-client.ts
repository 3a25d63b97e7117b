// A service test client for the echo backend (echo-server.ts), run with plain `node` inside a
// lab namespace: many new connections in one process (spread tests), or one long-lived flow
// (restart and removal tests). Prints one JSON object (a SpreadResult or FlowResult).
//
//   node svc-client.js spread --proto tcp|udp --host H --port P --count N [--concurrency C]
//   node svc-client.js flow --proto tcp|udp --host H --port P --seconds S [--interval MS]
//   (flow: the backend of every reply, in order, and the longest gap between replies)
//   --seconds 0: run until SIGUSR2, printing `reply <n> <backend>` per reply as it comes, so
//   a test can stop the flow only after it has seen replies that followed its event (and
//   `error <message>` when the socket fails)

import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface SpreadResult {
  /** replies per backend name */
  servers: Record<string, number>;
  /** the client address each backend saw, per backend name */
  peers: Record<string, string[]>;
  /** TCP: getpeername() of the client socket; UDP: the reply's source */
  remotes: Record<string, number>;
  failures: number;
  errors: string[];
  ms: number;
}

export interface FlowResult {
  sent: number;
  received: number;
  /** backend name of each reply, in order (run-length encoded: [name, count][]) */
  servers: [string, number][];
  /** the longest time without a reply while sending, ms */
  maxGapMs: number;
  error?: string;
  remote: string;
}

interface Reply {
  server: string;
  peer: string;
}

function tcpOnce(host: string, port: number, timeoutMs: number): Promise<{ reply: Reply; remote: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    let buf = '';
    let connected = false;
    const timer = setTimeout(() => {
      // say how far it got, so a failure names the flow to look for in conntrack
      const where = connected ? `connected, no reply, from :${sock.localPort}` : `connecting${sock.localPort ? ` from :${sock.localPort}` : ''}`;
      sock.destroy();
      reject(new Error(`timeout (${where})`));
    }, timeoutMs);
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('connect', () => {
      connected = true;
      sock.write('hi\n');
    });
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      const remote = `${sock.remoteAddress}:${sock.remotePort}`;
      sock.destroy();
      try {
        resolve({ reply: JSON.parse(buf.slice(0, nl)) as Reply, remote });
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

function udpOnce(host: string, port: number, timeoutMs: number): Promise<{ reply: Reply; remote: string }> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4'); // udp6: dual-stack, so ::ffff:a.b.c.d works too
    const done = (f: () => void) => {
      clearTimeout(timer);
      clearInterval(again);
      sock.close();
      f();
    };
    const timer = setTimeout(() => done(() => reject(new Error('timeout'))), timeoutMs);
    sock.on('error', (e) => done(() => reject(e)));
    sock.on('message', (d, rinfo) => {
      done(() => {
        try {
          resolve({ reply: JSON.parse(d.toString('utf8').split('\n')[0]!) as Reply, remote: `${rinfo.address}:${rinfo.port}` });
        } catch (e) {
          reject(e as Error);
        }
      });
    });
    const send = () => sock.send('hi\n', port, host);
    const again = setInterval(send, 300);
    sock.bind(0, send);
  });
}

async function spread(proto: string, host: string, port: number, count: number, concurrency: number, timeoutMs: number): Promise<SpreadResult> {
  const t0 = Date.now();
  const r: SpreadResult = { servers: {}, peers: {}, remotes: {}, failures: 0, errors: [], ms: 0 };
  let next = 0;
  const one = proto === 'udp' ? udpOnce : tcpOnce;
  const worker = async () => {
    while (next < count) {
      next++;
      try {
        const { reply, remote } = await one(host, port, timeoutMs);
        r.servers[reply.server] = (r.servers[reply.server] ?? 0) + 1;
        const peers = (r.peers[reply.server] ??= []);
        if (!peers.includes(reply.peer)) peers.push(reply.peer);
        r.remotes[remote] = (r.remotes[remote] ?? 0) + 1;
      } catch (e) {
        r.failures++;
        if (r.errors.length < 5) r.errors.push((e as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  r.ms = Date.now() - t0;
  return r;
}

/** One flow for `seconds`: a request every `interval` ms over one TCP connection or one
 *  connected UDP socket. */
function flow(proto: string, host: string, port: number, seconds: number, interval: number): Promise<FlowResult> {
  return new Promise((resolve) => {
    const r: FlowResult = { sent: 0, received: 0, servers: [], maxGapMs: 0, remote: '' };
    let last = Date.now();
    let got = (line: string) => {
      let name = '?';
      // the echo server answers each read: lines the kernel coalesced into one segment (Nagle,
      // after a retransmission) come back as one reply echoing all of them, each one answered
      let lines = 1;
      try {
        const reply = JSON.parse(line) as Reply & { echo?: string };
        name = reply.server;
        if (typeof reply.echo === 'string') lines = Math.max(1, reply.echo.split('\n').length);
      } catch {
        /* partial */
      }
      r.received += lines;
      const now = Date.now();
      r.maxGapMs = Math.max(r.maxGapMs, now - last);
      last = now;
      const tail = r.servers.at(-1);
      if (tail && tail[0] === name) tail[1]++;
      else r.servers.push([name, 1]);
    };
    let send: () => void;
    let close: () => void;
    let sockRef: { on(ev: 'error', f: (e: Error) => void): unknown };
    if (proto === 'tcp') {
      const sock = connect({ host, port });
      sockRef = sock;
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('utf8');
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          got(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
      sock.on('error', (e) => (r.error ??= e.message));
      sock.on('connect', () => (r.remote = `${sock.remoteAddress}:${sock.remotePort}`));
      send = () => {
        if (!sock.destroyed) sock.write(`${r.sent}\n`);
      };
      close = () => sock.destroy();
    } else {
      const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      sockRef = sock;
      sock.on('message', (d) => got(d.toString('utf8').split('\n')[0]!));
      sock.on('error', (e) => (r.error ??= e.message));
      let connected = false;
      sock.connect(port, host, () => {
        connected = true;
        const a = sock.remoteAddress();
        r.remote = `${a.address}:${a.port}`;
      });
      send = () => {
        if (connected) sock.send(`${r.sent}\n`, (e) => e && (r.error ??= e.message));
      };
      close = () => sock.close();
    }
    const timer = setInterval(() => {
      r.sent++;
      send();
    }, interval);
    // stop sending, then wait for the replies still on their way: up to 2 s for UDP (a lost
    // datagram never answers), 10 s for TCP, which loses nothing while the connection lives: a
    // segment the kernel retransmits after a backed-off RTO on a loaded machine can take more
    // than 2 s, and counting it lost made a late reply look like a dropped one
    const stop = () => {
      clearInterval(timer);
      const deadline = Date.now() + (proto === 'tcp' ? 10_000 : 2000);
      const drain = setInterval(() => {
        if (r.received < r.sent && !r.error && Date.now() < deadline) return;
        clearInterval(drain);
        close();
        resolve(r);
      }, 20);
    };
    if (seconds > 0) setTimeout(stop, seconds * 1000);
    else {
      const progress = got;
      got = (line: string) => {
        progress(line);
        process.stdout.write(`reply ${r.received} ${r.servers.at(-1)![0]}\n`);
      };
      sockRef.on('error', (e: Error) => process.stdout.write(`error ${e.message}\n`));
      process.once('SIGUSR2', stop);
    }
  });
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      proto: { type: 'string', default: 'tcp' },
      host: { type: 'string' },
      port: { type: 'string' },
      count: { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '16' },
      timeout: { type: 'string', default: '4000' },
      seconds: { type: 'string', default: '3' },
      interval: { type: 'string', default: '50' },
    },
  });
  const host = values.host!;
  const port = Number(values.port);
  let out: unknown;
  if (positionals[0] === 'spread') out = await spread(values.proto!, host, port, Number(values.count), Number(values.concurrency), Number(values.timeout));
  else if (positionals[0] === 'flow') out = await flow(values.proto!, host, port, Number(values.seconds), Number(values.interval));
  else {
    console.error('usage: svc-client.js spread|flow [options]');
    process.exit(64);
  }
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
