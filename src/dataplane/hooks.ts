// dataplane/hooks: the hook table. Which BPF objects weir loads (build/bpf/<name>.o, in load
// order) with which .rodata knobs, and which program of which object attaches where, under
// which link pin name. The loader (loader.ts) and the attach manager (attach.ts) read it;
// adding a hook (the tunnel device, an XDP prefilter) is a row here plus, for a new kind of
// interface, an interface class the daemon fills in.

import { enums, type ConstValue, type TcDirection } from '../bpf/index.js';
import { MAGLEV_DEFAULT_TABLE_SIZE } from './maglev.js';

export type SockLbMode = 'on' | 'host-only' | 'off';

/** What the knobs are computed from: the daemon's options and the namespace it runs in. */
export interface KnobInputs {
  /** --service-stats */
  serviceStats: boolean;
  /** --connect-time-lb (with 'off' the sock_lb programs are loaded but not attached) */
  sockLbMode: SockLbMode;
  /** the daemon's own netns: "the host" for --connect-time-lb host-only */
  hostNetnsCookie: bigint;
  /** conntrack for every flow, not only NAT'd ones (lib/conntrack.h); off until NetworkPolicy needs it */
  ctTrackAll?: boolean;
  /** --maglev-table-size (validated prime); default MAGLEV_DEFAULT_TABLE_SIZE */
  maglevTableSize?: number;
  /** --tunnel-port: the VXLAN UDP port to other nodes; default TUNNEL_DEFAULT_PORT */
  tunnelPort?: number;
  /** --external-service-mode: how flows through the tunnel return; default 'tunnel' */
  externalServiceMode?: ExternalServiceMode;
  /** --network-policy: enforce NetworkPolicy (lib/policy.h); default off here, on in the daemon */
  networkPolicy?: boolean;
  /** --policy-stats: per-policy counts in weir_policy_stats; default on */
  policyStats?: boolean;
  /** --pod-source-check: drop what a pod sends from an address not its own (lib/pod_source.h); default off here, on in the daemon */
  podSourceCheck?: boolean;
}

/** How NodePort/externalIP/LoadBalancer flows to backends on other nodes return (Calico's BPFExternalServiceMode). */
export type ExternalServiceMode = 'tunnel' | 'dsr';

/** VXLAN's IANA port (RFC 7348), the tunnel's default. */
export const TUNNEL_DEFAULT_PORT = 4789;

/** Every `.rodata` knob weir sets, by its variable name in the C source, and its value. */
export const KNOBS = {
  /** count new connections per {frontend, backend} in weir_lb_stats4 (lib/lb.h) */
  lb_stats_enabled: (o) => (o.serviceStats ? 1 : 0),
  /** which sockets the connect-time LB serves (sock_lb.c) */
  sock_lb_mode: (o) => enums.weir_sock_lb_mode[o.sockLbMode === 'host-only' ? 'WEIR_SOCK_LB_HOST_ONLY' : 'WEIR_SOCK_LB_ALL_NETNS'],
  /** the netns host-only mode compares bpf_get_netns_cookie() with (sock_lb.c) */
  host_netns_cookie: (o) => o.hostNetnsCookie,
  /** a tracked entry pair for every new flow, not only service flows (lib/conntrack.h, lib/flow.h) */
  ct_track_all: (o) => (o.ctTrackAll ? 1 : 0),
  /** M of the Maglev tables in weir_maglev4 (lib/lb.h); the reconciler builds them with the same M */
  maglev_table_size: (o) => o.maglevTableSize ?? MAGLEV_DEFAULT_TABLE_SIZE,
  /** the outer UDP port of the tunnel to other nodes, sent to and accepted on (lib/tunnel.h) */
  tunnel_port: (o) => o.tunnelPort ?? TUNNEL_DEFAULT_PORT,
  /** the return mode of new tunneled flows (lib/tunnel.h; clients in weir_dsr_optout4 keep tunnel) */
  external_service_mode: (o) => enums.weir_tunnel_mode[o.externalServiceMode === 'dsr' ? 'WEIR_TUNNEL_MODE_DSR' : 'WEIR_TUNNEL_MODE_TUNNEL'],
  /** decide every new flow by NetworkPolicy (lib/policy.h) */
  policy_enabled: (o) => (o.networkPolicy ? 1 : 0),
  /** count allowed/denied flows per policy slot (lib/policy.h) */
  policy_stats_enabled: (o) => (o.policyStats === false ? 0 : 1),
  /** drop a pod's packets whose source is not bound to its interface in weir_pod_addrs4/6 (lib/pod_source.h) */
  pod_source_check: (o) => (o.podSourceCheck ? 1 : 0),
} satisfies Record<string, (o: KnobInputs) => ConstValue>;
export type KnobName = keyof typeof KNOBS;

