// cli/daemon: `weir daemon`, the node agent. Parses and checks flags (each also a WEIR_* env
// variable and a --config file key: daemon/config-sources.ts) into a DaemonConfig, runs the
// Daemon (src/daemon), logs logfmt or JSON lines to stdout, and on SIGTERM/SIGINT stops
// watching and exits 0, leaving the pinned dataplane in place for the next daemon.

import { Command, Option } from 'commander';
import {
  checkCgroupDir,
  checkHostProc,
  checkFlag,
  resolveCgroupDir,
  parseDuration,
  parseLbAlgorithm,
  parseList,
  parseMaglevTableSize,
  parseTunnelPort,
  parseDsrOptoutCidrs,
  parseSockLbMode,
  parseFailsafeFlags,
  parseXdpMode,
  type DaemonConfig,
  type SourceConfig,
} from '../daemon/config.js';
import { addEnvNames, applySources, flagSpecs, origins, originSummary, unknownEnv, withOrigin, type Origin } from '../daemon/config-sources.js';
import { CONFIG_API_VERSION, CONFIG_KIND } from '../daemon/config-file.js';
import { Daemon } from '../daemon/daemon.js';
import { DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND } from '../daemon/failsafe-ports.js';
import { DEFAULT_BPF_ROOT, ensureBpfRoot, holdBpfRoot, INIT_BPF_ROOT } from '../dataplane/bpffs.js';
import { checkInstanceName, defaultInstance } from '../dataplane/instance.js';
import { MAGLEV_DEFAULT_TABLE_SIZE } from '../dataplane/maglev.js';
import { MAP_SIZE_NAMES, MAP_SIZE_SETTINGS, parseMapSize, type MapSizeName, type MapSizes } from '../dataplane/map-sizes.js';
import { parseListenAddress } from '../metrics/http.js';
import { DEFAULT_HEALTHZ_ADDRESS } from '../metrics/proxy-health.js';
import { bootstrapFromEnv } from '../sources/kube-bootstrap.js';
import { createDaemonLogger, isLogFormat, isLogLevel, errText, LOG_FORMATS, LOG_LEVELS } from '../log.js';

/** `--ct-map-size` ... (map-sizes.ts): one flag per map size setting. */
type MapSizeFlags = { [K in MapSizeName as `${K}MapSize`]?: string };

export interface DaemonFlags extends MapSizeFlags {
  /** --config FILE (or WEIR_CONFIG): a WeirConfiguration YAML; its values are applied by then */
  config?: string;
  /** required: from the flag, WEIR_NODE_NAME or the file's nodeName (checked in daemonConfig) */
  nodeName?: string;
  manifests?: string;
  kubeconfig?: string;
  apiOutageBound?: string;
  metricsAddress?: string;
  healthzAddress?: string;
  /** undefined: defaultInstance() (the netns name of a simulated node, else 'default') */
  instance?: string;
  /** undefined: the default root, found or mounted (ensureBpfRoot) */
  bpfRoot?: string;
  cgroup?: string;
  hostProc?: string;
  hostInterfaces?: string;
  nodeportAddresses?: string;
  connectTimeLb: string;
  resyncInterval: string;
  ctGcInterval: string;
  proxyName?: string;
  logLevel: string;
  logFormat?: string;
  kubeProxyCleanup: string;
  serviceStats?: string;
  lbAlgorithm?: string;
  maglevTableSize?: string;
  tunnelPort?: string;
  externalServiceMode?: string;
  dsrOptoutCidrs?: string;
  tunnelUnderlay?: string;
  networkPolicy?: string;
  policyStats?: string;
  podSourceCheck?: string;
  monitor?: string;
  hostPolicy?: string;
  autoHostEndpoints?: string;
  failsafeInboundHostPorts?: string;
  failsafeOutboundHostPorts?: string;
  xdpMode?: string;
}

/**
 * The source: --manifests, --kubeconfig, or the pod's service account when neither is given
 * and KUBERNETES_SERVICE_HOST is set (in a pod).
 */
function sourceConfig(f: DaemonFlags, env: NodeJS.ProcessEnv): SourceConfig {
  if (f.manifests && f.kubeconfig) throw new Error('--manifests and --kubeconfig exclude each other: choose one source');
  if (f.manifests) return { kind: 'manifests', dir: f.manifests };
  const outageBoundMs = parseDuration(f.apiOutageBound ?? '60s', '--api-outage-bound');
  if (f.kubeconfig) return { kind: 'kube', kubeconfig: f.kubeconfig, outageBoundMs };
  if (env.KUBERNETES_SERVICE_HOST) return { kind: 'kube', outageBoundMs };
  throw new Error('no source: --manifests DIR is required, or --kubeconfig FILE, or run in a pod (KUBERNETES_SERVICE_HOST set)');
}

