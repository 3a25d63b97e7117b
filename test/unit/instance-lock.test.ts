// test/unit: how `weir uninstall` tells that a daemon still runs (src/dataplane/instance-lock.ts):
// the instance's abstract socket is held while a lock is, freed on release and when its
// holder dies (kill -9); a `weir daemon` command line is recognised with its instance.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { acquireInstanceLock, daemonInstance, lockHeld } from '../../src/dataplane/instance-lock.js';

const instance = `unit-test-${process.pid}`;

test('the lock is held while acquired, and a second holder is refused', async () => {
  assert.equal(await lockHeld(instance), false);
  const l = await acquireInstanceLock(instance);
  assert.equal(await lockHeld(instance), true);
  await assert.rejects(acquireInstanceLock(instance), { code: 'EADDRINUSE' });
  await l.release();
  assert.equal(await lockHeld(instance), false);
});

test('kill -9 of the holder frees the lock (no stale pidfile)', async () => {
  const url = new URL('../../src/dataplane/instance-lock.js', import.meta.url).href;
  const holder = [
    `const m = await import(${JSON.stringify(url)});`,
    `await m.acquireInstanceLock(${JSON.stringify(instance)});`,
    "console.log('held'); setInterval(() => {}, 1000);",
  ].join(' ');
  const child = spawn(process.execPath, ['--input-type=module', '-e', holder], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout!, 'data');
  assert.equal(await lockHeld(instance), true);
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal(await lockHeld(instance), false);
});

test('a weir daemon command line and its instance', () => {
  const bin = ['node', '--enable-source-maps', '/opt/weir/dist/src/cli/main.js'];
  assert.equal(daemonInstance([...bin, 'daemon', '--node-name', 'n1', '--instance', 'node1']), 'node1');
  assert.equal(daemonInstance(['/usr/local/bin/weir', 'daemon', '--instance=x']), 'x');
  assert.equal(daemonInstance(['weir', 'daemon', '--node-name=n1']), 'default');
  assert.equal(daemonInstance(['node', '/opt/weir/dist/src/cli/main.js', 'uninstall', '--instance', 'node1']), undefined);
  assert.equal(daemonInstance(['node', 'server.js', 'daemon']), undefined);
});
