// LabelSelector semantics (model/policy/selectors.ts) against apimachinery's: every operator on a
// label set that has the key with a matching value, with another value, and without the key;
// null vs empty selectors; invalid selectors rejected and matching nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSelector, formatSelector, selectorMatches } from '../../src/model/policy/selectors.js';

const HAS = { app: 'web', tier: 'front' };
const OTHER = { app: 'db' };
const LACKS = { tier: 'front' };

// [selector, matches HAS, matches OTHER, matches LACKS] — apimachinery labels.Requirement.Matches
const TABLE: [string, object, boolean, boolean, boolean][] = [
  ['matchLabels', { matchLabels: { app: 'web' } }, true, false, false],
  ['In', { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] }, true, false, false],
  ['NotIn matches objects lacking the key', { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] }, false, true, true],
  ['Exists', { matchExpressions: [{ key: 'app', operator: 'Exists' }] }, true, true, false],
  ['DoesNotExist matches objects lacking the key', { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false, false, true],
  ['empty selector {} matches everything', {}, true, true, true],
  ['empty matchLabels and matchExpressions match everything', { matchLabels: {}, matchExpressions: [] }, true, true, true],
  ['requirements are ANDed', { matchLabels: { tier: 'front' }, matchExpressions: [{ key: 'app', operator: 'Exists' }] }, true, false, false],
  ['matchLabels with two keys', { matchLabels: { app: 'web', tier: 'front' } }, true, false, false],
];

for (const [name, sel, a, b, c] of TABLE) {
  test(`selector: ${name}`, () => {
    const { selector, problems } = compileSelector(sel, 'sel');
    assert.deepEqual(problems, []);
    assert.deepEqual([selectorMatches(selector, HAS), selectorMatches(selector, OTHER), selectorMatches(selector, LACKS)], [a, b, c]);
  });
}

test('selector: null/absent compiles to nothing (the caller gives absent fields their meaning)', () => {
  for (const s of [null, undefined]) {
    const { selector, problems } = compileSelector(s, 'sel');
    assert.deepEqual(problems, []);
    assert.equal(selectorMatches(selector, HAS), false);
    assert.equal(selectorMatches(selector, {}), false);
  }
});

const INVALID: [string, unknown, string][] = [
  ['unknown operator', { matchExpressions: [{ key: 'app', operator: 'Equals', values: ['web'] }] }, 'sel.matchExpressions[0].operator'],
  ['In with empty values', { matchExpressions: [{ key: 'app', operator: 'In', values: [] }] }, 'sel.matchExpressions[0].values'],
  ['NotIn without values', { matchExpressions: [{ key: 'app', operator: 'NotIn' }] }, 'sel.matchExpressions[0].values'],
  ['Exists with values', { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['x'] }] }, 'sel.matchExpressions[0].values'],
  ['empty key', { matchExpressions: [{ key: '', operator: 'Exists' }] }, 'sel.matchExpressions[0].key'],
  ['non-string matchLabels value', { matchLabels: { app: 7 } }, 'sel.matchLabels[app]'],
  ['not an object', 'app=web', 'sel'],
  ['key with a space', { matchLabels: { 'my app': 'web' } }, 'sel.matchLabels'],
  ['key with an empty prefix', { matchExpressions: [{ key: '/app', operator: 'Exists' }] }, 'sel.matchExpressions[0].key'],
  ['value longer than 63', { matchLabels: { app: 'a'.repeat(64) } }, 'sel.matchLabels[app]'],
  ['In value that is no label value', { matchExpressions: [{ key: 'app', operator: 'In', values: ['-web'] }] }, 'sel.matchExpressions[0].values'],
];

for (const [name, sel, field] of INVALID) {
  test(`selector: invalid (${name}) is reported and matches nothing`, () => {
    const { selector, problems } = compileSelector(sel, 'sel');
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.field, field);
    // an otherwise-everything label set still does not match
    assert.equal(selectorMatches(selector, HAS), false);
    assert.equal(selectorMatches(selector, LACKS), false);
  });
}

test('selector: formatted as kubectl prints it', () => {
  const { selector } = compileSelector(
    {
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'tier', operator: 'NotIn', values: ['db', 'cache'] },
        { key: 'legacy', operator: 'DoesNotExist' },
      ],
    },
    's',
  );
  assert.equal(formatSelector(selector), 'app=web,tier notin (cache,db),!legacy');
  assert.equal(formatSelector(compileSelector({}, 's').selector), '<all>');
  assert.equal(formatSelector(compileSelector(null, 's').selector), '<none>');
});

test('selector: qualified keys and empty values are valid (apimachinery IsQualifiedName / IsValidLabelValue)', () => {
  const { selector, problems } = compileSelector(
    { matchLabels: { 'app.kubernetes.io/name': 'web', 'example.com/empty': '' }, matchExpressions: [{ key: 'a_b.c-d', operator: 'Exists' }] },
    'sel',
  );
  assert.deepEqual(problems, []);
  assert.equal(selectorMatches(selector, { 'app.kubernetes.io/name': 'web', 'example.com/empty': '', 'a_b.c-d': 'x' }), true);
  assert.equal(selectorMatches(selector, { 'app.kubernetes.io/name': 'web', 'a_b.c-d': 'x' }), false);
});
