// sources/kube-list: a one-shot, paged list of some kinds from the API server into a Store,
// with no watch: what `weir diff` compares the maps with. The same typed list calls as the
// daemon's informers (kube-resources.ts listCall), so both see the same objects.

import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { listCall, WATCHED_RESOURCES } from './kube-resources.js';
import { errorLine, errorStatus, withTimeout } from './kube-retry.js';
import type { Store } from './store.js';
import { invalidObject } from './validate.js';
import { API_VERSIONS, keyOf, type ObjectEvent, type ObjectKind } from './types.js';

export interface ListOnceOptions {
  /** items per page, as the informers ask (default 500) */
  pageSize?: number;
  /** per page (default 30 s) */
  timeoutMs?: number;
  /** told of each object left out as invalid (sources/validate.ts) */
  onInvalid?: (detail: string) => void;
}

/** Lists `kinds` once, every page, into `store`; returns the objects per kind. A failure is one line naming the kind. */
export async function listOnce(kc: KubeConfig, kinds: readonly ObjectKind[], store: Store, o: ListOnceOptions = {}): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const kind of kinds) {
    const list = listCall(kc, kind);
    let cont: string | undefined;
    let n = 0;
    do {
      let page;
      try {
        page = await withTimeout(list({ limit: o.pageSize ?? 500, ...(cont ? { _continue: cont } : {}) }), o.timeoutMs ?? 30_000, `list ${kind}`);
      } catch (e) {
        // a custom resource whose CRD is not installed holds nothing (kube.ts does the same)
        if (errorStatus(e) === 404 && WATCHED_RESOURCES.find((r) => r.kind === kind)?.mayBeAbsent) break;
        throw new Error(`listing ${kind} from the API server: ${errorLine(e)}`, { cause: e });
      }
      for (const obj of page.items ?? []) {
        const object = normalized(kind, obj);
        const key = keyOf(kind, object.metadata);
        const invalid = invalidObject(kind, key, object as never);
        if (invalid) {
          o.onInvalid?.(invalid.detail);
          continue;
        }
        store.apply({ type: 'upsert', kind, key, object, origin: 'api', observedAt: Date.now() } as ObjectEvent);
        n++;
      }
      cont = page.metadata?._continue || undefined;
    } while (cont !== undefined);
    counts[kind] = n;
  }
  return counts;
}

/** List items lack kind and apiVersion; the model and the manifests source have them. */
function normalized(kind: ObjectKind, o: KubernetesObject): KubernetesObject {
  o.kind ??= kind;
  o.apiVersion ??= API_VERSIONS[kind];
  return o;
}
