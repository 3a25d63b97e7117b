// Calico selector expressions (model/host-policy/selector.ts) against the examples of Calico's
// selector reference (docs _selectors.mdx, libcalico-go selector parser tests): every operator on
// a label set with the key, with another value, and without it; precedence; parse errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LabelIndex } from '../../src/model/host-policy/label-index.js';
import { matches, parseSelector } from '../../src/model/host-policy/selector.js';

const WEB = { role: 'webserver', env: 'prod', 'node-role.kubernetes.io/control-plane': '', zone: 'eu-west-1a' };
const DB = { role: 'database', env: 'dev' };
const BARE = {};

// [selector, matches WEB, matches DB, matches BARE]
const TABLE: Array<[string, boolean, boolean, boolean]> = [
  ["role == 'webserver'", true, false, false],
  ['role == "webserver"', true, false, false],
  ["role != 'webserver'", false, true, true], // true when the key is absent
  ["role in {'webserver', 'frontend'}", true, false, false],
  ['role in {}', false, false, false],
  ["role not in {'webserver'}", false, true, true],
  ["role notin {'webserver'}", false, true, true],
  ['has(role)', true, true, false],
  ['!has(role)', false, false, true],
  ['has(node-role.kubernetes.io/control-plane)', true, false, false],
  ["role contains 'base'", false, true, false],
  ["role starts with 'web'", true, false, false],
  ["role startswith 'web'", true, false, false],
  ["zone ends with '1a'", true, false, false],
  ["zone endswith '1a'", true, false, false],
  ['all()', true, true, true],
  ['', true, true, true], // the empty selector is all()
  ['global()', false, false, false], // namespaced context
  ["role == 'webserver' && env == 'prod'", true, false, false],
  ["role == 'database' || env == 'prod'", true, true, false],
  // && binds tighter than ||
  ["role == 'database' || role == 'webserver' && env == 'dev'", false, true, false],
  ["(role == 'database' || role == 'webserver') && env == 'dev'", false, true, false],
  ["(role == 'database' || role == 'webserver') && env == 'prod'", true, false, false],
  // ! binds tighter than &&
  ['!has(role) && !has(env)', false, false, true],
  ["!(has(role) && env == 'prod')", false, true, true],
  ["! role == 'webserver'", false, true, true],
  ["role == 'locked' && !has(node-role.kubernetes.io/control-plane)", false, false, false],
  ["env=='prod'&&has(role)", true, false, false],
  ['has ( role )', true, true, false],
];

for (const [text, web, db, bare] of TABLE) {
  test(`selector ${JSON.stringify(text)}`, () => {
    const r = parseSelector(text);
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.deepEqual([matches(r.selector, WEB), matches(r.selector, DB), matches(r.selector, BARE)], [web, db, bare]);
  });
}

test('selector: global() holds for non-namespaced endpoints only', () => {
  const r = parseSelector("global() || env == 'dev'");
  assert.ok(r.ok);
  assert.equal(r.selector.usesGlobal, true);
  assert.equal(matches(r.selector, BARE, true), true);
  assert.equal(matches(r.selector, BARE, false), false);
  assert.equal(matches(r.selector, DB, false), true);
});

test('selector: labels named like functions and keywords still parse as labels', () => {
  const r = parseSelector("has == 'x' && in != 'y'");
  assert.ok(r.ok, r.ok ? '' : r.error);
  assert.equal(matches(r.selector, { has: 'x' }), true);
  assert.equal(matches(r.selector, { has: 'x', in: 'y' }), false);
});

test('selector: parsed once per text (cached AST)', () => {
  const a = parseSelector("role == 'cached'");
  const b = parseSelector("role == 'cached'");
  assert.ok(a.ok && b.ok);
  assert.equal(a.selector, b.selector);
});

// [text, position of the error, words the message must carry]
const ERRORS: Array<[string, number, string]> = [
  ['role == webserver', 8, 'expected a quoted value'],
  ["role = 'x'", 5, 'expected an operator'],
  ["role == 'x", 8, 'unterminated string'],
  ["role in {'a' 'b'}", 13, "expected ',' or '}'"],
  ['has(role', 8, "expected ')'"],
  ["(role == 'a'", 12, "expected ')'"],
  ["role == 'a' &&", 14, 'expected a label key'],
  ["role == 'a' garbage", 12, "expected '&&', '||' or the end"],
  ["role not 'a'", 9, "expected 'in' after 'not'"],
  ["role starts 'a'", 12, "expected 'with' after 'starts'"],
  ['&& x', 0, 'expected a label key'],
  ["role == 'a' | env == 'b'", 12, "expected '&&', '||' or the end"],
];

for (const [text, position, words] of ERRORS) {
  test(`selector error: ${JSON.stringify(text)}`, () => {
    const r = parseSelector(text);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.position, position, r.error);
    assert.ok(r.error.includes(words), r.error);
    assert.ok(r.error.includes(`at position ${position} of ${JSON.stringify(text)}`), r.error);
  });
}

test('label index: the candidates of every table selector hold every label set it matches', () => {
  const sets = [WEB, DB, BARE, { role: 'web' }, { zone: 'eu-1a', env: 'prod' }, { role: 'frontend', env: 'dev' }, { has: 'x', in: 'y' }];
  const index = new LabelIndex(sets);
  let narrowed = 0;
  for (const [text] of [...TABLE, ["role == 'web' || env == 'dev'"], ["role in {'frontend', 'database'} && env == 'dev'"]]) {
    const r = parseSelector(text);
    assert.ok(r.ok);
    const want = sets.flatMap((l, i) => (matches(r.selector, l) ? [i] : []));
    const cand = index.candidates(r.selector.root);
    if (cand === undefined) continue;
    narrowed++;
    assert.deepEqual(
      want.filter((i) => !cand.includes(i)),
      [],
      `${text}: candidates ${JSON.stringify(cand)} miss a match`,
    );
  }
  assert.ok(narrowed >= 15, `the index narrows most selectors (${narrowed})`);
});
