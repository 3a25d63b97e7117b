// docs/configuration.md cannot drift from the flags: its reference block is exactly what the
// commander options of `weir daemon` render (src/daemon/config-doc.ts), so every flag, its
// WEIR_* variable, file key and default are listed; the example file in it is a valid
// WeirConfiguration whose values are the defaults.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { daemonOptions } from '../../src/cli/daemon.js';
import { DOC_BEGIN, DOC_END, renderConfigReference } from '../../src/daemon/config-doc.js';
import { parseConfigFile } from '../../src/daemon/config-file.js';
import { flagSpecs } from '../../src/daemon/config-sources.js';
import { repoRoot } from '../lib/paths.js';

const doc = readFileSync(join(repoRoot, 'docs', 'configuration.md'), 'utf8');
const block = () => doc.slice(doc.indexOf(DOC_BEGIN), doc.indexOf(DOC_END) + DOC_END.length);

test('the reference in docs/configuration.md is the one the flags render (run node scripts/config-doc.mjs after changing a flag)', () => {
  const cmd = daemonOptions(new Command('daemon'));
  assert.ok(doc.includes(DOC_BEGIN) && doc.includes(DOC_END), 'the generated-block markers');
  assert.equal(block(), renderConfigReference(cmd), 'docs/configuration.md is stale: run `make build && node scripts/config-doc.mjs`');
  for (const s of flagSpecs(cmd)) {
    assert.ok(block().includes(`\`${s.env}\``), `${s.flag}: its variable is listed`);
    if (s.key !== 'config') assert.match(block(), new RegExp(`^#? ?${s.key}:`, 'm'), `${s.flag}: its key is in the example file`);
  }
});

test("the doc's full example file is a valid WeirConfiguration of the defaults", () => {
  const cmd = daemonOptions(new Command('daemon'));
  const yaml = /```yaml\n([\s\S]*?)```/.exec(block())![1]!;
  const values = parseConfigFile('docs/configuration.md', yaml, flagSpecs(cmd));
  for (const o of cmd.options) {
    const key = o.attributeName();
    if (key === 'config') continue;
    assert.equal(values.get(key), o.defaultValue === undefined ? undefined : String(o.defaultValue), key);
  }
});
