// daemon/map-writes: counts what the reconciler does to each service map, from the outside.
// The reconciler gets typed map views wrapped here: every successful write or delete is
// counted per map and operation, every refused single-entry write per map and errno name
// (weir_map_writes_total, weir_map_write_failures_total), and the last refusal is kept for
// /healthz. A failed batch is not a failure by itself: the reconciler retries it entry by
// entry, and those single writes are what count.

import type { TypedMap } from '../bpf/index.js';
import type { ServiceMaps } from '../dataplane/loader.js';
import { errText } from '../log.js';

export interface MapWriteSink {
  written(map: string, op: 'update' | 'delete', n: number): void;
  failed(map: string, op: 'update' | 'delete', code: string, message: string): void;
}

function codeOf(e: unknown): string {
  const c = (e as { code?: unknown })?.code;
  return typeof c === 'string' && c ? c : 'unknown';
}

/** A view of `m` whose set/setMany/delete/deleteMany report to `sink`; the rest untouched. */
export function countingMap<K, V>(m: TypedMap<K, V>, sink: MapWriteSink): TypedMap<K, V> {
  const name = m.map.name;
  return new Proxy(m, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      const f = v as (...a: unknown[]) => unknown;
      switch (prop) {
        case 'set':
        case 'delete':
          return (...a: unknown[]) => {
            const op = prop === 'set' ? 'update' : 'delete';
            try {
              const r = f.apply(target, a);
              // delete of an absent key (false) wrote nothing
              if (r !== false) sink.written(name, op, 1);
              return r;
            } catch (e) {
              sink.failed(name, op, codeOf(e), errText(e));
              throw e;
            }
          };
        case 'setMany':
        case 'deleteMany':
          return (...a: unknown[]) => {
            const r = f.apply(target, a) as number;
            sink.written(name, prop === 'setMany' ? 'update' : 'delete', r);
            return r;
          };
        default:
          return f.bind(target);
      }
    },
  });
}

/** The frontend and backend maps of each family counted (the ones the reconciler plans writes for). */
export function countingServiceMaps(maps: ServiceMaps, sink: MapWriteSink): ServiceMaps {
  const v6 = maps.ipv6;
  return {
    ...maps,
    frontends: countingMap(maps.frontends, sink),
    backends: countingMap(maps.backends, sink),
    ...(v6 ? { ipv6: { ...v6, frontends: countingMap(v6.frontends, sink), backends: countingMap(v6.backends, sink) } } : {}),
  };
}
