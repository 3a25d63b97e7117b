// dataplane/frontend-entries: the entries stage. Model Frontends -> the entries of the
// frontend and backend maps (weir_frontend4 / weir_backend4, weir_frontend6 / weir_backend6:
// the same entries, by family). Pure: no kernel, no clock. frontend-plan.ts diffs them against
// what the maps hold (docs/architecture.md).
//
// One model Frontend becomes one or two map entries (docs/dataplane.md):
//   - INTERNAL: every frontend. ClusterIP: `backends` (iTP already applied by the model).
//     External kinds (NodePort, ExternalIP, LoadBalancer): `inClusterBackends`, the set for
//     pods and the node itself, which from_pod and the socket LB use.
//   - EXTERNAL: external kinds with `localOnly` (eTP=Local): `backends`, the node-local set
//     from_host tries first.
// Each entry has its own frontend id, since backend slots are keyed by it.

import { enums, type WeirBackend4, type WeirBackend4Key, type WeirFrontend4, type WeirFrontend4Key } from '../bpf/index.js';
import { canonicalIp, IPPROTO, type IpFamily } from '../bpf/ip.js';
import type { Backend, Frontend, LbAlgorithm } from '../model/service-types.js';

const FF = enums.weir_frontend_flags;
const BF = enums.weir_backend_flags;
export const SCOPE = { INTERNAL: enums.weir_frontend_scope.WEIR_SCOPE_INTERNAL, EXTERNAL: enums.weir_frontend_scope.WEIR_SCOPE_EXTERNAL } as const;

// The entries have the same shape in both families: addresses are text, which the map's
// codec turns into a weir_ip4 or a weir_ip6. Which maps an entry goes to is its `family`.
export type FrontendKey = WeirFrontend4Key;
export type FrontendValue = WeirFrontend4;
export type BackendKey = WeirBackend4Key;
export type BackendValue = WeirBackend4;

/** One desired frontend map entry and its backend slots. */
export interface DesiredFrontend {
  /** which family's maps hold it */
  family: IpFamily;
  key: FrontendKey;
  /** frontendKeyString(family, key) */
  keyString: string;
  /** the model Frontend.id it came from */
  modelId: string;
  serviceKey: string;
  flags: number;
  affinityTimeout: number;
  /** slot candidates in the model's order (unique by address:port) */
  backends: BackendValue[];
  /** loadBalancerSourceRanges (canonical CIDRs of this family): the frontend has the
   *  SOURCE_RANGES flag and weir_lb_src4/6 holds these prefixes under its id; null: no ranges */
  sourceRanges: readonly string[] | null;
  /** address:port of every endpoint the frontend still knows (new-flow sets and
   *  establishedOnly): a backend outside this set is gone, and its flows are cleaned up */
  known: ReadonlySet<string>;
}

