// cli/diff: `weir diff`, the desired service state from the source against the live pinned
// maps. Desired: the daemon's source (a manifests dir, or the API server listed once: the
// Services, EndpointSlices and Nodes the service model reads) -> Store -> buildServiceState
// -> frontendEntries, the same path the daemon's reconciler takes, with node addresses read
// from netlink as the daemon reads them (run it in the node's network namespace).
// Live: weir_frontend4/weir_backend4 and weir_frontend6/weir_backend6 (where pinned: the
// IPv6 entries are compared only then).
// A frontend is missing, extra, or different (backend count, flags, affinity timeout, or
// its backend set: address:port and flags, compared as sets, not by id or slot).
// Exit 0: no difference; 2: differences (1 stays "the command failed").

import type { Command } from 'commander';
import type { IpFamily } from '../bpf/ip.js';
import { parseList } from '../daemon/config.js';
import { computeNodeNetwork } from '../dataplane/interfaces.js';
import { dumpAddresses, dumpLinks, dumpRoutes } from '../dataplane/netlink.js';
import {
  addressPort,
  frontendEntries,
  frontendKeyString,
  type BackendKey,
  type BackendValue,
  type DesiredFrontend,
  type FrontendKey,
  type FrontendValue,
} from '../dataplane/frontend-entries.js';
import { nodeZone } from '../model/nodes.js';
import type { NodeContext } from '../model/service-types.js';
import { buildServiceState } from '../model/services.js';
import { silentLogger } from '../log.js';
import { ManifestsSource } from '../sources/manifests.js';
import { Store } from '../sources/store.js';
import { backendFlags, endpoint, frontendFlags, protocolName, scopeName } from './decode.js';
import { CliError, outputOption, render, table, type OutputFormat } from './output.js';
import { pinnedFamilies, withFamilyMap } from './services.js';
import { pinnedMapNames, stateOptions, type StateOptions } from './state.js';

/** Exit status when the maps differ from the desired state. */
export const EXIT_DIFFERENCES = 2;

export type DiffKind = 'missing' | 'extra' | 'different';

export interface FrontendView {
  backendCount: number;
  flags: string[];
  affinityTimeout: number;
  /** `address:port` (+ `[flags]`), sorted */
  backends: string[];
}

export interface Difference {
  kind: DiffKind;
  /** address:port/protocol/scope */
  frontend: string;
  service?: string;
  /** what differs, for `different`: count, flags, affinityTimeout, backends */
  fields?: string[];
  desired?: FrontendView;
  live?: FrontendView;
}

export interface DiffResult {
  desiredFrontends: number;
  liveFrontends: number;
  differences: Difference[];
}

interface LiveFrontend {
  family: IpFamily;
  key: FrontendKey;
  value: FrontendValue;
  backends: BackendValue[];
}

const frontendName = (family: IpFamily, k: FrontendKey) => `${addressPort(family, k.address, k.port)}/${protocolName(k.protocol)}/${scopeName(k.scope)}`;
const backendName = (b: { address: string; port: number; flags: number }) => {
  const f = backendFlags(b.flags);
  return `${endpoint(b.address, b.port)}${f.length ? `[${f.join(',')}]` : ''}`;
};

function desiredView(d: DesiredFrontend): FrontendView {
  return { backendCount: d.backends.length, flags: frontendFlags(d.flags), affinityTimeout: d.affinityTimeout, backends: d.backends.map(backendName).sort() };
}

function liveView(l: LiveFrontend): FrontendView {
  // slots 0..count-1 are what the programs pick from; anything above is ignored by them
  const slots: string[] = [];
  for (let i = 0; i < l.value.backend_count; i++) slots.push(l.backends[i] ? backendName(l.backends[i]!) : `(slot ${i} empty)`);
  return { backendCount: l.value.backend_count, flags: frontendFlags(l.value.flags), affinityTimeout: l.value.affinity_timeout, backends: slots.sort() };
}

