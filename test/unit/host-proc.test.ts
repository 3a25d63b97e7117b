// --host-proc: a bad directory is one readable error; which PID namespace a /proc shows (the
// node's, or only weir's own in a pod) and the warning weir gives for the latter.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { daemonConfig } from '../../src/cli/daemon.js';
import { hostProcBlindness, INIT_PID_NS_INO, nsId, procBlindToNode, procView } from '../../src/dataplane/namespaces.js';
import { baseDaemonFlags } from './daemon-flags.js';

test('--host-proc: /proc by default, any proc mount, else one readable error', () => {
  assert.equal(daemonConfig(baseDaemonFlags).hostProc, '/proc');
  assert.equal(daemonConfig({ ...baseDaemonFlags, hostProc: '/proc/' }).hostProc, '/proc/');
  assert.throws(() => daemonConfig({ ...baseDaemonFlags, hostProc: '/tmp' }), /^Error: --host-proc \/tmp is not a \/proc mount \(no \/tmp\/self\/ns\)/);
});

test("this machine's /proc: our own PID namespace's; blind only where that is not the initial one", () => {
  const v = procView('/proc');
  assert.equal(v.procIsOwnPidNs, true);
  const initial = nsId('/proc/self/ns/pid')?.ino === INIT_PID_NS_INO;
  assert.equal(v.initialPidNs, initial);
  assert.equal(procBlindToNode('/proc'), !initial);
  assert.equal(hostProcBlindness('/proc') === undefined, initial);
  // not a proc mount: unknown, never "blind"
  assert.deepEqual(procView('/tmp'), { initialPidNs: initial, procIsOwnPidNs: undefined });
  assert.equal(procBlindToNode('/tmp'), false);
});
