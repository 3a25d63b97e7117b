// Real tools driven from inside a lab namespace, with their output parsed: ping, curl,
// iperf3, and the echo backend/client (../echo-server.ts) that reports the peer it sees.

import { fileURLToPath } from 'node:url';
import type { EchoAnswer } from '../echo-server.js';
import { RunError, sleep, type ManagedProcess, type RunResult } from '../proc.js';
import type { Cgroup } from './cgroup.js';
import type { Netns } from './netns.js';

export type { EchoAnswer, EchoReply } from '../echo-server.js';

/** compiled next to this file's parent: dist/test/lib/echo-server.js */
export const ECHO_SERVER_JS = fileURLToPath(new URL('../echo-server.js', import.meta.url));

export async function waitForListen(ns: Netns, port: number, opts: { proto?: 'tcp' | 'udp'; timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  const flag = opts.proto === 'udp' ? '-Hlun' : '-Hltn';
  for (;;) {
    const r = await ns.exec('ss', [flag, `sport = :${port}`]);
    if (r.stdout.trim()) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${opts.proto ?? 'tcp'} port ${port} in ${ns.name}`);
    await sleep(30);
  }
}

export interface PingOptions {
  count?: number;
  /** seconds between packets; default 0.05 */
  interval?: number;
  /** seconds to wait for the last reply; default 1 */
  wait?: number;
  /** source address or interface (-I) */
  from?: string;
}

export interface PingResult {
  transmitted: number;
  received: number;
  lossPercent: number;
  /** average round trip, when anything came back */
  avgMs?: number;
  output: string;
}

/** Never throws for lost packets: assert on `received`. */
export async function ping(ns: Netns, dst: string, opts: PingOptions = {}): Promise<PingResult> {
  const count = opts.count ?? 3;
  const interval = opts.interval ?? 0.05;
  const wait = opts.wait ?? 1;
  const args = ['-n', '-q', '-c', String(count), '-i', String(interval), '-W', String(wait)];
  if (opts.from) args.push('-I', opts.from);
  const r = await ns.exec('ping', [...args, dst], { check: false, timeoutMs: (count * interval + wait + 5) * 1000 });
  const m = r.stdout.match(/(\d+) packets transmitted, (\d+) (?:packets )?received/);
  if (!m) throw new RunError(`ping ${args.join(' ')} ${dst} [${ns.short}]`, r);
  const rtt = r.stdout.match(/= [\d.]+\/([\d.]+)\//);
  const transmitted = Number(m[1]);
  const received = Number(m[2]);
  return {
    transmitted,
    received,
    lossPercent: transmitted ? (100 * (transmitted - received)) / transmitted : 100,
    ...(rtt ? { avgMs: Number(rtt[1]) } : {}),
    output: r.stdout,
  };
}

export interface CurlOptions {
  /** whole transfer; default 3000 */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  /** extra curl arguments (e.g. ['--interface', 'eth0'], ['-H', 'Host: x']) */
  args?: string[];
  /** throw on a curl error (not on an HTTP status); default true */
  check?: boolean;
  cgroup?: Cgroup;
}

export interface CurlResult {
  /** curl's exit code: 0 ok, 7 refused, 28 timeout, ... */
  exitCode: number;
  /** HTTP status, 0 when there was no response */
  status: number;
  body: string;
  connectMs: number;
  totalMs: number;
  remoteIp: string;
  remotePort: number;
  localIp: string;
  localPort: number;
  stderr: string;
}

const CURL_MARK = '\n@@weir-curl@@ ';

export async function curl(ns: Netns, url: string, opts: CurlOptions = {}): Promise<CurlResult> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const args = ['-sS', '--max-time', String(timeoutMs / 1000), '-o', '-'];
  if (opts.connectTimeoutMs) args.push('--connect-timeout', String(opts.connectTimeoutMs / 1000));
  args.push('-w', `${CURL_MARK}%{http_code} %{time_connect} %{time_total} %{remote_ip} %{remote_port} %{local_ip} %{local_port}`);
  args.push(...(opts.args ?? []), url);
  const r: RunResult = await ns.exec('curl', args, { check: false, timeoutMs: timeoutMs + 5000, ...(opts.cgroup ? { cgroup: opts.cgroup } : {}) });
  const at = r.stdout.lastIndexOf(CURL_MARK);
  const [status, connect, total, remoteIp, remotePort, localIp, localPort] = (at >= 0 ? r.stdout.slice(at + CURL_MARK.length) : '').trim().split(' ');
  const result: CurlResult = {
    exitCode: r.code ?? -1,
    status: Number(status ?? 0),
    body: at >= 0 ? r.stdout.slice(0, at) : r.stdout,
    connectMs: Number(connect ?? 0) * 1000,
    totalMs: Number(total ?? 0) * 1000,
    remoteIp: remoteIp ?? '',
    remotePort: Number(remotePort ?? 0),
    localIp: localIp ?? '',
    localPort: Number(localPort ?? 0),
    stderr: r.stderr,
  };
  if ((opts.check ?? true) && result.exitCode !== 0) throw new RunError(`curl ${url} [${ns.short}]`, r);
  return result;
}

export interface IperfServerOptions {
  port?: number;
  bind?: string;
  cgroup?: Cgroup;
  /** iperf3 -A: pin it to this CPU (the benches' CPU split) */
  cpu?: number;
}

/** `iperf3 -s` in the namespace, returned once it listens; stop it or let cleanup do it. */
export async function iperfServer(ns: Netns, opts: IperfServerOptions = {}): Promise<ManagedProcess> {
  const port = opts.port ?? 5201;
  const args = ['-s', '-p', String(port), ...(opts.bind ? ['-B', opts.bind] : []), ...(opts.cpu !== undefined ? ['-A', String(opts.cpu)] : [])];
  const proc = ns.spawn('iperf3', args, opts.cgroup ? { cgroup: opts.cgroup } : {});
  await Promise.race([waitForListen(ns, port), proc.exited.then(() => Promise.reject(proc.failure('exited before listening')))]);
  return proc;
}

export interface IperfClientOptions {
  port?: number;
  seconds?: number;
  udp?: boolean;
  /** e.g. '100M' (UDP defaults to 1M in iperf3) */
  bitrate?: string;
  reverse?: boolean;
  parallel?: number;
  bind?: string;
  cgroup?: Cgroup;
  /** iperf3 -A: pin the client to this CPU */
  cpu?: number;
}

export interface IperfResult {
  sentBitsPerSecond: number;
  receivedBitsPerSecond: number;
  /** TCP only */
  retransmits?: number;
  /** UDP only */
  lostPercent?: number;
  jitterMs?: number;
  /** iperf3's whole JSON report */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- iperf3's JSON report, read field by field
  raw: Record<string, any>;
}

export async function iperfClient(ns: Netns, host: string, opts: IperfClientOptions = {}): Promise<IperfResult> {
  const seconds = opts.seconds ?? 1;
  const args = ['-c', host, '-p', String(opts.port ?? 5201), '-t', String(seconds), '-J'];
  if (opts.udp) args.push('-u');
  if (opts.bitrate) args.push('-b', opts.bitrate);
  if (opts.reverse) args.push('-R');
  if (opts.parallel) args.push('-P', String(opts.parallel));
  if (opts.bind) args.push('-B', opts.bind);
  if (opts.cpu !== undefined) args.push('-A', String(opts.cpu));
  const r = await ns.exec('iperf3', args, { check: false, timeoutMs: (seconds + 10) * 1000, ...(opts.cgroup ? { cgroup: opts.cgroup } : {}) });
  /* eslint-disable-next-line @typescript-eslint/no-explicit-any -- as above */
  let raw: Record<string, any>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    raw = JSON.parse(r.stdout) as Record<string, any>;
  } catch {
    throw new RunError(`iperf3 ${args.join(' ')} [${ns.short}]`, r);
  }
  if (raw.error || r.code !== 0) throw new RunError(`iperf3 ${args.join(' ')} [${ns.short}]`, { ...r, stderr: String(raw.error ?? r.stderr) });
  const end = raw.end ?? {};
  if (opts.udp) {
    const sum = end.sum ?? {};
    return {
      sentBitsPerSecond: Number(end.sum_sent?.bits_per_second ?? sum.bits_per_second ?? 0),
      receivedBitsPerSecond: Number(end.sum_received?.bits_per_second ?? sum.bits_per_second ?? 0),
      lostPercent: Number(end.sum_received?.lost_percent ?? sum.lost_percent ?? 0),
      jitterMs: Number(end.sum_received?.jitter_ms ?? sum.jitter_ms ?? 0),
      raw,
    };
  }
  return {
    sentBitsPerSecond: Number(end.sum_sent?.bits_per_second ?? 0),
    receivedBitsPerSecond: Number(end.sum_received?.bits_per_second ?? 0),
    retransmits: Number(end.sum_sent?.retransmits ?? 0),
    raw,
  };
}

export interface EchoServerOptions {
  /** the identity it reports */
  name: string;
  port?: number;
  /** default '::' (dual stack) */
  bind?: string;
  tcp?: boolean;
  udp?: boolean;
  cgroup?: Cgroup;
}

/**
 * The echo backend, TCP and UDP on the same port by default. Replies name the server and
 * the peer address it sees. Note: bound to a wildcard, UDP replies take the routing
 * table's source address; bind to the service's backend address when that matters.
 */
export async function echoServer(ns: Netns, opts: EchoServerOptions): Promise<ManagedProcess> {
  const port = opts.port ?? 7000;
  const both = !opts.tcp && !opts.udp;
  const args = [ECHO_SERVER_JS, 'serve', '--name', opts.name, '--port', String(port)];
  if (opts.bind) args.push('--bind', opts.bind);
  if (both || opts.tcp) args.push('--tcp');
  if (both || opts.udp) args.push('--udp');
  const proc = ns.spawn(process.execPath, args, { label: `echo-server ${opts.name}:${port} [${ns.short}]`, ...(opts.cgroup ? { cgroup: opts.cgroup } : {}) });
  if (both || opts.tcp) await proc.waitForOutput(/listening tcp/);
  if (both || opts.udp) await proc.waitForOutput(/listening udp/);
  return proc;
}

export interface EchoOptions {
  proto?: 'tcp' | 'udp';
  timeoutMs?: number;
  /** local address to bind */
  bind?: string;
  message?: string;
  cgroup?: Cgroup;
}

/** Ask an echo server; throws (RunError, exit 2 for a timeout) when nothing answers. */
export async function echo(ns: Netns, host: string, port: number, opts: EchoOptions = {}): Promise<EchoAnswer> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const args = [ECHO_SERVER_JS, 'ask', '--proto', opts.proto ?? 'tcp', '--host', host, '--port', String(port), '--timeout', String(timeoutMs)];
  if (opts.bind) args.push('--bind', opts.bind);
  if (opts.message) args.push('--message', opts.message);
  const r = await ns.exec(process.execPath, args, { timeoutMs: timeoutMs + 5000, ...(opts.cgroup ? { cgroup: opts.cgroup } : {}) });
  return JSON.parse(r.stdout) as EchoAnswer;
}
