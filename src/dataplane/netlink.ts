// Reads the node's links, addresses and routes through iproute2's JSON output (`ip -j`),
// and follows changes with `ip monitor` (rtnetlink multicast groups). iproute2 is the
// netlink client here: every dump is a fresh, complete answer, so a change notification
// only needs to trigger a re-dump, never to be parsed itself.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Link {
  ifindex: number;
  ifname: string;
  up: boolean;
  mac: string;
  mtu: number;
  /** 'veth', 'vxlan', 'bridge', 'dummy', ... from `ip -d`; '' for plain devices */
  kind: string;
  loopback: boolean;
  /** the XDP program's mode when one is attached (`ip -d`: xdp.mode 1 driver, 2 skb) */
  xdp?: 'native' | 'generic';
}

export interface Address {
  ifindex: number;
  ifname: string;
  family: 4 | 6;
  address: string;
  prefixLen: number;
  scope: string;
}

export interface Route {
  dst: string; // 'default' or a prefix; a bare address is a host route
  dev: string;
  gateway?: string;
  scope?: string;
  protocol?: string;
  family: 4 | 6;
}

async function ipJson(args: string[]): Promise<unknown[]> {
  const { stdout } = await run('ip', ['-j', ...args], { maxBuffer: 64 << 20 });
  const text = stdout.trim();
  return text ? (JSON.parse(text) as unknown[]) : [];
}

type Raw = Record<string, unknown>;

function xdpOf(x: unknown): Pick<Link, 'xdp'> {
  const mode = (x as Raw | undefined)?.mode;
  return mode === 1 ? { xdp: 'native' } : mode === 2 ? { xdp: 'generic' } : {};
}

export function parseLinks(raw: unknown[]): Link[] {
  return (raw as Raw[]).map((l) => {
    const flags = (l.flags as string[] | undefined) ?? [];
    const info = l.linkinfo as Raw | undefined;
    return {
      ifindex: Number(l.ifindex),
      ifname: String(l.ifname),
      up: flags.includes('UP'),
      mac: String(l.address ?? ''),
      mtu: Number(l.mtu ?? 0),
      kind: String(info?.info_kind ?? ''),
      loopback: flags.includes('LOOPBACK'),
      ...xdpOf(l.xdp),
    };
  });
}

export function parseAddresses(raw: unknown[]): Address[] {
  const out: Address[] = [];
  for (const l of raw as Raw[]) {
    for (const a of (l.addr_info as Raw[] | undefined) ?? []) {
      const family = a.family === 'inet' ? 4 : a.family === 'inet6' ? 6 : 0;
      if (!family) continue;
      out.push({
        ifindex: Number(l.ifindex),
        ifname: String(l.ifname),
        family,
        address: String(a.local),
        prefixLen: Number(a.prefixlen),
        scope: String(a.scope ?? ''),
      });
    }
  }
  return out;
}

export function parseRoutes(raw: unknown[], family: 4 | 6): Route[] {
  return (raw as Raw[])
    .filter((r) => typeof r.dev === 'string')
    .map((r) => ({
      dst: String(r.dst),
      dev: String(r.dev),
      gateway: r.gateway === undefined ? undefined : String(r.gateway),
      scope: r.scope === undefined ? undefined : String(r.scope),
      protocol: r.protocol === undefined ? undefined : String(r.protocol),
      family,
    }));
}

export async function dumpLinks(): Promise<Link[]> {
  return parseLinks(await ipJson(['-d', 'link', 'show']));
}

export async function dumpAddresses(): Promise<Address[]> {
  return parseAddresses(await ipJson(['addr', 'show']));
}

export async function dumpRoutes(): Promise<Route[]> {
  const [v4, v6] = await Promise.all([ipJson(['-4', 'route', 'show']), ipJson(['-6', 'route', 'show'])]);
  return [...parseRoutes(v4, 4), ...parseRoutes(v6, 6)];
}

/**
 * Calls `onChange` (debounced) whenever rtnetlink reports a link, address or route
 * change. Returns a stop function. If `ip monitor` dies it is restarted after a pause,
 * so a transient failure costs at most one missed event (the periodic resync covers it).
 */
export function watchNetlink(onChange: () => void, debounceMs = 50): () => void {
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const fire = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      onChange();
    }, debounceMs);
  };
  const start = () => {
    if (stopped) return;
    child = spawn('ip', ['monitor', 'link', 'address', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout?.on('data', fire);
    child.on('exit', () => {
      if (!stopped) setTimeout(start, 1000).unref();
    });
  };
  start();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    child?.kill();
  };
}
