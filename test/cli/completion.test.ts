// Issue 15 (CLI polish): `weir completion bash` is sourced in a real bash, and its completion
// function is driven as bash drives it on <TAB> (COMP_WORDS, COMP_CWORD): subcommands, nested
// subcommands, flags, the choices of flags and arguments, a flag's value skipped on the way.
// Every command of the commander tree completes from the root (the script is generated, not kept).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { completionTree } from '../../src/cli/completion.js';
import { program } from '../../src/cli/main.js';
import { binWeir } from '../lib/paths.js';

describe('weir completion bash', () => {
  let dir: string;
  let script: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'weir-completion-'));
    script = join(dir, 'weir.bash');
    writeFileSync(script, execFileSync(binWeir, ['completion', 'bash'], { encoding: 'utf8' }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** What <TAB> after `line` offers (the last word is the one being completed, '' after a space). */
  const complete = (line: string): string[] => {
    const words = line.split(' ');
    const out = execFileSync(
      'bash',
      [
        '--norc',
        '-c',
        'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; _weir weir "${COMP_WORDS[COMP_CWORD]}"; printf "%s\\n" "${COMPREPLY[@]}"',
        'bash',
        script,
        ...words,
      ],
      { encoding: 'utf8' },
    );
    return out.split('\n').filter((l) => l !== '');
  };

  test('sourcing it registers the function for weir', () => {
    const out = execFileSync('bash', ['--norc', '-c', 'source "$1"; complete -p weir', 'bash', script], { encoding: 'utf8' });
    assert.equal(out.trim(), 'complete -F _weir weir');
  });

  test('weir ser<TAB> -> services', () => assert.deepEqual(complete('weir ser'), ['services']));
  test('weir daemon --connect-time-lb <TAB> -> on host-only off', () =>
    assert.deepEqual(complete('weir daemon --connect-time-lb '), ['on', 'host-only', 'off']));
  test("a flag's value is skipped on the way: weir daemon --node-name n1 --log-level <TAB>", () =>
    assert.deepEqual(complete('weir daemon --node-name n1 --log-level '), ['debug', 'info', 'warn', 'error']));
  test('nested: weir ct <TAB> -> list flush help; weir ct list --a<TAB> -> --address', () => {
    assert.deepEqual(complete('weir ct '), ['list', 'flush', 'help']);
    assert.deepEqual(complete('weir ct list --a'), ['--address']);
  });
  test('-o <TAB> and --output=<TAB> -> table json yaml', () => {
    assert.deepEqual(complete('weir services -o '), ['table', 'json', 'yaml']);
    assert.deepEqual(complete('weir nat list --output=y'), ['--output=yaml']);
  });
  test('weir completion <TAB> -> bash zsh fish', () => assert.deepEqual(complete('weir completion '), ['bash', 'zsh', 'fish']));
  test('a flag of another command is not offered: weir services --k<TAB> -> nothing, weir diff --k<TAB> -> --kubeconfig', () => {
    assert.deepEqual(complete('weir services --k'), []);
    assert.deepEqual(complete('weir diff --k'), ['--kubeconfig']);
  });

  test('every command of the tree completes from its parent, and lists its flags', () => {
    const tree = completionTree(program);
    let n = 0;
    for (const node of tree.filter((x) => x.path !== '')) {
      const words = node.path.split(' ');
      const last = words.pop()!;
      assert.ok(complete(['weir', ...words, last].join(' ')).includes(last), `weir ${node.path}`);
      const flags = complete(['weir', ...words, last, '--'].join(' '));
      assert.deepEqual(
        flags,
        node.flags.filter((f) => f.startsWith('--')),
        `weir ${node.path} --<TAB>`,
      );
      n++;
    }
    console.log(`${n} commands complete`);
  });

  test('zsh and fish scripts are generated from the same tree', () => {
    const zsh = execFileSync(binWeir, ['completion', 'zsh'], { encoding: 'utf8' });
    assert.match(zsh, /^#compdef weir\n/);
    assert.match(zsh, /bashcompinit/);
    assert.match(zsh, /complete -F _weir weir/);
    const fish = execFileSync(binWeir, ['completion', 'fish'], { encoding: 'utf8' });
    assert.match(fish, /^complete -c weir -n '__weir_at daemon' -l connect-time-lb -x -a 'on host-only off'$/m);
    assert.match(fish, /^complete -c weir -n '__weir_at' -a 'daemon .*services.*'$/m);
  });
});