export interface ObjectSpec {
  /** the knobs this object takes; each must be a `.rodata` variable of the object */
  readonly knobs: readonly KnobName[];
  /** loaded only with --host-policy on (issue 17: the XDP prefilter, host egress) */
  readonly hostPolicy?: true;
}

/** the knobs of both families' from_pod objects */
const POD_KNOBS = [
  'lb_stats_enabled',
  'maglev_table_size',
  'ct_track_all',
  'tunnel_port',
  'external_service_mode',
  'policy_enabled',
  'policy_stats_enabled',
  'pod_source_check',
] as const;

/**
 * The objects, in load order: the first creates the pinned maps (LIBBPF_PIN_BY_NAME) that
 * the others adopt. An object that picks backends (includes lib/lb.h) takes lb_stats_enabled and maglev_table_size.
 */
export const OBJECTS = {
  from_pod: {
    knobs: POD_KNOBS,
  },
  // the IPv6 programs after the IPv4 ones in the same TCX chains (bpf-c/from_pod6.c, from_host6.c)
  from_pod6: {
    knobs: POD_KNOBS,
  },
  to_pod: { knobs: [] },
  from_host: {
    knobs: ['lb_stats_enabled', 'maglev_table_size', 'ct_track_all', 'tunnel_port', 'external_service_mode', 'policy_enabled', 'policy_stats_enabled'],
  },
  from_host6: {
    knobs: ['lb_stats_enabled', 'maglev_table_size', 'ct_track_all', 'tunnel_port', 'external_service_mode', 'policy_enabled', 'policy_stats_enabled'],
  },
  // also holds weir_sock_destroy, an iterator that is run (dataplane/sockets.ts), not attached
  sock_lb: { knobs: ['lb_stats_enabled', 'maglev_table_size', 'sock_lb_mode', 'host_netns_cookie', 'ct_track_all'] },
  // host policy (issue 17): untracked rules at XDP on host interfaces, and host egress at TC
  xdp_prefilter: { knobs: [], hostPolicy: true },
  // ct_track_all: declared by lib/conntrack.h, which to_host includes to track the host's own flows
  to_host: { knobs: ['ct_track_all'], hostPolicy: true },
} as const satisfies Record<string, ObjectSpec>;
export type ObjectName = keyof typeof OBJECTS;
export const OBJECT_NAMES = Object.keys(OBJECTS) as ObjectName[];

/** The kinds of interface the daemon tells apart (dataplane/interfaces.ts); a row names one. */
export type InterfaceClass = 'workload' | 'host';

/** Where a program attaches. */
export type HookPlace =
  /** TCX link at ingress/egress of every interface of a class */
  | { readonly kind: 'tc'; readonly interfaces: InterfaceClass; readonly direction: TcDirection }
  /** XDP link (native mode, else generic) on every interface of a class */
  | { readonly kind: 'xdp'; readonly interfaces: InterfaceClass }
  /** cgroup link on the socket-LB cgroup (--cgroup), at this attach type */
  | { readonly kind: 'cgroup'; readonly attachType: string };

export interface Hook {
  /** unique; what logs call the hook */
  readonly name: string;
  readonly object: ObjectName;
  readonly program: string;
  readonly at: HookPlace;
  /**
   * The link's pin name under <pinDir>/links/, `{ifindex}` standing for the interface's
   * index. Pin names are a contract with other releases: an upgrade or rollback finds the
   * links by them and updates them in place, so an existing row's pin never changes.
   */
  readonly pin: string;
}

export type InterfaceHook = Hook & { readonly at: Extract<HookPlace, { interfaces: InterfaceClass }> };
export type CgroupHook = Hook & { readonly at: Extract<HookPlace, { kind: 'cgroup' }> };

const tc = (interfaces: InterfaceClass, direction: TcDirection): HookPlace => ({ kind: 'tc', interfaces, direction });
const cgroup = (attachType: string): HookPlace => ({ kind: 'cgroup', attachType });