/** Flags -> config, or a readable error. */
export function daemonConfig(f: DaemonFlags, env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  if (!f.nodeName) throw new Error("--node-name is required (or WEIR_NODE_NAME, or nodeName in the --config file): this node's name");
  const nodeName = f.nodeName;
  const source = sourceConfig(f, env);
  // the synthetic `kubernetes` Service only makes sense for the API source
  const bootstrap = source.kind === 'kube' ? bootstrapFromEnv(env) : undefined;
  const metricsAddress = !f.metricsAddress || f.metricsAddress === 'off' ? null : f.metricsAddress;
  if (metricsAddress) checkFlag('--metrics-address', () => parseListenAddress(metricsAddress));
  const healthzAddress = !f.healthzAddress || f.healthzAddress === 'off' ? null : f.healthzAddress;
  if (healthzAddress) checkFlag('--healthz-address', () => parseListenAddress(healthzAddress));
  if (!isLogLevel(f.logLevel)) throw new Error(`bad --log-level ${JSON.stringify(f.logLevel)}: use ${LOG_LEVELS.join(', ')}`);
  const logFormat = f.logFormat ?? 'logfmt';
  if (!isLogFormat(logFormat)) throw new Error(`bad --log-format ${JSON.stringify(logFormat)}: use ${LOG_FORMATS.join(' or ')}`);
  const mapSizes: Partial<MapSizes> = {};
  for (const n of MAP_SIZE_NAMES) {
    const given = f[`${n}MapSize`];
    if (given !== undefined) mapSizes[n] = parseMapSize(n, given);
  }
  const sockLb = parseSockLbMode(f.connectTimeLb);
  let cgroup: string | null = null;
  if (sockLb !== 'off') {
    cgroup = resolveCgroupDir(f.cgroup);
    checkCgroupDir(cgroup);
  }
  const instance = f.instance ?? defaultInstance();
  checkInstanceName(instance);
  // last: finding the default root may mount a bpffs, which a bad flag above must not cause
  const found = f.bpfRoot === undefined ? ensureBpfRoot() : undefined;
  return {
    nodeName,
    source,
    ...(bootstrap ? { bootstrap } : {}),
    metricsAddress,
    healthzAddress,
    instance,
    bpfRoot: f.bpfRoot ?? holdBpfRoot(found!.path),
    ...(found ? { bpfRootFound: found } : {}),
    cgroup,
    hostProc: checkHostProc(f.hostProc ?? '/proc'),
    hostInterfaces: parseList(f.hostInterfaces),
    nodePortAddresses: parseList(f.nodeportAddresses),
    sockLb,
    resyncIntervalMs: parseDuration(f.resyncInterval, '--resync-interval'),
    ctGcIntervalMs: parseDuration(f.ctGcInterval, '--ct-gc-interval'),
    ...(f.proxyName ? { proxyName: f.proxyName } : {}),
    logLevel: f.logLevel,
    logFormat,
    mapSizes,
    kubeProxyCleanup: f.kubeProxyCleanup === 'on',
    serviceStats: f.serviceStats !== 'off',
    serviceStatsBackends: f.serviceStats === 'backend',
    lbAlgorithm: parseLbAlgorithm(f.lbAlgorithm ?? 'random'),
    maglevTableSize: parseMaglevTableSize(f.maglevTableSize ?? String(MAGLEV_DEFAULT_TABLE_SIZE)),
    tunnelPort: parseTunnelPort(f.tunnelPort ?? '4789'),
    externalServiceMode: f.externalServiceMode === 'dsr' ? 'dsr' : 'tunnel',
    dsrOptoutCidrs: parseDsrOptoutCidrs(f.dsrOptoutCidrs ?? ''),
    tunnelUnderlay: f.tunnelUnderlay === 'ipv6' ? 'ipv6' : 'ipv4',
    networkPolicy: f.networkPolicy !== 'off',
    policyStats: f.policyStats !== 'off',
    podSourceCheck: f.podSourceCheck !== 'off',
    monitor: f.monitor !== 'off',
    hostPolicy: f.hostPolicy !== 'off',
    autoHostEndpoints: f.autoHostEndpoints !== 'off',
    failsafes: parseFailsafeFlags(f.failsafeInboundHostPorts ?? DEFAULT_FAILSAFE_INBOUND, f.failsafeOutboundHostPorts ?? DEFAULT_FAILSAFE_OUTBOUND),
    xdpMode: parseXdpMode(f.xdpMode ?? 'auto'),
  };
}

