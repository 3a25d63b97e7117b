// The netpol lab's pod process (as upstream's agnhost is for test/e2e/network/netpol): one per
// pod, run inside the pod's network namespace. It serves TCP and UDP on the given ports (each
// reply is the pod's name) and probes other pods on request: the test sends a probe list over
// a Unix socket (a filesystem path, so reachable from the test's own namespace) and gets one
// verdict per target. SCTP (serving and probing) goes through netpol-sctp.py, raw sockets in
// Python, for kernels without SCTP. Plain `node`, no imports beyond node:.
//
//   node netpol-agent.js serve --name x/a --ports 80,81 --control /run/weir-lab/<id>/x-a.sock [--sctp netpol-sctp.py]
//
// Control protocol: one JSON ProbeRequest per line in, one JSON ProbeResponse per line out.

import { execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface ProbeTarget {
  /** the caller's name for the cell */
  key: string;
  host: string;
  proto: 'TCP' | 'UDP' | 'SCTP';
  port: number;
  /** the name the server must answer with */
  expect: string;
}

export interface ProbeRequest {
  targets: ProbeTarget[];
  timeoutMs: number;
}

/** 'ok': the expected server answered; 'timeout': nothing came back in time (a policy drop);
 *  anything else ('refused', 'wrong x/b', 'error ...') is a fault of the lab, never a verdict */
export type ProbeOutcome = string;

export interface ProbeResponse {
  results: Record<string, ProbeOutcome>;
}

function serve(name: string, ports: number[]): void {
  for (const port of ports) {
    const tcp = createServer((sock) => {
      sock.on('error', () => {});
      sock.end(`${name}\n`);
    });
    tcp.listen({ port, host: '0.0.0.0' }, () => console.log(`listening tcp ${port}`));
    const udp = createSocket('udp4');
    udp.on('message', (_buf, rinfo) => udp.send(`${name}\n`, rinfo.port, rinfo.address));
    udp.bind(port, '0.0.0.0', () => console.log(`listening udp ${port}`));
  }
}

function probeTcp(t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const sock = connect({ host: t.host, port: t.port });
    let buf = '';
    const done = (o: ProbeOutcome) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    sock.on('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code ?? e.message}`));
    sock.on('data', (d) => (buf += d.toString('utf8')));
    sock.on('end', () => {
      const got = buf.trim();
      done(got === t.expect ? 'ok' : `wrong ${JSON.stringify(got)}`);
    });
  });
}

function probeUdp(t: ProbeTarget, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const done = (o: ProbeOutcome) => {
      clearTimeout(timer);
      clearInterval(again);
      sock.close();
      resolve(o);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    sock.on('error', (e: NodeJS.ErrnoException) => done(`error ${e.code ?? e.message}`));
    sock.on('message', (d) => {
      const got = d.toString('utf8').trim();
      done(got === t.expect ? 'ok' : `wrong ${JSON.stringify(got)}`);
    });
    // the same socket (one flow) resends: a first datagram may be lost while neighbours resolve
    const send = () => sock.send('probe\n', t.port, t.host, () => undefined);
    const again = setInterval(send, Math.max(100, Math.floor(timeoutMs / 4)));
    sock.bind(0, send);
  });
}

/** All SCTP targets at once, through one run of the Python prober. */
function probeSctp(helper: string | undefined, ts: ProbeTarget[], timeoutMs: number): Promise<Record<string, ProbeOutcome>> {
  if (ts.length === 0) return Promise.resolve({});
  if (!helper) return Promise.resolve(Object.fromEntries(ts.map((t) => [t.key, 'error no --sctp helper'])));
  const args = [helper, 'probe', '--timeout-ms', String(timeoutMs), ...ts.map((t) => `${t.key}=${t.host}:${t.port}`)];
  return new Promise((resolve) =>
    execFile('python3', args, { timeout: timeoutMs + 5000 }, (err, stdout, stderr) => {
      if (err) resolve(Object.fromEntries(ts.map((t) => [t.key, `error ${stderr.trim() || err.message}`])));
      else resolve(JSON.parse(stdout) as Record<string, ProbeOutcome>);
    }),
  );
}

async function probe(req: ProbeRequest, sctpHelper: string | undefined): Promise<ProbeResponse> {
  const inet = req.targets.filter((t) => t.proto !== 'SCTP');
  const [outcomes, sctp] = await Promise.all([
    Promise.all(inet.map((t) => (t.proto === 'TCP' ? probeTcp(t, req.timeoutMs) : probeUdp(t, req.timeoutMs)))),
    probeSctp(
      sctpHelper,
      req.targets.filter((t) => t.proto === 'SCTP'),
      req.timeoutMs,
    ),
  ]);
  return { results: { ...Object.fromEntries(inet.map((t, i) => [t.key, outcomes[i]!])), ...sctp } };
}

function control(path: string, sctpHelper: string | undefined): void {
  if (existsSync(path)) rmSync(path);
  const server = createServer((sock) => {
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void probe(JSON.parse(line) as ProbeRequest, sctpHelper).then((r) => sock.write(JSON.stringify(r) + '\n'));
      }
    });
  });
  server.listen(path, () => console.log(`control ${path}`));
}

function main(): void {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { name: { type: 'string' }, ports: { type: 'string', default: '80,81' }, control: { type: 'string' }, sctp: { type: 'string' } },
  });
  if (positionals[0] !== 'serve' || !values.name || !values.control) {
    console.error('usage: netpol-agent.js serve --name NS/POD --ports 80,81 --control SOCKET');
    process.exit(64);
  }
  serve(values.name, values.ports!.split(',').map(Number));
  if (values.sctp) {
    // the SCTP server lives as long as this agent (its process group is stopped with it)
    const py = spawn('python3', [values.sctp, 'serve', '--ports', values.ports!], { stdio: ['ignore', 'inherit', 'inherit'] });
    py.on('exit', (code) => {
      console.error(`netpol-sctp.py serve exited (${code})`);
      process.exit(1);
    });
  }
  control(values.control, values.sctp);
}

// run only as a script, so that the lab test can import the types
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
