// src/bpf: what this kernel and this libbpf offer weir, found cheaply: names in the kernel's
// BTF (/sys/kernel/btf/vmlinux: an attach type, a kfunc, an iterator context) and libbpf's
// probes (a trivial program loaded, a tiny map created). Read by `weir version` and the
// weir_build_info metric; nothing here decides what the loader does.

import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { Btf } from './btf.js';
import { native } from './errors.js';
import { addon } from './native.js';

const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';

export interface KernelFeature {
  name: string;
  /** null: could not tell (no kernel BTF to read the type numbers from, or the probe failed) */
  available: boolean | null;
  /** what weir uses it for */
  use: string;
  /** how it was found */
  probe: string;
}

/** libbpf's version as "major.minor" (the library the addon runs against). */
export function libbpfVersion(): string {
  return native(() => addon.libbpfVersion());
}

export function kernelRelease(): string {
  return release();
}

/** Every feature weir cares about, probed now (a few ms: a handful of tiny loads). */
export function kernelFeatures(btfPath = VMLINUX_BTF): KernelFeature[] {
  let btf: Btf | undefined;
  try {
    if (existsSync(btfPath)) btf = Btf.fromFile(btfPath);
  } catch {
    btf = undefined;
  }
  const enumOf = (name: string): Record<string, number> => {
    try {
      return btf ? btf.enum(name) : {};
    } catch {
      return {};
    }
  };
  const progTypes = enumOf('bpf_prog_type');
  const mapTypes = enumOf('bpf_map_type');
  const attachTypes = enumOf('bpf_attach_type');
  const funcIds = enumOf('bpf_func_id');
  const has = (name: string, kind: string): boolean | null => (btf ? btf.find(name, kind) !== null : null);
  const inEnum = (e: Record<string, number>, name: string): boolean | null => (btf ? name in e : null);
  const probe = (table: Record<string, number>, name: string, f: (n: number) => boolean): boolean | null => {
    const n = table[name];
    if (n === undefined) return btf ? false : null;
    try {
      return f(n);
    } catch {
      return null;
    }
  };
  const progType = (name: string) => probe(progTypes, name, (n) => addon.probeProgType(n));
  const mapType = (name: string) => probe(mapTypes, name, (n) => addon.probeMapType(n));
  const all = (...xs: (boolean | null)[]): boolean | null => (xs.includes(false) ? false : xs.includes(null) ? null : true);
  return [
    { name: 'btf', available: btf !== undefined, use: 'map layouts of pinned maps, CO-RE', probe: `${btfPath} readable` },
    {
      name: 'tc',
      available: progType('BPF_PROG_TYPE_SCHED_CLS'),
      use: 'the TC programs (from_pod, to_pod, from_host)',
      probe: 'libbpf probe: sched_cls program',
    },
    { name: 'tcx', available: inEnum(attachTypes, 'BPF_TCX_INGRESS'), use: 'TC attach as links (else clsact + cls_bpf)', probe: 'BTF: BPF_TCX_INGRESS' },
    { name: 'xdp', available: progType('BPF_PROG_TYPE_XDP'), use: 'the XDP prefilter', probe: 'libbpf probe: xdp program' },
    {
      name: 'cgroup_sock_addr',
      available: all(progType('BPF_PROG_TYPE_CGROUP_SOCK_ADDR'), inEnum(attachTypes, 'BPF_CGROUP_INET4_GETPEERNAME')),
      use: 'socket LB (connect, sendmsg, recvmsg, getpeername)',
      probe: 'libbpf probe: cgroup_sock_addr program; BTF: BPF_CGROUP_INET4_GETPEERNAME',
    },
    {
      name: 'ringbuf',
      available: mapType('BPF_MAP_TYPE_RINGBUF'),
      use: 'dataplane events (weir monitor)',
      probe: 'libbpf probe: ringbuf map',
    },
    { name: 'lpm_trie', available: mapType('BPF_MAP_TYPE_LPM_TRIE'), use: 'ipcache, source ranges, DSR opt-out', probe: 'libbpf probe: lpm_trie map' },
    { name: 'lru_hash', available: mapType('BPF_MAP_TYPE_LRU_HASH'), use: 'conntrack, affinity', probe: 'libbpf probe: lru_hash map' },
    {
      name: 'socket_iterators',
      // libbpf's tracing probe loads no attach target, so it says no on every kernel: BTF says it
      available: all(inEnum(attachTypes, 'BPF_TRACE_ITER'), has('bpf_iter__tcp', 'struct'), has('bpf_iter__udp', 'struct')),
      use: 'finding sockets to removed backends',
      probe: 'BTF: BPF_TRACE_ITER, bpf_iter__tcp, bpf_iter__udp',
    },
    {
      name: 'bpf_sock_destroy',
      available: has('bpf_sock_destroy', 'func'),
      use: 'closing UDP sockets to removed backends',
      probe: 'BTF: kfunc bpf_sock_destroy',
    },
    {
      name: 'redirect_neigh',
      available: inEnum(funcIds, 'BPF_FUNC_redirect_neigh'),
      use: 'forwarding with the kernel neighbour table',
      probe: 'BTF: BPF_FUNC_redirect_neigh',
    },
  ];
}
