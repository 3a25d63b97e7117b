// Start-up cost (issue 16, start-up at scale): @kubernetes/client-node takes about a second and
// 80 MB of RSS to load. Only the API source needs it, so the CLI (and so `weir daemon` on a
// manifests directory) must not load it until a command reads from the API.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../lib/paths.js';

test('the CLI loads @kubernetes/client-node only when a command reads from the API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-imports-'));
  try {
    // a resolve hook that names every module of client-node some weir module asks for
    const hook = join(dir, 'hook.mjs');
    writeFileSync(
      hook,
      "import { registerHooks } from 'node:module';\n" +
        'registerHooks({ resolve(spec, ctx, next) {\n' +
        "  if (spec.startsWith('@kubernetes/client-node') && !ctx.parentURL?.includes('/node_modules/')) process.stderr.write(`loads ${spec} from ${ctx.parentURL}\\n`);\n" +
        '  return next(spec, ctx);\n} });\n',
    );
    const r = spawnSync(process.execPath, ['--import', hook, join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'daemon', '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /--manifests/);
    assert.deepEqual(
      r.stderr.split('\n').filter((l) => l.startsWith('loads ')),
      [],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
