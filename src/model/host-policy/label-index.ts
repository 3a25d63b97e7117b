// model/host-policy/label-index: an inverted index from labels to the label sets holding them, so
// that resolving a rule selector over every pod group of the cluster tests only the groups that
// can match (`app == 'web' && ...` looks at the app=web groups, not at all of them).

import type { Labels, SelectorNode } from './selector.js';

export class LabelIndex {
  /** key -> value -> ids (ascending) of the label sets with that label */
  private readonly byValue = new Map<string, Map<string, number[]>>();
  /** key -> ids of the label sets that have the key */
  private readonly byKey = new Map<string, number[]>();

  constructor(labelSets: readonly Labels[]) {
    labelSets.forEach((labels, id) => {
      for (const [k, v] of Object.entries(labels)) {
        let values = this.byValue.get(k);
        if (!values) this.byValue.set(k, (values = new Map()));
        const list = values.get(v);
        if (list) list.push(id);
        else values.set(v, [id]);
        const keyed = this.byKey.get(k);
        if (keyed) keyed.push(id);
        else this.byKey.set(k, [id]);
      }
    });
  }

  /**
   * Ascending ids of the label sets that may match `n` (a superset: the caller still tests each),
   * or undefined when the expression can match sets without any given label (`!`, `!=`, `all()`).
   */
  candidates(n: SelectorNode): readonly number[] | undefined {
    switch (n.op) {
      case '==':
        return this.byValue.get(n.key)?.get(n.value) ?? [];
      case 'in':
        return union([...n.values].map((v) => this.byValue.get(n.key)?.get(v) ?? []));
      case 'has':
      case 'contains':
      case 'starts with':
      case 'ends with':
        return this.byKey.get(n.key) ?? [];
      case '&&': {
        let best: readonly number[] | undefined;
        for (const a of n.args) {
          const c = this.candidates(a);
          if (c !== undefined && (best === undefined || c.length < best.length)) best = c;
        }
        return best;
      }
      case '||': {
        const lists: (readonly number[])[] = [];
        for (const a of n.args) {
          const c = this.candidates(a);
          if (c === undefined) return undefined;
          lists.push(c);
        }
        return union(lists);
      }
      default:
        return undefined;
    }
  }
}

function union(lists: readonly (readonly number[])[]): readonly number[] {
  if (lists.length === 1) return lists[0]!;
  const s = new Set<number>();
  for (const l of lists) for (const x of l) s.add(x);
  return [...s].sort((a, b) => a - b);
}
