#!/usr/bin/env node
// scripts/: rewrites the generated reference of docs/configuration.md (every `weir daemon`
// flag with its WEIR_* variable, file key and default, and a full example file) from the
// built commander options (make build first). test/unit/daemon-config-doc.test.ts fails
// when the doc and the flags differ; this fixes it.
//
//   node scripts/config-doc.mjs

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { daemonOptions } = await import(join(root, 'dist', 'src', 'cli', 'daemon.js'));
const { renderConfigReference, replaceGenerated } = await import(join(root, 'dist', 'src', 'daemon', 'config-doc.js'));
const path = join(root, 'docs', 'configuration.md');
const doc = readFileSync(path, 'utf8');
const next = replaceGenerated(doc, renderConfigReference(daemonOptions(new Command('daemon'))));
if (next !== doc) writeFileSync(path, next);
console.log(next === doc ? `${path}: up to date` : `${path}: reference rewritten`);
