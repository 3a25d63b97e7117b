// model/k8s-names: Kubernetes' limits on names, label keys and values and annotation size
// (k8s.io/apimachinery/pkg/util/validation and .../api/validation), as pure checks. The API server
// enforces them on every write; weir checks them again at its sources so that a manifest, a fake
// API server or a bug cannot hand the model a 200,000-character name (issue 16, break 7).

/** A lower-case RFC 1123 label: at most 63 characters (namespaces, Service port names). */
export const DNS1123_LABEL_MAX = 63;
/** A lower-case RFC 1123 subdomain: at most 253 characters (most object names, label key prefixes). */
export const DNS1123_SUBDOMAIN_MAX = 253;
/** A label value or the name part of a label key. */
export const LABEL_VALUE_MAX = 63;
/** All annotations of an object together, keys and values (TotalAnnotationSizeLimitB). */
export const ANNOTATIONS_MAX_BYTES = 256 * 1024;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** What is wrong with `v`, or null when it is fine. Each check tests the length before the pattern. */
export type NameCheck = (v: unknown) => string | null;

const tooLong = (v: string, max: number) => `${v.length} characters, more than ${max}`;

export const dns1123Label: NameCheck = (v) => {
  if (typeof v !== 'string') return 'not a string';
  if (v.length > DNS1123_LABEL_MAX) return tooLong(v, DNS1123_LABEL_MAX);
  return DNS1123_LABEL.test(v) ? null : `${JSON.stringify(v)} is not a DNS-1123 label (lower case alphanumerics and '-')`;
};

export const dns1123Subdomain: NameCheck = (v) => {
  if (typeof v !== 'string') return 'not a string';
  if (v.length > DNS1123_SUBDOMAIN_MAX) return tooLong(v, DNS1123_SUBDOMAIN_MAX);
  return DNS1123_SUBDOMAIN.test(v) ? null : `${JSON.stringify(v)} is not a DNS-1123 subdomain (lower case alphanumerics, '-' and '.')`;
};

/** Service names: a DNS-1035 label (starts with a letter), as the API server requires. */
export const dns1035Label: NameCheck = (v) => {
  if (typeof v !== 'string') return 'not a string';
  if (v.length > DNS1123_LABEL_MAX) return tooLong(v, DNS1123_LABEL_MAX);
  return DNS1035_LABEL.test(v) ? null : `${JSON.stringify(v)} is not a DNS-1035 label (a lower case letter, then alphanumerics and '-')`;
};

/** A label key (or annotation key): an optional DNS-1123 subdomain prefix and '/', then a name of at most 63. */
export const qualifiedName: NameCheck = (v) => {
  if (typeof v !== 'string') return 'not a string';
  if (v.length > DNS1123_SUBDOMAIN_MAX + 1 + LABEL_VALUE_MAX) return tooLong(v, DNS1123_SUBDOMAIN_MAX + 1 + LABEL_VALUE_MAX);
  const slash = v.indexOf('/');
  const name = slash < 0 ? v : v.slice(slash + 1);
  if (slash >= 0) {
    const p = dns1123Subdomain(v.slice(0, slash));
    if (p !== null) return `prefix: ${p}`;
  }
  if (name.length > LABEL_VALUE_MAX) return `name part: ${tooLong(name, LABEL_VALUE_MAX)}`;
  return QUALIFIED_NAME_PART.test(name) ? null : `${JSON.stringify(clip(v))} is not a qualified name`;
};

export const labelValue: NameCheck = (v) => {
  if (typeof v !== 'string') return 'not a string';
  if (v.length > LABEL_VALUE_MAX) return tooLong(v, LABEL_VALUE_MAX);
  return v === '' || QUALIFIED_NAME_PART.test(v) ? null : `${JSON.stringify(v)} is not a valid label value`;
};

/** Problems of a label map (keys and values), at most `limit` of them so that the detail stays one line. */
export function labelProblems(labels: unknown, limit = 3): string[] {
  if (labels === undefined || labels === null) return [];
  if (typeof labels !== 'object' || Array.isArray(labels)) return ['not a map'];
  const out: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const pk = qualifiedName(k);
    if (pk !== null) out.push(`key ${JSON.stringify(clip(k))}: ${pk}`);
    const pv = labelValue(v);
    if (pv !== null) out.push(`${JSON.stringify(clip(k))}: ${pv}`);
    if (out.length >= limit) break;
  }
  return out;
}

/** Problems of an annotation map: keys qualified names, values strings, total size bounded. */
export function annotationProblems(annotations: unknown): string[] {
  if (annotations === undefined || annotations === null) return [];
  if (typeof annotations !== 'object' || Array.isArray(annotations)) return ['not a map'];
  let size = 0;
  for (const [k, v] of Object.entries(annotations)) {
    const pk = qualifiedName(k);
    if (pk !== null) return [`key ${JSON.stringify(clip(k))}: ${pk}`];
    if (typeof v !== 'string') return [`${JSON.stringify(clip(k))}: not a string`];
    size += k.length + v.length;
    if (size > ANNOTATIONS_MAX_BYTES) return [`more than ${ANNOTATIONS_MAX_BYTES} characters in all`];
  }
  return [];
}

/** A value cut for a log line: a 200,000-character name is named by its start and its length. */
export function clip(v: string, max = 80): string {
  return v.length <= max ? v : `${v.slice(0, max)}…(${v.length} chars)`;
}

/** A value for a problem's text: strings quoted and clipped, other scalars as JSON, a list or
 *  mapping by its type (a hostile value is never serialized whole). */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(clip(v));
  if (v === undefined) return 'undefined';
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  return Array.isArray(v) ? `a list of ${v.length}` : 'a mapping';
}