/** Desired entries against live ones. Pure. */
export function diffFrontends(desired: ReadonlyMap<string, DesiredFrontend>, live: ReadonlyMap<string, LiveFrontend>): DiffResult {
  const differences: Difference[] = [];
  const names = new Set([...desired.keys(), ...live.keys()]);
  for (const k of [...names].sort()) {
    const d = desired.get(k);
    const l = live.get(k);
    if (d && !l) differences.push({ kind: 'missing', frontend: frontendName(d.family, d.key), service: d.serviceKey, desired: desiredView(d) });
    else if (!d && l) differences.push({ kind: 'extra', frontend: frontendName(l.family, l.key), live: liveView(l) });
    else if (d && l) {
      const dv = desiredView(d);
      const lv = liveView(l);
      const fields: string[] = [];
      if (dv.backendCount !== lv.backendCount) fields.push('count');
      if (d.flags !== l.value.flags) fields.push('flags');
      if (dv.affinityTimeout !== lv.affinityTimeout) fields.push('affinityTimeout');
      // a missing slot below the count shows as a shorter live list
      let holes = 0;
      for (let i = 0; i < l.value.backend_count; i++) if (l.backends[i] === undefined) holes++;
      if (dv.backends.join(' ') !== lv.backends.join(' ') || holes > 0) fields.push('backends');
      if (fields.length) differences.push({ kind: 'different', frontend: frontendName(d.family, d.key), service: d.serviceKey, fields, desired: dv, live: lv });
    }
  }
  return { desiredFrontends: desired.size, liveFrontends: live.size, differences };
}

/** The live frontends of every pinned family and their slots (by slot index; a hole is left undefined). */
export function readLive(o: StateOptions): Map<string, LiveFrontend> {
  pinnedMapNames(o); // no state at all: say so, rather than name a missing map
  const out = new Map<string, LiveFrontend>();
  for (const family of liveFamilies(o)) {
    const slots = withFamilyMap<BackendKey, BackendValue, Map<number, BackendValue[]>>(o, family, 'backends', (entries) => {
      const byId = new Map<number, BackendValue[]>();
      for (const [k, v] of entries) {
        let list = byId.get(k.frontend_id);
        if (!list) byId.set(k.frontend_id, (list = []));
        list[k.slot] = v;
      }
      return byId;
    });
    withFamilyMap<FrontendKey, FrontendValue, void>(o, family, 'frontends', (entries) => {
      for (const [key, value] of entries) out.set(frontendKeyString(family, key), { family, key, value, backends: slots.get(value.id) ?? [] });
    });
  }
  return out;
}

/** The families whose frontend and backend maps are pinned (what the daemon can program). */
export function liveFamilies(o: StateOptions): IpFamily[] {
  const backends = pinnedFamilies(o, 'backends');
  return pinnedFamilies(o, 'frontends').filter((f) => backends.includes(f));
}

/** Where the desired state comes from: the daemon's rule (cli/daemon.ts sourceConfig). */
export type DiffSource = { kind: 'manifests'; dir: string } | { kind: 'kube'; kubeconfig?: string };

/** The kinds the service model reads (ServiceInputs): a one-shot list needs no more. */
const SERVICE_KINDS = ['Service', 'EndpointSlice', 'Node'] as const;

export function diffSource(o: { manifests?: string; kubeconfig?: string }, env: NodeJS.ProcessEnv = process.env): DiffSource {
  if (o.manifests && o.kubeconfig) throw new CliError("--manifests and --kubeconfig exclude each other: choose the daemon's source");
  if (o.manifests) return { kind: 'manifests', dir: o.manifests };
  if (o.kubeconfig) return { kind: 'kube', kubeconfig: o.kubeconfig };
  if (env.KUBERNETES_SERVICE_HOST) return { kind: 'kube' };
  throw new CliError("no source: --manifests DIR or --kubeconfig FILE (the daemon's), or run in the weir pod (its service account)");
}

