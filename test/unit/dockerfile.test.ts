// The Dockerfile, checked as far as a machine with no Docker engine can: its build stage
// runs Make targets that exist and installs what `make build` needs (the same packages the
// Makefile installs for CI), every file the runtime stage copies out of the build stage is
// produced by `make build`, the runtime stage installs the Debian package that provides the
// libbpf the addon is linked against, and the entrypoint runs.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../lib/paths.js';

interface Stage {
  from: string;
  name?: string;
  runs: string[];
  copies: { from?: string; src: string[]; dst: string }[];
  entrypoint?: string[];
  workdir?: string;
}

/** Dockerfile instructions, with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of logical) {
    const [instr, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    const stage = stages[stages.length - 1];
    switch (instr!.toUpperCase()) {
      case 'FROM': {
        const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
        assert.ok(m, `FROM ${args}`);
        stages.push({ from: m[1]!, ...(m[2] ? { name: m[2] } : {}), runs: [], copies: [] });
        break;
      }
      case 'RUN':
        stage!.runs.push(args);
        break;
      case 'COPY': {
        const words = args.split(/\s+/);
        const from = words[0]!.startsWith('--from=') ? words.shift()!.slice('--from='.length) : undefined;
        const dst = words.pop()!;
        stage!.copies.push({ ...(from ? { from } : {}), src: words, dst });
        break;
      }
      case 'ENTRYPOINT':
        stage!.entrypoint = JSON.parse(args) as string[];
        break;
      case 'WORKDIR':
        stage!.workdir = args;
        break;
    }
  }
  return stages;
}

/** Packages named by `apt-get install` in a RUN line. */
function aptInstalls(run: string): string[] {
  const out: string[] = [];
  for (const cmd of run.split(/&&|;/)) {
    const words = cmd.trim().split(/\s+/);
    const i = words.indexOf('install');
    if (words[0] !== 'apt-get' || i < 0) continue;
    out.push(...words.slice(i + 1).filter((w) => !w.startsWith('-')));
  }
  return out;
}

/** The Makefile's APT_PACKAGES, what `make deps` installs for CI. */
function makefilePackages(): string[] {
  const mk = readFileSync(join(repoRoot, 'Makefile'), 'utf8').replace(/\\\n/g, ' ');
  const m = /^APT_PACKAGES\s*:=\s*(.*)$/m.exec(mk);
  assert.ok(m, 'Makefile defines APT_PACKAGES');
  return m[1]!.trim().split(/\s+/);
}

const stages = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
const build = stages[0]!;
const runtime = stages[stages.length - 1]!;

/** The Makefile's pinned Node.js (NODE_VERSION), what make deps installs and the tests run on. */
function makefileNodeVersion(): string {
  const m = /^NODE_VERSION\s*:=\s*(\S+)$/m.exec(readFileSync(join(repoRoot, 'Makefile'), 'utf8'));
  assert.ok(m, 'Makefile pins NODE_VERSION');
  return m[1]!;
}

test('two stages on the Node.js the Makefile pins (the current LTS), the one these tests run on', () => {
  const pinned = makefileNodeVersion();
  assert.equal(stages.length, 2);
  assert.equal(build.name, 'build');
  assert.equal(build.from, `node:${pinned}-bookworm`);
  assert.equal(runtime.from, `node:${pinned}-bookworm-slim`);
  assert.ok(Number(pinned.split('.')[0]) >= 24, `Node ${pinned}: 20 reached end of life in April 2026`);
  // the tests run on the pinned node (make puts it first on PATH)
  assert.equal(process.versions.node, pinned);
  // the image's make uses the image's node, not a second one fetched into .tools
  assert.ok(
    build.runs.some((r) => /make build NODE_DIR=\/usr\/local\b/.test(r)),
    'the build stage runs make build NODE_DIR=/usr/local',
  );
});

test('the build stage runs Make targets that exist, the ones CI runs', () => {
  const targets = build.runs
    .flatMap((r) => r.split(/&&|;/).map((c) => c.trim().split(/\s+/)))
    .filter((words) => words[0] === 'make')
    .flatMap((words) => words.slice(1).filter((w) => !w.startsWith('-') && !w.includes('=')));
  assert.ok(targets.includes('build'), `build stage runs make build (ran: ${targets.join(', ')})`);
  for (const t of targets) execFileSync('make', ['-n', '-C', repoRoot, t], { stdio: 'pipe' }); // throws when the target does not exist
});

test('the build stage installs what make build needs, as make deps does for CI', () => {
  const installed = build.runs.flatMap(aptInstalls);
  const ci = new Set(makefilePackages());
  for (const p of ['clang', 'llvm', 'libclang-rt-14-dev', 'libbpf-dev', 'pkg-config', 'make', 'g++', 'python3']) {
    assert.ok(installed.includes(p), `build stage installs ${p}`);
    assert.ok(ci.has(p), `make deps installs ${p} too`);
  }
  assert.ok(
    build.runs.some((r) => /npm ci\b/.test(r)),
    'node_modules from the lockfile',
  );
});

test('everything the runtime copies from the build stage is produced by make build', () => {
  const workdir = build.workdir ?? '/';
  const fromBuild = runtime.copies.filter((c) => c.from === 'build');
  assert.ok(fromBuild.length >= 5);
  for (const c of fromBuild)
    for (const src of c.src) {
      assert.ok(src.startsWith(workdir), `${src} is under the build stage's WORKDIR ${workdir}`);
      const local = join(repoRoot, src.slice(workdir.length));
      assert.ok(existsSync(local), `${src} exists after make build (${local})`);
    }
  const copied = fromBuild.flatMap((c) => c.src.map((s) => s.slice(workdir.length).replace(/^\//, '')));
  for (const needed of ['dist', 'build/bpf', 'build/Release/weir.node', 'node_modules', 'bin', 'package.json'])
    assert.ok(copied.includes(needed), `runtime gets ${needed}`);
});

test('the runtime installs the package that provides the libbpf the addon is linked against', () => {
  const addon = join(repoRoot, 'build', 'Release', 'weir.node');
  const ldd = execFileSync('ldd', [addon], { encoding: 'utf8' });
  const m = /libbpf\.so\.(\d+) => (\S+)/.exec(ldd);
  assert.ok(m, `the addon links libbpf dynamically:\n${ldd}`);
  const owner = execFileSync('dpkg', ['-S', execFileSync('readlink', ['-f', m[2]!], { encoding: 'utf8' }).trim()], { encoding: 'utf8' });
  const pkg = owner.split(':')[0]!;
  assert.equal(pkg, `libbpf${m[1]}`);
  const installed = runtime.runs.flatMap(aptInstalls);
  assert.ok(installed.includes(pkg), `runtime installs ${pkg} (installs: ${installed.join(' ')})`);
  assert.ok(!installed.some((p) => /-dev$/.test(p) || p === 'clang'), 'no toolchain in the runtime image');
  // the tools the daemon drives
  for (const p of ['iproute2']) assert.ok(installed.includes(p), `runtime installs ${p}`);
});

test('the entrypoint is the weir CLI and runs', () => {
  assert.deepEqual(runtime.entrypoint, [`${runtime.workdir}/bin/weir`]);
  const bin = join(repoRoot, 'bin', 'weir');
  assert.ok(statSync(bin).isFile());
  accessSync(bin, constants.X_OK);
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
  assert.equal(version, JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version);
});

test('.dockerignore keeps host build output out of the build context', () => {
  const ignored = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim());
  for (const p of ['node_modules', 'build', 'dist', '.tools']) assert.ok(ignored.includes(p), `.dockerignore lists ${p}`);
});
