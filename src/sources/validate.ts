// sources/validate: the check every source runs on an object before the store may keep it
// (model/validate-object.ts: Kubernetes' limits), as the reason label both sources count under
// weir_source_errors_total and one readable detail for the log line.

import { clip } from '../model/k8s-names.js';
import { describeProblems, validateObject } from '../model/validate-object.js';
import { calicoProblems } from './validate-calico.js';
import type { KindMap, ObjectKind } from './types.js';

export type InvalidReason = 'invalid-service' | 'invalid-endpointslice' | 'invalid-object';

export interface Invalid {
  reason: InvalidReason;
  /** `<kind>/<key>: <field>: <problem>; …`, the key clipped (a hostile name is not logged whole) */
  detail: string;
}

/** Why `obj` (keyed `key`) must not be kept, or null when it may. */
export function invalidObject<K extends ObjectKind>(kind: K, key: string, obj: KindMap[K]): Invalid | null {
  const problems = kind === 'GlobalNetworkPolicy' || kind === 'HostEndpoint' ? calicoProblems(kind, obj) : validateObject(kind, obj);
  if (problems.length === 0) return null;
  const reason: InvalidReason = kind === 'Service' ? 'invalid-service' : kind === 'EndpointSlice' ? 'invalid-endpointslice' : 'invalid-object';
  return { reason, detail: `${kind}/${clip(key, 160)}: ${describeProblems(problems)}` };
}
