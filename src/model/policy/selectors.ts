// model/policy/selectors: Kubernetes LabelSelectors (matchLabels + matchExpressions) compiled once
// and matched against label sets, with apimachinery's semantics (metav1.LabelSelectorAsSelector):
// a null selector matches nothing, an empty one everything, NotIn and DoesNotExist match objects
// that lack the key. An invalid selector is reported and matches nothing (fail closed).

export type Labels = Readonly<Record<string, string>>;

/** One requirement, already validated. `values` is a Set for In/NotIn, empty otherwise. */
export interface Requirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: ReadonlySet<string>;
}

/**
 * A compiled selector. `nothing` for a null selector or an invalid one; `everything` for `{}`;
 * otherwise the AND of `requirements` (matchLabels become `In` with one value).
 */
export type Selector = { kind: 'nothing' } | { kind: 'everything' } | { kind: 'requirements'; requirements: readonly Requirement[] };

export const NOTHING: Selector = { kind: 'nothing' };
export const EVERYTHING: Selector = { kind: 'everything' };

/** Why a selector was rejected (the API server would have refused the object). */
export interface SelectorProblem {
  field: string;
  reason: string;
}

const OPERATORS: ReadonlySet<string> = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** apimachinery's IsQualifiedName: `[prefix/]name`, prefix a DNS subdomain (≤253), name ≤63. */
export function isLabelKey(k: string): boolean {
  const slash = k.indexOf('/');
  if (slash === -1) return NAME.test(k);
  const prefix = k.slice(0, slash);
  return prefix.length > 0 && prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix) && NAME.test(k.slice(slash + 1));
}

/** apimachinery's IsValidLabelValue: empty, or a name of ≤63 characters. */
export function isLabelValue(v: string): boolean {
  return v === '' || NAME.test(v);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Compile a LabelSelector. `selector` null/undefined → nothing (the caller decides whether an
 * absent field means "nothing" or "everything": NetworkPolicy's `spec.podSelector` is required
 * and an absent one is the empty selector, a peer's absent `podSelector` is not a selector at all).
 * Never throws: an unknown operator, In/NotIn without values, Exists/DoesNotExist with values,
 * a non-string label value, an empty key → problems, and the selector matches nothing.
 */
export function compileSelector(selector: unknown, field: string): { selector: Selector; problems: SelectorProblem[] } {
  if (selector === null || selector === undefined) return { selector: NOTHING, problems: [] };
  if (!isPlainObject(selector)) return { selector: NOTHING, problems: [{ field, reason: 'not an object' }] };
  const problems: SelectorProblem[] = [];
  const requirements: Requirement[] = [];
  const ml = selector.matchLabels;
  if (ml !== undefined && ml !== null) {
    if (!isPlainObject(ml)) problems.push({ field: `${field}.matchLabels`, reason: 'not a map' });
    else
      for (const [k, v] of Object.entries(ml)) {
        if (!isLabelKey(k)) problems.push({ field: `${field}.matchLabels`, reason: `invalid label key ${JSON.stringify(k)}` });
        else if (typeof v !== 'string' || !isLabelValue(v))
          problems.push({ field: `${field}.matchLabels[${k}]`, reason: `invalid label value ${JSON.stringify(v)}` });
        else requirements.push({ key: k, operator: 'In', values: new Set([v]) });
      }
  }
  const me = selector.matchExpressions;
  if (me !== undefined && me !== null) {
    if (!Array.isArray(me)) problems.push({ field: `${field}.matchExpressions`, reason: 'not a list' });
    else
      me.forEach((e: unknown, i) => {
        const f = `${field}.matchExpressions[${i}]`;
        if (!isPlainObject(e)) return void problems.push({ field: f, reason: 'not an object' });
        const { key, operator } = e;
        const values = e.values ?? [];
        if (typeof key !== 'string' || !isLabelKey(key)) return void problems.push({ field: `${f}.key`, reason: `invalid label key ${JSON.stringify(key)}` });
        if (typeof operator !== 'string' || !OPERATORS.has(operator))
          return void problems.push({ field: `${f}.operator`, reason: `unknown operator ${JSON.stringify(operator)}` });
        if (!Array.isArray(values) || values.some((v) => typeof v !== 'string' || !isLabelValue(v)))
          return void problems.push({ field: `${f}.values`, reason: 'not a list of label values' });
        const set = operator === 'In' || operator === 'NotIn';
        if (set && values.length === 0) return void problems.push({ field: `${f}.values`, reason: `${operator} needs at least one value` });
        if (!set && values.length > 0) return void problems.push({ field: `${f}.values`, reason: `${operator} takes no values` });
        requirements.push({ key, operator: operator as Requirement['operator'], values: new Set(values as string[]) });
      });
  }
  if (problems.length > 0) return { selector: NOTHING, problems };
  if (requirements.length === 0) return { selector: EVERYTHING, problems };
  return { selector: { kind: 'requirements', requirements }, problems };
}

function has(labels: Labels, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(labels, key);
}

export function requirementMatches(r: Requirement, labels: Labels): boolean {
  const present = has(labels, r.key);
  switch (r.operator) {
    case 'In':
      return present && r.values.has(labels[r.key]!);
    case 'NotIn':
      return !present || !r.values.has(labels[r.key]!);
    case 'Exists':
      return present;
    case 'DoesNotExist':
      return !present;
  }
}

export function selectorMatches(s: Selector, labels: Labels): boolean {
  if (s.kind === 'nothing') return false;
  if (s.kind === 'everything') return true;
  for (const r of s.requirements) if (!requirementMatches(r, labels)) return false;
  return true;
}

/** The selector as kubectl prints it (`app=web,tier notin (db),!legacy`), for `weir policy` and logs. */
export function formatSelector(s: Selector): string {
  if (s.kind === 'nothing') return '<none>';
  if (s.kind === 'everything') return '<all>';
  return s.requirements
    .map((r) => {
      const vs = [...r.values].sort().join(',');
      if (r.operator === 'In') return r.values.size === 1 ? `${r.key}=${vs}` : `${r.key} in (${vs})`;
      if (r.operator === 'NotIn') return `${r.key} notin (${vs})`;
      return r.operator === 'Exists' ? r.key : `!${r.key}`;
    })
    .join(',');
}
