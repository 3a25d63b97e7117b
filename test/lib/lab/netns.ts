// A lab network namespace: run commands in it (optionally inside a lab cgroup), configure it
// with iproute2, and drive real tools through it (tools.ts). Commands enter only the netns
// (nsenter --net), so the host's mounts (/sys/fs/cgroup, bpffs) stay visible to them.

import { run, spawnManaged, waitForPort, type ManagedProcess, type RunOptions, type RunResult, type SpawnOptions } from '../proc.js';
import { wrapCommand, type Cgroup } from './cgroup.js';
import * as tools from './tools.js';

export interface NsExecOptions extends RunOptions {
  /** also run inside this cgroup */
  cgroup?: Cgroup;
}
export interface NsSpawnOptions extends SpawnOptions {
  cgroup?: Cgroup;
}
export interface RouteOptions {
  via?: string;
  dev?: string;
  src?: string;
  /** e.g. ['onlink'] or ['mtu', '1400'] */
  extra?: string[];
}

export class Netns {
  constructor(
    /** full name: wl<id>-<short> */
    readonly name: string,
    /** the name given to lab.netns() */
    readonly short: string,
    /** told about every process spawned here, so that its lab stops it before teardown */
    private readonly track: (p: ManagedProcess) => void = () => {},
  ) {}

  /** the namespace file, for CNI_NETNS, nsenter, setns */
  get path(): string {
    return `/run/netns/${this.name}`;
  }

  /** argv that runs `cmd args` in this namespace (and cgroup) */
  command(cmd: string, args: readonly string[] = [], cgroup?: Cgroup): [string, string[]] {
    return wrapCommand(cmd, args, { netnsPath: this.path, ...(cgroup ? { cgroupPath: cgroup.path } : {}) });
  }

  exec(cmd: string, args: readonly string[] = [], opts: NsExecOptions = {}): Promise<RunResult> {
    const [c, a] = this.command(cmd, args, opts.cgroup);
    return run(c, a, opts);
  }

  spawn(cmd: string, args: readonly string[] = [], opts: NsSpawnOptions = {}): ManagedProcess {
    const [c, a] = this.command(cmd, args, opts.cgroup);
    const where = opts.cgroup ? `${this.short}, cgroup ${opts.cgroup.name}` : this.short;
    const proc = spawnManaged(c, a, { label: `${[cmd, ...args].join(' ')} [${where}]`, ...opts });
    this.track(proc);
    return proc;
  }

  /** `ip -n <ns> ...args`; returns stdout */
  async ip(...args: string[]): Promise<string> {
    return (await run('ip', ['-n', this.name, ...args])).stdout;
  }

  /** `ip -j -n <ns> ...args`, parsed */
  async ipJson<T = unknown>(...args: string[]): Promise<T> {
    const out = (await run('ip', ['-j', '-n', this.name, ...args])).stdout.trim();
    return (out ? JSON.parse(out) : []) as T;
  }

  /** Read (no value) or write a sysctl of this namespace, e.g. sysctl('net.ipv4.ip_forward', 1). */
  async sysctl(key: string, value?: string | number): Promise<string> {
    const args = value === undefined ? ['-n', key] : ['-qw', `${key}=${value}`];
    return (await this.exec('sysctl', args)).stdout.trim();
  }

  async linkUp(ifname: string): Promise<void> {
    await this.ip('link', 'set', 'dev', ifname, 'up');
  }

  /** Add an address; IPv6 addresses skip DAD so they are usable at once. */
  async addAddr(ifname: string, cidr: string): Promise<void> {
    await this.ip('addr', 'add', cidr, 'dev', ifname, ...(cidr.includes(':') ? ['nodad'] : []));
  }

  async addRoute(dst: string, opts: RouteOptions): Promise<void> {
    const args = ['route', 'replace', dst];
    if (opts.via) args.push('via', opts.via);
    if (opts.dev) args.push('dev', opts.dev);
    if (opts.src) args.push('src', opts.src);
    await this.ip(...(dst.includes(':') || opts.via?.includes(':') ? ['-6'] : []), ...args, ...(opts.extra ?? []));
  }

  /** Addresses (with prefix length) on an interface, or on all interfaces but lo. */
  async addresses(ifname?: string): Promise<string[]> {
    type Link = { ifname: string; addr_info: { local: string; prefixlen: number; scope: string }[] };
    const links = await this.ipJson<Link[]>('addr', 'show', ...(ifname ? ['dev', ifname] : []));
    return links
      .filter((l) => ifname || l.ifname !== 'lo')
      .flatMap((l) => l.addr_info.filter((a) => a.scope !== 'link' && a.scope !== 'host').map((a) => `${a.local}/${a.prefixlen}`));
  }

  async mac(ifname: string): Promise<string> {
    const [link] = await this.ipJson<{ address: string }[]>('link', 'show', 'dev', ifname);
    if (!link) throw new Error(`no interface ${ifname} in ${this.name}`);
    return link.address;
  }

  async ifindex(ifname: string): Promise<number> {
    const [link] = await this.ipJson<{ ifindex: number }[]>('link', 'show', 'dev', ifname);
    if (!link) throw new Error(`no interface ${ifname} in ${this.name}`);
    return link.ifindex;
  }

  /** Poll until a TCP connect from this namespace to host:port succeeds. */
  waitForPort(port: number, opts: { host?: string; timeoutMs?: number } = {}): Promise<void> {
    return waitForPort(port, { ...opts, netns: this.name });
  }

  /** Poll until something in this namespace listens on port (no connection is made). */
  waitForListen(port: number, opts: { proto?: 'tcp' | 'udp'; timeoutMs?: number } = {}): Promise<void> {
    return tools.waitForListen(this, port, opts);
  }

  ping(dst: string, opts?: tools.PingOptions): Promise<tools.PingResult> {
    return tools.ping(this, dst, opts);
  }

  curl(url: string, opts?: tools.CurlOptions): Promise<tools.CurlResult> {
    return tools.curl(this, url, opts);
  }

  iperfServer(opts?: tools.IperfServerOptions): Promise<ManagedProcess> {
    return tools.iperfServer(this, opts);
  }

  iperfClient(host: string, opts?: tools.IperfClientOptions): Promise<tools.IperfResult> {
    return tools.iperfClient(this, host, opts);
  }

  echoServer(opts: tools.EchoServerOptions): Promise<ManagedProcess> {
    return tools.echoServer(this, opts);
  }

  echo(host: string, port: number, opts?: tools.EchoOptions): Promise<tools.EchoAnswer> {
    return tools.echo(this, host, port, opts);
  }
}
