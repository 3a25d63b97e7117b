// bench/memory-heap: where the daemon's JS heap goes, step by step, in a process of its own (run
// by bench/memory.ts inside the lab node, with --expose-gc): the API source and the store
// synced, then the service model, then the policy model, each followed by a full GC and
// process.memoryUsage(). Prints one JSON line.
//
//   node --expose-gc dist/bench/memory-heap.js <kubeconfig> [list page size]

import { readFileSync } from 'node:fs';
import { KubeSource, loadKubeConfig } from '../src/sources/kube.js';
import { memoryLogger } from '../src/log.js';
import { Store } from '../src/sources/store.js';
import { buildServiceState } from '../src/model/services.js';
import { buildPolicyModel } from '../src/model/policy/network-policy.js';
import { buildNodeTable } from '../src/model/nodes.js';
import type { ObjectEvent } from '../src/sources/types.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

function usage(): { heapUsedMiB: number; externalMiB: number; rssMiB: number } {
  gc!();
  gc!();
  const m = process.memoryUsage();
  const mib = (x: number) => Math.round((10 * x) / 2 ** 20) / 10;
  return { heapUsedMiB: mib(m.heapUsed), externalMiB: mib(m.external + m.arrayBuffers), rssMiB: mib(m.rss) };
}

/** RSS and its peak as the process has them (no GC forced first). */
function natural(): { rssMiB: number; hwmMiB: number } {
  const text = readFileSync('/proc/self/status', 'utf8');
  const kb = (f: string) => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMiB: Math.round(kb('VmRSS') / 1024), hwmMiB: Math.round(kb('VmHWM') / 1024) };
}

const pageSize = process.argv[3] ? Number(process.argv[3]) : undefined;
const before = usage();
const store = new Store();
const source = new KubeSource({ kubeConfig: loadKubeConfig({ kubeconfig: process.argv[2]! }), log: memoryLogger(), ...(pageSize ? { pageSize } : {}) });
const t0 = performance.now();
await source.start((e) => {
  if (e.type !== 'synced') store.apply(e as ObjectEvent);
});
const syncMs = Math.round(performance.now() - t0);
const atSynced = natural();
const synced = usage();
const services = buildServiceState(store, { nodeName: 'node1', nodeAddresses: [] });
const withServices = usage();
const policy = buildPolicyModel({
  policies: store.map('NetworkPolicy').values(),
  pods: store.map('Pod').values(),
  namespaces: store.map('Namespace').values(),
  nodes: buildNodeTable(store.nodes.values()).nodes.values(),
  localNode: 'node1',
});
const withPolicy = usage();
await source.stop();
console.log(
  JSON.stringify({
    syncMs,
    pageSize: pageSize ?? 500,
    atSynced,
    objects: Object.fromEntries(['Pod', 'Service', 'EndpointSlice', 'Node', 'Namespace', 'NetworkPolicy'].map((k) => [k, store.size(k as never)])),
    before,
    synced,
    withServices,
    withPolicy,
    frontends: services.frontends.size,
    identities: policy.podIdentities.size,
  }),
);
process.exit(0);
