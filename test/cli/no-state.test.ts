// Issue 15 (CLI polish): every command that reads a node's weir state, found by walking the
// commander tree (a new command is covered without editing this file), run against a private
// bpffs with no pins for the instance: the same one line on stderr, nothing on stdout, exit
// EXIT_NO_STATE (3), no stack trace. Also an empty pin directory and --pin-dir (some commands), and
// `weir status` with no daemon answering (same exit code).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Command } from 'commander';
import { program } from '../../src/cli/main.js';
import { EXIT_NO_STATE } from '../../src/cli/output.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { runCleanups } from '../lib/cleanup.js';
import { binWeir } from '../lib/paths.js';

/** Commands that take --instance but do not inspect state, and why. */
const NOT_INSPECTION: Record<string, string> = {
  daemon: 'creates the state',
  uninstall: 'no state is "nothing to remove", exit 0',
};

/** Arguments a command needs before it looks at the state (a new command with required ones fails until listed here). */
const manifests = mkdtempSync(join(tmpdir(), 'weir-no-state-manifests-'));
const REQUIRED: Record<string, string[]> = {
  explain: ['198.18.1.2', '198.18.2.3', '80/tcp'],
  diff: ['--manifests', manifests, '--node-name', 'node1'],
};

/** Leaf commands with their path: `ct list`, `services`, ... */
function leaves(cmd: Command, path: string[] = []): { path: string[]; cmd: Command }[] {
  if (cmd.commands.length === 0) return [{ path, cmd }];
  return cmd.commands.flatMap((c) => leaves(c, [...path, c.name()]));
}

const stateCommands = leaves(program).filter(({ path, cmd }) => cmd.options.some((o) => o.long === '--instance') && !(path.join(' ') in NOT_INSPECTION));

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(binWeir, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('no weir state: one line, one exit code, every state-reading command', () => {
  let bpffs: PrivateBpffs;
  before(() => {
    bpffs = mountPrivateBpffs('no-state');
    // an instance directory that exists but holds no maps is no state either
    mkdirSync(join(bpffs.path, 'weir', 'empty'), { recursive: true });
  });
  after(async () => {
    await bpffs?.cleanup();
    await runCleanups();
  });

  test('the tree has the inspection commands this test expects to cover', () => {
    const names = stateCommands.map((c) => c.path.join(' '));
    console.log(`covered: ${names.join(', ')}`);
    for (const n of [
      'services',
      'ct list',
      'ct flush',
      'nat list',
      'affinity list',
      'counters',
      'maps',
      'nodes',
      'policy',
      'ipcache',
      'identities',
      'explain',
      'diff',
      'ifaces',
    ])
      assert.ok(names.includes(n), `${n} is a state-reading command`);
    for (const { path, cmd } of stateCommands) {
      const needs = cmd.registeredArguments.some((a) => a.required) || cmd.options.some((o) => o.mandatory && o.defaultValue === undefined);
      if (needs) assert.ok(path.join(' ') in REQUIRED, `\`weir ${path.join(' ')}\` has required arguments: add sample ones to REQUIRED`);
    }
  });

  // every command for a missing instance; the other shapes of "no state" (they meet in one
  // function) for the two commands that printed something else before: services and ifaces
  const SOME = (c: { path: string[] }) => ['services', 'ifaces'].includes(c.path.join(' '));
  for (const [instance, which] of [
    ['nosuch', () => true],
    ['empty', SOME],
  ] as const) {
    test(`instance "${instance}": the same line on stderr, exit ${EXIT_NO_STATE}`, async () => {
      const line = `weir: no weir state for instance "${instance}" under ${bpffs.path}/weir (is the daemon running on this node? --instance/--bpf-root)\n`;
      for (const { path } of stateCommands.filter(which)) {
        const r = await run([...path, ...(REQUIRED[path.join(' ')] ?? []), '--bpf-root', bpffs.path, '--instance', instance]);
        assert.deepEqual(r, { code: EXIT_NO_STATE, stdout: '', stderr: line }, `weir ${path.join(' ')}`);
      }
    });
  }

  test('--pin-dir with nothing pinned: the same line, naming the directory', async () => {
    const dir = join(bpffs.path, 'weir', 'empty');
    for (const { path } of stateCommands.filter(SOME)) {
      const r = await run([...path, ...(REQUIRED[path.join(' ')] ?? []), '--pin-dir', dir]);
      assert.deepEqual(
        r,
        { code: EXIT_NO_STATE, stdout: '', stderr: `weir: no weir state at ${dir} (is the daemon running on this node? --pin-dir)\n` },
        `weir ${path.join(' ')}`,
      );
    }
  });

  test('weir status with no daemon answering: one line, the same exit code', async () => {
    const r = await run(['status', '--address', '127.0.0.1:1']);
    assert.equal(r.code, EXIT_NO_STATE, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^weir: no weir daemon answering at http:\/\/127\.0\.0\.1:1\/\w+: .*\(is the daemon running on this node\? --address\)\n$/);
  });
});