/** The options of `weir daemon` on `cmd` (each with its WEIR_* env variable); no action. */
export function daemonOptions(cmd: Command): Command {
  cmd
    .description(
      'run the node agent: program Services into BPF maps and keep the programs attached (run it inside the node network namespace). ' +
        `Every flag is also an environment variable (--tunnel-port: WEIR_TUNNEL_PORT) and a key of the --config file (tunnelPort); ` +
        'a flag wins over the environment, which wins over the file (docs/configuration.md)',
    )
    .option(
      '--config <file>',
      `a ${CONFIG_KIND} YAML file (apiVersion: ${CONFIG_API_VERSION}; keys: these flags in camelCase, e.g. metricsAddress), e.g. a ConfigMap mounted at /etc/weir/config.yaml`,
    )
    .option('--node-name <name>', "this node's name (endpoints with this nodeName are local); required")
    .option('--manifests <dir>', 'directory of Service/EndpointSlice/... manifests (YAML or JSON), watched for changes')
    .option(
      '--kubeconfig <file>',
      'read the cluster from the Kubernetes API server this kubeconfig names (default without --manifests: the pod service account)',
    )
    .option('--api-outage-bound <duration>', '/readyz fails when the API server has been unreachable longer than this (liveness never does)', '60s')
    .option('--metrics-address <addr>', "/metrics, /healthz and /readyz on host:port, [v6]:port or :port; 'off' disables", ':9745')
    .option(
      '--healthz-address <addr>',
      "kube-proxy's node health server (/healthz, /livez, kube-proxy's JSON; load balancers probe it) on host:port, [v6]:port or :port; " +
        "0.0.0.0 or :: means every address of both families; 'off' disables",
      DEFAULT_HEALTHZ_ADDRESS,
    )
    .option(
      '--instance <name>',
      "names the pin directory <bpf-root>/weir/<instance> (default: the network namespace's name when weir runs in a named one that is not PID 1's, " +
        "as under `ip netns exec NODE`, so each simulated node has its own; otherwise 'default')",
    )
    .option(
      '--bpf-root <dir>',
      `a bpffs mount for pinned maps and links (default: ${DEFAULT_BPF_ROOT}; when that is not a bpffs here, the node's through ${INIT_BPF_ROOT} ` +
        `(or /proc/<pid>/root of the shell weir was started from, when PID 1 cannot be inspected); when neither is, weir mounts one at ` +
        `${DEFAULT_BPF_ROOT} in the node's mount namespace, so the pins outlive weir)`,
    )
    .option(
      '--cgroup <dir>',
      'cgroup2 directory the connect-time LB attaches to; relative paths are under the cgroup2 root, which the daemon mounts itself when none is visible (ip netns exec hides /sys/fs/cgroup) (default: the cgroup2 root)',
    )
    .option(
      '--host-proc <dir>',
      "the node's /proc as mounted here: where the socket clean-up finds the pods' network namespaces and the kube-proxy check looks (in a pod: the node's /proc mounted at e.g. /nodeproc)",
      '/proc',
    )
    .option(
      '--host-interfaces <list>',
      'host interfaces for NodePort/externalIP traffic, comma separated (default: those with a default route, else those with a global address that are not pod interfaces)',
    )
    .option(
      '--nodeport-addresses <cidrs>',
      "node addresses NodePorts answer on, CIDRs or 'primary' (like kube-proxy's nodePortAddresses; default: every node address)",
    )
    .addOption(
      new Option('--connect-time-lb <mode>', 'socket-level load balancing: on, host-only (pods use the TC path), off')
        .choices(['on', 'host-only', 'off'])
        .default('on'),
    )
    .addOption(
      new Option(
        '--service-stats <on|backend|off>',
        'count new connections per service backend in BPF (weir_lb_stats4, weir_lb_stats6) and export them per service port ' +
          '(weir_service_new_connections_total); backend: also one series per backend (weir_service_backend_new_connections_total); off: not counted at all',
      )
        .choices(['on', 'backend', 'off'])
        .default('on'),
    )
    .addOption(
      new Option(
        '--lb-algorithm <algorithm>',
        'backend choice for NodePort, externalIP and LoadBalancer flows of services without the service.weir.dev/lb-algorithm annotation: random, or maglev (consistent hashing: every node sends a client address and port to the same backend)',
      )
        .choices(['random', 'maglev'])
        .default('random'),
    )
    .option(
      '--maglev-table-size <prime>',
      'entries of each Maglev table, a prime in 251..16381, the same on every node (about 100 per backend keeps reshuffles near 1/N)',
      '16381',
    )
    .option(
      '--tunnel-port <port>',
      'UDP port of the VXLAN tunnel that carries NodePort, externalIP and LoadBalancer flows to backends on other nodes (sent to and accepted on; the same on every node)',
      '4789',
    )
    .addOption(
      new Option(
        '--external-service-mode <mode>',
        "how NodePort, externalIP and LoadBalancer flows to a backend on another node return: tunnel (back through the ingress node, which answers the client) or dsr (the backend's node answers the client directly, from the frontend's address and port)",
      )
        .choices(['tunnel', 'dsr'])
        .default('tunnel'),
    )
    .addOption(
      new Option(
        '--tunnel-underlay <family>',
        "the outer header of IPv6 flows through the tunnel: ipv4 (default: the IPv4 tunnel's underlay and MTU) or ipv6, when both nodes have an InternalIP of it, else the other family",
      )
        .choices(['ipv4', 'ipv6'])
        .default('ipv4'),
    )
    .addOption(
      new Option(
        '--network-policy <on|off>',
        "enforce Kubernetes NetworkPolicy in BPF on this node's pods (needs Pods, Namespaces and NetworkPolicies; conntrack then tracks every flow); off: every flow is allowed",
      )
        .choices(['on', 'off'])
        .default('on'),
    )
    .addOption(
      new Option('--policy-stats <on|off>', 'count new flows allowed and denied per NetworkPolicy in BPF (weir_policy_flows_total); off: not counted at all')
        .choices(['on', 'off'])
        .default('on'),
    )
    .addOption(
      new Option(
        '--pod-source-check <on|off>',
        'drop what a pod sends from an address that is not its own (its host routes: `podIP dev vethX`), counted as spoofed_source; off: pods may send from any address',
      )
        .choices(['on', 'off'])
        .default('on'),
    )
    .addOption(
      new Option(
        '--monitor <on|off>',
        '`weir monitor` (live events from the programs, docs/monitor.md); off: the programs never emit events and `weir monitor` is refused',
      )
        .choices(['on', 'off'])
        .default('on'),
    )
    .addOption(
      new Option(
        '--host-policy <on|off>',
        'enforce Calico GlobalNetworkPolicy and HostEndpoint (projectcalico.org/v3) on the host interfaces: XDP prefilter (doNotTrack), preDNAT, normal and forward chains; off: host traffic is not judged',
      )
        .choices(['on', 'off'])
        .default('on'),
    )
    .addOption(
      new Option(
        '--auto-host-endpoints <on|off>',
        "the node's automatic host endpoint <node>-auto-hep (every host interface, the node's labels, default allow): GlobalNetworkPolicies select the node without a HostEndpoint object",
      )
        .choices(['on', 'off'])
        .default('on'),
    )
    .option(
      '--failsafe-inbound-host-ports <list>',
      "ports always open to the host before any host policy, Felix's syntax: proto:port or proto:cidr:port (IPv6 CIDRs in brackets), 'none' for none; weir's --metrics-address port is always added",
      DEFAULT_FAILSAFE_INBOUND,
    )
    .option(
      '--failsafe-outbound-host-ports <list>',
      "ports the host may always reach before any host policy (same syntax; the CIDR is the destination), 'none' for none",
      DEFAULT_FAILSAFE_OUTBOUND,
    )
    .addOption(
      new Option(
        '--xdp-mode <mode>',
        'how the XDP prefilter (untracked host policy) attaches to host interfaces: auto (native, else generic, else none), native, generic, or off; without XDP the TC program walks the untracked rules itself',
      )
        .choices(['auto', 'native', 'generic', 'off'])
        .default('auto'),
    )
    .option(
      '--dsr-optout-cidrs <cidrs>',
      'comma-separated client CIDRs that keep tunnel mode under --external-service-mode dsr (clients the backend nodes cannot reach directly)',
      '',
    )
    .option('--resync-interval <duration>', 'how often the maps are re-read and drift repaired', '60s')
    .option('--ct-gc-interval <duration>', 'how often expired conntrack entries are removed', '30s')
    .addOption(
      new Option(
        '--kube-proxy-cleanup <on|off>',
        "remove kube-proxy's iptables (KUBE-* chains, nft and legacy) and nftables (kube-proxy tables) state once weir is programmed; off leaves it and warns",
      )
        .choices(['on', 'off'])
        .default('on'),
    )
    .option('--proxy-name <name>', 'serve Services labelled service.kubernetes.io/service-proxy-name=<name> (unlabelled ones always)')
    .addOption(
      new Option('--log-level <level>', "the least level logged: debug, info, warn, or error (weir's own failures; bad input is warn)")
        .choices(LOG_LEVELS)
        .default('info'),
    )
    .addOption(
      new Option('--log-format <format>', 'logfmt (ts=… level=… event=… key=value) or json (one object a line: time, level, msg, the fields)')
        .choices(LOG_FORMATS)
        .default('logfmt'),
    );
  for (const name of MAP_SIZE_NAMES) {
    const s = MAP_SIZE_SETTINGS[name];
    const maps = s.maps.join(', ');
    const help =
      `max_entries of ${maps} (${s.entry}); a pinned map of another size is resized at start, keeping its entries ` +
      `(default: ${s.default}, but a map an earlier release pinned at its compiled size keeps that size)`;
    cmd.option(`--${name}-map-size <entries>`, help);
  }
  return addEnvNames(cmd);
}