/** Fills `store` from the source as the daemon's first sync sees it. */
async function readSource(src: DiffSource, store: Store): Promise<void> {
  if (src.kind === 'kube') {
    // loaded here, not with the CLI: @kubernetes/client-node takes ~1 s and ~80 MB to load, and
    // every command (the daemon on manifests too) would pay for it (bench/results/startup.md)
    const [{ loadKubeConfig }, { listOnce }] = await Promise.all([import('../sources/kube-config.js'), import('../sources/kube-list.js')]);
    try {
      await listOnce(loadKubeConfig(src.kubeconfig ? { kubeconfig: src.kubeconfig } : {}), SERVICE_KINDS, store);
    } catch (e) {
      throw new CliError((e as Error).message.split('\n')[0]!);
    }
    return;
  }
  const source = new ManifestsSource({ dir: src.dir, log: silentLogger, rescanIntervalMs: 0 });
  try {
    await source.start((e) => {
      if (e.type !== 'synced') store.apply(e);
    });
  } catch (e) {
    throw new CliError(`--manifests ${src.dir}: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    await source.stop();
  }
}

export interface DesiredOptions {
  source: DiffSource;
  /** the families the node's maps hold (liveFamilies); default both */
  families?: readonly IpFamily[];
  nodeName: string;
  /** as the daemon's --nodeport-addresses / --host-interfaces */
  nodePortAddresses?: string[];
  hostInterfaces?: string[];
  proxyName?: string;
}

/** The entries the daemon's reconciler wants now, computed as it computes them. */
export async function desiredFrontends(o: DesiredOptions): Promise<Map<string, DesiredFrontend>> {
  const store = new Store();
  await readSource(o.source, store);
  const [links, addresses, routes] = await Promise.all([dumpLinks(), dumpAddresses(), dumpRoutes()]);
  const net = computeNodeNetwork(links, addresses, routes, { hostInterfaces: o.hostInterfaces ?? [], nodePortAddresses: o.nodePortAddresses ?? [] });
  // the zone as the daemon reads it (service-sync.ts): from this node's Node manifest, if any
  const zone = nodeZone(store.get('Node', o.nodeName));
  const node: NodeContext = { nodeName: o.nodeName, nodeAddresses: [...net.nodePortAddresses], zone, ...(o.proxyName ? { proxyName: o.proxyName } : {}) };
  const state = buildServiceState(store, node);
  const out = new Map<string, DesiredFrontend>();
  for (const f of state.frontends.values()) {
    const entries = frontendEntries(f);
    if (typeof entries === 'string') continue; // not programmed by the daemon either
    // a family without maps on this node is planned by the daemon but not written
    for (const e of entries) if ((o.families ?? [4, 6]).includes(e.family)) out.set(e.keyString, e);
  }
  return out;
}

function describe(r: DiffResult): string {
  const head = `${r.differences.length} difference${r.differences.length === 1 ? '' : 's'} (desired ${r.desiredFrontends} frontends, live ${r.liveFrontends})`;
  if (r.differences.length === 0) return head;
  const rows = r.differences.map((d) => ({
    kind: d.kind,
    frontend: d.frontend,
    service: d.service ?? '',
    fields: d.fields?.join(',') ?? '',
    desired: d.desired ? `${d.desired.backendCount} [${d.desired.backends.join(' ')}] ${d.desired.flags.join(',') || '-'}` : '',
    live: d.live ? `${d.live.backendCount} [${d.live.backends.join(' ')}] ${d.live.flags.join(',') || '-'}` : '',
  }));
  return `${head}\n${table(rows)}`;
}

interface DiffFlags extends StateOptions {
  manifests?: string;
  kubeconfig?: string;
  nodeName: string;
  nodeportAddresses?: string;
  hostInterfaces?: string;
  proxyName?: string;
  output: OutputFormat;
}

export function registerDiffCommand(program: Command): void {
  stateOptions(program.command('diff'))
    .description(
      `desired service state (from the daemon's source: manifests, or the API server listed once) against the live maps; ` +
        `exit 0 when they agree, ${EXIT_DIFFERENCES} when they differ (run it in the node's network namespace, with the daemon's flags)`,
    )
    .option('--manifests <dir>', "the daemon's manifests directory")
    .option('--kubeconfig <file>', "the daemon's kubeconfig (default without --manifests, in a pod: its service account)")
    // in the DaemonSet the pod has NODE_NAME (deploy/weir.yaml), so `kubectl exec ds/weir -- weir diff` needs no flag
    .requiredOption(
      '--node-name <name>',
      "the daemon's --node-name (default: $WEIR_NODE_NAME, else $NODE_NAME)",
      process.env.WEIR_NODE_NAME ?? process.env.NODE_NAME,
    )
    .option('--nodeport-addresses <cidrs>', "the daemon's --nodeport-addresses")
    .option('--host-interfaces <list>', "the daemon's --host-interfaces")
    .option('--proxy-name <name>', "the daemon's --proxy-name")
    .addOption(outputOption())
    .action(async (o: DiffFlags) => {
      const source = diffSource(o);
      const live = readLive(o);
      const desired = await desiredFrontends({
        source,
        families: liveFamilies(o),
        nodeName: o.nodeName,
        nodePortAddresses: parseList(o.nodeportAddresses),
        hostInterfaces: parseList(o.hostInterfaces),
        ...(o.proxyName ? { proxyName: o.proxyName } : {}),
      });
      const r = diffFrontends(desired, live);
      process.stdout.write(render(o.output, r, () => describe(r)) + '\n');
      if (r.differences.length) process.exitCode = EXIT_DIFFERENCES;
    });
}
