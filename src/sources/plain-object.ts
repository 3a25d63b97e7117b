// sources/plain-object: the one change both sources make to an object as parsed from JSON or
// YAML before the store keeps it: metadata timestamps as Dates, the shape client-node's typed
// objects have there. Neither source runs objects through client-node's ObjectSerializer (~40 µs
// per EndpointSlice of 10 endpoints, and it renames fields: a NetworkPolicy rule's `from` becomes
// `_from`), so the manifests and the API source store the same plain objects, under their JSON names.

const TIMESTAMPS = ['creationTimestamp', 'deletionTimestamp'] as const;

/** The object, its metadata timestamps turned into Dates in place; anything else as it is. */
export function withDates<T>(value: T): T {
  if (!isRecord(value) || !isRecord(value.metadata)) return value;
  const meta = value.metadata;
  for (const f of TIMESTAMPS) if (typeof meta[f] === 'string') meta[f] = new Date(meta[f]);
  return value;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