/** The flags of a parsed `weir daemon` with the WEIR_* environment and its --config file applied, checked into a DaemonConfig;
 *  an error names where the bad value came from (WEIR_TUNNEL_PORT=abc: …, config.yaml: tunnelPort: …). */
export function resolveDaemonConfig(cmd: Command, env: NodeJS.ProcessEnv = process.env): { cfg: DaemonConfig; from: Map<string, Origin>; configPath?: string } {
  let from = origins(cmd, undefined);
  try {
    const configPath = applySources(cmd, env);
    from = origins(cmd, configPath);
    return { cfg: daemonConfig(cmd.opts<DaemonFlags>(), env), from, ...(configPath ? { configPath } : {}) };
  } catch (e) {
    throw withOrigin(e, flagSpecs(cmd), from);
  }
}

export function registerDaemonCommand(program: Command): void {
  // a stray word after the flags is an error, not ignored
  daemonOptions(program.command('daemon'))
    .allowExcessArguments(false)
    .action(async (_flags: DaemonFlags, cmd: Command) => {
      const { cfg, from, configPath } = resolveDaemonConfig(cmd);
      const log = createDaemonLogger(cfg.logLevel, cfg.logFormat);
      // which settings came from where (names, not values: a value may be a secret)
      const summary = originSummary(from, configPath);
      if (summary.configFile || summary.fromEnv) log.info('config', summary);
      for (const u of unknownEnv(process.env, flagSpecs(cmd)))
        log.warn('config: unknown environment variable', { name: u.name, ...(u.nearest ? { didYouMean: u.nearest } : {}) });
      const daemon = new Daemon(cfg, log);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info('stopping', { signal, dataplane: 'left in place' });
        void daemon.stop().then(
          () => {
            log.info('stopped');
            process.exit(0);
          },
          (e: unknown) => {
            log.warn('stop failed', { error: errText(e) });
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      const found = cfg.bpfRootFound;
      if (found?.mounted) log.info('bpffs mounted', { mountNamespace: "the node's", command: found.mounted, bpfRoot: found.path });
      const source = cfg.source.kind === 'manifests' ? cfg.source.dir : `kube:${cfg.source.kubeconfig ?? 'in-cluster'}`;
      log.info('start', {
        node: cfg.nodeName,
        instance: cfg.instance,
        bpfRoot: cfg.bpfRoot,
        ...(found && found.path !== cfg.bpfRoot ? { nodeBpfRoot: found.path } : {}),
        source,
        metrics: cfg.metricsAddress ?? 'off',
        healthz: cfg.healthzAddress ?? 'off',
        pid: process.pid,
      });
      await daemon.start();
      // runs until a signal: the source, netlink watcher and timers keep the loop alive
      await new Promise<never>(() => {});
    });
}