/** `198.19.0.10:80`, `[2001:2::10]:80`: an endpoint as logs, metrics and the CLI print it. */
export function addressPort(family: IpFamily, address: string, port: number): string {
  return family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The one name of a frontend entry, unique across families: `address:port/protocol/scope`. */
export function frontendKeyString(family: IpFamily, k: FrontendKey): string {
  return `${addressPort(family, k.address, k.port)}/${k.protocol}/${k.scope}`;
}

/** A backend within one frontend (address text is canonical, so this is unique per family). */
export function backendIdentity(b: { address: string; port: number }): string {
  return `${b.address}:${b.port}`;
}

function backendValue(b: Backend, address: string): BackendValue {
  return {
    address,
    port: b.port,
    flags: (b.isLocal ? BF.WEIR_BACKEND_LOCAL : 0) | (b.terminating ? BF.WEIR_BACKEND_TERMINATING : 0),
    pad: 0,
  };
}

/** Unique by address:port, in order; an address not of `family` or a port out of range is dropped. */
function usableBackends(list: readonly Backend[], family: IpFamily): BackendValue[] {
  const seen = new Set<string>();
  const out: BackendValue[] = [];
  for (const b of list) {
    const address = canonicalIp(b.address, family);
    if (address === null || !(b.port >= 0 && b.port <= 65535)) continue;
    const id = backendIdentity({ address, port: b.port });
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(backendValue(b, address));
  }
  return out;
}

/** Why a model Frontend got no map entries. `ipv6`: its family has no maps (pins of a release
 *  before them, or a fake without them: the reconciler's skip). */
export type SkipReason = 'ipv6' | 'protocol' | 'bad_address' | 'bad_port';

/**
 * The map entries for one model Frontend, of either family, or the reason it has none.
 * `defaultAlgorithm` (--lb-algorithm) applies where the service has no annotation. Maglev
 * is for the external kinds only: in-cluster clients go through the ClusterIP (and the
 * socket LB), where no router spreads one client's flows over several nodes.
 */
export function frontendEntries(f: Frontend, defaultAlgorithm: LbAlgorithm = 'random'): DesiredFrontend[] | SkipReason {
  const protocol: number | undefined = IPPROTO[f.protocol];
  if (protocol === undefined) return 'protocol';
  const address = canonicalIp(f.address, f.family);
  if (address === null) return 'bad_address';
  if (!Number.isInteger(f.port) || f.port <= 0 || f.port > 65535) return 'bad_port';
  let kindFlag = 0;
  if (f.kind === 'NodePort') kindFlag = FF.WEIR_FRONTEND_NODEPORT;
  else if (f.kind === 'ExternalIP') kindFlag = FF.WEIR_FRONTEND_EXTERNAL_IP;
  else if (f.kind === 'LoadBalancer') kindFlag = FF.WEIR_FRONTEND_LOADBALANCER;
  const affinityFlag = f.affinity ? FF.WEIR_FRONTEND_AFFINITY : 0;
  // the model gives LoadBalancer frontends their family's ranges, null when unrestricted
  const sourceRanges = f.kind === 'LoadBalancer' && f.sourceRanges && f.sourceRanges.length > 0 ? f.sourceRanges : null;
  const rangesFlag = sourceRanges ? FF.WEIR_FRONTEND_SOURCE_RANGES : 0;
  const maglevFlag = f.kind !== 'ClusterIP' && (f.lbAlgorithm ?? defaultAlgorithm) === 'maglev' ? FF.WEIR_FRONTEND_MAGLEV : 0;
  const affinityTimeout = f.affinity ? f.affinity.timeoutSeconds >>> 0 : 0;
  const known = new Set<string>();
  for (const b of [...f.backends, ...f.inClusterBackends, ...f.establishedOnly]) known.add(backendIdentity(b));

  const entry = (scope: number, list: readonly Backend[]): DesiredFrontend => {
    const backends = usableBackends(list, f.family);
    // no backend: REJECT when the service port has no usable endpoint anywhere, else
    // DROP (Local policy without a local endpoint), as kube-proxy does
    const verdict = f.reject ? FF.WEIR_FRONTEND_REJECT : backends.length === 0 ? FF.WEIR_FRONTEND_DROP : 0;
    const key: FrontendKey = { address, port: f.port, protocol, scope };
    return {
      family: f.family,
      key,
      keyString: frontendKeyString(f.family, key),
      modelId: f.id,
      serviceKey: f.serviceKey,
      flags: kindFlag | affinityFlag | maglevFlag | rangesFlag | verdict,
      affinityTimeout,
      sourceRanges,
      backends: f.reject ? [] : backends,
      known,
    };
  };
  if (f.kind === 'ClusterIP') return [entry(SCOPE.INTERNAL, f.backends)];
  const out = [entry(SCOPE.INTERNAL, f.inClusterBackends)];
  if (f.localOnly) out.push(entry(SCOPE.EXTERNAL, f.backends));
  return out;
}
