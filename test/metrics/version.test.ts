// `weir version`: the commit the build came from (dist/build-info.json, which `make ts` writes
// from git, "unknown" outside a checkout, as in the image's build context), Node.js, libbpf from
// the addon, the kernel release and the features probed on this kernel (6.x: all of them).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { binWeir } from '../lib/paths.js';
import { run } from '../lib/proc.js';
import { packageRoot } from '../../src/package-root.js';
import type { VersionReport } from '../../src/cli/version.js';

test('weir version -o json: commit of this checkout, Node.js, libbpf, kernel, features found', async () => {
  const r = await run(binWeir, ['version', '-o', 'json']);
  const v = JSON.parse(r.stdout) as VersionReport;
  const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: packageRoot(), encoding: 'utf8' }).trim();
  const built = JSON.parse(readFileSync(join(packageRoot(), 'dist', 'build-info.json'), 'utf8')) as { commit: string };
  assert.equal(v.commit, built.commit);
  assert.equal(v.commit, head, 'make build writes the commit it builds (make test builds first)');
  assert.equal(v.version, (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version);
  assert.equal(v.nodeVersion, process.versions.node);
  assert.match(v.libbpfVersion, /^1\.\d+$/);
  assert.equal(v.kernelRelease, release());
  const found = Object.fromEntries(v.features.map((f) => [f.name, f.available]));
  // this machine's kernel (6.18) has every one of them
  assert.deepEqual(found, {
    btf: true,
    tc: true,
    tcx: true,
    xdp: true,
    cgroup_sock_addr: true,
    ringbuf: true,
    lpm_trie: true,
    lru_hash: true,
    socket_iterators: true,
    bpf_sock_destroy: true,
    redirect_neigh: true,
  });
  const table = await run(binWeir, ['version']);
  assert.match(table.stdout, new RegExp(`^commit: +${v.commit}`, 'm'));
  assert.match(table.stdout, /^tcx +yes /m);
});

test('the Makefile writes commit "unknown" outside a git checkout (the image build context has no .git)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-build-info-'));
  try {
    copyFileSync(join(packageRoot(), 'Makefile'), join(dir, 'Makefile'));
    execFileSync('make', ['-s', 'dist/build-info.json'], { cwd: dir, env: { ...process.env, GIT_CEILING_DIRECTORIES: tmpdir() } });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'dist', 'build-info.json'), 'utf8')), { commit: 'unknown', dirty: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