export const HOOKS: readonly Hook[] = [
  // the pod's traffic, seen from the host side of its veth: ingress is "from the pod"
  { name: 'from_pod', object: 'from_pod', program: 'weir_from_pod', at: tc('workload', 'ingress'), pin: 'tcx-{ifindex}-from_pod' },
  // its IPv6 packets, handed on by weir_from_pod (TCX_NEXT) to the program after it
  { name: 'from_pod6', object: 'from_pod6', program: 'weir_from_pod6', at: tc('workload', 'ingress'), pin: 'tcx-{ifindex}-from_pod6' },
  { name: 'to_pod', object: 'to_pod', program: 'weir_to_pod', at: tc('workload', 'egress'), pin: 'tcx-{ifindex}-to_pod' },
  // NodePort / externalIP traffic arriving on the node's interfaces
  { name: 'from_host', object: 'from_host', program: 'weir_from_host', at: tc('host', 'ingress'), pin: 'tcx-{ifindex}-from_host' },
  { name: 'from_host6', object: 'from_host6', program: 'weir_from_host6', at: tc('host', 'ingress'), pin: 'tcx-{ifindex}-from_host6' },
  // host policy (issue 17): doNotTrack ingress before the stack (native, else generic, else from_host walks it), host egress
  { name: 'xdp_prefilter', object: 'xdp_prefilter', program: 'weir_xdp_prefilter', at: { kind: 'xdp', interfaces: 'host' }, pin: 'xdp-{ifindex}-prefilter' },
  { name: 'to_host', object: 'to_host', program: 'weir_to_host', at: tc('host', 'egress'), pin: 'tcx-{ifindex}-to_host' },
  // the connect-time LB: a ClusterIP rewritten at connect()/sendmsg(), restored in replies and getpeername()
  { name: 'connect4', object: 'sock_lb', program: 'weir_sock_connect4', at: cgroup('cgroup_inet4_connect'), pin: 'cgroup-connect4' },
  { name: 'sendmsg4', object: 'sock_lb', program: 'weir_sock_sendmsg4', at: cgroup('cgroup_udp4_sendmsg'), pin: 'cgroup-sendmsg4' },
  { name: 'recvmsg4', object: 'sock_lb', program: 'weir_sock_recvmsg4', at: cgroup('cgroup_udp4_recvmsg'), pin: 'cgroup-recvmsg4' },
  { name: 'getpeername4', object: 'sock_lb', program: 'weir_sock_getpeername4', at: cgroup('cgroup_inet4_getpeername'), pin: 'cgroup-getpeername4' },
  // the same for AF_INET6 sockets: IPv6 services, and IPv4 ones dialled v4-mapped (::ffff:a.b.c.d)
  { name: 'connect6', object: 'sock_lb', program: 'weir_sock_connect6', at: cgroup('cgroup_inet6_connect'), pin: 'cgroup-connect6' },
  { name: 'sendmsg6', object: 'sock_lb', program: 'weir_sock_sendmsg6', at: cgroup('cgroup_udp6_sendmsg'), pin: 'cgroup-sendmsg6' },
  { name: 'recvmsg6', object: 'sock_lb', program: 'weir_sock_recvmsg6', at: cgroup('cgroup_udp6_recvmsg'), pin: 'cgroup-recvmsg6' },
  { name: 'getpeername6', object: 'sock_lb', program: 'weir_sock_getpeername6', at: cgroup('cgroup_inet6_getpeername'), pin: 'cgroup-getpeername6' },
];

export function isInterfaceHook(h: Hook): h is InterfaceHook {
  return h.at.kind !== 'cgroup';
}

export function isCgroupHook(h: Hook): h is CgroupHook {
  return h.at.kind === 'cgroup';
}

/** The rows whose objects are loaded: without host policy, none of its rows (their objects are not loaded). */
export function activeHooks(hostPolicy: boolean, hooks: readonly Hook[] = HOOKS): Hook[] {
  return hooks.filter((h) => hostPolicy || !(OBJECTS[h.object] as ObjectSpec).hostPolicy);
}

/** The pin name of `hook`'s link (on interface `ifindex` for an interface hook). */
export function pinName(hook: Hook, ifindex?: number): string {
  if (!hook.pin.includes('{ifindex}')) return hook.pin;
  if (ifindex === undefined || !Number.isInteger(ifindex) || ifindex <= 0) throw new RangeError(`pin of hook ${hook.name}: bad ifindex ${ifindex}`);
  return hook.pin.replace('{ifindex}', String(ifindex));
}

const patterns = new WeakMap<Hook, RegExp>();
function patternOf(hook: Hook): RegExp {
  let re = patterns.get(hook);
  if (!re) {
    const [before, after] = hook.pin.split('{ifindex}').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    re = new RegExp(after === undefined ? `^${before}$` : `^${before}([1-9]\\d*)${after}$`);
    patterns.set(hook, re);
  }
  return re;
}

/** Which row (and interface) a pin name under links/ belongs to; undefined for names not ours. */
export function parsePinName(name: string, hooks: readonly Hook[] = HOOKS): { hook: Hook; ifindex?: number } | undefined {
  for (const hook of hooks) {
    const m = patternOf(hook).exec(name);
    if (m) return m[1] === undefined ? { hook } : { hook, ifindex: Number(m[1]) };
  }
  return undefined;
}

/**
 * The `.rodata` values for one object: its knobs that the object file declares. A knob the
 * table names but the object lacks (an object built from other sources) is left out and
 * reported in `missing`, rather than failing a load the knob is meaningless to.
 */
export function knobsFor(object: ObjectName, inputs: KnobInputs, declared: ReadonlySet<string>): { consts: Record<string, ConstValue>; missing: KnobName[] } {
  const consts: Record<string, ConstValue> = {};
  const missing: KnobName[] = [];
  for (const k of OBJECTS[object].knobs) {
    if (declared.has(k)) consts[k] = KNOBS[k](inputs);
    else missing.push(k);
  }
  return { consts, missing };
}
