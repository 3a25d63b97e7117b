// test/lib/frontend-fixtures: model Frontends in bulk, for the reconciler on real maps (tests
// and bench/adopt.ts): ClusterIPs in 198.19.0.0/16 (port 80, +1 per 65,536), endpoints in
// 198.18.128.0/17. Built directly, without Services and EndpointSlices: the model is not what
// these measure.

import type { Backend, Frontend } from '../../src/model/service-types.js';

/** Frontend `i` of a bulk set, with `m` backends (`offset` shifts which endpoints it gets). */
export function bulkFrontend(i: number, m: number, offset = 0): Frontend {
  const backends: Backend[] = Array.from({ length: m }, (_, j) => {
    const b = (i * m + j + offset) % 32_000;
    return {
      address: `198.18.${128 + (b >> 8)}.${b & 255}`,
      port: 8000 + j,
      nodeName: '',
      isLocal: false,
      ready: true,
      serving: true,
      terminating: false,
      zone: '',
    };
  });
  const address = `198.19.${(i >> 8) & 255}.${i & 255}`;
  const port = 80 + (i >> 16);
  return {
    id: `${address}:${port}/TCP`,
    serviceKey: `default/svc-${i}`,
    portName: 'http',
    servicePortKey: `default/svc-${i}:http/TCP`,
    kind: 'ClusterIP',
    family: 4,
    address,
    port,
    protocol: 'TCP',
    backends,
    inClusterBackends: backends,
    establishedOnly: [],
    localOnly: false,
    reject: false,
    affinity: null,
    sourceRanges: null,
    lbAlgorithm: null,
  };
}

/** Frontends 0..n-1 with `m` backends each. */
export function bulkFrontends(n: number, m: number): Frontend[] {
  return Array.from({ length: n }, (_, i) => bulkFrontend(i, m));
}
